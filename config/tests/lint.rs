//! Rule-hygiene warnings (S5): each at the rule it is about, with a hint.

use config::{load_str, Diagnostic, Severity};

fn warnings(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "t.yaml") {
        Ok(l) => l.warnings,
        Err(e) => panic!("ruleset should be valid, got {e:#?}"),
    }
}

/// The one warning whose message contains `needle`.
fn one<'a>(ws: &'a [Diagnostic], needle: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = ws.iter().filter(|w| w.message.contains(needle)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one warning with {needle:?} in {ws:#?}"
    );
    assert_eq!(found[0].severity, Severity::Warning);
    found[0]
}

fn at(d: &Diagnostic) -> String {
    format!("{}:{}", d.pos.line, d.pos.col)
}

fn hint(d: &Diagnostic) -> &str {
    d.hint.as_deref().unwrap_or("")
}

const GATEWAY: &str = "\
forward:
  policy: drop
  rules:
    - ctstate: [established, related]
      action: accept
    - ctstate: invalid
      action: drop
    - proto: tcp
      dport: [22, 80]
      ctstate: new
      action: accept
";

#[test]
fn good_gateway_has_no_warnings() {
    assert_eq!(warnings(GATEWAY), vec![]);
}

#[test]
fn shipped_examples_have_no_warnings() {
    for (name, text) in [
        ("minimal", include_str!("../../examples/minimal.yaml")),
        (
            "seed-multiport",
            include_str!("../../examples/seed-multiport.yaml"),
        ),
        (
            "gateway-tools",
            include_str!("../../examples/gateway-tools.yaml"),
        ),
    ] {
        let ws = warnings(text);
        assert!(ws.is_empty(), "{name}: {ws:#?}");
    }
}

#[test]
fn established_not_accepted_first() {
    let text = "\
forward:
  policy: drop
  rules:
    - ctstate: invalid
      action: drop
    - proto: tcp
      dport: 22
      ctstate: new
      action: accept
    - ctstate: [established, related]
      action: accept
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    let w = one(
        &ws,
        "rule 1 accepts NEW packets, but no earlier rule accepts ESTABLISHED traffic",
    );
    assert_eq!(at(w), "6:7");
    assert!(
        hint(w).contains("accept established (and related) traffic first"),
        "{w}"
    );
}

#[test]
fn an_accept_without_ctstate_accepts_new() {
    // No ctstate: the rule accepts NEW (and everything else) for port 22.
    let text = "\
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {proto: tcp, dport: 22, action: accept}
";
    let ws = warnings(text);
    assert_eq!(at(one(&ws, "rule 1 accepts NEW packets")), "5:7");
}

#[test]
fn shadowed_rule_with_other_action() {
    let text = "\
forward:
  policy: drop
  rules:
    - ctstate: [established, related]
      action: accept
    - ctstate: invalid
      action: drop
    - proto: tcp
      dport: [22, 80]
      ctstate: new
      action: accept
    - proto: tcp
      src: 10.0.0.0/8
      dport: 22
      ctstate: new
      action: drop
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    let w = one(&ws, "never fires");
    assert_eq!(
        w.message,
        "forward rule 3 never fires; rule 2 at line 8 already matches all its packets and does `accept` instead of `drop`"
    );
    assert_eq!(at(w), "12:7");
    assert!(hint(w).contains("move rule 3 above rule 2"), "{w}");
}

#[test]
fn shadowed_rule_with_same_action_in_flow_style() {
    let text = "\
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {ctstate: {not: [new, established, related, untracked]}, action: drop}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    let w = one(
        &ws,
        "forward rule 2 never fires; rule 1 at line 5 already matches all its packets (with the same action `drop`)",
    );
    assert_eq!(at(w), "6:7");
    assert!(hint(w).contains("redundant"), "{w}");
}

#[test]
fn shadowing_through_lists_ranges_and_multiport() {
    let text = "\
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {proto: [tcp, udp], dport: [1-1023, 1024-2000], action: drop}
    - {proto: tcp, dport: 1000-1100, src: 10.0.0.0/8, action: reject}
    - {proto: tcp, ports: [8000-8100], action: drop}
    - {proto: tcp, sport: 8080, dport: 9999, action: drop}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 2, "{ws:#?}");
    assert_eq!(at(one(&ws, "rule 3 never fires; rule 2 at line 6")), "7:7");
    assert_eq!(at(one(&ws, "rule 5 never fires; rule 4 at line 8")), "9:7");
}

