//! Connection tracking: one [`Shard`] per worker, sharing nothing.
//!
//! `Shard::track` mirrors the kernel's `nf_conntrack_in`: ICMP errors first, then tuple,
//! lookup (or a new, *unconfirmed* entry), the per-packet state (`ctinfo`), the protocol
//! tracker, and SEEN_REPLY. A new entry joins the table only when `confirm` is called, which
//! the pipeline does once the forward stage accepted the packet, as the kernel confirms at
//! the end of the hook chain: a dropped NEW packet leaves no state.

pub mod entry;
pub mod expect;
pub mod filter;
pub mod ftp;
pub mod listing;
pub mod save;
pub mod sysctls;
pub mod table;
pub mod tcp;

use config::matches::{CtDir, CtState};

use crate::flow::FlowKey;
use crate::packet::{IpFamily, PacketMeta};
use crate::reason::InvalidReason;
use crate::sync::events::{EventKind, EventLog, Watched};
use crate::wire::{icmp, proto};

use entry::{status, Dir, Entry};
use std::sync::Arc;

use expect::{Expectation, SharedExpectations, FTP_EXPECT_TIMEOUT_NS};
use ftp::{Found, NlSeq};
pub use sysctls::Sysctls;
use table::Table;
pub use table::{HeapSlab, SlabMemory, Slot};
use tcp::{Segment, TcpVerdict};

const NS: u64 = 1_000_000_000;

/// What conntrack says about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// A packet of a confirmed entry (already updated).
    Tracked {
        id: u32,
        dir: Dir,
        state: CtState,
    },
    /// The first packet of a new flow (NEW, or RELATED for an expected one); the entry waits
    /// in the shard for [`Shard::confirm`] or [`Shard::discard`].
    New {
        state: CtState,
    },
    /// An ICMP error about a tracked flow: RELATED, in direction `dir` of that flow.
    Related {
        id: u32,
        dir: Dir,
    },
    Invalid(InvalidReason),
    /// Not tracked (raw-stage notrack, IPv6 neighbour discovery and MLD).
    Untracked,
    /// New flow with the table full and nothing to evict: drop the packet.
    TableFull,
}

impl Track {
    /// The packet's state as the `state`/`conntrack` matches see it.
    pub fn ctstate(&self) -> Option<CtState> {
        Some(match self {
            Track::Tracked { state, .. } | Track::New { state } => *state,
            Track::Related { .. } => CtState::Related,
            Track::Invalid(_) => CtState::Invalid,
            Track::Untracked => CtState::Untracked,
            Track::TableFull => return None,
        })
    }

    /// The packet's direction, where it has one (`--ctdir`).
    pub fn ctdir(&self) -> Option<CtDir> {
        let dir = match self {
            Track::Tracked { dir, .. } | Track::Related { dir, .. } => *dir,
            Track::New { .. } => Dir::Original,
            _ => return None,
        };
        Some(match dir {
            Dir::Original => CtDir::Original,
            Dir::Reply => CtDir::Reply,
        })
    }
}

/// What a helper decided for an accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperVerdict {
    Accept,
    /// A partial or malformed FTP command (the kernel drops it), or no room to expect.
    Drop,
}

/// Most FTP control connections whose line state a shard follows at once.
pub const FTP_CONNS_MAX: usize = 1024;

/// Line state of one FTP control connection, kept beside the table (entries stay small).
#[derive(Debug, Clone, Copy)]
struct FtpConn {
    id: u32,
    key: FlowKey,
    nl: NlSeq,
}

/// Counters a shard keeps (read by the stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub inserted: u64,
    pub expired: u64,
    pub early_drops: u64,
    pub table_full: u64,
    pub invalid: u64,
    pub expectations_created: u64,
    pub helper_drops: u64,
}

/// Why [`Shard::adopt`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdoptError {
    #[error("the entry is not one the engine can hold: {0}")]
    Invalid(&'static str),
    #[error("an entry for this connection is already in the table")]
    Duplicate,
    #[error("the table is full")]
    Full,
}

/// One worker's share of the connection table.
#[derive(Debug)]
pub struct Shard<M: SlabMemory = HeapSlab> {
    table: Table<M>,
    sysctls: Sysctls,
    ftp_ports: Vec<u16>,
    expect: Arc<SharedExpectations>,
    ftp_conns: Vec<FtpConn>,
    /// The unconfirmed entry of the last `Track::New`, and its hash.
    pending: Option<(Entry, u64)>,
    /// What the sync peer is told (`None`: sync is off).
    events: Option<EventLog>,
    pub stats: ShardStats,
}

