//! Ruleset YAML and iptables text from arbitrary bytes: errors, never panics; anything that
//! loads also compiles, and anything imported loads back.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run config`.
#![no_main]

use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(l) = config::load_str(text, "fuzz.yaml") {
        let _ = CompiledRuleset::compile(&l.ruleset, 1);
    }
    let input = config::iptables::ImportInput {
        rules: ("fuzz.rules", text),
        sysctl: Some(("fuzz.sysctl", text)),
        helpers: Some(("fuzz.helpers", text)),
    };
    if let Ok(r) = config::iptables::import(&input) {
        let yaml = config::iptables::to_yaml(&r);
        assert!(config::load_str(&yaml, "imported.yaml").is_ok(), "{yaml}");
    }
});
