//! `statewall-bench engine | pipeline | shard | gen-pcap`: the whole packet path and the
//! conntrack shard alone, on synthetic TCP traces held in memory, one core.
//!
//! Traces. Flow `i` is a TCP connection from `lan` (10.64.0.0/10, ports 1024..2047) to a
//! server: even flows go to one of the last tenth of the ruleset's host rules, odd flows to
//! 203.0.113.x:22 (the final rule), so NEW packets walk a ruleset that cannot stop early.
//! - *established*: every flow is set up first (SYN, SYN-ACK, ACK through the pipeline),
//!   then the timed trace is each flow's pure ACK in both directions, in a random order.
//!   They hit the ESTABLISHED accept rule through the per-flow verdict cache.
//! - *new*: SYNs of `flows` distinct connections, cycled in a fixed random order, with the
//!   engine clock advancing so that a connection's SYN_SENT entry has expired by the time
//!   its key comes round again: every SYN is a NEW connection that is accepted and
//!   inserted, the table holds `flows` live entries throughout (the expired entry is reaped
//!   by the lookup or the sweep), and the cost includes that removal, as a steady state of
//!   new connections must.
//!
//! Frames are 60 bytes (64 on the wire with the FCS), stored contiguously. The table is
//! pre-sized to `flows` entries (its memory is written at creation) and every test warms up
//! over the whole trace before timing. Each batch of `--batch` packets shares one clock
//! value and is followed by `expire(now, --sweep)`, as a worker's loop does.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use config::matches::{CtState, Match};
use config::ruleset::{Action, Policy, Rule, Ruleset, Stage};
use engine::conntrack::entry::Entry;
use engine::conntrack::expect::SharedExpectations;
use engine::conntrack::tcp::state;
use engine::conntrack::{Shard, Track};
use engine::flow::steer_hash;
use engine::packet::tcp_flags::{ACK, SYN};
use engine::packet::PacketMeta;
use engine::pipeline::{Outcome, Packet, Pipeline, Verdict};
use engine::ruleset::CompiledRuleset;
use engine::wire::{self, build};

use crate::classifier::{host, ruleset, Rng};

/// Stride of a frame in the trace buffer (frames are 60 bytes).
const STRIDE: usize = 64;
const FRAME_LEN: usize = 60;
const LAN: u8 = 0;
const WAN: u8 = 1;
const CLIENT_ISN: u32 = 1000;
const SERVER_ISN: u32 = 5000;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Live flow counts, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10_000, 1_000_000])]
    pub flows: Vec<usize>,
    /// Rule counts of the forward stage, comma separated (each at least 3).
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 1000, 10_000])]
    pub rules: Vec<usize>,
    /// Timed packets per round.
    #[arg(long, default_value_t = 2_000_000)]
    pub packets: usize,
    /// Timed rounds; the median is reported (min and max beside it).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Packets per `Pipeline::process` call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Entries the expiry sweep examines after each batch.
    #[arg(long, default_value_t = 64)]
    pub sweep: usize,
    /// Which traffic: established, new, or both.
    #[arg(long, value_enum, default_value_t = Traffic::Both)]
    pub traffic: Traffic,
    /// Sync on (pipeline only): the shard records its events and the loop hands them to a
    /// ring after every batch, which a thread on another core empties (`bench/src/sync.rs`).
    #[arg(long)]
    pub sync: bool,
    /// With --sync: events the ring holds (the daemon's default `event_ring`).
    #[arg(long, default_value_t = 65_536)]
    pub sync_ring: usize,
    /// With --sync: no thread empties the ring (give it room for the whole run with
    /// --sync-ring). For callgrind: its collection, toggled by the loop, would count the
    /// consumer's instructions too while valgrind runs one thread at a time.
    #[arg(long)]
    pub sync_no_consumer: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    Established,
    New,
    Both,
}

