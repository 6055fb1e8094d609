//! `action: reject`: the answer a REJECT rule sends back out of the ingress port, built in a
//! caller's buffer (no allocation), after the kernel's nf_reject_ipv4/ipv6.
//!
//! - `tcp-reset`: a RST from the original destination. If the offending segment carried an
//!   ACK, the RST's sequence is that ACK; otherwise the RST acknowledges the segment
//!   (`seq + syn + fin + payload`). Never in answer to a RST.
//! - ICMP(v6) unreachable (the default `icmp-port-unreachable`, and the other codes): an
//!   error quoting the offending packet's IP header and as much of its payload as fits in
//!   576 bytes (IPv4) or 1280 (IPv6), sent from the original destination's address — a
//!   bump-in-the-wire gateway has no address of its own, so it answers for the host it
//!   protects. Never about an ICMP error, a non-first fragment, or a multicast destination.

use config::ruleset::RejectWith;

use crate::packet::{tcp_flags, Fragment, IpFamily, PacketMeta};
use crate::wire::checksum::{checksum, fold, pseudo_v4, pseudo_v6, sum};
use crate::wire::{icmp, proto};

/// Largest answer frame (IPv6 minimum MTU + Ethernet header).
pub const MAX_REPLY: usize = 14 + 1280;

/// The ICMP or ICMPv6 type and code of an answer. A type of one family in a rule that sees
/// the other answers with its nearest counterpart: net/host prohibited as ICMPv6's
/// administratively prohibited, ICMPv6's policy fail and reject route as ICMP's
/// communication administratively prohibited.
fn icmp_code(with: RejectWith, family: IpFamily) -> (u8, u8) {
    match family {
        IpFamily::V4 => match with {
            RejectWith::IcmpNetUnreachable => (3, 0),
            RejectWith::IcmpHostUnreachable => (3, 1),
            RejectWith::IcmpProtoUnreachable => (3, 2),
            RejectWith::IcmpNetProhibited => (3, 9),
            RejectWith::IcmpHostProhibited => (3, 10),
            RejectWith::IcmpAdminProhibited
            | RejectWith::Icmp6PolicyFail
            | RejectWith::Icmp6RejectRoute => (3, 13),
            RejectWith::IcmpPortUnreachable | RejectWith::TcpReset => (3, 3),
        },
        IpFamily::V6 => match with {
            RejectWith::IcmpNetUnreachable => (1, 0),
            RejectWith::IcmpAdminProhibited
            | RejectWith::IcmpNetProhibited
            | RejectWith::IcmpHostProhibited => (1, 1),
            RejectWith::IcmpHostUnreachable | RejectWith::IcmpProtoUnreachable => (1, 3),
            RejectWith::Icmp6PolicyFail => (1, 5),
            RejectWith::Icmp6RejectRoute => (1, 6),
            RejectWith::IcmpPortUnreachable | RejectWith::TcpReset => (1, 4),
        },
    }
}

