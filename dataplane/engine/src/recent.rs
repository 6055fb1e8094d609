//! The lists of `recent` matches (iptables' `-m recent`, the kernel's xt_recent), shared by
//! every worker as the kernel shares them between CPUs.
//!
//! A list holds at most [`LIST_MAX`] addresses, each with its family and its latest
//! [`STAMPS`] times (a ring: enough for the largest `hitcount`, and times are recorded in
//! order, so counting the ones within `seconds` gives what the kernel's count gives). A new
//! address on a full list replaces the one least recently set or updated (xt_recent's LRU
//! list: an `rcheck` is no use). `reap` removes the least recently used address when its
//! newest time is older than `seconds` (unless it is the one being updated), as
//! `recent_entry_reap` does. Lists are kept by name across ruleset reloads
//! ([`Lists::carry`]), as the kernel keeps a table while rules that name it are replaced.
//!
//! Each list sits behind a mutex, as the kernel's behind its `recent_lock`: held for one
//! lookup of at most [`LIST_MAX`] fixed slots, taken only by packets that reach a `recent`
//! rule (whose other matches held; usually new connections). Uncontended it is one atomic
//! operation each way and never a system call. Slots are allocated when the list is made,
//! never on the packet path.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use config::recent::{Recent, RecentCommand, RecentSide, LIST_MAX, MAX_HITCOUNT};

use crate::packet::{IpFamily, PacketMeta};

/// Times kept per address: at least the largest `hitcount`.
pub const STAMPS: usize = MAX_HITCOUNT as usize + 1;

#[derive(Debug, Clone, Copy)]
struct Slot {
    used: bool,
    family: IpFamily,
    addr: u128,
    /// Times (engine ns), a ring of `STAMPS`; `index` is where the next goes.
    stamps: [u64; STAMPS],
    nstamps: u16,
    index: u16,
    /// When it was last set or updated, in uses of the list (the LRU order).
    last_use: u64,
}

const EMPTY: Slot = Slot {
    used: false,
    family: IpFamily::V4,
    addr: 0,
    stamps: [0; STAMPS],
    nstamps: 0,
    index: 0,
    last_use: 0,
};

#[derive(Debug)]
struct Table {
    slots: Box<[Slot]>,
    uses: u64,
}

impl Table {
    fn find(&self, family: IpFamily, addr: u128) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.used && s.family == family && s.addr == addr)
    }

    /// Record a time for slot `i` and make it the most recently used (recent_entry_update).
    fn stamp(&mut self, i: usize, now: u64) {
        self.uses += 1;
        let uses = self.uses;
        if let Some(s) = self.slots.get_mut(i) {
            let at = usize::from(s.index) % STAMPS;
            if let Some(t) = s.stamps.get_mut(at) {
                *t = now;
            }
            s.index = (at + 1) as u16;
            s.nstamps = s.nstamps.max(s.index);
            s.last_use = uses;
        }
    }

    /// `reap`: remove the least recently used address when its newest time is before
    /// `since`, unless it is slot `working` and that is about to be updated.
    fn reap(&mut self, since: u64, working: usize, update: bool) {
        let lru = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used)
            .min_by_key(|(_, s)| s.last_use)
            .map(|(i, _)| i);
        let Some(i) = lru.filter(|&i| !(i == working && update)) else {
            return;
        };
        if let Some(s) = self.slots.get_mut(i) {
            let newest = usize::from(s.index).wrapping_sub(1) % STAMPS;
            if s.stamps.get(newest).is_some_and(|&at| at < since) {
                *s = EMPTY;
            }
        }
    }

    /// A new address with one time (recent_entry_init), in a free slot or that of the
    /// least recently used.
    fn insert(&mut self, family: IpFamily, addr: u128, now: u64) {
        let free = self.slots.iter().position(|s| !s.used);
        let lru = || {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.used)
                .min_by_key(|(_, s)| s.last_use)
                .map(|(i, _)| i)
        };
        let Some(i) = free.or_else(lru) else { return };
        if let Some(s) = self.slots.get_mut(i) {
            *s = Slot {
                used: true,
                family,
                addr,
                ..EMPTY
            };
        }
        self.stamp(i, now);
    }
}

