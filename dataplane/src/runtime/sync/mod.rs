//! Connection-state sync with the peer gateway, over conntrackd's protocol (issue 14).
//!
//! ```text
//! worker i: shard events ──ring i (bounded; full = lost, counted)──┐
//!                                                                  ▼
//!     statewallctl sync ... ──requests──► sync thread: Peer (NOTRACK/FTFW) ◄──► UDP socket
//!                                            │  external cache   │ inject (cache off)
//!                                            └── commit/bulk/purge: worker commands
//! ```
//!
//! The workers never wait for the sync: each hands its shard's events (engine::sync::events)
//! to its own ring after a round, lock-free; a full ring drops the event and counts it. One
//! thread, away from the packet path, turns events into messages (engine::sync::entry,
//! engine::sync::peer), sends them in datagrams, reads the peer's, and keeps what the peer
//! sent in the external cache ([`cache`]) or, with `disable_external_cache`, has the owning
//! workers apply it at once. Commit, bulk send and purge walk the workers' tables with the
//! same bounded commands as `conntrack list`.

mod cache;
mod link;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{self, Receiver, Sender};
use crossbeam::queue::ArrayQueue;

use config::protocol::{ErrorKind, ErrorReply, SyncOp, SyncReply, SyncStatus};
use config::sync::{SyncConfig, SyncMode};
use engine::conntrack::expect::Expectation;
use engine::conntrack::filter::EntryFilter;
use engine::flow::owner;
use engine::flow::FlowKey;
use engine::sync::entry::{attrs_of, entry_of};
use engine::sync::events::{Event, EventKind};
use engine::sync::expect as exp;
use engine::sync::peer::{Mode, Peer, PeerConfig, Received};
use engine::sync::wire::kind;

use self::cache::{expected_key, ExternalCache};
use self::link::{Link, Refused, RECV_MAX};
use super::cmd::{Inject, ScanAction};
use super::{RuntimeHandle, Shared};

/// Shard event logs' capacity (events a worker records in one round).
pub const EVENT_LOG: usize = 4096;
/// How long the sync thread waits for the socket before it looks at the rings again: the
/// longest an event waits to be sent.
const ROUND: Duration = Duration::from_millis(5);
/// Largest datagram payload sent (Ethernet MTU less IPv4 and UDP headers).
const MTU: usize = 1472;
/// Events taken off one ring per round at most (the others' get their turn).
const EVENTS_PER_ROUND: usize = 8192;
/// How long a control request waits for the sync thread (a bulk send of a large table
/// takes a while); less than statewallctl waits for the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(50);

/// What the workers and the control side share with the sync thread.
#[derive(Debug)]
pub(crate) struct SyncShared {
    /// `rings[i]`: worker i's events.
    pub(crate) rings: Vec<ArrayQueue<Event>>,
    events_lost: AtomicU64,
    requests: Sender<Request>,
    requests_rx: Receiver<Request>,
    /// The thread's counters, as of its last round.
    status: Mutex<SyncStatus>,
    config: SyncConfig,
}

#[derive(Debug)]
struct Request {
    op: SyncOp,
    reply: Sender<Result<SyncReply, ErrorReply>>,
}

impl SyncShared {
    pub(crate) fn new(config: &SyncConfig, workers: usize) -> SyncShared {
        let (tx, rx) = channel::bounded(8);
        SyncShared {
            rings: (0..workers)
                .map(|_| ArrayQueue::new(config.event_ring.max(1) as usize))
                .collect(),
            events_lost: AtomicU64::new(0),
            requests: tx,
            requests_rx: rx,
            status: Mutex::new(SyncStatus::default()),
            config: config.clone(),
        }
    }

