//! IP fragments through the runtime (in-memory IO, real threads): every fragment of a
//! datagram is steered to the worker that reassembles it, whichever queue it arrived on; the
//! complete datagram is decided by its flow's owner (handed over as fragments when that is
//! another worker) and leaves as its original fragments, in offset order; what the rules
//! refuse leaves nothing; the flows are in the table once. A `reject` rule answers the
//! complete datagram, as the kernel's REJECT answers the skb nf_defrag reassembled.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::protocol::{ConntrackFilter, ConntrackOp};
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::{Clock, PollMode, Runtime, RuntimeConfig};
use engine::wire::build::{ip_frame, IpOpts, Tcp, Udp};
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
    cut(
        u.src.ip(),
        u.dst.ip(),
        proto::UDP,
        &u.datagram(),
        &u.ip,
        step,
    )
}

/// The upper-layer bytes `l4` as IP fragments of `step` bytes each.
fn cut(src: IpAddr, dst: IpAddr, p: u8, l4: &[u8], ip: &IpOpts, step: usize) -> Vec<Vec<u8>> {
    (0..l4.len())
        .step_by(step)
        .map(|start| {
            let end = (start + step).min(l4.len());
            let ip = IpOpts {
                frag_offset: start as u16,
                more_frags: end < l4.len(),
                ..ip.clone()
            };
            ip_frame(src, dst, p, &l4[start..end], &ip)
        })
        .collect()
}

fn start(net: &Arc<MemNet>, workers: usize) -> Runtime {
    start_with(net, workers, RULES)
}

fn start_with(net: &Arc<MemNet>, workers: usize, rules: &str) -> Runtime {
    let cfg = RuntimeConfig {
        pin: false,
        poll: PollMode::Adaptive,
        clock: Clock::Manual(Arc::new(AtomicU64::new(1_000_000_000))),
        io_mode: vec!["memory".into()],
        ..RuntimeConfig::default()
    };
    let ruleset = config::load_str(rules, "test.yaml").unwrap().ruleset;
    let ios = (0..workers).map(|q| net.ports_for(q)).collect();
    Runtime::start(&ruleset, rules, "test.yaml", ios, &cfg).unwrap()
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

#[test]
fn a_rejected_datagram_is_answered_once_about_the_whole_datagram() {
    const REJECTING: &str = "
forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: udp, dport: 5003, action: reject}
    - {in_port: lan, proto: tcp, dport: 8080, action: reject, reject_with: tcp-reset}
";
    let net = MemNet::new(2, 2);
    let rt = start_with(&net, 2, REJECTING);
    let udp4 = fragmented("10.0.0.2:40000", "10.0.0.3:5003", 3000, 500, 1024);
    let udp6 = fragmented("[fd00::2]:40001", "[fd00::3]:5003", 3000, 501, 1024);
    // A SYN carrying 3000 bytes: the reset acknowledges all of them (nf_reject_ip_tcphdr_put
    // counts the reassembled skb's payload), which a reset built from the first fragment
    // would not.
    let mut syn = Tcp::new("10.0.0.2:40002", "10.0.0.3:8080", 0x02);
    syn.seq = 7000;
    syn.payload = vec![0x5a; 3000];
    syn.ip.id = 502;
    let tcp4 = cut(
        syn.src.ip(),
        syn.dst.ip(),
        proto::TCP,
        &syn.segment(),
        &syn.ip,
        1024,
    );
    for frags in [&udp4, &udp6, &tcp4] {
        for (k, f) in frags.iter().rev().enumerate() {
            net.inject(LAN, k % 2, f);
        }
    }
    let mut answers = sent(&net, LAN, 3);
    assert_eq!(
        answers.len(),
        3,
        "one answer per datagram, not per fragment"
    );
    assert_eq!(
        net.sent_count(WAN),
        0,
        "nothing of a rejected datagram leaves"
    );
    // In protocol order: ICMP (1), TCP (6), ICMPv6 (58).
    answers.sort_by_key(|a| engine::wire::parse(a).unwrap().proto);
    let parse = |f: &[u8]| engine::wire::parse(f).unwrap();

    // ICMP (1): port unreachable quoting the reassembled header: the whole datagram's total
    // length, no fragment offset, no MF; then as much of the datagram as fits in 576 bytes.
    let a = &answers[0];
    let m = parse(a);
    assert_eq!((m.proto, m.icmp.ty, m.icmp.code), (proto::ICMP, 3, 3));
    let quoted = &a[14 + 20 + 8..];
    assert_eq!(quoted.len(), 576 - 28);
    assert_eq!(u16::from_be_bytes([quoted[2], quoted[3]]), 20 + 8 + 3000);
    assert_eq!(u16::from_be_bytes([quoted[6], quoted[7]]) & 0x3fff, 0);
    assert_eq!(u16::from_be_bytes([quoted[22], quoted[23]]), 5003);
    let reassembled_ip_payload = &udp4[0][14 + 20..];
    assert_eq!(quoted[20..], reassembled_ip_payload[..quoted.len() - 20]);

    // TCP (6): RST|ACK from the original destination, ack = seq + SYN + 3000.
    let rst = parse(&answers[1]);
    assert_eq!(rst.proto, proto::TCP);
    assert!(engine::wire::l4_checksum_ok(&answers[1], &rst));
    assert_eq!((rst.sport, rst.dport), (8080, 40002));
    assert_eq!(
        (rst.tcp.flags, rst.tcp.seq, rst.tcp.ack),
        (0x14, 0, 7000 + 1 + 3000)
    );

    // ICMPv6 (58): port unreachable quoting the reassembled packet, fragment header removed
    // (nf_ct_frag6_reasm): next header UDP, payload length 8 + 3000, up to 1280 bytes.
    let a = &answers[2];
    let m = parse(a);
    assert_eq!((m.proto, m.icmp.ty, m.icmp.code), (proto::ICMPV6, 1, 4));
    let quoted = &a[14 + 40 + 8..];
    assert_eq!(quoted.len(), 1280 - 48);
    assert_eq!(u16::from_be_bytes([quoted[4], quoted[5]]), 8 + 3000);
    assert_eq!(quoted[6], proto::UDP);
    assert_eq!(u16::from_be_bytes([quoted[42], quoted[43]]), 5003);
    let udp: Vec<u8> = udp6
        .iter()
        .flat_map(|f| f[14 + 40 + 8..].to_vec())
        .collect();
    assert_eq!(quoted[40..], udp[..quoted.len() - 40]);
    rt.stop();
}
