//! Connection tracking: one [`Shard`] per worker, sharing nothing.
//!
//! `Shard::track` mirrors the kernel's `nf_conntrack_in`: ICMP errors first, then tuple,
//! lookup (or a new, *unconfirmed* entry), the per-packet state (`ctinfo`), the protocol
//! tracker, and SEEN_REPLY. A new entry joins the table only when `confirm` is called, which
//! the pipeline does once the forward stage accepted the packet, as the kernel confirms at
//! the end of the hook chain: a dropped NEW packet leaves no state.

pub mod entry;
pub mod listing;
pub mod table;
pub mod tcp;
pub mod timeouts;

use config::matches::{CtDir, CtState};

use crate::flow::{icmp_inverse, icmp_valid_new, is_icmp, FlowKey};
use crate::packet::{IpFamily, PacketMeta};
use crate::reason::InvalidReason;

use entry::{status, Dir, Entry};
use table::Table;
use tcp::{Segment, TcpVerdict};
pub use timeouts::Timeouts;

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

/// Counters a shard keeps (read by the stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub inserted: u64,
    pub expired: u64,
    pub early_drops: u64,
    pub table_full: u64,
    pub invalid: u64,
}

/// One worker's share of the connection table.
#[derive(Debug)]
pub struct Shard {
    table: Table,
    timeouts: Timeouts,
    ftp_ports: Vec<u16>,
    /// The unconfirmed entry of the last `Track::New`, and its hash.
    pending: Option<(Entry, u64)>,
    pub stats: ShardStats,
}

impl Shard {
    /// A shard of `capacity` entries, all allocated now.
    pub fn new(capacity: usize, timeouts: Timeouts, ftp_ports: &[u16]) -> Shard {
        Shard {
            table: Table::new(capacity),
            timeouts,
            ftp_ports: ftp_ports.to_vec(),
            pending: None,
            stats: ShardStats::default(),
        }
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// New settings apply to later packets (existing timers keep running, as in the kernel).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
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

    /// Expire at most `budget` entries' worth of the table (one step of the batched sweep).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = self.table.expire(now, budget);
        self.stats.expired += n as u64;
        n
    }

    /// Remove every entry.
    pub fn flush(&mut self) {
        let ids: Vec<u32> = self.table.ids().collect();
        for id in ids {
            self.table.remove(id);
        }
    }

