//! How long a start takes to restore the state file (bench/RESULTS.md, "Restart"): fill
//! tables of N established TCP connections over W shards in a state file, stop (cleanly, or
//! as `kill -9` leaves the file), then time what `Runtime::start` does with it — open the
//! old file, check it (the CRC after a clean stop, every slot after a crash), adopt each live
//! entry into its owner shard of a new file, rename it over the old.
//!
//!   cargo run --release -p statewall-dataplane --example state_restore -- \
//!       [ENTRIES [WORKERS [DIR]]]      (default 1000000 2 /run/statewall-bench)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dataplane::runtime::state::{ShardSlab, StateFile};
use engine::conntrack::entry::{status, Entry};
use engine::conntrack::expect::SharedExpectations;
use engine::conntrack::tcp::state as tcp_state;
use engine::conntrack::{Shard, Sysctls};
use engine::flow::{owner, FlowKey};
use engine::packet::{v4_mapped, IpFamily};
use engine::state::Geometry;

const S: u64 = 1_000_000_000;

fn entry(i: u32) -> Entry {
    let b = i.to_be_bytes();
    let mut e = Entry::new(FlowKey::new(
        IpFamily::V4,
        v4_mapped([10, b[1], b[2], b[3]]),
        v4_mapped([192, 0, 2, 1]),
        6,
        1024 + (i % 60000) as u16,
        80,
    ));
    e.expires = 432_000 * S;
    e.status = status::SEEN_REPLY | status::ASSURED;
    e.tcp.state = tcp_state::ESTABLISHED;
    e.tcp.seen[0].td_end = i;
    e.tcp.seen[0].td_maxend = i.wrapping_add(65535);
    e.tcp.seen[0].td_maxwin = 65535;
    e.tcp.seen[1] = e.tcp.seen[0];
    e
}

/// One "process": open the state, restore it into fresh shards, optionally fill them, stop.
/// Returns the restore's report and the time from open to renamed.
fn process(
    path: &std::path::Path,
    g: Geometry,
    fill: u32,
    clean: bool,
) -> (dataplane::runtime::state::RestoreReport, f64) {
    let t0 = Instant::now();
    let mut opened = StateFile::open(Some(path), g, S).expect("open the state file");
    let expect = Arc::new(SharedExpectations::new(g.expect_max as usize));
    let mut shards: Vec<Shard<ShardSlab>> = std::mem::take(&mut opened.slabs)
        .into_iter()
        .map(|s| Shard::with_slab(s, Sysctls::default(), &[21], Arc::clone(&expect)))
        .collect();
    let n = shards.len();
    let (mut state, report) = opened
        .restore(S, &expect, |e| {
            shards[owner(e.key.symmetric_hash(), n)].adopt(e)
        })
        .expect("restore");
    let took = t0.elapsed().as_secs_f64() * 1e3;
    for i in 0..fill {
        let e = entry(i);
        shards[owner(e.key.symmetric_hash(), n)]
            .adopt(e)
            .expect("room for the entry");
    }
    drop(shards);
    if clean {
        assert!(state.close_clean(&expect));
    }
    (report, took)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let entries: u32 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("ENTRIES"));
    let workers: u32 = args.next().map_or(2, |a| a.parse().expect("WORKERS"));
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/run/statewall-bench".into()));
    std::fs::create_dir_all(&dir).expect("create the directory");
    let path = dir.join("state");
    let _ = std::fs::remove_file(&path);
    let g = Geometry {
        shards: workers,
        slots_per_shard: (entries / workers) * 5 / 4 + 1024,
        expect_max: 1024,
    };
    println!(
        "state_restore: {entries} entries, {workers} shards, file {} MiB in {}",
        g.file_len() >> 20,
        dir.display()
    );
    process(&path, g, entries, true);
    for (stop, clean) in [("clean stop", true), ("crash (kill -9)", false)] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            // The first process leaves the file as the stop under test does; the second is
            // the start being timed.
            process(&path, g, 0, clean);
            let (r, ms) = process(&path, g, 0, clean);
            assert_eq!(r.restored, entries as usize, "{}", r.line());
            assert_eq!(r.clean, clean);
            best = best.min(ms);
        }
        println!("  after a {stop}: restored {entries} in {best:.1} ms (best of 3)");
    }
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(dir.join("state.lock")).ok();
}
