//! User-defined chains in the YAML model: how they are written and read back, the errors
//! iptables would give (unknown chain, loop) with their positions, and `check`'s warnings.

use config::ruleset::Action;
use config::{load_str, Diagnostic, Severity};

const GATEWAY: &str = "\
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, action: {jump: lan-in}}
    - {action: {goto: logdrop}}
  chains:
    lan-in:
      - {proto: tcp, dport: [22, 80, 443], action: accept}
      - {proto: udp, dport: 53, action: accept}
      - {action: return}
    logdrop:
      - {action: drop}
";

fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "t.yaml") {
        Ok(l) => panic!("expected errors, loaded with warnings {:#?}", l.warnings),
        Err(e) => e,
    }
}

fn warnings(text: &str) -> Vec<Diagnostic> {
    match load_str(text, "t.yaml") {
        Ok(l) => l.warnings,
        Err(e) => panic!("ruleset should be valid, got {e:#?}"),
    }
}

fn at(d: &Diagnostic) -> String {
    format!("{}:{}", d.pos.line, d.pos.col)
}

#[test]
fn a_gateway_with_chains_loads_and_round_trips() {
    let l = load_str(GATEWAY, "t.yaml").unwrap();
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    let f = &l.ruleset.forward;
    assert_eq!(f.rules[2].action, Action::Jump("lan-in".into()));
    assert_eq!(f.rules[3].action, Action::Goto("logdrop".into()));
    assert_eq!(f.chains["lan-in"][2].action, Action::Return);
    // Numbering: the main list, then the chains in name order.
    let numbered: Vec<(Option<&str>, usize)> = f.numbered().map(|(c, i, _)| (c, i)).collect();
    assert_eq!(numbered.len(), 8);
    assert_eq!(numbered[4], (Some("lan-in"), 0));
    assert_eq!(numbered[7], (Some("logdrop"), 0));
    assert_eq!(f.chain_offset("logdrop"), Some(7));
    // Written back as YAML, it reads as the same ruleset.
    let text = serde_yaml::to_string(&l.ruleset).unwrap();
    assert!(text.contains("jump: lan-in"), "{text}");
    assert!(text.contains("action: return"), "{text}");
    let again = load_str(&text, "again.yaml").unwrap();
    assert_eq!(again.ruleset, l.ruleset);
}

#[test]
fn a_jump_to_an_unknown_chain_is_an_error_at_its_action() {
    let es = errors(&GATEWAY.replace("{jump: lan-in}", "{jump: lan_in}"));
    assert_eq!(es.len(), 1, "{es:#?}");
    let e = &es[0];
    assert_eq!(at(e), "6:22", "{e}");
    assert!(
        e.message
            .contains("jump to unknown chain `lan_in` (did you mean `lan-in`?)"),
        "{e}"
    );
    assert!(
        e.hint.as_deref().unwrap().contains("lan-in, logdrop"),
        "{e}"
    );
}

#[test]
fn a_loop_is_an_error_that_names_it() {
    let text = "\
forward:
  rules:
    - {action: {jump: a}}
  chains:
    a:
      - {proto: tcp, action: {jump: b}}
    b:
      - {action: {goto: a}}
";
    let es = errors(text);
    assert_eq!(es.len(), 1, "{es:#?}");
    assert!(es[0].message.contains("a -> b -> a"), "{}", es[0]);
    assert!(
        es[0].hint.as_deref().unwrap().contains("ELOOP"),
        "{}",
        es[0]
    );
    assert_eq!(es[0].pos.line, 5, "{}", es[0]);
}

#[test]
fn chain_names_and_actions_are_checked_per_stage() {
    let text = "\
raw:
  rules:
    - {action: {jump: notrack-dns}}
  chains:
    notrack-dns:
      - {proto: udp, dport: 53, action: notrack}
      - {action: drop}
forward:
  rules:
    - {action: {jump: notrack-dns}}
  chains:
    bad.name:
      - {action: accept}
";
    let es = errors(text);
    let msgs: Vec<String> = es
        .iter()
        .map(|e| format!("{}: {}", at(e), e.message))
        .collect();
    assert_eq!(es.len(), 3, "{msgs:#?}");
    // A raw chain cannot drop; a forward rule cannot reach a raw chain; a name with a dot.
    assert!(
        msgs[0].starts_with("7:10: action `drop` is not allowed in the `raw` stage"),
        "{msgs:#?}"
    );
    assert!(
        msgs[1].starts_with("10:8: jump to unknown chain `notrack-dns`"),
        "{msgs:#?}"
    );
    assert!(
        msgs[2].starts_with("12:5: invalid chain name `bad.name`"),
        "{msgs:#?}"
    );
}

#[test]
fn jump_and_goto_need_a_chain_name() {
    let es = errors("forward:\n  rules:\n    - {action: jump}\n");
    assert_eq!(es.len(), 1, "{es:#?}");
    assert!(
        es[0].message.contains("write `action: {jump: CHAIN}`"),
        "{}",
        es[0]
    );
    let es = errors("forward:\n  rules:\n    - {action: {call: x}}\n");
    assert!(
        es[0].message.contains("unknown variant `call`"),
        "{}",
        es[0]
    );
}

#[test]
fn check_warns_of_an_unreachable_chain_and_return_in_the_main_list() {
    let text = "\
forward:
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {proto: tcp, dport: 22, action: return}
  chains:
    spare:
      - {action: accept}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 2, "{ws:#?}");
    assert!(ws.iter().all(|w| w.severity == Severity::Warning));
    assert!(
        ws[0].message.contains("`return` in forward.rules"),
        "{}",
        ws[0]
    );
    assert_eq!(at(&ws[0]), "5:7");
    assert!(
        ws[1].message.contains("chain `spare` is never reached"),
        "{}",
        ws[1]
    );
    assert_eq!(at(&ws[1]), "7:5");
}

#[test]
fn a_jump_hides_nothing_after_it_but_a_goto_does() {
    let text = "\
forward:
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {action: {jump: a}}
    - {proto: tcp, dport: 22, action: accept}
  chains:
    a:
      - {action: {goto: b}}
      - {proto: udp, action: drop}
    b:
      - {proto: tcp, action: return}
";
    let ws = warnings(text);
    assert_eq!(ws.len(), 1, "{ws:#?}");
    assert!(
        ws[0]
            .message
            .starts_with("forward chain a rule 1 never fires"),
        "{}",
        ws[0]
    );
    assert_eq!(at(&ws[0]), "10:9");
}
