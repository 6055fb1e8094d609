//! The runtime with the in-memory IO and real threads: two workers, packets fed on one queue
//! and on two, must give single-threaded replay's verdicts and table, with the handoffs the
//! ownership rule predicts; a ruleset swap mid-traffic keeps established flows; counters add
//! up. Packets are fed in lockstep (the next one only once the last was decided, on a
//! manual clock set to its capture time), which is what a real network does to a flow's
//! packets: a reply never overtakes the packet it answers.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::protocol::{ConntrackFilter, ConntrackOp};
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::stats::WorkerCounters;
use dataplane::runtime::{Clock, PollMode, Runtime, RuntimeConfig, RuntimeHandle};
use engine::capture;
use engine::conntrack::listing;
use engine::flow::{owner, steer_hash};
use engine::packet::tcp_flags::{ACK, FIN, PSH, SYN};
use engine::pipeline::{Packet, Verdict};
use engine::reason::DropReason;
use engine::ruleset::CompiledRuleset;
use engine::sharded::Sharded;
use engine::wire::build::{Icmp, Tcp, Udp};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn seed_yaml() -> String {
    std::fs::read_to_string(root().join("examples/seed-gateway.yaml")).unwrap()
}

fn load(yaml: &str) -> config::Ruleset {
    config::load_str(yaml, "test.yaml").unwrap().ruleset
}

/// `(time ns, ingress port, frame)`.
type Trace = Vec<(u64, u8, Vec<u8>)>;

fn capture() -> Trace {
    let rules = CompiledRuleset::compile(&load(&seed_yaml()), 1).unwrap();
    let file = std::fs::File::open(root().join("tests/data/http-gateway.pcapng")).unwrap();
    capture::decode(std::io::BufReader::new(file), "http-gateway.pcapng", None)
        .unwrap()
        .into_iter()
        .map(|f| (f.ts_ns, rules.port_index(&f.port).unwrap(), f.data))
        .collect()
}

fn tcp(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    Tcp {
        seq,
        ack,
        ..Tcp::new(src, dst, flags)
    }
    .payload(data.to_vec())
    .frame()
}

fn host(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 10, 1, i))
}

/// Many flows, so that both workers own some: web connections (open, data, close), a
/// refused 8080, DNS with answers, pings.
fn synthetic(flows: u16) -> Trace {
    let server = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 3));
    let mut t = Vec::new();
    let mut now = 1_000_000_000u64;
    for f in 0..flows {
        now += 1_000_000;
        let client = host((f % 50) as u8 + 2);
        let sport = 30_000 + f;
        match f % 4 {
            0 | 1 => {
                let (c, s) = ((client, sport), (server, 80));
                t.push((now, 0, tcp(c, s, SYN, 100, 0, b"")));
                t.push((now + 1, 1, tcp(s, c, SYN | ACK, 900, 101, b"")));
                t.push((now + 2, 0, tcp(c, s, ACK, 101, 901, b"")));
                t.push((
                    now + 3,
                    0,
                    tcp(c, s, ACK | PSH, 101, 901, b"GET / HTTP/1.1\r\n\r\n"),
                ));
                t.push((now + 4, 1, tcp(s, c, ACK | PSH, 901, 119, &[b'x'; 300])));
                if f % 8 == 0 {
                    t.push((now + 5, 0, tcp(c, s, FIN | ACK, 119, 1201, b"")));
                    t.push((now + 6, 1, tcp(s, c, FIN | ACK, 1201, 120, b"")));
                    t.push((now + 7, 0, tcp(c, s, ACK, 120, 1202, b"")));
                }
            }
            2 => {
                // Not allowed: dropped by the policy, no entry.
                t.push((now, 0, tcp((client, sport), (server, 8081), SYN, 5, 0, b"")));
                t.push((
                    now + 1,
                    0,
                    Udp::new((client, sport), (server, 53))
                        .payload(b"q".to_vec())
                        .frame(),
                ));
            }
            _ => {
                t.push((now, 0, Icmp::echo_request(client, server, f, 1).frame()));
                t.push((now + 1, 1, Icmp::echo_reply(server, client, f, 1).frame()));
            }
        }
    }
    t
}