impl Traffic {
    pub(crate) fn established(self) -> bool {
        self != Traffic::New
    }
    pub(crate) fn new_conns(self) -> bool {
        self != Traffic::Established
    }
}

#[derive(clap::Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub common: Args,
    /// Time capture files instead of the synthetic traces (plain pcap or pcapng).
    #[arg(long, num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    /// Ingress port of every packet of a classic pcap (pcapng names it per interface).
    #[arg(long)]
    pub ingress: Option<String>,
    /// Ruleset file for `--pcap` (default: ESTABLISHED,RELATED accept, INVALID drop, policy
    /// accept, so that every new flow is committed, as `ct(commit)` in OVS).
    #[arg(long)]
    pub ruleset: Option<PathBuf>,
    /// Table capacity for `--pcap` (default: the packet count, an upper bound on the flows).
    #[arg(long)]
    pub capacity: Option<usize>,
}

#[derive(clap::Args)]
pub struct GenArgs {
    /// Connections in the trace.
    #[arg(long, default_value_t = 1_000_000)]
    pub flows: usize,
    /// Established packets per connection after its handshake (alternating directions,
    /// each round over all connections in a new random order).
    #[arg(long, default_value_t = 2)]
    pub established: usize,
    /// Write pcapng with interfaces `lan` and `wan` (replies arrive on `wan`); the default is
    /// classic pcap (read it with `--ingress lan`).
    #[arg(long)]
    pub pcapng: bool,
    #[arg(long)]
    pub out: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Machine and run description.

pub fn print_header() {
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    println!(
        "# {y:04}-{m:02}-{d:02} {:02}:{:02} UTC; nproc {nproc}; cpu {model}; loadavg {}",
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "# size_of::<Entry>() = {} bytes",
        std::mem::size_of::<Entry>()
    );
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Index bytes per entry of a table for `capacity` entries (mirrors `Table::new`: slots are
/// the next power of two of twice the capacity, 8 bytes each).
#[expect(clippy::cast_precision_loss, reason = "sizes far below 2^52")]
fn index_bytes_per_entry(capacity: usize) -> f64 {
    let slots = (capacity.max(1) * 2).next_power_of_two().max(16);
    (slots * 8) as f64 / capacity.max(1) as f64
}

#[expect(clippy::cast_precision_loss, reason = "sizes far below 2^52")]
fn bytes_per_entry(capacity: usize) -> f64 {
    std::mem::size_of::<Entry>() as f64 + index_bytes_per_entry(capacity)
}

// ---------------------------------------------------------------------------------------
// Rulesets and traces.

/// The classifier bench's forward stage (policy drop) as a whole ruleset (ports lan, wan).
pub fn synthetic_ruleset(n: usize) -> anyhow::Result<(CompiledRuleset, Vec<u32>)> {
    if n < 3 {
        bail!("--rules: each count must be at least 3 (two state rules and a final rule)");
    }
    let (rules, hosts) = ruleset(n);
    let r = Ruleset {
        forward: Stage {
            policy: Policy::Drop,
            rules,
            ..Stage::default()
        },
        ..Ruleset::default()
    };
    let c = CompiledRuleset::compile(&r, 1)?;
    ensure!(
        c.port_index("lan") == Some(LAN) && c.port_index("wan") == Some(WAN),
        "unexpected port order {:?}",
        c.ports
    );
    let tail: Vec<u32> = hosts[hosts.len() - hosts.len().div_ceil(10)..]
        .iter()
        .map(|&(_, h)| h)
        .collect();
    Ok((c, tail))
}

/// Accept-all for captures: ESTABLISHED,RELATED accept, INVALID drop, policy accept.
fn accept_all() -> Ruleset {
    let mut est = Rule::new(Action::Accept);
    est.ctstate = Some(Match::new(vec![CtState::Established, CtState::Related]));
    let mut inv = Rule::new(Action::Drop);
    inv.ctstate = Some(Match::new(vec![CtState::Invalid]));
    Ruleset {
        forward: Stage {
            policy: Policy::Accept,
            rules: vec![est, inv],
            ..Stage::default()
        },
        ..Ruleset::default()
    }
}

/// Client and server of flow `i`; `tail` are host rule numbers to aim even flows at (empty:
/// every flow goes to port 22).
fn endpoints(i: usize, tail: &[u32]) -> (SocketAddr, SocketAddr) {
    let i32 = i as u32;
    let client = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0x0a40_0000 + (i32 >> 10))),
        1024 + (i32 & 1023) as u16,
    );
    let server = if i & 1 == 0 && !tail.is_empty() {
        let (ip, port) = host(tail[(i / 2) % tail.len()]);
        SocketAddr::new(ip, port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 | (i32 & 0xff))), 22)
    };
    (client, server)
}

