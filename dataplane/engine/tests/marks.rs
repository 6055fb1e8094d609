//! Packet and connection marks through the pipeline: the mangle stage marks a connection on
//! its first packet, later packets of it (both directions) carry the mark, the forward stage
//! decides on it, the listing shows it; a packet mark set in raw is seen by mangle.

mod common;

use std::sync::Arc;

use engine::pipeline::{Pipeline, StageId, Verdict};
use engine::ruleset::CompiledRuleset;
use engine::wire::build::Udp;

use common::{run, LAN, SEC, WAN};

const MARKS: &str = r"
raw:
  rules:
    - {proto: udp, dport: 53, action: {mark: 0x5}}
mangle:
  policy: accept
  rules:
    - {mark: 0x5, ctstate: new, action: {connmark: 0x100/0xf00}}
    - {connmark: 0x100/0xf00, action: restore_mark}
    - {proto: udp, dport: 9, action: drop}
forward:
  policy: drop
  rules:
    - {connmark: 0x100/0xf00, mark: 0x100, action: accept}
    - {ctstate: new, in_port: lan, proto: udp, dport: 54, action: accept}
";

fn udp(src: &str, dst: &str) -> Vec<u8> {
    Udp::new(src, dst).frame()
}

#[test]
fn a_connection_marked_in_mangle_is_decided_by_its_mark() {
    let loaded = config::load_str(MARKS, "marks.yaml").expect("valid");
    let rules = Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"));
    assert!(rules.uses_ct_mark);
    let mut p = Pipeline::new(rules, 64);
    let t = 10 * SEC;
    // DNS: marked 0x5 in raw, so its connection gets 0x100; restored, forward accepts.
    let q = udp("10.10.0.2:4000", "10.10.0.3:53");
    assert_eq!(run(&mut p, t, LAN, &q).verdict, Verdict::Accept);
    let a = udp("10.10.0.3:53", "10.10.0.2:4000");
    assert_eq!(run(&mut p, t, WAN, &a).verdict, Verdict::Accept);
    // Port 54: no mark, accepted as NEW by its own rule; its reply has no rule (mark 0).
    let q54 = udp("10.10.0.2:4001", "10.10.0.3:54");
    assert_eq!(run(&mut p, t, LAN, &q54).verdict, Verdict::Accept);
    let a54 = udp("10.10.0.3:54", "10.10.0.2:4001");
    assert_eq!(run(&mut p, t, WAN, &a54).verdict, Verdict::Drop);
    // The mangle stage's drop.
    let o = run(&mut p, t, LAN, &udp("10.10.0.2:4002", "10.10.0.3:9"));
    assert_eq!((o.verdict, o.stage), (Verdict::Drop, StageId::Mangle));
    let mut lines: Vec<String> = p
        .shard()
        .entries()
        .map(|e| engine::conntrack::listing::format_entry(e, t))
        .collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("dport=53 ") && lines[0].ends_with("mark=256 use=1"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with("mark=0 use=1"), "{lines:?}");
}

/// mangle PREROUTING and mangle FORWARD as two stages: an accept in `mangle` ends it only,
/// `mangle_forward` still runs; its drop is its own.
#[test]
fn mangle_forward_runs_after_an_accept_in_mangle() {
    let yaml = r"
mangle:
  rules:
    - {proto: udp, dport: 7, action: accept}
    - {action: {mark: 0x1}}
mangle_forward:
  policy: drop
  rules:
    - {proto: udp, dport: 8, action: {mark: 0x2/0x2}}
    - {proto: udp, action: accept}
forward:
  policy: drop
  rules:
    - {mark: 0x0, dport: 7, proto: udp, action: accept}
    - {mark: 0x3, action: accept}
";
    let loaded = config::load_str(yaml, "m.yaml").expect("valid");
    let rules = Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"));
    let mut p = Pipeline::new(rules, 64);
    let t = 10 * SEC;
    // Port 7: accepted by mangle before its mark rule, then mangle_forward accepts it.
    let o = run(&mut p, t, LAN, &udp("10.10.0.2:4000", "10.10.0.3:7"));
    assert_eq!((o.verdict, o.stage), (Verdict::Accept, StageId::Forward));
    // Port 8: marked 0x1 in mangle, 0x3 in mangle_forward.
    let o = run(&mut p, t, LAN, &udp("10.10.0.2:4001", "10.10.0.3:8"));
    assert_eq!((o.verdict, o.stage), (Verdict::Accept, StageId::Forward));
    // TCP: mangle_forward's policy drops it.
    let syn = engine::wire::build::Tcp::new(
        "10.10.0.2:4002",
        "10.10.0.3:80",
        engine::packet::tcp_flags::SYN,
    )
    .frame();
    let o = run(&mut p, t, LAN, &syn);
    assert_eq!(
        (o.verdict, o.stage),
        (Verdict::Drop, StageId::MangleForward)
    );
}

/// The mark actions' packets are counted per rule until drained (the runtime adds them to the
/// rules' counters).
#[test]
fn mark_actions_are_counted_per_rule() {
    let loaded = config::load_str(MARKS, "marks.yaml").expect("valid");
    let rules = Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"));
    let mut p = Pipeline::new(rules, 64);
    let q = udp("10.10.0.2:4000", "10.10.0.3:53");
    let a = udp("10.10.0.3:53", "10.10.0.2:4000");
    run(&mut p, SEC, LAN, &q);
    run(&mut p, SEC, WAN, &a);
    assert!(!p.passes.is_empty());
    let mut got = Vec::new();
    p.passes
        .drain(|stage, rule, packets, bytes| got.push((stage, rule, packets, bytes)));
    got.sort_by_key(|g| (g.0 as u8, g.1));
    let len = q.len() as u64;
    assert_eq!(
        got,
        [
            // raw marks the query; mangle marks its connection once and restores both.
            (StageId::Raw, 0, 1, len),
            (StageId::Mangle, 0, 1, len),
            (StageId::Mangle, 1, 2, 2 * len),
        ]
    );
    assert!(p.passes.is_empty());
}