/// What single-threaded replay says: per packet `(verdict, ctstate index)`, and the table.
fn reference(yaml: &str, trace: &Trace) -> (Vec<(Verdict, Option<usize>)>, Vec<String>) {
    let rules = Arc::new(CompiledRuleset::compile(&load(yaml), 1).unwrap());
    let mut e = Sharded::new(&rules, 1);
    let mut out = Vec::new();
    let mut now = 0;
    for (ts, port, frame) in trace {
        now = *ts;
        e.expire(now, 16);
        let o = e.process_one(
            now,
            &Packet {
                frame,
                in_port: *port,
            },
        );
        out.push((o.verdict, o.ctstate.map(|s| s as usize)));
    }
    let live = e
        .pipelines()
        .iter()
        .flat_map(|p| p.shard().entries())
        .filter(|x| x.expires > now);
    let mut table = listing::format_all(live, now);
    table.sort();
    (out, table)
}

struct Rig {
    net: Arc<MemNet>,
    clock: Arc<AtomicU64>,
    rt: Option<Runtime>,
    handle: RuntimeHandle,
    /// Reject answers seen by `lockstep`.
    replies: AtomicU64,
}

impl Rig {
    fn new(yaml: &str, workers: usize, poll: PollMode) -> Rig {
        Rig::with_state(yaml, workers, poll, None)
    }

    /// A rig whose table lives in the state file `state` (`--state`).
    fn with_state(
        yaml: &str,
        workers: usize,
        poll: PollMode,
        state: Option<std::path::PathBuf>,
    ) -> Rig {
        let net = MemNet::new(2, workers);
        let clock = Arc::new(AtomicU64::new(1));
        let cfg = RuntimeConfig {
            pin: false,
            poll,
            clock: Clock::Manual(Arc::clone(&clock)),
            io_mode: vec!["memory".into()],
            state,
            ..RuntimeConfig::default()
        };
        let ios = (0..workers).map(|q| net.ports_for(q)).collect();
        let rt = Runtime::start(&load(yaml), yaml, "test.yaml", ios, &cfg).unwrap();
        let handle = rt.handle();
        Rig {
            net,
            clock,
            rt: Some(rt),
            handle,
            replies: AtomicU64::new(0),
        }
    }

    fn total(&self) -> WorkerCounters {
        let mut t = WorkerCounters::default();
        for c in self.handle.counters() {
            t.add(&c);
        }
        t
    }

    /// Reject answers sent so far: frames that went out of the port their packet came in on.
    fn replies(&self) -> u64 {
        self.replies.load(Ordering::Relaxed)
    }

    /// Frames sent out of ports other than `ingress` (a reject rule's answer goes back out
    /// of the ingress port and is no forwarding).
    fn sent_beyond(&self, ingress: u8) -> usize {
        (0..self.net.ports())
            .filter(|&p| p != usize::from(ingress))
            .map(|p| self.net.sent_count(p))
            .sum()
    }

