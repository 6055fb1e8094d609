//! The lines `log` rules write. A worker's pipeline records each logged packet in its
//! ring (`engine::log`); after each batch the worker moves the records onto one bounded
//! queue shared by all workers (full: the record is counted as lost, the worker never
//! waits). One thread, away from the packet path, takes them off, writes each as the
//! kernel's LOG target would to standard error (journald keeps its level) at most
//! [`RATE`] lines a second, and keeps the newest [`KEEP`] for `statewallctl log`.
//!
//! The kernel writes every LOG line; a rule meant to log a flood carries its own `limit`
//! (`-m limit`). The daemon's own cap is there so that a rule without one cannot turn a
//! flood into a flood of log writes: lines over it are counted as suppressed, and a line
//! says how many when writing resumes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::protocol::{LogLine, LogReply};
use crossbeam::queue::ArrayQueue;
use engine::log::LogRecord;

use super::Shared;

/// Records the workers' hand-over holds.
pub const QUEUE: usize = 4096;
/// Lines written per second at most, and at once (the bucket's size).
pub const RATE: u64 = 1000;
/// Lines kept for `statewallctl log`.
pub const KEEP: usize = 1000;
/// How often the writer looks for records (their latency to the log).
const PERIOD: Duration = Duration::from_millis(20);

/// What the workers and the writer share.
#[derive(Debug)]
pub(crate) struct PacketLog {
    queue: ArrayQueue<LogRecord>,
    /// Set once the workers are gone: the writer writes what is left and ends.
    pub(crate) stop: std::sync::atomic::AtomicBool,
    /// Records lost: a full queue, or a worker's full ring.
    lost: AtomicU64,
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    lines: VecDeque<LogLine>,
    /// Sequence number of the newest line written.
    last: u64,
    suppressed: u64,
}

impl Default for PacketLog {
    fn default() -> Self {
        PacketLog {
            queue: ArrayQueue::new(QUEUE),
            stop: std::sync::atomic::AtomicBool::new(false),
            lost: AtomicU64::new(0),
            recent: Mutex::new(Recent::default()),
        }
    }
}

impl PacketLog {
    /// A worker's records, handed over (no lock, no allocation, no wait).
    pub(crate) fn push(&self, records: impl Iterator<Item = LogRecord>) {
        let mut lost = 0;
        for r in records {
            if self.queue.push(r).is_err() {
                lost += 1;
            }
        }
        self.lost_more(lost);
    }

    pub(crate) fn lost_more(&self, n: u64) {
        if n > 0 {
            self.lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lines after `since` (all kept without it), at most the newest `lines`.
    pub(crate) fn reply(&self, since: Option<u64>, lines: Option<usize>) -> LogReply {
        let r = self.recent();
        let after: Vec<&LogLine> = r
            .lines
            .iter()
            .filter(|l| since.is_none_or(|s| l.seq > s))
            .collect();
        let skip = lines.map_or(0, |n| after.len().saturating_sub(n));
        LogReply {
            lines: after.into_iter().skip(skip).cloned().collect(),
            last: r.last,
            written: r.last,
            suppressed: r.suppressed,
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// The writer's token bucket: [`RATE`] lines a second, as many at once.
struct Pace {
    tokens: u64,
    at: std::time::Instant,
}

impl Pace {
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.at).as_millis() as u64 * RATE / 1000;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(RATE);
            self.at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Start the writer; it ends when the runtime stops.
pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("sw-log".into())
        .spawn(move || run(&shared))
}

fn run(shared: &Shared) {
    let mut pace = Pace {
        tokens: RATE,
        at: std::time::Instant::now(),
    };
    let mut held_back = 0u64;
    loop {
        let stopping = shared.packet_log.stop.load(Ordering::Acquire);
        if !shared.packet_log.queue.is_empty() {
            let rules = Arc::clone(&shared.published().rules);
            while let Some(r) = shared.packet_log.queue.pop() {
                if !pace.take() {
                    held_back += 1;
                    continue;
                }
                suppressed(shared, &mut held_back);
                let text = rules.log_line(&r);
                crate::log::packet_line(r.level, &text);
                let unix_time = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let mut recent = shared.packet_log.recent();
                recent.last += 1;
                let seq = recent.last;
                if recent.lines.len() == KEEP {
                    recent.lines.pop_front();
                }
                recent.lines.push_back(LogLine {
                    seq,
                    unix_time,
                    level: r.level,
                    text,
                });
            }
        }
        if held_back > 0 && (stopping || pace.take()) {
            // The flood is over: say how much of it was not written.
            suppressed(shared, &mut held_back);
        }
        if stopping {
            return;
        }
        thread::sleep(PERIOD);
    }
}

/// Say how many lines were held back (none: nothing), and count them.
fn suppressed(shared: &Shared, held_back: &mut u64) {
    let n = std::mem::take(held_back);
    if n > 0 {
        crate::log_warn!("log: {n} lines of `log` rules not written (over {RATE} lines a second)");
        shared.packet_log.recent().suppressed += n;
    }
}
