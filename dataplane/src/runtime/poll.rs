//! When a worker with nothing to do spins and when it sleeps (adaptive poll mode).
//!
//! Spinning answers the next packet at once but costs the whole core; sleeping (a `poll` on
//! the rings, which the kernel wakes when a frame lands) costs a wakeup per packet (some tens
//! of microseconds of latency, and about 14 µs of CPU on the 2-core VM of bench/RESULTS.md,
//! most of it the context switch), and nothing while idle.
//! Spinning pays off only when the next packet comes before the spin would have ended, so
//! the worker spins for at most `busy_poll` (like the kernel's `net.core.busy_poll`), and
//! only while packets have recently been coming closer together than that: a moving average
//! of the gaps between batches with work. A light load (a packet every 100 µs) then sleeps
//! between packets instead of spinning through each gap, and a heavy one never sleeps.
//!
//! The budget is time, not a count of empty rounds: an empty round costs tens of
//! nanoseconds, so any fixed count is either too short to matter or long enough that a
//! gateway at a few kpps never sleeps.

use super::PollMode;

/// Gaps longer than this count as this in the average (ns), so that the average comes back
/// down within a few dozen batches when traffic resumes after an idle spell.
const GAP_CAP_NS: u64 = 1_000_000;

/// The idle policy of one worker.
#[derive(Debug, Clone)]
pub(crate) struct IdlePolicy {
    mode: PollMode,
    busy_poll_ns: u64,
    /// When the worker last had work (ns, the worker's clock).
    last_work: u64,
    /// Moving average (1/8 weight) of the time between batches with work (ns).
    gap_ns: u64,
}

impl IdlePolicy {
    pub(crate) fn new(mode: PollMode, busy_poll_ns: u64, now: u64) -> IdlePolicy {
        IdlePolicy {
            mode,
            busy_poll_ns,
            last_work: now,
            // Start as after an idle spell: sleep until traffic shows it is dense.
            gap_ns: GAP_CAP_NS,
        }
    }

    /// The worker had work at `now`.
    #[inline]
    pub(crate) fn worked(&mut self, now: u64) {
        let gap = now.saturating_sub(self.last_work).min(GAP_CAP_NS);
        self.gap_ns = self.gap_ns - self.gap_ns / 8 + gap / 8;
        self.last_work = now;
    }

    /// Nothing to do at `now`: spin (`true`) or sleep on the IO (`false`).
    #[inline]
    pub(crate) fn spin(&self, now: u64) -> bool {
        match self.mode {
            PollMode::Busy => true,
            PollMode::Adaptive => {
                self.gap_ns < self.busy_poll_ns
                    && now.saturating_sub(self.last_work) < self.busy_poll_ns
            }
        }
    }

    /// The moving average of the gaps between batches with work (ns).
    #[cfg(test)]
    fn gap_ns(&self) -> u64 {
        self.gap_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1000;

    /// Packets every `period` ns from `*now`, `n` of them, each its own batch.
    fn traffic(p: &mut IdlePolicy, now: &mut u64, period: u64, n: usize) {
        for _ in 0..n {
            *now += period;
            p.worked(*now);
        }
    }

    #[test]
    fn busy_mode_always_spins() {
        let p = IdlePolicy::new(PollMode::Busy, 50 * US, 1);
        assert!(p.spin(1));
        assert!(p.spin(10_000_000_000));
    }

    #[test]
    fn dense_traffic_spins_for_the_budget_then_sleeps() {
        let mut p = IdlePolicy::new(PollMode::Adaptive, 50 * US, 1);
        let mut now = 1;
        // 100 kpps: a gap of 10 µs, well inside the 50 µs budget.
        traffic(&mut p, &mut now, 10 * US, 200);
        assert!(p.gap_ns() < 11 * US, "{}", p.gap_ns());
        assert!(p.spin(now + 10 * US));
        assert!(p.spin(now + 49 * US));
        // Traffic stopped: the spin ends with the budget.
        assert!(!p.spin(now + 50 * US));
        assert!(!p.spin(now + 5_000 * US));
    }

    #[test]
    fn sparse_traffic_sleeps_at_once() {
        let mut p = IdlePolicy::new(PollMode::Adaptive, 50 * US, 1);
        let mut now = 1;
        // 10 kpps: a gap of 100 µs; spinning 50 µs after each packet would be wasted.
        traffic(&mut p, &mut now, 100 * US, 200);
        assert!(!p.spin(now));
        assert!(!p.spin(now + US));
    }

    #[test]
    fn zero_budget_never_spins() {
        let mut p = IdlePolicy::new(PollMode::Adaptive, 0, 1);
        let mut now = 1;
        traffic(&mut p, &mut now, 100, 1000);
        assert!(!p.spin(now));
    }

    #[test]
    fn the_average_follows_a_change_of_load_within_dozens_of_batches() {
        let mut p = IdlePolicy::new(PollMode::Adaptive, 50 * US, 1);
        let mut now = 1;
        // Idle for a minute, then a burst: each batch one gap of 5 µs.
        now += 60_000_000_000;
        p.worked(now);
        let mut batches = 0;
        while !p.spin(now) {
            traffic(&mut p, &mut now, 5 * US, 1);
            batches += 1;
            assert!(batches < 40, "still sleeping after {batches} dense batches");
        }
        // And back: the gaps widen to 1 ms, so the worker stops spinning after them.
        let mut batches = 0;
        while p.spin(now) {
            traffic(&mut p, &mut now, 1_000 * US, 1);
            batches += 1;
            assert!(batches < 5, "still spinning after {batches} sparse batches");
        }
    }
}