fn frame(t: &build::Tcp) -> Vec<u8> {
    build::pad_to_min(t.frame())
}

fn syn(c: SocketAddr, s: SocketAddr) -> Vec<u8> {
    frame(&build::Tcp {
        seq: CLIENT_ISN,
        ..build::Tcp::new(c, s, SYN)
    })
}

fn syn_ack(c: SocketAddr, s: SocketAddr) -> Vec<u8> {
    frame(&build::Tcp {
        seq: SERVER_ISN,
        ack: CLIENT_ISN + 1,
        ..build::Tcp::new(s, c, SYN | ACK)
    })
}

/// The client's pure ACK (the handshake's third packet, and every established one).
fn client_ack(c: SocketAddr, s: SocketAddr) -> Vec<u8> {
    frame(&build::Tcp {
        seq: CLIENT_ISN + 1,
        ack: SERVER_ISN + 1,
        ..build::Tcp::new(c, s, ACK)
    })
}

fn server_ack(c: SocketAddr, s: SocketAddr) -> Vec<u8> {
    frame(&build::Tcp {
        seq: SERVER_ISN + 1,
        ack: CLIENT_ISN + 1,
        ..build::Tcp::new(s, c, ACK)
    })
}

/// Frames stored contiguously at a 64-byte stride.
pub(crate) struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    fn with_capacity(n: usize) -> Frames {
        Frames {
            buf: Vec::with_capacity(n * STRIDE),
        }
    }

    fn push(&mut self, f: &[u8]) {
        assert_eq!(f.len(), FRAME_LEN, "synthetic frames are 60 bytes");
        self.buf.extend_from_slice(f);
        self.buf.resize(self.buf.len() + STRIDE - FRAME_LEN, 0);
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.buf[i * STRIDE..i * STRIDE + FRAME_LEN]
    }
}

/// A random permutation of `0..n` (Fisher-Yates, fixed seed).
fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut rng = Rng(seed);
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Established trace: each flow's client ACK (from lan) and server ACK (from wan), all 2n
/// in a random order. Frames are stored in trace order, as a NIC's receive ring hands them
/// over (the frame read is sequential; the table accesses are what is random).
pub(crate) fn established_frames(n: usize, tail: &[u32]) -> (Frames, Vec<(u32, u8)>) {
    let mut frames = Frames::with_capacity(2 * n);
    let mut order = Vec::with_capacity(2 * n);
    for (i, k) in permutation(2 * n, 0xe57a).into_iter().enumerate() {
        let k = k as usize;
        let (c, s) = endpoints(k % n, tail);
        if k < n {
            frames.push(&client_ack(c, s));
            order.push((i as u32, LAN));
        } else {
            frames.push(&server_ack(c, s));
            order.push((i as u32, WAN));
        }
    }
    (frames, order)
}

/// New-connection trace: each flow's SYN, in a random order (stored in trace order).
pub(crate) fn syn_frames(n: usize, tail: &[u32]) -> (Frames, Vec<(u32, u8)>) {
    let mut frames = Frames::with_capacity(n);
    let mut order = Vec::with_capacity(n);
    for (i, k) in permutation(n, 0x5e7).into_iter().enumerate() {
        let (c, s) = endpoints(k as usize, tail);
        frames.push(&syn(c, s));
        order.push((i as u32, LAN));
    }
    (frames, order)
}

