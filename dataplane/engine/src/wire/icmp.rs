//! ICMP and ICMPv6: the 8-byte header, query identifiers, and the packet an error quotes
//! (what the kernel's `icmp_error_message` / `nf_conntrack_inet_error` extract with
//! `nf_ct_get_tuplepr` on the embedded header). Also the one place that knows what ICMP types
//! mean: errors, queries and their answers, which types may open a connection.

use crate::packet::{v4_mapped, InnerTuple, IpFamily, PacketMeta};
use crate::reason::InvalidReason;

use super::{ipv6, proto};

pub const HEADER_LEN: usize = 8;

/// ICMPv4 types that quote an offending packet (the kernel's `icmp_is_err`).
#[inline]
pub fn is_error_v4(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 error types (RFC 4443 §2.1: destination unreachable, packet too big, time
/// exceeded, parameter problem).
#[inline]
pub fn is_error_v6(ty: u8) -> bool {
    matches!(ty, 1..=4)
}

/// ICMPv4 query types that carry an identifier: echo, timestamp, information, address mask
/// requests and replies (the types `icmp_invert_tuple` knows).
#[inline]
pub fn is_query_v4(ty: u8) -> bool {
    matches!(ty, 0 | 8 | 13..=18)
}

/// ICMPv6 query types with an identifier: echo and node information (RFC 4620).
#[inline]
pub fn is_query_v6(ty: u8) -> bool {
    matches!(ty, 128 | 129 | 139 | 140)
}

/// ICMP(v4) query types and their answers (the kernel's `invmap` in nf_conntrack_proto_icmp.c).
const ICMP_INVERSE: [(u8, u8); 8] = [
    (8, 0),
    (0, 8),
    (13, 14),
    (14, 13),
    (15, 16),
    (16, 15),
    (17, 18),
    (18, 17),
];
/// ICMPv6 query types and their answers (nf_conntrack_proto_icmpv6.c).
const ICMPV6_INVERSE: [(u8, u8); 4] = [(128, 129), (129, 128), (139, 140), (140, 139)];

/// The type of the answer to an ICMP query type (or of the query for an answer); `None` for
/// types the kernel cannot invert, which therefore have no tuple.
pub fn inverse(family: IpFamily, ty: u8) -> Option<u8> {
    let table: &[(u8, u8)] = match family {
        IpFamily::V4 => &ICMP_INVERSE,
        IpFamily::V6 => &ICMPV6_INVERSE,
    };
    table.iter().find(|(t, _)| *t == ty).map(|(_, inv)| *inv)
}

/// Whether an ICMP type may start a connection (`valid_new` in the kernel: the requests).
pub fn valid_new(family: IpFamily, ty: u8) -> bool {
    match family {
        IpFamily::V4 => matches!(ty, 8 | 13 | 15 | 17),
        IpFamily::V6 => matches!(ty, 128 | 139),
    }
}

/// Whether conntrack treats an ICMP type as an error about another packet: v4 3, 4, 5, 11,
/// 12 (`icmp_is_err`, [`is_error_v4`]); v6 every type below 128 (`icmpv6_error` treats them
/// all as errors, though only [`is_error_v6`]'s types quote a packet the parser extracts).
/// No ICMP error is ever sent about one of these (`reject`).
pub fn is_error(family: IpFamily, ty: u8) -> bool {
    match family {
        IpFamily::V4 => is_error_v4(ty),
        IpFamily::V6 => ty < 128,
    }
}

/// Whether `proto` is an ICMP protocol for the family.
pub fn is_icmp(family: IpFamily, proto: u8) -> bool {
    matches!(
        (family, proto),
        (IpFamily::V4, proto::ICMP) | (IpFamily::V6, proto::ICMPV6)
    )
}

/// Parses the ICMP (`v6 == false`) or ICMPv6 message `l4` at `l4_offset` in the frame.
#[inline]
pub fn parse(l4: &[u8], l4_offset: usize, v6: bool, m: &mut PacketMeta) {
    let Some(h) = l4.first_chunk::<HEADER_LEN>() else {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    };
    let ty = h[0];
    let (is_error, is_query) = if v6 {
        (is_error_v6(ty), is_query_v6(ty))
    } else {
        (is_error_v4(ty), is_query_v4(ty))
    };
    m.icmp.ty = ty;
    m.icmp.code = h[1];
    m.icmp.is_error = is_error;
    if is_query {
        m.icmp.id = u16::from_be_bytes([h[4], h[5]]);
    }
    let body = l4.get(HEADER_LEN..).unwrap_or(&[]);
    m.payload_offset = (l4_offset + HEADER_LEN) as u16;
    m.payload_len = body.len() as u16;
    if is_error {
        m.inner = if v6 { inner_v6(body) } else { inner_v4(body) };
    }
}

/// The tuple of an IPv4 packet quoted by an ICMP error: its header (options included), and
/// the first bytes of its L4 header. `None` when too little is quoted or it is a non-first
/// fragment (ipv4_get_l4proto).
#[inline]
pub fn inner_v4(q: &[u8]) -> Option<InnerTuple> {
    let h = q.first_chunk::<20>()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
        return None;
    }
    let mut t = InnerTuple {
        src: v4_mapped([h[12], h[13], h[14], h[15]]),
        dst: v4_mapped([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        ..InnerTuple::default()
    };
    inner_l4(q.get(ihl..)?, proto::ICMP, &mut t)?;
    Some(t)
}

/// The tuple of an IPv6 packet quoted by an ICMPv6 error, extension headers skipped
/// (ipv6_get_l4proto). `None` when too little is quoted or it is a non-first fragment.
#[inline]
pub fn inner_v6(q: &[u8]) -> Option<InnerTuple> {
    let h = q.first_chunk::<{ ipv6::HEADER_LEN }>()?;
    let rest = q.get(ipv6::HEADER_LEN..)?;
    let chain = ipv6::skip_exthdr(rest, h[6]);
    if chain.truncated
        || chain.fragment == crate::packet::Fragment::Later
        || chain.proto == ipv6::NEXTHDR_NONE
    {
        return None;
    }
    let mut t = InnerTuple {
        src: *h[8..24].first_chunk()?,
        dst: *h[24..40].first_chunk()?,
        proto: chain.proto,
        ..InnerTuple::default()
    };
    inner_l4(rest.get(chain.offset..)?, proto::ICMPV6, &mut t)?;
    Some(t)
}

/// Ports (4 bytes needed, as nf_ct_get_tuple_ports) or the quoted ICMP header (8 bytes, as
/// icmp_pkt_to_tuple); other protocols need nothing.
#[inline]
fn inner_l4(l4: &[u8], icmp_proto: u8, t: &mut InnerTuple) -> Option<()> {
    match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::DCCP => {
            let &[s0, s1, d0, d1] = l4.get(..4)? else {
                return None;
            };
            t.sport = u16::from_be_bytes([s0, s1]);
            t.dport = u16::from_be_bytes([d0, d1]);
        }
        p if p == icmp_proto => {
            let h = l4.first_chunk::<HEADER_LEN>()?;
            t.icmp_type = h[0];
            t.icmp_code = h[1];
            let is_query = if icmp_proto == proto::ICMP {
                is_query_v4(h[0])
            } else {
                is_query_v6(h[0])
            };
            if is_query {
                t.icmp_id = u16::from_be_bytes([h[4], h[5]]);
            }
        }
        _ => {}
    }
    Some(())
}
