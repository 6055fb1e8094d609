//! Capture files (`capture::decode`: pcap and pcapng, what `statewall replay` and the engine
//! benches read) from arbitrary bytes: an error naming the file, never a panic; every frame
//! decoded goes through the parser and a pipeline.
//!
//! Run: `scripts/fuzz.sh capture` (seeds: every scenario's `packets.pcapng`, and
//! `dataplane/fuzz/seeds/capture`).
#![no_main]

use std::sync::{Arc, OnceLock};

use engine::capture::decode;
use engine::pipeline::{Packet, Pipeline};
use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<CompiledRuleset> {
    static R: OnceLock<Arc<CompiledRuleset>> = OnceLock::new();
    Arc::clone(R.get_or_init(|| {
        let yaml = "forward: {policy: drop, rules: [{ctstate: [established, related], action: accept}, {in_port: lan, action: accept}]}";
        let loaded = config::load_str(yaml, "fuzz.yaml").expect("valid rules");
        Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"))
    }))
}

fuzz_target!(|data: &[u8]| {
    match decode(data, "fuzz.pcapng", Some("lan")) {
        Ok(frames) => {
            let mut p = Pipeline::new(rules(), 64);
            for f in &frames {
                let in_port = u8::from(f.port != "lan");
                let _ = p.process_one(
                    f.ts_ns,
                    &Packet {
                        frame: &f.data,
                        in_port,
                    },
                );
            }
        }
        Err(e) => assert!(e.0.starts_with("fuzz.pcapng"), "{e}"),
    }
});
