//! The TCP tracker, after Linux's net/netfilter/nf_conntrack_proto_tcp.c (6.x): the state
//! table as data, `tcp_in_window` window tracking, `tcp_new`, and the per-packet update of
//! `nf_conntrack_tcp_packet` including its special cases (ignored packets, re-opening from
//! TIME_WAIT, RST validation, retransmission counting, ASSURED).
//!
//! Names follow the kernel's so the two can be read side by side.

use crate::packet::{tcp_flags as f, PacketMeta};
use crate::reason::InvalidReason;

use super::entry::{status, Dir, Entry};
use super::sysctls::Sysctls;

/// TCP conntrack states (`enum tcp_conntrack`), plus the table's pseudo-states.
pub mod state {
    pub const NONE: u8 = 0;
    pub const SYN_SENT: u8 = 1;
    pub const SYN_RECV: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
    pub const FIN_WAIT: u8 = 4;
    pub const CLOSE_WAIT: u8 = 5;
    pub const LAST_ACK: u8 = 6;
    pub const TIME_WAIT: u8 = 7;
    pub const CLOSE: u8 = 8;
    pub const SYN_SENT2: u8 = 9;
    /// `TCP_CONNTRACK_MAX`: invalid transition.
    pub const IV: u8 = 10;
    /// `TCP_CONNTRACK_IGNORE`: pass, but do not change state.
    pub const IG: u8 = 11;

    /// Names as /proc/net/nf_conntrack prints them.
    pub const NAMES: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];

    /// A state's name as /proc/net/nf_conntrack prints it (`NONE` for anything else).
    pub fn name(s: u8) -> &'static str {
        NAMES.get(usize::from(s)).copied().unwrap_or("NONE")
    }

    /// The state a name (any case) stands for.
    pub fn from_name(name: &str) -> Option<u8> {
        let up = name.to_ascii_uppercase();
        NAMES.iter().position(|n| *n == up).map(|i| i as u8)
    }
}

/// Which flags a segment carries, as the table's row index (`enum tcp_bit_set`).
pub mod index {
    pub const SYN: u8 = 0;
    pub const SYNACK: u8 = 1;
    pub const FIN: u8 = 2;
    pub const ACK: u8 = 3;
    pub const RST: u8 = 4;
    pub const NONE: u8 = 5;
}

/// Per-direction flags (`IP_CT_TCP_FLAG_*`).
pub mod flag {
    pub const WINDOW_SCALE: u8 = 0x01;
    pub const SACK_PERM: u8 = 0x02;
    pub const CLOSE_INIT: u8 = 0x04;
    pub const BE_LIBERAL: u8 = 0x08;
    pub const DATA_UNACKNOWLEDGED: u8 = 0x10;
    pub const MAXACK_SET: u8 = 0x20;
    /// In `last_flags`: an RFC 5961 challenge ACK may follow.
    pub const EXP_CHALLENGE_ACK: u8 = 0x40;
    /// In `last_flags`: simultaneous open seen.
    pub const SIMULTANEOUS_OPEN: u8 = 0x80;
}

use state::{
    CLOSE as sCL, CLOSE_WAIT as sCW, ESTABLISHED as sES, FIN_WAIT as sFW, IG as sIG, IV as sIV,
    LAST_ACK as sLA, SYN_RECV as sSR, SYN_SENT as sSS, SYN_SENT2 as sS2, TIME_WAIT as sTW,
};

