//! The compiled classifier agrees with a linear scan of the same rules, and with the naive
//! reference matcher, on random valid rulesets and random keys (STYLE point 9).
//!
//! Rules and keys are drawn from small value pools so rules overlap (nested networks,
//! overlapping port ranges, negations) and keys hit them often. Each rule is built from a
//! list of choice numbers, so proptest shrinks a failure towards rules with fewer matches.
#![expect(
    clippy::manual_is_multiple_of,
    reason = "the workspace's rust-version is 1.82; is_multiple_of is 1.87"
)]

use std::net::IpAddr;

use config::matches::{
    Cidr, CtDir, CtState, Icmp4Type, Icmp6Type, IcmpType, Match, PortName, PortRange, Proto,
    Scalar, TcpFlag, TcpFlagsMatch,
};
use config::ruleset::{Action, Family, Policy, Rule, Stage};
use engine::classifier::reference::{self, Visit};
use engine::classifier::{Classifier, Key};
use engine::packet::IpFamily;
use proptest::prelude::*;

const PORT_NAMES: [&str; 3] = ["lan", "wan", "dmz"];
const V4_NETS: [&str; 11] = [
    "10.1.2.3-10.1.9.9",
    "192.168.1.1-192.168.1.1",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3",
    "192.168.0.0/16",
    "192.168.1.1",
    "0.0.0.0/0",
    "172.16.0.0/12",
    "10.1.2.128/25",
];
const V6_NETS: [&str; 9] = [
    "fd00::1-fd00:1::1",
    "fd00::/8",
    "fd00::1",
    "2001:db8::/32",
    "2001:db8::1",
    "::/0",
    "::ffff:10.1.2.3",
    "fd00::/64",
    "::ffff:0:0/96",
];
const V4_ADDRS: [&str; 8] = [
    "10.1.2.3",
    "10.1.2.200",
    "10.1.9.9",
    "10.200.0.1",
    "192.168.1.1",
    "192.168.7.7",
    "172.20.0.1",
    "8.8.8.8",
];
const V6_ADDRS: [&str; 7] = [
    "fd00::1",
    "fd00::2",
    "fd00:1::1",
    "2001:db8::1",
    "2001:db8:1::5",
    "::ffff:10.1.2.3",
    "2a00::1",
];
const PORT_RANGES: [(u16, u16); 9] = [
    (22, 22),
    (53, 53),
    (80, 80),
    (443, 443),
    (1024, 65535),
    (0, 1023),
    (8000, 8080),
    (5353, 5353),
    (80, 443),
];
const PORT_VALUES: [u16; 12] = [
    22, 53, 80, 443, 1023, 1024, 5353, 8000, 8080, 0, 65535, 40000,
];
const ICMP4: [(u8, Option<u8>); 5] = [(8, None), (0, None), (3, Some(4)), (3, None), (11, Some(0))];
const ICMP6: [(u8, Option<u8>); 4] = [(128, None), (129, None), (1, Some(4)), (135, None)];
const ICMP4_PKT: [(u8, u8); 6] = [(8, 0), (0, 0), (3, 4), (3, 3), (11, 0), (11, 1)];
const ICMP6_PKT: [(u8, u8); 5] = [(128, 0), (129, 0), (1, 4), (1, 0), (135, 0)];
const FLAGS: [u8; 9] = [0x02, 0x12, 0x10, 0x11, 0x04, 0x00, 0x3f, 0x18, 0x0a];
const FLAG_BITS: [u8; 6] = [0x01, 0x02, 0x04, 0x10, 0x3f, 0x00];

fn ports() -> Vec<String> {
    PORT_NAMES.iter().map(|s| (*s).to_string()).collect()
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse_str(s).unwrap()
}

