//! A naive matcher written straight from the match semantics on the configuration types,
//! independent of the compiled form. Tests compare the classifier against it; it is slow
//! (it compares port names as strings) and not for the packet path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use config::chains::MAX_DEPTH;
use config::matches::{Cidr, Proto};
use config::ruleset::{Action, Family, Rule, Stage};

use super::Key;
use crate::packet::IpFamily;

/// The family a rule is restricted to: explicit, or implied by its addresses, ICMP matches
/// or a protocol list of only icmp / only icmpv6. `Err` when two of those disagree.
fn rule_family(rule: &Rule) -> Result<Option<Family>, ()> {
    let mut found: Option<Family> = None;
    let mut conflict = false;
    let mut add = |f: Family| {
        conflict |= found.is_some_and(|g| g != f);
        found = Some(f);
    };
    if let Some(f) = rule.family {
        add(f);
    }
    for m in [&rule.src, &rule.dst].into_iter().flatten() {
        // A list of one family implies it; a mixed list (invalid) implies nothing.
        let v4 = m.values.iter().any(Cidr::is_v4);
        let v6 = m.values.iter().any(|c| !c.is_v4());
        if v4 && !v6 {
            add(Family::Ipv4);
        } else if v6 && !v4 {
            add(Family::Ipv6);
        }
    }
    if rule.icmp_type.is_some() {
        add(Family::Ipv4);
    }
    if rule.icmpv6_type.is_some() || rule.hop_limit.is_some() || rule.rt_type.is_some() {
        add(Family::Ipv6);
    }
    if rule.ttl.is_some() {
        add(Family::Ipv4);
    }
    if let Some(m) = rule.proto.as_ref().filter(|m| !m.negated) {
        if m.values.iter().all(|p| *p == Proto::ICMP) {
            add(Family::Ipv4);
        }
        if m.values.iter().all(|p| *p == Proto::ICMPV6) {
            add(Family::Ipv6);
        }
    }
    if conflict {
        Err(())
    } else {
        Ok(found)
    }
}