    /// Wait until `f` holds of the total counters.
    fn wait_for(&self, what: &str, f: impl Fn(&WorkerCounters) -> bool) -> WorkerCounters {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = self.total();
            if f(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {t:?}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Feed packets one at a time, each on `queue(index, port)`; per packet the verdict (a
    /// frame left the gateway or not) and the ctstate the engine counted.
    fn lockstep(
        &self,
        trace: &Trace,
        queue: impl Fn(usize, u8) -> usize,
    ) -> Vec<(Verdict, Option<usize>)> {
        let mut out = Vec::new();
        for (i, (ts, port, frame)) in trace.iter().enumerate() {
            self.clock.store(*ts, Ordering::Relaxed);
            let before = self.total();
            let sent = self.sent_beyond(*port);
            let back = self.net.sent_count(usize::from(*port));
            self.net.inject(usize::from(*port), queue(i, *port), frame);
            let done =
                |t: &WorkerCounters| t.processed + t.dropped[DropReason::HandoffFull as usize];
            let after = self.wait_for("the packet to be decided", |t| done(t) > done(&before));
            // Counters are published after the batch's transmit, so a reject answer is out.
            self.replies.fetch_add(
                (self.net.sent_count(usize::from(*port)) - back) as u64,
                Ordering::Relaxed,
            );
            let verdict = if self.sent_beyond(*port) > sent {
                Verdict::Accept
            } else {
                Verdict::Drop
            };
            let ct = (0..5).find(|&s| after.ctstate[s] > before.ctstate[s]);
            out.push((verdict, ct));
        }
        out
    }

    fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.stop();
        }
    }
}

/// Predicted handoffs: packets received by a worker that does not own their flow.
fn predicted_handoffs(trace: &Trace, workers: usize, queue: impl Fn(usize, u8) -> usize) -> u64 {
    trace
        .iter()
        .enumerate()
        .filter(|(i, (_, port, frame))| {
            let own = engine::wire::parse(frame)
                .ok()
                .as_ref()
                .and_then(steer_hash)
                .map(|h| owner(h, workers));
            own.is_some_and(|o| o != queue(*i, *port))
        })
        .count() as u64
}

fn table(h: &RuntimeHandle) -> Vec<String> {
    let r = h
        .conntrack(ConntrackOp::List, &ConntrackFilter::default())
        .unwrap();
    let mut lines: Vec<String> = r.entries.into_iter().map(|e| e.line).collect();
    lines.sort();
    lines
}

fn check_equivalence(trace: &Trace, queue: fn(usize, u8) -> usize) {
    let yaml = seed_yaml();
    let (want, want_table) = reference(&yaml, trace);
    let rig = Rig::new(&yaml, 2, PollMode::Adaptive);
    let got = rig.lockstep(trace, queue);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g, w,
            "packet {i}: runtime {g:?}, single-threaded replay {w:?}"
        );
    }
    // One entry per flow over both shards, the same entries as one shard has.
    assert_eq!(table(&rig.handle), want_table);
    let t = rig.total();
    assert_eq!(t.handoffs_out, predicted_handoffs(trace, 2, queue), "{t:?}");
    assert_eq!(t.handoffs_in, t.handoffs_out);
    assert_eq!(t.rx_packets, trace.len() as u64);
    assert_eq!(t.rx_packets, t.accepted + t.dropped_total(), "{t:?}");
    // Everything accepted was sent, plus the answers of reject rules (out of the ingress port).
    assert_eq!(t.tx_packets, t.accepted + rig.replies(), "{t:?}");
    rig.stop();
}

#[test]
fn capture_on_one_queue_matches_replay() {
    check_equivalence(&capture(), |_, _| 0);
}

#[test]
fn capture_on_two_queues_matches_replay() {
    // lan arrives on queue 0, wan on queue 1: every flow crosses workers.
    check_equivalence(&capture(), |_, port| usize::from(port));
}

#[test]
fn many_flows_on_one_and_two_queues_match_replay() {
    let t = synthetic(64);
    check_equivalence(&t, |_, _| 0);
    check_equivalence(&t, |_, port| usize::from(port));
    check_equivalence(&t, |i, _| i % 2);
    assert!(
        predicted_handoffs(&t, 2, |_, _| 0) > 0,
        "both workers own flows"
    );
}

fn no_new_web(yaml: &str) -> String {
    // The seed ruleset without its `NEW to port 80` rule.
    let i = yaml
        .find("    - in_port: lan                    # 2:")
        .unwrap();
    let j = yaml
        .find("    - in_port: lan                    # 3:")
        .unwrap();
    format!("{}{}", &yaml[..i], &yaml[j..])
}

