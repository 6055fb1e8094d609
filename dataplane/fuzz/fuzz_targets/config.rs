//! Ruleset YAML (`statewall check`, `run`, `statewallctl apply`) from arbitrary bytes: errors
//! with a line inside the input, never panics; anything that loads also compiles. (iptables
//! text: the `iptables` target.)
//!
//! Run: `scripts/fuzz.sh config` (seeds: `examples/*.yaml`, the packaged default).
#![no_main]

use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::load_str(text, "fuzz.yaml") {
        Ok(l) => {
            let _ = CompiledRuleset::compile(&l.ruleset, 1);
        }
        Err(errors) => {
            // Lines as YAML counts them: a line break is LF, CRLF or a lone CR (YAML 1.2,
            // 5.4), and positions are YAML's.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            for d in &errors {
                assert!(!d.message.is_empty(), "{d:?}");
                assert!(d.pos.line <= lines.max(1), "{d:?}");
            }
        }
    }
});