impl Shard {
    /// A shard of `capacity` entries, all allocated now, sharing `expect` with the other
    /// shards of its engine.
    pub fn new(
        capacity: usize,
        sysctls: Sysctls,
        ftp_ports: &[u16],
        expect: Arc<SharedExpectations>,
    ) -> Shard {
        Shard::with_slab(table::heap_slab(capacity), sysctls, ftp_ports, expect)
    }
}

impl<M: SlabMemory> Shard<M> {
    /// An empty shard whose entries live in `slab` (one entry per slot; every slot is made
    /// free), sharing `expect` with the other shards of its engine.
    pub fn with_slab(
        slab: M,
        sysctls: Sysctls,
        ftp_ports: &[u16],
        expect: Arc<SharedExpectations>,
    ) -> Shard<M> {
        Shard {
            table: Table::with_slab(slab),
            sysctls,
            ftp_ports: ftp_ports.to_vec(),
            expect,
            ftp_conns: Vec::with_capacity(FTP_CONNS_MAX),
            pending: None,
            events: None,
            stats: ShardStats::default(),
        }
    }

    /// Take in an entry from elsewhere (a state file, a `conntrack -L -o save` line, a
    /// peer): checked ([`Entry::check`]), its verdict cache cleared (a cached verdict belongs
    /// to another process's ruleset generations), inserted. The caller has checked that it
    /// has not expired. An FTP control connection's helper picks up its line tracking on the
    /// next segment of each direction (the kernel's `NF_CT_FTP_SEQ_PICKUP` for injected
    /// entries): what came before the restart is not known.
    pub fn adopt(&mut self, mut e: Entry) -> Result<u32, AdoptError> {
        e.check().map_err(AdoptError::Invalid)?;
        e.cache = [entry::CachedVerdict::default(); 2];
        let hash = e.key.symmetric_hash();
        if self.table.find(&e.key, hash).is_some() {
            return Err(AdoptError::Duplicate);
        }
        let id = self.table.insert(e, hash).ok_or(AdoptError::Full)?;
        if e.has(status::HELPER_FTP) && self.ftp_conns.len() < FTP_CONNS_MAX {
            self.ftp_conns.push(FtpConn {
                id,
                key: e.key,
                nl: NlSeq::picking_up(),
            });
        }
        Ok(id)
    }

    /// Record entries created, updated and destroyed from now on for the sync peer, in a log
    /// of `capacity` events, a refreshed timeout re-sent every `refresh_ns` (0: never).
    pub fn enable_events(&mut self, capacity: usize, refresh_ns: u64) {
        self.events = Some(EventLog::new(capacity, refresh_ns));
    }

    /// The events recorded since they were last taken (`None`: sync is off).
    pub fn events_mut(&mut self) -> Option<&mut EventLog> {
        self.events.as_mut()
    }

    /// Set entry `id`'s connection mark (a mark action); a change is an update.
    #[inline]
    pub fn set_mark(&mut self, id: u32, mark: u32) {
        let e = self.table.get_mut(id);
        if e.mark != mark {
            e.mark = mark;
            if let Some(log) = &mut self.events {
                log.push(EventKind::Update, e);
            }
        }
    }

    /// Remove entry `id`, telling the sync peer.
    #[inline]
    fn remove(&mut self, id: u32) {
        if let Some(log) = &mut self.events {
            log.record(EventKind::Destroy, self.table.get(id));
        }
        self.table.remove(id);
    }

    /// A peer's update of a connection (sync with the external cache off): the entry there
    /// takes `e`'s status, TCP state, mark and expiry, as ctnetlink changes a kernel entry
    /// (its window data stays); a connection not there is adopted. No event is recorded:
    /// the peer told us. `Ok(true)` when it was there.
    pub fn sync_put(&mut self, e: Entry) -> Result<bool, AdoptError> {
        e.check().map_err(AdoptError::Invalid)?;
        let hash = e.key.symmetric_hash();
        let Some((id, dir)) = self.table.find(&e.key, hash) else {
            self.adopt(e)?;
            return Ok(false);
        };
        let x = self.table.get_mut(id);
        if dir == Dir::Reply {
            // Ours has the other direction as original: leave it (its tuple is the truth here).
            return Ok(true);
        }
        x.status = e.status | status::IN_USE;
        x.tcp.state = e.tcp.state;
        x.mark = e.mark;
        x.expires = e.expires;
        Ok(true)
    }

