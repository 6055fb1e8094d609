//! A naive matcher written straight from the match semantics on the configuration types,
//! independent of the compiled form. Tests compare the classifier against it; it is slow
//! (it compares port names as strings) and not for the packet path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use config::matches::{Cidr, Proto};
use config::ruleset::{Family, Rule};

use super::Key;
use crate::packet::IpFamily;

/// The family a rule is restricted to: explicit, or implied by its addresses, ICMP matches
/// or a protocol list of only icmp / only icmpv6. `Err` when two of those disagree.
fn rule_family(rule: &Rule) -> Result<Option<Family>, ()> {
    let mut fams: Vec<Family> = rule.family.into_iter().collect();
    for m in [&rule.src, &rule.dst].into_iter().flatten() {
        // A list of one family implies it; a mixed list (invalid) implies nothing.
        let v4 = m.values.iter().any(Cidr::is_v4);
        let v6 = m.values.iter().any(|c| !c.is_v4());
        if v4 && !v6 {
            fams.push(Family::Ipv4);
        } else if v6 && !v4 {
            fams.push(Family::Ipv6);
        }
    }
    if rule.icmp_type.is_some() {
        fams.push(Family::Ipv4);
    }
    if rule.icmpv6_type.is_some() {
        fams.push(Family::Ipv6);
    }
    if let Some(m) = rule.proto.as_ref().filter(|m| !m.negated) {
        if m.values.iter().all(|p| *p == Proto::ICMP) {
            fams.push(Family::Ipv4);
        }
        if m.values.iter().all(|p| *p == Proto::ICMPV6) {
            fams.push(Family::Ipv6);
        }
    }
    match fams.first() {
        Some(f) if fams.iter().any(|g| g != f) => Err(()),
        f => Ok(f.copied()),
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
    let family_ok = match rule_family(rule) {
        Err(()) => false,
        Ok(None) => true,
        Ok(Some(Family::Ipv4)) => key.family == IpFamily::V4,
        Ok(Some(Family::Ipv6)) => key.family == IpFamily::V6,
    };
    let port_name = |i: u8| ports.get(usize::from(i));
    let in_ok = rule
        .in_port
        .as_ref()
        .is_none_or(|m| m.test(|p| port_name(key.in_port) == Some(&p.0)));
    let out_ok = rule
        .out_port
        .as_ref()
        .is_none_or(|m| m.test(|p| port_name(key.out_port) == Some(&p.0)));
    let (src, dst) = (ip(key.family, key.src), ip(key.family, key.dst));
    let src_ok = rule
        .src
        .as_ref()
        .is_none_or(|m| m.test(|c| c.contains(src)));
    let dst_ok = rule
        .dst
        .as_ref()
        .is_none_or(|m| m.test(|c| c.contains(dst)));
    let proto_ok = rule
        .proto
        .as_ref()
        .is_none_or(|m| m.test(|p| p.0 == key.proto));
    let sport_ok = rule
        .sport
        .as_ref()
        .is_none_or(|m| m.test(|r| r.contains(key.sport)));
    let dport_ok = rule
        .dport
        .as_ref()
        .is_none_or(|m| m.test(|r| r.contains(key.dport)));
    let ports_ok = rule
        .ports
        .as_ref()
        .is_none_or(|m| m.test(|r| r.contains(key.sport) || r.contains(key.dport)));
    let icmp = |family: IpFamily, proto: Proto| {
        (key.family == family && key.proto == proto.0)
            .then_some(key.icmp)
            .flatten()
    };
    let icmp4_ok = rule.icmp_type.as_ref().is_none_or(|m| {
        icmp(IpFamily::V4, Proto::ICMP).is_some_and(|(t, c)| m.test(|v| v.0.matches(t, c)))
    });
    let icmp6_ok = rule.icmpv6_type.as_ref().is_none_or(|m| {
        icmp(IpFamily::V6, Proto::ICMPV6).is_some_and(|(t, c)| m.test(|v| v.0.matches(t, c)))
    });
    let flags_ok = rule.tcp_flag_test().is_none_or(|(mask, comp, negated)| {
        key.proto == Proto::TCP.0 && (((key.tcp_flags & mask) == comp) != negated)
    });
    let state_ok = rule
        .ctstate
        .as_ref()
        .is_none_or(|m| key.ctstate.is_some_and(|s| m.test(|v| *v == s)));
    let dir_ok = rule.ctdir.is_none_or(|d| key.ctdir == Some(d));
    family_ok
        && in_ok
        && out_ok
        && src_ok
        && dst_ok
        && proto_ok
        && sport_ok
        && dport_ok
        && ports_ok
        && icmp4_ok
        && icmp6_ok
        && flags_ok
        && state_ok
        && dir_ok
}

/// First-match over `rules` with [`rule_matches`].
pub fn first_match(rules: &[Rule], ports: &[String], key: &Key) -> Option<u32> {
    rules
        .iter()
        .position(|r| rule_matches(r, ports, key))
        .map(|i| i as u32)
}
