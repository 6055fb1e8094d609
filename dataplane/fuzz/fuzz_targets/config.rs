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
            let lines = text.split('\n').count();
            for d in &errors {
                assert!(!d.message.is_empty(), "{d:?}");
                assert!(d.pos.line <= lines.max(1), "{d:?}");
            }
        }
    }
});
