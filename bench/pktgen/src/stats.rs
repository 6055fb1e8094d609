//! What a generator thread counts. The live counters are atomics the thread alone writes
//! (relaxed), so the main thread can print a progress line each second; the latency
//! histogram and the reorder state stay private to the thread and are merged at the end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::frame::Stamp;

/// Counters a thread publishes while it runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Stamped packets sent (the ones loss is counted on), and their bytes.
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    /// Stamped packets received on the far side, and their bytes.
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Connections the stateful mode has completed the handshake of.
    pub established: AtomicU64,
}

impl Live {
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Relaxed) + n, Relaxed);
    }
}

/// A thread's private receive-side state.
#[derive(Debug)]
pub struct RxState {
    pub latency: Histogram<u64>,
    /// Highest sequence seen per global slot, plus one (0: none yet).
    next_seq: Vec<u32>,
    pub reordered: u64,
    /// Stamped packets whose latency was out of range (a clock that wrapped, > 4.29 s).
    pub late: u64,
}

impl RxState {
    pub fn new(slots: usize) -> Self {
        RxState {
            // 1 ns to 10 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("static bounds"),
            next_seq: vec![0; slots],
            reordered: 0,
            late: 0,
        }
    }

    /// Account one stamped packet received at `now` (ns since the epoch, mod 2^32).
    pub fn record(&mut self, s: &Stamp, now: u32) {
        let lat = now.wrapping_sub(s.ts);
        if lat > u32::MAX / 2 {
            self.late += 1;
        } else {
            // Bounds checked by saturating into the histogram's range.
            self.latency.saturating_record(u64::from(lat).max(1));
        }
        if let Some(n) = self.next_seq.get_mut(s.slot as usize) {
            let seq1 = s.seq.wrapping_add(1);
            if *n != 0 && seq1 <= *n {
                self.reordered += 1;
            } else {
                *n = seq1;
            }
        }
    }
}

/// Everything a thread counted, returned when it ends.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Totals {
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
    pub reordered: u64,
    /// Frames on the receive ports without a stamp of ours (the hosts' own ARP/ND, the
    /// stateful mode's handshakes).
    pub other_received: u64,
    /// Times the TX ring was full (backpressure from the port).
    pub tx_ring_full: u64,
    /// Stateful mode.
    pub syn_sent: u64,
    pub syn_retransmits: u64,
    pub established: u64,
    pub closed: u64,
    pub failed_handshakes: u64,
    /// Tuples (flows or connections) started.
    pub flows_started: u64,
}

impl Totals {
    pub fn merge(&mut self, o: &Totals) {
        self.sent += o.sent;
        self.sent_bytes += o.sent_bytes;
        self.received += o.received;
        self.received_bytes += o.received_bytes;
        self.reordered += o.reordered;
        self.other_received += o.other_received;
        self.tx_ring_full += o.tx_ring_full;
        self.syn_sent += o.syn_sent;
        self.syn_retransmits += o.syn_retransmits;
        self.established += o.established;
        self.closed += o.closed;
        self.failed_handshakes += o.failed_handshakes;
        self.flows_started += o.flows_started;
    }
}

/// Latency percentiles in µs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LatencyReport {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencyReport {
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |v: u64| v as f64 / 1000.0;
        LatencyReport {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_and_latency() {
        let mut r = RxState::new(2);
        let s = |slot, seq, ts| Stamp { slot, seq, ts };
        r.record(&s(0, 0, 100), 1100);
        r.record(&s(0, 2, 100), 2100);
        r.record(&s(0, 1, 100), 3100); // arrived after 2
        r.record(&s(1, 5, u32::MAX - 10), 90); // send time wrapped: 101 ns
        r.record(&s(1, 6, 1000), 10); // "received before sent": out of range
        assert_eq!(r.reordered, 1);
        assert_eq!(r.late, 1);
        assert_eq!(r.latency.len(), 4);
        assert_eq!(r.latency.min(), 101);
        let rep = LatencyReport::of(&r.latency);
        assert!(rep.p50_us <= rep.p99_us && rep.p99_us <= rep.max_us);
    }
}