fn addr(s: &str) -> u128 {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Picks from a slice by a choice number.
fn pick<T: Copy>(pool: &[T], c: u32) -> T {
    pool[c as usize % pool.len()]
}

/// One or two values from `pool`, as a plain or negated match.
fn list<T: Copy, U>(pool: &[T], c: u32, f: impl Fn(T) -> U) -> Match<U> {
    let mut values = vec![f(pick(pool, c >> 2))];
    if c & 2 != 0 {
        values.push(f(pick(pool, c >> 6)));
    }
    Match {
        negated: c & 1 != 0,
        values,
    }
}

/// A valid rule from 16 choice numbers (0 everywhere is the empty rule).
fn rule(c: &[u32]) -> Rule {
    let mut r = Rule::new(if c[15] % 2 == 0 {
        Action::Accept
    } else {
        Action::Drop
    });
    // Which family the rule's addresses and ICMP matches belong to: 0 any, 1 v4, 2 v6.
    let mut fam = c[0] % 3;
    // Protocol: 0-1 none, 2 tcp, 3 udp, 4 tcp+udp, 5 icmp/icmpv6, 6 gre, 7 not tcp.
    let proto_kind = c[2] % 8;
    let icmp = proto_kind == 5;
    if icmp && fam == 0 {
        fam = 1 + (c[2] >> 3) % 2;
    }
    r.proto = match proto_kind {
        2 => Some(Match::new(vec![Proto::TCP])),
        3 => Some(Match::new(vec![Proto::UDP])),
        4 => Some(Match::new(vec![Proto::TCP, Proto::UDP])),
        5 if fam == 1 => Some(Match::new(vec![Proto::ICMP])),
        5 => Some(Match::new(vec![Proto::ICMPV6])),
        6 => Some(Match::new(vec![Proto(47)])),
        7 => Some(Match::negated(vec![Proto::TCP])),
        _ => None,
    };
    if fam != 0 && c[1] % 4 == 0 {
        r.family = Some(if fam == 1 { Family::Ipv4 } else { Family::Ipv6 });
    }
    let nets = |c: u32, fam: u32| -> Option<Match<Cidr>> {
        // A family-less rule may still take addresses; they then set its family.
        let f = if fam == 0 { 1 + (c >> 12) % 2 } else { fam };
        (c % 3 == 0).then(|| {
            if f == 1 {
                list(&V4_NETS, c >> 2, cidr)
            } else {
                list(&V6_NETS, c >> 2, cidr)
            }
        })
    };
    r.src = nets(c[3], fam);
    if fam == 0 {
        if let Some(m) = &r.src {
            fam = if m.values[0].is_v4() { 1 } else { 2 };
        }
    }
    r.dst = nets(c[4], fam);
    if matches!(proto_kind, 2..=4) {
        let pr = |(lo, hi)| PortRange { lo, hi };
        match c[5] % 6 {
            1 => r.dport = Some(list(&PORT_RANGES, c[5] >> 3, pr)),
            2 => r.sport = Some(list(&PORT_RANGES, c[5] >> 3, pr)),
            3 => {
                r.sport = Some(list(&PORT_RANGES, c[5] >> 3, pr));
                r.dport = Some(list(&PORT_RANGES, c[6] >> 3, pr));
            }
            4 | 5 => r.ports = Some(list(&PORT_RANGES, c[5] >> 3, pr)),
            _ => {}
        }
    }
    if icmp && c[6] % 3 != 0 {
        let t = |(ty, code)| IcmpType { ty, code };
        if fam == 1 {
            r.icmp_type = Some(list(&ICMP4, c[6] >> 2, |x| Icmp4Type(t(x))));
        } else {
            r.icmpv6_type = Some(list(&ICMP6, c[6] >> 2, |x| Icmp6Type(t(x))));
        }
    }
    if proto_kind == 2 {
        match c[7] % 5 {
            1 => r.syn = Some(true),
            2 => r.syn = Some(false),
            3 => {
                r.tcp_flags = Some(TcpFlagsMatch {
                    mask: Match::new(vec![TcpFlag(pick(&FLAG_BITS, c[7] >> 3)), TcpFlag(0x10)]),
                    comp: Match::new(vec![TcpFlag(pick(&FLAG_BITS, c[7] >> 6))]),
                    not: (c[7] >> 9) % 2 == 1,
                });
            }
            _ => {}
        }
    }
    let names = |c: u32| (c % 3 == 0).then(|| list(&PORT_NAMES, c >> 2, |n| PortName(n.into())));
    r.in_port = names(c[8]);
    r.out_port = names(c[9]);
    if c[10] % 3 == 0 {
        r.ctstate = Some(list(&CtState::ALL, c[10] >> 2, |s| s));
    }
    if c[11] % 5 == 1 {
        r.ctdir = Some(if c[11] % 2 == 0 {
            CtDir::Reply
        } else {
            CtDir::Original
        });
    }
    r
}

/// A key from 12 choice numbers, mostly from the same pools as the rules.
fn key(c: &[u32]) -> Key {
    let v6 = c[0] % 2 == 1;
    let a = |c: u32| {
        if c % 8 == 7 {
            // An address outside the pools.
            let x = u128::from(c).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if v6 {
                x | 1 << 127
            } else {
                (0xffff << 32) | (x & 0xffff_ffff)
            }
        } else if v6 {
            addr(pick(&V6_ADDRS, c >> 3))
        } else {
            addr(pick(&V4_ADDRS, c >> 3))
        }
    };
    let proto: u8 = pick(&[6, 6, 17, 1, 58, 47, 132], c[1]);
    let has_ports = matches!(proto, 6 | 17 | 132);
    let port = |c: u32| {
        if c % 6 == 5 {
            c as u16
        } else {
            pick(&PORT_VALUES, c)
        }
    };
    let is_icmp = (proto == 1 && !v6) || (proto == 58 && v6);
    let ctstate = match c[9] % 6 {
        5 => None,
        s => Some(CtState::ALL[s as usize]),
    };
    let ctdir = match ctstate {
        None | Some(CtState::Invalid | CtState::Untracked) => None,
        Some(_) => Some(if c[10] % 2 == 0 {
            CtDir::Original
        } else {
            CtDir::Reply
        }),
    };
    Key {
        family: if v6 { IpFamily::V6 } else { IpFamily::V4 },
        in_port: pick(&[0, 1, 2, 0, 1, 7], c[2]),
        out_port: pick(&[0, 1, 2, 1, 1, 9], c[3]),
        src: a(c[4]),
        dst: a(c[5]),
        proto,
        sport: if has_ports { port(c[6]) } else { 0 },
        dport: if has_ports { port(c[7]) } else { 0 },
        icmp: (is_icmp && c[8] % 10 != 0).then(|| {
            if v6 {
                pick(&ICMP6_PKT, c[8] >> 4)
            } else {
                pick(&ICMP4_PKT, c[8] >> 4)
            }
        }),
        tcp_flags: if proto == 6 { pick(&FLAGS, c[11]) } else { 0 },
        ctstate,
        ctdir,
    }
}

/// Checks every key; returns how many matched a rule and how many distinct rules matched.
fn check(rules: &[Rule], keys: &[Key], with_reference: bool) -> (usize, usize) {
    let ports = ports();
    let cl = Classifier::compile(rules, &ports);
    assert_eq!(cl.len(), rules.len());
    let mut seen = vec![false; rules.len()];
    let mut hits = 0;
    for k in keys {
        let fast = cl.classify(k);
        if let Some(i) = fast {
            hits += 1;
            seen[i as usize] = true;
        }
        assert_eq!(fast, cl.classify_linear(k), "tree vs linear for {k:?}");
        if with_reference {
            assert_eq!(
                fast,
                reference::first_match(rules, &ports, k),
                "tree vs reference for {k:?}: rule {:?}",
                fast.map(|i| &rules[i as usize])
            );
        }
    }
    (hits, seen.iter().filter(|s| **s).count())
}

fn choices(n: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(any::<u32>(), n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_agrees_with_linear_scan_and_reference(
        rules in prop::collection::vec(choices(16), 1..=200),
        keys in prop::collection::vec(choices(12), 64),
    ) {
        let rules: Vec<Rule> = rules.iter().map(|c| rule(c)).collect();
        let keys: Vec<Key> = keys.iter().map(|c| key(c)).collect();
        check(&rules, &keys, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The verdict cache's soundness: two packets of one flow direction (the same key but for
    /// the TCP flags) for which the cache may be used get the same first match.
    #[test]
    fn cached_verdicts_hold_for_every_packet_they_answer(
        rules in prop::collection::vec(choices(16), 1..=100),
        keys in prop::collection::vec((choices(12), any::<u8>()), 64),
    ) {
        let rules: Vec<Rule> = rules.iter().map(|c| rule(c)).collect();
        let cl = Classifier::compile(&rules, &ports());
        for (c, other_flags) in &keys {
            let k0 = key(c);
            let k1 = Key { tcp_flags: if k0.proto == 6 { *other_flags } else { 0 }, ..k0 };
            let usable = |k: &Key| {
                cl.cacheable(k.ctstate, k.ctdir) || cl.flags_irrelevant(k.proto, k.tcp_flags)
            };
            if usable(&k0) && usable(&k1) {
                prop_assert_eq!(
                    cl.classify(&k0),
                    cl.classify(&k1),
                    "flags {:#x} and {:#x} of {:?}",
                    k0.tcp_flags,
                    k1.tcp_flags,
                    k0
                );
            }
        }
    }
}

/// A stage with up to four chains: rule `c` of a list gets a random match and, by `c[15]`,
/// accept, log, drop, return, or a jump or goto to a later chain (chains only jump forward, so
/// there is no loop, as validation requires).
fn stage(main: &[Vec<u32>], chains: &[Vec<Vec<u32>>]) -> Stage {
    let action = |c: &[u32], from: usize| {
        let later = chains.len().saturating_sub(from);
        let pick_chain = |k: u32| format!("c{}", from + (k as usize % later.max(1)));
        match c[15] % 8 {
            0 => Action::Accept,
            1 => Action::Log,
            2 => Action::Drop,
            3 => Action::Return,
            4 | 5 if later > 0 => Action::Jump(pick_chain(c[14])),
            6 if later > 0 => Action::Goto(pick_chain(c[14])),
            _ => Action::Accept,
        }
    };
    let list = |rules: &[Vec<u32>], from: usize| -> Vec<Rule> {
        rules
            .iter()
            .map(|c| {
                let action = action(c, from);
                // Some jumps, gotos and returns are guarded: a limit only the packet path
                // can test (declined like a verdict rule's).
                let limit = (action.moves() && c[13] % 3 == 0).then(|| {
                    config::limit::Limit::new(config::limit::Rate {
                        count: 1,
                        per_secs: 1,
                    })
                });
                Rule {
                    action,
                    limit,
                    ..rule(c)
                }
            })
            .collect()
    };
    Stage {
        policy: Policy::Drop,
        rules: list(main, 0),
        chains: chains
            .iter()
            .enumerate()
            .map(|(i, rules)| (format!("c{i}"), list(rules, i + 1)))
            .collect(),
    }
}

/// A walk that never stops early and takes every rule that matches as matching in full.
fn plain_visit() -> Visit<'static> {
    Visit {
        stop: Box::leak(Box::new(|_, _: &Rule| false)),
        hit: Box::leak(Box::new(|_, _: &Rule| true)),
    }
}

/// Whether `declined` applies to a rule: one that decides, or a guarded jump, goto or
/// return (the rules whose other matches the classifier asks about).
fn can_decline(r: &Rule) -> bool {
    r.action.is_verdict() || (r.action.moves() && r.limit.is_some())
}

/// The stage with every rule `declined` picks that can decline made one that never matches
/// (a negated list of every protocol).
fn never_matching(st: &Stage, declined: impl Fn(u32) -> bool) -> Stage {
    let mut out = st.clone();
    let never = Match::negated((0..=255u8).map(Proto).collect());
    let all = out
        .rules
        .iter_mut()
        .chain(out.chains.values_mut().flatten());
    for (n, r) in (0u32..).zip(all) {
        if declined(n) && can_decline(r) {
            r.proto = Some(never.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Chains flattened into one program decide as iptables' walk does: the tree, a linear
    /// scan of the program and the reference walk name the same rule for every key; and the
    /// verdict cache stays sound across chains.
    #[test]
    fn chains_decide_as_the_walk_does(
        main in prop::collection::vec(choices(16), 1..=30),
        chains in prop::collection::vec(prop::collection::vec(choices(16), 0..=12), 0..=4),
        keys in prop::collection::vec((choices(12), any::<u8>()), 64),
    ) {
        let st = stage(&main, &chains);
        let ports = ports();
        let cl = Classifier::compile_chains(&st.rules, &st.chains, &ports, 1 << 20).unwrap();
        prop_assert_eq!(cl.len(), st.rule_count());
        for (c, other_flags) in &keys {
            let k = key(c);
            let fast = cl.classify(&k);
            prop_assert_eq!(fast, cl.classify_linear(&k), "tree vs linear for {:?}", k);
            let slow = reference::walk(&st, &ports, &k, &mut plain_visit());
            prop_assert_eq!(fast, slow, "tree vs walk for {:?}", k);
            // A rule that declines (a rate limit with no token left) is a rule that does
            // not match: the walk goes on after it; a log rule never decides. Every log
            // rule that matches on the way logs, once, in the walk's order.
            let declined = |r: u32| r % 3 == 1;
            let mut logged = Vec::new();
            let rule_at = |r: u32| st.numbered().nth(r as usize).map(|(_, _, x)| x.clone()).unwrap();
            let with = cl.classify_with(&k, |r| {
                let x = rule_at(r);
                if x.action == Action::Log {
                    logged.push(r);
                }
                !(declined(r) && can_decline(&x))
            });
            prop_assert_eq!(with, reference::walk(&never_matching(&st, declined), &ports, &k, &mut plain_visit()));
            let mut walked = Vec::new();
            let by_hit = reference::walk(&st, &ports, &k, &mut Visit {
                stop: &mut |_, _| false,
                hit: &mut |r, rule| {
                    if rule.action == Action::Log {
                        walked.push(r);
                    }
                    !(declined(r) && can_decline(rule))
                },
            });
            prop_assert_eq!(with, by_hit);
            prop_assert_eq!(&logged, &walked, "logged on the way for {:?}", k);
            if let Some(r) = fast {
                let (_, _, rule) = st.numbered().nth(r as usize).unwrap();
                prop_assert!(rule.action.is_verdict(), "rule {} decides with {}", r, rule.action);
            }
            let k1 = Key { tcp_flags: if k.proto == 6 { *other_flags } else { 0 }, ..k };
            let usable = |k: &Key| {
                cl.cacheable(k.ctstate, k.ctdir) || cl.flags_irrelevant(k.proto, k.tcp_flags)
            };
            if usable(&k) && usable(&k1) {
                prop_assert_eq!(fast, cl.classify(&k1), "cached across flags of {:?}", k);
            }
        }
    }
}

/// xorshift64*: a small deterministic generator for the large test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
    fn choices(&mut self, n: usize) -> Vec<u32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Keys for the large test. The linear scan it is checked against costs ~0.4 ms a key over
/// 10k rules in a debug build, so debug runs check a fifth of them;
/// `cargo test --release -p statewall-engine --test classifier_prop` checks all.
const LARGE_KEYS: usize = if cfg!(debug_assertions) {
    20_000
} else {
    100_000
};

/// 10k rules (most of them specific: a host and a port, so the ruleset does not end at its
/// first broad rule) and 100k keys, half of them aimed at a random rule's host and port.
#[test]
fn ten_thousand_rules_hundred_thousand_keys() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut rules = Vec::with_capacity(10_000);
    let mut hosts = Vec::new();
    for i in 0..10_000u32 {
        let mut c = rng.choices(16);
        if i % 10 < 8 {
            // Specific: tcp/udp to one of 4096 hosts and one port, maybe with a state and
            // direction.
            let host = u128::from(rng.next() % 4096);
            let port = pick(&PORT_VALUES, rng.next());
            c[2] = 2 + rng.next() % 2;
            c[5] = 0;
            let mut r = rule(&c);
            r.family = None;
            r.src = None;
            r.in_port = None;
            r.syn = None;
            r.tcp_flags = None;
            let ip = std::net::Ipv4Addr::from(0x0a80_0000 | host as u32);
            r.dst = Some(Match::new(vec![Cidr {
                addr: IpAddr::V4(ip),
                prefix: 32,
                end: None,
            }]));
            r.dport = Some(Match::new(vec![PortRange { lo: port, hi: port }]));
            hosts.push((addr(&ip.to_string()), port));
            rules.push(r);
        } else {
            // General, but never empty enough to swallow everything early.
            // A plain source network, arrival port and state: `% 3 == 0` selects each, and
            // bit 2 (bit 0 of the list choice) would negate it.
            c[3] = 24 * (c[3] % 100_000);
            c[8] = 24 * (c[8] % 100_000);
            c[10] = 24 * (c[10] % 100_000);
            rules.push(rule(&c));
        }
    }
    let keys: Vec<Key> = (0..LARGE_KEYS)
        .map(|i| {
            let mut k = key(&rng.choices(12));
            if i % 2 == 0 {
                let (dst, dport) = hosts[rng.next() as usize % hosts.len()];
                k.family = IpFamily::V4;
                k.dst = dst;
                k.src = addr("100.64.0.1");
                k.proto = pick(&[6, 17], rng.next());
                k.dport = dport;
                k.icmp = None;
            }
            k
        })
        .collect();
    let (hits, distinct) = check(&rules, &keys, false);
    eprintln!(
        "10k rules: {hits} of {} keys matched, {distinct} distinct rules",
        keys.len()
    );
    // The reference on a sample (it is slow: port names as strings).
    let ports = ports();
    let cl = Classifier::compile(&rules, &ports);
    for k in keys.iter().step_by(97) {
        assert_eq!(cl.classify(k), reference::first_match(&rules, &ports, k));
    }
}