pub(crate) fn packets<'a>(frames: &'a Frames, order: &[(u32, u8)]) -> Vec<Packet<'a>> {
    order
        .iter()
        .map(|&(k, port)| Packet {
            frame: frames.get(k as usize),
            in_port: port,
        })
        .collect()
}

/// Engine time to advance per batch so that a key seen `n` packets ago has expired after
/// `timeout` (a key's previous SYN is at least `n / batch - 1` batches back).
pub(crate) fn new_conn_step(n: usize, batch: usize, timeout: u64) -> u64 {
    let gap = (n / batch).saturating_sub(1).max(1) as u64;
    timeout / gap + 1
}

// ---------------------------------------------------------------------------------------
// Timed loops (their own functions so callgrind can count just them:
// `--toggle-collect='*pipeline_loop*'`, `*shard_loop*`).

/// Run `count` packets of `pkts` (cycling from `*pos`) through `p` in batches, advancing
/// the clock by `step` per batch and sweeping `sweep` entries after each.
#[inline(never)]
pub(crate) fn pipeline_loop(
    p: &mut Pipeline,
    pkts: &[Packet],
    pos: &mut usize,
    count: usize,
    batch: usize,
    now: &mut u64,
    step: u64,
    sweep: usize,
    out: &mut [Outcome],
    mut sync: Option<&mut crate::sync::Handover>,
) -> u64 {
    let mut left = count;
    let mut accepted = 0u64;
    while left > 0 {
        let b = batch.min(left).min(pkts.len() - *pos);
        let o = &mut out[..b];
        p.process(*now, &pkts[*pos..*pos + b], o);
        accepted += o.iter().filter(|o| o.verdict == Verdict::Accept).count() as u64;
        p.expire(*now, sweep);
        if let Some(h) = sync.as_deref_mut() {
            h.hand_over(p);
        }
        *now += step;
        *pos += b;
        if *pos == pkts.len() {
            *pos = 0;
        }
        left -= b;
    }
    black_box(accepted)
}

/// The shard alone: `track` (checksums taken as verified) and, for NEW, `confirm`; with
/// `prefetch`, each batch's flows are hashed and `Shard::prefetch`ed first.
#[inline(never)]
fn shard_loop(
    s: &mut Shard,
    metas: &[(PacketMeta, u32)],
    frames: &Frames,
    pos: &mut usize,
    count: usize,
    batch: usize,
    now: &mut u64,
    step: u64,
    sweep: usize,
    prefetch: bool,
) -> u64 {
    let mut left = count;
    let mut ok = 0u64;
    while left > 0 {
        let b = batch.min(left).min(metas.len() - *pos);
        if prefetch {
            // As `Pipeline::process` does: hash the batch's flows, start their fetches.
            for (m, _) in &metas[*pos..*pos + b] {
                if let Some(h) = steer_hash(m) {
                    s.prefetch(h);
                }
            }
        }
        for (m, f) in &metas[*pos..*pos + b] {
            match s.track(*now, m, frames.get(*f as usize), true) {
                Track::Tracked { .. } => ok += 1,
                Track::New { .. } if s.confirm().is_some() => ok += 1,
                _ => {}
            }
        }
        s.expire(*now, sweep);
        *now += step;
        *pos += b;
        if *pos == metas.len() {
            *pos = 0;
        }
        left -= b;
    }
    black_box(ok)
}

pub(crate) fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n.max(1) as f64
}

fn print_columns() {
    println!(
        "{:<6} {:<11} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "part",
        "traffic",
        "flows",
        "rules",
        "Mpps",
        "ns/pkt",
        "min_ns",
        "max_ns",
        "live",
        "B/entry"
    );
}

