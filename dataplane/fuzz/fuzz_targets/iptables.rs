//! `import-iptables` on arbitrary text: the rules, the sysctl file, the helpers file and the
//! `ipset save` file (the input split at its first three NUL bytes; a part left out is not
//! given). Errors name one of the four files and a line inside it, never a panic; anything
//! imported writes YAML that loads back and compiles.
//!
//! Run: `scripts/fuzz.sh iptables` (seeds: every scenario's `rules.iptables`, the live
//! suite's rules, `dataplane/fuzz/seeds/iptables`).
#![no_main]

use config::iptables::{import, ImportInput};
use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\0');
    let rules = parts.next().unwrap_or_default();
    let sysctl = parts.next();
    let helpers = parts.next();
    let ipset = parts.next();
    let input = ImportInput {
        rules: ("fuzz.rules", rules),
        sysctl: sysctl.map(|t| ("fuzz.sysctl", t)),
        helpers: helpers.map(|t| ("fuzz.helpers", t)),
        ipset: ipset.map(|t| ("fuzz.ipset", t)),
        family: None,
    };
    match import(&input) {
        Ok(r) => {
            for w in &r.warnings {
                assert!(!w.message.is_empty(), "{w:?}");
            }
            let yaml = r.to_yaml();
            let loaded = config::load_str(&yaml, "imported.yaml")
                .unwrap_or_else(|e| panic!("imported YAML does not load: {e:?}\n{yaml}"));
            let _ = CompiledRuleset::compile(&loaded.ruleset, 1);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for d in &errors {
                let text = match d.file.as_str() {
                    "fuzz.rules" => rules,
                    "fuzz.sysctl" => sysctl.unwrap_or_default(),
                    "fuzz.helpers" => helpers.unwrap_or_default(),
                    "fuzz.ipset" => ipset.unwrap_or_default(),
                    other => panic!("a diagnostic names no input: {other}: {d:?}"),
                };
                let lines = text.split('\n').count();
                assert!(d.pos.line >= 1 && d.pos.line <= lines, "{d:?}");
                assert!(!d.message.is_empty(), "{d:?}");
            }
        }
    }
});
