//! The connection table of one shard: a slab of entries allocated (and touched) up front,
//! and an open-addressing index keyed by the symmetric flow hash.
//!
//! Index slots are `u64`: the hash's low 32 bits as a tag, and the entry id + 1 (0 is
//! empty). The tag holds the slot's home position (the low bits of the hash), so deletion
//! shifts later members of the cluster back (no tombstones) without reading their entries,
//! and lookups never degrade with churn. Linear probing at a load of at most 1/2. Nothing
//! here allocates after `new`; both arrays ask for transparent huge pages (a large table is
//! touched at random, and with 4 KiB pages nearly every lookup would also miss the TLB).
//!
//! The slab is any memory that derefs to `[Slot]` ([`SlabMemory`]): a `Vec` here, in tests,
//! benches and `replay`; a shared file mapping in the daemon, so that the entries outlive the
//! process (`--state`, see `crate::state`). The index and the free list are rebuilt from the
//! slab when a table is restored ([`Table::adopt`]).

use std::ops::DerefMut;

use crate::flow::FlowKey;
use crate::hints::{advise_huge, prefetch_line};

use super::entry::{status, Dir, Entry};

/// Entries examined for an early drop (`NF_CT_EVICTION_RANGE`).
pub const EVICTION_RANGE: usize = 8;

/// An entry on its own pair of cache lines (entries are 128 bytes; unaligned, one in two
/// would straddle three lines). The unit of the slab, and of the state file's entry region.
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
#[repr(C, align(64))]
pub struct Slot(pub Entry);

const _: () = assert!(std::mem::size_of::<Slot>() == 128);

/// Memory a table keeps its entries in: every slot must hold a valid value (a fresh slab is
/// all `Slot::default()`, which is a free slot).
pub trait SlabMemory: DerefMut<Target = [Slot]> + Send + std::fmt::Debug {}

impl<M: DerefMut<Target = [Slot]> + Send + std::fmt::Debug> SlabMemory for M {}

/// The slab of tables that live only in the process.
pub type HeapSlab = Vec<Slot>;

/// How long [`Table::sweep`] takes to walk the whole slab once: the most an entry outlives
/// its timeout before the sweep removes it (the kernel's gc worker rescans its table every
/// few seconds at most when entries expire).
pub const SWEEP_PERIOD_NS: u64 = 1_000_000_000;

#[derive(Debug)]
pub struct Table<M: SlabMemory = HeapSlab> {
    entries: M,
    free: Vec<u32>,
    index: Vec<u64>,
    mask: usize,
    live: usize,
    /// Sweep position in `entries` for batched expiry.
    cursor: usize,
    /// Engine time up to which [`Table::sweep`] has paid for (0: not started).
    swept_at: u64,
}

const TAG: u64 = 0xffff_ffff_0000_0000;

/// The slot tag of a hash: its low 32 bits (home position included), in the high half.
#[inline]
fn tag(hash: u64) -> u64 {
    hash << 32
}

/// The hash bits a slot keeps (enough to find its home in a table of up to 2^32 slots).
#[inline]
fn slot_hash(slot: u64) -> usize {
    (slot >> 32) as usize
}

/// A heap slab of `capacity` free slots, every byte written now (so no page faults later:
/// `vec![0; n]` would map untouched zero pages).
pub fn heap_slab(capacity: usize) -> HeapSlab {
    let mut entries = Vec::with_capacity(capacity.max(1));
    advise_huge(&entries);
    entries.resize(capacity.max(1), Slot::default());
    entries
}

impl Table {
    /// A table for `capacity` entries; all memory is allocated and written now, so the
    /// packet path never page-faults on first touch.
    pub fn new(capacity: usize) -> Table {
        Table::with_slab(heap_slab(capacity))
    }
}

