//! Rule hygiene warnings (the seed's advice, S5): accept ESTABLISHED first, do not accept
//! NEW on every port, drop INVALID when the policy accepts, and no rule hidden behind an
//! earlier one.
//!
//! Every check here is about a ruleset that already passed [`crate::validate`], so it may
//! assume, for instance, that `dport` comes with a protocol that has ports. Warnings never
//! stop a ruleset from loading.
//!
//! The shadowing check is sound but incomplete: it claims "rule B never fires" only when it
//! can show, field by field, that every packet B matches is matched by an earlier rule A.
//! Where a field is hard to compare (negated lists against plain ones, TCP flag tests that
//! differ) it says nothing.

use std::collections::BTreeMap;

use crate::chains;
use crate::diag::{Diagnostic, Pos};
use crate::matches::{Cidr, CtState, Icmp4Type, Icmp6Type, IcmpType, Match, PortName, PortRange};
use crate::proto::Proto;
use crate::ruleset::{Action, Family, Policy, Rule, Ruleset, Stage};
use crate::source_map::SourceMap;

/// The copy-paste fix for (a) and (d).
const ESTABLISHED_RULE: &str = "- {ctstate: [established, related], action: accept}";
const INVALID_RULE: &str = "- {ctstate: invalid, action: drop}";

/// Warnings for a valid ruleset, each at the rule it is about, in file order.
pub fn lint(r: &Ruleset, source: &SourceMap, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, stage) in r.stages() {
        shadowed(name, None, &stage.rules, source, file, &mut out);
        for (chain, rules) in &stage.chains {
            shadowed(name, Some(chain), rules, source, file, &mut out);
        }
        out.append(&mut chains::lint(name, stage, source, file));
    }
    established_first(&r.forward.rules, source, file, &mut out);
    new_on_every_port(&r.forward.rules, source, file, &mut out);
    invalid_dropped(r, source, file, &mut out);
    out.sort_by_key(|d| d.pos);
    out
}

// ---------------------------------------------------------------------------------------
// Conntrack states

/// The states a rule's `ctstate` admits, as a bit set over [`CtState`] (all five without
/// the key).
fn state_mask(r: &Rule) -> u8 {
    const ALL: u8 = (1 << CtState::ALL.len()) - 1;
    match &r.ctstate {
        None => ALL,
        Some(m) => {
            let listed = m.values.iter().fold(0u8, |acc, s| acc | 1 << (*s as u8));
            if m.negated {
                ALL & !listed
            } else {
                listed
            }
        }
    }
}

fn admits(r: &Rule, s: CtState) -> bool {
    state_mask(r) & (1 << (s as u8)) != 0
}

/// An `accept` rule that lets the first packet of a connection through.
fn accepts_new(r: &Rule) -> bool {
    r.action == Action::Accept && admits(r, CtState::New)
}

// ---------------------------------------------------------------------------------------
// (a) ESTABLISHED first

/// The first rule that accepts NEW packets must come after a rule that accepts
/// ESTABLISHED ones, or replies (and every packet after the first) pay for, and depend on,
/// the NEW rules.
fn established_first(rules: &[Rule], source: &SourceMap, file: &str, out: &mut Vec<Diagnostic>) {
    let Some(first_new) = rules.iter().position(accepts_new) else {
        return;
    };
    // A rule that names ESTABLISHED explicitly and accepts it; an unconstrained accept rule
    // is the NEW rule itself.
    let established_before = rules[..first_new].iter().any(|r| {
        r.action == Action::Accept && r.ctstate.is_some() && admits(r, CtState::Established)
    });
    if established_before {
        return;
    }
    out.push(
        Diagnostic::warning(
            file,
            source.rule_start(&format!("forward.rules.{first_new}")),
            format!(
                "rule {first_new} accepts NEW packets, but no earlier rule accepts ESTABLISHED traffic"
            ),
        )
        .with_hint(format!(
            "accept established (and related) traffic first: put `{ESTABLISHED_RULE}` at the top of forward.rules, so replies are accepted in both directions whatever the NEW rules say"
        )),
    );
}

// ---------------------------------------------------------------------------------------
// (c) NEW on every port

/// Whether a rule limits ports or ICMP types, or matches only protocols that have neither
/// (GRE, ESP, ...), where "every port" means nothing.
fn limits_ports(r: &Rule) -> bool {
    if r.dport.is_some()
        || r.sport.is_some()
        || r.ports.is_some()
        || r.icmp_type.is_some()
        || r.icmpv6_type.is_some()
    {
        return true;
    }
    r.proto.as_ref().is_some_and(|m| {
        !m.negated
            && m.values
                .iter()
                .all(|p| !p.has_ports() && *p != Proto::ICMP && *p != Proto::ICMPV6)
    })
}

