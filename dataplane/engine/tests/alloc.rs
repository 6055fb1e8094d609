//! The packet path allocates nothing (DEVELOPERS: "allocates nothing, locks nothing"): a
//! counting global allocator around the pipeline, in steady state, for every kind of packet
//! a gateway sees: new connections through chains and a rate limit, established data both
//! ways, RELATED (an FTP data connection, an ICMP error), INVALID, rejected (with the answer
//! built as the runtime builds it), dropped by policy, a truncated header, IPv6, non-IP.
//!
//! Its own test binary: the allocator counts per thread, and this file runs one test.
#![expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one passes every call to System"
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engine::packet::tcp_flags::{ACK, PSH, SYN};
use engine::pipeline::{Outcome, Packet, Pipeline, Verdict};
use engine::reject::{self, MAX_REPLY};
use engine::wire::build::{Icmp, Tcp, Udp};
use engine::wire::parse;

use common::{LAN, SEC, WAN};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the counter is a
// thread-local Cell with no destructor, whose access never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

const RULES: &str = r"
helpers: {ftp: {ports: [21]}}
raw:
  rules:
    - {proto: udp, dport: 5353, action: notrack}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {ctstate: untracked, action: accept}
    - {in_port: lan, ctstate: new, action: {jump: lan-new}}
  chains:
    lan-new:
      - {proto: tcp, action: log, log: {prefix: 'new tcp: ', tcp_options: true}}
      - {proto: tcp, recent: {set: seen}, action: continue}
      - {proto: tcp, dport: 80, recent: {update: seen, seconds: 1, hitcount: 200}, action: {jump: never}}
      - {proto: udp, length: 0-60, ttl: 1-255, action: continue}
      - {proto: udp, hashlimit: {name: u, upto: 10000/second, burst: 10000, mode: [srcip, srcport], max: 4096}, action: continue}
      - {proto: tcp, dport: [21, 80], action: accept}
      - {proto: udp, dport: 53, limit: {rate: 10000/second, burst: 10000}, action: accept}
      - {proto: tcp, dport: 8080, action: reject, reject_with: tcp-reset}
      - {proto: udp, dport: 9, action: reject}
      - {proto: tcp, dport: 8000-8999, action: return}
      - {proto: icmp, icmp_type: echo-request, action: accept}
      - {proto: icmpv6, icmpv6_type: echo-request, action: accept}
    never:
      - {action: drop}
";

const C: &str = "10.10.0.2";
const S: &str = "10.10.0.3";

/// One round of traffic, each flow on ports offset by `k` (new flows every round): the
/// frames, built before the count starts.
fn round(k: u16) -> Vec<(u8, Vec<u8>)> {
    let cp = 20_000 + k * 8;
    let tcp = |src: &str, sp: u16, dst: &str, dp: u16, flags: u8, seq: u32, ack: u32| Tcp {
        seq,
        ack,
        ..Tcp::new(
            format!("{src}:{sp}").as_str(),
            format!("{dst}:{dp}").as_str(),
            flags,
        )
    };
    let mut f: Vec<(u8, Vec<u8>)> = Vec::new();
    // A web connection: handshake, data both ways.
    f.push((LAN, tcp(C, cp, S, 80, SYN, 100, 0).frame()));
    f.push((WAN, tcp(S, 80, C, cp, SYN | ACK, 900, 101).frame()));
    f.push((LAN, tcp(C, cp, S, 80, ACK, 101, 901).frame()));
    let get = tcp(C, cp, S, 80, ACK | PSH, 101, 901).payload(b"GET / HTTP/1.0\r\n\r\n".to_vec());
    f.push((LAN, get.frame()));
    f.push((
        WAN,
        tcp(S, 80, C, cp, ACK | PSH, 901, 119)
            .payload(vec![b'x'; 600])
            .frame(),
    ));
    // FTP: control connection, PASV answer, the RELATED data connection.
    let fp = cp + 1;
    let dport = 30_000 + k;
    f.push((LAN, tcp(C, fp, S, 21, SYN, 10, 0).frame()));
    f.push((WAN, tcp(S, 21, C, fp, SYN | ACK, 50, 11).frame()));
    f.push((LAN, tcp(C, fp, S, 21, ACK, 11, 51).frame()));
    let pasv = format!(
        "227 Entering Passive Mode (10,10,0,3,{},{})\r\n",
        dport >> 8,
        dport & 0xff
    );
    f.push((
        WAN,
        tcp(S, 21, C, fp, ACK | PSH, 51, 11)
            .payload(pasv.into_bytes())
            .frame(),
    ));
    f.push((LAN, tcp(C, fp + 2, S, dport, SYN, 1, 0).frame()));
    // DNS through the limited rule, and its answer; an ICMP error about it (RELATED).
    let q = Udp::new(
        format!("{C}:{}", cp + 3).as_str(),
        format!("{S}:53").as_str(),
    )
    .payload(b"q".to_vec())
    .frame();
    f.push((LAN, q.clone()));
    f.push((
        WAN,
        Udp::new(
            format!("{S}:53").as_str(),
            format!("{C}:{}", cp + 3).as_str(),
        )
        .frame(),
    ));
    f.push((WAN, Icmp::port_unreachable(S, C, &q).frame()));
    // Rejected: TCP reset, ICMP port unreachable; dropped after a return; by policy from WAN.
    f.push((LAN, tcp(C, cp + 4, S, 8080, SYN, 1, 0).frame()));
    f.push((
        LAN,
        Udp::new(
            format!("{C}:{}", cp + 5).as_str(),
            format!("{S}:9").as_str(),
        )
        .frame(),
    ));
    f.push((LAN, tcp(C, cp + 6, S, 8443, SYN, 1, 0).frame()));
    f.push((WAN, tcp(S, 4444, C, cp + 7, SYN, 1, 0).frame()));
    // INVALID: an ACK with no connection is picked up (loose); SYN+FIN is invalid.
    f.push((LAN, tcp(C, cp + 7, S, 80, SYN | 0x01, 1, 0).frame()));
    // Untracked (raw notrack), ICMP echo, IPv6 echo.
    f.push((
        LAN,
        Udp::new(format!("{C}:5353").as_str(), "10.10.0.3:5353").frame(),
    ));
    f.push((LAN, Icmp::new(C, S, 8, 0).frame()));
    f.push((LAN, Icmp::new("fd00::2", "fd00::3", 128, 0).frame()));
    // A truncated TCP header, and a non-IP frame.
    let mut cut = tcp(C, cp, S, 80, ACK, 101, 901).frame();
    cut.truncate(14 + 20 + 10);
    cut[16..18].copy_from_slice(&30u16.to_be_bytes());
    f.push((LAN, cut));
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f.push((LAN, arp));
    f
}