#[test]
fn ruleset_swap_mid_traffic_keeps_established_flows() {
    let yaml = seed_yaml();
    let rig = Rig::new(&yaml, 2, PollMode::Adaptive);
    let server = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 3));
    let flows: Vec<_> = (0..16u16)
        .map(|f| ((host(2), 40_000 + f), (server, 80)))
        .collect();
    let mut open = Trace::new();
    let mut now = 1_000_000_000;
    for &(c, s) in &flows {
        now += 1000;
        open.push((now, 0, tcp(c, s, SYN, 100, 0, b"")));
        open.push((now + 1, 1, tcp(s, c, SYN | ACK, 900, 101, b"")));
        open.push((now + 2, 0, tcp(c, s, ACK, 101, 901, b"")));
    }
    let by_port = |_: usize, port: u8| usize::from(port);
    assert!(rig
        .lockstep(&open, by_port)
        .iter()
        .all(|(v, _)| *v == Verdict::Accept));

    // Swap ten times while the flows carry data: every segment still passes.
    let strict = no_new_web(&yaml);
    let mut seq = 101u32;
    for round in 0..10 {
        let text = if round % 2 == 0 { &strict } else { &yaml };
        let a = rig.handle.apply(text, "swap.yaml").unwrap();
        assert_eq!(a.generation, a.previous + 1);
        let mut data = Trace::new();
        for &(c, s) in &flows {
            now += 1000;
            data.push((now, 0, tcp(c, s, ACK | PSH, seq, 901, b"data")));
        }
        seq += 4;
        let got = rig.lockstep(&data, by_port);
        assert!(
            got.iter()
                .all(|&(v, ct)| v == Verdict::Accept && ct == Some(1)),
            "round {round}: {got:?}"
        );
    }
    // The last applied ruleset (strict) refuses new web connections.
    let last = rig.handle.apply(&strict, "strict.yaml").unwrap();
    let syn = vec![(
        now + 10,
        0,
        tcp((host(9), 50_000), (server, 80), SYN, 1, 0, b""),
    )];
    assert_eq!(rig.lockstep(&syn, by_port), vec![(Verdict::Drop, Some(0))]);
    let t = rig.wait_for("workers on the last generation", |t| {
        t.generation == u64::from(last.generation)
    });
    assert_eq!(t.generation, u64::from(last.generation));
    // A bad ruleset is refused with its position and changes nothing.
    let bad = yaml.replace(
        "ctstate: new\n      action: accept\n      comment: web",
        "ctstate: neww\n      action: accept\n      comment: web",
    );
    let e = rig.handle.apply(&bad, "bad.yaml").unwrap_err();
    assert_eq!(e.kind, config::protocol::ErrorKind::InvalidConfig);
    assert!(
        e.diagnostics
            .iter()
            .any(|d| d.file == "bad.yaml" && d.line > 1),
        "{e:?}"
    );
    assert_eq!(rig.handle.generation(), last.generation);
    // Entries survived every swap: one per flow.
    assert_eq!(table(&rig.handle).len(), flows.len());
    rig.stop();
}

