//! The TCP header and the options conntrack uses (window scale, SACK-permitted, on SYNs), read
//! as the kernel's `tcp_error` and `tcp_options` (nf_conntrack_proto_tcp.c) read them. SACK
//! blocks (`tcp_sack`) are left to conntrack, which reads them through `l4_offset` and
//! `header_len` when the peer allowed SACK.

use crate::packet::{tcp_flags, PacketMeta, TcpMeta};
use crate::reason::InvalidReason;

/// Fixed header length (data offset 5).
pub const MIN_HEADER_LEN: usize = 20;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WINDOW: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPTLEN_WINDOW: u8 = 3;
const OPTLEN_SACK_PERM: u8 = 2;
/// Largest window-scale shift (RFC 7323 §2.3; the kernel's TCP_MAX_WSCALE).
pub const MAX_WSCALE: u8 = 14;

/// Parses the TCP segment `l4` (header + payload, as long as the IP header says) found at
/// `l4_offset` in the frame.
#[inline]
pub fn parse(l4: &[u8], l4_offset: usize, m: &mut PacketMeta) {
    let Some(h) = l4.first_chunk::<MIN_HEADER_LEN>() else {
        m.l4_invalid = Some(InvalidReason::Truncated);
        return;
    };
    m.sport = u16::from_be_bytes([h[0], h[1]]);
    m.dport = u16::from_be_bytes([h[2], h[3]]);
    let header_len = usize::from(h[12] >> 4) * 4;
    m.tcp = TcpMeta {
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        window: u16::from_be_bytes([h[14], h[15]]),
        flags: h[13],
        header_len: header_len as u8,
        wscale: None,
        sack_perm: false,
    };
    // tcp_error: "truncated packet" when the data offset is below 5 or past the segment.
    let Some(options) = l4.get(MIN_HEADER_LEN..header_len) else {
        m.l4_invalid = Some(InvalidReason::TcpBadHeader);
        return;
    };
    // Conntrack reads these options only from SYNs (tcp_new, and tcp_in_window's SYN paths);
    // skipping them elsewhere keeps timestamp-carrying data segments cheap.
    if h[13] & tcp_flags::SYN != 0 && !options.is_empty() {
        parse_options(options, &mut m.tcp);
    }
    m.payload_offset = (l4_offset + header_len) as u16;
    m.payload_len = (l4.len() - header_len) as u16;
}

/// The kernel's `tcp_options` loop: EOL ends, NOP is one byte, any other option needs a
/// length byte of at least 2 that fits; a malformed option ends parsing silently.
#[inline]
fn parse_options(mut opts: &[u8], t: &mut TcpMeta) {
    loop {
        match *opts {
            [] | [OPT_EOL, ..] => return,
            [OPT_NOP, ref rest @ ..] => opts = rest,
            [kind, len, ref rest @ ..] => {
                if len < 2 || usize::from(len) > opts.len() {
                    return;
                }
                if kind == OPT_WINDOW && len == OPTLEN_WINDOW {
                    if let Some(&shift) = rest.first() {
                        t.wscale = Some(shift.min(MAX_WSCALE));
                    }
                } else if kind == OPT_SACK_PERM && len == OPTLEN_SACK_PERM {
                    t.sack_perm = true;
                }
                opts = opts.get(usize::from(len)..).unwrap_or(&[]);
            }
            [_] => return,
        }
    }
}
