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

// ---- Hand-written fixtures. Checksums computed independently of this crate (a Python
// RFC 1071 one-liner); each comment names the header on the lines below it.

const TCP_SYN_V4: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4, id 0x1c46, DF, ttl 64, TCP
    0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x72, 0x0a, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x03, // TCP 40000 > 80 SYN seq a1b2c3d4 win 64240, doff 10
    0x9c, 0x40, 0x00, 0x50, 0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
    0x32, 0xed, 0x00, 0x00, // options: MSS 1460, SACK_PERM, TS, NOP, WS 7
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
];
const UDP_V4: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4 UDP
    0x45, 0x00, 0x00, 0x28, 0x00, 0x07, 0x00, 0x00, 0x40, 0x11, 0x66, 0xba, 0x0a, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x03, // UDP 5353 > 53 len 20
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x14, 0xc3, 0x6e, // payload
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // Ethernet padding to 60 bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
const ARP: &[u8] = &[
    // Ethernet broadcast, ARP
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
    // request who-has 10.0.0.3 tell 10.0.0.2
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x03,
];
const QINQ_ICMP_ECHO: &[u8] = &[
    // Ethernet, 802.1ad
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xa8,
    // S-tag VID 100, then 802.1Q
    0x00, 0x64, 0x81, 0x00, // C-tag PCP 5 VID 7, then IPv4
    0xa0, 0x07, 0x08, 0x00, // IPv4 ICMP
    0x45, 0x00, 0x00, 0x20, 0x00, 0x09, 0x40, 0x00, 0x40, 0x01, 0x26, 0xd0, 0x0a, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x03, // ICMP echo request id 0x77 seq 1
    0x08, 0x00, 0x32, 0xc1, 0x00, 0x77, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
];
const V6_HBH_FRAG_UDP: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
    // IPv6 flow 0x12345, next hop-by-hop, hlim 255
    0x60, 0x01, 0x23, 0x45, 0x00, 0x1d, 0x00, 0xff, 0xfd, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
    // hop-by-hop: next fragment, router alert, PadN
    0x2c, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    // fragment: next UDP, offset 0, M, id deadbeef
    0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // UDP 1000 > 2000
    0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0d, 0xb6, 0x23, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
];
const ICMP_PORT_UNREACH: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4 10.0.0.3 > 10.0.0.2 ICMP
    0x45, 0x00, 0x00, 0x3c, 0x00, 0x99, 0x00, 0x00, 0x40, 0x01, 0x66, 0x24, 0x0a, 0x00, 0x00, 0x03,
    0x0a, 0x00, 0x00, 0x02, // ICMP 3/3
    0x03, 0x03, 0x11, 0x1f, 0x00, 0x00, 0x00, 0x00,
    // quoted IPv4 10.0.0.2 > 10.0.0.3 UDP
    0x45, 0x00, 0x00, 0x20, 0x00, 0x55, 0x00, 0x00, 0x40, 0x11, 0x66, 0x74, 0x0a, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x03, // quoted UDP 40001 > 53 + data
    0x9c, 0x41, 0x00, 0x35, 0x00, 0x0c, 0x8a, 0x94, 0x61, 0x62, 0x63, 0x64,
];
const ICMPV6_ECHO: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
    // IPv6 next ICMPv6 hlim 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40, 0xfd, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
    // ICMPv6 echo request id 0x1234 seq 5
    0x80, 0x00, 0x94, 0x88, 0x12, 0x34, 0x00, 0x05, 0x70, 0x69, 0x6e, 0x67,
];
const V4_OPTIONS_UDP: &[u8] = &[
    // Ethernet
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    // IPv4 IHL 6
    0x46, 0x00, 0x00, 0x22, 0x00, 0x01, 0x00, 0x00, 0x01, 0x11, 0x10, 0xc2, 0x0a, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x03, // option: router alert
    0x94, 0x04, 0x00, 0x00, // UDP 68 > 67
    0x00, 0x44, 0x00, 0x43, 0x00, 0x0a, 0x82, 0xe5, 0x68, 0x69,
];

