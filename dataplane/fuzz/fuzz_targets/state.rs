//! A state file read back (`state::read::Reader`, what `statewall run --state` does at start
//! with whatever file it finds), on arbitrary bytes. Two shapes: the input as a whole file
//! (the header's checks: magic, version, CRC, fingerprint, geometry, length), and the input
//! as the body of a file under a valid header (first byte: shards and clean flag), so that
//! every slot and expectation record is decoded from fuzzed bytes. Never a panic; every live
//! entry the reader gives is one the table takes or refuses with a reason (as the runtime's
//! restore does), every live expectation one the expectation table takes; traffic then runs
//! over the restored table, and once every timeout has passed the table is empty.
//!
//! Run: `scripts/fuzz.sh state`.
#![no_main]

use std::sync::{Arc, OnceLock};

use engine::conntrack::expect::SharedExpectations;
use engine::conntrack::save::{adopt, Adopted};
use engine::pipeline::{Packet, Pipeline};
use engine::ruleset::CompiledRuleset;
use engine::state::read::{Reader, Rebase, SlotRead};
use engine::state::{data_crc, Geometry, Header, HEADER_SIZE};
use engine::wire::build::{Tcp, Udp};
use libfuzzer_sys::fuzz_target;

const S: u64 = 1_000_000_000;
const EPOCH: u64 = 1_700_000_000 * S;

fn rules() -> Arc<CompiledRuleset> {
    static R: OnceLock<Arc<CompiledRuleset>> = OnceLock::new();
    Arc::clone(R.get_or_init(|| {
        let yaml = "
helpers: {ftp: {ports: [21]}}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, action: accept}
";
        let loaded = config::load_str(yaml, "fuzz.yaml").expect("valid rules");
        Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"))
    }))
}

fn restore(file: &[u8]) {
    let Ok(r) = Reader::new(file) else {
        return;
    };
    // The reader's clock: engine time 10 s, started 5 s after the writer's.
    let now = 10 * S;
    let to = Rebase {
        now,
        epoch_unix_ns: EPOCH + 5 * S,
    };
    let expect = Arc::new(SharedExpectations::new(4));
    let mut p = Pipeline::with_expectations(rules(), 8, Arc::clone(&expect));
    let mut taken = 0;
    for s in r.slots(to) {
        match s {
            SlotRead::Live(e) => {
                assert!(e.expires > now);
                match adopt(p.shard_mut(), e, now) {
                    Ok(Adopted::Added) => taken += 1,
                    Ok(_) => {}
                    Err(why) => assert!(!why.is_empty()),
                }
            }
            SlotRead::Expired => {}
            SlotRead::Corrupt(why) => assert!(!why.is_empty()),
        }
    }
    assert!(taken <= 8 && p.shard().len() == taken);
    let (list, _bad) = r.expectations(to);
    for x in list {
        assert!(x.expires > now);
        let _ = expect.add(x, now);
    }
    // Traffic over what was restored.
    let frames = [
        Tcp::new("10.0.0.2:40000", "10.0.0.3:80", 0x10).frame(),
        Tcp::new("10.0.0.3:80", "10.0.0.2:40000", 0x18).frame(),
        Udp::new("10.0.0.2:5000", "10.0.0.3:53").frame(),
        Tcp::new("[fd00::2]:40000", "[fd00::3]:21", 0x02).frame(),
    ];
    for (i, f) in frames.iter().enumerate() {
        let _ = p.process_one(
            now + i as u64,
            &Packet {
                frame: f,
                in_port: (i % 2) as u8,
            },
        );
    }
    // Past the longest timeout anything can carry (2^32 s: what a file may hold after a
    // `conntrack -R` or a sync peer's entry; longer is refused as corrupt), everything has
    // expired.
    let later = now + engine::state::read::MAX_TIMEOUT_NS + S;
    p.expire(later, usize::MAX);
    assert_eq!(p.shard().len(), 0, "entries outlived every timeout");
}

fuzz_target!(|data: &[u8]| {
    restore(data);
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let header = Header {
        geometry: Geometry {
            shards: 1 + u32::from(ctl & 1),
            slots_per_shard: 4,
            expect_max: 4,
        },
        epoch_unix_ns: EPOCH,
        clean: None,
    };
    let mut file = vec![0u8; header.geometry.file_len()];
    let n = body.len().min(file.len() - HEADER_SIZE);
    file[HEADER_SIZE..HEADER_SIZE + n].copy_from_slice(&body[..n]);
    let header = Header {
        clean: (ctl & 2 != 0).then(|| data_crc(&file)),
        ..header
    };
    header.write(&mut file);
    restore(&file);
});