/// `tcp_conntracks[dir][index][old_state]`, transcribed row by row from the kernel. Below
/// each row, why each old state goes where it goes. `sIG` (ignore) marks segments that may be
/// valid or not and that the receiver may answer with a RST or a SYN/ACK: they pass without
/// changing the state (see `TcpVerdict::Ignore`); `sIV` marks truly invalid ones.
#[rustfmt::skip]
const TCP_CONNTRACKS: [[[u8; 10]; 6]; 2] = [
    // ORIGINAL
    [
        //        sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn*/  [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
        // sNO -> sSS  a new connection.
        // sSS -> sSS  the SYN retransmitted.
        // sSR..sLA -> sIG  a SYN inside a synchronised connection: the receiver answers with
        //             a RST (closing it) or a challenge ACK, or we are out of sync and hold a
        //             dead connection; the SYN/ACK that follows tells (resync).
        // sTW, sCL -> sSS  the connection reopened (RFC 1122 4.2.2.13).
        // sS2 -> sS2  a late retransmission of the SYN of a simultaneous open.
        /*synack*/[sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
        // sNO -> sIV  too late, nothing to do with it.
        // sSS -> sIV  the client cannot send a SYN and then a SYN/ACK.
        // sSR -> sSR  a late retransmission of the client's SYN/ACK in a simultaneous open.
        // sES..sCL -> sIV  a SYN/ACK from the client outside the handshake.
        // sS2 -> sSR  the client answers the server's SYN of a simultaneous open.
        /*fin*/  [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
        // sNO, sSS, sS2 -> sIV  no FIN before the SYN/ACK has been seen.
        // sSR, sES -> sFW  the close starts.
        // sFW, sCW -> sLA  FIN seen both ways (or the FIN retransmitted): waiting for the
        //             last ACK.
        // sLA, sTW, sCL  stay: a retransmitted FIN.
        /*ack*/  [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
        // sNO -> sES  assumed: a connection picked up in the middle (tcp_loose).
        // sSS, sS2 -> sIV  an ACK before any SYN/ACK was seen.
        // sSR -> sES  the handshake completes.
        // sES -> sES  data.
        // sFW -> sCW  the FIN acknowledged.
        // sCW -> sCW, sLA -> sTW  the last ACK; sTW, sCL stay (retransmitted last ACK).
        /*rst*/  [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
        // sNO -> sIV  a RST of no connection; anything else closes (the window check and
        //             the RST rules in `packet` decide whether it is believed).
        /*none*/ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
        // no SYN, FIN, ACK or RST: never valid.
    ],
    // REPLY
    [
        //        sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn*/  [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
        // sNO -> sIV  never reached (a reply direction needs an entry).
        // sSS -> sS2  simultaneous open: the server sends its own SYN.
        // sS2 -> sS2  that SYN retransmitted.
        // sSR..sLA, sCL -> sIV  the server may not send a plain SYN once the handshake ran.
        // sTW -> sSS  the connection reopened from the server's side.
        /*synack*/[sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
        // sSS -> sSR  the normal open.
        // sS2 -> sSR  the SYN/ACK of a simultaneous open.
        // sSR..sCL -> sIG  a late or retransmitted SYN/ACK, or one answering a SYN that was
        //             ignored (the resync check in `packet` acts on it).
        /*fin*/  [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
        // sSS, sS2 -> sIV  the server may not send a FIN before its SYN/ACK.
        // sSR, sES -> sFW  the close starts; sFW, sCW -> sLA  FIN seen both ways.
        // sLA, sTW, sCL  stay: a retransmitted FIN.
        /*ack*/  [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
        // sSS, sS2 -> sIG  a plain ACK before the SYN/ACK: maybe a half-open connection the
        //             server still holds; let the SYN/ACK decide.
        // sSR -> sSR  an ACK answering a SYN the client resent late.
        // sES -> sES  data; sFW -> sCW  the FIN acknowledged; sLA -> sTW  the last ACK.
        /*rst*/  [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
        // as the original direction.
        /*none*/ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
        // no SYN, FIN, ACK or RST: never valid.
    ],
];

/// One direction's window-tracking data (`struct ip_ct_tcp_state`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    zerocopy::TryFromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
///
/// Packed to 2-byte alignment (18 bytes, where `repr(C)` would pad it to 20): the four
/// bytes saved in the entry hold the connection mark.
#[repr(C, packed(2))]
pub struct TcpDir {
    pub td_end: u32,
    pub td_maxend: u32,
    pub td_maxwin: u32,
    pub td_maxack: u32,
    pub td_scale: u8,
    pub flags: u8,
}

/// A connection's TCP state (`struct ip_ct_tcp`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    zerocopy::TryFromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
#[repr(C)]
pub struct TcpConn {
    pub seen: [TcpDir; 2],
    pub last_seq: u32,
    pub last_ack: u32,
    pub last_end: u32,
    pub last_win: u16,
    pub state: u8,
    pub last_dir: u8,
    pub last_index: u8,
    pub retrans: u8,
    pub last_wscale: u8,
    pub last_flags: u8,
}

/// What the tracker decided for a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// In window: state and timeout updated.
    Accept,
    /// Accepted, and the entry must be deleted now (a RST as the only reply).
    AcceptKill,
    /// Passed without touching the state (`NF_ACCEPT` from the ignore paths).
    Ignore,
    /// INVALID; the entry (if any) is untouched.
    Invalid(InvalidReason),
    /// A SYN re-opening a closed connection: delete the entry and track the packet afresh
    /// (`-NF_REPEAT`).
    Repeat,
}

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// `get_conntrack_index`.
#[inline]
pub fn conntrack_index(flags: u8) -> u8 {
    if flags & f::RST != 0 {
        index::RST
    } else if flags & f::SYN != 0 {
        if flags & f::ACK != 0 {
            index::SYNACK
        } else {
            index::SYN
        }
    } else if flags & f::FIN != 0 {
        index::FIN
    } else if flags & f::ACK != 0 {
        index::ACK
    } else {
        index::NONE
    }
}

/// `tcp_valid_flags`: PSH, ECE and CWR are always allowed; of FIN/SYN/RST/ACK/URG only
/// these combinations are valid.
#[inline]
pub fn valid_flags(flags: u8) -> bool {
    // SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG.
    matches!(
        flags & !(f::ECE | f::CWR | f::PSH),
        0x02 | 0x22 | 0x12 | 0x04 | 0x14 | 0x11 | 0x31 | 0x10 | 0x30
    )
}

/// The segment's fields the tracker reads.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub flags: u8,
    /// TCP payload length (IP length minus IP and TCP headers).
    pub payload_len: u32,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    /// Raw option bytes (after the fixed header), for SACK blocks.
    pub options: &'a [u8],
}

impl<'a> Segment<'a> {
    pub fn from_meta(m: &PacketMeta, frame: &'a [u8]) -> Self {
        let start = usize::from(m.l4_offset) + 20;
        let end = usize::from(m.l4_offset) + usize::from(m.tcp.header_len);
        Segment {
            seq: m.tcp.seq,
            ack: m.tcp.ack,
            win: m.tcp.window,
            flags: m.tcp.flags,
            payload_len: u32::from(m.l4_len).saturating_sub(u32::from(m.tcp.header_len)),
            wscale: m.tcp.wscale,
            sack_perm: m.tcp.sack_perm,
            options: frame.get(start..end).unwrap_or(&[]),
        }
    }

    #[inline]
    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// `segment_seq_plus_len`.
    #[inline]
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.has(f::SYN)))
            .wrapping_add(u32::from(self.has(f::FIN)))
    }

    /// `tcp_options`: window scale and SACK-permitted into a direction's state.
    fn options_into(&self, d: &mut TcpDir) {
        d.td_scale = 0;
        d.flags &= flag::BE_LIBERAL;
        if self.sack_perm {
            d.flags |= flag::SACK_PERM;
        }
        if let Some(s) = self.wscale {
            d.td_scale = s.min(14);
            d.flags |= flag::WINDOW_SCALE;
        }
    }

    /// `tcp_sack`: raise `sack` to the highest right edge of the SACK blocks.
    fn sack(&self, sack: &mut u32) {
        let o = self.options;
        // Fast path for timestamp-only options.
        if o.len() == 12 && o[..4] == [1, 1, 8, 10] {
            return;
        }
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                0 => return,
                1 => i += 1,
                kind => {
                    let Some(&size) = o.get(i + 1) else { return };
                    let size = usize::from(size);
                    if size < 2 || i + size > o.len() {
                        return;
                    }
                    if kind == 5 && size >= 10 && (size - 2) % 8 == 0 {
                        let mut b = i + 2;
                        while b + 8 <= i + size {
                            let right =
                                u32::from_be_bytes([o[b + 4], o[b + 5], o[b + 6], o[b + 7]]);
                            if after(right, *sack) {
                                *sack = right;
                            }
                            b += 8;
                        }
                        return;
                    }
                    i += size;
                }
            }
        }
    }
}

/// `MAXACKWINDOW`.
#[inline]
fn max_ack_window(sender: &TcpDir) -> u32 {
    sender.td_maxwin.max(66000)
}

/// `tcp_init_sender`.
fn init_sender(c: &mut TcpConn, dir: Dir, seg: &Segment, end: u32, win: u32) {
    let d = dir.idx();
    let sender = &mut c.seen[d];
    sender.td_end = end;
    sender.td_maxend = end;
    sender.td_maxwin = if win == 0 { 1 } else { win };
    seg.options_into(sender);
    // RFC 1323: both sides must send the option for scaling in either direction.
    if dir == Dir::Reply
        && !(c.seen[d].flags & flag::WINDOW_SCALE != 0
            && c.seen[1 - d].flags & flag::WINDOW_SCALE != 0)
    {
        c.seen[d].td_scale = 0;
        c.seen[1 - d].td_scale = 0;
    }
}

/// Outcome of `tcp_in_window` (`enum nf_ct_tcp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowAction {
    Accept,
    Ignore,
    Invalid,
}

