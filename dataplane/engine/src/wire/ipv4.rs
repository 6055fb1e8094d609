//! The IPv4 header, checked the way the kernel's `ip_rcv_core` checks it before netfilter
//! sees the packet: version and IHL, the header present, the header checksum, then the total
//! length against the frame (trailing Ethernet padding is not part of the packet).

use crate::packet::{v4_mapped, Fragment, IpFamily, PacketMeta};
use crate::reason::{InvalidReason, L3Error};

use super::checksum;

/// Fixed header length (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;
/// Fragment offset mask of the flags/offset field (RFC 791).
const OFFSET_MASK: u16 = 0x1fff;
/// More-fragments flag.
const MF: u16 = 0x2000;

/// Parses the IPv4 header of `ip` (the frame from the L3 offset on) into `m`; `l3_offset` is
/// where `ip` starts in the frame.
#[inline]
pub fn parse(ip: &[u8], l3_offset: usize, m: &mut PacketMeta) -> Result<(), L3Error> {
    let Some(h) = ip.first_chunk::<MIN_HEADER_LEN>() else {
        return Err(L3Error::Truncated);
    };
    if h[0] >> 4 != 4 || h[0] & 0x0f < 5 {
        return Err(L3Error::BadIpHeader);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let Some(header) = ip.get(..ihl) else {
        return Err(L3Error::Truncated);
    };
    let sum = if ihl == MIN_HEADER_LEN {
        checksum::sum20(h)
    } else {
        checksum::sum(header)
    };
    if !checksum::verifies(sum) {
        return Err(L3Error::BadIpChecksum);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total > ip.len() || total < ihl {
        return Err(L3Error::BadIpLength);
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);

    m.is_ip = true;
    m.family = IpFamily::V4;
    m.ip_id = u32::from(u16::from_be_bytes([h[4], h[5]]));
    m.ttl = h[8];
    m.proto = h[9];
    m.src = v4_mapped([h[12], h[13], h[14], h[15]]);
    m.dst = v4_mapped([h[16], h[17], h[18], h[19]]);
    m.l4_offset = (l3_offset + ihl) as u16;
    m.l4_len = (total - ihl) as u16;
    if frag & OFFSET_MASK != 0 {
        m.fragment = Fragment::Later;
        m.l4_invalid = Some(InvalidReason::Fragment);
    } else if frag & MF != 0 {
        m.fragment = Fragment::First;
    }
    Ok(())
}
