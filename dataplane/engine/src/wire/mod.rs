//! Frames to [`PacketMeta`]: the hot-path parser, and L4 checksum verification.
//!
//! One pass over the headers, no allocation, no `unsafe`, no panics on any input: every read
//! goes through `get`/`first_chunk`, after which fixed-size arrays are indexed with constants.
//! What counts as broken follows the kernel: problems its IP input path drops the packet for
//! are an [`L3Error`] (the pipeline drops and counts them); problems conntrack would mark
//! INVALID set [`PacketMeta::l4_invalid`] and the packet still goes to conntrack.
//!
//! Layout: `ethernet`, `ipv4`, `ipv6` (extension headers), `tcp`, `udp` (also UDP-Lite, SCTP,
//! DCCP ports), `icmp` (both versions, quoted packets), `checksum`; [`build`] makes valid
//! frames for tests, benches and fuzz seeds.

pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod tests;

use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::reason::L3Error;

/// IP protocol numbers (IANA): config's one table, under the name the engine has always used.
pub use config::proto::number as proto;

/// The largest frame looked at: a link header with two VLAN tags and the largest IPv6
/// packet (40 + 65,535 bytes), which is what a reassembled datagram can be
/// ([`crate::defrag`]); bytes beyond it are not looked at. Offsets in [`PacketMeta`] are
/// `u16`: the IPv6 parser calls an upper-layer header that would start past them truncated.
pub const MAX_FRAME: usize = 22 + 40 + u16::MAX as usize;

/// Parses an Ethernet frame.
///
/// - `Err`: the frame is dropped before conntrack, as the kernel's IP input would (short
///   frame or IP header, bad IPv4 version/IHL/checksum, IP length beyond the frame).
/// - `Ok` with `is_ip == false`: a non-IP frame (ARP, ...), passed untracked.
/// - `Ok` with `l4_invalid` set: an IP packet conntrack marks INVALID (truncated or malformed
///   L4 header, non-first fragment).
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<PacketMeta, L3Error> {
    let frame = frame.get(..MAX_FRAME).unwrap_or(frame);
    let eth = ethernet::parse(frame)?;
    let mut m = PacketMeta {
        vlan: eth.vlan,
        ethertype: eth.ethertype,
        l3_offset: eth.l3_offset as u16,
        ..PacketMeta::default()
    };
    let ip = frame.get(eth.l3_offset..).unwrap_or(&[]);
    match eth.ethertype {
        ethernet::ETHERTYPE_IPV4 => ipv4::parse(ip, eth.l3_offset, &mut m)?,
        ethernet::ETHERTYPE_IPV6 => ipv6::parse(ip, eth.l3_offset, &mut m)?,
        _ => return Ok(m),
    }
    if m.l4_invalid.is_none() {
        let start = usize::from(m.l4_offset);
        let l4 = frame
            .get(start..start + usize::from(m.l4_len))
            .unwrap_or(&[]);
        match m.proto {
            proto::TCP => tcp::parse(l4, start, &mut m),
            proto::UDP => udp::parse_udp(l4, start, &mut m),
            proto::UDPLITE => udp::parse_udplite(l4, start, &mut m),
            proto::SCTP => udp::parse_ports(l4, start, udp::SCTP_HEADER_LEN, false, &mut m),
            proto::DCCP => udp::parse_ports(l4, start, udp::DCCP_HEADER_LEN, true, &mut m),
            proto::ICMP if m.family == IpFamily::V4 => icmp::parse(l4, start, false, &mut m),
            proto::ICMPV6 if m.family == IpFamily::V6 => icmp::parse(l4, start, true, &mut m),
            _ => {}
        }
    }
    Ok(m)
}

/// Whether the L4 checksum of `frame` (parsed into `meta`) verifies, as conntrack checks it
/// with `nf_conntrack_checksum = 1`: TCP, UDP, UDP-Lite (over its coverage) and ICMPv6 with
/// the pseudo-header, ICMPv4 over the message.
///
/// `true` when there is nothing to verify: non-IP frames, fragments (the checksum covers
/// bytes this frame lacks), UDP with checksum 0 ("no checksum": udp_error accepts it for both
/// families), other protocols, and packets whose L4 header is already known broken (they are
/// INVALID for that reason).
#[inline]
pub fn l4_checksum_ok(frame: &[u8], meta: &PacketMeta) -> bool {
    if !meta.is_ip || meta.fragment != Fragment::None || meta.l4_invalid.is_some() {
        return true;
    }
    let start = usize::from(meta.l4_offset);
    let Some(l4) = frame.get(start..start + usize::from(meta.l4_len)) else {
        return true;
    };
    let covered = match meta.proto {
        proto::TCP => l4,
        proto::UDP => match *l4 {
            [_, _, _, _, _, _, 0, 0, ..] => return true,
            _ => l4,
        },
        proto::UDPLITE => match *l4 {
            // RFC 3828 §3.1: UDP-Lite mandates a checksum (udplite_error: "checksum missing").
            [_, _, _, _, _, _, 0, 0, ..] => return false,
            [_, _, _, _, c0, c1, ..] => {
                let cscov = usize::from(u16::from_be_bytes([c0, c1]));
                if cscov == 0 {
                    l4
                } else {
                    l4.get(..cscov).unwrap_or(l4)
                }
            }
            _ => return true,
        },
        proto::ICMP if meta.family == IpFamily::V4 => {
            return checksum::verifies(checksum::sum(l4));
        }
        proto::ICMPV6 if meta.family == IpFamily::V6 => l4,
        _ => return true,
    };
    // The pseudo-header length is the whole L4 length even when coverage is partial.
    let len = u32::from(meta.l4_len);
    let pseudo = match meta.family {
        IpFamily::V4 => {
            let (s, d) = (&meta.src, &meta.dst);
            checksum::pseudo_v4(
                [s[12], s[13], s[14], s[15]],
                [d[12], d[13], d[14], d[15]],
                meta.proto,
                len,
            )
        }
        IpFamily::V6 => checksum::pseudo_v6(&meta.src, &meta.dst, meta.proto, len),
    };
    checksum::verifies(pseudo + checksum::sum(covered))
}
