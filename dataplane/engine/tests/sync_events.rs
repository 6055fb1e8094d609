//! What a shard tells the sync peer (engine::sync::events): a confirmed connection is NEW,
//! each change of status, TCP state or mark an update (a packet that changes none of them
//! is not), an expiry traffic moved a `refresh` period later an update (from the sweep), and
//! every way out of the table a destroy; a dropped first packet is nothing; with sync off
//! nothing is recorded.

mod common;

use engine::conntrack::tcp::state;
use engine::packet::tcp_flags::{ACK, FIN, PSH, SYN};
use engine::pipeline::{Pipeline, Verdict};
use engine::sync::events::{Event, EventKind};
use engine::wire::build::{Tcp, Udp};

use common::{run, LAN, SEC, WAN};

const RULES: &str = r"
mangle:
  policy: accept
  rules:
    - {proto: udp, dport: 5353, action: {connmark: 0x7}}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: new, in_port: lan, proto: tcp, syn: true, action: accept}
    - {ctstate: new, in_port: lan, proto: udp, action: accept}
";

const C: &str = "10.10.0.2";
const S: &str = "10.10.0.3";

fn seg(from_client: bool, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let (c, s) = (format!("{C}:40000"), format!("{S}:80"));
    let (a, b) = if from_client { (c, s) } else { (s, c) };
    Tcp {
        seq,
        ack,
        ..Tcp::new(a.as_str(), b.as_str(), flags)
    }
    .frame()
}

fn taken(p: &mut Pipeline) -> Vec<Event> {
    p.shard_mut()
        .events_mut()
        .expect("events on")
        .drain()
        .collect()
}

fn kinds(ev: &[Event]) -> Vec<(EventKind, u8)> {
    ev.iter().map(|e| (e.kind, e.entry.tcp.state)).collect()
}

#[test]
fn a_tcp_connection_is_new_then_updated_at_each_change_then_destroyed() {
    let mut p = Pipeline::new(common::compile_yaml(RULES, "t.yaml", 1), 64);
    p.shard_mut().enable_events(64, 0);
    let mut t = SEC;
    assert_eq!(
        run(&mut p, t, LAN, &seg(true, SYN, 100, 0)).verdict,
        Verdict::Accept
    );
    assert_eq!(kinds(&taken(&mut p)), [(EventKind::New, state::SYN_SENT)]);
    run(&mut p, t, WAN, &seg(false, SYN | ACK, 500, 101));
    run(&mut p, t, LAN, &seg(true, ACK, 101, 501));
    let ev = taken(&mut p);
    assert_eq!(
        kinds(&ev),
        [
            (EventKind::Update, state::SYN_RECV),
            (EventKind::Update, state::ESTABLISHED)
        ]
    );
    assert!(ev[1].entry.has(engine::conntrack::entry::status::ASSURED));
    // More data, nothing changes: nothing to tell.
    t += SEC;
    run(&mut p, t, LAN, &seg(true, ACK, 101, 501));
    run(&mut p, t, WAN, &seg(false, ACK, 501, 101));
    assert!(taken(&mut p).is_empty());
    // The close: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, then the timeout's end.
    run(&mut p, t, LAN, &seg(true, FIN | ACK, 101, 501));
    run(&mut p, t, WAN, &seg(false, FIN | ACK, 501, 102));
    run(&mut p, t, LAN, &seg(true, ACK, 102, 502));
    let states: Vec<u8> = taken(&mut p).iter().map(|e| e.entry.tcp.state).collect();
    assert_eq!(states, [state::FIN_WAIT, state::LAST_ACK, state::TIME_WAIT]);
    t += 200 * SEC;
    assert_eq!(p.expire(t, 64), 1);
    assert_eq!(
        kinds(&taken(&mut p)),
        [(EventKind::Destroy, state::TIME_WAIT)]
    );
}

