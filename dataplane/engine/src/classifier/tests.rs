//! Unit tests: one per match kind (with negation), each checked against the tree lookup,
//! the linear scan and the naive reference matcher.

use config::matches::{
    Cidr, CtDir, CtState, Icmp4Type, Icmp6Type, IcmpType, Match, PortName, PortRange, Proto,
    Scalar, TcpFlag, TcpFlagsMatch,
};
use config::ruleset::{Action, Family, Rule};

use super::{reference, Classifier, Key};
use crate::packet::IpFamily;

fn ports() -> Vec<String> {
    vec!["lan".into(), "wan".into(), "dmz".into()]
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse_str(s).unwrap()
}

fn addr(s: &str) -> u128 {
    match s.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        std::net::IpAddr::V6(a) => u128::from(a),
    }
}

fn pr(lo: u16, hi: u16) -> PortRange {
    PortRange { lo, hi }
}

fn tcp() -> Rule {
    let mut r = Rule::new(Action::Accept);
    r.proto = Some(Match::new(vec![Proto::TCP]));
    r
}

/// A v4 TCP packet 10.0.0.1:1234 -> 192.168.1.1:80 from lan to wan, NEW original.
fn key() -> Key {
    Key {
        family: IpFamily::V4,
        in_port: 0,
        out_port: 1,
        src: addr("10.0.0.1"),
        dst: addr("192.168.1.1"),
        proto: 6,
        sport: 1234,
        dport: 80,
        icmp: None,
        tcp_flags: 0x02,
        ctstate: Some(CtState::New),
        ctdir: Some(CtDir::Original),
    }
}

fn v6_key() -> Key {
    Key {
        family: IpFamily::V6,
        src: addr("fd00::1"),
        dst: addr("2001:db8::1"),
        ..key()
    }
}

/// Whether the single `rule` matches `k`, asserting that all three matchers agree.
fn hits(rule: &Rule, k: &Key) -> bool {
    let c = Classifier::compile(std::slice::from_ref(rule), &ports());
    let tree = c.classify(k).is_some();
    assert_eq!(
        tree,
        c.classify_linear(k).is_some(),
        "tree vs linear: {rule:?} {k:?}"
    );
    assert_eq!(
        tree,
        reference::rule_matches(rule, &ports(), k),
        "tree vs reference: {rule:?} {k:?}"
    );
    tree
}

#[test]
fn empty_rule_matches_everything_and_empty_set_nothing() {
    let r = Rule::new(Action::Drop);
    assert!(hits(&r, &key()));
    assert!(hits(&r, &v6_key()));
    assert!(hits(&r, &Key::default()));
    let c = Classifier::compile(&[], &ports());
    assert!(c.is_empty());
    assert_eq!(c.classify(&key()), None);
}

#[test]
fn in_and_out_port_names() {
    let mut r = Rule::new(Action::Accept);
    r.in_port = Some(Match::new(vec![PortName("lan".into())]));
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            in_port: 1,
            ..key()
        }
    ));
    r.in_port = Some(Match::negated(vec![
        PortName("lan".into()),
        PortName("dmz".into()),
    ]));
    assert!(!hits(&r, &key()));
    assert!(hits(
        &r,
        &Key {
            in_port: 1,
            ..key()
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            in_port: 2,
            ..key()
        }
    ));
    let mut r = Rule::new(Action::Accept);
    r.out_port = Some(Match::new(vec![
        PortName("wan".into()),
        PortName("dmz".into()),
    ]));
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            out_port: 0,
            ..key()
        }
    ));
}