/// One named list.
#[derive(Debug)]
pub struct List(Mutex<Table>);

impl List {
    fn new() -> List {
        List(Mutex::new(Table {
            slots: vec![EMPTY; LIST_MAX].into_boxed_slice(),
            uses: 0,
        }))
    }
}

/// A rule's `recent` match, ready to run.
#[derive(Debug)]
pub struct RecentMatch {
    cmd: RecentCommand,
    list: Arc<List>,
    /// Nanoseconds; 0: any time counts.
    window: u64,
    hitcount: u32,
    reap: bool,
    dest: bool,
    /// The mask per family (all ones unless `mask` gives the rule's family's).
    mask4: u128,
    mask6: u128,
    not: bool,
}

fn mask_of(mask: Option<IpAddr>) -> (u128, u128) {
    match mask {
        Some(IpAddr::V4(m)) => (u128::from(u32::from(m)), u128::MAX),
        Some(IpAddr::V6(m)) => (u128::from(u32::MAX), u128::from(m)),
        None => (u128::from(u32::MAX), u128::MAX),
    }
}

impl RecentMatch {
    /// Whether the match holds for packet `m` at `now`, doing what its command does to the
    /// list (xt_recent's `recent_mt`).
    pub fn matches(&self, m: &PacketMeta, now: u64) -> bool {
        let addr = if self.dest { m.dst } else { m.src };
        let mask = match m.family {
            IpFamily::V4 => self.mask4,
            IpFamily::V6 => self.mask6,
        };
        let addr = match m.family {
            IpFamily::V4 => {
                u128::from(u32::from_be_bytes([addr[12], addr[13], addr[14], addr[15]]))
            }
            IpFamily::V6 => u128::from_be_bytes(addr),
        } & mask;
        let mut t = self.list.0.lock().unwrap_or_else(PoisonError::into_inner);
        let found = t.find(m.family, addr);
        let hit = match (found, self.cmd) {
            (None, RecentCommand::Set) => {
                t.insert(m.family, addr, now);
                true
            }
            (None, _) => false,
            (Some(i), RecentCommand::Set) => {
                t.stamp(i, now);
                true
            }
            (Some(i), RecentCommand::Remove) => {
                if let Some(s) = t.slots.get_mut(i) {
                    *s = EMPTY;
                }
                true
            }
            (Some(i), RecentCommand::Rcheck | RecentCommand::Update) => {
                let since = now.saturating_sub(self.window);
                let counted = t.slots.get(i).map_or(0, |s| {
                    let n = usize::from(s.nstamps).min(STAMPS);
                    s.stamps[..n]
                        .iter()
                        .filter(|&&at| self.window == 0 || at >= since)
                        .count()
                });
                let hit = counted >= self.hitcount.max(1) as usize;
                let update = hit && self.cmd == RecentCommand::Update;
                if self.reap {
                    t.reap(since, i, update);
                }
                if update {
                    if let Some(i) = t.find(m.family, addr) {
                        t.stamp(i, now);
                    }
                }
                hit
            }
        };
        hit != self.not
    }
}

/// Every list of a ruleset, by name.
#[derive(Debug, Default)]
pub struct Lists(BTreeMap<String, Arc<List>>);

impl Lists {
    /// The lists of `previous` whose names are still used keep their addresses.
    pub fn carry(previous: Option<&Lists>) -> Lists {
        Lists(previous.map(|p| p.0.clone()).unwrap_or_default())
    }

    /// A rule's match, its list made (or found) here.
    pub fn compile(&mut self, r: &Recent) -> Option<RecentMatch> {
        let (cmd, name) = r.command()?;
        let list = Arc::clone(
            self.0
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(List::new())),
        );
        let (mask4, mask6) = mask_of(r.mask);
        Some(RecentMatch {
            cmd,
            list,
            window: u64::from(r.seconds.unwrap_or(0)) * 1_000_000_000,
            hitcount: r.hitcount.unwrap_or(0),
            reap: r.reap,
            dest: r.side == RecentSide::Destination,
            mask4,
            mask6,
            not: r.not,
        })
    }

    /// Forget the lists no rule names any more.
    pub fn keep_only(&mut self, used: &[&str]) {
        self.0.retain(|name, _| used.contains(&name.as_str()));
    }
}