fn new_on_every_port(rules: &[Rule], source: &SourceMap, file: &str, out: &mut Vec<Diagnostic>) {
    for (i, r) in rules.iter().enumerate() {
        if !accepts_new(r) || limits_ports(r) {
            continue;
        }
        let what = match &r.proto {
            Some(m)
                if !m.negated
                    && m.values
                        .iter()
                        .all(|p| *p == Proto::ICMP || *p == Proto::ICMPV6) =>
            {
                "every ICMP type"
            }
            _ => "every port",
        };
        out.push(
            Diagnostic::warning(
                file,
                source.rule_start(&format!("forward.rules.{i}")),
                format!("rule {i} is accepting NEW on {what}"),
            )
            .with_hint(
                "be careful with NEW (S5): name the services, e.g. `proto: tcp` with `dport: [22, 80]`, or `icmp_type: echo-request` for ping",
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------
// (d) INVALID under an accept policy

fn invalid_dropped(r: &Ruleset, source: &SourceMap, file: &str, out: &mut Vec<Diagnostic>) {
    if r.forward.policy != Policy::Accept {
        return;
    }
    let drops_invalid = r.forward.rules.iter().any(|rule| {
        matches!(rule.action, Action::Drop | Action::Reject)
            && rule.ctstate.is_some()
            && admits(rule, CtState::Invalid)
    });
    if drops_invalid {
        return;
    }
    // At the policy when it is written, else at the stage, else the top of the file.
    let pos = source
        .key("forward.policy")
        .or_else(|| source.key("forward"))
        .unwrap_or(Pos { line: 1, col: 1 });
    out.push(
        Diagnostic::warning(
            file,
            pos,
            "forward policy accept with INVALID not dropped: packets conntrack cannot place are forwarded",
        )
        .with_hint(format!(
            "add `{INVALID_RULE}` early in forward.rules, or set `policy: drop`"
        )),
    );
}

// ---------------------------------------------------------------------------------------
// (b) Shadowed rules

fn shadowed(
    stage: &str,
    chain: Option<&str>,
    rules: &[Rule],
    source: &SourceMap,
    file: &str,
    out: &mut Vec<Diagnostic>,
) {
    let what = match chain {
        None => format!("{stage} rule"),
        Some(c) => format!("{stage} chain {c} rule"),
    };
    let start = |i: usize| source.rule_start(&Stage::rule_path(stage, chain, i));
    for (j, b) in rules.iter().enumerate() {
        // A jump comes back when the chain does not decide: it hides nothing after it.
        let Some(i) = rules[..j]
            .iter()
            .position(|a| !chains::falls_through(a) && covers_rule(a, b))
        else {
            continue;
        };
        let a = &rules[i];
        let line = start(i).line;
        let (message, hint) = if a.action == b.action {
            (
                format!(
                    "{what} {j} never fires; rule {i} at line {line} already matches all its packets (with the same action `{}`)",
                    a.action
                ),
                "the rule is redundant: remove it, or narrow the earlier rule".to_string(),
            )
        } else {
            (
                format!(
                    "{what} {j} never fires; rule {i} at line {line} already matches all its packets and does `{}` instead of `{}`",
                    a.action,
                    b.action
                ),
                format!(
                    "put specific rules before general ones: move rule {j} above rule {i}, or remove it"
                ),
            )
        };
        out.push(Diagnostic::warning(file, start(j), message).with_hint(hint));
    }
}

/// Whether every packet `b` matches is also matched by `a`.
fn covers_rule(a: &Rule, b: &Rule) -> bool {
    // A rate-limited rule lets the packets over its rate through to the next rules; a
    // match on each packet's own fields (length, TTL, ...) is not compared: such a rule is
    // taken to hide nothing.
    a.limit.is_none()
        && !a.has_packet_matches()
        && a.recent.is_none()
        && a.match_set.is_none()
        && a.hashlimit.is_none()
        && (a.mark.is_none() || a.mark == b.mark)
        && (a.connmark.is_none() || a.connmark == b.connmark)
        && family_covers(a, b)
        && covers_opt(a.in_port.as_ref(), b.in_port.as_ref(), &Names::of(a, b))
        && covers_out_port(a, b)
        && covers_opt(a.src.as_ref(), b.src.as_ref(), &cidr_iv)
        && covers_opt(a.dst.as_ref(), b.dst.as_ref(), &cidr_iv)
        && covers_opt(a.proto.as_ref(), b.proto.as_ref(), &|p: &Proto| {
            Iv::point(0, u128::from(p.0))
        })
        && covers_opt(a.sport.as_ref(), b.sport.as_ref(), &|p: &PortRange| {
            port_iv(*p)
        })
        && covers_opt(a.dport.as_ref(), b.dport.as_ref(), &|p: &PortRange| {
            port_iv(*p)
        })
        && ports_cover(a, b)
        && covers_opt(
            a.icmp_type.as_ref(),
            b.icmp_type.as_ref(),
            &|t: &Icmp4Type| icmp_iv(t.0),
        )
        && covers_opt(
            a.icmpv6_type.as_ref(),
            b.icmpv6_type.as_ref(),
            &|t: &Icmp6Type| icmp_iv(t.0),
        )
        && (a.tcp_flag_test().is_none() || a.tcp_flag_test() == b.tcp_flag_test())
        && state_mask(b) & !state_mask(a) == 0
        && (a.ctdir.is_none() || a.ctdir == b.ctdir)
}

fn covers_out_port(a: &Rule, b: &Rule) -> bool {
    covers_opt(a.out_port.as_ref(), b.out_port.as_ref(), &Names::of(a, b))
}

/// The family a rule pins ([`Rule::family_evidence`]). `with_negated` also reads negated
/// address lists: whether `{not: 10.0.0.0/8}` implies IPv4 is the engine's business, so the
/// shadowing check reads them for the earlier rule (fewer claims) and not for the later one
/// (never claim B is IPv4-only when it might not be).
fn pinned_family(r: &Rule, with_negated: bool) -> Option<Family> {
    r.family_evidence()
        .into_iter()
        .find(|e| with_negated || !e.negated)
        .map(|e| e.family)
}

fn family_covers(a: &Rule, b: &Rule) -> bool {
    match pinned_family(a, true) {
        None => true,
        Some(f) => {
            pinned_family(b, false) == Some(f)
                // A is pinned only by a negated list: either negation pins (then B's own
                // negated list pins B the same way) or it does not (then A has no family).
                || (pinned_family(a, false).is_none() && pinned_family(b, true) == Some(f))
        }
    }
}

/// `ports` matches when either side's port does; it covers the other rule's `ports`, or one
/// of its `sport`/`dport` (a packet whose dport is listed has a listed port).
fn ports_cover(a: &Rule, b: &Rule) -> bool {
    let Some(ap) = &a.ports else {
        return true;
    };
    if ap.negated {
        // `{not: L}`: neither port is in L. Only a negated `ports` of B says that of both.
        return b
            .ports
            .as_ref()
            .is_some_and(|bp| covers(ap, bp, &|p: &PortRange| port_iv(*p)));
    }
    [&b.ports, &b.sport, &b.dport].into_iter().any(|bm| {
        bm.as_ref()
            .is_some_and(|bm| covers(ap, bm, &|p: &PortRange| port_iv(*p)))
    })
}

/// An interval of values on one number line; `tag` separates lines that must not be
/// compared (IPv4 against IPv6, one ICMP type's codes against another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Iv {
    tag: u32,
    lo: u128,
    hi: u128,
}

impl Iv {
    fn point(tag: u32, v: u128) -> Iv {
        Iv { tag, lo: v, hi: v }
    }
}

fn cidr_iv(c: &Cidr) -> Iv {
    let (lo, hi) = c.range_u128();
    Iv {
        tag: u32::from(!c.is_v4()),
        lo,
        hi,
    }
}

fn port_iv(p: PortRange) -> Iv {
    Iv {
        tag: 0,
        lo: u128::from(p.lo),
        hi: u128::from(p.hi),
    }
}

fn icmp_iv(t: IcmpType) -> Iv {
    let (lo, hi) = t.code.map_or((0, 255), |c| (c, c));
    Iv {
        tag: u32::from(t.ty),
        lo: u128::from(lo),
        hi: u128::from(hi),
    }
}

/// Port names numbered, so that name lists compare like any other value list.
struct Names(BTreeMap<String, u128>);

impl Names {
    fn of(a: &Rule, b: &Rule) -> Names {
        let mut map = BTreeMap::new();
        for m in [&a.in_port, &a.out_port, &b.in_port, &b.out_port]
            .into_iter()
            .flatten()
        {
            for p in &m.values {
                let next = map.len() as u128;
                map.entry(p.0.clone()).or_insert(next);
            }
        }
        Names(map)
    }
}

/// How a value of a match becomes an interval.
trait ToIv<T> {
    fn iv(&self, v: &T) -> Iv;
}

impl<T, F: Fn(&T) -> Iv> ToIv<T> for F {
    fn iv(&self, v: &T) -> Iv {
        self(v)
    }
}

impl ToIv<PortName> for Names {
    fn iv(&self, v: &PortName) -> Iv {
        Iv::point(0, self.0.get(&v.0).copied().unwrap_or(u128::MAX))
    }
}

/// `a` covers `b` for one field, where an absent match matches everything.
fn covers_opt<T>(a: Option<&Match<T>>, b: Option<&Match<T>>, f: &dyn ToIv<T>) -> bool {
    match (a, b) {
        (None, _) => true,
        // B matches every value; A would have to as well, which a list rarely does (the
        // cases where it does, like `dport: 0-65535`, are not worth the risk).
        (Some(_), None) => false,
        (Some(a), Some(b)) => covers(a, b, f),
    }
}

/// Whether the values `b` matches are a subset of those `a` matches.
fn covers<T>(a: &Match<T>, b: &Match<T>, f: &dyn ToIv<T>) -> bool {
    let av: Vec<Iv> = a.values.iter().map(|v| f.iv(v)).collect();
    let bv: Vec<Iv> = b.values.iter().map(|v| f.iv(v)).collect();
    match (a.negated, b.negated) {
        // B ⊆ A.
        (false, false) => bv.iter().all(|x| within(*x, &av)),
        // not(B) ⊆ not(A) exactly when A ⊆ B.
        (true, true) => av.iter().all(|x| within(*x, &bv)),
        // B ⊆ not(A): B and A share no value.
        (true, false) => bv.iter().all(|x| av.iter().all(|y| disjoint(*x, *y))),
        // not(B) is nearly everything; A is a finite list.
        (false, true) => false,
    }
}

/// Whether `x` lies inside the union of `set` (intervals of one tag that touch or overlap
/// are merged first, so `[1-100, 101-200]` contains `50-150`).
fn within(x: Iv, set: &[Iv]) -> bool {
    let mut same: Vec<Iv> = set.iter().copied().filter(|y| y.tag == x.tag).collect();
    same.sort();
    let mut merged: Vec<Iv> = Vec::new();
    for y in same {
        match merged.last_mut() {
            Some(last) if y.lo <= last.hi.saturating_add(1) => last.hi = last.hi.max(y.hi),
            _ => merged.push(y),
        }
    }
    merged.iter().any(|m| m.lo <= x.lo && x.hi <= m.hi)
}

fn disjoint(x: Iv, y: Iv) -> bool {
    x.tag != y.tag || x.hi < y.lo || y.hi < x.lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).expect("test rule parses")
    }

    #[test]
    fn lists_cover_by_union() {
        let a = rule("{proto: tcp, dport: [1-100, 101-200], action: drop}");
        let b = rule("{proto: tcp, dport: 50-150, action: accept}");
        assert!(covers_rule(&a, &b));
        assert!(!covers_rule(&b, &a));
    }

    #[test]
    fn negation_is_conservative() {
        let a = rule("{src: {not: 10.0.0.0/8}, action: drop}");
        let b = rule("{src: 192.168.0.0/16, action: accept}");
        assert!(covers_rule(&a, &b));
        let b = rule("{src: 10.1.0.0/16, action: accept}");
        assert!(!covers_rule(&a, &b));
        let a = rule("{src: 10.0.0.0/8, action: drop}");
        let b = rule("{src: {not: 11.0.0.0/8}, action: accept}");
        assert!(!covers_rule(&a, &b));
        let a = rule("{src: {not: 10.1.0.0/16}, action: drop}");
        let b = rule("{src: {not: 10.0.0.0/8}, action: accept}");
        assert!(covers_rule(&a, &b));
    }

    #[test]
    fn families_and_ports_either_side() {
        let a = rule("{family: ipv4, action: drop}");
        assert!(covers_rule(&a, &rule("{src: 10.0.0.0/8, action: accept}")));
        assert!(!covers_rule(&a, &rule("{src: fd00::/8, action: accept}")));
        assert!(!covers_rule(&a, &rule("{action: accept}")));
        let a = rule("{proto: tcp, ports: [22, 80], action: drop}");
        assert!(covers_rule(
            &a,
            &rule("{proto: tcp, dport: 22, action: accept}")
        ));
        assert!(!covers_rule(
            &a,
            &rule("{proto: tcp, dport: 23, action: accept}")
        ));
    }

    #[test]
    fn states_compare_exactly() {
        let a = rule("{ctstate: {not: new}, action: accept}");
        assert!(covers_rule(
            &a,
            &rule("{ctstate: [established, related], action: accept}")
        ));
        assert!(!covers_rule(&a, &rule("{ctstate: [new], action: accept}")));
        let a = rule("{ctstate: [new, established, related, invalid, untracked], action: accept}");
        assert!(covers_rule(&a, &rule("{action: drop}")));
    }
}
