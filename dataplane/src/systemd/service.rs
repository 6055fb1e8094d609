//! The daemon's side of a `Type=notify` service: what it tells systemd, and when.
//!
//! - `READY=1` once every port is open (the daemon starts this after opening them) and every
//!   worker has entered its loop ([`Liveness::wait_running`]), with a `STATUS=`.
//! - `RELOADING=1` and `MONOTONIC_USEC=` before a SIGHUP reload, `READY=1` after it, whether
//!   the new config was taken or refused; `STATUS=` says which.
//! - `STOPPING=1` on SIGTERM/SIGINT.
//! - `STATUS=` (generation, workers, table occupancy, packets, the last reload, stalled
//!   workers) when it changes and every [`STATUS_EVERY`] at most.
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, but only when every worker's heartbeat moved
//!   since the last time: a stuck worker stops the pings, and systemd restarts the daemon
//!   (`WatchdogSec=`, `Restart=on-failure`). Idle workers are nudged so that they move.
//!
//! Without `$NOTIFY_SOCKET` the [`Service`] is inert: the daemon runs as it always did.

use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, RecvTimeoutError, Sender};

use super::notify::{monotonic_usec, watchdog_period, Notifier};
use crate::runtime::liveness::{Liveness, Progress};
use crate::runtime::RuntimeHandle;

/// The longest time between two `STATUS=` updates while the status changes.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long the workers may take to enter their loops before the start is a failure.
pub const START_WAIT: Duration = Duration::from_secs(10);

/// What the status line is made of besides the runtime's counters.
#[derive(Debug)]
struct State {
    handle: RuntimeHandle,
    last_reload: Mutex<Option<String>>,
    stalled: Mutex<Vec<usize>>,
}

impl State {
    fn status(&self) -> String {
        let mut s = status_line(&self.handle);
        let stalled = self.stalled.lock().unwrap_or_else(PoisonError::into_inner);
        if !stalled.is_empty() {
            let _ = write!(s, "; {} made no progress", workers_named(&stalled));
        }
        drop(stalled);
        if let Some(r) = &*self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            s.push_str("; last reload: ");
            s.push_str(r);
        }
        s
    }
}

/// `generation G; N workers; conntrack E/C entries (P%); I packets in, O out`.
pub fn status_line(handle: &RuntimeHandle) -> String {
    let (mut entries, mut capacity, mut rx, mut tx) = (0u64, 0u64, 0u64, 0u64);
    for c in handle.counters() {
        entries += c.entries;
        capacity += c.capacity;
        rx += c.rx_packets;
        tx += c.tx_packets;
    }
    // Tenths of a percent, in integers.
    let permille = entries
        .saturating_mul(1000)
        .checked_div(capacity)
        .unwrap_or(0);
    format!(
        "generation {}; {} workers; conntrack {entries}/{capacity} entries ({}.{}%); \
         {rx} packets in, {tx} out",
        handle.generation(),
        handle.workers(),
        permille / 10,
        permille % 10
    )
}

/// `worker 1` or `workers 0, 2`.
fn workers_named(ids: &[usize]) -> String {
    let list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() == 1 {
        format!("worker {list}")
    } else {
        format!("workers {list}")
    }
}

#[derive(Debug)]
struct Active {
    notifier: Arc<Notifier>,
    state: Arc<State>,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

/// The daemon under systemd (or not: then every method does nothing).
#[derive(Debug)]
pub struct Service {
    active: Option<Active>,
}

impl Service {
    /// Tell systemd the daemon is ready, once every worker runs, and start the thread that
    /// keeps its status and watchdog. Inert without `$NOTIFY_SOCKET`; an unusable one is
    /// reported and ignored. `Err` when a worker did not start.
    pub fn start(handle: RuntimeHandle, liveness: Liveness) -> Result<Service, String> {
        let notifier = match Notifier::from_env() {
            None => return Ok(Service { active: None }),
            Some(Err(e)) => {
                crate::log_warn!("systemd: {e}; not notifying");
                return Ok(Service { active: None });
            }
            Some(Ok(n)) => Arc::new(n),
        };
        let watchdog = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        if let Err(missing) = liveness.wait_running(START_WAIT) {
            return Err(format!(
                "{} did not start within {} s",
                workers_named(&missing),
                START_WAIT.as_secs()
            ));
        }
        let state = Arc::new(State {
            handle,
            last_reload: Mutex::new(None),
            stalled: Mutex::new(Vec::new()),
        });
        let status = state.status();
        let mut ready = vec![("READY", "1"), ("STATUS", status.as_str())];
        if watchdog.is_some() {
            ready.push(("WATCHDOG", "1"));
        }
        if let Err(e) = notifier.send(&ready) {
            crate::log_warn!("systemd: cannot notify READY=1: {e}");
        }
        match watchdog {
            Some(w) => crate::log_debug!(
                "systemd: ready; watchdog every {} ms while every worker makes progress",
                (w / 2).as_millis()
            ),
            None => crate::log_debug!("systemd: ready; no watchdog"),
        }
        let (stop, stopped) = channel::bounded::<()>(1);
        let thread = {
            let notifier = Arc::clone(&notifier);
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("sw-systemd".into())
                .spawn(move || keep(&notifier, &state, &liveness, watchdog, &stopped))
                .map_err(|e| format!("cannot start the systemd thread: {e}"))?
        };
        Ok(Service {
            active: Some(Active {
                notifier,
                state,
                stop,
                thread: Some(thread),
            }),
        })
    }

