//! The IP family a rule is restricted to: written (`family:`), or implied by its matches.
//!
//! One definition for validation (which reports keys that contradict each other), the lint
//! (which compares rules), the iptables importer (which writes `family:` only where nothing
//! else implies it) and the engine (which matches each family separately):
//!
//! | key | restricts the rule to |
//! |-----|-----------------------|
//! | `family` | that family |
//! | `src`, `dst` | the family of its networks, when all are of one family, negated (`{not: ...}`) or not; a list that mixes families says nothing (validation rejects it) |
//! | `icmp_type` | IPv4 |
//! | `icmpv6_type` | IPv6 |
//! | `ttl` | IPv4 |
//! | `hop_limit`, `rt_type` | IPv6 |
//! | `recent`'s `mask` | the mask's family |
//! | `proto` | IPv4 when not negated and only `icmp`; IPv6 when not negated and only `icmpv6` |
//!
//! A valid rule's keys all say the same family (validation rejects a rule whose keys
//! disagree: it could never match), so "the" family of a valid rule is that of any of them.

use crate::matches::{Cidr, Match};
use crate::proto::Proto;

use super::{Family, Rule};

/// One key of a rule that restricts the rule to one IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyEvidence {
    pub family: Family,
    /// The rule's key that says so: `family`, `src`, `dst`, `icmp_type`, `icmpv6_type`,
    /// `ttl`, `hop_limit`, `rt_type`, `recent` or `proto`.
    pub key: &'static str,
    /// Read from a negated address list (`src: {not: 10.0.0.0/8}`): true of the packets a
    /// negated IPv4 list matches only because the rule is an IPv4 rule, as in iptables.
    pub negated: bool,
}

/// The family all networks of an address list belong to; `None` when they mix (or there
/// are none).
fn list_family(m: &Match<Cidr>) -> Option<Family> {
    let v4 = m.values.iter().any(Cidr::is_v4);
    let v6 = m.values.iter().any(|c| !c.is_v4());
    match (v4, v6) {
        (true, false) => Some(Family::Ipv4),
        (false, true) => Some(Family::Ipv6),
        _ => None,
    }
}

impl Rule {
    /// Every key that restricts this rule to one family, in the order `family`, `src`, `dst`,
    /// `icmp_type`, `icmpv6_type`, `ttl`, `hop_limit`, `rt_type`, `recent`, `proto` (see the module docs for what each key says).
    pub fn family_evidence(&self) -> Vec<FamilyEvidence> {
        let mut out = Vec::new();
        let mut push = |family: Family, key: &'static str, negated: bool| {
            out.push(FamilyEvidence {
                family,
                key,
                negated,
            });
        };
        if let Some(f) = self.family {
            push(f, "family", false);
        }
        for (key, m) in [("src", &self.src), ("dst", &self.dst)] {
            if let Some(m) = m {
                if let Some(f) = list_family(m) {
                    push(f, key, m.negated);
                }
            }
        }
        if self.icmp_type.is_some() {
            push(Family::Ipv4, "icmp_type", false);
        }
        if self.icmpv6_type.is_some() {
            push(Family::Ipv6, "icmpv6_type", false);
        }
        if self.ttl.is_some() {
            push(Family::Ipv4, "ttl", false);
        }
        if self.hop_limit.is_some() {
            push(Family::Ipv6, "hop_limit", false);
        }
        if self.rt_type.is_some() {
            push(Family::Ipv6, "rt_type", false);
        }
        if let Some(mask) = self.recent.as_ref().and_then(|r| r.mask) {
            let f = if mask.is_ipv4() {
                Family::Ipv4
            } else {
                Family::Ipv6
            };
            push(f, "recent", false);
        }
        if let Some(m) = self.proto.as_ref().filter(|m| !m.negated) {
            if m.values.iter().all(|p| *p == Proto::ICMP) {
                push(Family::Ipv4, "proto", false);
            }
            if m.values.iter().all(|p| *p == Proto::ICMPV6) {
                push(Family::Ipv6, "proto", false);
            }
        }
        out
    }

    /// The family this rule is restricted to, written or implied; `None`: it matches both.
    /// On a rule whose keys disagree (which validation rejects), the first key in
    /// [`Rule::family_evidence`]'s order wins.
    pub fn implied_family(&self) -> Option<Family> {
        self.family_evidence().first().map(|e| e.family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).expect("test rule parses")
    }

    #[test]
    fn family_from_each_key() {
        let fam = |y: &str| rule(y).implied_family();
        assert_eq!(fam("{action: accept}"), None);
        assert_eq!(fam("{family: ipv6, action: accept}"), Some(Family::Ipv6));
        assert_eq!(
            fam("{src: {not: 10.0.0.0/8}, action: accept}"),
            Some(Family::Ipv4)
        );
        assert_eq!(fam("{dst: fd00::/8, action: accept}"), Some(Family::Ipv6));
        assert_eq!(fam("{src: [10.0.0.0/8, fd00::/8], action: accept}"), None);
        assert_eq!(fam("{proto: icmp, action: accept}"), Some(Family::Ipv4));
        assert_eq!(fam("{proto: {not: icmp}, action: accept}"), None);
        assert_eq!(fam("{proto: [icmp, icmpv6], action: accept}"), None);
        assert_eq!(
            fam("{proto: icmpv6, icmpv6_type: echo-request, action: accept}"),
            Some(Family::Ipv6)
        );
        let keys: Vec<&str> = rule("{proto: icmp, src: 10.0.0.0/8, icmp_type: 8, action: drop}")
            .family_evidence()
            .iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["src", "icmp_type", "proto"]);
    }
}
