//! Translation of one configuration [`Rule`] into boxes: per-dimension interval sets whose
//! conjunction is exactly the rule's match.
//!
//! Most rules are one box. A rule becomes two boxes where a match is an OR across
//! dimensions (multiport `ports`: source port *or* destination port) or where address lists
//! mix families (each family is its own box, with only that family's networks); a rule that
//! can never match becomes no box at all.

use config::matches::{Cidr, CtDir, CtState, IcmpType, Match, PortRange, Proto};
use config::ruleset::{Family, Rule};

use super::fields::{
    IntervalSet, CT, CT_NO_DIR, CT_NO_STATE, DPORT, DST, FAMILY, FAMILY_V4, FAMILY_V6, FLAGS, ICMP,
    IN_PORT, NDIMS, OUT_PORT, PROTO, SPORT, SRC,
};

/// One conjunction of per-dimension sets (unconstrained dimensions are full).
pub(crate) type Shape = [IntervalSet; NDIMS];

/// The families a rule can match: those every key that implies a family agrees on
/// ([`Rule::family_evidence`]); none for a rule whose keys disagree (validation rejects it).
fn families(rule: &Rule) -> [bool; 2] {
    let evidence = rule.family_evidence();
    [
        evidence.iter().all(|e| e.family == Family::Ipv4),
        evidence.iter().all(|e| e.family == Family::Ipv6),
    ]
}

/// A list match as a set: the union of its values' sets, complemented when negated.
fn list_set<T>(m: &Match<T>, dim: usize, one: impl Fn(&T) -> IntervalSet) -> IntervalSet {
    let set = IntervalSet::from_intervals(m.values.iter().flat_map(|v| one(v).0));
    if m.negated {
        set.complement(dim)
    } else {
        set
    }
}

fn port_set(m: &Match<PortRange>, dim: usize) -> IntervalSet {
    list_set(m, dim, |r| {
        IntervalSet(vec![(u128::from(r.lo), u128::from(r.hi))])
    })
}

fn port_name_set(
    m: &Match<config::matches::PortName>,
    ports: &[String],
    dim: usize,
) -> IntervalSet {
    list_set(m, dim, |name| {
        IntervalSet::from_values(
            ports
                .iter()
                .enumerate()
                .filter(|(_, p)| **p == name.0)
                .map(|(i, _)| i as u128),
        )
    })
}

/// An address list for one family: only that family's networks count (an IPv4 network
/// never contains an IPv6 address and vice versa).
fn addr_set(m: &Match<Cidr>, v4: bool, dim: usize) -> IntervalSet {
    let set = IntervalSet::from_intervals(
        m.values
            .iter()
            .filter(|c| c.is_v4() == v4)
            .map(Cidr::range_u128),
    );
    if m.negated {
        set.complement(dim)
    } else {
        set
    }
}

/// ICMP type/code values; a negated list still needs an ICMP header (the sentinel for "no
/// ICMP" is never in the set).
fn icmp_set<'a>(types: impl Iterator<Item = &'a IcmpType>, negated: bool) -> IntervalSet {
    let set = IntervalSet::from_intervals(types.map(|t| {
        let base = u128::from(t.ty) << 8;
        match t.code {
            Some(c) => (base | u128::from(c), base | u128::from(c)),
            None => (base, base | 0xff),
        }
    }));
    if negated {
        set.complement(ICMP)
            .intersect(&IntervalSet(vec![(0, 0xffff)]))
    } else {
        set
    }
}

fn ct_set(state: Option<&Match<CtState>>, dir: Option<CtDir>) -> IntervalSet {
    let states: Vec<u8> = match state {
        // No ctstate match: any state, including none (the raw stage).
        None => (0..=CT_NO_STATE).collect(),
        Some(m) => CtState::ALL
            .iter()
            .filter(|s| m.test(|v| v == *s))
            .map(|s| *s as u8)
            .collect(),
    };
    let dirs: &[u8] = match dir {
        None => &[0, 1, CT_NO_DIR],
        Some(CtDir::Original) => &[0],
        Some(CtDir::Reply) => &[1],
    };
    IntervalSet::from_values(
        states
            .iter()
            .flat_map(|s| dirs.iter().map(move |d| u128::from(s * 3 + d))),
    )
}

/// The flag bytes `f` with `((f & mask) == comp) != negated`.
fn flag_set(mask: u8, comp: u8, negated: bool) -> IntervalSet {
    IntervalSet::from_values(
        (0..=255u8)
            .filter(|f| ((f & mask) == comp) != negated)
            .map(u128::from),
    )
}

/// Restrict `shape[dim]` to `set`.
fn narrow(shape: &mut Shape, dim: usize, set: &IntervalSet) {
    shape[dim] = shape[dim].intersect(set);
}

