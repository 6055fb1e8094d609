//! `statewall-bench set`: what a rule's `match_set` costs as the set grows. A forward stage
//! whose first NEW rule drops sources in a set (ipset's `-m set --match-set NAME src`),
//! then an accept; the timed call is the stage's decision for a NEW UDP packet, half of
//! them from a member. Members are random: `hash:ip` sets of /32s; `hash:net` sets of
//! /16s, /24s and /32s in fixed shares (the same three prefix lengths at every size, so
//! a lookup probes as many tables at 100 members as at a million).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use config::matches::{Cidr, CtState, Match};
use config::ruleset::{Action, Family, Policy, Rule, Ruleset};
use config::sets::{IpSet, MatchSet, Member, SetDir, SetType};
use engine::classifier::Key;
use engine::packet::PacketMeta;
use engine::ruleset::CompiledRuleset;
use engine::wire::{self, build::Udp};

use crate::classifier::Rng;

#[derive(clap::Args)]
pub struct Args {
    /// Set sizes to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 10_000, 1_000_000])]
    members: Vec<usize>,
    /// Timed decisions per size.
    #[arg(long, default_value_t = 10_000_000)]
    lookups: u64,
    /// Rounds to split them into; the fastest is reported.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
}

/// Packets cycled through (a power of two).
const PACKETS: usize = 1 << 12;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

/// The host bits of a /`prefix` IPv4 network.
fn host_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0)
}

fn members(kind: SetType, n: usize, rng: &mut Rng) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let prefix = match kind {
                SetType::HashIp => 32,
                // One /16 in a thousand, one /24 in ten, the rest /32s (a blocklist's
                // shape; at a million members the /16s still cover under 2% of addresses).
                SetType::HashNet if i % 1000 == 0 => 16,
                SetType::HashNet if i % 10 == 0 => 24,
                SetType::HashNet => 32,
            };
            let a = (rng.next() as u32) & !host_mask(prefix);
            Member {
                net: Cidr {
                    addr: v4(a),
                    prefix,
                    end: None,
                },
                nomatch: false,
            }
        })
        .collect()
}

fn ruleset(kind: SetType, n: usize, rng: &mut Rng) -> Ruleset {
    let mut r = Ruleset::default();
    r.sets.insert(
        "bench".into(),
        IpSet {
            kind,
            family: Family::Ipv4,
            members: members(kind, n, rng),
        },
    );
    let mut est = Rule::new(Action::Accept);
    est.ctstate = Some(Match::new(vec![CtState::Established, CtState::Related]));
    let mut block = Rule::new(Action::Drop);
    block.family = Some(Family::Ipv4);
    block.match_set = Some(MatchSet {
        name: "bench".into(),
        dir: SetDir::Src,
        not: false,
    });
    r.forward = config::ruleset::Stage {
        policy: Policy::Drop,
        rules: vec![est, block, Rule::new(Action::Accept)],
        chains: std::collections::BTreeMap::new(),
    };
    r
}

/// Packets: half from a member's address, half from anywhere.
fn packets(set: &IpSet, rng: &mut Rng) -> Vec<(PacketMeta, Vec<u8>, Key)> {
    (0..PACKETS)
        .map(|i| {
            let src = if i % 2 == 0 {
                let m = set.members[rng.next() as usize % set.members.len()].net;
                let base = match m.addr {
                    IpAddr::V4(a) => u32::from(a),
                    IpAddr::V6(_) => 0,
                };
                Ipv4Addr::from(base | (rng.next() as u32 & host_mask(m.prefix)))
            } else {
                Ipv4Addr::from(rng.next() as u32)
            };
            let frame = Udp::new(format!("{src}:40000").as_str(), "10.9.9.9:53")
                .payload(*b"q")
                .frame();
            let m = wire::parse(&frame).expect("a valid frame");
            let key = Key::from_meta(&m, 0, 1, Some(CtState::New), None);
            (m, frame, key)
        })
        .collect()
}

#[inline(never)]
fn decide_loop(
    rules: &CompiledRuleset,
    pkts: &[(PacketMeta, Vec<u8>, Key)],
    n: u64,
) -> (Duration, u64) {
    let mask = pkts.len() - 1;
    let mut sum = 0u64;
    let t = Instant::now();
    for i in 0..n {
        let (m, f, k) = black_box(&pkts[i as usize & mask]);
        let (rule, _) = rules
            .forward
            .decide(k, (m, f), &engine::mark::Marks::new(), 1, |_, _| {});
        sum = sum.wrapping_add(u64::from(rule.unwrap_or(9)));
    }
    (t.elapsed(), black_box(sum))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanoseconds and counts far below 2^52"
)]
pub fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "{:>9} {:>10} {:>9} {:>9} {:>6}",
        "members", "type", "build_ms", "decide_ns", "hit%"
    );
    let mut first: Vec<(SetType, f64)> = Vec::new();
    for kind in [SetType::HashIp, SetType::HashNet] {
        for &n in &args.members {
            if n == 0 {
                bail!("--members: each size must be at least 1");
            }
            let mut rng = Rng(n as u64 ^ 0x5e7);
            let r = ruleset(kind, n, &mut rng);
            let t = Instant::now();
            let rules = Arc::new(CompiledRuleset::compile(&r, 1).context("compiling")?);
            let build = t.elapsed();
            let pkts = packets(&r.sets["bench"], &mut rng);
            let hits = pkts
                .iter()
                .filter(|(m, f, k)| {
                    rules
                        .forward
                        .decide(k, (m, f), &engine::mark::Marks::new(), 1, |_, _| {})
                        .0
                        == Some(1)
                })
                .count();
            decide_loop(&rules, &pkts, args.lookups / 10);
            let per = (args.lookups / args.rounds.max(1)).max(1);
            let ns = (0..args.rounds.max(1))
                .map(|_| decide_loop(&rules, &pkts, per).0.as_nanos() as f64 / per as f64)
                .fold(f64::INFINITY, f64::min);
            println!(
                "{:>9} {:>10} {:>9.1} {:>9.1} {:>6.1}",
                n,
                kind.name(),
                build.as_secs_f64() * 1e3,
                ns,
                100.0 * hits as f64 / pkts.len() as f64
            );
            match first.iter().find(|(k, _)| *k == kind) {
                Some((_, ns0)) => println!(
                    "ratio decide_ns {n}/{} members ({}): {:.2}",
                    args.members[0],
                    kind.name(),
                    ns / ns0
                ),
                None => first.push((kind, ns)),
            }
        }
    }
    Ok(())
}