impl<M: SlabMemory> Table<M> {
    /// An empty table over `entries` (at least one slot), whose every slot is made free.
    pub fn with_slab(mut entries: M) -> Table<M> {
        assert!(!entries.is_empty(), "a table needs at least one slot");
        assert!(
            u32::try_from(entries.len()).is_ok_and(|n| n < u32::MAX),
            "at most 2^32 - 2 entries"
        );
        for s in entries.iter_mut() {
            s.0.status = 0;
        }
        let capacity = entries.len();
        let slots = (capacity * 2).next_power_of_two().max(16);
        let mut index = Vec::with_capacity(slots);
        advise_huge(&index);
        index.resize(slots, 0);
        // Free ids popped from the end: hand out low ids first.
        let free = (0..capacity as u32).rev().collect();
        Table {
            entries,
            free,
            index,
            mask: slots - 1,
            live: 0,
            cursor: 0,
            swept_at: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    #[inline]
    pub fn get(&self, id: u32) -> &Entry {
        &self.entries[id as usize].0
    }

    #[inline]
    pub fn get_mut(&mut self, id: u32) -> &mut Entry {
        &mut self.entries[id as usize].0
    }

    /// Start fetching what a lookup of `hash` will read: the home index slot, and the entry
    /// of the first slot of its cluster whose tag matches (both cache lines of it). Batch
    /// lookups call this for every packet first: the slot loads of a batch then overlap,
    /// and the entries arrive while earlier packets are processed. On a miss, the next
    /// free entry is fetched instead (an insertion will write it).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let t = tag(hash);
        let mut pos = hash as usize & self.mask;
        for _ in 0..4 {
            let slot = self.index[pos];
            if slot == 0 {
                break;
            }
            if slot & TAG == t {
                let id = (slot as u32).wrapping_sub(1) as usize;
                self.prefetch_entry(id);
                return;
            }
            pos = (pos + 1) & self.mask;
        }
        if let Some(&id) = self.free.last() {
            self.prefetch_entry(id as usize);
        }
    }

    #[inline(always)]
    fn prefetch_entry(&self, id: usize) {
        if let Some(e) = self.entries.get(id) {
            let p = std::ptr::from_ref(e).cast::<u8>();
            prefetch_line(p);
            prefetch_line(p.wrapping_add(64));
        }
    }

    /// Find the entry for `key` (either direction); `hash` is `key.symmetric_hash()`.
    #[inline(always)]
    pub fn find(&self, key: &FlowKey, hash: u64) -> Option<(u32, Dir)> {
        let t = tag(hash);
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.index[pos];
            if slot == 0 {
                return None;
            }
            if slot & TAG == t {
                let id = (slot as u32).wrapping_sub(1);
                let e = &self.entries[id as usize].0;
                if e.key == *key {
                    return Some((id, Dir::Original));
                }
                if e.key.is_reverse_of(key) {
                    return Some((id, Dir::Reply));
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Insert an entry (its key must not be present); `None` when the slab is full.
    pub fn insert(&mut self, mut entry: Entry, hash: u64) -> Option<u32> {
        let id = self.free.pop()?;
        entry.status |= status::IN_USE;
        self.entries[id as usize] = Slot(entry);
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = tag(hash) | u64::from(id + 1);
        self.live += 1;
        Some(id)
    }

    /// Remove entry `id` (present in the table).
    pub fn remove(&mut self, id: u32) {
        let hash = self.entries[id as usize].0.key.symmetric_hash();
        self.remove_hashed(id, hash);
    }

    /// Remove entry `id`, whose key's symmetric hash is `hash`.
    fn remove_hashed(&mut self, id: u32, hash: u64) {
        let want = tag(hash) | u64::from(id + 1);
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != want {
            if self.index[pos] == 0 {
                debug_assert!(false, "entry {id} missing from the index");
                return;
            }
            pos = (pos + 1) & self.mask;
        }
        // Backward-shift deletion: move later cluster members whose home is at or before
        // the hole into it.
        let mut hole = pos;
        let mut next = (hole + 1) & self.mask;
        loop {
            let slot = self.index[next];
            if slot == 0 {
                break;
            }
            let home = slot_hash(slot) & self.mask;
            // Distance from home to next vs from home to hole (cyclic).
            if (next.wrapping_sub(home) & self.mask) >= (next.wrapping_sub(hole) & self.mask) {
                self.index[hole] = slot;
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        self.index[hole] = 0;
        self.entries[id as usize].0.status = 0;
        self.free.push(id);
        self.live -= 1;
    }

    /// The timeout sweep, paced by the clock: each call walks the slots due since the last
    /// one, so the whole slab is walked once per [`SWEEP_PERIOD_NS`] however often it is
    /// called (a worker calls it after every batch, idle or not), at most `max` slots a call.
    /// Returns how many entries were removed. An entry outlives its timeout by at most about
    /// one period; a lookup reaps an expired entry it meets sooner.
    /// `visit` sees each entry walked: `(entry, true)` before an expired one is removed,
    /// `(entry, false)` for a live one.
    pub fn sweep(&mut self, now: u64, max: usize, visit: impl FnMut(&mut Entry, bool)) -> usize {
        if self.swept_at == 0 || now < self.swept_at {
            self.swept_at = now.max(1);
            return 0;
        }
        if self.live == 0 {
            // Nothing to expire: an idle gateway does not walk its empty slab.
            self.swept_at = now;
            return 0;
        }
        let n = self.entries.len() as u128;
        let due = n * u128::from(now - self.swept_at) / u128::from(SWEEP_PERIOD_NS);
        if due == 0 {
            return 0;
        }
        let slots = due.min(max as u128);
        self.swept_at = if slots == due {
            now
        } else {
            self.swept_at + (slots * u128::from(SWEEP_PERIOD_NS) / n) as u64
        };
        self.expire(now, slots as usize, visit)
    }

    /// Expire at most `budget` slots' worth of entries whose time has come; returns how many
    /// were removed. Successive calls walk the whole slab round-robin.
    /// `visit` sees each entry walked: `(entry, true)` before an expired one is removed,
    /// `(entry, false)` for a live one.
    pub fn expire(
        &mut self,
        now: u64,
        budget: usize,
        mut visit: impl FnMut(&mut Entry, bool),
    ) -> usize {
        // In groups: find the expired entries of the next slots and start fetching their
        // index slots, then remove them in the same order (the slab scan is sequential; the
        // index slots are random, and one at a time each would wait out a cache miss).
        const GROUP: usize = 16;
        let n = self.entries.len();
        let mut removed = 0;
        let mut left = budget.min(n);
        let mut found = [(0u32, 0u64); GROUP];
        while left > 0 {
            let g = left.min(GROUP);
            let mut k = 0;
            for _ in 0..g {
                let id = self.cursor;
                self.cursor = if self.cursor + 1 == n {
                    0
                } else {
                    self.cursor + 1
                };
                let e = &mut self.entries[id].0;
                if e.status & status::IN_USE == 0 {
                    continue;
                }
                if e.expires <= now {
                    let hash = e.key.symmetric_hash();
                    prefetch_line(
                        std::ptr::from_ref(&self.index[hash as usize & self.mask]).cast(),
                    );
                    found[k] = (id as u32, hash);
                    k += 1;
                } else {
                    visit(e, false);
                }
            }
            for &(id, hash) in &found[..k] {
                visit(&mut self.entries[id as usize].0, true);
                self.remove_hashed(id, hash);
            }
            removed += k;
            left -= g;
        }
        removed
    }

    /// An entry to evict for a new flow near `hash` (the kernel's `early_drop`): the first
    /// entry within [`EVICTION_RANGE`] index slots that is not ASSURED, or that `closing`
    /// says may go (TCP in a closing state).
    pub fn early_drop_candidate(&self, hash: u64, closing: impl Fn(&Entry) -> bool) -> Option<u32> {
        let mut pos = hash as usize & self.mask;
        let mut seen = 0;
        let mut probes = 0;
        while seen < EVICTION_RANGE && probes < self.index.len() {
            let slot = self.index[pos];
            probes += 1;
            pos = (pos + 1) & self.mask;
            if slot == 0 {
                continue;
            }
            seen += 1;
            let id = (slot as u32).wrapping_sub(1);
            let e = &self.entries[id as usize].0;
            if !e.has(status::ASSURED) || closing(e) {
                return Some(id);
            }
        }
        None
    }

    /// Ids of live entries, in slab order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.0.status & status::IN_USE != 0)
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{v4_mapped, IpFamily};

    fn key(i: u32) -> FlowKey {
        let b = i.to_be_bytes();
        FlowKey::new(
            IpFamily::V4,
            v4_mapped(b),
            v4_mapped([10, 0, 0, 1]),
            17,
            1000,
            53,
        )
    }

    fn entry(k: FlowKey, expires: u64) -> Entry {
        let mut e = Entry::new(k);
        e.expires = expires;
        e
    }

    #[test]
    fn insert_find_remove_under_churn() {
        let mut t = Table::new(1000);
        let mut ids = Vec::new();
        for i in 0..1000 {
            let k = key(i);
            ids.push(t.insert(entry(k, 10), k.symmetric_hash()).unwrap());
        }
        assert!(t.is_full());
        assert!(t
            .insert(entry(key(5000), 1), key(5000).symmetric_hash())
            .is_none());
        for i in (0..1000).step_by(3) {
            t.remove(ids[i as usize]);
        }
        for i in 0..1000u32 {
            let k = key(i);
            let found = t.find(&k, k.symmetric_hash());
            assert_eq!(found.is_some(), i % 3 != 0, "key {i}");
            if let Some((_, dir)) = found {
                assert_eq!(dir, Dir::Original);
                assert_eq!(
                    t.find(&k.reverse(), k.symmetric_hash()).unwrap().1,
                    Dir::Reply
                );
            }
        }
        assert_eq!(t.len(), 666);
    }

    #[test]
    fn expiry_is_bounded_per_call() {
        let mut t = Table::new(100);
        for i in 0..100 {
            let k = key(i);
            t.insert(
                entry(k, if i % 2 == 0 { 0 } else { 100 }),
                k.symmetric_hash(),
            );
        }
        // Ten slots per call: five of them expired.
        assert_eq!(t.expire(1, 10, |_, _| {}), 5);
        let mut calls = 1;
        while t.len() > 50 {
            assert!(t.expire(1, 10, |_, _| {}) <= 10);
            calls += 1;
        }
        assert_eq!(calls, 10, "the sweep visits each slot once per round");
        assert_eq!(t.expire(1, 1000, |_, _| {}), 0);
        assert_eq!(t.expire(100, 1000, |_, _| {}), 50);
    }

    #[test]
    fn the_sweep_walks_the_table_once_a_period() {
        let mut t = Table::new(1000);
        let slots = t.entries.len();
        let ns = SWEEP_PERIOD_NS;
        // One entry that outlives the test: an empty table is not walked (below).
        let k = key(1);
        t.insert(entry(k, u64::MAX), k.symmetric_hash());
        // The first call starts the clock.
        assert_eq!(t.sweep(5, usize::MAX, |_, _| {}), 0);
        // A tenth of the period later: a tenth of the slots, whatever the call rate.
        let cursor = t.cursor;
        t.sweep(5 + ns / 10, usize::MAX, |_, _| {});
        assert_eq!(t.cursor, (cursor + slots / 10) % slots);
        t.sweep(5 + ns / 10, usize::MAX, |_, _| {});
        assert_eq!(t.cursor, (cursor + slots / 10) % slots, "no time, no work");
        // Capped per call; the rest is paid by the calls that follow, until caught up.
        let now = 5 + ns / 10 + ns / 2;
        let mut walked = 0;
        let mut calls = 0;
        loop {
            let before = t.cursor;
            t.sweep(now, 7, |_, _| {});
            let step = (t.cursor + slots - before) % slots;
            assert!(step <= 7);
            if step == 0 {
                break;
            }
            walked += step;
            calls += 1;
            assert!(calls <= slots, "the sweep never caught up");
        }
        let half = slots / 2;
        assert!(
            walked + 8 >= half && walked <= half + 1,
            "walked {walked} of {slots}"
        );
    }

    #[test]
    fn an_empty_table_is_not_walked() {
        let mut t = Table::new(1000);
        assert_eq!(t.sweep(5, usize::MAX, |_, _| {}), 0);
        t.sweep(5 + SWEEP_PERIOD_NS / 2, usize::MAX, |_, _| {});
        assert_eq!(t.cursor, 0, "an idle worker does not walk its empty slab");
        // Once an entry is there, the sweep resumes from now, not from the idle spell.
        let k = key(1);
        t.insert(entry(k, u64::MAX), k.symmetric_hash());
        t.sweep(
            5 + SWEEP_PERIOD_NS / 2 + SWEEP_PERIOD_NS / 10,
            usize::MAX,
            |_, _| {},
        );
        assert_eq!(t.cursor, t.entries.len() / 10);
    }
}