/// `nf_tcp_log_invalid`: under `be_liberal` every window complaint is accepted.
#[inline]
fn complain(sender: &TcpDir, t: &Sysctls, ret: WindowAction) -> WindowAction {
    if sender.flags & flag::BE_LIBERAL != 0 || t.tcp_be_liberal {
        WindowAction::Accept
    } else {
        ret
    }
}

/// `tcp_in_window`.
fn in_window(c: &mut TcpConn, dir: Dir, idx: u8, seg: &Segment, t: &Sysctls) -> WindowAction {
    let d = dir.idx();
    let r = 1 - d;
    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut sack = seg.ack;
    let win_raw = seg.win;
    let mut win = u32::from(win_raw);
    let mut end = seg.end();

    if c.seen[r].flags & flag::SACK_PERM != 0 {
        seg.sack(&mut sack);
    }

    if c.seen[d].td_maxwin == 0 {
        // Initialize sender data.
        if seg.has(f::SYN) {
            init_sender(c, dir, seg, end, win);
            if !seg.has(f::ACK) {
                // Simultaneous open.
                return WindowAction::Accept;
            }
        } else {
            // Mid-connection: its history is lost for us; use the packet's data.
            let sender = &mut c.seen[d];
            sender.td_end = end;
            let swin = win << sender.td_scale;
            sender.td_maxwin = if swin == 0 { 1 } else { swin };
            sender.td_maxend = end.wrapping_add(sender.td_maxwin);
            if c.seen[r].td_maxwin == 0 {
                // No traffic seen the other way yet: let III and IV pass until then.
                c.seen[r].td_end = sack;
                c.seen[r].td_maxend = sack;
            } else if sack == c.seen[r].td_end.wrapping_add(1) {
                // Likely a reply to a keepalive.
                c.seen[r].td_end = c.seen[r].td_end.wrapping_add(1);
            }
        }
    } else if seg.has(f::SYN)
        && after(end, c.seen[d].td_end)
        && (c.state == state::SYN_SENT || c.state == state::SYN_RECV)
    {
        // RFC 793: a reinitialized TCP uses larger sequence numbers; re-init this direction.
        init_sender(c, dir, seg, end, win);
        if dir == Dir::Reply && !seg.has(f::ACK) {
            return WindowAction::Accept;
        }
    }

    if !seg.has(f::ACK) {
        // No ACK: pretend it was set and OK.
        ack = c.seen[r].td_end;
        sack = ack;
    } else if seg.flags & (f::ACK | f::RST) == (f::ACK | f::RST) && ack == 0 {
        // Broken stacks that set ACK in RST with a zero ack.
        ack = c.seen[r].td_end;
        sack = ack;
    }

    if seg.has(f::RST) && seq == 0 && c.state == state::SYN_SENT {
        // RST answering a SYN.
        seq = c.seen[d].td_end;
        end = seq;
    }

    let seq_ok = before(seq, c.seen[d].td_maxend.wrapping_add(1));
    if !seq_ok {
        let overshot = end.wrapping_sub(c.seen[d].td_maxend).wrapping_add(1);
        let ack_ok = after(
            sack,
            c.seen[r]
                .td_end
                .wrapping_sub(max_ack_window(&c.seen[d]))
                .wrapping_sub(1),
        );
        let in_recv_win = c.seen[r].td_maxwin != 0
            && after(
                end,
                c.seen[d]
                    .td_end
                    .wrapping_sub(c.seen[r].td_maxwin)
                    .wrapping_sub(1),
            );
        if in_recv_win
            && ack_ok
            && overshot <= c.seen[r].td_maxwin
            && before(sack, c.seen[r].td_end.wrapping_add(1))
        {
            // Stacks that send more than the receive window allows: remember the data so
            // its ACK does not fail the upper bound later.
            c.seen[d].td_end = end;
            c.seen[d].flags |= flag::DATA_UNACKNOWLEDGED;
            return complain(&c.seen[d], t, WindowAction::Ignore);
        }
        return complain(&c.seen[d], t, WindowAction::Invalid);
    }

    if !before(sack, c.seen[r].td_end.wrapping_add(1)) {
        // ACK is over the upper bound (ACKed data not seen yet).
        return complain(&c.seen[d], t, WindowAction::Invalid);
    }

    let in_recv_win = c.seen[r].td_maxwin == 0
        || after(
            end,
            c.seen[d]
                .td_end
                .wrapping_sub(c.seen[r].td_maxwin)
                .wrapping_sub(1),
        );
    if !in_recv_win {
        // SEQ under the lower bound (already ACKed data retransmitted).
        return complain(&c.seen[d], t, WindowAction::Ignore);
    }
    if !after(
        sack,
        c.seen[r]
            .td_end
            .wrapping_sub(max_ack_window(&c.seen[d]))
            .wrapping_sub(1),
    ) {
        // ACK under the lower bound (possibly overly delayed).
        return complain(&c.seen[d], t, WindowAction::Ignore);
    }

    // Window scaling (RFC 1323).
    if !seg.has(f::SYN) {
        win <<= c.seen[d].td_scale;
    }
    let w = InWindow {
        seq,
        ack,
        sack,
        end,
        win,
        win_raw,
    };
    commit_in_window(c, dir, idx, seg.has(f::ACK), &w);
    WindowAction::Accept
}

