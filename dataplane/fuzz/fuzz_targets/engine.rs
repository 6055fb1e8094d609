//! The whole engine on arbitrary traffic: a sequence of frames (split from the input) through a
//! pipeline with the FTP helper on, two ports, a tiny table (so early drop and table-full run),
//! and a clock that moves with the input, every packet logged with all the extras (the log
//! line written for arbitrary frames). Nothing may panic; every verdict is well-formed.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run engine`.
#![no_main]

use std::sync::{Arc, OnceLock};

use engine::pipeline::{Packet, Pipeline, Verdict};
use engine::ruleset::CompiledRuleset;
use libfuzzer_sys::fuzz_target;

const RULES: &str = "
helpers: {ftp: {ports: [21]}}
conntrack: {max: 16, tcp_loose: 1}
forward:
  policy: drop
  rules:
    - {action: log, log: {prefix: 'fuzz: ', tcp_sequence: true, tcp_options: true, ip_options: true}}
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: [21, 80], ctstate: new, action: accept}
    - {in_port: lan, proto: udp, action: accept}
    - {proto: icmp, action: accept}
    - {proto: icmpv6, action: accept}
";

fn rules() -> Arc<CompiledRuleset> {
    static R: OnceLock<Arc<CompiledRuleset>> = OnceLock::new();
    Arc::clone(R.get_or_init(|| {
        let loaded = config::load_str(RULES, "fuzz.yaml").expect("valid rules");
        Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"))
    }))
}

fuzz_target!(|data: &[u8]| {
    let mut p = Pipeline::new(rules(), 16);
    let mut now = 0u64;
    // Records: [port/time byte][len byte][len bytes of frame].
    let mut rest = data;
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (frame, tail) = rest.split_at(take);
        rest = tail;
        now += u64::from(ctl >> 1) * 1_000_000_000;
        let o = p.process_one(
            now,
            &Packet {
                frame,
                in_port: ctl & 1,
            },
        );
        if o.verdict == Verdict::Accept {
            assert!(o.out_port.is_some());
        }
        let rules = p.rules().clone();
        for r in p.log.drain() {
            assert!(rules.log_line(r).starts_with("fuzz: IN="));
        }
        p.expire(now, 4);
    }
});
