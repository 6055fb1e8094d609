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