/// The values `tcp_in_window` settled for an in-window segment.
struct InWindow {
    seq: u32,
    ack: u32,
    sack: u32,
    end: u32,
    /// The window, scaled (unless a SYN).
    win: u32,
    /// The window field as sent.
    win_raw: u16,
}

/// The accepting tail of `tcp_in_window`: update sender and receiver data, count
/// retransmissions. Always inlined: both callers pass constants that fold.
#[inline(always)]
fn commit_in_window(c: &mut TcpConn, dir: Dir, idx: u8, has_ack: bool, w: &InWindow) {
    let d = dir.idx();
    let r = 1 - d;
    let InWindow {
        seq,
        ack,
        sack,
        end,
        win,
        win_raw,
    } = *w;

    // Update sender data.
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    {
        let sender = &mut c.seen[d];
        if sender.td_maxwin < swin {
            sender.td_maxwin = swin;
        }
        if after(end, sender.td_end) {
            sender.td_end = end;
            sender.flags |= flag::DATA_UNACKNOWLEDGED;
        }
        if has_ack {
            if sender.flags & flag::MAXACK_SET == 0 {
                sender.td_maxack = ack;
                sender.flags |= flag::MAXACK_SET;
            } else if after(ack, sender.td_maxack) {
                sender.td_maxack = ack;
            }
        }
    }

    // Update receiver data.
    let sender_maxend = c.seen[d].td_maxend;
    {
        let receiver = &mut c.seen[r];
        if receiver.td_maxwin != 0 && after(end, sender_maxend) {
            receiver.td_maxwin = receiver
                .td_maxwin
                .wrapping_add(end.wrapping_sub(sender_maxend));
        }
        if after(sack.wrapping_add(win), receiver.td_maxend.wrapping_sub(1)) {
            receiver.td_maxend = sack.wrapping_add(win);
            if win == 0 {
                receiver.td_maxend = receiver.td_maxend.wrapping_add(1);
            }
        }
        if ack == receiver.td_end {
            receiver.flags &= !flag::DATA_UNACKNOWLEDGED;
        }
    }

    // Check retransmissions.
    if idx == index::ACK {
        if c.last_dir == dir as u8
            && c.last_seq == seq
            && c.last_ack == ack
            && c.last_end == end
            && c.last_win == win_raw
        {
            c.retrans = c.retrans.saturating_add(1);
        } else {
            c.last_dir = dir as u8;
            c.last_seq = seq;
            c.last_ack = ack;
            c.last_end = end;
            c.last_win = win_raw;
            c.retrans = 0;
        }
    }
}