#[test]
fn addresses_and_families() {
    let mut r = Rule::new(Action::Accept);
    r.src = Some(Match::new(vec![cidr("10.0.0.0/8")]));
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            src: addr("11.0.0.1"),
            ..key()
        }
    ));
    // A v4 network never matches a v6 packet, even one whose address is v4-mapped.
    assert!(!hits(
        &r,
        &Key {
            family: IpFamily::V6,
            ..key()
        }
    ));
    r.src = Some(Match::negated(vec![
        cidr("10.0.0.0/8"),
        cidr("172.16.0.0/12"),
    ]));
    assert!(!hits(&r, &key()));
    assert!(hits(
        &r,
        &Key {
            src: addr("11.0.0.1"),
            ..key()
        }
    ));
    // A negated v4 list still makes the rule IPv4-only.
    assert!(!hits(&r, &v6_key()));

    let mut r = Rule::new(Action::Accept);
    r.dst = Some(Match::new(vec![cidr("2001:db8::/32")]));
    assert!(hits(&r, &v6_key()));
    assert!(!hits(&r, &key()));
    r.dst = Some(Match::new(vec![cidr("::/0")]));
    assert!(hits(&r, &v6_key()));
    assert!(!hits(&r, &key()));
    r.dst = Some(Match::new(vec![cidr("0.0.0.0/0")]));
    assert!(hits(&r, &key()));
    assert!(!hits(&r, &v6_key()));
    r.dst = Some(Match::new(vec![cidr("192.168.1.1")]));
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            dst: addr("192.168.1.2"),
            ..key()
        }
    ));

    let mut r = Rule::new(Action::Accept);
    r.family = Some(Family::Ipv6);
    assert!(hits(&r, &v6_key()));
    assert!(!hits(&r, &key()));
}

#[test]
fn protocols() {
    let mut r = Rule::new(Action::Accept);
    r.proto = Some(Match::new(vec![Proto::UDP, Proto::TCP]));
    assert!(hits(&r, &key()));
    assert!(!hits(&r, &Key { proto: 47, ..key() }));
    r.proto = Some(Match::negated(vec![Proto::TCP]));
    assert!(!hits(&r, &key()));
    assert!(hits(&r, &Key { proto: 17, ..key() }));
}

#[test]
fn port_lists_and_ranges() {
    let mut r = tcp();
    r.dport = Some(Match::new(vec![pr(22, 22), pr(80, 90)]));
    assert!(hits(&r, &key()));
    assert!(hits(&r, &Key { dport: 90, ..key() }));
    assert!(!hits(&r, &Key { dport: 91, ..key() }));
    assert!(!hits(
        &r,
        &Key {
            dport: 80,
            proto: 17,
            ..key()
        }
    ));
    r.dport = Some(Match::negated(vec![pr(0, 1023)]));
    assert!(!hits(&r, &key()));
    assert!(hits(
        &r,
        &Key {
            dport: 1024,
            ..key()
        }
    ));
    // A negated port match still needs the protocol.
    assert!(!hits(
        &r,
        &Key {
            dport: 1024,
            proto: 1,
            ..key()
        }
    ));
    let mut r = tcp();
    r.sport = Some(Match::new(vec![pr(1024, 65535)]));
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            sport: 1023,
            ..key()
        }
    ));
}

#[test]
fn multiport_either_side() {
    let mut r = tcp();
    r.proto = Some(Match::new(vec![Proto::TCP, Proto::UDP]));
    r.ports = Some(Match::new(vec![pr(53, 53), pr(80, 80)]));
    assert!(hits(&r, &key())); // dport 80
    assert!(hits(
        &r,
        &Key {
            sport: 53,
            dport: 9999,
            proto: 17,
            ..key()
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            sport: 54,
            dport: 81,
            ..key()
        }
    ));
    r.ports = Some(Match::negated(vec![pr(53, 53), pr(80, 80)]));
    assert!(!hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            sport: 53,
            dport: 9999,
            ..key()
        }
    ));
    assert!(hits(
        &r,
        &Key {
            sport: 54,
            dport: 81,
            ..key()
        }
    ));
}

