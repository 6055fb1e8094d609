//! `statewall-bench classifier`: lookup cost of the compiled classifier against the rule
//! count, with rulesets that cannot stop at an early match.
//!
//! Each ruleset is a gateway's forward stage: ESTABLISHED/RELATED accept and INVALID drop
//! first, then many NEW rules (a distinct host /32 and port each, mixed with source-network
//! UDP port ranges, multiport mail rules to /24s, IPv6 /48 rules and ICMP rules), and a
//! final SSH rule. Lookups are NEW packets that match one of the last tenth of the host
//! rules, the final rule, or nothing, so a linear scan would pay for the whole list.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use config::matches::{
    Cidr, CtDir, CtState, Icmp4Type, IcmpType, Match, PortName, PortRange, Proto,
};
use std::collections::BTreeMap;

use config::ruleset::{Action, Rule};
use engine::classifier::{Classifier, Key};
use engine::packet::IpFamily;

#[derive(clap::Args)]
pub struct Args {
    /// Rule counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 1000, 10000])]
    rules: Vec<usize>,
    /// Timed lookups per rule count (tree).
    #[arg(long, default_value_t = 20_000_000)]
    lookups: u64,
    /// Cap on the rule checks the linear-scan comparison may spend per rule count (its
    /// lookups are this divided by the rule count); 0 skips it.
    #[arg(long, default_value_t = 400_000_000)]
    linear_budget: u64,
    /// Split the timed lookups into this many rounds and report the fastest (a shared,
    /// loaded machine otherwise reports its neighbours' load).
    #[arg(long, default_value_t = 5)]
    rounds: u64,
    /// Also time the same rules spread over this many user-defined chains (each reached by a
    /// `ctstate: new` jump and ending with `return`, as ufw and firewalld write them); 0
    /// skips it.
    #[arg(long, default_value_t = 100)]
    chains: usize,
}

const PORTS: [&str; 3] = ["lan", "wan", "dmz"];
const LAN: u8 = 0;
const WAN: u8 = 1;
/// Distinct keys cycled through (a power of two; larger than the branch predictor's memory).
const KEYS: usize = 1 << 14;
const HOST_PORTS: [u16; 6] = [22, 80, 443, 8080, 3306, 5432];

