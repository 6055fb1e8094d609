//! `recent` lists and `hashlimit` tables through the pipeline: shared state that outlives a
//! ruleset reload while a rule still names it (as the kernel keeps a table while the rules
//! naming it are replaced), and goes when none does.

mod common;

use std::sync::Arc;

use engine::pipeline::{Pipeline, Verdict};
use engine::ruleset::CompiledRuleset;
use engine::wire::build::Udp;

use common::{run, LAN, SEC};

/// The SSH recipe on DNS: the third new query from a source within 60 s is dropped; and a
/// per-source limit of one query a second (burst 1) on port 5353.
const LISTS: &str = r"
forward:
  policy: accept
  rules:
    - {proto: udp, dport: 53, recent: {set: dns}, action: continue}
    - {proto: udp, dport: 53, recent: {update: dns, seconds: 60, hitcount: 3}, action: drop}
    - {proto: udp, dport: 5353, hashlimit: {name: mdns, upto: 1/second, burst: 1, mode: [srcip]}, action: accept}
    - {proto: udp, dport: 5353, action: drop}
";

fn query(dport: u16, sport: u16) -> Vec<u8> {
    Udp::new(
        format!("10.10.0.2:{sport}").as_str(),
        format!("10.10.0.3:{dport}").as_str(),
    )
    .frame()
}

fn compile(
    yaml: &str,
    previous: Option<&CompiledRuleset>,
    generation: u32,
) -> Arc<CompiledRuleset> {
    let loaded = config::load_str(yaml, "lists.yaml").expect("valid");
    Arc::new(
        CompiledRuleset::compile_after(&loaded.ruleset, generation, previous).expect("compiles"),
    )
}

#[test]
fn lists_and_tables_outlive_a_reload_that_keeps_their_names() {
    let t = 100 * SEC;
    let first = compile(LISTS, None, 1);
    let mut p = Pipeline::new(Arc::clone(&first), 1024);
    // Two new DNS flows: listed twice; one mDNS query: the source's token taken.
    assert_eq!(
        run(&mut p, t, LAN, &query(53, 1000)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        run(&mut p, t, LAN, &query(53, 1001)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        run(&mut p, t, LAN, &query(5353, 2000)).verdict,
        Verdict::Accept
    );
    // The same rules reloaded: the third DNS flow is the third time, the second mDNS query
    // finds the bucket empty.
    let second = compile(LISTS, Some(&first), 2);
    p.set_rules(Arc::clone(&second));
    assert_eq!(run(&mut p, t, LAN, &query(53, 1002)).verdict, Verdict::Drop);
    assert_eq!(
        run(&mut p, t, LAN, &query(5353, 2001)).verdict,
        Verdict::Drop
    );
    // Rules naming neither: they go; named again, they start empty.
    let none = compile("forward: {policy: accept}\n", Some(&second), 3);
    let third = compile(LISTS, Some(&none), 4);
    p.set_rules(third);
    assert_eq!(
        run(&mut p, t, LAN, &query(53, 1003)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        run(&mut p, t, LAN, &query(5353, 2002)).verdict,
        Verdict::Accept
    );
}
