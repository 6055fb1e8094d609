//! The sync messages of scripts/test-sync-conntrackd.sh, both ways.
//!
//! `sync_datagrams encode`: prints, one datagram per line in hex, the messages Statewall
//! writes for a fixed set of connections (`Writer::ct`): CT_NEW for an established TCP
//! connection with a mark, a UDP flow, an ICMP echo and an IPv6 TCP connection opening; a
//! CT_UPD of the UDP flow's timeout; a CT_DEL of the echo.
//!
//! `sync_datagrams encode-ftp`: an FTP control connection (CT_NEW: ESTABLISHED, helper
//! ftp) and the expectation of its PORT command (EXP_NEW, `sync::expect::attrs_of`), one
//! datagram each.
//!
//! `sync_datagrams decode`: reads hex datagrams (one per line) on stdin and prints each
//! message read (`decode`) as one line, `kind seq key=value ...`, or `malformed: ...`; an
//! expectation as the one Statewall makes of it (`sync::expect::expectation_of`) or why not.

use std::io::BufRead;

use engine::conntrack::expect::Expectation;
use engine::flow::FlowKey;
use engine::packet::{v4_mapped, IpFamily};
use engine::sync::expect::{attrs_of, expectation_of};
use engine::sync::wire::{decode, kind, Addrs, CtAttrs, IcmpAttrs, Message, Writer};

fn v4(a: [u8; 4], b: [u8; 4]) -> Addrs {
    Addrs::V4(a, b)
}

fn encode() {
    let (c, s) = ([10, 10, 0, 2], [10, 10, 0, 3]);
    let mut c6 = [0u8; 16];
    c6[0] = 0xfd;
    let mut s6 = c6;
    c6[15] = 2;
    s6[15] = 3;
    let tcp = CtAttrs {
        addrs: Some(v4(c, s)),
        l4proto: Some(6),
        ports: Some((41000, 80)),
        tcp_state: Some(3),
        status: Some(0xe),
        timeout: Some(431_000),
        mark: Some(7),
        ..CtAttrs::default()
    };
    let udp = CtAttrs {
        addrs: Some(v4(c, s)),
        l4proto: Some(17),
        ports: Some((5353, 53)),
        status: Some(0x8),
        timeout: Some(30),
        mark: Some(0),
        ..CtAttrs::default()
    };
    let icmp = CtAttrs {
        addrs: Some(v4(c, s)),
        l4proto: Some(1),
        status: Some(0x8),
        icmp: IcmpAttrs {
            kind: Some(8),
            code: Some(0),
            id: Some(4660),
        },
        timeout: Some(30),
        mark: Some(0),
        ..CtAttrs::default()
    };
    let tcp6 = CtAttrs {
        addrs: Some(Addrs::V6(c6, s6)),
        l4proto: Some(6),
        ports: Some((41001, 443)),
        tcp_state: Some(1),
        status: Some(0x8),
        timeout: Some(120),
        mark: Some(0),
        ..CtAttrs::default()
    };
    let udp_later = CtAttrs {
        timeout: Some(170),
        status: Some(0xa),
        ..udp.clone()
    };
    let msgs = [
        (kind::CT_NEW, &tcp),
        (kind::CT_NEW, &udp),
        (kind::CT_NEW, &icmp),
        (kind::CT_NEW, &tcp6),
        (kind::CT_UPD, &udp_later),
        (kind::CT_DEL, &icmp),
    ];
    for (seq, (k, a)) in msgs.iter().enumerate() {
        let mut w = Writer::default();
        w.ct(*k, 1000 + seq as u32, a);
        println!("{}", hex(&w.buf));
    }
}

fn encode_ftp() {
    let (c, s) = ([10, 10, 0, 2], [10, 10, 0, 3]);
    let ctl = CtAttrs {
        addrs: Some(v4(c, s)),
        l4proto: Some(6),
        ports: Some((40021, 21)),
        tcp_state: Some(3),
        status: Some(0xe),
        timeout: Some(431_000),
        mark: Some(0),
        helper: Some("ftp".into()),
        ..CtAttrs::default()
    };
    let mut w = Writer::default();
    w.ct(kind::CT_NEW, 2000, &ctl);
    println!("{}", hex(&w.buf));
    let x = Expectation {
        family: IpFamily::V4,
        src: v4_mapped(s),
        dst: v4_mapped(c),
        proto: 6,
        dport: 50000,
        expires: 280 * 1_000_000_000,
        master: FlowKey::new(IpFamily::V4, v4_mapped(c), v4_mapped(s), 6, 40021, 21),
        mark: 0,
    };
    let mut w = Writer::default();
    w.exp(kind::EXP_NEW, 2001, &attrs_of(&x, 0));
    println!("{}", hex(&w.buf));
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn decode_stdin() {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some(d) = unhex(&line) else {
            println!("malformed: not hex");
            continue;
        };
        for m in decode(&d) {
            match m {
                Err(e) => println!("malformed: {e}"),
                Ok(Message::Ctl(h, r)) => {
                    println!("ctl {} flags={:#x} range={r:?}", h.seq, h.flags);
                }
                Ok(Message::Exp(h, a)) => match expectation_of(&a, 0) {
                    Ok(x) => println!(
                        "exp{} {} src={:?} dst={:?} dport={} timeout={} master={:?}:{}->{:?}:{}",
                        h.kind,
                        h.seq,
                        engine::packet::to_ip(x.family, &x.src),
                        engine::packet::to_ip(x.family, &x.dst),
                        x.dport,
                        x.expires / 1_000_000_000,
                        engine::packet::to_ip(x.master.family, &x.master.src),
                        x.master.sport,
                        engine::packet::to_ip(x.master.family, &x.master.dst),
                        x.master.dport
                    ),
                    Err(why) => println!("exp{} {} refused: {why}", h.kind, h.seq),
                },
                Ok(Message::Ct(h, a)) => {
                    let name = match h.kind {
                        kind::CT_NEW => "new",
                        kind::CT_UPD => "upd",
                        _ => "del",
                    };
                    println!(
                        "{name} {} flags={:#x} addrs={:?} proto={:?} ports={:?} state={:?} status={:?} timeout={:?} mark={:?} icmp={:?}/{:?}/{:?}",
                        h.seq,
                        h.flags,
                        a.addrs,
                        a.l4proto,
                        a.ports,
                        a.tcp_state,
                        a.status,
                        a.timeout,
                        a.mark,
                        a.icmp.kind,
                        a.icmp.code,
                        a.icmp.id
                    );
                }
            }
        }
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("encode") => encode(),
        Some("encode-ftp") => encode_ftp(),
        Some("decode") => decode_stdin(),
        _ => {
            eprintln!("usage: sync_datagrams encode | encode-ftp | decode < HEX-LINES");
            std::process::exit(2);
        }
    }
}