#[test]
fn steady_state_allocates_nothing() {
    let rules = common::compile_yaml(RULES, "alloc.yaml", 1);
    let mut p = Pipeline::new(rules, 4096);
    let mut answer = vec![0u8; MAX_REPLY];
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(64);
    let mut now = 1_000 * SEC;
    let mut run =
        |p: &mut Pipeline, frames: &[(u8, Vec<u8>)], now: u64, outs: &mut Vec<Outcome>| {
            outs.clear();
            for (port, frame) in frames {
                let o = p.process_one(
                    now,
                    &Packet {
                        frame,
                        in_port: *port,
                    },
                );
                if o.reject {
                    if let Ok(m) = parse(frame) {
                        let _ = reject::build(frame, &m, o.reject_with, &mut answer);
                    }
                }
                outs.push(o);
            }
        };
    // Warm up: the table, the expectations and every lazily sized thing reach their size.
    let warm: Vec<_> = (0..64).map(round).collect();
    for frames in &warm {
        now += SEC / 100;
        run(&mut p, frames, now, &mut outcomes);
        p.expire(now, 64);
    }
    // Steady state: new flows every round, counted.
    let rounds: Vec<_> = (64..128).map(round).collect();
    let mut kinds = [0usize; 4];
    let mut logged = 0;
    let before = allocations();
    for frames in &rounds {
        now += SEC / 100;
        run(&mut p, frames, now, &mut outcomes);
        p.expire(now, 64);
        logged += p.log.drain().count();
        for o in &outcomes {
            let k = match (o.verdict, o.reject) {
                (Verdict::Accept, _) => 0,
                (Verdict::Drop, true) => 1,
                (Verdict::Drop, false) => 2,
            };
            kinds[k] += 1;
            kinds[3] += usize::from(o.ctstate == Some(config::matches::CtState::Related));
        }
    }
    let allocated = allocations() - before;
    let packets = rounds.iter().map(Vec::len).sum::<usize>();
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for {packets} packets"
    );
    // The same through the batched path the workers use.
    let rounds: Vec<_> = (128..192).map(round).collect();
    let batches: Vec<Vec<Packet>> = rounds
        .iter()
        .map(|frames| {
            frames
                .iter()
                .map(|(port, frame)| Packet {
                    frame,
                    in_port: *port,
                })
                .collect()
        })
        .collect();
    let mut outs = vec![Outcome::default(); 64];
    let before = allocations();
    for batch in &batches {
        now += SEC / 100;
        p.process(now, batch, &mut outs[..batch.len()]);
        p.expire(now, 64);
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations in the batched path");
    // The rounds reached what they were meant to: accepted, rejected, dropped, related.
    assert!(kinds.iter().all(|k| *k >= 64), "{kinds:?}");
    // The log rule logged every new TCP connection's first packet.
    assert!(logged >= 64, "{logged} lines");
}
