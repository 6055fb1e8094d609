//! IP fragments through the runtime (in-memory IO, real threads): every fragment of a
//! datagram is steered to the worker that reassembles it, whichever queue it arrived on; the
//! complete datagram is decided by its flow's owner (handed over as fragments when that is
//! another worker) and leaves as its original fragments, in offset order; what the rules
//! refuse leaves nothing; the flows are in the table once.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::protocol::{ConntrackFilter, ConntrackOp};
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::{Clock, PollMode, Runtime, RuntimeConfig};
use engine::wire::build::{ip_frame, IpOpts, Udp};
use engine::wire::proto;

const RULES: &str = "
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: udp, dport: 5001, ctstate: new, action: accept}
";
const LAN: usize = 0;
const WAN: usize = 1;

/// A UDP datagram of `n` payload bytes, cut into fragments of `step` bytes of payload.
fn fragmented(src: &str, dst: &str, n: usize, id: u32, step: usize) -> Vec<Vec<u8>> {
    let mut u = Udp::new(src, dst);
    u.payload = (0..n).map(|i| (i * 13 + id as usize) as u8).collect();
    u.ip.id = id;
    let l4 = u.datagram();
    (0..l4.len())
        .step_by(step)
        .map(|start| {
            let end = (start + step).min(l4.len());
            let ip = IpOpts {
                frag_offset: start as u16,
                more_frags: end < l4.len(),
                ..u.ip.clone()
            };
            ip_frame(u.src.ip(), u.dst.ip(), proto::UDP, &l4[start..end], &ip)
        })
        .collect()
}

fn start(net: &Arc<MemNet>, workers: usize) -> Runtime {
    let cfg = RuntimeConfig {
        pin: false,
        poll: PollMode::Adaptive,
        clock: Clock::Manual(Arc::new(AtomicU64::new(1_000_000_000))),
        io_mode: vec!["memory".into()],
        ..RuntimeConfig::default()
    };
    let ruleset = config::load_str(RULES, "test.yaml").unwrap().ruleset;
    let ios = (0..workers).map(|q| net.ports_for(q)).collect();
    Runtime::start(&ruleset, RULES, "test.yaml", ios, &cfg).unwrap()
}

/// Wait until `port` has sent `n` frames; then take them.
fn sent(net: &MemNet, port: usize, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while net.sent_count(port) < n {
        assert!(
            Instant::now() < deadline,
            "port {port} sent {} of {n} frames",
            net.sent_count(port)
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    // Anything more would be a bug: give it a moment to show.
    std::thread::sleep(Duration::from_millis(20));
    net.take_sent(port).into_iter().map(|s| s.data).collect()
}

/// The frames of `got` that belong to `datagram` (same frames, by content), in the order
/// they were sent.
fn of<'a>(got: &'a [Vec<u8>], datagram: &[Vec<u8>]) -> Vec<&'a Vec<u8>> {
    got.iter().filter(|f| datagram.contains(f)).collect()
}

#[test]
fn fragments_meet_on_one_worker_and_leave_as_they_came() {
    let net = MemNet::new(2, 2);
    let rt = start(&net, 2);
    // Datagrams of several flows (so that reassemblers and owners differ), both families,
    // fragments spread over both queues and some sent last-first.
    let mut datagrams = Vec::new();
    for i in 0..8u16 {
        let (src, dst) = if i % 2 == 0 {
            (
                format!("10.0.0.2:{}", 40000 + i),
                "10.0.0.3:5001".to_string(),
            )
        } else {
            (
                format!("[fd00::2]:{}", 40000 + i),
                "[fd00::3]:5001".to_string(),
            )
        };
        datagrams.push(fragmented(&src, &dst, 3000, 100 + u32::from(i), 1024));
    }
    for (d, frags) in datagrams.iter().enumerate() {
        let order: Vec<usize> = if d % 3 == 0 {
            (0..frags.len()).rev().collect()
        } else {
            (0..frags.len()).collect()
        };
        for (k, &i) in order.iter().enumerate() {
            net.inject(LAN, (d + k) % 2, &frags[i]);
        }
    }
    // A datagram the rules refuse (port 5002): nothing of it leaves.
    let refused = fragmented("10.0.0.2:40100", "10.0.0.3:5002", 3000, 300, 1024);
    for (k, f) in refused.iter().enumerate() {
        net.inject(LAN, k % 2, f);
    }
    let total: usize = datagrams.iter().map(Vec::len).sum();
    let got = sent(&net, WAN, total);
    assert_eq!(
        got.len(),
        total,
        "exactly the accepted datagrams' fragments"
    );
    for (d, frags) in datagrams.iter().enumerate() {
        let mine = of(&got, frags);
        assert_eq!(
            mine,
            frags.iter().collect::<Vec<_>>(),
            "datagram {d}: its fragments, unchanged, in offset order"
        );
    }
    // The answers come back as fragments too, ESTABLISHED.
    let reply = fragmented("10.0.0.3:5001", "10.0.0.2:40000", 2000, 400, 1024);
    for f in reply.iter().rev() {
        net.inject(WAN, 1, f);
    }
    let back = sent(&net, LAN, reply.len());
    assert_eq!(back, reply);
    // One entry per flow, each in its owner's shard.
    let listed = rt
        .handle()
        .conntrack(ConntrackOp::List, &ConntrackFilter::default())
        .unwrap();
    assert_eq!(
        listed.entries.len(),
        datagrams.len(),
        "{:?}",
        listed.entries
    );
    // The flow that was answered has seen its reply.
    let ip: IpAddr = "10.0.0.3".parse().unwrap();
    let answered: Vec<_> = listed
        .entries
        .iter()
        .filter(|e| e.line.contains(&format!("dst={ip} sport=40000 dport=5001")))
        .collect();
    assert_eq!(answered.len(), 1, "{:?}", listed.entries);
    assert!(
        !answered[0].line.contains("UNREPLIED"),
        "{}",
        answered[0].line
    );
    // Fragments crossed workers (to their reassembler, and to the flow's owner); the
    // reassembly counters are published (DefragCounters::NAMES: fragments, reassembled, ..).
    let counters = rt.handle().counters();
    let handed: u64 = counters.iter().map(|c| c.handoffs_out).sum();
    assert!(handed > 0);
    let taken: u64 = counters.iter().map(|c| c.fragments[0]).sum();
    let reassembled: u64 = counters.iter().map(|c| c.fragments[1]).sum();
    let frames = total + refused.len() + reply.len();
    assert!(
        taken >= frames as u64,
        "{taken} fragments taken of {frames}"
    );
    assert!(
        reassembled >= datagrams.len() as u64 + 2,
        "{reassembled} reassembled"
    );
    assert_eq!(
        engine::defrag::DefragCounters::NAMES[..2],
        ["fragments", "reassembled"]
    );
    rt.stop();
}
