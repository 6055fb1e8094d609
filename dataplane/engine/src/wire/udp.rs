//! UDP and UDP-Lite (their conntrack checks, from nf_conntrack_proto_udp.c), and the
//! port-only reads for SCTP and DCCP.

use crate::packet::PacketMeta;
use crate::reason::InvalidReason;

pub const HEADER_LEN: usize = 8;
/// `sizeof(struct sctphdr)`: ports, verification tag, CRC32c.
pub const SCTP_HEADER_LEN: usize = 12;
/// `sizeof(struct dccp_hdr)`: the generic header with a short sequence number.
pub const DCCP_HEADER_LEN: usize = 12;

/// UDP: the header is present and its length field is within `[8, l4_len]` (udp_error:
/// "short packet", "truncated/malformed packet"). The payload ends where the UDP length says.
#[inline]
pub fn parse_udp(l4: &[u8], l4_offset: usize, m: &mut PacketMeta) {
    let Some(h) = l4.first_chunk::<HEADER_LEN>() else {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    };
    m.sport = u16::from_be_bytes([h[0], h[1]]);
    m.dport = u16::from_be_bytes([h[2], h[3]]);
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if len < HEADER_LEN || len > l4.len() {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    }
    m.payload_offset = (l4_offset + HEADER_LEN) as u16;
    m.payload_len = (len - HEADER_LEN) as u16;
}

/// UDP-Lite: the length field is the checksum coverage, 0 meaning the whole datagram
/// (RFC 3828 §3.1); otherwise it must be within `[8, l4_len]` (udplite_error: "invalid
/// checksum coverage"). The payload is the rest of the IP payload.
#[inline]
pub fn parse_udplite(l4: &[u8], l4_offset: usize, m: &mut PacketMeta) {
    let Some(h) = l4.first_chunk::<HEADER_LEN>() else {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    };
    m.sport = u16::from_be_bytes([h[0], h[1]]);
    m.dport = u16::from_be_bytes([h[2], h[3]]);
    let cscov = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if cscov != 0 && (cscov < HEADER_LEN || cscov > l4.len()) {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    }
    m.payload_offset = (l4_offset + HEADER_LEN) as u16;
    m.payload_len = (l4.len() - HEADER_LEN) as u16;
}

/// SCTP and DCCP: ports from the first four bytes; the protocol's fixed header (`min_len`)
/// must be present (sctp_error / dccp_error: "short packet"). For DCCP the data offset must
/// also cover the fixed header and fit the packet ("truncated/malformed packet").
#[inline]
pub fn parse_ports(l4: &[u8], l4_offset: usize, min_len: usize, dccp: bool, m: &mut PacketMeta) {
    let Some(&[s0, s1, d0, d1]) = l4.get(..4) else {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    };
    m.sport = u16::from_be_bytes([s0, s1]);
    m.dport = u16::from_be_bytes([d0, d1]);
    if l4.len() < min_len {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    }
    let header_len = if dccp {
        let doff = usize::from(l4.get(4).copied().unwrap_or(0)) * 4;
        if doff < DCCP_HEADER_LEN || doff > l4.len() {
            m.l4_invalid = Some(InvalidReason::Truncated);
            return;
        }
        doff
    } else {
        min_len
    };
    m.payload_offset = (l4_offset + header_len) as u16;
    m.payload_len = (l4.len() - header_len) as u16;
}
