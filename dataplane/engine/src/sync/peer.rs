//! One side of a sync link, without I/O: what conntrackd 1.4.7's sync modes do with messages
//! going out and coming in (`src/sync-notrack.c`, `src/sync-ftfw.c`, `src/network.c`).
//!
//! Every message sent takes the next sequence number (the first is the caller's, conntrackd
//! starts at the Unix time). Messages are packed into datagrams of at most `mtu` bytes. When
//! nothing went out for a second an ALIVE does (in FTFW an ACK of what is unacknowledged
//! instead).
//!
//! **NOTRACK**: best effort. Received sequence numbers are only counted (lost, late); a
//! RESYNC asks the caller for the whole table.
//!
//! **FTFW**: every message received in order counts toward the ACK window: after
//! `ack_window` messages (or a second) an ACK `{from, to}` acknowledges them. A gap is
//! answered with an ACK of what came before it and a NACK `{from, to}` of what is missing;
//! a message older than expected is dropped. Sent conntrack messages and ACK/NACK/RESYNC wait
//! in the resend queue (at most `resend_queue` messages, the oldest dropped) until
//! acknowledged; a NACK sends again what it names, with new sequence numbers. As
//! conntrackd sends an object's *current* state again rather than what it sent then, an
//! entry whose later message is queued is not sent again from an older one. The first
//! messages carry HELLO until the peer answers HELLO_BACK; a HELLO received resets the
//! receive sequence (the peer restarted) and empties the resend queue (it knows nothing of
//! what is there).

use std::collections::{HashMap, VecDeque};

use crate::flow::FlowKey;

use super::wire::{self, flag, kind, CtAttrs, Message, Writer, HEADER_LEN};

/// One second (ns).
const SEC: u64 = 1_000_000_000;

/// The sync mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Notrack,
    Ftfw,
}

/// How a peer runs.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    pub mode: Mode,
    /// FTFW: acknowledge after this many messages.
    pub ack_window: u32,
    /// FTFW: messages kept for resending.
    pub resend_queue: usize,
    /// Largest datagram payload (bytes).
    pub mtu: usize,
}

/// What the receiver must do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Apply a conntrack message (`kind::CT_NEW`, `CT_UPD`, `CT_DEL`).
    Ct(u8, CtAttrs),
    /// An expectation message (kind, attributes as read).
    Exp(u8, Vec<(u16, Vec<u8>)>),
    /// The peer asks for every entry (RESYNC): send them all.
    Resync,
}

/// Counters, named after conntrackd's `-s` output where it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub msg_sent: u64,
    pub msg_recv: u64,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub datagrams_sent: u64,
    pub datagrams_recv: u64,
    /// Messages refused as malformed (conntrackd's `msg malformed`).
    pub malformed: u64,
    /// Messages the receive sequence says were lost (`msg lost`), and ones older than
    /// expected (`msg before`).
    pub lost: u64,
    pub before: u64,
    pub acks_sent: u64,
    pub nacks_sent: u64,
    pub acks_recv: u64,
    pub nacks_recv: u64,
    /// Messages sent again after a NACK.
    pub resent: u64,
    /// Resend-queue messages dropped to make room (never acknowledged).
    pub resend_dropped: u64,
    pub resyncs_recv: u64,
    pub resyncs_sent: u64,
    pub hellos_recv: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hello {
    Init,
    Say,
    Done,
}

/// A message waiting in the resend queue: its sequence number, whose entry it is about
/// (control messages: none), its bytes.
#[derive(Debug)]
struct Pending {
    seq: u32,
    key: Option<FlowKey>,
    bytes: Vec<u8>,
}

/// `a` comes before `b` in sequence space.
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn between(seq: u32, from: u32, to: u32) -> bool {
    seq.wrapping_sub(from) <= to.wrapping_sub(from)
}

/// One side of a sync link.
#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    next_seq: u32,
    /// The last sequence number received.
    last_recv: Option<u32>,
    window: u32,
    ack_from: Option<u32>,
    hello: Hello,
    say_hello_back: bool,
    resend: VecDeque<Pending>,
    /// The newest sequence number in the resend queue of each entry there.
    newest: HashMap<FlowKey, u32>,
    /// The datagram being filled.
    out: Writer,
    ready: VecDeque<Vec<u8>>,
    last_tx: u64,
    pub stats: PeerStats,
}