#[test]
fn free_running_traffic_adds_up() {
    // No lockstep, monotonic clock, busy workers: verdicts may differ from replay where a
    // reply overtakes its request across workers, but nothing is lost or counted twice.
    let yaml = seed_yaml();
    let net = MemNet::new(2, 2);
    let cfg = RuntimeConfig {
        pin: false,
        poll: PollMode::Busy,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(
        &load(&yaml),
        &yaml,
        "t.yaml",
        vec![net.ports_for(0), net.ports_for(1)],
        &cfg,
    )
    .unwrap();
    let h = rt.handle();
    let trace = synthetic(400);
    for (i, (_, port, frame)) in trace.iter().enumerate() {
        net.inject(usize::from(*port), i % 2, frame);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let total = loop {
        let mut t = WorkerCounters::default();
        for c in h.counters() {
            t.add(&c);
        }
        if t.rx_packets == trace.len() as u64
            && t.processed + t.dropped[DropReason::HandoffFull as usize] == t.rx_packets
        {
            break t;
        }
        assert!(Instant::now() < deadline, "{t:?}");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(
        total.rx_packets,
        total.accepted + total.dropped_total(),
        "{total:?}"
    );
    let sent: usize = (0..2).map(|p| net.sent_count(p)).sum();
    assert_eq!(total.tx_packets, sent as u64);
    assert_eq!(total.tx_packets, total.accepted);
    assert_eq!(
        total.ctstate.iter().sum::<u64>(),
        total.processed - total.dropped[DropReason::Malformed as usize]
    );
    let s = h.stats(true);
    assert_eq!(s.per_core.len(), 2);
    assert_eq!(s.total.rx_packets, total.rx_packets);
    assert_eq!(
        s.per_core.iter().map(|c| c.entries).sum::<u64>(),
        s.total.entries
    );
    let count = h
        .conntrack(ConntrackOp::Count, &ConntrackFilter::default())
        .unwrap();
    assert_eq!(count.count, s.total.entries);
    // Histograms saw every decided packet.
    let hist = h.hist(false, true).unwrap();
    assert_eq!(
        hist.total.forwarded.count + hist.total.dropped.count,
        total.processed
    );
    assert!(hist.total.batch.count > 0 && hist.total.batch.p50 <= hist.total.batch.max);
    assert_eq!(hist.per_core.len(), 2);
    rt.stop();
}

#[test]
fn flush_and_filters() {
    let yaml = seed_yaml();
    let rig = Rig::new(&yaml, 2, PollMode::Adaptive);
    let trace = synthetic(32);
    rig.lockstep(&trace, |_, p| usize::from(p));
    let h = &rig.handle;
    let all = h
        .conntrack(ConntrackOp::Count, &ConntrackFilter::default())
        .unwrap();
    let tcp_only = ConntrackFilter {
        proto: Some(6),
        ..ConntrackFilter::default()
    };
    let tcp = h.conntrack(ConntrackOp::List, &tcp_only).unwrap();
    assert!(
        tcp.count > 0 && tcp.count < all.count,
        "{} of {}",
        tcp.count,
        all.count
    );
    assert_eq!(all.by_proto.values().sum::<u64>(), all.count);
    assert_eq!(all.by_proto["tcp"], tcp.count);
    let est = ConntrackFilter {
        state: Some("established".into()),
        ..ConntrackFilter::default()
    };
    let n_est = h.conntrack(ConntrackOp::Count, &est).unwrap().count;
    assert_eq!(n_est, all.by_state.get("ESTABLISHED").copied().unwrap_or(0));
    // get: one tuple, either direction.
    let e = &tcp.entries[0];
    let get = ConntrackFilter {
        proto: Some(6),
        src: Some(e.reply.src),
        dst: Some(e.reply.dst),
        sport: Some(e.reply.sport),
        dport: Some(e.reply.dport),
        ..ConntrackFilter::default()
    };
    let got = h.conntrack(ConntrackOp::Get, &get).unwrap();
    assert_eq!(got.entries.len(), 1);
    assert_eq!(got.entries[0].line, e.line);
    // Flush TCP only, then everything.
    let f = h.conntrack(ConntrackOp::Flush, &tcp_only).unwrap();
    assert_eq!(f.flushed, tcp.count);
    let left = h
        .conntrack(ConntrackOp::Count, &ConntrackFilter::default())
        .unwrap();
    assert_eq!(left.count, all.count - tcp.count);
    let s = h.stats(false);
    assert_eq!(
        s.total.entries, left.count,
        "flushed entries are reaped, not just hidden"
    );
    let f = h
        .conntrack(ConntrackOp::Flush, &ConntrackFilter::default())
        .unwrap();
    assert_eq!(f.flushed, left.count);
    assert_eq!(
        h.conntrack(ConntrackOp::Count, &ConntrackFilter::default())
            .unwrap()
            .count,
        0
    );
    let bad = ConntrackFilter {
        state: Some("ESTABLISHD".into()),
        ..ConntrackFilter::default()
    };
    assert!(h
        .conntrack(ConntrackOp::List, &bad)
        .unwrap_err()
        .message
        .contains("ESTABLISHED"));
    rig.stop();
}

/// Web connections opened (handshake and a request) from `client`s to the server, at `t0`.
fn opened(flows: u16, t0: u64) -> Trace {
    let server = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 3));
    let mut t = Vec::new();
    for f in 0..flows {
        let now = t0 + u64::from(f) * 1_000_000;
        let (c, s) = ((host((f % 50) as u8 + 2), 40_000 + f), (server, 80));
        t.push((now, 0, tcp(c, s, SYN, 100, 0, b"")));
        t.push((now + 1, 1, tcp(s, c, SYN | ACK, 900, 101, b"")));
        t.push((
            now + 2,
            0,
            tcp(c, s, ACK | PSH, 101, 901, b"GET / HTTP/1.1\r\n\r\n"),
        ));
    }
    t
}

/// The same connections going on: the server speaks first (its answer), then the client
/// acknowledges it.
fn going_on(flows: u16, t0: u64) -> Trace {
    let server = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 3));
    let mut t = Vec::new();
    for f in 0..flows {
        let now = t0 + u64::from(f) * 1_000_000;
        let (c, s) = ((host((f % 50) as u8 + 2), 40_000 + f), (server, 80));
        t.push((now, 1, tcp(s, c, ACK | PSH, 901, 119, &[b'x'; 200])));
        t.push((now + 1, 0, tcp(c, s, ACK, 119, 1101, b"")));
    }
    t
}

