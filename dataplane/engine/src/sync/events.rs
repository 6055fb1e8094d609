//! What a shard tells its sync peer: entries created, updated and destroyed, as the kernel's
//! ctnetlink events tell conntrackd (`IPCT_NEW`, the `IPCT_*` update bits, `IPCT_DESTROY`).
//!
//! A shard with sync on records each event in its [`EventLog`], a buffer sized at start; the
//! worker hands the buffer's events to the sync thread after every batch. A full buffer drops
//! the event and counts it (FTFW's resync repairs what a lost event leaves out), so the packet
//! path never allocates or waits.
//!
//! Updates are what the kernel reports: a change of status bits (SEEN_REPLY, ASSURED), of the
//! TCP state (both seen by the tracker, per packet) or of the connection mark (seen where a
//! rule sets it). The kernel does not report a timeout refresh, so a peer that only listened
//! to updates would commit an active connection with the timeout of its last state change;
//! here the expiry sweep, which walks every entry once a second anyway, sends again an entry
//! whose expiry traffic moved later by a `refresh` period or more since it was last sent
//! ([`EventLog::refresh_due`]): at most one update per active entry per `refresh`, and no
//! cost per packet. What was sent is stamped in the entry (`Entry::sync_epoch`: the refresh
//! period its expiry was in, modulo 2^16); only a move *later* counts, as TCP's expiry goes
//! back and forth between the established and the unacknowledged-data timeouts from one
//! segment to the next.

use crate::conntrack::entry::Entry;

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Confirmed: its first packet was accepted (`IPCT_NEW`).
    New,
    /// Its status, TCP state, mark or (past a `refresh` step) timeout changed.
    Update,
    /// Removed: expired, closed, evicted, flushed (`IPCT_DESTROY`).
    Destroy,
}

/// One event: the entry as it was when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub entry: Entry,
}

/// A shard's events since the worker last took them.
#[derive(Debug)]
pub struct EventLog {
    buf: Vec<Event>,
    /// Events dropped because the buffer was full, in all.
    pub lost: u64,
    /// Resend an active entry once per this (ns); 0: never.
    refresh_ns: u64,
    /// ⌊2^64 / refresh_ns⌋: the sweep divides by a multiplication (a refresh period's
    /// edges may move by a nanosecond; every entry sees the same edges).
    per_period: u64,
}

impl EventLog {
    /// A log of `capacity` events (allocated now), re-sending refreshed timeouts every
    /// `refresh_ns` (0: never).
    pub fn new(capacity: usize, refresh_ns: u64) -> EventLog {
        EventLog {
            buf: Vec::with_capacity(capacity.max(1)),
            lost: 0,
            refresh_ns,
            per_period: u64::MAX.checked_div(refresh_ns).unwrap_or(0),
        }
    }

    /// Record an event about `entry` (a full log drops it and counts it), stamping the entry
    /// with the refresh period of its expiry.
    #[inline]
    pub fn push(&mut self, kind: EventKind, entry: &mut Entry) {
        entry.sync_epoch = self.epoch(entry.expires);
        self.record(kind, entry);
    }

    /// Record an event about an entry on its way out (not stamped: it is gone).
    #[inline]
    pub fn record(&mut self, kind: EventKind, entry: &Entry) {
        if self.buf.len() < self.buf.capacity() {
            self.buf.push(Event {
                kind,
                entry: *entry,
            });
        } else {
            self.lost += 1;
        }
    }

    /// The refresh period engine time `t` is in (modulo 2^16).
    #[inline]
    fn epoch(&self, t: u64) -> u16 {
        ((u128::from(t) * u128::from(self.per_period)) >> 64) as u16
    }

    /// Whether live entry `e` is due to be sent again: its expiry is in a later refresh period
    /// than when it was last sent.
    #[inline]
    pub fn refresh_due(&self, e: &Entry) -> bool {
        self.refresh_ns != 0 && (self.epoch(e.expires).wrapping_sub(e.sync_epoch) as i16) > 0
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Take the events out, oldest first (the buffer keeps its capacity).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Event> {
        self.buf.drain(..)
    }
}

/// What of an entry the tracker may change and an update is about (the mark changes where a
/// rule sets it: `Shard::set_mark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watched {
    status: u16,
    tcp_state: u8,
}

impl Watched {
    #[inline]
    pub(crate) fn of(e: &Entry) -> Watched {
        Watched {
            status: e.status,
            tcp_state: e.tcp.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_counts_what_it_drops() {
        let mut log = EventLog::new(2, 0);
        let mut e = Entry::default();
        for _ in 0..5 {
            log.push(EventKind::New, &mut e);
        }
        assert_eq!((log.len(), log.lost), (2, 3));
        assert_eq!(log.drain().count(), 2);
        assert!(log.is_empty());
        log.record(EventKind::Destroy, &e);
        assert_eq!((log.len(), log.lost), (1, 3));
    }

    #[test]
    fn a_refresh_is_due_once_the_expiry_moved_a_period_later() {
        let s = 1_000_000_000;
        let mut log = EventLog::new(4, 60 * s);
        let mut e = Entry {
            expires: 200 * s,
            ..Entry::default()
        };
        log.push(EventKind::New, &mut e);
        e.expires = 239 * s;
        assert!(!log.refresh_due(&e));
        e.expires = 241 * s;
        assert!(log.refresh_due(&e));
        log.push(EventKind::Update, &mut e);
        assert!(!log.refresh_due(&e));
        // Earlier (TCP's unacknowledged-data timeout): not a refresh.
        e.expires = 100 * s;
        assert!(!log.refresh_due(&e));
        assert!(!EventLog::new(1, 0).refresh_due(&e));
    }
}