fn print_row(
    part: &str,
    traffic: &str,
    flows: usize,
    rules: &str,
    ns: (f64, f64, f64),
    live: usize,
) {
    println!(
        "{:<6} {:<11} {:>8} {:>6} {:>8.2} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>8.1}",
        part,
        traffic,
        flows,
        rules,
        1e3 / ns.0,
        ns.0,
        ns.1,
        ns.2,
        live,
        bytes_per_entry(flows)
    );
}

// ---------------------------------------------------------------------------------------
// Pipeline.

/// Set up `n` established flows in a fresh pipeline.
pub(crate) fn established_pipeline(
    rules: &Arc<CompiledRuleset>,
    n: usize,
    tail: &[u32],
) -> anyhow::Result<Pipeline> {
    let mut p = Pipeline::new(Arc::clone(rules), n);
    for i in 0..n {
        let (c, s) = endpoints(i, tail);
        for (f, port) in [
            (syn(c, s), LAN),
            (syn_ack(c, s), WAN),
            (client_ack(c, s), LAN),
        ] {
            let o = p.process_one(
                1,
                &Packet {
                    frame: &f,
                    in_port: port,
                },
            );
            ensure!(
                o.verdict == Verdict::Accept,
                "setup of flow {i}: {o:?} (port {port})"
            );
        }
    }
    ensure!(
        p.shard().len() == n,
        "{} live after setup of {n}",
        p.shard().len()
    );
    Ok(p)
}

