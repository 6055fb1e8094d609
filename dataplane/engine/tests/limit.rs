//! Rate limits (`limit:`, iptables' `-m limit`) through the pipeline: a packet over the rate
//! does not match the rule and goes on to the next; the verdict cache never answers for a
//! rule with a limit; every worker takes from the rule's one bucket.

mod common;

use std::sync::Arc;

use engine::pipeline::{Outcome, Pipeline, Verdict};
use engine::wire::build::Udp;

use common::{run, LAN, SEC, WAN};

/// DNS queries within 2/second, burst 3; established traffic within 1/second, burst 2 (so
/// a flow's packets cannot ride the verdict cache past it); a catch-all drop after both.
const LIMITED: &str = r"
forward:
  policy: accept
  rules:
    - {ctstate: established, limit: {rate: 1/second, burst: 2}, action: accept}
    - {ctstate: established, action: drop, comment: over the rate}
    - {proto: udp, dport: 53, limit: {rate: 2/second, burst: 3}, action: accept}
    - {proto: udp, dport: 53, action: reject, comment: over the rate}
";

fn query(sport: u16) -> Vec<u8> {
    Udp::new(format!("10.10.0.2:{sport}").as_str(), "10.10.0.3:53").frame()
}

#[test]
fn over_the_rate_the_next_rule_decides() {
    let rules = common::compile_yaml(LIMITED, "limit.yaml", 1);
    let mut p = Pipeline::new(rules, 1024);
    let t0 = 100 * SEC;
    // A burst of 3 new queries at once, then the fourth falls through to the reject.
    let rule_of = |o: &Outcome| (o.verdict, o.rule);
    let got: Vec<_> = (0..4)
        .map(|i| rule_of(&run(&mut p, t0, LAN, &query(40_000 + i))))
        .collect();
    assert_eq!(
        got,
        [
            (Verdict::Accept, Some(2)),
            (Verdict::Accept, Some(2)),
            (Verdict::Accept, Some(2)),
            (Verdict::Drop, Some(3))
        ]
    );
    // Half a second later one token is back.
    let o = run(&mut p, t0 + SEC / 2, LAN, &query(40_010));
    assert_eq!(rule_of(&o), (Verdict::Accept, Some(2)));
    let o = run(&mut p, t0 + SEC / 2, LAN, &query(40_011));
    assert_eq!(rule_of(&o), (Verdict::Drop, Some(3)));
}

#[test]
fn the_verdict_cache_never_answers_for_a_limited_rule() {
    let rules = common::compile_yaml(LIMITED, "limit.yaml", 1);
    let mut p = Pipeline::new(rules, 1024);
    let t0 = 100 * SEC;
    let q = query(41_000);
    let a = Udp::new("10.10.0.3:53", "10.10.0.2:41000").frame();
    assert_eq!(run(&mut p, t0, LAN, &q).verdict, Verdict::Accept);
    // Established replies: two within the burst, then over the rate, every one of them
    // classified (never cached), until a second has passed.
    let verdicts: Vec<(Verdict, bool)> = (0..4)
        .map(|_| {
            let o = run(&mut p, t0 + 1, WAN, &a);
            (o.verdict, o.cached)
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Accept, false),
            (Verdict::Accept, false),
            (Verdict::Drop, false),
            (Verdict::Drop, false)
        ]
    );
    assert_eq!(run(&mut p, t0 + 1 + SEC, WAN, &a).verdict, Verdict::Accept);
}

#[test]
fn workers_share_a_rule_s_bucket() {
    let rules = common::compile_yaml(LIMITED, "limit.yaml", 1);
    let mut workers = [
        Pipeline::new(Arc::clone(&rules), 1024),
        Pipeline::new(rules, 1024),
    ];
    let t0 = 100 * SEC;
    let accepted = (0..10)
        .filter(|i| {
            let w = &mut workers[*i as usize % 2];
            run(w, t0, LAN, &query(42_000 + i)).verdict == Verdict::Accept
        })
        .count();
    assert_eq!(accepted, 3, "the burst is the rule's, not each worker's");
}