fn cidr(addr: IpAddr, prefix: u8) -> Cidr {
    Cidr {
        addr,
        prefix,
        end: None,
    }
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn mapped(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn port(p: u16) -> PortRange {
    PortRange { lo: p, hi: p }
}

fn name(n: &str) -> Match<PortName> {
    Match::new(vec![PortName(n.into())])
}

fn new_only() -> Match<CtState> {
    Match::new(vec![CtState::New])
}

/// Host rule `i`: NEW tcp from lan to 10.a.b.c/32 on one port.
pub(crate) fn host(i: u32) -> (IpAddr, u16) {
    (
        v4(0x0a00_0000 | (i + 1)),
        HOST_PORTS[i as usize % HOST_PORTS.len()],
    )
}

/// A ruleset of `n` rules (at least 3) and the indices of its host rules.
pub(crate) fn ruleset(n: usize) -> (Vec<Rule>, Vec<(usize, u32)>) {
    let mut rules = Vec::with_capacity(n);
    let mut est = Rule::new(Action::Accept);
    est.ctstate = Some(Match::new(vec![CtState::Established, CtState::Related]));
    rules.push(est);
    let mut inv = Rule::new(Action::Drop);
    inv.ctstate = Some(Match::new(vec![CtState::Invalid]));
    rules.push(inv);
    let mut hosts = Vec::new();
    for i in 0..n.saturating_sub(3) as u32 {
        let mut r = Rule::new(Action::Accept);
        r.ctstate = Some(new_only());
        match i % 20 {
            // 14 in 20: one host and port.
            0..=13 => {
                let (dst, p) = host(i);
                r.in_port = Some(name("lan"));
                r.proto = Some(Match::new(vec![Proto::TCP]));
                r.dst = Some(Match::new(vec![cidr(dst, 32)]));
                r.dport = Some(Match::new(vec![port(p)]));
                hosts.push((rules.len(), i));
            }
            // 2 in 20: a source /24 sending UDP to a port range.
            14 | 15 => {
                r.action = Action::Drop;
                r.proto = Some(Match::new(vec![Proto::UDP]));
                r.src = Some(Match::new(vec![cidr(v4(0xac10_0000 | (i << 8)), 24)]));
                let lo = 1000 + (i % 50) as u16 * 100;
                r.dport = Some(Match::new(vec![PortRange { lo, hi: lo + 99 }]));
            }
            // 2 in 20: mail to a /24 from wan, multiport either side.
            16 | 17 => {
                r.action = Action::Reject;
                r.in_port = Some(name("wan"));
                r.proto = Some(Match::new(vec![Proto::TCP]));
                r.dst = Some(Match::new(vec![cidr(v4(0xc0a8_0000 | (i << 8)), 24)]));
                r.ports = Some(Match::new(vec![port(25), port(465), port(587)]));
            }
            // 1 in 20: an IPv6 /48 on 443.
            18 => {
                let net = (0x2001_0db8_u128 << 96) | (u128::from(i) << 80);
                r.proto = Some(Match::new(vec![Proto::TCP]));
                r.dst = Some(Match::new(vec![cidr(IpAddr::V6(Ipv6Addr::from(net)), 48)]));
                r.dport = Some(Match::new(vec![port(443)]));
            }
            // 1 in 20: pings from a /24.
            _ => {
                r.proto = Some(Match::new(vec![Proto::ICMP]));
                r.src = Some(Match::new(vec![cidr(v4(0x6440_0000 | (i << 8)), 24)]));
                r.icmp_type = Some(Match::new(vec![Icmp4Type(IcmpType { ty: 8, code: None })]));
            }
        }
        rules.push(r);
    }
    let mut ssh = Rule::new(Action::Accept);
    ssh.in_port = Some(name("lan"));
    ssh.proto = Some(Match::new(vec![Proto::TCP]));
    ssh.dport = Some(Match::new(vec![port(22)]));
    ssh.ctstate = Some(new_only());
    rules.push(ssh);
    (rules, hosts)
}

/// A main list, its chains, and the flat rule index of each chained rule number.
type Chained = (Vec<Rule>, BTreeMap<String, Vec<Rule>>, Vec<Option<u32>>);

/// The rules of [`ruleset`] spread over `k` chains: the main list keeps the two state rules,
/// then jumps (`ctstate: new`) to chains `c000`, `c001`, ... each holding a slice of the NEW
/// rules and a final `return`, then the last rule. Also returns, for each rule number of the
/// chained stage, the index of the same rule in the flat list (`None` for the jumps and
/// returns).
fn chained(rules: &[Rule], k: usize) -> Chained {
    let (head, rest) = rules.split_at(2.min(rules.len()));
    let (middle, last) = rest.split_at(rest.len().saturating_sub(1));
    let per = middle.len().div_ceil(k.max(1)).max(1);
    let mut main: Vec<Rule> = head.to_vec();
    let mut flat_of: Vec<Option<u32>> = (0..head.len() as u32).map(Some).collect();
    let mut chains = BTreeMap::new();
    let mut chain_flat = Vec::new();
    for (c, slice) in middle.chunks(per).enumerate() {
        let name = format!("c{c:03}");
        let mut jump = Rule::new(Action::Jump(name.clone()));
        jump.ctstate = Some(new_only());
        main.push(jump);
        flat_of.push(None);
        let start = head.len() + c * per;
        let mut list = slice.to_vec();
        list.push(Rule::new(Action::Return));
        chain_flat.extend((start..start + slice.len()).map(|i| Some(i as u32)));
        chain_flat.push(None);
        chains.insert(name, list);
    }
    main.extend_from_slice(last);
    flat_of.push(Some((rules.len() - 1) as u32));
    flat_of.extend(chain_flat);
    (main, chains, flat_of)
}

/// splitmix64, for reproducible key choice.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Lookup keys: half hit one of the last tenth of the host rules, a quarter the final
/// rule, a quarter nothing.
fn keys(hosts: &[(usize, u32)]) -> Vec<Key> {
    let mut rng = Rng(0x0574_7a11);
    let base = Key {
        family: IpFamily::V4,
        in_port: LAN,
        out_port: WAN,
        src: mapped(v4(0x0a63_0001)),
        dst: 0,
        proto: 6,
        sport: 40000,
        dport: 0,
        icmp: None,
        tcp_flags: 0x02,
        ctstate: Some(CtState::New),
        ctdir: Some(CtDir::Original),
    };
    let tail = &hosts[hosts.len() - hosts.len().div_ceil(10)..];
    (0..KEYS)
        .map(|i| {
            let r = rng.next();
            let sport = 1024 + (r % 60000) as u16;
            match i % 4 {
                0 | 1 if !tail.is_empty() => {
                    let (_, h) = tail[(r >> 16) as usize % tail.len()];
                    let (dst, dport) = host(h);
                    Key {
                        dst: mapped(dst),
                        dport,
                        sport,
                        ..base
                    }
                }
                2 => Key {
                    dst: mapped(v4(0xcb00_7100 | (r as u32 & 0xff))),
                    dport: 22,
                    sport,
                    ..base
                },
                _ => Key {
                    in_port: WAN,
                    dst: mapped(v4(0xcb00_7100 | (r as u32 & 0xff))),
                    dport: 9999,
                    sport,
                    ..base
                },
            }
        })
        .collect()
}

/// The timed loop (its own function so callgrind can count just it:
/// `--toggle-collect='*lookup_loop*'`).
#[inline(never)]
fn lookup_loop(keys: &[Key], n: u64, f: impl Fn(&Key) -> Option<u32>) -> (Duration, u64) {
    let mask = keys.len() - 1;
    let mut sum = 0u64;
    let t = Instant::now();
    for i in 0..n {
        let k = black_box(&keys[i as usize & mask]);
        sum = sum.wrapping_add(u64::from(f(k).unwrap_or(u32::MAX)));
    }
    (t.elapsed(), black_box(sum))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanoseconds and counts far below 2^52"
)]
fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n.max(1) as f64
}