impl Peer {
    /// A peer whose first message is numbered `first_seq`, at engine time `now` (ns).
    pub fn new(cfg: PeerConfig, first_seq: u32, now: u64) -> Peer {
        Peer {
            cfg: PeerConfig {
                ack_window: cfg.ack_window.max(1),
                resend_queue: cfg.resend_queue.max(1),
                mtu: cfg.mtu.max(wire::ACK_LEN + HEADER_LEN),
                ..cfg
            },
            next_seq: first_seq,
            last_recv: None,
            window: cfg.ack_window.max(1),
            ack_from: None,
            hello: Hello::Init,
            say_hello_back: false,
            resend: VecDeque::new(),
            newest: HashMap::new(),
            out: Writer::default(),
            ready: VecDeque::new(),
            last_tx: now,
            stats: PeerStats::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    /// Messages waiting for an acknowledgement.
    pub fn resend_queue_len(&self) -> usize {
        self.resend.len()
    }

    fn take_seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = s.wrapping_add(1);
        s
    }

    /// The HELLO flags the next message carries (FTFW).
    fn hello_flags(&mut self) -> u8 {
        if self.cfg.mode != Mode::Ftfw {
            return 0;
        }
        let mut f = 0;
        if self.hello == Hello::Init {
            self.hello = Hello::Say;
        }
        if self.hello == Hello::Say {
            f |= flag::HELLO;
        }
        if std::mem::take(&mut self.say_hello_back) {
            f |= flag::HELLO_BACK;
        }
        f
    }

    /// Put one whole message into the datagram being filled (a new one when it would not
    /// fit), numbered and flagged now.
    fn emit(&mut self, msg: &mut [u8], now: u64) -> u32 {
        let seq = self.take_seq();
        msg[1] |= self.hello_flags();
        msg[4..8].copy_from_slice(&seq.to_be_bytes());
        if !self.out.buf.is_empty() && self.out.buf.len() + msg.len() > self.cfg.mtu {
            self.flush();
        }
        self.out.buf.extend_from_slice(msg);
        self.stats.msg_sent += 1;
        self.last_tx = now;
        seq
    }

    /// Keep a sent message for resending (FTFW), making room by dropping the oldest.
    fn keep(&mut self, seq: u32, key: Option<FlowKey>, bytes: Vec<u8>) {
        if self.cfg.mode != Mode::Ftfw {
            return;
        }
        while self.resend.len() >= self.cfg.resend_queue {
            if let Some(old) = self.resend.pop_front() {
                self.forget(&old);
                self.stats.resend_dropped += 1;
            }
        }
        if let Some(k) = key {
            self.newest.insert(k, seq);
        }
        self.resend.push_back(Pending { seq, key, bytes });
    }

    fn forget(&mut self, p: &Pending) {
        if let Some(k) = &p.key {
            if self.newest.get(k) == Some(&p.seq) {
                self.newest.remove(k);
            }
        }
    }

    /// Send a conntrack message (`kind::CT_*`) about the entry of `key`.
    pub fn send_ct(&mut self, kind: u8, key: FlowKey, a: &CtAttrs, now: u64) {
        let mut w = Writer::default();
        w.ct(kind, 0, a);
        let mut bytes = w.buf;
        let seq = self.emit(&mut bytes, now);
        self.keep(seq, Some(key), bytes);
    }

    /// Send an expectation message (`kind::EXP_*`) about the expected connection `key`.
    pub fn send_exp(&mut self, kind: u8, key: FlowKey, attrs: &[(u16, Vec<u8>)], now: u64) {
        let mut w = Writer::default();
        w.exp(kind, 0, attrs);
        let mut bytes = w.buf;
        let seq = self.emit(&mut bytes, now);
        self.keep(seq, Some(key), bytes);
    }

    /// Send a control message; ACK, NACK and RESYNC carry `range` and are kept for resending.
    fn send_ctl(&mut self, flags: u8, range: Option<(u32, u32)>, now: u64) {
        let mut w = Writer::default();
        w.ctl(flags, 0, range);
        let mut bytes = w.buf;
        let seq = self.emit(&mut bytes, now);
        if range.is_some() {
            // Kept as sent: HELLO flags and all.
            self.keep(seq, None, bytes);
        }
    }

    /// Ask the peer for all its entries (`conntrackd -n`).
    pub fn request_resync(&mut self, now: u64) {
        self.stats.resyncs_sent += 1;
        self.send_ctl(flag::RESYNC, Some((0, 0)), now);
    }

    /// Timers: an ALIVE (FTFW: the pending ACK) after a second without sending.
    pub fn tick(&mut self, now: u64) {
        if now.saturating_sub(self.last_tx) < SEC {
            return;
        }
        match (self.cfg.mode, self.ack_from, self.last_recv) {
            (Mode::Ftfw, Some(from), Some(to)) => {
                self.ack_from = None;
                self.window = self.cfg.ack_window;
                self.stats.acks_sent += 1;
                self.send_ctl(flag::ACK, Some((from, to)), now);
            }
            _ => self.send_ctl(flag::ALIVE, None, now),
        }
    }

    /// Close the datagram being filled, if any.
    pub fn flush(&mut self) {
        if !self.out.buf.is_empty() {
            let d = std::mem::take(&mut self.out.buf);
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += d.len() as u64;
            self.ready.push_back(d);
        }
    }

    /// The next datagram to send (call [`Self::flush`] first to close the last one).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Take in one datagram from the peer; what to apply is appended to `out`.
    pub fn receive(&mut self, datagram: &[u8], now: u64, out: &mut Vec<Received>) {
        self.stats.datagrams_recv += 1;
        self.stats.bytes_recv += datagram.len() as u64;
        for m in wire::decode(datagram) {
            match m {
                Ok(m) => self.message(m, now, out),
                Err(_) => self.stats.malformed += 1,
            }
        }
        if self.say_hello_back {
            // Answer a HELLO at once rather than with the next message: until the peer hears
            // HELLO_BACK its every message resets our receive sequence, and a gap in what it
            // sends then is never asked for again (conntrackd waits for its next message).
            self.send_ctl(flag::ALIVE, None, now);
        }
    }

    fn message(&mut self, m: Message, now: u64, out: &mut Vec<Received>) {
        let h = *m.header();
        // A NACK for a gap goes out before whatever this message itself makes us send.
        let mut digest = true;
        if self.cfg.mode == Mode::Ftfw && self.hello_received(h.flags) {
            // The peer (re)started: take its numbering from here.
            if self.ack_from.is_some_and(|f| before(h.seq, f)) {
                self.window = self.cfg.ack_window - 1;
                self.ack_from = Some(h.seq);
            }
            for p in std::mem::take(&mut self.resend) {
                self.forget(&p);
            }
            self.last_recv = None;
        }
        let expected = self.last_recv.map(|s| s.wrapping_add(1));
        let order = match expected {
            None => std::cmp::Ordering::Equal,
            Some(e) if h.seq == e => std::cmp::Ordering::Equal,
            Some(e) if before(e, h.seq) => {
                self.stats.lost += u64::from(h.seq.wrapping_sub(e));
                std::cmp::Ordering::Greater
            }
            Some(_) => {
                self.stats.before += 1;
                std::cmp::Ordering::Less
            }
        };
        if self.cfg.mode == Mode::Ftfw {
            match order {
                std::cmp::Ordering::Less => digest = false,
                std::cmp::Ordering::Greater => {
                    let e = expected.unwrap_or(h.seq);
                    if let Some(from) = self.ack_from.take() {
                        self.stats.acks_sent += 1;
                        self.send_ctl(flag::ACK, Some((from, e.wrapping_sub(1))), now);
                    }
                    self.stats.nacks_sent += 1;
                    self.send_ctl(flag::NACK, Some((e, h.seq.wrapping_sub(1))), now);
                    self.window = self.cfg.ack_window - 1;
                    self.ack_from = Some(h.seq);
                }
                std::cmp::Ordering::Equal => {
                    self.ack_from.get_or_insert(h.seq);
                    self.window -= 1;
                    if self.window == 0 {
                        let from = self.ack_from.take().unwrap_or(h.seq);
                        self.window = self.cfg.ack_window;
                        self.stats.acks_sent += 1;
                        self.send_ctl(flag::ACK, Some((from, h.seq)), now);
                    }
                }
            }
        }
        if !digest {
            return;
        }
        if self.digest(m, now, out) {
            self.stats.msg_recv += 1;
            self.last_recv = Some(h.seq);
        } else {
            self.stats.malformed += 1;
        }
    }

    /// HELLO / HELLO_BACK: whether the message said HELLO.
    fn hello_received(&mut self, flags: u8) -> bool {
        if flags & flag::HELLO_BACK != 0 && self.hello == Hello::Say {
            self.hello = Hello::Done;
        }
        if flags & flag::HELLO != 0 {
            self.stats.hellos_recv += 1;
            self.say_hello_back = true;
            return true;
        }
        false
    }

    /// Act on a message; `false` for one conntrackd calls bad (MSG_BAD).
    fn digest(&mut self, m: Message, now: u64, out: &mut Vec<Received>) -> bool {
        match m {
            Message::Ct(h, a) => out.push(Received::Ct(h.kind, a)),
            Message::Exp(h, a) => out.push(Received::Exp(h.kind, a)),
            Message::Ctl(h, range) => {
                let f = h.flags;
                if f & (flag::ACK | flag::NACK) != 0 {
                    let Some((from, to)) = range else {
                        return false;
                    };
                    if self.cfg.mode != Mode::Ftfw {
                        // NOTRACK knows no ACK or NACK.
                        return false;
                    }
                    if before(to, from) {
                        return false;
                    }
                    if f & flag::ACK != 0 {
                        self.stats.acks_recv += 1;
                        self.acked(from, to);
                    } else {
                        self.stats.nacks_recv += 1;
                        self.resend_range(from, to, now);
                    }
                } else if f & flag::RESYNC != 0 {
                    self.stats.resyncs_recv += 1;
                    out.push(Received::Resync);
                } else if f & flag::ALIVE == 0 {
                    return false;
                }
            }
        }
        true
    }

    /// Drop what `[from, to]` acknowledges from the resend queue.
    fn acked(&mut self, from: u32, to: u32) {
        let mut keep = VecDeque::with_capacity(self.resend.len());
        for p in std::mem::take(&mut self.resend) {
            if between(p.seq, from, to) {
                self.forget(&p);
            } else {
                keep.push_back(p);
            }
        }
        self.resend = keep;
    }

    /// Send again what `[from, to]` names (an entry only from its newest message).
    fn resend_range(&mut self, from: u32, to: u32, now: u64) {
        let mut again = Vec::new();
        let mut keep = VecDeque::with_capacity(self.resend.len());
        for p in std::mem::take(&mut self.resend) {
            if between(p.seq, from, to) {
                let newest = p.key.is_none_or(|k| self.newest.get(&k) == Some(&p.seq));
                self.forget(&p);
                if newest {
                    again.push(p);
                }
            } else {
                keep.push_back(p);
            }
        }
        self.resend = keep;
        for mut p in again {
            // HELLO flags are the state's now, not the first sending's.
            p.bytes[1] &= !(flag::HELLO | flag::HELLO_BACK);
            let seq = self.emit(&mut p.bytes, now);
            self.stats.resent += 1;
            self.keep(seq, p.key, p.bytes);
        }
    }
}

/// The kind of a conntrack message: `kind::CT_NEW` and so on, for counters and logs.
pub fn kind_name(k: u8) -> &'static str {
    match k {
        kind::CT_NEW => "new",
        kind::CT_UPD => "update",
        kind::CT_DEL => "destroy",
        kind::EXP_NEW => "expect-new",
        kind::EXP_UPD => "expect-update",
        kind::EXP_DEL => "expect-destroy",
        _ => "control",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{v4_mapped, IpFamily};

    fn cfg(mode: Mode) -> PeerConfig {
        PeerConfig {
            mode,
            ack_window: 4,
            resend_queue: 100,
            mtu: 1472,
        }
    }

    fn key(port: u16) -> FlowKey {
        FlowKey::new(
            IpFamily::V4,
            v4_mapped([10, 0, 0, 1]),
            v4_mapped([10, 0, 0, 2]),
            17,
            port,
            53,
        )
    }

    fn attrs(port: u16) -> CtAttrs {
        CtAttrs {
            addrs: Some(wire::Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2])),
            l4proto: Some(17),
            ports: Some((port, 53)),
            status: Some(8),
            timeout: Some(30),
            ..CtAttrs::default()
        }
    }

    /// Every datagram `from` has ready, each delivered to `to` unless `lose` says so;
    /// what `to` was told to apply.
    fn deliver(
        from: &mut Peer,
        to: &mut Peer,
        now: u64,
        mut lose: impl FnMut(usize) -> bool,
    ) -> Vec<Received> {
        from.flush();
        let mut got = Vec::new();
        let mut i = 0;
        while let Some(d) = from.poll_transmit() {
            if !lose(i) {
                to.receive(&d, now, &mut got);
            }
            i += 1;
        }
        got
    }

    /// HELLO one way and back, both ways (ALIVEs a second apart): from here on sequence
    /// numbers are followed.
    fn handshake(a: &mut Peer, b: &mut Peer) -> u64 {
        for t in 1..=3 {
            a.tick(t * SEC);
            deliver(a, b, t * SEC, |_| false);
            b.tick(t * SEC);
            deliver(b, a, t * SEC, |_| false);
        }
        assert_eq!((a.hello, b.hello), (Hello::Done, Hello::Done));
        a.stats = PeerStats::default();
        b.stats = PeerStats::default();
        3 * SEC
    }

    fn ports(got: &[Received]) -> Vec<u16> {
        got.iter()
            .filter_map(|r| match r {
                Received::Ct(_, a) => a.ports.map(|p| p.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn notrack_delivers_counts_gaps_and_says_alive() {
        let (mut a, mut b) = (
            Peer::new(cfg(Mode::Notrack), 1000, 0),
            Peer::new(cfg(Mode::Notrack), 5000, 0),
        );
        for p in 1..=3 {
            a.send_ct(kind::CT_NEW, key(p), &attrs(p), 0);
            a.flush();
        }
        // The second datagram is lost: nothing asks for it again.
        let got = deliver(&mut a, &mut b, 0, |i| i == 1);
        assert_eq!(ports(&got), [1, 3]);
        assert_eq!(
            (b.stats.lost, b.stats.msg_recv, b.stats.malformed),
            (1, 2, 0)
        );
        assert!(deliver(&mut b, &mut a, 0, |_| false).is_empty());
        // A second of silence: an ALIVE, which the other takes quietly.
        a.tick(2 * SEC);
        assert!(deliver(&mut a, &mut b, 2 * SEC, |_| false).is_empty());
        assert_eq!((b.stats.msg_recv, b.stats.malformed), (3, 0));
        // A RESYNC request is handed to the caller.
        b.request_resync(2 * SEC);
        assert_eq!(
            deliver(&mut b, &mut a, 2 * SEC, |_| false),
            [Received::Resync]
        );
    }

    #[test]
    fn ftfw_acks_every_window_and_resends_what_a_nack_names() {
        let (mut a, mut b) = (
            Peer::new(cfg(Mode::Ftfw), u32::MAX - 3, 0),
            Peer::new(cfg(Mode::Ftfw), 7, 0),
        );
        let t = handshake(&mut a, &mut b);
        // Ten messages, one per datagram, the 3rd and 4th lost; sequence numbers wrap.
        for p in 1..=10 {
            a.send_ct(kind::CT_NEW, key(p), &attrs(p), t);
            a.flush();
        }
        let got = deliver(&mut a, &mut b, t, |i| i == 2 || i == 3);
        assert_eq!(ports(&got), [1, 2, 5, 6, 7, 8, 9, 10]);
        assert_eq!((b.stats.lost, b.stats.nacks_sent), (2, 1));
        // b's ACK of 1-2 and NACK of 3-4, and a window's ACK, reach a: 3 and 4 go again.
        assert!(deliver(&mut b, &mut a, t, |_| false).is_empty());
        assert_eq!((a.stats.nacks_recv, a.stats.resent), (1, 2));
        let got = deliver(&mut a, &mut b, t, |_| false);
        assert_eq!(ports(&got), [3, 4]);
        // After a second each side acknowledges the rest; a's ten are acknowledged once
        // b's ACKs arrive (b's own ACK and NACK wait for a's).
        b.tick(t + SEC);
        deliver(&mut b, &mut a, t + SEC, |_| false);
        a.tick(t + 2 * SEC);
        deliver(&mut a, &mut b, t + 2 * SEC, |_| false);
        b.tick(t + 3 * SEC);
        deliver(&mut b, &mut a, t + 3 * SEC, |_| false);
        assert_eq!(a.resend_queue_len(), 0, "{:?}", a.stats);
        assert_eq!(b.stats.malformed + a.stats.malformed, 0);
    }

    #[test]
    fn an_entry_is_resent_from_its_newest_message_only() {
        let (mut a, mut b) = (
            Peer::new(cfg(Mode::Ftfw), 1, 0),
            Peer::new(cfg(Mode::Ftfw), 1, 0),
        );
        handshake(&mut a, &mut b);
        let mut upd = attrs(9);
        a.send_ct(kind::CT_NEW, key(9), &attrs(9), 0);
        a.flush();
        upd.timeout = Some(120);
        a.send_ct(kind::CT_UPD, key(9), &upd, 0);
        a.flush();
        a.send_ct(kind::CT_NEW, key(10), &attrs(10), 0);
        a.flush();
        // The NEW and the UPD are lost; b NACKs both, but only the UPD goes again.
        deliver(&mut a, &mut b, 0, |i| i < 2);
        deliver(&mut b, &mut a, 0, |_| false);
        let got = deliver(&mut a, &mut b, 0, |_| false);
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Received::Ct(kind::CT_UPD, a) if a.timeout == Some(120)));
    }

    #[test]
    fn a_restarted_peer_says_hello_and_is_followed() {
        let mut a = Peer::new(cfg(Mode::Ftfw), 100, 0);
        let mut b = Peer::new(cfg(Mode::Ftfw), 5, 0);
        a.send_ct(kind::CT_NEW, key(1), &attrs(1), 0);
        deliver(&mut a, &mut b, 0, |_| false);
        // a restarts with an older number: a HELLO, so not dropped as late.
        let mut a = Peer::new(cfg(Mode::Ftfw), 50, 0);
        a.send_ct(kind::CT_NEW, key(2), &attrs(2), 0);
        let got = deliver(&mut a, &mut b, 0, |_| false);
        assert_eq!(ports(&got), [2]);
        assert_eq!((b.stats.before, b.stats.hellos_recv), (0, 2));
    }

    #[test]
    fn a_hello_is_answered_at_once() {
        let mut a = Peer::new(cfg(Mode::Ftfw), 100, 0);
        let mut b = Peer::new(cfg(Mode::Ftfw), 5, 0);
        a.send_ct(kind::CT_NEW, key(1), &attrs(1), 0);
        deliver(&mut a, &mut b, 0, |_| false);
        // b had nothing to send, yet its HELLO_BACK (and its own HELLO) goes out now.
        assert!(deliver(&mut b, &mut a, 0, |_| false).is_empty());
        assert_eq!(a.hello, Hello::Done);
        deliver(&mut a, &mut b, 0, |_| false);
        assert_eq!(b.hello, Hello::Done);
    }

    #[test]
    fn bad_control_messages_are_malformed() {
        let mut b = Peer::new(cfg(Mode::Ftfw), 5, 0);
        let mut w = Writer::default();
        // An ACK whose range runs backwards, and a control message with no flag.
        w.ctl(flag::ACK, 1, Some((10, 5)));
        w.ctl(0, 2, None);
        let mut got = Vec::new();
        b.receive(&w.buf, 0, &mut got);
        assert_eq!(b.stats.malformed, 2);
        // Truncated garbage.
        b.receive(&[0x10, 0, 0, 40, 0, 0], 0, &mut got);
        assert_eq!(b.stats.malformed, 3);
        assert!(got.is_empty());
    }
}