#[test]
fn marks_refreshes_drops_and_flushes() {
    let mut p = Pipeline::new(common::compile_yaml(RULES, "t.yaml", 1), 64);
    p.shard_mut().enable_events(64, 10 * SEC);
    let t = 100 * SEC;
    let q = Udp::new("10.10.0.2:4000", "10.10.0.3:5353").frame();
    run(&mut p, t, LAN, &q);
    // New carries the mark the mangle stage set on the first packet.
    let ev = taken(&mut p);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].entry.mark), (EventKind::New, 7));
    // The same mark again is no change; the reply (SEEN_REPLY) is.
    run(&mut p, t + SEC, LAN, &q);
    assert!(taken(&mut p).is_empty());
    let a = Udp::new("10.10.0.3:5353", "10.10.0.2:4000").frame();
    run(&mut p, t + SEC, WAN, &a);
    assert_eq!(taken(&mut p).len(), 1);
    // Traffic that only refreshes the timeout, the sweep walking the table each second: an
    // update each time the expiry moved a refresh period (10 s) later, none without traffic.
    for s in 2..30 {
        run(&mut p, t + s * SEC, LAN, &q);
        p.expire(t + s * SEC, 64);
    }
    let n = taken(&mut p).len();
    assert!((2..=3).contains(&n), "{n} refresh updates in 28 s");
    for s in 30..60 {
        p.expire(t + s * SEC, 64);
    }
    assert!(taken(&mut p).is_empty());
    // A first packet the forward stage drops leaves no state and no event.
    let o = run(
        &mut p,
        t,
        WAN,
        &Udp::new("10.10.0.3:1", "10.10.0.2:2").frame(),
    );
    assert_eq!(o.verdict, Verdict::Drop);
    assert!(taken(&mut p).is_empty());
    // A flush destroys what is there.
    p.shard_mut().flush();
    assert_eq!(kinds(&taken(&mut p)), [(EventKind::Destroy, 0)]);
}

#[test]
fn a_full_log_drops_and_counts_and_sync_off_records_nothing() {
    let mut p = Pipeline::new(common::compile_yaml(RULES, "t.yaml", 1), 64);
    assert!(p.shard_mut().events_mut().is_none());
    p.shard_mut().enable_events(2, 0);
    for port in 0..5u16 {
        let q = Udp::new(
            format!("10.10.0.2:{}", 4000 + port).as_str(),
            "10.10.0.3:53",
        )
        .frame();
        run(&mut p, SEC, LAN, &q);
    }
    let log = p.shard_mut().events_mut().unwrap();
    assert_eq!((log.len(), log.lost), (2, 3));
}

#[test]
fn data_on_an_established_connection_is_no_update() {
    let mut p = Pipeline::new(common::compile_yaml(RULES, "t.yaml", 1), 64);
    p.shard_mut().enable_events(4096, 60 * SEC);
    let mut t = SEC;
    run(&mut p, t, LAN, &seg(true, SYN, 100, 0));
    run(&mut p, t, WAN, &seg(false, SYN | ACK, 500, 101));
    run(&mut p, t, LAN, &seg(true, ACK, 101, 501));
    taken(&mut p);
    let (mut c, mut s) = (101u32, 501u32);
    for _ in 0..50 {
        t += SEC / 2;
        let line = b"hello\n".to_vec();
        let f = Tcp {
            seq: c,
            ack: s,
            ..Tcp::new(
                format!("{C}:40000").as_str(),
                format!("{S}:80").as_str(),
                ACK | PSH,
            )
        }
        .payload(line.clone())
        .frame();
        assert_eq!(run(&mut p, t, LAN, &f).verdict, Verdict::Accept);
        c += 6;
        let f = Tcp {
            seq: s,
            ack: c,
            ..Tcp::new(
                format!("{S}:80").as_str(),
                format!("{C}:40000").as_str(),
                ACK | PSH,
            )
        }
        .payload(line)
        .frame();
        assert_eq!(run(&mut p, t, WAN, &f).verdict, Verdict::Accept);
        s += 6;
        run(&mut p, t, LAN, &seg(true, ACK, c, s));
    }
    let ev = taken(&mut p);
    assert!(ev.len() <= 1, "{} events: {:?}", ev.len(), kinds(&ev));
}