fn ip(family: IpFamily, a: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(a as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

/// Whether `rule` matches `key`; `ports` names the port indices in the key.
pub fn rule_matches(rule: &Rule, ports: &[String], key: &Key) -> bool {
    // Each test returns early, so a rule costs only as much as its first failing match.
    match rule_family(rule) {
        Err(()) => return false,
        Ok(None) => {}
        Ok(Some(Family::Ipv4)) if key.family != IpFamily::V4 => return false,
        Ok(Some(Family::Ipv6)) if key.family != IpFamily::V6 => return false,
        Ok(Some(_)) => {}
    }
    let port_name = |i: u8| ports.get(usize::from(i));
    if let Some(m) = &rule.in_port {
        if !m.test(|p| port_name(key.in_port) == Some(&p.0)) {
            return false;
        }
    }
    if let Some(m) = &rule.out_port {
        if !m.test(|p| port_name(key.out_port) == Some(&p.0)) {
            return false;
        }
    }
    let (src, dst) = (ip(key.family, key.src), ip(key.family, key.dst));
    if !rule
        .src
        .as_ref()
        .is_none_or(|m| m.test(|c| c.contains(src)))
        || !rule
            .dst
            .as_ref()
            .is_none_or(|m| m.test(|c| c.contains(dst)))
        || !rule
            .proto
            .as_ref()
            .is_none_or(|m| m.test(|p| p.0 == key.proto))
        || !rule
            .sport
            .as_ref()
            .is_none_or(|m| m.test(|r| r.contains(key.sport)))
        || !rule
            .dport
            .as_ref()
            .is_none_or(|m| m.test(|r| r.contains(key.dport)))
        || !rule
            .ports
            .as_ref()
            .is_none_or(|m| m.test(|r| r.contains(key.sport) || r.contains(key.dport)))
    {
        return false;
    }
    // ICMP matches need an ICMP packet of their own family, even when negated.
    let icmp = |family: IpFamily, proto: Proto| {
        (key.family == family && key.proto == proto.0)
            .then_some(key.icmp)
            .flatten()
    };
    if let Some(m) = &rule.icmp_type {
        if !icmp(IpFamily::V4, Proto::ICMP).is_some_and(|(t, c)| m.test(|v| v.0.matches(t, c))) {
            return false;
        }
    }
    if let Some(m) = &rule.icmpv6_type {
        if !icmp(IpFamily::V6, Proto::ICMPV6).is_some_and(|(t, c)| m.test(|v| v.0.matches(t, c))) {
            return false;
        }
    }
    if let Some((mask, comp, negated)) = rule.tcp_flag_test() {
        if key.proto != Proto::TCP.0 || (((key.tcp_flags & mask) == comp) == negated) {
            return false;
        }
    }
    // No conntrack state (raw) matches neither a ctstate nor its negation.
    if let Some(m) = &rule.ctstate {
        if !key.ctstate.is_some_and(|s| m.test(|v| *v == s)) {
            return false;
        }
    }
    rule.ctdir.is_none_or(|d| key.ctdir == Some(d))
}

/// Where a walk through a list of rules ended.
enum End {
    /// Rule `n` (stage numbering) decided, or `stop` stopped the walk there.
    At(u32),
    /// The list ran out, or a `return` left it.
    Return,
}

/// What a walk asks its caller about the rules on its way.
pub struct Visit<'a> {
    /// Before rule `n` is matched: whether the walk ends there (the kernel's hotdrop).
    pub stop: &'a mut dyn FnMut(u32, &Rule) -> bool,
    /// Rule `n` matched: whether it matches in full (a rate-limited rule takes its token
    /// here, `recent` does what it does). A `log` rule logs here; it and a `continue` rule
    /// never decide.
    pub hit: &'a mut dyn FnMut(u32, &Rule) -> bool,
}

/// The rule that decides, walking a stage as iptables walks its chains: rules in order,
/// `jump` into a chain and back, `goto` into a chain and on to the caller's caller,
/// `return`, `log` and on. `visit` may end the walk before a rule and says whether a rule
/// that matched matches in full. `None`: the policy decides. Written from the semantics,
/// for tests and the rare truncated-header path; a chain nested deeper than validation
/// allows ends the walk there, as if it returned.
pub fn walk(stage: &Stage, ports: &[String], key: &Key, visit: &mut Visit) -> Option<u32> {
    match walk_list(stage, &stage.rules, 0, ports, key, visit, 0) {
        End::At(n) => Some(n),
        End::Return => None,
    }
}

fn walk_list(
    stage: &Stage,
    rules: &[Rule],
    base: u32,
    ports: &[String],
    key: &Key,
    visit: &mut Visit,
    depth: usize,
) -> End {
    for (k, r) in rules.iter().enumerate() {
        let n = base + k as u32;
        if (visit.stop)(n, r) {
            return End::At(n);
        }
        if !rule_matches(r, ports, key) {
            continue;
        }
        let into = |c: &str| {
            let at = stage.chain_offset(c)? as u32;
            Some((stage.chains.get(c)?, at))
        };
        // What only the packet path can test (a limit, `recent`, packet fields): every
        // rule that matched asks, and one whose answer is no is passed over.
        if !(visit.hit)(n, r) {
            continue;
        }
        match &r.action {
            Action::Return => return End::Return,
            Action::Jump(c) | Action::Goto(c) => {
                let Some((chain, at)) = into(c).filter(|_| depth < MAX_DEPTH) else {
                    return End::Return;
                };
                match walk_list(stage, chain, at, ports, key, visit, depth + 1) {
                    End::At(n) => return End::At(n),
                    End::Return if matches!(r.action, Action::Goto(_)) => return End::Return,
                    End::Return => {}
                }
            }
            a if a.passes() => {}
            _ => return End::At(n),
        }
    }
    End::Return
}

/// First-match over `rules` with [`rule_matches`].
pub fn first_match(rules: &[Rule], ports: &[String], key: &Key) -> Option<u32> {
    rules
        .iter()
        .position(|r| rule_matches(r, ports, key))
        .map(|i| i as u32)
}