    /// A peer's destroy of a connection: removed without an event. Whether it was there.
    pub fn sync_remove(&mut self, key: &FlowKey) -> bool {
        match self.table.find(key, key.symmetric_hash()) {
            Some((id, _)) => {
                self.table.remove(id);
                true
            }
            None => false,
        }
    }

    /// Whether `port` is one the FTP helper watches (as a new connection's destination).
    pub fn is_ftp_port(&self, port: u16) -> bool {
        self.ftp_ports.contains(&port)
    }

    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// New settings apply to later packets (existing timers keep running, as in the kernel).
    pub fn set_sysctls(&mut self, t: Sysctls) {
        self.sysctls = t;
    }

    pub fn set_ftp_ports(&mut self, ports: &[u16]) {
        self.ftp_ports.clear();
        self.ftp_ports.extend_from_slice(ports);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    pub fn entry(&self, id: u32) -> &Entry {
        self.table.get(id)
    }

    pub fn entry_mut(&mut self, id: u32) -> &mut Entry {
        self.table.get_mut(id)
    }

    /// Live entries.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.table.ids().map(|id| self.table.get(id))
    }

    /// Prefetch the table slot for a key hash (batch lookups).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// The clock-paced timeout sweep ([`table::Table::sweep`]): the slots due since the last
    /// call, at most `max`.
    pub fn sweep(&mut self, now: u64, max: usize) -> usize {
        let n = match &mut self.events {
            None => self.table.sweep(now, max, |_, _| {}),
            Some(log) => self
                .table
                .sweep(now, max, |e, gone| sweep_event(log, e, gone)),
        };
        self.stats.expired += n as u64;
        n
    }

