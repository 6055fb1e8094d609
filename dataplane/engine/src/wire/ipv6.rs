//! The IPv6 header and extension-header chain, walked like the kernel's `ipv6_skip_exthdr`
//! (which nf_conntrack_ipv6 uses to find the L4 protocol).

use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::reason::{InvalidReason, L3Error};

pub const HEADER_LEN: usize = 40;

pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_ESP: u8 = 50;
pub const NEXTHDR_AUTH: u8 = 51;
pub const NEXTHDR_NONE: u8 = 59;
pub const NEXTHDR_DEST: u8 = 60;

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// The upper-layer protocol (59 for "no next header"; the fragment header's next header
    /// for a later fragment, whose L4 header is elsewhere).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the chain.
    pub offset: usize,
    pub fragment: Fragment,
    /// An extension header is cut short, or the chain runs past the payload.
    pub truncated: bool,
}

/// Walks the extension headers of `p` (the IPv6 payload) starting with next header `nh`.
///
/// Like `ipv6_skip_exthdr`: hop-by-hop, routing and destination options are `(len + 1) * 8`
/// bytes, AH `(len + 2) * 4`, the fragment header 8 and stops the walk at a non-zero offset;
/// ESP and anything else is the upper layer.
#[inline]
pub fn skip_exthdr(p: &[u8], mut nh: u8) -> ExtChain {
    let mut offset = 0usize;
    let mut fragment = Fragment::None;
    loop {
        let hdr_len = match nh {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_AUTH => {
                let Some(&[next, len]) = p.get(offset..offset + 2) else {
                    return ExtChain {
                        proto: nh,
                        offset,
                        fragment,
                        truncated: true,
                    };
                };
                let len = usize::from(len);
                let hdr_len = if nh == NEXTHDR_AUTH {
                    (len + 2) * 4
                } else {
                    (len + 1) * 8
                };
                nh = next;
                hdr_len
            }
            NEXTHDR_FRAGMENT => {
                let Some(&[next, _, off_hi, off_lo]) = p.get(offset..offset + 4) else {
                    return ExtChain {
                        proto: nh,
                        offset,
                        fragment,
                        truncated: true,
                    };
                };
                let frag = u16::from_be_bytes([off_hi, off_lo]);
                nh = next;
                if frag & !0x7 != 0 {
                    // A later fragment: what follows is data, not headers.
                    return ExtChain {
                        proto: nh,
                        offset: offset + 8,
                        fragment: Fragment::Later,
                        truncated: offset + 8 > p.len(),
                    };
                }
                if frag & 1 != 0 {
                    fragment = Fragment::First;
                }
                8
            }
            _ => break,
        };
        offset += hdr_len;
    }
    ExtChain {
        proto: nh,
        offset,
        fragment,
        truncated: offset > p.len(),
    }
}

/// Parses the IPv6 header of `ip` (the frame from the L3 offset on) into `m`.
#[inline]
pub fn parse(ip: &[u8], l3_offset: usize, m: &mut PacketMeta) -> Result<(), L3Error> {
    let Some(h) = ip.first_chunk::<HEADER_LEN>() else {
        return Err(L3Error::Truncated);
    };
    if h[0] >> 4 != 6 {
        return Err(L3Error::BadIpHeader);
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let Some(payload) = ip.get(HEADER_LEN..HEADER_LEN + payload_len) else {
        return Err(L3Error::BadIpLength);
    };

    m.is_ip = true;
    m.family = IpFamily::V6;
    m.ip_id = u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]);
    m.ttl = h[7];
    if let (Some(src), Some(dst)) = (h[8..24].first_chunk(), h[24..40].first_chunk()) {
        m.src = *src;
        m.dst = *dst;
    }

    let chain = skip_exthdr(payload, h[6]);
    m.proto = chain.proto;
    m.fragment = chain.fragment;
    let l4_start = chain.offset.min(payload_len);
    // Offsets are u16: an upper-layer header (of up to 60 bytes) that would start past them
    // (extension headers filling a reassembled 64 KiB datagram) is called truncated.
    let beyond = l3_offset + HEADER_LEN + l4_start + 60 > usize::from(u16::MAX);
    m.l4_offset = if beyond {
        0
    } else {
        (l3_offset + HEADER_LEN + l4_start) as u16
    };
    m.l4_len = if beyond {
        0
    } else {
        (payload_len - l4_start) as u16
    };
    if chain.fragment == Fragment::Later {
        m.l4_invalid = Some(InvalidReason::Fragment);
    } else if chain.truncated || beyond {
        m.l4_invalid = Some(InvalidReason::Truncated);
    }
    Ok(())
}