/// [`packet`] for the commonest segment, an ACK without SYN, FIN or RST (pure ACK or data)
/// on an ESTABLISHED connection whose sender is initialised, when `tcp_in_window` accepts it:
/// the same checks and updates without the general path's table lookup, flag tests and
/// calls. `None` (with the entry untouched) for anything else: the caller then runs
/// [`packet`].
#[inline(never)]
pub fn established_ack(
    e: &mut Entry,
    dir: Dir,
    m: &PacketMeta,
    frame: &[u8],
    now: u64,
    t: &Sysctls,
) -> Option<TcpVerdict> {
    // tcp_conntracks[dir][ACK][ESTABLISHED] is ESTABLISHED in both directions, with no
    // special case in nf_conntrack_tcp_packet.
    if e.tcp.state != state::ESTABLISHED
        || m.tcp.flags & (f::SYN | f::FIN | f::RST | f::ACK) != f::ACK
    {
        return None;
    }
    let d = dir.idx();
    let r = 1 - d;
    let c = &e.tcp;
    let (sender, receiver) = (&c.seen[d], &c.seen[r]);
    if sender.td_maxwin == 0 {
        // The sender's first segment: tcp_in_window initialises it.
        return None;
    }
    let seq = m.tcp.seq;
    let ack = m.tcp.ack;
    let mut sack = ack;
    if receiver.flags & flag::SACK_PERM != 0 && m.tcp.header_len > 20 {
        Segment::from_meta(m, frame).sack(&mut sack);
    }
    // segment_seq_plus_len without SYN or FIN.
    let end = seq.wrapping_add(u32::from(m.l4_len).saturating_sub(u32::from(m.tcp.header_len)));
    // tcp_in_window's four checks; any failure takes the general path (which complains,
    // ignores or accepts under be_liberal).
    if !before(seq, sender.td_maxend.wrapping_add(1))
        || !before(sack, receiver.td_end.wrapping_add(1))
        || !(receiver.td_maxwin == 0
            || after(
                end,
                sender
                    .td_end
                    .wrapping_sub(receiver.td_maxwin)
                    .wrapping_sub(1),
            ))
        || !after(
            sack,
            receiver
                .td_end
                .wrapping_sub(max_ack_window(sender))
                .wrapping_sub(1),
        )
    {
        return None;
    }
    let win_raw = m.tcp.window;
    let w = InWindow {
        seq,
        ack,
        sack,
        end,
        win: u32::from(win_raw) << sender.td_scale,
        win_raw,
    };
    commit_in_window(&mut e.tcp, dir, index::ACK, true, &w);
    Some(update_state(
        e,
        dir,
        index::ACK,
        state::ESTABLISHED,
        state::ESTABLISHED,
        now,
        t,
    ))
}

/// `nf_tcp_handle_invalid`: an ASSURED connection answering an invalid FIN/RST with
/// another gets the shorter "unacknowledged" timeout.
fn handle_invalid(e: &mut Entry, dir: Dir, idx: u8, now: u64, t: &Sysctls) {
    if !e.has(status::ASSURED) {
        return;
    }
    if idx != index::RST && idx != index::FIN {
        return;
    }
    let c = &mut e.tcp;
    if c.last_dir != dir as u8 && (c.last_index == index::FIN || c.last_index == index::RST) {
        let expires_in = e.expires.saturating_sub(now);
        if expires_in < 120 * 1_000_000_000 {
            return;
        }
        if expires_in > t.tcp_unack_timeout {
            e.expires = now + t.tcp_unack_timeout;
        }
    } else {
        c.last_index = idx;
        c.last_dir = dir as u8;
    }
}

/// `tcp_new`: set up a new connection from its first segment. `Err` means no entry may be
/// created (INVALID).
pub fn new_conn(e: &mut Entry, seg: &Segment, t: &Sysctls) -> Result<(), InvalidReason> {
    let idx = conntrack_index(seg.flags);
    let new_state = TCP_CONNTRACK_NEW[idx as usize];
    if new_state >= state::IV {
        return Err(InvalidReason::TcpInvalidState);
    }
    e.tcp = TcpConn::default();
    let s0 = &mut e.tcp.seen[0];
    s0.td_end = seg.end();
    s0.td_maxwin = if seg.win == 0 { 1 } else { u32::from(seg.win) };
    if new_state == state::SYN_SENT {
        s0.td_maxend = s0.td_end;
        seg.options_into(s0);
    } else if !t.tcp_loose {
        // Do not pick up connections mid-stream.
        return Err(InvalidReason::TcpNoSyn);
    } else {
        s0.td_maxend = s0.td_end.wrapping_add(s0.td_maxwin);
        // Assume SACK and liberal window checking to cope with unknown window scaling.
        e.tcp.seen[0].flags = flag::SACK_PERM | flag::BE_LIBERAL;
        e.tcp.seen[1].flags = flag::SACK_PERM | flag::BE_LIBERAL;
    }
    e.tcp.last_index = index::NONE;
    Ok(())
}

/// The state a new connection's first segment leads to (`tcp_conntracks[0][index][sNO]`).
const TCP_CONNTRACK_NEW: [u8; 6] = [
    TCP_CONNTRACKS[0][0][0],
    TCP_CONNTRACKS[0][1][0],
    TCP_CONNTRACKS[0][2][0],
    TCP_CONNTRACKS[0][3][0],
    TCP_CONNTRACKS[0][4][0],
    TCP_CONNTRACKS[0][5][0],
];

