//! `import-nft` on arbitrary text (meant as `nft -j list ruleset` JSON). Errors name the
//! input and a line inside it, never a panic; anything imported writes YAML that loads back
//! and compiles.
//!
//! Run: `scripts/fuzz.sh nft` (seeds: config/tests/data/nft/*.json and every nftables
//! scenario's rules.json).
#![no_main]

use config::nft::{import, NftInput};
use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match import(&NftInput {
        rules: ("fuzz.json", text),
    }) {
        Ok(r) => {
            let yaml = r.to_yaml();
            let loaded = config::load_str(&yaml, "imported.yaml")
                .unwrap_or_else(|e| panic!("imported YAML does not load: {e:?}\n{yaml}"));
            assert_eq!(loaded.ruleset, r.ruleset, "{yaml}");
            let _ = CompiledRuleset::compile(&loaded.ruleset, 1);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let lines = text.split('\n').count();
            for d in &errors {
                assert_eq!(d.file, "fuzz.json", "{d:?}");
                assert!(d.pos.line <= lines, "{d:?}");
                assert!(!d.message.is_empty(), "{d:?}");
            }
        }
    }
});
