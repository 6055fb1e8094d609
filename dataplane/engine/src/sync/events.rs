//! What a shard tells its sync peer: entries created, updated and destroyed, as the kernel's
//! ctnetlink events tell conntrackd (`IPCT_NEW`, the `IPCT_*` update bits, `IPCT_DESTROY`).
//!
//! A shard with sync on records each event in its [`EventLog`], a buffer sized at start; the
//! worker hands the buffer's events to the sync thread after every batch. A full buffer drops
//! the event and counts it (FTFW's resync repairs what a lost event leaves out), so the packet
//! path never allocates or waits.
//!
//! Updates are what the kernel reports: a change of status bits (SEEN_REPLY, ASSURED), of the
//! TCP state or of the connection mark. The kernel does not report a timeout refresh, so a
//! peer that only listened to updates would commit an active connection with the timeout of
//! its last state change; here an entry that carries traffic in a `refresh` period after the
//! one it was last sent in is sent again ([`EventLog::refresh_due`]): at most one update per
//! active entry per `refresh`. The period is stamped in the entry (`Entry::sync_epoch`): the
//! timeout alone cannot say it, as TCP's moves back and forth between the established and the
//! unacknowledged-data timeouts from one segment to the next.

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
}

impl EventLog {
    /// A log of `capacity` events (allocated now), re-sending refreshed timeouts every
    /// `refresh_ns` (0: never).
    pub fn new(capacity: usize, refresh_ns: u64) -> EventLog {
        EventLog {
            buf: Vec::with_capacity(capacity.max(1)),
            lost: 0,
            refresh_ns,
        }
    }

    /// Record an event about `entry` at `now` (a full log drops it and counts it), stamping
    /// the entry with the refresh period it was sent in.
    #[inline]
    pub fn push(&mut self, kind: EventKind, entry: &mut Entry, now: u64) {
        entry.sync_epoch = self.epoch(now);
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

    /// The refresh period `now` is in (modulo 2^16).
    #[inline]
    fn epoch(&self, now: u64) -> u16 {
        now.checked_div(self.refresh_ns).map_or(0, |e| e as u16)
    }

    /// Whether `e`, carrying traffic at `now`, is due to be sent again: it was last sent in an
    /// earlier refresh period.
    #[inline]
    pub fn refresh_due(&self, e: &Entry, now: u64) -> bool {
        self.refresh_ns != 0 && e.sync_epoch != self.epoch(now)
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

/// What of an entry an update is about: a change in any of these is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watched {
    status: u16,
    tcp_state: u8,
    mark: u32,
}

impl Watched {
    #[inline]
    pub(crate) fn of(e: &Entry) -> Watched {
        Watched {
            status: e.status,
            tcp_state: e.tcp.state,
            mark: e.mark,
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
            log.push(EventKind::New, &mut e, 0);
        }
        assert_eq!((log.len(), log.lost), (2, 3));
        assert_eq!(log.drain().count(), 2);
        assert!(log.is_empty());
        log.record(EventKind::Destroy, &e);
        assert_eq!((log.len(), log.lost), (1, 3));
    }

    #[test]
    fn a_refresh_is_due_once_per_period() {
        let s = 1_000_000_000;
        let mut log = EventLog::new(4, 60 * s);
        let mut e = Entry::default();
        log.push(EventKind::New, &mut e, 100 * s);
        assert!(!log.refresh_due(&e, 119 * s));
        assert!(log.refresh_due(&e, 120 * s));
        log.push(EventKind::Update, &mut e, 120 * s);
        assert!(!log.refresh_due(&e, 179 * s));
        assert!(!EventLog::new(1, 0).refresh_due(&e, 1000 * s));
    }
}