#[test]
fn no_shadowing_claims_when_unsure() {
    let text = "\
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {proto: tcp, syn: true, dport: 22, action: drop}
    - {proto: tcp, dport: 22, action: drop}
    - {src: {not: 10.0.0.0/8}, proto: tcp, dport: 80, action: drop}
    - {src: 10.1.0.0/16, proto: tcp, dport: 80, action: drop}
    - {src: 10.0.0.0/8, proto: tcp, dport: 81, action: drop}
    - {src: {not: 11.0.0.0/8}, proto: tcp, dport: 81, action: drop}
    - {family: ipv4, proto: udp, dport: 53, action: drop}
    - {proto: udp, dport: 53, action: drop}
    - {in_port: lan, proto: udp, dport: 54, action: drop}
    - {in_port: wan, proto: udp, dport: 54, action: drop}
    - {proto: tcp, ports: {not: 443}, action: drop}
    - {proto: tcp, dport: 444, action: drop}
    - {src: {not: 10.0.0.0/8}, proto: tcp, dport: 82, action: drop}
    - {src: fd00::/8, proto: tcp, dport: 82, action: drop}
";
    assert_eq!(warnings(text), vec![]);
}

#[test]
fn negated_lists_shadow_when_certain() {
    let text = "\
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {src: {not: 10.0.0.0/8}, proto: tcp, dport: 80, action: drop}
    - {src: [192.168.0.0/16, 172.16.0.0/12], proto: tcp, dport: 80, action: drop}
    - {dst: {not: 10.1.0.0/16}, proto: udp, action: drop}
    - {dst: {not: 10.0.0.0/8}, proto: udp, action: drop}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 2, "{ws:#?}");
    assert_eq!(at(one(&ws, "rule 3 never fires; rule 2 at line 6")), "7:7");
    assert_eq!(at(one(&ws, "rule 5 never fires; rule 4 at line 8")), "9:7");
}

#[test]
fn shadowing_in_the_raw_stage() {
    let text = "\
raw:
  rules:
    - {proto: udp, action: notrack}
    - {proto: udp, dport: 53, action: notrack}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    assert_eq!(
        at(one(
            &ws,
            "raw rule 1 never fires; rule 0 at line 3 already matches all its packets"
        )),
        "4:7"
    );
}

#[test]
fn new_accepted_on_every_port() {
    let text = "\
forward:
  policy: drop
  rules:
    - ctstate: [established, related]
      action: accept
    - in_port: lan
      ctstate: new
      action: accept
    - proto: gre
      action: accept
    - proto: icmp
      ctstate: new
      action: accept
    - proto: udp
      dport: 53
      ctstate: new
      action: accept
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 2, "{ws:#?}");
    let w = one(&ws, "rule 1 is accepting NEW on every port");
    assert_eq!(at(w), "6:7");
    assert!(hint(w).contains("dport"), "{w}");
    assert_eq!(
        at(one(&ws, "rule 3 is accepting NEW on every ICMP type")),
        "11:7"
    );
}

#[test]
fn policy_accept_without_invalid_drop() {
    let text = "\
forward:
  policy: accept
  rules:
    - ctstate: [established, related]
      action: accept
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    let w = one(&ws, "policy accept with INVALID not dropped");
    assert_eq!(at(w), "2:3");
    assert!(
        hint(w).contains("add `- {ctstate: invalid, action: drop}` early"),
        "{w}"
    );

    // The default policy is accept: the warning goes to the stage, or the file's top.
    let ws =
        warnings("forward:\n  rules:\n    - {ctstate: [established, related], action: accept}\n");
    assert_eq!(
        at(one(&ws, "policy accept with INVALID not dropped")),
        "1:1"
    );
    let ws = warnings("helpers:\n  ftp: {ports: [21]}\n");
    assert_eq!(
        at(one(&ws, "policy accept with INVALID not dropped")),
        "1:1"
    );

    // Dropped (here by a negated set that includes invalid): no warning.
    let text = "\
forward:
  policy: accept
  rules:
    - {ctstate: {not: [new, established, related, untracked]}, action: drop}
";
    assert_eq!(warnings(text), vec![]);
}

#[test]
fn warnings_come_in_file_order() {
    let text = "\
forward:
  rules:
    - {proto: tcp, dport: 22, action: accept}
    - {proto: tcp, dport: 22, action: drop}
    - {ctstate: new, action: accept}
";
    let ws = warnings(text);
    let got: Vec<String> = ws
        .iter()
        .map(|w| format!("{} {}", at(w), w.message))
        .collect();
    assert_eq!(ws.len(), 4, "{got:#?}");
    assert!(ws.windows(2).all(|p| p[0].pos <= p[1].pos), "{got:#?}");
    assert_eq!(at(one(&ws, "policy accept")), "1:1");
    assert_eq!(at(one(&ws, "rule 0 accepts NEW")), "3:7");
    assert_eq!(at(one(&ws, "rule 1 never fires; rule 0 at line 3")), "4:7");
    assert_eq!(at(one(&ws, "rule 2 is accepting NEW on every port")), "5:7");
}

#[test]
fn warnings_display_with_position_and_hint() {
    let ws = warnings("forward:\n  policy: accept\n");
    let shown = ws[0].to_string();
    assert!(
        shown.starts_with("t.yaml:2:3: warning: forward policy accept with INVALID not dropped"),
        "{shown}"
    );
    assert!(shown.contains("\n  hint: "), "{shown}");
}
