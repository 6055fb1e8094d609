//! Byte-level fixtures and round trips through [`super::build`].

use super::build::{self, Icmp, Tcp, Udp};
use super::{l4_checksum_ok, parse, proto};
use crate::packet::tcp_flags::{ACK, SYN};
use crate::packet::{v4_mapped, Fragment, IpFamily, PacketMeta};
use crate::reason::{InvalidReason, L3Error};

fn v4(a: [u8; 4]) -> [u8; 16] {
    v4_mapped(a)
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn ok(frame: &[u8]) -> PacketMeta {
    let m = parse(frame).unwrap_or_else(|e| panic!("parse failed: {e}"));
    assert_offsets_within(frame, &m);
    m
}

fn assert_offsets_within(frame: &[u8], m: &PacketMeta) {
    let n = frame.len();
    assert!(usize::from(m.l3_offset) <= n);
    if m.is_ip {
        assert!(usize::from(m.l4_offset) + usize::from(m.l4_len) <= n);
    }
    assert!(usize::from(m.payload_offset) + usize::from(m.payload_len) <= n);
}

#[test]
fn roundtrip_tcp_v4_syn() {
    let f = Tcp {
        seq: 0x1234_5678,
        mss: Some(1460),
        sack_perm: true,
        wscale: Some(7),
        window: 64240,
        ..Tcp::new("10.0.0.2:40000", "10.0.0.3:80", SYN)
    }
    .ip_id(0xbeef)
    .ttl(63)
    .frame();
    let m = ok(&f);
    assert!(m.is_ip);
    assert_eq!(m.family, IpFamily::V4);
    assert_eq!(m.src, v4([10, 0, 0, 2]));
    assert_eq!(m.dst, v4([10, 0, 0, 3]));
    assert_eq!((m.proto, m.sport, m.dport), (proto::TCP, 40000, 80));
    assert_eq!((m.ip_id, m.ttl), (0xbeef, 63));
    assert_eq!(m.tcp.seq, 0x1234_5678);
    assert_eq!(m.tcp.flags, SYN);
    assert_eq!(m.tcp.window, 64240);
    assert_eq!(m.tcp.wscale, Some(7));
    assert!(m.tcp.sack_perm);
    assert_eq!(m.tcp.header_len, 32);
    assert_eq!(m.l4_invalid, None);
    assert_eq!(m.payload_len, 0);
    assert!(l4_checksum_ok(&f, &m));
}

#[test]
fn roundtrip_tcp_v6_payload_vlan() {
    let f = Tcp {
        seq: 1,
        ack: 2,
        ..Tcp::new("[fd00:10::2]:1234", "[fd00:10::3]:21", ACK)
    }
    .payload(*b"USER anonymous\r\n")
    .vlan(42)
    .ip_id(0xabcde)
    .frame();
    let m = ok(&f);
    assert_eq!(m.vlan, Some(42));
    assert_eq!(m.family, IpFamily::V6);
    assert_eq!(m.src, v6("fd00:10::2"));
    assert_eq!(m.ip_id, 0xabcde);
    assert_eq!(m.payload(&f), b"USER anonymous\r\n");
    assert!(l4_checksum_ok(&f, &m));
}

#[test]
fn roundtrip_udp_and_icmp_error() {
    let u = build::pad_to_min(
        Udp::new("10.0.0.2:5000", "10.0.0.3:53")
            .payload(*b"q")
            .frame(),
    );
    let m = ok(&u);
    assert_eq!(
        (m.proto, m.sport, m.dport, m.payload_len),
        (proto::UDP, 5000, 53, 1)
    );
    assert_eq!(m.l4_len, 9);
    assert!(l4_checksum_ok(&u, &m));

    let e = Icmp::port_unreachable("10.0.0.3", "10.0.0.2", &u).frame();
    let m = ok(&e);
    assert_eq!((m.proto, m.icmp.ty, m.icmp.code), (proto::ICMP, 3, 3));
    assert!(m.icmp.is_error);
    let inner = m.inner.unwrap();
    assert_eq!(inner.src, v4([10, 0, 0, 2]));
    assert_eq!(inner.dst, v4([10, 0, 0, 3]));
    assert_eq!(
        (inner.proto, inner.sport, inner.dport),
        (proto::UDP, 5000, 53)
    );
    assert!(l4_checksum_ok(&e, &m));
}

#[test]
fn roundtrip_icmp_echo_both_families() {
    for (src, dst, ty) in [("10.0.0.2", "10.0.0.3", 8), ("fd00::2", "fd00::3", 128)] {
        let f = Icmp::echo_request(src, dst, 0x4242, 9)
            .payload(*b"ping")
            .frame();
        let m = ok(&f);
        assert_eq!((m.icmp.ty, m.icmp.id, m.icmp.is_error), (ty, 0x4242, false));
        assert!(l4_checksum_ok(&f, &m));
        let mut bad = f.clone();
        build::corrupt_l4_checksum(&mut bad);
        assert!(!l4_checksum_ok(&bad, &ok(&bad)));
    }
}

#[test]
fn non_ip_and_short() {
    let a = build::arp_request([10, 0, 0, 2].into(), [10, 0, 0, 3].into());
    let m = ok(&a);
    assert!(!m.is_ip);
    assert_eq!(m.ethertype, 0x0806);
    assert_eq!(parse(&a[..13]), Err(L3Error::Truncated));
}

#[test]
fn bad_ip_checksum_from_builder() {
    let mut f = Udp::new("10.0.0.2:1", "10.0.0.3:2").frame();
    build::corrupt_ip_checksum(&mut f);
    assert_eq!(parse(&f), Err(L3Error::BadIpChecksum));
}

#[test]
fn fragments_from_builder() {
    let mut t = Udp::new("10.0.0.2:1", "10.0.0.3:2");
    t.ip.more_frags = true;
    let m = ok(&t.frame());
    assert_eq!(
        (m.fragment, m.sport, m.l4_invalid),
        (Fragment::First, 1, None)
    );
    t.ip.frag_offset = 1480;
    let m = ok(&t.frame());
    assert_eq!((m.fragment, m.sport), (Fragment::Later, 0));
    assert_eq!(m.l4_invalid, Some(InvalidReason::Fragment));

    let mut t = Udp::new("[fd00::2]:1", "[fd00::3]:2");
    t.ip.more_frags = true;
    let f = t.frame();
    let m = ok(&f);
    assert_eq!(
        (m.fragment, m.proto, m.sport),
        (Fragment::First, proto::UDP, 1)
    );
    assert!(l4_checksum_ok(&f, &m));
    t.ip.frag_offset = 8;
    let m = ok(&t.frame());
    assert_eq!((m.fragment, m.proto), (Fragment::Later, proto::UDP));
    assert_eq!(m.l4_invalid, Some(InvalidReason::Fragment));
}