pub fn pipeline(a: &Args) -> anyhow::Result<()> {
    print_columns();
    let mut est_ns: Vec<(usize, usize, f64)> = Vec::new();
    let mut new_ns: Vec<(usize, usize, f64)> = Vec::new();
    for &n in &a.flows {
        for &r in &a.rules {
            let (rules, tail) = synthetic_ruleset(r)?;
            let rules = Arc::new(rules);
            let mut out = vec![Outcome::default(); a.batch];
            if a.traffic.established() {
                let mut p = established_pipeline(&rules, n, &tail)?;
                let mut h = a.sync.then(|| {
                    crate::sync::Handover::start(&mut p, a.sync_ring, !a.sync_no_consumer)
                });
                let (frames, order) = established_frames(n, &tail);
                let pkts = packets(&frames, &order);
                let (mut pos, mut now) = (0, 2);
                let before = p.counters.clone();
                // Warm-up: the whole trace once.
                pipeline_loop(
                    &mut p,
                    &pkts,
                    &mut pos,
                    pkts.len(),
                    a.batch,
                    &mut now,
                    1,
                    a.sweep,
                    &mut out,
                    h.as_mut(),
                );
                let mut v = Vec::new();
                for _ in 0..a.rounds {
                    let t = Instant::now();
                    let acc = pipeline_loop(
                        &mut p,
                        &pkts,
                        &mut pos,
                        a.packets,
                        a.batch,
                        &mut now,
                        1,
                        a.sweep,
                        &mut out,
                        h.as_mut(),
                    );
                    v.push(ns_per(t.elapsed(), a.packets));
                    ensure!(
                        acc == a.packets as u64,
                        "established: {acc} of {} accepted",
                        a.packets
                    );
                }
                let c = &p.counters;
                let est = c.ctstate[CtState::Established as usize]
                    - before.ctstate[CtState::Established as usize];
                ensure!(
                    est == c.rx_packets - before.rx_packets
                        && c.cache_hits - before.cache_hits == est,
                    "established trace: not all ESTABLISHED cache hits: {c:?}"
                );
                if let Some(h) = h {
                    h.report(&mut p);
                }
                let m = median(v);
                est_ns.push((n, r, m.0));
                print_row("pipe", "established", n, &r.to_string(), m, p.shard().len());
            }
            if a.traffic.new_conns() {
                let mut p = Pipeline::new(Arc::clone(&rules), n);
                let mut h = a.sync.then(|| {
                    crate::sync::Handover::start(&mut p, a.sync_ring, !a.sync_no_consumer)
                });
                let (frames, order) = syn_frames(n, &tail);
                let pkts = packets(&frames, &order);
                let step = new_conn_step(n, a.batch, rules.sysctls.tcp[state::SYN_SENT as usize]);
                let (mut pos, mut now) = (0, 1);
                // Warm-up: fill the table, then one more cycle (every SYN now replaces an
                // expired entry).
                pipeline_loop(
                    &mut p,
                    &pkts,
                    &mut pos,
                    2 * pkts.len(),
                    a.batch,
                    &mut now,
                    step,
                    a.sweep,
                    &mut out,
                    h.as_mut(),
                );
                let inserted = p.shard().stats.inserted;
                let mut v = Vec::new();
                for _ in 0..a.rounds {
                    let t = Instant::now();
                    let acc = pipeline_loop(
                        &mut p,
                        &pkts,
                        &mut pos,
                        a.packets,
                        a.batch,
                        &mut now,
                        step,
                        a.sweep,
                        &mut out,
                        h.as_mut(),
                    );
                    v.push(ns_per(t.elapsed(), a.packets));
                    ensure!(
                        acc == a.packets as u64,
                        "new: {acc} of {} accepted",
                        a.packets
                    );
                }
                let ins = p.shard().stats.inserted - inserted;
                ensure!(
                    ins == (a.packets * a.rounds) as u64,
                    "new: {ins} inserted for {} SYNs",
                    a.packets * a.rounds
                );
                if let Some(h) = h {
                    h.report(&mut p);
                }
                let m = median(v);
                new_ns.push((n, r, m.0));
                print_row("pipe", "new", n, &r.to_string(), m, p.shard().len());
            }
        }
    }
    for (name, v) in [("established", &est_ns), ("new", &new_ns)] {
        for &n in &a.flows {
            let row: Vec<_> = v.iter().filter(|x| x.0 == n).collect();
            if let (Some(f), Some(l)) = (row.first(), row.last()) {
                if f.1 != l.1 {
                    println!(
                        "ratio {name} {n} flows: {} rules / {} rules = {:.2}",
                        l.1,
                        f.1,
                        l.2 / f.2,
                    );
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shard.

fn metas(frames: &Frames, order: &[(u32, u8)]) -> anyhow::Result<Vec<(PacketMeta, u32)>> {
    order
        .iter()
        .map(|&(k, _)| {
            let m = wire::parse(frames.get(k as usize))
                .map_err(|e| anyhow::anyhow!("synthetic frame {k} does not parse: {e:?}"))?;
            Ok((m, k))
        })
        .collect()
}

pub fn shard(a: &Args) -> anyhow::Result<()> {
    print_columns();
    let timeouts = engine::conntrack::Sysctls::default();
    for &n in &a.flows {
        let tail: Vec<u32> = Vec::new();
        let new_shard = || Shard::new(n, timeouts, &[], Arc::new(SharedExpectations::new(256)));
        for established in [true, false] {
            if !(if established {
                a.traffic.established()
            } else {
                a.traffic.new_conns()
            }) {
                continue;
            }
            let mut s = new_shard();
            let (frames, order, step, warm) = if established {
                for i in 0..n {
                    let (c, sv) = endpoints(i, &tail);
                    for f in [syn(c, sv), syn_ack(c, sv), client_ack(c, sv)] {
                        let m = wire::parse(&f).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        if let Track::New { .. } = s.track(1, &m, &f, true) {
                            s.confirm().context("table full during setup")?;
                        }
                    }
                }
                ensure!(s.len() == n, "{} live after setup of {n}", s.len());
                let (f, o) = established_frames(n, &tail);
                (f, o, 1, 1)
            } else {
                let (f, o) = syn_frames(n, &tail);
                let step = new_conn_step(n, a.batch, timeouts.tcp[state::SYN_SENT as usize]);
                (f, o, step, 2)
            };
            let ms = metas(&frames, &order)?;
            let (mut pos, mut now) = (0, 2);
            let count = warm * ms.len();
            shard_loop(
                &mut s, &ms, &frames, &mut pos, count, a.batch, &mut now, step, a.sweep, true,
            );
            // Rounds alternate without and with prefetching, on the same shard.
            let mut v = [Vec::new(), Vec::new()];
            for _ in 0..a.rounds {
                for (pf, v) in v.iter_mut().enumerate() {
                    let t = Instant::now();
                    let ok = shard_loop(
                        &mut s,
                        &ms,
                        &frames,
                        &mut pos,
                        a.packets,
                        a.batch,
                        &mut now,
                        step,
                        a.sweep,
                        pf == 1,
                    );
                    v.push(ns_per(t.elapsed(), a.packets));
                    ensure!(
                        ok == a.packets as u64,
                        "shard: {ok} of {} tracked or inserted",
                        a.packets
                    );
                }
            }
            let name = if established { "lookup" } else { "insert" };
            let [plain, pf] = v;
            if !established {
                let st = &s.stats;
                println!(
                    "# shard insert {n}: inserted {} expired {} early drops {} table full {}",
                    st.inserted, st.expired, st.early_drops, st.table_full
                );
            }
            print_row("shard", name, n, "-", median(plain), s.len());
            print_row("shard", &format!("{name}+pf"), n, "-", median(pf), s.len());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Captures.

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub fn pcap(a: &EngineArgs) -> anyhow::Result<()> {
    let ruleset = match &a.ruleset {
        Some(path) => {
            let p = path.display().to_string();
            match config::load_file(&p) {
                Ok(l) => l.ruleset,
                Err(diags) => {
                    for d in &diags {
                        eprintln!("{d}");
                    }
                    bail!("{p}: invalid ruleset");
                }
            }
        }
        None => accept_all(),
    };
    let rules = Arc::new(CompiledRuleset::compile(&ruleset, 1)?);
    for path in &a.pcap {
        let t = Instant::now();
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let frames = engine::capture::decode(
            std::io::BufReader::new(file),
            &path.display().to_string(),
            a.ingress.as_deref(),
        )?;
        let load = t.elapsed();
        let mut pkts = Vec::with_capacity(frames.len());
        let mut times = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let port = rules.port_index(&f.port).with_context(|| {
                format!(
                    "packet {i} arrived on `{}`, not a port of the ruleset ({})",
                    f.port,
                    rules.ports.join(", ")
                )
            })?;
            pkts.push(Packet {
                frame: &f.data,
                in_port: port,
            });
            times.push(f.ts_ns);
        }
        let capacity = a.capacity.unwrap_or(pkts.len()).max(1024);
        println!(
            "# {}: {} packets loaded in {:.2} s; table capacity {capacity} ({:.1} B/entry)",
            path.display(),
            pkts.len(),
            load.as_secs_f64(),
            bytes_per_entry(capacity)
        );
        let mut out = vec![Outcome::default(); a.common.batch];
        let mut v = Vec::new();
        let mut last = None;
        // Pass 0 warms up (code, frames, allocator); passes 1.. are timed, each on a fresh
        // pipeline created (and its table written) before the clock starts.
        for pass in 0..=a.common.rounds.max(1) {
            let mut p = Pipeline::new(Arc::clone(&rules), capacity);
            let t = Instant::now();
            capture_loop(
                &mut p,
                &pkts,
                &times,
                a.common.batch,
                a.common.sweep,
                &mut out,
            );
            let d = t.elapsed();
            if pass > 0 {
                v.push(ns_per(d, pkts.len()));
                last = Some(p);
            }
        }
        let p = last.context("no timed pass")?;
        let (med, lo, hi) = median(v);
        let c = &p.counters;
        let secs = med * pkts.len() as f64 / 1e9;
        let inserted = p.shard().stats.inserted;
        println!(
            "packets {}  ns/pkt {med:.1} (min {lo:.1}, max {hi:.1} over {} passes)  Mpps {:.2}",
            pkts.len(),
            a.common.rounds.max(1),
            1e3 / med
        );
        println!(
            "new connections {inserted}  new conns/s {:.3} M  live at end {}",
            inserted as f64 / secs / 1e6,
            p.shard().len()
        );
        println!(
            "ctstate: new {} established {} related {} invalid {} untracked {}; accepted {} dropped {} (table full {}); cache hits {}",
            c.ctstate[CtState::New as usize],
            c.ctstate[CtState::Established as usize],
            c.ctstate[CtState::Related as usize],
            c.ctstate[CtState::Invalid as usize],
            c.ctstate[CtState::Untracked as usize],
            c.accepted,
            c.dropped.iter().sum::<u64>(),
            p.shard().stats.table_full,
            c.cache_hits
        );
    }
    Ok(())
}

/// One pass over a capture: batches share the clock of their first packet.
#[inline(never)]
fn capture_loop(
    p: &mut Pipeline,
    pkts: &[Packet],
    times: &[u64],
    batch: usize,
    sweep: usize,
    out: &mut [Outcome],
) {
    for (chunk, ts) in pkts.chunks(batch).zip(times.chunks(batch)) {
        let now = ts[0];
        p.process(now, chunk, &mut out[..chunk.len()]);
        p.expire(now, sweep);
    }
    black_box(&out);
}

// ---------------------------------------------------------------------------------------
// Capture generator.

pub fn gen_pcap(a: &GenArgs) -> anyhow::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use std::borrow::Cow;
    use std::io::{BufWriter, Write};

    enum W {
        Pcap(PcapWriter<BufWriter<std::fs::File>>),
        Ng(PcapNgWriter<BufWriter<std::fs::File>>),
    }
    let file = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&a.out)
            .with_context(|| format!("cannot create {}", a.out.display()))?,
    );
    let mut w = if a.pcapng {
        let mut w = PcapNgWriter::new(file)?;
        for name in ["lan", "wan"] {
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 0,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })?;
        }
        W::Ng(w)
    } else {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: pcap_file::TsResolution::NanoSecond,
            ..PcapHeader::default()
        };
        W::Pcap(PcapWriter::with_header(file, header)?)
    };
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut count = 0u64;
    let mut write = |f: &[u8], port: u8| -> anyhow::Result<()> {
        ts += 1000;
        count += 1;
        let t = Duration::from_nanos(ts);
        match &mut w {
            W::Pcap(w) => {
                w.write_packet(&PcapPacket::new(t, f.len() as u32, f))?;
            }
            W::Ng(w) => {
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: u32::from(port),
                    timestamp: t,
                    original_len: f.len() as u32,
                    data: Cow::Borrowed(f),
                    options: vec![],
                })?;
            }
        }
        Ok(())
    };
    let tail: Vec<u32> = Vec::new();
    for i in 0..a.flows {
        let (c, s) = endpoints(i, &tail);
        write(&syn(c, s), LAN)?;
        write(&syn_ack(c, s), WAN)?;
        write(&client_ack(c, s), LAN)?;
    }
    for round in 0..a.established {
        for k in permutation(a.flows, 0xa11 + round as u64) {
            let (c, s) = endpoints(k as usize, &tail);
            if round % 2 == 0 {
                write(&client_ack(c, s), LAN)?;
            } else {
                write(&server_ack(c, s), WAN)?;
            }
        }
    }
    match w {
        W::Pcap(w) => w.into_writer().flush()?,
        W::Ng(w) => w.into_inner().flush()?,
    }
    println!(
        "wrote {count} packets ({} connections: handshake + {} established each) to {}",
        a.flows,
        a.established,
        a.out.display()
    );
    Ok(())
}