    /// Whether systemd is being told (`$NOTIFY_SOCKET` was set and usable).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Before a reload of `file`: `RELOADING=1`.
    pub fn reloading(&self, file: &str) {
        if let Some(a) = &self.active {
            let now = monotonic_usec().to_string();
            let status = format!("reloading {file}");
            let _ = a.notifier.send(&[
                ("RELOADING", "1"),
                ("MONOTONIC_USEC", &now),
                ("STATUS", &status),
            ]);
        }
    }

    /// After a reload (`outcome`: what became of it): `READY=1` and the status with it.
    pub fn reloaded(&self, outcome: String) {
        if let Some(a) = &self.active {
            *a.state
                .last_reload
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(outcome);
            let status = a.state.status();
            let _ = a.notifier.send(&[("READY", "1"), ("STATUS", &status)]);
        }
    }

    /// On the way out (`why`: the signal): `STOPPING=1`.
    pub fn stopping(&self, why: &str) {
        if let Some(a) = &self.active {
            let status = format!("stopping ({why})");
            let _ = a.notifier.send(&[("STOPPING", "1"), ("STATUS", &status)]);
        }
    }

    /// Stop the status and watchdog thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        if let Some(a) = &mut self.active {
            let _ = a.stop.try_send(());
            if let Some(t) = a.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The thread: every tick (half the watchdog period, or [`STATUS_EVERY`]), read the
/// heartbeats, ping the watchdog if every worker moved, nudge the idle ones, and send the
/// status when it changed or has not been sent for [`STATUS_EVERY`].
fn keep(
    notifier: &Notifier,
    state: &State,
    liveness: &Liveness,
    watchdog: Option<Duration>,
    stopped: &channel::Receiver<()>,
) {
    let tick = watchdog
        .map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY))
        .max(Duration::from_millis(10));
    let mut progress = Progress::new(liveness.beats());
    liveness.nudge();
    let mut sent_status = state.status();
    let mut sent_at = Instant::now();
    let mut stall_since: Option<Instant> = None;
    loop {
        match stopped.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let mut fields: Vec<(&str, String)> = Vec::new();
        if watchdog.is_some() {
            let stalled = progress.stalled(liveness.beats());
            liveness.nudge();
            let changed = {
                let mut s = state.stalled.lock().unwrap_or_else(PoisonError::into_inner);
                let changed = *s != stalled;
                s.clone_from(&stalled);
                changed
            };
            if stalled.is_empty() {
                fields.push(("WATCHDOG", "1".to_string()));
                if let Some(since) = stall_since.take() {
                    crate::log_info!(
                        "watchdog: every worker makes progress again (after {:.1} s); \
                         pinging systemd's watchdog again",
                        since.elapsed().as_secs_f64()
                    );
                }
            } else if changed {
                stall_since.get_or_insert_with(Instant::now);
                crate::log_warn!(
                    "watchdog: {} made no progress in {} ms; not pinging systemd's watchdog",
                    workers_named(&stalled),
                    tick.as_millis()
                );
            }
        }
        let status = state.status();
        if status != sent_status || sent_at.elapsed() >= STATUS_EVERY {
            fields.push(("STATUS", status.clone()));
            sent_status = status;
            sent_at = Instant::now();
        }
        if !fields.is_empty() {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let _ = notifier.send(&f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_named() {
        assert_eq!(workers_named(&[1]), "worker 1");
        assert_eq!(workers_named(&[0, 2]), "workers 0, 2");
    }
}