    pub(crate) fn lost_more(&self, n: u64) {
        if n > 0 {
            self.events_lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn status(&self) -> SyncStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serve a `sync` request on the sync thread.
    pub(crate) fn request(&self, op: SyncOp) -> Result<SyncReply, ErrorReply> {
        if op == SyncOp::Status {
            return Ok(SyncReply {
                status: self.status(),
                ..SyncReply::default()
            });
        }
        let (tx, rx) = channel::bounded(1);
        self.requests
            .try_send(Request { op, reply: tx })
            .map_err(|_| {
                ErrorReply::new(
                    ErrorKind::Busy,
                    "the sync thread has requests waiting; try again",
                )
            })?;
        rx.recv_timeout(REQUEST_TIMEOUT).unwrap_or_else(|_| {
            Err(ErrorReply::new(
                ErrorKind::WorkerTimeout,
                format!(
                    "the sync thread did not finish `sync {}` within {REQUEST_TIMEOUT:?}",
                    op.as_str()
                ),
            ))
        })
    }
}

/// Open the link and start the sync thread; it ends when the runtime stops.
pub(crate) fn start(
    shared: &Arc<Shared>,
    handle: RuntimeHandle,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let Some(sync) = &shared.sync else {
        return Ok(None);
    };
    let link = Link::open(&sync.config)?;
    let cfg = &sync.config;
    let now = shared.clock.now();
    // conntrackd numbers from the Unix time: a restarted peer's numbers move on.
    let first = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let peer = Peer::new(
        PeerConfig {
            mode: match cfg.mode {
                SyncMode::Notrack => Mode::Notrack,
                SyncMode::Ftfw => Mode::Ftfw,
            },
            ack_window: cfg.ack_window_size,
            resend_queue: cfg.resend_queue_size as usize,
            mtu: MTU,
        },
        first,
        now,
    );
    let mut t = SyncThread {
        shared: Arc::clone(shared),
        handle,
        link,
        peer,
        cache: ExternalCache::default(),
        counts: Counts::default(),
        received: Vec::new(),
        sent_expectations: HashMap::new(),
    };
    t.publish();
    thread::Builder::new()
        .name("sw-sync".into())
        .spawn(move || t.run())
        .map(Some)
}

/// The thread's own counters (the peer keeps the protocol's).
#[derive(Debug, Default)]
struct Counts {
    events: u64,
    unauthenticated: u64,
    recv_new: u64,
    recv_update: u64,
    recv_destroy: u64,
    recv_expect: u64,
    refused: u64,
    refused_reason: Option<String>,
    send_errors: u64,
}

struct SyncThread {
    shared: Arc<Shared>,
    handle: RuntimeHandle,
    link: Link,
    peer: Peer,
    cache: ExternalCache,
    counts: Counts,
    received: Vec<Received>,
    /// The expectations the peer was told of (`expectation_sync`), by expected tuple.
    sent_expectations: HashMap<FlowKey, Expectation>,
}

impl SyncThread {
    fn sync(&self) -> &SyncShared {
        self.shared
            .sync
            .as_ref()
            .expect("the sync thread runs with sync on")
    }

    fn run(mut self) {
        let mut buf = vec![0u8; RECV_MAX];
        while !self.shared.stop.load(Ordering::Relaxed) {
            if self.link.wait(ROUND) {
                while let Some(r) = self.link.recv(&mut buf) {
                    match r {
                        Ok(n) => {
                            let now = self.shared.clock.now();
                            let mut got = std::mem::take(&mut self.received);
                            self.peer.receive(&buf[..n], now, &mut got);
                            self.apply(&mut got);
                            self.received = got;
                        }
                        Err(Refused::Stranger) => self.counts.unauthenticated += 1,
                    }
                }
            }
            self.send_events();
            self.send_expectations();
            if let Ok(req) = self.sync().requests_rx.try_recv() {
                let r = self.serve(req.op);
                let _ = req.reply.try_send(r);
            }
            self.peer.tick(self.shared.clock.now());
            self.transmit();
            self.publish();
        }
        // What the workers handed over last goes out before the thread ends.
        self.send_events();
        self.transmit();
    }

    /// Events from the workers' rings, as messages.
    fn send_events(&mut self) {
        let now = self.shared.clock.now();
        let shared = Arc::clone(&self.shared);
        let sync = shared.sync.as_ref().expect("sync on");
        for ring in &sync.rings {
            for _ in 0..EVENTS_PER_ROUND {
                let Some(ev) = ring.pop() else { break };
                self.counts.events += 1;
                let k = match ev.kind {
                    EventKind::New => kind::CT_NEW,
                    EventKind::Update => kind::CT_UPD,
                    EventKind::Destroy => kind::CT_DEL,
                };
                if let Some(a) = attrs_of(&ev.entry, now) {
                    self.peer.send_ct(k, ev.entry.key, &a, now);
                }
            }
        }
    }

    /// The FTP helper's expectations (`expectation_sync`): the ones that appeared since the
    /// last round as EXP_NEW, the ones gone (a data connection took it, or it expired) as
    /// EXP_DEL. The shared table is only looked at while it or what was sent is not empty.
    fn send_expectations(&mut self) {
        if !self.sync().config.expectation_sync
            || (self.shared.expect.is_empty() && self.sent_expectations.is_empty())
        {
            return;
        }
        let now = self.shared.clock.now();
        let live: HashMap<FlowKey, Expectation> = self
            .shared
            .expect
            .snapshot()
            .into_iter()
            .filter(|x| x.expires > now)
            .map(|x| (expected_key(&x), x))
            .collect();
        let gone: Vec<(FlowKey, Expectation)> = self
            .sent_expectations
            .iter()
            .filter(|(k, _)| !live.contains_key(k))
            .map(|(k, x)| (*k, *x))
            .collect();
        for (k, x) in gone {
            self.sent_expectations.remove(&k);
            self.peer
                .send_exp(kind::EXP_DEL, k, &exp::attrs_of(&x, now), now);
        }
        for (k, x) in live {
            if self.sent_expectations.insert(k, x).is_none() {
                self.peer
                    .send_exp(kind::EXP_NEW, k, &exp::attrs_of(&x, now), now);
            }
        }
    }

    fn transmit(&mut self) {
        self.peer.flush();
        while let Some(d) = self.peer.poll_transmit() {
            if self.link.send(&d).is_err() {
                self.counts.send_errors += 1;
            }
        }
    }

    /// Apply what the peer sent: to the external cache, or (cache off) to the table.
    fn apply(&mut self, got: &mut Vec<Received>) {
        let direct = self.sync().config.disable_external_cache;
        let workers = self.shared.workers;
        let mut inject: Vec<Vec<Inject>> = vec![Vec::new(); if direct { workers } else { 0 }];
        let mut resync = false;
        for r in got.drain(..) {
            match r {
                Received::Ct(k, a) => {
                    match k {
                        kind::CT_NEW => self.counts.recv_new += 1,
                        kind::CT_UPD => self.counts.recv_update += 1,
                        _ => self.counts.recv_destroy += 1,
                    }
                    // Timeouts as durations: `expires` is the timeout until committed.
                    let e = match entry_of(&a, 0) {
                        Ok(e) => e,
                        Err(why) => {
                            self.counts.refused += 1;
                            self.counts.refused_reason = Some(why);
                            continue;
                        }
                    };
                    if direct {
                        let w = owner(e.key.symmetric_hash(), workers);
                        inject[w].push(if k == kind::CT_DEL {
                            Inject::Remove(e.key)
                        } else {
                            let mut live = e;
                            live.expires = self.shared.clock.now().saturating_add(e.expires);
                            Inject::Put(live)
                        });
                    } else if k == kind::CT_DEL {
                        self.cache.remove(&e.key);
                    } else {
                        self.cache.put(e, e.expires);
                    }
                }
                Received::Exp(k, attrs) => {
                    self.counts.recv_expect += 1;
                    if !self.sync().config.expectation_sync {
                        continue;
                    }
                    // Timeouts as durations until committed, as for entries.
                    let x = match exp::expectation_of(&attrs, 0) {
                        Ok(x) => x,
                        Err(why) => {
                            self.counts.refused += 1;
                            self.counts.refused_reason = Some(why);
                            continue;
                        }
                    };
                    let now = self.shared.clock.now();
                    match (direct, k == kind::EXP_DEL) {
                        (true, true) => {
                            let k = expected_key(&x);
                            self.shared.expect.take(&k, now);
                        }
                        (true, false) => {
                            let live = Expectation {
                                expires: now.saturating_add(x.expires),
                                ..x
                            };
                            if self.shared.expect.add(live, now).is_err() {
                                self.counts.refused += 1;
                                self.counts.refused_reason =
                                    Some("the expectation table is full (expect_max)".into());
                            }
                        }
                        (false, true) => {
                            self.cache.remove_expectation(&x);
                        }
                        (false, false) => self.cache.put_expectation(x),
                    }
                }
                Received::Resync => resync = true,
            }
        }
        for (w, ops) in inject.into_iter().enumerate() {
            if !ops.is_empty() {
                if let Err(e) = self.handle.inject(w, ops) {
                    crate::log_warn!("sync: entries from the peer not applied: {}", e.message);
                }
            }
        }
        if resync {
            if let Err(e) = self.bulk() {
                crate::log_warn!("sync: the peer's resync request failed: {}", e.message);
            }
        }
    }

    /// Every live entry to the peer (CT_UPD, as conntrackd sends its cache's live objects).
    fn bulk(&mut self) -> Result<u64, ErrorReply> {
        let mut entries = Vec::new();
        self.handle
            .scan_all(EntryFilter::default(), ScanAction::Copy, |_, r| {
                entries.extend(r.entries);
            })?;
        let now = self.shared.clock.now();
        let mut sent = 0;
        for e in &entries {
            if let Some(a) = attrs_of(e, now) {
                self.peer.send_ct(kind::CT_UPD, e.key, &a, now);
                sent += 1;
                if sent % 256 == 0 {
                    self.transmit();
                }
            }
        }
        // Then the expectations (their masters are sent above), as conntrackd sends its
        // expectation cache after its conntrack cache.
        if self.sync().config.expectation_sync {
            for x in self.shared.expect.snapshot() {
                if x.expires > now {
                    let k = expected_key(&x);
                    self.peer
                        .send_exp(kind::EXP_NEW, k, &exp::attrs_of(&x, now), now);
                    self.sent_expectations.insert(k, x);
                }
            }
        }
        self.transmit();
        Ok(sent)
    }

    fn serve(&mut self, op: SyncOp) -> Result<SyncReply, ErrorReply> {
        let now = self.shared.clock.now();
        let (entries, message) = match op {
            SyncOp::Status => (0, String::new()),
            SyncOp::Commit => {
                let r = self.handle.adopt_all(self.cache.committed(now))?;
                // The expectations after their masters, as conntrackd commits them.
                let (mut xs, mut full) = (0, 0);
                for x in self.cache.committed_expectations(now) {
                    if self.shared.expect.add(x, now).is_ok() {
                        xs += 1;
                    } else {
                        full += 1;
                    }
                }
                (
                    r.added,
                    format!(
                        "committed {} entries from the external cache: {} added, {} already there, {} expired, {} not added (table full); {} expectations{}",
                        self.cache.len(),
                        r.added,
                        r.present,
                        r.expired,
                        r.full,
                        xs,
                        if full > 0 {
                            format!(" ({full} not added: expect_max)")
                        } else {
                            String::new()
                        }
                    ),
                )
            }
            SyncOp::Flush => {
                let (n, x) = self.cache.clear();
                (
                    n as u64,
                    format!("flushed {n} entries and {x} expectations from the external cache"),
                )
            }
            SyncOp::Resync => (
                0,
                "the internal cache is the connection table itself: nothing to resync".into(),
            ),
            SyncOp::Bulk => {
                let n = self.bulk()?;
                (n, format!("sent {n} entries to the peer"))
            }
            SyncOp::Request => {
                self.peer.request_resync(now);
                self.transmit();
                (0, "asked the peer for all its entries (RESYNC)".into())
            }
            SyncOp::Purge => {
                let secs = self.sync().config.purge_timeout;
                let until = now.saturating_add(u64::from(secs) * 1_000_000_000);
                let mut n = 0;
                self.handle.scan_all(
                    EntryFilter::default(),
                    ScanAction::Shorten { until },
                    |_, r| {
                        n += r.matched;
                    },
                )?;
                (
                    n,
                    format!("{n} entries now expire within {secs} s unless traffic refreshes them"),
                )
            }
        };
        self.publish();
        Ok(SyncReply {
            message,
            entries,
            status: self.sync().status(),
        })
    }

    /// Make the counters visible to `status`, `stats` and the metrics.
    fn publish(&mut self) {
        let s = &self.peer.stats;
        let sync = self.sync();
        let c = &self.counts;
        let st = SyncStatus {
            mode: match self.peer.mode() {
                Mode::Notrack => "notrack".into(),
                Mode::Ftfw => "ftfw".into(),
            },
            link: self.link.name.clone(),
            external_cache: self.cache.len() as u64,
            external_expectations: self.cache.expectations() as u64,
            expectation_sync: sync.config.expectation_sync,
            disable_external_cache: sync.config.disable_external_cache,
            msg_sent: s.msg_sent,
            msg_recv: s.msg_recv,
            bytes_sent: s.bytes_sent,
            bytes_recv: s.bytes_recv,
            datagrams_sent: s.datagrams_sent,
            datagrams_recv: s.datagrams_recv,
            malformed: s.malformed,
            unauthenticated: c.unauthenticated,
            lost: s.lost,
            before: s.before,
            acks_sent: s.acks_sent,
            acks_recv: s.acks_recv,
            nacks_sent: s.nacks_sent,
            nacks_recv: s.nacks_recv,
            resent: s.resent,
            resend_queue: self.peer.resend_queue_len() as u64,
            resend_dropped: s.resend_dropped,
            resyncs_sent: s.resyncs_sent,
            resyncs_recv: s.resyncs_recv,
            events: c.events,
            events_lost: sync.events_lost.load(Ordering::Relaxed),
            recv_new: c.recv_new,
            recv_update: c.recv_update,
            recv_destroy: c.recv_destroy,
            recv_expect: c.recv_expect,
            refused: c.refused,
            refused_reason: c.refused_reason.clone(),
            send_errors: c.send_errors,
        };
        *sync.status.lock().unwrap_or_else(PoisonError::into_inner) = st;
    }
}