/// `--state`: the table outlives the runtime. Connections opened under two workers go on
/// under three, with a ruleset that admits no new web connection (and a packet in the middle
/// of a connection is NEW to a table that does not know it: `nf_conntrack_tcp_loose`), so
/// only the restored entries let them through — and without the state file they are dropped.
#[test]
fn the_table_outlives_the_runtime_and_a_worker_count_change() {
    let dir = std::env::temp_dir().join(format!("statewall-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    let yaml = seed_yaml();
    let established = Some(config::matches::CtState::Established as usize);

    let rig = Rig::with_state(&yaml, 2, PollMode::Adaptive, Some(state.clone()));
    let open = opened(24, 1_000_000_000);
    let got = rig.lockstep(&open, |i, _| i % 2);
    assert!(got.iter().all(|(v, _)| *v == Verdict::Accept), "{got:?}");
    let before = table(&rig.handle);
    assert_eq!(before.len(), 24);
    rig.stop();

    let strict = no_new_web(&yaml);
    let rig = Rig::with_state(&strict, 3, PollMode::Adaptive, Some(state.clone()));
    assert_eq!(rig.rt.as_ref().unwrap().restored().restored, 24);
    // The same entries (the timeout column aside: the clock moved on).
    let strip = |lines: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = lines
            .into_iter()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| w.parse::<u64>().is_err())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(table(&rig.handle)), strip(before));
    let more = going_on(24, 2_000_000_000);
    let got = rig.lockstep(&more, |i, _| i % 3);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            *g,
            (Verdict::Accept, established),
            "packet {i} after the restart"
        );
    }
    // A connection the table never saw is refused by the same ruleset.
    let stranger = going_on(25, 3_000_000_000).split_off(48);
    let got = rig.lockstep(&stranger, |_, _| 0);
    assert!(got.iter().all(|(v, _)| *v == Verdict::Drop), "{got:?}");
    rig.stop();

    // Without the state file, the same packets are strangers too.
    let rig = Rig::with_state(&strict, 3, PollMode::Adaptive, None);
    let got = rig.lockstep(&going_on(24, 2_000_000_000), |i, _| i % 3);
    assert!(got.iter().all(|(v, _)| *v == Verdict::Drop), "{got:?}");
    rig.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_rules_write_lines_the_operator_reads() {
    let yaml = "forward:\n  rules:\n    - {proto: tcp, dport: 23, action: log, log: {prefix: \"telnet: \", level: info}}\n    - {proto: tcp, dport: 23, action: drop}\n";
    let rig = Rig::new(yaml, 2, PollMode::Adaptive);
    let mut trace: Trace = (0..3u16)
        .map(|i| {
            let f = tcp((host(1), 40000 + i), (host(2), 23), SYN, 1, 0, b"");
            (1_000 + u64::from(i), 0, f)
        })
        .collect();
    trace.push((
        2_000,
        0,
        tcp((host(1), 40010), (host(2), 80), SYN, 1, 0, b""),
    ));
    let verdicts = rig.lockstep(&trace, |i, _| i % 2);
    // The log rule decides nothing: telnet is dropped by the rule after it, web accepted.
    let v: Vec<Verdict> = verdicts.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        v,
        [Verdict::Drop, Verdict::Drop, Verdict::Drop, Verdict::Accept]
    );
    let log = |since, lines| match rig
        .handle
        .execute(&config::protocol::Command::Log { since, lines })
        .unwrap()
    {
        config::protocol::Payload::Log(l) => l,
        other => panic!("{other:?}"),
    };
    // The writer takes the records off the workers' hand-over every few milliseconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let l = log(None, None);
        if l.lines.len() == 3 {
            break l;
        }
        assert!(Instant::now() < deadline, "{l:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut ports: Vec<u16> = Vec::new();
    for l in &all.lines {
        assert!(l.text.starts_with("telnet: IN=lan OUT=wan MAC="), "{l:?}");
        assert!(l.text.contains(" DPT=23 "), "{l:?}");
        assert_eq!(l.level, 6);
        let spt = l.text.split("SPT=").nth(1).unwrap();
        ports.push(spt.split(' ').next().unwrap().parse().unwrap());
    }
    // Two workers logged them: each line once, every packet's.
    ports.sort_unstable();
    assert_eq!(ports, [40000, 40001, 40002]);
    assert_eq!(
        (all.last, all.written, all.lost, all.suppressed),
        (3, 3, 0, 0)
    );
    assert_eq!(
        all.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The log rule's counters count what it logged (`statewallctl show`).
    let show = rig.handle.show();
    let fwd = show.stages.iter().find(|s| s.name == "forward").unwrap();
    assert_eq!((fwd.rules[0].packets, fwd.rules[1].packets), (3, 3));
    // `since` and `lines`: what `statewallctl log -f` and `-n` ask.
    assert_eq!(log(Some(2), None).lines.len(), 1);
    assert_eq!(log(None, Some(2)).lines[0].seq, 2);
    assert!(log(Some(3), None).lines.is_empty());
    rig.stop();
}
