//! Per-worker statistics the control thread reads without ever blocking a worker.
//!
//! * [`StatsCell`]: a seqlock over relaxed atomics. The worker (the only writer) publishes a
//!   whole [`WorkerCounters`] after each batch that changed something; a reader retries until
//!   it saw one publication whole, so a snapshot's numbers agree with each other (rx =
//!   accepted + dropped at the instant of publication). All fields are atomics, so the
//!   seqlock needs no `unsafe`.
//! * [`RuleCounters`]: packets and bytes per rule of one ruleset generation, one set per
//!   worker, written by the owner with load+store (no read-modify-write: nobody else writes).
//! * [`Hists`]: HdrHistograms the worker records into without any lock; the control thread
//!   swaps an empty set in through the worker's command queue and merges what comes back
//!   (see `docs/multicore.md`).

use std::sync::atomic::{fence, AtomicU64, Ordering};

use hdrhistogram::Histogram;

use engine::defrag::DefragCounters;
use engine::reason::{DropReason, InvalidReason};

/// Number of ctstates (`CtState as usize` indexes).
pub const CTSTATES: usize = 5;

/// One worker's counters, as published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Frames received from the worker's queues.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    pub batches: u64,
    /// The ruleset generation the worker runs.
    pub generation: u64,
    /// Packets the worker's engine decided (own and handed over).
    pub processed: u64,
    pub accepted: u64,
    pub cache_hits: u64,
    /// Engine drops plus the runtime's (`handoff_full`, `tx_full`).
    pub dropped: [u64; DropReason::COUNT],
    pub ctstate: [u64; CTSTATES],
    pub invalid: [u64; InvalidReason::COUNT],
    /// IP fragment reassembly (`DefragCounters::NAMES`), both families.
    pub fragments: [u64; DefragCounters::WORDS],
    pub entries: u64,
    pub capacity: u64,
    pub inserted: u64,
    pub expired: u64,
    pub early_drops: u64,
    pub table_full: u64,
}

const SCALARS: usize = 16;
/// Words in a published snapshot.
pub const WORDS: usize =
    SCALARS + DropReason::COUNT + CTSTATES + InvalidReason::COUNT + DefragCounters::WORDS;

impl WorkerCounters {
    fn scalars(&mut self) -> [&mut u64; SCALARS] {
        [
            &mut self.rx_packets,
            &mut self.rx_bytes,
            &mut self.tx_packets,
            &mut self.tx_bytes,
            &mut self.handoffs_out,
            &mut self.handoffs_in,
            &mut self.batches,
            &mut self.generation,
            &mut self.processed,
            &mut self.accepted,
            &mut self.cache_hits,
            &mut self.entries,
            &mut self.capacity,
            &mut self.inserted,
            &mut self.expired,
            &mut self.early_drops,
        ]
    }

    fn to_words(mut self, w: &mut [u64; WORDS]) {
        let mut i = 0;
        for s in self.scalars() {
            w[i] = *s;
            i += 1;
        }
        for v in self
            .dropped
            .iter()
            .chain(&self.ctstate)
            .chain(&self.invalid)
            .chain(&self.fragments)
        {
            w[i] = *v;
            i += 1;
        }
        // table_full is dropped[TableFull]: derived on read, not stored twice.
    }