/// The boxes of one rule (empty when it can never match).
pub(crate) fn rule_shapes(rule: &Rule, ports: &[String]) -> Vec<Shape> {
    let mut base: Shape = std::array::from_fn(IntervalSet::full);
    if let Some(m) = &rule.in_port {
        narrow(&mut base, IN_PORT, &port_name_set(m, ports, IN_PORT));
    }
    if let Some(m) = &rule.out_port {
        narrow(&mut base, OUT_PORT, &port_name_set(m, ports, OUT_PORT));
    }
    if let Some(m) = &rule.proto {
        narrow(
            &mut base,
            PROTO,
            &list_set(m, PROTO, |p| IntervalSet::from_values([u128::from(p.0)])),
        );
    }
    if let Some(m) = &rule.sport {
        narrow(&mut base, SPORT, &port_set(m, SPORT));
    }
    if let Some(m) = &rule.dport {
        narrow(&mut base, DPORT, &port_set(m, DPORT));
    }
    if let Some(m) = &rule.icmp_type {
        narrow(
            &mut base,
            PROTO,
            &IntervalSet::from_values([u128::from(Proto::ICMP.0)]),
        );
        narrow(
            &mut base,
            ICMP,
            &icmp_set(m.values.iter().map(|t| &t.0), m.negated),
        );
    }
    if let Some(m) = &rule.icmpv6_type {
        narrow(
            &mut base,
            PROTO,
            &IntervalSet::from_values([u128::from(Proto::ICMPV6.0)]),
        );
        narrow(
            &mut base,
            ICMP,
            &icmp_set(m.values.iter().map(|t| &t.0), m.negated),
        );
    }
    if let Some((mask, comp, negated)) = rule.tcp_flag_test() {
        narrow(
            &mut base,
            PROTO,
            &IntervalSet::from_values([u128::from(Proto::TCP.0)]),
        );
        narrow(&mut base, FLAGS, &flag_set(mask, comp, negated));
    }
    narrow(&mut base, CT, &ct_set(rule.ctstate.as_ref(), rule.ctdir));

    // Multiport `ports`: negated is "neither port in the list" (one box); plain is "either
    // port" (two boxes).
    let mut shapes = Vec::new();
    let port_variants: Vec<Shape> = match &rule.ports {
        None => vec![base],
        Some(m) if m.negated => {
            let set = port_set(m, SPORT);
            let mut s = base;
            narrow(&mut s, SPORT, &set);
            narrow(&mut s, DPORT, &set);
            vec![s]
        }
        Some(m) => {
            let set = port_set(m, SPORT);
            let mut a = base.clone();
            narrow(&mut a, SPORT, &set);
            let mut b = base;
            narrow(&mut b, DPORT, &set);
            vec![a, b]
        }
    };
    let fams = families(rule);
    let fam_values = [(true, FAMILY_V4), (false, FAMILY_V6)];
    for variant in port_variants {
        if rule.src.is_none() && rule.dst.is_none() {
            // No address match: one box covers every allowed family.
            let mut s = variant;
            let allowed = fam_values
                .iter()
                .filter(|(v4, _)| fams[usize::from(!*v4)])
                .map(|(_, f)| *f);
            narrow(&mut s, FAMILY, &IntervalSet::from_values(allowed));
            push_nonempty(&mut shapes, s);
            continue;
        }
        // Addresses: one box per family, each with only that family's networks.
        for (v4, fam_value) in fam_values {
            if !fams[usize::from(!v4)] {
                continue;
            }
            let mut s = variant.clone();
            narrow(&mut s, FAMILY, &IntervalSet::from_values([fam_value]));
            if let Some(m) = &rule.src {
                narrow(&mut s, SRC, &addr_set(m, v4, SRC));
            }
            if let Some(m) = &rule.dst {
                narrow(&mut s, DST, &addr_set(m, v4, DST));
            }
            push_nonempty(&mut shapes, s);
        }
    }
    shapes
}

/// Keep a box unless one of its dimensions is empty (it could never match).
fn push_nonempty(shapes: &mut Vec<Shape>, s: Shape) {
    if s.iter().all(|set| !set.is_empty()) {
        shapes.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ruleset::Action;

    #[test]
    fn shapes_of_common_rules() {
        let mut r = Rule::new(Action::Accept);
        assert_eq!(rule_shapes(&r, &[]).len(), 1);
        r.ports = Some(Match::new(vec![PortRange { lo: 80, hi: 80 }]));
        r.proto = Some(Match::new(vec![Proto::TCP]));
        assert_eq!(rule_shapes(&r, &[]).len(), 2);
        r.ports = Some(Match::negated(vec![PortRange { lo: 80, hi: 80 }]));
        assert_eq!(rule_shapes(&r, &[]).len(), 1);
        // Contradicting families: never matches.
        let mut r = Rule::new(Action::Accept);
        r.family = Some(Family::Ipv6);
        r.src = Some(Match::new(vec!["10.0.0.0/8".parse_cidr()]));
        assert!(rule_shapes(&r, &[]).is_empty());
    }

    trait ParseCidr {
        fn parse_cidr(&self) -> Cidr;
    }
    impl ParseCidr for str {
        fn parse_cidr(&self) -> Cidr {
            <Cidr as config::matches::Scalar>::parse_str(self).unwrap()
        }
    }
}
