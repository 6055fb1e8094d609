//! Rate limits of rules (`limit:`, iptables' `-m limit`): one token bucket per rule, shared
//! by every worker, as the kernel keeps one per rule for all CPUs. A bucket holds `burst`
//! tokens, is full at the start (and again with each new ruleset, as iptables-restore makes
//! new rules), and gains one token every `1/rate`; a packet takes one or, with none left,
//! does not match the rule.
//!
//! The bucket is kept as GCRA's theoretical arrival time in one `AtomicU64`: a packet at
//! `now` conforms when `max(tat, now) - now <= (burst - 1) * interval`, and then moves `tat`
//! on by one interval. A compare-and-swap loop: no lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering};

use config::limit::Limit;

#[derive(Debug)]
pub struct Bucket {
    /// Nanoseconds between tokens.
    interval: u64,
    /// How far ahead of `now` the arrival time may run: `(burst - 1) * interval`.
    tolerance: u64,
    /// The theoretical arrival time of the next packet (ns, the pipeline's clock).
    tat: AtomicU64,
}

impl Bucket {
    pub fn new(l: &Limit) -> Bucket {
        let interval = l.rate.interval_ns().max(1);
        Bucket {
            interval,
            tolerance: interval.saturating_mul(u64::from(l.burst.max(1) - 1)),
            tat: AtomicU64::new(0),
        }
    }

    /// Take a token at `now` (ns): whether the packet is within the limit.
    #[inline]
    pub fn take(&self, now: u64) -> bool {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start.saturating_add(self.interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_rate() {
        let l = Limit {
            rate: "2/second".parse().unwrap(),
            burst: 3,
        };
        let b = Bucket::new(&l);
        let t0 = 10_000_000_000;
        // Three at once, then none until a token comes back (every 500 ms).
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + 499_000_000));
        assert!(b.take(t0 + 500_000_000));
        assert!(!b.take(t0 + 500_000_000));
        // Idle long enough and the bucket is full again, no fuller.
        let t1 = t0 + 60_000_000_000;
        assert_eq!((0..5).filter(|_| b.take(t1)).count(), 3);
    }

    #[test]
    fn shared_by_threads_it_gives_out_burst_tokens_at_once() {
        let l = Limit {
            rate: "1/hour".parse().unwrap(),
            burst: 100,
        };
        let b = std::sync::Arc::new(Bucket::new(&l));
        let got: usize = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.take(5)).count())
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(got, 100);
    }
}