#[test]
fn icmp_types_with_and_without_code() {
    let icmp = |ty, code| Icmp4Type(IcmpType { ty, code });
    let mut r = Rule::new(Action::Accept);
    r.proto = Some(Match::new(vec![Proto::ICMP]));
    r.icmp_type = Some(Match::new(vec![icmp(8, None), icmp(3, Some(4))]));
    let ping = Key {
        proto: 1,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp: Some((8, 0)),
        ..key()
    };
    assert!(hits(&r, &ping));
    assert!(hits(
        &r,
        &Key {
            icmp: Some((8, 7)),
            ..ping
        }
    ));
    assert!(hits(
        &r,
        &Key {
            icmp: Some((3, 4)),
            ..ping
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            icmp: Some((3, 3)),
            ..ping
        }
    ));
    assert!(!hits(&r, &Key { icmp: None, ..ping }));
    // ICMPv4 matches never see v6 packets.
    assert!(!hits(
        &r,
        &Key {
            family: IpFamily::V6,
            ..ping
        }
    ));
    r.icmp_type = Some(Match::negated(vec![icmp(8, None)]));
    assert!(!hits(&r, &ping));
    assert!(hits(
        &r,
        &Key {
            icmp: Some((0, 0)),
            ..ping
        }
    ));
    assert!(!hits(&r, &Key { icmp: None, ..ping }));
    assert!(!hits(&r, &key()));

    let mut r = Rule::new(Action::Accept);
    r.proto = Some(Match::new(vec![Proto::ICMPV6]));
    r.icmpv6_type = Some(Match::new(vec![Icmp6Type(IcmpType {
        ty: 128,
        code: None,
    })]));
    let ping6 = Key {
        proto: 58,
        icmp: Some((128, 0)),
        ..v6_key()
    };
    assert!(hits(&r, &ping6));
    assert!(!hits(
        &r,
        &Key {
            icmp: Some((129, 0)),
            ..ping6
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            family: IpFamily::V4,
            ..ping6
        }
    ));
    // proto: icmpv6 alone implies IPv6, as validation reads it.
    r.icmpv6_type = None;
    assert!(hits(&r, &ping6));
    assert!(!hits(
        &r,
        &Key {
            family: IpFamily::V4,
            ..ping6
        }
    ));
}

#[test]
fn tcp_flags_and_syn() {
    let mut r = tcp();
    r.syn = Some(true);
    assert!(hits(&r, &key()));
    assert!(!hits(
        &r,
        &Key {
            tcp_flags: 0x12,
            ..key()
        }
    )); // SYN+ACK
    assert!(hits(
        &r,
        &Key {
            tcp_flags: 0x0a,
            ..key()
        }
    )); // SYN+PSH: PSH not examined
    assert!(!hits(&r, &Key { proto: 17, ..key() }));
    r.syn = Some(false);
    assert!(!hits(&r, &key()));
    assert!(hits(
        &r,
        &Key {
            tcp_flags: 0x10,
            ..key()
        }
    ));
    // `! --syn` still needs TCP.
    assert!(!hits(
        &r,
        &Key {
            tcp_flags: 0x10,
            proto: 17,
            ..key()
        }
    ));

    let mut r = tcp();
    r.syn = None;
    r.tcp_flags = Some(TcpFlagsMatch {
        mask: Match::new(vec![TcpFlag(0x3f)]),
        comp: Match::new(vec![TcpFlag(0)]),
        not: false,
    });
    assert!(hits(
        &r,
        &Key {
            tcp_flags: 0,
            ..key()
        }
    ));
    assert!(!hits(&r, &key()));
    r.tcp_flags = Some(TcpFlagsMatch {
        not: true,
        ..r.tcp_flags.clone().unwrap()
    });
    assert!(!hits(
        &r,
        &Key {
            tcp_flags: 0,
            ..key()
        }
    ));
    assert!(hits(&r, &key()));
}