#[expect(
    clippy::cast_precision_loss,
    reason = "byte and key counts far below 2^52"
)]
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.rules.iter().any(|&n| n < 3) {
        bail!("--rules: each count must be at least 3 (two state rules and a final rule)");
    }
    let ports: Vec<String> = PORTS.iter().map(|s| (*s).to_string()).collect();
    println!(
        "{:>7} {:>6} {:>6} {:>5} {:>5} {:>11} {:>9} {:>10} {:>12} {:>6} {:>8} {:>10} {:>7}",
        "rules",
        "nodes",
        "leaves",
        "depth",
        "leaf",
        "compile_ms",
        "mem_KiB",
        "tree_ns",
        "linear_ns",
        "hit%",
        "entries",
        "chains_ns",
        "ratio"
    );
    let mut results = Vec::new();
    let time = |f: &dyn Fn(&Key) -> Option<u32>, keys: &[Key]| {
        lookup_loop(keys, keys.len() as u64 * 4, f);
        let per_round = (args.lookups / args.rounds.max(1)).max(1);
        (0..args.rounds.max(1))
            .map(|_| ns_per(lookup_loop(keys, per_round, f).0, per_round))
            .fold(f64::INFINITY, f64::min)
    };
    for &n in &args.rules {
        let (rules, hosts) = ruleset(n);
        // Compile three times, report the fastest.
        let mut compile = Duration::MAX;
        let mut cl = None;
        for _ in 0..3 {
            let t = Instant::now();
            let c = Classifier::compile(&rules, &ports);
            compile = compile.min(t.elapsed());
            cl = Some(c);
        }
        let cl = cl.context("compiled")?;
        let keys = keys(&hosts);
        // Check before timing: the tree agrees with the linear scan on every key.
        let mut hits = 0usize;
        for k in &keys {
            let got = cl.classify(k);
            if got != cl.classify_linear(k) {
                bail!("tree and linear scan disagree on {k:?} with {n} rules");
            }
            hits += usize::from(got.is_some());
        }
        let tree_ns = time(&|k| cl.classify(k), &keys);
        let linear_ns = if args.linear_budget == 0 {
            f64::NAN
        } else {
            let m = (args.linear_budget / n as u64).clamp(1000, args.lookups);
            let (d, _) = lookup_loop(&keys, m, |k| cl.classify_linear(k));
            ns_per(d, m)
        };
        // The same rules in chains: the same rule decides every key, then the timing.
        let (entries, chains_ns) = if args.chains == 0 {
            (0, f64::NAN)
        } else {
            let (main, chains, flat_of) = chained(&rules, args.chains);
            let cc = Classifier::compile_chains(&main, &chains, &ports, usize::MAX)
                .context("compiling the chained rules")?;
            for k in &keys {
                let got = cc
                    .classify(k)
                    .and_then(|r| flat_of.get(r as usize).copied().flatten());
                if got != cl.classify(k) {
                    bail!("the chained rules decide {k:?} otherwise than the flat ones");
                }
            }
            (cc.entries(), time(&|k| cc.classify(k), &keys))
        };
        let s = cl.stats();
        println!(
            "{:>7} {:>6} {:>6} {:>5} {:>5} {:>11.2} {:>9.1} {:>10.1} {:>12.1} {:>6.1} {:>8} {:>10.1} {:>7.2}",
            n,
            s.nodes,
            s.leaves,
            s.max_depth,
            s.largest_leaf,
            compile.as_secs_f64() * 1e3,
            cl.memory_bytes() as f64 / 1024.0,
            tree_ns,
            linear_ns,
            100.0 * hits as f64 / keys.len() as f64,
            entries,
            chains_ns,
            chains_ns / tree_ns,
        );
        results.push((n, tree_ns));
    }
    if let (Some(&(n0, t0)), Some(&(n1, t1))) = (results.first(), results.last()) {
        if n1 != n0 {
            println!("ratio tree_ns {n1}/{n0} rules: {:.2}", t1 / t0);
        }
    }
    Ok(())
}