/// Rewrites the IPv4 total length of a fixture (header at 14) and fixes the header checksum.
fn with_v4_total(frame: &[u8], total: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = super::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn fixture_tcp_syn_with_options() {
    let m = ok(TCP_SYN_V4);
    assert_eq!((m.vlan, m.ethertype, m.is_ip), (None, 0x0800, true));
    assert_eq!((m.src, m.dst), (v4([10, 0, 0, 2]), v4([10, 0, 0, 3])));
    assert_eq!((m.proto, m.ip_id, m.ttl), (proto::TCP, 0x1c46, 64));
    assert_eq!((m.l3_offset, m.l4_offset, m.l4_len), (14, 34, 40));
    assert_eq!((m.sport, m.dport), (40000, 80));
    assert_eq!(m.tcp.seq, 0xa1b2_c3d4);
    assert_eq!(
        (m.tcp.flags, m.tcp.window, m.tcp.header_len),
        (SYN, 64240, 40)
    );
    assert_eq!((m.tcp.wscale, m.tcp.sack_perm), (Some(7), true));
    assert_eq!((m.payload_offset, m.payload_len), (74, 0));
    assert_eq!(m.fragment, Fragment::None);
    assert_eq!(m.l4_invalid, None);
    assert!(l4_checksum_ok(TCP_SYN_V4, &m));
    // The builder makes the same header for the same fields (minus the timestamp option).
    let b = Tcp {
        seq: 0xa1b2_c3d4,
        window: 64240,
        mss: Some(1460),
        sack_perm: true,
        wscale: Some(7),
        ..Tcp::new("10.0.0.2:40000", "10.0.0.3:80", SYN)
    }
    .frame();
    let mb = ok(&b);
    assert_eq!(
        (mb.tcp.seq, mb.tcp.wscale, mb.tcp.sack_perm),
        (m.tcp.seq, m.tcp.wscale, true)
    );
}

#[test]
fn fixture_udp_with_padding() {
    let m = ok(UDP_V4);
    assert_eq!(UDP_V4.len(), 60);
    assert_eq!((m.proto, m.sport, m.dport), (proto::UDP, 5353, 53));
    assert_eq!((m.l4_offset, m.l4_len), (34, 20));
    assert_eq!((m.payload_offset, m.payload_len), (42, 12));
    assert_eq!(m.fragment, Fragment::None);
    assert!(l4_checksum_ok(UDP_V4, &m));
    // The padding is not part of the packet: the same datagram from the builder.
    let b = Udp::new("10.0.0.2:5353", "10.0.0.3:53")
        .payload(&UDP_V4[42..54])
        .ip_id(7)
        .frame();
    assert_eq!(&b[..], &UDP_V4[..54]);
}

#[test]
fn fixture_arp() {
    let m = ok(ARP);
    assert!(!m.is_ip);
    assert_eq!((m.ethertype, m.l3_offset), (0x0806, 14));
    assert!(l4_checksum_ok(ARP, &m));
    assert_eq!(
        &build::arp_request([10, 0, 0, 2].into(), [10, 0, 0, 3].into())[..],
        ARP
    );
}

#[test]
fn fixture_double_vlan_icmp_echo() {
    let m = ok(QINQ_ICMP_ECHO);
    assert_eq!((m.vlan, m.ethertype, m.l3_offset), (Some(100), 0x0800, 22));
    assert_eq!(
        (m.proto, m.icmp.ty, m.icmp.code, m.icmp.id),
        (proto::ICMP, 8, 0, 0x77)
    );
    assert!(!m.icmp.is_error);
    assert_eq!(m.inner, None);
    assert_eq!(m.l4_offset, 42);
    assert!(l4_checksum_ok(QINQ_ICMP_ECHO, &m));
    // One 802.1Q tag.
    let mut single = QINQ_ICMP_ECHO[..12].to_vec();
    single.extend_from_slice(&QINQ_ICMP_ECHO[16..]);
    let m = ok(&single);
    assert_eq!((m.vlan, m.l3_offset, m.icmp.id), (Some(7), 18, 0x77));
    // A tag cut short.
    assert_eq!(parse(&QINQ_ICMP_ECHO[..20]), Err(L3Error::Truncated));
}

#[test]
fn fixture_v6_hop_by_hop_and_fragment() {
    let f = V6_HBH_FRAG_UDP;
    let m = ok(f);
    assert_eq!((m.family, m.ip_id, m.ttl), (IpFamily::V6, 0x12345, 255));
    assert_eq!(m.src, v6("fd00:10::2"));
    assert_eq!(m.dst, v6("fd00:10::3"));
    assert_eq!((m.proto, m.fragment), (proto::UDP, Fragment::First));
    assert_eq!((m.l4_offset, m.l4_len), (14 + 40 + 16, 13));
    assert_eq!((m.sport, m.dport, m.payload_len), (1000, 2000, 5));
    assert_eq!(m.l4_invalid, None);
    // A later fragment (offset 8): no L4 header.
    let mut later = f.to_vec();
    later[14 + 40 + 8 + 3] = 0x08;
    let m = ok(&later);
    assert_eq!(
        (m.fragment, m.proto, m.sport),
        (Fragment::Later, proto::UDP, 0)
    );
    assert_eq!(m.l4_invalid, Some(InvalidReason::Fragment));
    assert!(l4_checksum_ok(&later, &m));
    // The chain cut by the payload length: hop-by-hop only, then 2 bytes of the fragment
    // header. The packet still goes to conntrack, marked truncated.
    let mut cut = f[..14 + 40 + 10].to_vec();
    cut[18..20].copy_from_slice(&10u16.to_be_bytes());
    let m = ok(&cut);
    assert_eq!((m.proto, m.l4_offset, m.l4_len), (44, 14 + 40 + 8, 2));
    assert_eq!(m.l4_invalid, Some(InvalidReason::Truncated));
    // Payload length beyond the frame.
    assert_eq!(parse(&f[..f.len() - 1]), Err(L3Error::BadIpLength));
    // Version 4 in an IPv6 EtherType.
    let mut bad = f.to_vec();
    bad[14] = 0x40;
    assert_eq!(parse(&bad), Err(L3Error::BadIpHeader));
}

#[test]
fn fixture_icmp_port_unreachable_quoting_udp() {
    let m = ok(ICMP_PORT_UNREACH);
    assert_eq!((m.src, m.dst), (v4([10, 0, 0, 3]), v4([10, 0, 0, 2])));
    assert_eq!(
        (m.icmp.ty, m.icmp.code, m.icmp.is_error, m.icmp.id),
        (3, 3, true, 0)
    );
    let i = m.inner.unwrap();
    assert_eq!((i.src, i.dst), (v4([10, 0, 0, 2]), v4([10, 0, 0, 3])));
    assert_eq!((i.proto, i.sport, i.dport), (proto::UDP, 40001, 53));
    assert!(l4_checksum_ok(ICMP_PORT_UNREACH, &m));
    // Quoting only the inner IP header and 3 bytes of UDP names no ports: no inner tuple.
    let short = with_v4_total(&ICMP_PORT_UNREACH[..14 + 20 + 8 + 23], 20 + 8 + 23);
    let m = ok(&short);
    assert!(m.icmp.is_error);
    assert_eq!(m.inner, None);
    // Four bytes are enough for the ports, as in the kernel.
    let four = with_v4_total(&ICMP_PORT_UNREACH[..14 + 20 + 8 + 24], 20 + 8 + 24);
    assert_eq!(ok(&four).inner.map(|i| i.dport), Some(53));
}

#[test]
fn fixture_icmpv6_echo() {
    let m = ok(ICMPV6_ECHO);
    assert_eq!((m.family, m.proto), (IpFamily::V6, proto::ICMPV6));
    assert_eq!(
        (m.icmp.ty, m.icmp.id, m.icmp.is_error),
        (128, 0x1234, false)
    );
    assert_eq!((m.l4_offset, m.l4_len, m.payload_len), (54, 12, 4));
    assert!(l4_checksum_ok(ICMPV6_ECHO, &m));
    let b = Icmp::echo_request("fd00:10::2", "fd00:10::3", 0x1234, 5)
        .payload(*b"ping")
        .frame();
    assert_eq!(&b[..], ICMPV6_ECHO);
}

#[test]
fn fixture_bad_ipv4_header_checksum() {
    let mut f = UDP_V4.to_vec();
    f[25] ^= 1;
    assert_eq!(parse(&f), Err(L3Error::BadIpChecksum));
    let mut f = UDP_V4.to_vec();
    f[14] = 0x44; // IHL 4
    assert_eq!(parse(&f), Err(L3Error::BadIpHeader));
    // Total length beyond the frame, and below the header.
    assert_eq!(parse(&with_v4_total(UDP_V4, 61)), Err(L3Error::BadIpLength));
    assert_eq!(parse(&with_v4_total(UDP_V4, 19)), Err(L3Error::BadIpLength));
    assert_eq!(parse(&UDP_V4[..14 + 19]), Err(L3Error::Truncated));
}

#[test]
fn fixture_truncated_tcp() {
    // The IP header says 10 bytes of TCP follow.
    let f = with_v4_total(TCP_SYN_V4, 30);
    let m = ok(&f);
    assert_eq!((m.proto, m.l4_len), (proto::TCP, 10));
    assert_eq!(m.l4_invalid, Some(InvalidReason::Truncated));
    // Header present but options cut: data offset 10 (40 bytes) in a 24-byte segment.
    let f = with_v4_total(TCP_SYN_V4, 44);
    let m = ok(&f);
    assert_eq!(m.l4_invalid, Some(InvalidReason::TcpBadHeader));
    assert_eq!((m.sport, m.dport), (40000, 80));
}

#[test]
fn fixture_bad_tcp_data_offset() {
    for doff in [0u8, 4, 11, 15] {
        let mut f = TCP_SYN_V4.to_vec();
        f[34 + 12] = doff << 4;
        let m = ok(&f);
        assert_eq!(
            m.l4_invalid,
            Some(InvalidReason::TcpBadHeader),
            "doff {doff}"
        );
    }
}

#[test]
fn fixture_ipv4_options() {
    let m = ok(V4_OPTIONS_UDP);
    assert_eq!((m.ttl, m.l4_offset, m.l4_len), (1, 38, 10));
    assert_eq!(
        (m.proto, m.sport, m.dport, m.payload_len),
        (proto::UDP, 68, 67, 2)
    );
    assert_eq!(m.payload(V4_OPTIONS_UDP), b"hi");
    assert!(l4_checksum_ok(V4_OPTIONS_UDP, &m));
}

// ---- TCP options edge cases (the kernel's tcp_options loop).

fn syn_with_options(opts: &[u8]) -> PacketMeta {
    let f = Tcp {
        extra_options: opts.to_vec(),
        ..Tcp::new("10.0.0.2:1", "10.0.0.3:2", SYN)
    }
    .frame();
    ok(&f)
}

#[test]
fn tcp_options_edge_cases() {
    // Shift clamped to 14.
    assert_eq!(syn_with_options(&[3, 3, 20]).tcp.wscale, Some(14));
    // Wrong length: ignored, parsing goes on by its length.
    let m = syn_with_options(&[3, 4, 7, 0, 4, 2]);
    assert_eq!((m.tcp.wscale, m.tcp.sack_perm), (None, true));
    // EOL stops.
    assert_eq!(syn_with_options(&[0, 3, 3, 7]).tcp.wscale, None);
    // Length below 2 stops ("silly options"); so does a length past the end.
    assert_eq!(syn_with_options(&[8, 1, 3, 3, 7]).tcp.wscale, None);
    assert_eq!(
        syn_with_options(&[1, 1, 1, 3, 3, 7, 9, 9]).tcp.wscale,
        Some(7)
    );
    assert_eq!(syn_with_options(&[1, 1, 9, 9, 3, 3, 7, 0]).tcp.wscale, None);
    // Unknown options are skipped by length.
    assert_eq!(
        syn_with_options(&[30, 6, 0, 0, 0, 0, 1, 3, 3, 2])
            .tcp
            .wscale,
        Some(2)
    );
}

// ---- UDP / UDP-Lite / SCTP / DCCP lengths.

#[test]
fn udp_length_field_checked() {
    let f = Udp::new("10.0.0.2:1", "10.0.0.3:2")
        .payload(*b"abcd")
        .frame();
    for (len, bad) in [(7u16, true), (8, false), (12, false), (13, true)] {
        let mut g = f.clone();
        g[38..40].copy_from_slice(&len.to_be_bytes());
        let m = ok(&g);
        assert_eq!(m.l4_invalid.is_some(), bad, "len {len}");
        if !bad {
            assert_eq!(m.payload_len, len - 8);
        }
    }
    // Fewer than 8 bytes of UDP.
    let m = ok(&with_v4_total(&f, 27));
    assert_eq!(m.l4_invalid, Some(InvalidReason::Truncated));
}

#[test]
fn other_port_protocols() {
    let mut sctp = vec![0x13, 0x88, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0];
    let m = ok(&build::Raw::new("10.0.0.2", "10.0.0.3", proto::SCTP)
        .payload(sctp.clone())
        .frame());
    assert_eq!((m.sport, m.dport, m.l4_invalid), (5000, 80, None));
    sctp.truncate(11);
    let m = ok(&build::Raw::new("10.0.0.2", "10.0.0.3", proto::SCTP)
        .payload(sctp)
        .frame());
    assert_eq!(
        (m.sport, m.l4_invalid),
        (5000, Some(InvalidReason::Truncated))
    );

    let dccp = vec![0x13, 0x88, 0x00, 0x50, 3, 0, 0, 0, 0, 0, 0, 0];
    let m = ok(&build::Raw::new("fd00::2", "fd00::3", proto::DCCP)
        .payload(dccp.clone())
        .frame());
    assert_eq!((m.dport, m.l4_invalid), (80, None));
    let mut bad = dccp;
    bad[4] = 2; // data offset 8 bytes < 12
    let m = ok(&build::Raw::new("fd00::2", "fd00::3", proto::DCCP)
        .payload(bad)
        .frame());
    assert_eq!(m.l4_invalid, Some(InvalidReason::Truncated));

    // UDP-Lite: coverage 0 means all; coverage past the end is malformed.
    let mut lite = vec![0, 1, 0, 2, 0, 0, 0, 0, b'x', b'y'];
    let m = ok(&build::Raw::new("10.0.0.2", "10.0.0.3", proto::UDPLITE)
        .payload(lite.clone())
        .frame());
    assert_eq!(
        (m.sport, m.dport, m.payload_len, m.l4_invalid),
        (1, 2, 2, None)
    );
    lite[5] = 11;
    let m = ok(&build::Raw::new("10.0.0.2", "10.0.0.3", proto::UDPLITE)
        .payload(lite)
        .frame());
    assert_eq!(m.l4_invalid, Some(InvalidReason::Truncated));

    // ESP stops IPv6 parsing; "no next header" has no L4.
    let m = ok(&build::Raw::new("fd00::2", "fd00::3", 50)
        .payload([0u8; 16])
        .frame());
    assert_eq!((m.proto, m.sport, m.l4_invalid), (50, 0, None));
    let m = ok(&build::Raw::new("fd00::2", "fd00::3", 59).frame());
    assert_eq!((m.proto, m.l4_len, m.l4_invalid), (59, 0, None));
}

// ---- ICMP errors and quoted packets.

#[test]
fn icmpv6_error_quoting_tcp_with_ext_headers() {
    let mut inner = Tcp::new("[fd00::2]:4000", "[fd00::3]:443", SYN);
    inner.ip.more_frags = true; // quoted packet carries a fragment header (offset 0)
    let e = Icmp::port_unreachable("fd00::3", "fd00::2", &inner.frame()).frame();
    let m = ok(&e);
    assert_eq!((m.icmp.ty, m.icmp.code, m.icmp.is_error), (1, 4, true));
    let i = m.inner.unwrap();
    assert_eq!((i.src, i.dst), (v6("fd00::2"), v6("fd00::3")));
    assert_eq!((i.proto, i.sport, i.dport), (proto::TCP, 4000, 443));
    assert!(l4_checksum_ok(&e, &m));

    // Quoting a later fragment names no flow.
    inner.ip.frag_offset = 64;
    let e = Icmp::port_unreachable("fd00::3", "fd00::2", &inner.frame()).frame();
    assert_eq!(ok(&e).inner, None);
}

#[test]
fn icmp_error_quoting_icmp_echo() {
    let echo = Icmp::echo_request("10.0.0.2", "10.0.0.9", 0x99, 1).frame();
    let e = Icmp::error("10.0.0.1", "10.0.0.2", 11, 0, &echo).frame();
    let m = ok(&e);
    assert!(m.icmp.is_error);
    let i = m.inner.unwrap();
    assert_eq!(
        (i.proto, i.icmp_type, i.icmp_code, i.icmp_id),
        (proto::ICMP, 8, 0, 0x99)
    );
    // Seven bytes of the quoted ICMP header are not enough.
    let mut short = Icmp::error("10.0.0.1", "10.0.0.2", 11, 0, &echo);
    short.body.truncate(27);
    assert_eq!(ok(&short.frame()).inner, None);
    // Inner IPv4 options are skipped.
    let opts = Icmp::error("10.0.0.1", "10.0.0.2", 3, 3, V4_OPTIONS_UDP).frame();
    let i = ok(&opts).inner.unwrap();
    assert_eq!((i.sport, i.dport), (68, 67));
}

#[test]
fn short_icmp() {
    let f = build::Raw::new("10.0.0.2", "10.0.0.3", proto::ICMP)
        .payload([8u8, 0, 0, 0, 0, 1, 0])
        .frame();
    assert_eq!(ok(&f).l4_invalid, Some(InvalidReason::Truncated));
}

// ---- Checksums.

#[test]
fn l4_checksums() {
    // IPv4 UDP checksum 0 means "none".
    let mut udp = Udp::new("10.0.0.2:1", "10.0.0.3:2").payload(*b"abc");
    udp.no_checksum = true;
    let f = udp.frame();
    let m = ok(&f);
    assert_eq!(&f[40..42], &[0, 0]);
    assert!(l4_checksum_ok(&f, &m));

    // Corrupted: each protocol.
    for f in [
        TCP_SYN_V4.to_vec(),
        UDP_V4.to_vec(),
        ICMP_PORT_UNREACH.to_vec(),
        ICMPV6_ECHO.to_vec(),
        V6_HBH_FRAG_UDP.to_vec(),
        Tcp::new("[fd00::1]:5", "[fd00::2]:6", ACK)
            .payload(*b"odd")
            .frame(),
    ] {
        let m = ok(&f);
        assert!(l4_checksum_ok(&f, &m));
        let mut bad = f.clone();
        build::corrupt_l4_checksum(&mut bad);
        let mb = ok(&bad);
        // A first fragment's checksum cannot be verified.
        assert_eq!(l4_checksum_ok(&bad, &mb), m.fragment != Fragment::None);
        // Payload corruption is caught too.
        let mut bad = f.clone();
        let last = usize::from(m.payload_offset + m.payload_len) - 1;
        if m.payload_len > 0 && m.fragment == Fragment::None {
            bad[last] ^= 0x10;
            assert!(!l4_checksum_ok(&bad, &ok(&bad)));
        }
    }

    // UDP-Lite: checksum mandatory; partial coverage ignores bytes past it.
    let src = "10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap().octets();
    let dst = "10.0.0.3".parse::<std::net::Ipv4Addr>().unwrap().octets();
    let mut lite = vec![0, 1, 0, 2, 0, 8, 0, 0, b'x', b'y'];
    let sum =
        super::checksum::pseudo_v4(src, dst, proto::UDPLITE, 10) + super::checksum::sum(&lite[..8]);
    let c = !super::checksum::fold(sum);
    lite[6..8].copy_from_slice(&c.to_be_bytes());
    let f = build::Raw::new("10.0.0.2", "10.0.0.3", proto::UDPLITE)
        .payload(lite.clone())
        .frame();
    assert!(l4_checksum_ok(&f, &ok(&f)));
    let mut g = f.clone();
    *g.last_mut().unwrap() ^= 0xff; // outside coverage
    assert!(l4_checksum_ok(&g, &ok(&g)));
    lite[6..8].copy_from_slice(&[0, 0]);
    let f = build::Raw::new("10.0.0.2", "10.0.0.3", proto::UDPLITE)
        .payload(lite)
        .frame();
    assert!(!l4_checksum_ok(&f, &ok(&f)));
}

// ---- No panics, offsets within the frame, on every prefix and single-byte mutation.

#[test]
fn every_prefix_and_byte_flip_is_safe() {
    let frames: Vec<Vec<u8>> = vec![
        TCP_SYN_V4.to_vec(),
        UDP_V4.to_vec(),
        ARP.to_vec(),
        QINQ_ICMP_ECHO.to_vec(),
        V6_HBH_FRAG_UDP.to_vec(),
        ICMP_PORT_UNREACH.to_vec(),
        ICMPV6_ECHO.to_vec(),
        V4_OPTIONS_UDP.to_vec(),
    ];
    for f in &frames {
        for n in 0..=f.len() {
            if let Ok(m) = parse(&f[..n]) {
                assert_offsets_within(&f[..n], &m);
                let _ = l4_checksum_ok(&f[..n], &m);
            }
        }
        for i in 0..f.len() {
            for x in [0x01u8, 0x0f, 0x80, 0xff] {
                let mut g = f.clone();
                g[i] ^= x;
                if let Ok(m) = parse(&g) {
                    assert_offsets_within(&g, &m);
                    let _ = l4_checksum_ok(&g, &m);
                }
            }
        }
    }
}

// ---- Round trips over random builder inputs.

mod roundtrip {
    use super::super::build::{Tcp, Udp};
    use super::super::{l4_checksum_ok, parse};
    use crate::packet::{to_ip, IpFamily};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<u32>(), any::<u32>())
                .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))),
            (any::<u128>(), any::<u128>())
                .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))),
        ]
    }

    proptest! {
        #[test]
        fn tcp(
            (src, dst) in addr_pair(),
            ports in any::<(u16, u16)>(),
            seq in any::<u32>(),
            ack in any::<u32>(),
            flags in any::<u8>(),
            window in any::<u16>(),
            wscale in proptest::option::of(0u8..=14),
            sack_perm in any::<bool>(),
            mss in proptest::option::of(any::<u16>()),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            vlan in proptest::option::of(0u16..4096),
            ttl in any::<u8>(),
            id in 0u32..0x10_0000,
        ) {
            let mut t = Tcp {
                seq, ack, window, wscale, sack_perm, mss, payload: payload.clone(),
                ..Tcp::new(SocketAddr::new(src, ports.0), SocketAddr::new(dst, ports.1), flags)
            }
            .ttl(ttl)
            .ip_id(id);
            t.ip.vlan = vlan;
            let f = t.frame();
            let m = parse(&f).unwrap();
            prop_assert_eq!(m.vlan, vlan);
            prop_assert_eq!(to_ip(m.family, &m.src), src);
            prop_assert_eq!(to_ip(m.family, &m.dst), dst);
            let id = if m.family == IpFamily::V4 { id & 0xffff } else { id };
            prop_assert_eq!((m.ttl, m.ip_id), (ttl, id));
            prop_assert_eq!((m.sport, m.dport), ports);
            prop_assert_eq!((m.tcp.seq, m.tcp.ack, m.tcp.flags, m.tcp.window), (seq, ack, flags, window));
            let syn = flags & crate::packet::tcp_flags::SYN != 0;
            let expect = if syn { (wscale, sack_perm) } else { (None, false) };
            prop_assert_eq!((m.tcp.wscale, m.tcp.sack_perm), expect);
            prop_assert_eq!(m.payload(&f), &payload[..]);
            prop_assert_eq!(m.l4_invalid, None);
            prop_assert!(l4_checksum_ok(&f, &m));
        }

        #[test]
        fn udp(
            (src, dst) in addr_pair(),
            ports in any::<(u16, u16)>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            flip in any::<proptest::sample::Index>(),
        ) {
            let f = Udp::new(SocketAddr::new(src, ports.0), SocketAddr::new(dst, ports.1))
                .payload(payload.clone())
                .frame();
            let m = parse(&f).unwrap();
            prop_assert_eq!((m.sport, m.dport), ports);
            prop_assert_eq!(m.payload(&f), &payload[..]);
            prop_assert!(l4_checksum_ok(&f, &m));
            // Any single-bit error in the UDP datagram is caught by the checksum.
            let mut g = f.clone();
            let at = usize::from(m.l4_offset) + flip.index(usize::from(m.l4_len));
            g[at] ^= 0x04;
            if let Ok(mg) = parse(&g) {
                let l4 = usize::from(m.l4_offset);
                if mg.l4_invalid.is_none() && g[l4 + 6..l4 + 8] != [0, 0] {
                    prop_assert!(!l4_checksum_ok(&g, &mg));
                }
            }
        }
    }
}