#[test]
fn conntrack_state_and_direction() {
    let mut r = Rule::new(Action::Accept);
    r.ctstate = Some(Match::new(vec![CtState::Established, CtState::Related]));
    assert!(!hits(&r, &key()));
    let est = Key {
        ctstate: Some(CtState::Established),
        ..key()
    };
    assert!(hits(&r, &est));
    assert!(hits(
        &r,
        &Key {
            ctdir: Some(CtDir::Reply),
            ..est
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            ctstate: None,
            ctdir: None,
            ..key()
        }
    ));
    r.ctstate = Some(Match::negated(vec![CtState::Established]));
    assert!(hits(&r, &key()));
    assert!(!hits(&r, &est));
    // No state at all (raw) matches neither a ctstate nor its negation.
    assert!(!hits(
        &r,
        &Key {
            ctstate: None,
            ctdir: None,
            ..key()
        }
    ));
    assert!(hits(
        &r,
        &Key {
            ctstate: Some(CtState::Invalid),
            ctdir: None,
            ..key()
        }
    ));

    let mut r = Rule::new(Action::Accept);
    r.ctdir = Some(CtDir::Reply);
    assert!(!hits(&r, &key()));
    assert!(hits(
        &r,
        &Key {
            ctdir: Some(CtDir::Reply),
            ..key()
        }
    ));
    assert!(!hits(
        &r,
        &Key {
            ctdir: None,
            ..key()
        }
    ));
}

#[test]
fn first_match_wins() {
    let mut a = tcp();
    a.dport = Some(Match::new(vec![pr(80, 80)]));
    a.action = Action::Drop;
    let b = tcp();
    let c = Rule::new(Action::Accept);
    let rules = vec![a, b, c];
    let cl = Classifier::compile(&rules, &ports());
    assert_eq!(cl.len(), 3);
    assert_eq!(cl.classify(&key()), Some(0));
    assert_eq!(cl.classify(&Key { dport: 81, ..key() }), Some(1));
    assert_eq!(cl.classify(&Key { proto: 17, ..key() }), Some(2));
}

#[test]
fn cacheable_unless_a_reachable_rule_tests_flags() {
    let mut est = Rule::new(Action::Accept);
    est.ctstate = Some(Match::new(vec![CtState::Established]));
    let mut syn = tcp();
    syn.syn = Some(true);
    syn.ctstate = Some(Match::new(vec![CtState::New]));
    let cl = Classifier::compile(&[est.clone(), syn], &ports());
    assert!(!cl.cacheable(Some(CtState::New), Some(CtDir::Original)));
    assert!(cl.cacheable(Some(CtState::Established), Some(CtDir::Original)));
    assert!(cl.cacheable(Some(CtState::Invalid), None));
    let mut any_syn = tcp();
    any_syn.syn = Some(false);
    let cl = Classifier::compile(&[est, any_syn], &ports());
    assert!(!cl.cacheable(Some(CtState::Established), Some(CtDir::Reply)));
    assert!(!cl.cacheable(None, None));
}

#[test]
fn many_rules_use_the_tree() {
    // 2000 host rules then a catch-all: the tree must find the right one and stay shallow.
    let mut rules = Vec::new();
    for i in 0..2000u32 {
        let mut r = tcp();
        r.dst = Some(Match::new(vec![cidr(&format!(
            "10.{}.{}.1",
            i / 250,
            i % 250
        ))]));
        r.dport = Some(Match::new(vec![pr(
            1000 + (i % 7) as u16,
            1000 + (i % 7) as u16,
        )]));
        rules.push(r);
    }
    rules.push(Rule::new(Action::Drop));
    let cl = Classifier::compile(&rules, &ports());
    let stats = cl.stats();
    assert!(stats.largest_leaf <= 8, "{stats:?}");
    for i in (0..2000u32).step_by(37) {
        let k = Key {
            dst: addr(&format!("10.{}.{}.1", i / 250, i % 250)),
            dport: 1000 + (i % 7) as u16,
            ..key()
        };
        assert_eq!(cl.classify(&k), Some(i));
        assert_eq!(cl.classify(&Key { dport: 999, ..k }), Some(2000));
    }
}