    /// Find a live entry; an expired one is removed and not returned (the kernel's lookup
    /// skips and reaps expired entries).
    #[inline]
    fn lookup(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<(u32, Dir)> {
        let (id, dir) = self.table.find(key, hash)?;
        if self.table.get(id).expires <= now {
            self.table.remove(id);
            self.stats.expired += 1;
            return None;
        }
        Some((id, dir))
    }

    /// Track one parsed IP packet at time `now` (ns). `checksum_ok` is the L4 checksum
    /// verdict (pass `true` when verification is off). `hash` is the flow key's symmetric
    /// hash when the caller already computed it (batching), else `None`.
    pub fn track(&mut self, now: u64, m: &PacketMeta, frame: &[u8], checksum_ok: bool) -> Track {
        self.pending = None;
        let t = self.track_inner(now, m, frame, checksum_ok);
        if matches!(t, Track::Invalid(_)) {
            self.stats.invalid += 1;
        }
        t
    }

    fn track_inner(&mut self, now: u64, m: &PacketMeta, frame: &[u8], checksum_ok: bool) -> Track {
        if let Some(r) = m.l4_invalid {
            return Track::Invalid(r);
        }
        let icmp = is_icmp(m.family, m.proto);
        if icmp {
            if let Some(t) = self.icmp_error(now, m, checksum_ok) {
                return t;
            }
        }
        if !checksum_ok && matches!(m.proto, 6 | 17 | 136) {
            return Track::Invalid(InvalidReason::BadChecksum);
        }
        if m.proto == 6 {
            if let Some(r) = tcp::error(m) {
                return Track::Invalid(r);
            }
        }
        let Some(key) = FlowKey::from_meta(m) else {
            return Track::Invalid(InvalidReason::IcmpUntrackable);
        };
        let hash = key.symmetric_hash();
        loop {
            let Some((id, dir)) = self.lookup(&key, hash, now) else {
                return self.track_new(now, m, frame, key, hash);
            };
            let e = self.table.get_mut(id);
            let state = if dir == Dir::Reply || e.has(status::SEEN_REPLY) {
                CtState::Established
            } else if e.has(status::EXPECTED) {
                CtState::Related
            } else {
                CtState::New
            };
            match update(e, dir, m, frame, now, &self.timeouts) {
                TcpVerdict::Accept | TcpVerdict::Ignore => {
                    if dir == Dir::Reply {
                        e.set(status::SEEN_REPLY);
                    }
                    return Track::Tracked { id, dir, state };
                }
                TcpVerdict::AcceptKill => {
                    self.table.remove(id);
                    return Track::Tracked { id, dir, state };
                }
                TcpVerdict::Invalid(r) => return Track::Invalid(r),
                TcpVerdict::Repeat => {
                    // Delete the closed connection and look up again: the SYN starts anew.
                    self.table.remove(id);
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
        let t = self.timeouts;
        let mut e = Entry {
            key,
            ..Entry::default()
        };
        match m.proto {
            6 => {
                let seg = Segment::from_meta(m, frame);
                if let Err(r) = tcp::new_conn(&mut e, &seg, &t) {
                    return Track::Invalid(r);
                }
                if self.ftp_ports.contains(&m.dport) {
                    e.set(status::HELPER_FTP);
                }
            }
            1 | 58 if is_icmp(m.family, m.proto) => {
                if !icmp_valid_new(m.family, m.icmp.ty) {
                    // An answer with no query: the kernel cannot start a connection with it.
                    return Track::Invalid(InvalidReason::IcmpUnsolicitedReply);
                }
            }
            17 | 136 => e.set_udp_stream_ts(now + 2 * NS),
            _ => {}
        }
        if self.table.is_full() {
            // Reap what has expired first, as the kernel's early_drop does in passing.
            self.expire(now, 64);
        }
        if self.table.is_full() && !self.early_drop(hash) {
            self.stats.table_full += 1;
            return Track::TableFull;
        }
        match update(&mut e, Dir::Original, m, frame, now, &t) {
            TcpVerdict::Accept | TcpVerdict::Ignore => {}
            // A new entry cannot be killed, repeated or made invalid by a SYN or a pickup,
            // but follow the tracker if it says so.
            TcpVerdict::AcceptKill => {
                return Track::New {
                    state: CtState::New,
                }
            }
            TcpVerdict::Invalid(r) => return Track::Invalid(r),
            TcpVerdict::Repeat => return Track::Invalid(InvalidReason::TcpInvalidState),
        }
        self.pending = Some((e, hash));
        Track::New {
            state: CtState::New,
        }
    }

    /// Make room for a new flow by evicting a non-ASSURED (or closing TCP) entry near its
    /// hash slot; `false` when there is none (the kernel's "table full, dropping packet").
    fn early_drop(&mut self, hash: u64) -> bool {
        let cand = self
            .table
            .early_drop_candidate(hash, |e| e.key.proto == 6 && tcp::can_early_drop(&e.tcp));
        match cand {
            Some(id) => {
                self.table.remove(id);
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
                matches!(ty, 3 | 4 | 5 | 11 | 12)
            }
            IpFamily::V6 => {
                // Neighbour discovery and MLD are left untracked.
                if matches!(ty, 130..=136 | 143) {
                    return Some(Track::Untracked);
                }
                ty < 128
            }
        };
        if !is_error {
            return None;
        }
        let Some(inner) = m.inner else {
            return Some(Track::Invalid(InvalidReason::IcmpBadInner));
        };
        // The quoted packet's tuple, inverted: the error travels against it.
        let quoted = if is_icmp(m.family, inner.proto) {
            if icmp_inverse(m.family, inner.icmp_type).is_none() {
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

/// The protocol tracker's per-packet update of an entry (new or confirmed).
fn update(
    e: &mut Entry,
    dir: Dir,
    m: &PacketMeta,
    frame: &[u8],
    now: u64,
    t: &Timeouts,
) -> TcpVerdict {
    match m.proto {
        6 => tcp::packet(e, dir, &Segment::from_meta(m, frame), now, t),
        17 | 136 => {
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