    fn from_words(w: &[u64; WORDS]) -> WorkerCounters {
        let mut c = WorkerCounters::default();
        let mut i = 0;
        for s in c.scalars() {
            *s = w[i];
            i += 1;
        }
        for v in c
            .dropped
            .iter_mut()
            .chain(c.ctstate.iter_mut())
            .chain(c.invalid.iter_mut())
            .chain(c.fragments.iter_mut())
        {
            *v = w[i];
            i += 1;
        }
        c.table_full = c.dropped[DropReason::TableFull as usize];
        c
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Add another worker's counters (for totals; `generation` keeps the lowest).
    pub fn add(&mut self, o: &WorkerCounters) {
        let generation = if self.batches == 0 && self.rx_packets == 0 && self.capacity == 0 {
            o.generation
        } else {
            self.generation.min(o.generation)
        };
        let mut a = *o;
        for (x, y) in self.scalars().into_iter().zip(a.scalars()) {
            *x += *y;
        }
        for (x, y) in self.dropped.iter_mut().zip(&o.dropped) {
            *x += y;
        }
        for (x, y) in self.ctstate.iter_mut().zip(&o.ctstate) {
            *x += y;
        }
        for (x, y) in self.invalid.iter_mut().zip(&o.invalid) {
            *x += y;
        }
        for (x, y) in self.fragments.iter_mut().zip(&o.fragments) {
            *x += y;
        }
        self.table_full += o.table_full;
        self.generation = generation;
    }
}

/// A seqlock-published [`WorkerCounters`]: one writer, any number of readers.
#[derive(Debug)]
pub struct StatsCell {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl Default for StatsCell {
    fn default() -> Self {
        StatsCell {
            seq: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl StatsCell {
    /// Publish a snapshot. Only the owning worker calls this.
    pub fn publish(&self, c: &WorkerCounters) {
        let mut w = [0u64; WORDS];
        c.to_words(&mut w);
        let s = self.seq.load(Ordering::Relaxed);
        // Odd: a write is in progress. The release fence orders the odd mark before the
        // data stores for a reader that sees any of them.
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (a, v) in self.words.iter().zip(w) {
            a.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent snapshot (retries while the writer is mid-publication).
    pub fn read(&self) -> WorkerCounters {
        let mut w = [0u64; WORDS];
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (v, a) in w.iter_mut().zip(&self.words) {
                *v = a.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return WorkerCounters::from_words(&w);
            }
        }
    }
}

/// Packets and bytes per rule of one stage, and of its policy (the last pair).
#[derive(Debug)]
pub struct StageCounters {
    words: Box<[AtomicU64]>,
}

impl StageCounters {
    fn new(rules: usize) -> StageCounters {
        StageCounters {
            words: (0..2 * (rules + 1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Rules in the stage.
    pub fn rules(&self) -> usize {
        self.words.len() / 2 - 1
    }

    /// Count one packet of `bytes` for `rule` (`None`: the policy). Owner only.
    #[inline]
    pub fn count(&self, rule: Option<u32>, bytes: u64) {
        self.count_many(rule, 1, bytes);
    }

    /// Count `packets` packets of `bytes` bytes in all for `rule` (`None`: the policy).
    /// Owner only.
    #[inline]
    pub fn count_many(&self, rule: Option<u32>, packets: u64, bytes: u64) {
        let i = rule.map_or(self.rules(), |r| (r as usize).min(self.rules()));
        let p = &self.words[2 * i];
        let b = &self.words[2 * i + 1];
        // Single writer: load + store, no locked read-modify-write.
        p.store(p.load(Ordering::Relaxed) + packets, Ordering::Relaxed);
        b.store(b.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
    }

    /// `(packets, bytes)` of `rule` (`None`: the policy).
    pub fn get(&self, rule: Option<usize>) -> (u64, u64) {
        let i = rule.map_or(self.rules(), |r| r.min(self.rules()));
        (
            self.words[2 * i].load(Ordering::Relaxed),
            self.words[2 * i + 1].load(Ordering::Relaxed),
        )
    }
}

/// One worker's per-rule counters for one generation.
#[derive(Debug)]
pub struct RuleCounters {
    pub raw: StageCounters,
    pub mangle: StageCounters,
    pub mangle_forward: StageCounters,
    pub forward: StageCounters,
}

impl RuleCounters {
    /// Counters for stages of `raw`, `mangle`, `mangle_forward` and `forward` rules.
    pub fn new([raw, mangle, mangle_forward, forward]: [usize; 4]) -> RuleCounters {
        RuleCounters {
            raw: StageCounters::new(raw),
            mangle: StageCounters::new(mangle),
            mangle_forward: StageCounters::new(mangle_forward),
            forward: StageCounters::new(forward),
        }
    }

    /// The counters of a stage (none for `StageId::None`).
    pub fn of(&self, stage: engine::pipeline::StageId) -> Option<&StageCounters> {
        use engine::pipeline::StageId;
        match stage {
            StageId::Raw => Some(&self.raw),
            StageId::Mangle => Some(&self.mangle),
            StageId::MangleForward => Some(&self.mangle_forward),
            StageId::Forward => Some(&self.forward),
            StageId::None => None,
        }
    }
}

/// Highest latency recorded (ns); longer values are clamped. One second is far beyond any
/// batch; a worker stalled longer than that shows as a max of 1 s.
pub const HIST_MAX_NS: u64 = 1_000_000_000;

/// A worker's latency histograms (nanoseconds).
#[derive(Debug, Clone)]
pub struct Hists {
    /// Receive → verdict and TX queued, forwarded packets.
    pub forwarded: Histogram<u64>,
    pub dropped: Histogram<u64>,
    /// One batch's processing time.
    pub batch: Histogram<u64>,
}

impl Default for Hists {
    fn default() -> Self {
        Hists::new()
    }
}

impl Hists {
    pub fn new() -> Hists {
        // Three significant digits from 1 ns to 1 s: ~20 KiB of counts each, allocated now so
        // recording never allocates.
        let h = || Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid bounds");
        Hists {
            forwarded: h(),
            dropped: h(),
            batch: h(),
        }
    }

    pub fn reset(&mut self) {
        self.forwarded.reset();
        self.dropped.reset();
        self.batch.reset();
    }

    /// Add another set (control side; may grow nothing since the bounds are equal).
    pub fn add(&mut self, o: &Hists) {
        // Same bounds and precision: `add` cannot fail.
        let _ = self.forwarded.add(&o.forwarded);
        let _ = self.dropped.add(&o.dropped);
        let _ = self.batch.add(&o.batch);
    }

    /// Record `n` values of `v` ns, clamped to the histogram's range.
    #[inline]
    pub fn record(h: &mut Histogram<u64>, v: u64, n: u64) {
        if n > 0 {
            h.saturating_record_n(v.clamp(1, HIST_MAX_NS), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_words_round_trip() {
        let mut c = WorkerCounters {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            handoffs_out: 5,
            handoffs_in: 6,
            batches: 7,
            generation: 8,
            processed: 9,
            accepted: 10,
            cache_hits: 11,
            entries: 12,
            capacity: 13,
            inserted: 14,
            expired: 15,
            early_drops: 16,
            ..WorkerCounters::default()
        };
        c.dropped[DropReason::TableFull as usize] = 17;
        c.table_full = 17;
        c.ctstate[4] = 18;
        c.invalid[InvalidReason::COUNT - 1] = 19;
        let cell = StatsCell::default();
        cell.publish(&c);
        assert_eq!(cell.read(), c);
    }

    #[test]
    fn readers_never_see_a_torn_snapshot() {
        let cell = std::sync::Arc::new(StatsCell::default());
        let w = std::sync::Arc::clone(&cell);
        let writer = std::thread::spawn(move || {
            for i in 0..50_000u64 {
                let mut c = WorkerCounters {
                    rx_packets: i,
                    accepted: i / 2,
                    ..WorkerCounters::default()
                };
                c.dropped[0] = i - i / 2;
                w.publish(&c);
            }
        });
        for _ in 0..20_000 {
            let c = cell.read();
            assert_eq!(c.rx_packets, c.accepted + c.dropped_total());
        }
        writer.join().unwrap();
    }

    #[test]
    fn rule_counters_count_policy_last() {
        let r = RuleCounters::new([0, 0, 0, 2]);
        r.forward.count(Some(1), 100);
        r.forward.count(None, 60);
        r.forward.count(None, 40);
        assert_eq!(r.forward.get(Some(1)), (1, 100));
        assert_eq!(r.forward.get(None), (2, 100));
        assert_eq!(r.forward.get(Some(0)), (0, 0));
        assert_eq!(r.raw.rules(), 0);
    }
}
