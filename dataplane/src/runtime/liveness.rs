//! Whether the workers run and make progress: what the daemon tells systemd (`READY=1` once
//! every worker is in its loop, `WATCHDOG=1` only while every one of them moves).
//!
//! Each worker sets its slot's `running` flag when it enters its loop and bumps its
//! `heartbeat` once per iteration (a plain store of its own count, on a cache line of its
//! own). A worker with work loops all the time; an idle adaptive worker sleeps on its rings,
//! for at most `IDLE_WAIT_MS`, and is not stuck: [`Liveness::nudge`] rings the doorbell of
//! every sleeping worker, which then goes round its loop at once. So between two readings a
//! healthy worker's count always moves, and one that does not (spinning inside a batch,
//! blocked, stopped by a debugger, dead) is stuck.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;

/// A view of the workers' liveness (cheap to clone, usable from any thread).
#[derive(Debug, Clone)]
pub struct Liveness {
    shared: Arc<Shared>,
}

impl Liveness {
    pub(crate) fn new(shared: Arc<Shared>) -> Liveness {
        Liveness { shared }
    }

    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// The workers that have not entered their loop (yet, or any more).
    pub fn not_running(&self) -> Vec<usize> {
        (0..self.shared.workers)
            .filter(|&i| !self.shared.slots[i].running.load(Ordering::Acquire))
            .collect()
    }

    /// Wait until every worker is in its loop: `Err` with those that are not after `timeout`.
    pub fn wait_running(&self, timeout: Duration) -> Result<(), Vec<usize>> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = self.not_running();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(missing);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Each worker's heartbeat count.
    pub fn beats(&self) -> Vec<u64> {
        self.shared
            .slots
            .iter()
            .map(|s| s.heartbeat.load(Ordering::Relaxed))
            .collect()
    }

    /// Ring the doorbell of every sleeping worker, so that it goes round its loop (and bumps
    /// its heartbeat) now rather than when its wait times out.
    pub fn nudge(&self) {
        for s in &self.shared.slots {
            if s.sleeping.load(Ordering::SeqCst) {
                s.wake();
            }
        }
    }
}

/// Successive heartbeat readings, compared.
#[derive(Debug, Clone)]
pub struct Progress {
    last: Vec<u64>,
}

impl Progress {
    pub fn new(first: Vec<u64>) -> Progress {
        Progress { last: first }
    }

    /// The workers whose count did not move since the previous reading; `now` becomes the
    /// previous reading.
    pub fn stalled(&mut self, now: Vec<u64>) -> Vec<usize> {
        let stalled = now
            .iter()
            .zip(&self.last)
            .enumerate()
            .filter(|(_, (n, l))| n == l)
            .map(|(i, _)| i)
            .collect();
        self.last = now;
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_that_does_not_move_is_a_stall() {
        let mut p = Progress::new(vec![5, 7, 9]);
        assert_eq!(p.stalled(vec![6, 8, 10]), Vec::<usize>::new());
        assert_eq!(p.stalled(vec![7, 8, 11]), [1]);
        assert_eq!(p.stalled(vec![7, 9, 11]), [0, 2]);
        assert_eq!(p.stalled(vec![8, 10, 12]), Vec::<usize>::new());
    }
}