/// Write the reject answer for `frame` into `out`; its length, or `None` when the kernel
/// would send nothing. `with` is the rule's `reject_with` (None: ICMP port unreachable).
pub fn build(
    frame: &[u8],
    m: &PacketMeta,
    with: Option<RejectWith>,
    out: &mut [u8],
) -> Option<usize> {
    if !m.is_ip || m.fragment == Fragment::Later || m.l4_invalid.is_some() {
        return None;
    }
    let with = with.unwrap_or(RejectWith::IcmpPortUnreachable);
    let l3 = usize::from(m.l3_offset);
    let l4 = usize::from(m.l4_offset);
    // Ethernet header (VLAN tags kept): destination and source swapped.
    let eth = frame.get(..l3)?;
    let eth_out = out.get_mut(..l3)?;
    eth_out.copy_from_slice(eth);
    eth_out[..6].copy_from_slice(frame.get(6..12)?);
    eth_out[6..12].copy_from_slice(frame.get(..6)?);
    if with == RejectWith::TcpReset {
        if m.proto != proto::TCP || m.tcp.flags & tcp_flags::RST != 0 {
            return None;
        }
        return tcp_reset(m, out, l3);
    }
    // No error about an error, or to a multicast/broadcast destination.
    let icmp_error = icmp::is_icmp(m.family, m.proto) && icmp::is_error(m.family, m.icmp.ty);
    let multicast = match m.family {
        IpFamily::V4 => m.dst[12] >= 224 || m.dst[12..] == [255, 255, 255, 255],
        IpFamily::V6 => m.dst[0] == 0xff,
    };
    if icmp_error || multicast {
        return None;
    }
    let (ty, code) = icmp_code(with, m.family);
    // The quoted packet: the IP header and what follows, as far as it goes.
    let ip_len = l4 - l3 + usize::from(m.l4_len);
    let quoted = frame.get(l3..l3 + ip_len)?;
    match m.family {
        IpFamily::V4 => {
            let q = quoted.len().min(576 - 20 - 8);
            let total = 20 + 8 + q;
            let ip = out.get_mut(l3..l3 + total)?;
            // icmp_send: TOS `(tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL`, and no DF
            // (the ICMP socket is IP_PMTUDISC_DONT).
            let tos = (quoted[1] & 0x1e) | 0xc0;
            ipv4_header(ip, total, 1, (tos, 0), &m.dst[12..16], &m.src[12..16]);
            let icmp = &mut ip[20..];
            icmp[..8].copy_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
            icmp[8..8 + q].copy_from_slice(&quoted[..q]);
            let c = checksum(icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            Some(l3 + total)
        }
        IpFamily::V6 => {
            let q = quoted.len().min(1280 - 40 - 8);
            let plen = 8 + q;
            let ip = out.get_mut(l3..l3 + 40 + plen)?;
            ipv6_header(ip, plen, 58, &m.dst, &m.src);
            let icmp = &mut ip[40..];
            icmp[..8].copy_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
            icmp[8..8 + q].copy_from_slice(&quoted[..q]);
            let c = !fold(pseudo_v6(&m.dst, &m.src, 58, plen as u32) + sum(icmp));
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            Some(l3 + 40 + plen)
        }
    }
}

/// An IPv4 header; `(tos, flags)` are its second byte and the high byte of its fragment
/// field (0x40: DF).
fn ipv4_header(
    ip: &mut [u8],
    total: usize,
    proto: u8,
    (tos, flags): (u8, u8),
    src: &[u8],
    dst: &[u8],
) {
    ip[..20].copy_from_slice(&[
        0x45, tos, 0, 0, 0, 0, flags, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[12..16].copy_from_slice(src);
    ip[16..20].copy_from_slice(dst);
    let c = checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

fn ipv6_header(ip: &mut [u8], payload: usize, next: u8, src: &[u8; 16], dst: &[u8; 16]) {
    ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, next, 64]);
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[8..24].copy_from_slice(src);
    ip[24..40].copy_from_slice(dst);
}

/// `nf_reject_ip_tcphdr_put`: the RST answering `m`.
fn tcp_reset(m: &PacketMeta, out: &mut [u8], l3: usize) -> Option<usize> {
    let t = &m.tcp;
    let (seq, ack, flags) = if t.flags & tcp_flags::ACK != 0 {
        (t.ack, 0, tcp_flags::RST)
    } else {
        let payload = u32::from(m.l4_len).saturating_sub(u32::from(t.header_len));
        let ack = t
            .seq
            .wrapping_add(u32::from(t.flags & tcp_flags::SYN != 0))
            .wrapping_add(u32::from(t.flags & tcp_flags::FIN != 0))
            .wrapping_add(payload);
        (0, ack, tcp_flags::RST | tcp_flags::ACK)
    };
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&m.dport.to_be_bytes());
    tcp[2..4].copy_from_slice(&m.sport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    let l4_at = match m.family {
        IpFamily::V4 => {
            let ip = out.get_mut(l3..l3 + 40)?;
            // nf_reject_iphdr_put: TOS 0, DF.
            ipv4_header(ip, 40, 6, (0, 0x40), &m.dst[12..16], &m.src[12..16]);
            let mut d = [0u8; 4];
            d.copy_from_slice(&m.dst[12..16]);
            let mut s = [0u8; 4];
            s.copy_from_slice(&m.src[12..16]);
            let c = !fold(pseudo_v4(d, s, 6, 20) + sum(&tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            l3 + 20
        }
        IpFamily::V6 => {
            let ip = out.get_mut(l3..l3 + 60)?;
            ipv6_header(ip, 20, 6, &m.dst, &m.src);
            let c = !fold(pseudo_v6(&m.dst, &m.src, 6, 20) + sum(&tcp));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            l3 + 40
        }
    };
    out.get_mut(l4_at..l4_at + 20)?.copy_from_slice(&tcp);
    Some(l4_at + 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tcp_flags::{ACK, RST, SYN};
    use crate::wire::{self, build};

    fn answer(frame: &[u8], with: Option<RejectWith>) -> Option<Vec<u8>> {
        let m = wire::parse(frame).unwrap();
        let mut out = [0u8; MAX_REPLY];
        build(frame, &m, with, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn tcp_reset_answers_a_syn() {
        let syn = build::Tcp {
            seq: 1000,
            ..build::Tcp::new("10.0.0.2:40000", "10.0.0.3:8080", SYN)
        }
        .frame();
        let rst = answer(&syn, Some(RejectWith::TcpReset)).unwrap();
        let m = wire::parse(&rst).unwrap();
        assert!(wire::l4_checksum_ok(&rst, &m));
        assert_eq!(
            (m.src_ip().to_string(), m.sport, m.dport),
            ("10.0.0.3".into(), 8080, 40000)
        );
        assert_eq!((m.tcp.flags, m.tcp.seq, m.tcp.ack), (RST | ACK, 0, 1001));
        assert_eq!(rst[..6], syn[6..12], "back to the sender's MAC");
        // A segment with ACK gets a RST whose sequence is that ACK; a RST gets nothing.
        let data = build::Tcp {
            seq: 5,
            ack: 77,
            ..build::Tcp::new("[fd00::2]:1", "[fd00::3]:2", ACK)
        }
        .frame();
        let rst = answer(&data, Some(RejectWith::TcpReset)).unwrap();
        let m = wire::parse(&rst).unwrap();
        assert!(wire::l4_checksum_ok(&rst, &m));
        assert_eq!((m.tcp.flags, m.tcp.seq), (RST, 77));
        let r = build::Tcp::new("10.0.0.2:1", "10.0.0.3:2", RST).frame();
        assert!(answer(&r, Some(RejectWith::TcpReset)).is_none());
    }

    #[test]
    fn icmp_unreachable_quotes_the_packet() {
        let udp = build::Udp::new("10.0.0.2:5000", "10.0.0.3:53")
            .payload(vec![7; 30])
            .frame();
        let err = answer(&udp, None).unwrap();
        let m = wire::parse(&err).unwrap();
        assert!(wire::l4_checksum_ok(&err, &m));
        assert_eq!((m.icmp.ty, m.icmp.code), (3, 3));
        let inner = m.inner.unwrap();
        assert_eq!((inner.sport, inner.dport, inner.proto), (5000, 53, 17));
        // As icmp_send writes its IP header (captured from Linux 6.18): TOS 0xc0 (precedence
        // internetwork control, the offending packet's TOS bits kept), no DF; checksum valid.
        assert_eq!((err[14 + 1], err[14 + 6]), (0xc0, 0));
        assert_eq!(wire::checksum::checksum(&err[14..34]), 0);
        let v6 = build::Udp::new("[fd00::2]:5000", "[fd00::3]:53").frame();
        let err = answer(&v6, Some(RejectWith::IcmpAdminProhibited)).unwrap();
        let m = wire::parse(&err).unwrap();
        assert!(wire::l4_checksum_ok(&err, &m));
        assert_eq!((m.icmp.ty, m.icmp.code), (1, 1));
        // Never an error about an error.
        let e = build::Icmp::port_unreachable("10.0.0.3", "10.0.0.2", &udp).frame();
        assert!(answer(&e, None).is_none());
    }

    #[test]
    fn every_reject_type_answers_with_its_code_in_both_families() {
        let v4 = build::Udp::new("10.0.0.2:5000", "10.0.0.3:53").frame();
        let v6 = build::Udp::new("[fd00::2]:5000", "[fd00::3]:53").frame();
        let code = |frame: &[u8], with| {
            let err = answer(frame, Some(with)).unwrap();
            let m = wire::parse(&err).unwrap();
            assert!(wire::l4_checksum_ok(&err, &m));
            (m.icmp.ty, m.icmp.code)
        };
        for (with, c4, c6) in [
            (RejectWith::IcmpNetUnreachable, (3, 0), (1, 0)),
            (RejectWith::IcmpHostUnreachable, (3, 1), (1, 3)),
            (RejectWith::IcmpProtoUnreachable, (3, 2), (1, 3)),
            (RejectWith::IcmpPortUnreachable, (3, 3), (1, 4)),
            (RejectWith::IcmpNetProhibited, (3, 9), (1, 1)),
            (RejectWith::IcmpHostProhibited, (3, 10), (1, 1)),
            (RejectWith::IcmpAdminProhibited, (3, 13), (1, 1)),
            (RejectWith::Icmp6PolicyFail, (3, 13), (1, 5)),
            (RejectWith::Icmp6RejectRoute, (3, 13), (1, 6)),
        ] {
            assert_eq!(code(&v4, with), c4, "{with:?}");
            assert_eq!(code(&v6, with), c6, "{with:?}");
        }
    }
}
