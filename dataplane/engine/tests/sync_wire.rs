//! conntrackd's sync messages against datagrams a real conntrackd 1.4.7 sent
//! (tests/data/sync/*.hex, each file says how it was made): every one is read, and written
//! back from what was read, byte for byte; what conntrackd's parser refuses is refused.

use engine::sync::wire::{attr, decode, flag, kind, Addrs, CtAttrs, IcmpAttrs, Message, Writer};

fn datagrams(name: &str) -> Vec<Vec<u8>> {
    let p = format!("{}/tests/data/sync/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

fn one(d: &[u8]) -> Message {
    let mut m = decode(d);
    assert_eq!(m.len(), 1, "{m:?}");
    m.remove(0).unwrap_or_else(|e| panic!("{e}"))
}

const C: [u8; 4] = [10, 10, 0, 2];
const S: [u8; 4] = [10, 10, 0, 3];

#[test]
fn what_conntrackd_sent_is_read() {
    let d = datagrams("conntrackd-1.4.7-notrack.hex");
    assert_eq!(d.len(), 8);
    // ALIVE, then the sequence goes up by one per message.
    let Message::Ctl(h, None) = one(&d[0]) else {
        panic!()
    };
    assert_eq!(h.flags, flag::ALIVE);
    let Message::Ct(h, tcp) = one(&d[1]) else {
        panic!()
    };
    assert_eq!((h.kind, h.seq), (kind::CT_NEW, 0x6b15_cfca));
    assert_eq!(
        tcp,
        CtAttrs {
            addrs: Some(Addrs::V4(C, S)),
            l4proto: Some(6),
            ports: Some((40000, 80)),
            tcp_state: Some(3),
            // SEEN_REPLY | ASSURED | CONFIRMED
            status: Some(0xe),
            timeout: Some(432_000),
            mark: Some(7),
            ..CtAttrs::default()
        }
    );
    let Message::Ct(_, icmp) = one(&d[3]) else {
        panic!()
    };
    // The id went out byte-swapped: 4660 is 34 12 on the wire.
    assert_eq!(
        icmp.icmp,
        IcmpAttrs {
            kind: Some(8),
            code: Some(0),
            id: Some(4660)
        }
    );
    let Message::Ct(_, v6) = one(&d[4]) else {
        panic!()
    };
    let mut c6 = [0u8; 16];
    c6[0] = 0xfd;
    let mut s6 = c6;
    c6[15] = 2;
    s6[15] = 3;
    assert_eq!(v6.addrs, Some(Addrs::V6(c6, s6)));
    assert_eq!((v6.tcp_state, v6.timeout), (Some(1), Some(120)));
    let Message::Ct(h, udp) = one(&d[5]) else {
        panic!()
    };
    assert_eq!((h.kind, udp.timeout), (kind::CT_UPD, Some(60)));
    let Message::Ct(h, _) = one(&d[6]) else {
        panic!()
    };
    assert_eq!(h.kind, kind::CT_DEL);
}

#[test]
fn what_is_read_is_written_back_byte_for_byte() {
    for d in datagrams("conntrackd-1.4.7-notrack.hex") {
        let mut w = Writer::default();
        match one(&d) {
            Message::Ct(h, a) => w.ct(h.kind, h.seq, &a),
            Message::Ctl(h, r) => w.ctl(h.flags, h.seq, r),
            Message::Exp(..) => unreachable!(),
        }
        assert_eq!(w.buf, d);
    }
}

#[test]
fn several_messages_in_one_datagram() {
    let d = datagrams("conntrackd-1.4.7-notrack.hex");
    let all: Vec<u8> = d.concat();
    let m = decode(&all);
    assert_eq!(m.len(), 8);
    assert!(m.iter().all(Result::is_ok));
    // ACK/NACK/RESYNC carry a range.
    let mut w = Writer::default();
    w.ctl(flag::NACK, 9, Some((3, 7)));
    w.ctl(flag::ALIVE, 10, None);
    let m = decode(&w.buf);
    assert_eq!(m.len(), 2);
    let Ok(Message::Ctl(h, Some((3, 7)))) = &m[0] else {
        panic!("{m:?}")
    };
    assert_eq!((h.flags, h.seq), (flag::NACK, 9));
}

#[test]
fn what_conntrackd_refuses_is_refused_whole() {
    let d = datagrams("conntrackd-1.4.7-notrack.hex");
    let tcp = &d[1];
    let refused = |bytes: &[u8], why: &str| {
        let m = decode(bytes);
        let e = m
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap_or_else(|| panic!("accepted: {m:?}"));
        assert!(e.why.contains(why), "{e}");
        e.at
    };
    // An unknown attribute type (the first attribute is at byte 8).
    let mut b = tcp.clone();
    b[10..12].copy_from_slice(&attr::MAX.to_be_bytes());
    assert_eq!(refused(&b, "unknown attribute type 33"), 8);
    // A known type with another length: the IPv4 pair said as 16 bytes long.
    let mut b = tcp.clone();
    b[8..10].copy_from_slice(&16u16.to_be_bytes());
    refused(&b, "attribute 0 of length 16");
    // An attribute longer than the message.
    let mut b = tcp.clone();
    let last = b.len() - 16;
    b[last..last + 2].copy_from_slice(&200u16.to_be_bytes());
    refused(&b, "runs past the message");
    // Another version, another type, a length past the datagram, a short header.
    let mut b = tcp.clone();
    b[0] = 0x20;
    refused(&b, "protocol version 2");
    let mut b = tcp.clone();
    b[0] = 0x17;
    refused(&b, "unknown message type 7");
    refused(&tcp[..40], "message length 84 with 40 bytes left");
    refused(&tcp[..5], "too few for a message header");
    // An ACK without its range.
    // (found by the fuzz target: reported past the datagram's end)
    assert_eq!(
        refused(
            &[0x1a, flag::ACK, 0, 8, 0, 0, 0, 1],
            "an ACK/NACK/RESYNC of 8 bytes"
        ),
        2
    );
    // Expectations: known types at their lengths, as conntrackd checks them.
    let exp = |t: u16, payload: &[u8]| {
        let len = 4 + payload.len();
        let mut m = vec![0x13, 0, 0, 0, 0, 0, 0, 9];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(payload);
        m.resize(m.len().div_ceil(4) * 4, 0);
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        m
    };
    assert!(matches!(
        decode(&exp(12, &300u32.to_be_bytes()))[0],
        Ok(Message::Exp(_, ref a)) if a == &[(12, 300u32.to_be_bytes().to_vec())]
    ));
    refused(&exp(12, &[0; 8]), "expectation attribute 12 of length 12");
    refused(&exp(21, &[0; 4]), "unknown expectation attribute type 21");
    refused(&exp(19, &[b'x'; 13]), "at most 16");
    // A refused message does not hide the next one.
    let mut b = tcp.clone();
    b[0] = 0x17;
    b.extend_from_slice(&d[2]);
    let m = decode(&b);
    assert!(m[0].is_err() && m[1].is_ok(), "{m:?}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic sweep (the fuzz target goes further).
    let d = datagrams("conntrackd-1.4.7-notrack.hex");
    let mut x: u32 = 0x1234_5678;
    for base in &d {
        for _ in 0..2000 {
            let mut b = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % b.len();
                b[i] = (x >> 8) as u8;
            }
            let cut = (x as usize >> 3) % (b.len() + 1);
            let _ = decode(&b[..cut]);
            let _ = decode(&b);
        }
    }
}

/// What conntrackd sent becomes the entries `conntrack -I` made on its side.
#[test]
fn conntrackd_messages_become_entries() {
    use engine::conntrack::entry::status;
    use engine::conntrack::listing::format_entry;
    use engine::sync::entry::entry_of;
    let d = datagrams("conntrackd-1.4.7-notrack.hex");
    let now = 1_000_000_000;
    let lines: Vec<String> = d[1..5]
        .iter()
        .map(|b| {
            let Message::Ct(_, a) = one(b) else { panic!() };
            let e = entry_of(&a, now).unwrap_or_else(|e| panic!("{e}"));
            if e.key.proto == 6 && e.mark == 7 {
                assert!(e.has(status::ASSURED) && e.has(status::SEEN_REPLY));
            }
            format_entry(&e, now)
        })
        .collect();
    assert_eq!(
        lines,
        [
            "ipv4     2 tcp      6 432000 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000 dport=80 src=10.10.0.3 dst=10.10.0.2 sport=80 dport=40000 [ASSURED] mark=7 use=1",
            "ipv4     2 udp      17 30 src=10.10.0.2 dst=10.10.0.3 sport=5353 dport=53 [UNREPLIED] src=10.10.0.3 dst=10.10.0.2 sport=53 dport=5353 mark=0 use=1",
            "ipv4     2 icmp     1 30 src=10.10.0.2 dst=10.10.0.3 type=8 code=0 id=4660 [UNREPLIED] src=10.10.0.3 dst=10.10.0.2 type=0 code=0 id=4660 mark=0 use=1",
            // /proc/net/nf_conntrack writes IPv6 addresses in full.
            "ipv6     10 tcp      6 120 SYN_SENT src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0003 sport=40001 dport=443 [UNREPLIED] src=fd00:0000:0000:0000:0000:0000:0000:0003 dst=fd00:0000:0000:0000:0000:0000:0000:0002 sport=443 dport=40001 mark=0 use=1",
        ]
    );
}