/// `tcp_error` minus the checksum (the pipeline verifies checksums for every protocol):
/// a header shorter than its data offset, or an invalid flag combination.
pub fn error(m: &PacketMeta) -> Option<InvalidReason> {
    if !valid_flags(m.tcp.flags) {
        return Some(InvalidReason::TcpBadFlags);
    }
    None
}

/// `nf_conntrack_tcp_established`.
fn established(e: &Entry) -> bool {
    e.tcp.state == state::ESTABLISHED && e.has(status::ASSURED)
}

/// `tcp_can_early_drop`: closing connections may be evicted even when ASSURED.
pub fn can_early_drop(c: &TcpConn) -> bool {
    matches!(
        c.state,
        state::FIN_WAIT | state::LAST_ACK | state::TIME_WAIT | state::CLOSE | state::CLOSE_WAIT
    )
}

/// `nf_conntrack_tcp_packet` for a segment of an entry (new or confirmed) in direction
/// `dir`. `seen_reply` is the entry's SEEN_REPLY bit *before* this packet.
#[inline]
pub fn packet(e: &mut Entry, dir: Dir, seg: &Segment, now: u64, t: &Sysctls) -> TcpVerdict {
    let old_state = e.tcp.state;
    let idx = conntrack_index(seg.flags);
    let mut new_state = TCP_CONNTRACKS[dir.idx()][idx as usize][old_state as usize];
    let d = dir.idx();
    let mut skip_window = false;

    match new_state {
        state::SYN_SENT | state::IG => {
            if new_state == state::SYN_SENT {
                if old_state >= state::TIME_WAIT {
                    // RFC 1122: a SYN may re-open from TIME_WAIT; also aborted connections.
                    let c = &e.tcp;
                    if (c.seen[d].flags | c.seen[1 - d].flags) & flag::CLOSE_INIT != 0
                        || (c.last_dir == dir as u8 && c.last_index == index::RST)
                    {
                        return TcpVerdict::Repeat;
                    }
                    // Fall through to the ignore handling.
                } else {
                    return finish_in_window(e, dir, idx, seg, old_state, new_state, now, t);
                }
            }
            // Ignored packets: our entry may be out of sync.
            let c = &mut e.tcp;
            if idx == index::SYNACK
                && c.last_index == index::SYN
                && c.last_dir != dir as u8
                && seg.ack == c.last_end
            {
                // This SYN/ACK acknowledges a SYN we ignored earlier: both ends are in sync
                // and we are not; resynchronize from the annotated values.
                let ld = usize::from(c.last_dir & 1);
                let old = state::SYN_SENT;
                new_state = state::SYN_RECV;
                c.seen[ld].td_end = c.last_end;
                c.seen[ld].td_maxend = c.last_end;
                c.seen[ld].td_maxwin = if c.last_win == 0 {
                    1
                } else {
                    u32::from(c.last_win)
                };
                c.seen[ld].td_scale = c.last_wscale;
                c.last_flags &= !flag::EXP_CHALLENGE_ACK;
                c.seen[ld].flags = c.last_flags;
                let liberal = c.seen[d].flags & flag::BE_LIBERAL;
                c.seen[d] = TcpDir {
                    flags: liberal,
                    ..TcpDir::default()
                };
                return finish_in_window(e, dir, idx, seg, old, new_state, now, t);
            }
            c.last_index = idx;
            c.last_dir = dir as u8;
            c.last_seq = seg.seq;
            c.last_end = seg.end();
            c.last_win = seg.win;
            if idx == index::SYN && dir == Dir::Original {
                // A SYN in ORIGINAL: note its options; if the server answers with a SYN/ACK
                // we get in sync above.
                c.last_flags = 0;
                c.last_wscale = 0;
                let mut seen = TcpDir::default();
                seg.options_into(&mut seen);
                if seen.flags & flag::WINDOW_SCALE != 0 {
                    c.last_flags |= flag::WINDOW_SCALE;
                    c.last_wscale = seen.td_scale;
                }
                if seen.flags & flag::SACK_PERM != 0 {
                    c.last_flags |= flag::SACK_PERM;
                }
                if old_state == state::LAST_ACK {
                    c.last_flags |= flag::EXP_CHALLENGE_ACK;
                }
            }
            if old_state == state::SYN_SENT && idx == index::ACK && dir == Dir::Reply {
                // Possible challenge ACK answering the SYN.
                c.last_ack = seg.ack;
            }
            return TcpVerdict::Ignore;
        }
        state::IV => return TcpVerdict::Invalid(InvalidReason::TcpInvalidState),
        state::TIME_WAIT => {
            let c = &mut e.tcp;
            if old_state == state::LAST_ACK
                && idx == index::ACK
                && c.last_dir != dir as u8
                && c.last_index == index::SYN
                && c.last_flags & flag::EXP_CHALLENGE_ACK != 0
            {
                // RFC 5961 challenge ACK: not the ACK of the last FIN.
                c.last_flags &= !flag::EXP_CHALLENGE_ACK;
                return TcpVerdict::Ignore;
            }
        }
        state::SYN_SENT2 => {
            e.tcp.last_flags |= flag::SIMULTANEOUS_OPEN;
        }
        state::SYN_RECV
            if dir == Dir::Reply
                && idx == index::ACK
                && e.tcp.last_flags & flag::SIMULTANEOUS_OPEN != 0 =>
        {
            new_state = state::ESTABLISHED;
        }
        state::CLOSE if idx == index::RST => {
            if can_early_drop(&e.tcp) {
                skip_window = true;
            } else {
                let c = &e.tcp;
                let r = 1 - d;
                let mut keep_checking = true;
                if c.seen[r].flags & flag::MAXACK_SET != 0 && c.last_index != index::SYN {
                    let seq = seg.seq;
                    if seq == 0 && !established(e) {
                        // Most likely an answer to a SYN we let through.
                        keep_checking = false;
                    } else {
                        if before(seq, c.seen[r].td_maxack) && !t.tcp_ignore_invalid_rst {
                            return TcpVerdict::Invalid(InvalidReason::TcpRstOutOfWindow);
                        }
                        if !established(e) || seq == c.seen[r].td_maxack {
                            keep_checking = false;
                        } else if c.last_index == index::ACK
                            && c.last_dir == dir as u8
                            && seq == c.last_end
                        {
                            // A RST that is part of a train after data.
                            keep_checking = false;
                        } else {
                            // Sequence does not match exactly: keep the state, allowing a
                            // challenge ACK.
                            new_state = old_state;
                        }
                    }
                }
                if keep_checking {
                    let c = &e.tcp;
                    // The SYN case only for a RST from the other side than the SYN's
                    // ("netfilter: conntrack: tcp: do not force CLOSE on invalid-seq RST
                    // without direction check", 2026, Cc stable; kernel 6.18.44 answers
                    // so, tests/scenarios-random/rand-3543, -4934, -4955, -7956): a RST in
                    // the direction of a re-init SYN or of the server's SYN of a
                    // simultaneous open goes through the window check.
                    if ((e.has(status::SEEN_REPLY)
                        && c.last_index == index::SYN
                        && c.last_dir != dir as u8)
                        || (!e.has(status::ASSURED) && c.last_index == index::ACK))
                        && seg.ack == c.last_end
                    {
                        // RST to a SYN or ACK we let through at the ignore paths: delete
                        // the entry without checking the window.
                        skip_window = true;
                    } else if old_state == state::SYN_SENT
                        && c.last_index == index::ACK
                        && c.last_dir == Dir::Reply as u8
                        && seg.seq == c.last_ack
                    {
                        // RST answering a challenge ACK we let through.
                        skip_window = true;
                    }
                }
            }
        }
        _ => {}
    }

    if skip_window {
        return update_state(e, dir, idx, old_state, new_state, now, t);
    }
    finish_in_window(e, dir, idx, seg, old_state, new_state, now, t)
}