    /// Expire at most `budget` entries' worth of the table (one step of the batched sweep).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = match &mut self.events {
            None => self.table.expire(now, budget, |_, _| {}),
            Some(log) => self
                .table
                .expire(now, budget, |e, gone| sweep_event(log, e, gone)),
        };
        self.stats.expired += n as u64;
        n
    }

    /// Remove every entry and expectation.
    pub fn flush(&mut self) {
        let ids: Vec<u32> = self.table.ids().collect();
        for id in ids {
            self.remove(id);
        }
        self.expect.clear();
        self.ftp_conns.clear();
    }

    /// Pending expectations (shared by all shards of the engine).
    pub fn expectations(&self) -> &SharedExpectations {
        &self.expect
    }

    /// Find a live entry; an expired one is removed and not returned (the kernel's lookup
    /// skips and reaps expired entries).
    #[inline(always)]
    fn lookup(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<(u32, Dir)> {
        let (id, dir) = self.table.find(key, hash)?;
        if self.table.get(id).expires <= now {
            self.remove(id);
            self.stats.expired += 1;
            return None;
        }
        Some((id, dir))
    }

    /// Track one parsed IP packet at time `now` (ns). `checksum_ok` is the L4 checksum
    /// verdict (pass `true` when verification is off).
    pub fn track(&mut self, now: u64, m: &PacketMeta, frame: &[u8], checksum_ok: bool) -> Track {
        self.track_hashed(now, m, frame, checksum_ok, None)
    }

    /// As [`Self::track`], with the packet's [`crate::flow::steer_hash`] if the caller has it
    /// (batching and owner steering compute it first); `None` computes it here.
    pub fn track_hashed(
        &mut self,
        now: u64,
        m: &PacketMeta,
        frame: &[u8],
        checksum_ok: bool,
        hash: Option<u64>,
    ) -> Track {
        self.pending = None;
        let t = self.track_inner(now, m, frame, checksum_ok, hash);
        if matches!(t, Track::Invalid(_)) {
            self.stats.invalid += 1;
        }
        t
    }

    fn track_inner(
        &mut self,
        now: u64,
        m: &PacketMeta,
        frame: &[u8],
        checksum_ok: bool,
        hint: Option<u64>,
    ) -> Track {
        if let Some(r) = m.l4_invalid {
            return Track::Invalid(r);
        }
        if m.family == IpFamily::V6 && m.proto == proto::IPV6_NONXT {
            // ipv6_skip_exthdr gives up at "no next header": no tuple, INVALID.
            return Track::Invalid(InvalidReason::NoL4Header);
        }
        let icmp = icmp::is_icmp(m.family, m.proto);
        if icmp {
            if let Some(t) = self.icmp_error(now, m, checksum_ok) {
                return t;
            }
        }
        if !checksum_ok && matches!(m.proto, proto::TCP | proto::UDP | proto::UDPLITE) {
            return Track::Invalid(InvalidReason::BadChecksum);
        }
        if m.proto == proto::TCP {
            if let Some(r) = tcp::error(m) {
                return Track::Invalid(r);
            }
        }
        let Some(key) = FlowKey::from_meta(m) else {
            return Track::Invalid(InvalidReason::IcmpUntrackable);
        };
        // ICMP errors returned above, so the steering hash is this key's own.
        let hash = hint.unwrap_or_else(|| key.symmetric_hash());
        debug_assert_eq!(hash, key.symmetric_hash());
        loop {
            let Some((id, dir)) = self.lookup(&key, hash, now) else {
                return self.track_new(now, m, frame, key, hash);
            };
            let e = self.table.get_mut(id);
            let watched = Watched::of(e);
            let state = if dir == Dir::Reply || e.has(status::SEEN_REPLY) {
                CtState::Established
            } else if e.has(status::EXPECTED) {
                CtState::Related
            } else {
                CtState::New
            };
            // The commonest TCP segment first (a confirmed entry's in-window ACK), else the
            // general tracker.
            let fast = if m.proto == proto::TCP {
                tcp::established_ack(e, dir, m, frame, now, &self.sysctls)
            } else {
                None
            };
            let v = match fast {
                Some(v) => v,
                None => update(e, dir, m, frame, now, &self.sysctls),
            };
            match v {
                TcpVerdict::Accept | TcpVerdict::Ignore => {
                    if dir == Dir::Reply {
                        e.set(status::SEEN_REPLY);
                    }
                    if let Some(log) = &mut self.events {
                        if Watched::of(e) != watched {
                            log.push(EventKind::Update, e);
                        }
                    }
                    return Track::Tracked { id, dir, state };
                }
                TcpVerdict::AcceptKill => {
                    self.remove(id);
                    return Track::Tracked { id, dir, state };
                }
                TcpVerdict::Invalid(r) => return Track::Invalid(r),
                TcpVerdict::Repeat => {
                    // Delete the closed connection and look up again: the SYN starts anew.
                    self.remove(id);
                }
            }
        }
    }

    /// A packet with no entry: build the (unconfirmed) entry, or say why there is none.
    fn track_new(
        &mut self,
        now: u64,
        m: &PacketMeta,
        frame: &[u8],
        key: FlowKey,
        hash: u64,
    ) -> Track {
        // As the kernel's init_conntrack: room first (early drop), then expectations, then
        // the protocol's own checks of the first packet.
        if self.table.is_full() {
            // Reap what has expired first, as the kernel's early_drop does in passing.
            self.expire(now, 64);
        }
        if self.table.is_full() && !self.early_drop(hash) {
            self.stats.table_full += 1;
            return Track::TableFull;
        }
        let t = self.sysctls;
        let mut e = Entry::new(key);
        let mut state = CtState::New;
        if !self.expect.is_empty() {
            if let Some(x) = self.expect.take(&key, now) {
                e.set(status::EXPECTED);
                // As init_conntrack: the new connection starts with its master's mark.
                e.mark = x.mark;
                state = CtState::Related;
            }
        }
        match m.proto {
            proto::TCP => {
                let seg = Segment::from_meta(m, frame);
                if let Err(r) = tcp::new_conn(&mut e, &seg, &t) {
                    return Track::Invalid(r);
                }
                if self.ftp_ports.contains(&m.dport) {
                    e.set(status::HELPER_FTP);
                }
            }
            1 | 58 if icmp::is_icmp(m.family, m.proto) && !icmp::valid_new(m.family, m.icmp.ty) => {
                // An answer with no query: the kernel cannot start a connection with it.
                return Track::Invalid(InvalidReason::IcmpUnsolicitedReply);
            }
            proto::UDP | proto::UDPLITE => e.set_udp_stream_ts(now + 2 * NS),
            _ => {}
        }
        match update(&mut e, Dir::Original, m, frame, now, &t) {
            TcpVerdict::Accept | TcpVerdict::Ignore | TcpVerdict::AcceptKill => {}
            TcpVerdict::Invalid(r) => return Track::Invalid(r),
            TcpVerdict::Repeat => return Track::Invalid(InvalidReason::TcpInvalidState),
        }
        self.pending = Some((e, hash));
        Track::New { state }
    }

    /// The FTP helper for an accepted packet of entry `id` in direction `dir` (called only
    /// for entries with a helper, once the connection has seen a reply, as the kernel's
    /// helper runs only on ESTABLISHED packets).
    pub fn help(
        &mut self,
        id: u32,
        dir: Dir,
        m: &PacketMeta,
        frame: &[u8],
        now: u64,
    ) -> HelperVerdict {
        let payload = m.payload(frame);
        if payload.is_empty() || m.proto != proto::TCP {
            return HelperVerdict::Accept;
        }
        let key = self.table.get(id).key;
        let slot = match self
            .ftp_conns
            .iter()
            .position(|c| c.id == id && c.key == key)
        {
            Some(i) => i,
            None => {
                // Reuse a slot whose connection is gone, else take a new one if there is room.
                let table = &self.table;
                let stale = self.ftp_conns.iter().position(|c| {
                    let e = table.get(c.id);
                    !e.has(status::IN_USE) || e.key != c.key
                });
                let fresh = FtpConn {
                    id,
                    key,
                    nl: NlSeq::default(),
                };
                match stale {
                    Some(i) => {
                        self.ftp_conns[i] = fresh;
                        i
                    }
                    None if self.ftp_conns.len() < FTP_CONNS_MAX => {
                        self.ftp_conns.push(fresh);
                        self.ftp_conns.len() - 1
                    }
                    None => return HelperVerdict::Accept,
                }
            }
        };
        let seq = m.tcp.seq;
        let ends_in_nl = payload.last() == Some(&b'\n');
        let nl_seq = seq.wrapping_add(payload.len() as u32);
        let mut verdict = HelperVerdict::Accept;
        if self.ftp_conns[slot].nl.parses(dir, seq) {
            // This direction's tuple: who sent the command.
            let tuple = if dir == Dir::Original {
                key
            } else {
                key.reverse()
            };
            match ftp::search(payload, dir, m.family, tuple.src) {
                Found::Partial => {
                    self.stats.helper_drops += 1;
                    return HelperVerdict::Drop;
                }
                Found::NoMatch => {}
                Found::Match(a) if a.addr != tuple.src => {
                    // The command names another host: not recorded (the helper's loose=0).
                }
                Found::Match(a) => {
                    // The data connection comes the other way: the reverse tuple's addresses.
                    let other = tuple.reverse();
                    let exp = Expectation {
                        family: m.family,
                        src: other.src,
                        dst: other.dst,
                        proto: 6,
                        dport: a.port,
                        expires: now + FTP_EXPECT_TIMEOUT_NS,
                        master: key,
                        mark: self.table.get(id).mark,
                    };
                    if self.expect.add(exp, now).is_ok() {
                        self.stats.expectations_created += 1;
                    } else {
                        self.stats.helper_drops += 1;
                        verdict = HelperVerdict::Drop;
                    }
                }
            }
        }
        if ends_in_nl {
            self.ftp_conns[slot].nl.update(dir, nl_seq);
        }
        verdict
    }

    /// Make room for a new flow by evicting a non-ASSURED (or closing TCP) entry near its
    /// hash slot; `false` when there is none (the kernel's "table full, dropping packet").
    fn early_drop(&mut self, hash: u64) -> bool {
        let cand = self.table.early_drop_candidate(hash, |e| {
            e.key.proto == proto::TCP && tcp::can_early_drop(&e.tcp)
        });
        match cand {
            Some(id) => {
                self.remove(id);
                self.stats.early_drops += 1;
                true
            }
            None => false,
        }
    }

    /// Insert the pending entry of the last `Track::New` (its packet was accepted).
    /// Returns the entry id.
    pub fn confirm(&mut self) -> Option<u32> {
        let (e, hash) = self.pending.take()?;
        let id = self.table.insert(e, hash)?;
        self.stats.inserted += 1;
        if let Some(log) = &mut self.events {
            log.push(EventKind::New, self.table.get_mut(id));
        }
        Some(id)
    }

    /// Forget the pending entry (its packet was dropped).
    pub fn discard(&mut self) {
        self.pending = None;
    }

    /// The unconfirmed entry, e.g. to cache its first verdict before confirming.
    pub fn pending_mut(&mut self) -> Option<&mut Entry> {
        self.pending.as_mut().map(|(e, _)| e)
    }

    /// ICMP/ICMPv6 errors and untracked types (`icmp_error` / `icmpv6_error`): `Some` when
    /// the packet is settled here, `None` to continue with the normal path (queries).
    fn icmp_error(&mut self, now: u64, m: &PacketMeta, checksum_ok: bool) -> Option<Track> {
        if !checksum_ok {
            return Some(Track::Invalid(InvalidReason::BadChecksum));
        }
        let ty = m.icmp.ty;
        let is_error = match m.family {
            IpFamily::V4 => {
                // NR_ICMP_TYPES is 18: anything above is invalid.
                if ty > 18 {
                    return Some(Track::Invalid(InvalidReason::IcmpUntrackable));
                }
                icmp::is_error(m.family, ty)
            }
            IpFamily::V6 => {
                // Neighbour discovery and MLD are left untracked.
                if matches!(ty, 130..=136 | 143) {
                    return Some(Track::Untracked);
                }
                icmp::is_error(m.family, ty)
            }
        };
        if !is_error {
            return None;
        }
        let Some(inner) = m.inner else {
            return Some(Track::Invalid(InvalidReason::IcmpBadInner));
        };
        // The quoted packet's tuple, inverted: the error travels against it.
        let quoted = if icmp::is_icmp(m.family, inner.proto) {
            if icmp::inverse(m.family, inner.icmp_type).is_none() {
                return Some(Track::Invalid(InvalidReason::IcmpNoFlow));
            }
            FlowKey::new(
                m.family,
                inner.src,
                inner.dst,
                inner.proto,
                inner.icmp_id,
                u16::from(inner.icmp_type) << 8 | u16::from(inner.icmp_code),
            )
        } else {
            FlowKey::new(
                m.family,
                inner.src,
                inner.dst,
                inner.proto,
                inner.sport,
                inner.dport,
            )
        };
        let hash = quoted.symmetric_hash();
        let Some((id, quoted_dir)) = self.lookup(&quoted, hash, now) else {
            return Some(Track::Invalid(InvalidReason::IcmpNoFlow));
        };
        // The error goes to the quoted packet's sender.
        if m.dst != inner.src {
            return Some(Track::Invalid(InvalidReason::IcmpNoFlow));
        }
        Some(Track::Related {
            id,
            dir: quoted_dir.other(),
        })
    }

    /// A copy of the entries, for listings.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.entries().copied().collect()
    }
}

/// What the sweep tells the sync peer of an entry it walks: the destroy of an expired one,
/// the refresh of a live one whose expiry moved a refresh period later since it was sent.
#[inline]
fn sweep_event(log: &mut EventLog, e: &mut Entry, gone: bool) {
    if gone {
        log.record(EventKind::Destroy, e);
    } else if log.refresh_due(e) {
        log.push(EventKind::Update, e);
    }
}

/// The protocol tracker's per-packet update of an entry (new or confirmed).
fn update(
    e: &mut Entry,
    dir: Dir,
    m: &PacketMeta,
    frame: &[u8],
    now: u64,
    t: &Sysctls,
) -> TcpVerdict {
    match m.proto {
        proto::TCP => tcp::packet(e, dir, &Segment::from_meta(m, frame), now, t),
        proto::UDP | proto::UDPLITE => {
            // nf_conntrack_udp_packet: replied flows still active after 2 s are streams.
            // SEEN_REPLY is set after this update, so the first reply still counts as
            // unreplied, as in the kernel.
            if e.has(status::SEEN_REPLY) {
                let mut extra = t.udp;
                let mut stream = false;
                if now > e.udp_stream_ts() {
                    extra = t.udp_stream;
                    stream = !e.has(status::ASSURED);
                }
                e.expires = now + extra;
                if stream {
                    e.set(status::ASSURED);
                }
            } else {
                e.expires = now + t.udp;
            }
            TcpVerdict::Accept
        }
        1 if m.family == IpFamily::V4 => {
            e.expires = now + t.icmp;
            TcpVerdict::Accept
        }
        58 if m.family == IpFamily::V6 => {
            e.expires = now + t.icmpv6;
            TcpVerdict::Accept
        }
        _ => {
            e.expires = now + t.generic;
            TcpVerdict::Accept
        }
    }
}