fn finish_in_window(
    e: &mut Entry,
    dir: Dir,
    idx: u8,
    seg: &Segment,
    old_state: u8,
    new_state: u8,
    now: u64,
    t: &Sysctls,
) -> TcpVerdict {
    match in_window(&mut e.tcp, dir, idx, seg, t) {
        WindowAction::Ignore => TcpVerdict::Ignore,
        WindowAction::Invalid => {
            handle_invalid(e, dir, idx, now, t);
            TcpVerdict::Invalid(InvalidReason::TcpOutOfWindow)
        }
        WindowAction::Accept => update_state(e, dir, idx, old_state, new_state, now, t),
    }
}

/// The `in_window:` tail of `nf_conntrack_tcp_packet`: commit the state, pick the timeout,
/// set ASSURED.
fn update_state(
    e: &mut Entry,
    dir: Dir,
    idx: u8,
    old_state: u8,
    new_state: u8,
    now: u64,
    t: &Sysctls,
) -> TcpVerdict {
    let d = dir.idx();
    let c = &mut e.tcp;
    c.last_index = idx;
    c.last_dir = dir as u8;
    c.state = new_state;
    if old_state != new_state && new_state == state::FIN_WAIT {
        c.seen[d].flags |= flag::CLOSE_INIT;
    }
    let ts = &t.tcp;
    let st = new_state as usize;
    let mut timeout = if c.retrans >= t.tcp_max_retrans && ts[st] > t.tcp_max_retrans_timeout {
        t.tcp_max_retrans_timeout
    } else if idx == index::RST {
        ts[state::CLOSE as usize]
    } else if (c.seen[0].flags | c.seen[1].flags) & flag::DATA_UNACKNOWLEDGED != 0
        && ts[st] > t.tcp_unack_timeout
    {
        t.tcp_unack_timeout
    } else if c.last_win == 0 && ts[st] > t.tcp_max_retrans_timeout {
        t.tcp_max_retrans_timeout
    } else {
        ts[st]
    };

    if !e.has(status::SEEN_REPLY) {
        if idx == index::RST {
            // (conntrack_index gives RST exactly when the segment has RST.)
            // The only reply is a RST: no connection, delete the entry now.
            return TcpVerdict::AcceptKill;
        }
        if idx == index::SYN && old_state == state::SYN_SENT {
            // Do not renew the timeout on a SYN retransmit.
            return TcpVerdict::Accept;
        }
        if new_state == state::ESTABLISHED && timeout > t.tcp_unack_timeout {
            // Picked up mid-stream with no reply yet: no long ESTABLISHED timeout.
            timeout = t.tcp_unack_timeout;
        }
    } else if !e.has(status::ASSURED)
        && (old_state == state::SYN_RECV || old_state == state::ESTABLISHED)
        && new_state == state::ESTABLISHED
    {
        e.set(status::ASSURED);
    }
    e.expires = now + timeout;
    TcpVerdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketMeta;

    #[test]
    fn flag_table_matches_the_kernel() {
        let valid: Vec<u8> = (0u8..=0x3f).filter(|&x| valid_flags(x)).collect();
        // SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG, each also
        // with PSH (0x08).
        let mut want = vec![];
        for base in [0x02u8, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30] {
            want.push(base);
            want.push(base | 0x08);
        }
        want.sort_unstable();
        assert_eq!(valid, want);
        assert!(
            valid_flags(0x12 | 0x40 | 0x80),
            "ECE and CWR are always allowed"
        );
        assert!(!valid_flags(0x01), "FIN alone");
        assert!(!valid_flags(0x03), "SYN|FIN");
        assert!(!valid_flags(0x00), "no flags");
    }

    #[test]
    fn first_segment_states() {
        assert_eq!(TCP_CONNTRACK_NEW[index::SYN as usize], state::SYN_SENT);
        assert_eq!(TCP_CONNTRACK_NEW[index::ACK as usize], state::ESTABLISHED);
        assert_eq!(TCP_CONNTRACK_NEW[index::SYNACK as usize], state::IV);
        assert_eq!(TCP_CONNTRACK_NEW[index::RST as usize], state::IV);
    }

    /// The fast path agrees with the general tracker wherever it answers, and leaves the
    /// entry untouched where it does not.
    #[test]
    fn established_ack_matches_packet() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u32| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % u64::from(n)) as u32
        };
        let mut fast = 0;
        let total = 200_000;
        for _ in 0..total {
            let t = Sysctls {
                tcp_be_liberal: next(8) == 0,
                ..Sysctls::default()
            };
            let base = next(u32::MAX);
            let mut e = Entry::default();
            e.tcp.state = if next(8) == 0 {
                next(10) as u8
            } else {
                state::ESTABLISHED
            };
            for d in 0..2 {
                let s = &mut e.tcp.seen[d];
                s.td_end = base.wrapping_add(next(200_000)).wrapping_sub(100_000);
                s.td_maxend = s.td_end.wrapping_add(next(140_000));
                s.td_maxwin = if next(16) == 0 { 0 } else { next(140_000) };
                s.td_maxack = s.td_end.wrapping_sub(next(1000));
                s.td_scale = next(15) as u8;
                s.flags = next(64) as u8;
            }
            e.tcp.retrans = next(6) as u8;
            e.tcp.last_win = next(3) as u16;
            e.tcp.last_dir = next(2) as u8;
            e.tcp.last_seq = base;
            e.tcp.last_end = base;
            e.tcp.last_ack = base;
            e.tcp.last_index = next(6) as u8;
            e.status = next(16) as u16;
            e.expires = 5;
            let dir = if next(2) == 0 {
                Dir::Original
            } else {
                Dir::Reply
            };
            let (d, r) = (dir.idx(), 1 - dir.idx());
            let mut m = PacketMeta {
                proto: 6,
                l4_offset: 34,
                ..PacketMeta::default()
            };
            let opts: Vec<u8> = match next(3) {
                0 => vec![],
                1 => vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                _ => {
                    let right = e.tcp.seen[r]
                        .td_end
                        .wrapping_add(next(2000))
                        .wrapping_sub(1000);
                    let mut o = vec![1, 1, 5, 10];
                    o.extend_from_slice(&right.wrapping_sub(100).to_be_bytes());
                    o.extend_from_slice(&right.to_be_bytes());
                    o
                }
            };
            let payload = if next(2) == 0 { 0 } else { next(1500) };
            m.tcp.header_len = (20 + opts.len()) as u8;
            m.l4_len = (20 + opts.len() as u32 + payload) as u16;
            // A side's td_end itself half the time, else within ±100 000 of it.
            let mut near = |end: u32| {
                if next(2) == 0 {
                    end
                } else {
                    end.wrapping_add(next(200_000)).wrapping_sub(100_000)
                }
            };
            m.tcp.seq = near(e.tcp.seen[d].td_end);
            m.tcp.ack = near(e.tcp.seen[r].td_end);
            m.tcp.window = (next(3) as u16).wrapping_mul(next(65536) as u16);
            m.tcp.flags = f::ACK | (next(256) as u8 & !(f::ACK));
            if next(2) == 0 {
                m.tcp.flags &= !(f::SYN | f::FIN | f::RST);
            }
            let mut frame = vec![0u8; 34 + usize::from(m.l4_len)];
            frame[54..54 + opts.len()].copy_from_slice(&opts);
            let now = u64::from(next(1000)) * 1_000_000_000;

            let mut a = e;
            match established_ack(&mut a, dir, &m, &frame, now, &t) {
                Some(v) => {
                    fast += 1;
                    let mut b = e;
                    let want = packet(&mut b, dir, &Segment::from_meta(&m, &frame), now, &t);
                    assert_eq!(v, want);
                    assert_eq!(a.tcp, b.tcp);
                    assert_eq!(a.expires, b.expires);
                    assert_eq!(a.status, b.status);
                }
                None => {
                    assert_eq!(a.tcp, e.tcp);
                    assert_eq!(a.expires, e.expires);
                    assert_eq!(a.status, e.status);
                }
            }
        }
        assert!(fast > total / 20, "fast path taken {fast} times of {total}");
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(before(u32::MAX, 0));
        assert!(after(5, u32::MAX - 5));
        assert!(!before(7, 7));
    }
}
