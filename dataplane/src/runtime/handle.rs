//! [`RuntimeHandle`]: the control side of a running [`super::Runtime`]: apply and check
//! rulesets, publish settings, read stats and histograms, list and flush conntrack. Used by
//! the control server (one thread per client), SIGHUP handling, and tests.
//!
//! Nothing here blocks a worker: counters are read from seqlocks, and whatever needs a
//! worker's private state (its table, its histograms) is a command the worker services
//! between batches, answered on a one-shot channel the caller waits on with a timeout.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Sender};
use hdrhistogram::Histogram;

use config::matches::Proto;
use config::protocol::{
    Applied, Checked, Command, ConntrackFilter, ConntrackOp, ConntrackReply, CoreStats,
    DiagnosticMsg, ErrorKind, ErrorReply, HistReply, HistSet, HistSummary, Payload, Restored,
    RuleShow, Setting, Show, StageShow, Stats, SyncOp, SyncReply,
};
use config::{load_str, ConntrackSettings, Diagnostic, Pos, Ruleset};

use engine::conntrack::entry::Entry;
use engine::conntrack::filter::EntryFilter;
use engine::conntrack::listing;
use engine::conntrack::save;
use engine::conntrack::tcp::state;
use engine::flow::owner;
use engine::reason::{DropReason, InvalidReason};
use engine::ruleset::CompiledRuleset;

use super::cmd::{
    Inject, InjectReply, ScanAction, ScanReply, WorkerCmd, ADOPT_ENTRIES, SCAN_SLOTS,
};
use super::stats::{Hists, StageCounters, WorkerCounters};
use super::Shared;

/// How long the control side waits for a worker to service a command. A worker services
/// commands every batch, and an idle one within its wait timeout: seconds mean it is stuck.
pub const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long publishing a ruleset waits for every worker to run it.
const ADOPTION_WAIT: Duration = Duration::from_millis(500);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its state consistent at each step (plain field
    // assignments), so a panic elsewhere does not make the state unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running configuration, as the control side knows it.
#[derive(Debug)]
struct ControlState {
    ruleset: Ruleset,
    yaml: String,
    file: String,
    /// Generations replaced but possibly still held by a worker; dropped here (not in a
    /// worker) once no worker holds them.
    retired: Vec<Arc<CompiledRuleset>>,
}

#[derive(Debug)]
struct HistState {
    /// Everything recorded since start or the last reset, per worker.
    total: Vec<Hists>,
    /// An empty set per worker, to swap in next time.
    spare: Vec<Option<Box<Hists>>>,
}

/// Earlier rx counts, for packets per second.
#[derive(Debug, Default)]
struct Rates {
    samples: VecDeque<(Instant, Vec<u64>)>,
}

/// The control side of a runtime. Cheap to clone; every method may be called from any
/// thread, concurrently.
#[derive(Debug, Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
    state: Arc<Mutex<ControlState>>,
    hist: Arc<Mutex<HistState>>,
    rates: Arc<Mutex<Rates>>,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, message)
}

fn invalid_config(diags: &[Diagnostic]) -> ErrorReply {
    let n = diags.iter().filter(|d| d.is_error()).count();
    ErrorReply {
        kind: ErrorKind::InvalidConfig,
        message: format!(
            "{n} error{} in the ruleset; the running ruleset is unchanged",
            if n == 1 { "" } else { "s" }
        ),
        diagnostics: diags.iter().map(DiagnosticMsg::from).collect(),
    }
}

/// Bad lines a `conntrack_restore` error lists at most.
const MAX_RESTORE_ERRORS: usize = 100;

/// Settings fixed at start: the table and the expectation table are allocated once.
const FIXED_SETTINGS: &[&str] = &["max", "expect_max"];

impl RuntimeHandle {
    pub(crate) fn new(shared: Arc<Shared>, ruleset: Ruleset, yaml: &str, file: &str) -> Self {
        let n = shared.workers;
        RuntimeHandle {
            shared,
            state: Arc::new(Mutex::new(ControlState {
                ruleset,
                yaml: yaml.to_string(),
                file: file.to_string(),
                retired: Vec::new(),
            })),
            hist: Arc::new(Mutex::new(HistState {
                total: (0..n).map(|_| Hists::new()).collect(),
                spare: (0..n).map(|_| Some(Box::new(Hists::new()))).collect(),
            })),
            rates: Arc::new(Mutex::new(Rates::default())),
        }
    }

    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// The published generation.
    pub fn generation(&self) -> u32 {
        self.shared
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Engine time now (what entries' expiry times are measured in).
    pub fn now(&self) -> u64 {
        self.shared.clock.now()
    }

    /// Serve one protocol command.
    pub fn execute(&self, cmd: &Command) -> Result<Payload, ErrorReply> {
        Ok(match cmd {
            Command::Apply { yaml, file } => Payload::Applied(self.apply(yaml, file)?),
            Command::Check { yaml, file } => Payload::Checked(self.check(yaml, file)?),
            Command::Show => Payload::Show(self.show()),
            Command::Stats { per_core } => Payload::Stats(self.stats(*per_core)),
            Command::Conntrack { op, filter } => Payload::Conntrack(self.conntrack(*op, filter)?),
            Command::Hist { reset, per_core } => Payload::Hist(self.hist(*reset, *per_core)?),
            Command::Get { key } => Payload::Setting(self.get(key)?),
            Command::Set { key, value } => Payload::Setting(self.set(key, value)?),
            Command::ConntrackRestore {
                text,
                file,
                first_line,
                check,
            } => Payload::Restored(self.restore(text, file, *first_line, *check)?),
            Command::Log { since, lines } => {
                Payload::Log(self.shared.packet_log.reply(*since, *lines))
            }
            Command::Sync { op } => Payload::Sync(self.sync(*op)?),
        })
    }

    /// Validate a ruleset against the running daemon: the schema, and the ports (which are
    /// open and cannot change while running).
    fn validate(running: &Ruleset, yaml: &str, file: &str) -> Result<config::Loaded, ErrorReply> {
        let loaded = load_str(yaml, file).map_err(|d| invalid_config(&d))?;
        if loaded.ruleset.port_interfaces() != running.port_interfaces() {
            let pos = loaded.source.node_start("ports", &[]);
            let pos = if pos.line == 0 {
                Pos { line: 1, col: 1 }
            } else {
                pos
            };
            let d = Diagnostic::error(
                file,
                pos,
                format!(
                    "the ports differ from the running daemon's ({}); ports are opened at start",
                    running
                        .port_interfaces()
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_hint(
                "keep the `ports:` of the running config, or restart statewall to change ports",
            );
            return Err(invalid_config(&[d]));
        }
        Ok(loaded)
    }

    /// Validate without applying.
    pub fn check(&self, yaml: &str, file: &str) -> Result<Checked, ErrorReply> {
        let running = lock(&self.state).ruleset.clone();
        let loaded = Self::validate(&running, yaml, file)?;
        CompiledRuleset::compile(&loaded.ruleset, 1).map_err(|e| {
            invalid_config(&[Diagnostic::error(
                file,
                Pos { line: 1, col: 1 },
                e.to_string(),
            )])
        })?;
        Ok(Checked {
            warnings: loaded.warnings.iter().map(DiagnosticMsg::from).collect(),
        })
    }

    /// Validate, compile and publish a ruleset; on any error the running one stays.
    pub fn apply(&self, yaml: &str, file: &str) -> Result<Applied, ErrorReply> {
        let mut st = lock(&self.state);
        let loaded = Self::validate(&st.ruleset, yaml, file)?;
        let previous = self.generation();
        let running = Arc::clone(&self.shared.published().rules);
        let rules = CompiledRuleset::compile_after(
            &loaded.ruleset,
            previous.wrapping_add(1).max(1),
            Some(&running),
        )
        .map_err(|e| {
            invalid_config(&[Diagnostic::error(
                file,
                Pos { line: 1, col: 1 },
                e.to_string(),
            )])
        })?;
        let mut notes = Vec::new();
        for key in FIXED_SETTINGS {
            let (old, new) = (
                st.ruleset.conntrack.get(key).unwrap_or_default(),
                loaded.ruleset.conntrack.get(key).unwrap_or_default(),
            );
            if old != new {
                notes.push(format!(
                    "conntrack {key} {old} → {new} takes effect at restart (the table is allocated at start)"
                ));
            }
        }
        if loaded.ruleset.sync != st.ruleset.sync {
            notes.push(
                "the sync section's change takes effect at restart (the sync link is opened at start)"
                    .into(),
            );
        }
        let generation = rules.generation;
        self.publish(&mut st, rules);
        st.ruleset = loaded.ruleset;
        st.yaml = yaml.to_string();
        st.file = file.to_string();
        Ok(Applied {
            generation,
            previous,
            warnings: loaded.warnings.iter().map(DiagnosticMsg::from).collect(),
            notes,
        })
    }

    fn publish(&self, st: &mut ControlState, rules: CompiledRuleset) {
        let generation = u64::from(rules.generation);
        let old = Arc::clone(&self.shared.published().rules);
        self.shared.publish(Arc::new(rules));
        st.retired.push(old);
        st.retired.retain(|r| Arc::strong_count(r) > 1);
        for s in &self.shared.slots {
            s.wake();
        }
        // Return once every worker runs it: each adopts it at its next batch boundary (an
        // idle one when its wait ends, within about a millisecond), so a packet sent after
        // `apply` returns meets the new ruleset. Bounded, so that a stopped or stuck worker
        // cannot hang the control socket.
        let deadline = Instant::now() + ADOPTION_WAIT;
        while self
            .shared
            .slots
            .iter()
            .any(|s| s.stats.read().generation < generation)
            && Instant::now() < deadline
            && !self.shared.stop.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// A conntrack setting of the running ruleset.
    pub fn get(&self, key: &str) -> Result<Setting, ErrorReply> {
        let st = lock(&self.state);
        let value = st
            .ruleset
            .conntrack
            .get(key)
            .map_err(|e| err(ErrorKind::InvalidSetting, e.message))?;
        Ok(Setting {
            key: key.to_string(),
            value,
            generation: None,
        })
    }

    /// Change a conntrack setting live: a new generation with the new value. It lasts until
    /// the next `apply`, whose file then decides.
    pub fn set(&self, key: &str, value: &str) -> Result<Setting, ErrorReply> {
        let mut st = lock(&self.state);
        let mut ruleset = st.ruleset.clone();
        ruleset
            .conntrack
            .set(key, value)
            .map_err(|e| err(ErrorKind::InvalidSetting, e.message))?;
        if FIXED_SETTINGS.contains(&key) && ruleset.conntrack != st.ruleset.conntrack {
            return Err(err(
                ErrorKind::InvalidSetting,
                format!(
                    "{key} is fixed while statewall runs (the table is allocated at start, {} now); \
                     change it in the config and restart",
                    st.ruleset.conntrack.get(key).unwrap_or_default()
                ),
            ));
        }
        let previous = self.generation();
        let running = Arc::clone(&self.shared.published().rules);
        let rules = CompiledRuleset::compile_after(
            &ruleset,
            previous.wrapping_add(1).max(1),
            Some(&running),
        )
        .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        let generation = rules.generation;
        self.publish(&mut st, rules);
        let value = ruleset.conntrack.get(key).unwrap_or_default();
        st.ruleset = ruleset;
        Ok(Setting {
            key: key.to_string(),
            value,
            generation: Some(generation),
        })
    }

    /// The running ruleset with per-rule counters (summed over workers).
    pub fn show(&self) -> Show {
        let st = lock(&self.state);
        let (generation, counters, at) = {
            let p = self.shared.published();
            (p.rules.generation, p.counters.clone(), p.at)
        };
        let stage = |name: &str,
                     s: &config::ruleset::Stage,
                     pick: fn(&super::stats::RuleCounters) -> &StageCounters| {
            let sum = |rule: Option<usize>| {
                counters.iter().fold((0, 0), |(p, b), c| {
                    let (p2, b2) = pick(c).get(rule);
                    (p + p2, b + b2)
                })
            };
            let rules = s
                .numbered()
                .enumerate()
                .map(|(i, (chain, _, r))| {
                    let (packets, bytes) = sum(Some(i));
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("action");
                        m.remove("comment");
                    }
                    RuleShow {
                        index: i,
                        chain: chain.map(str::to_string),
                        action: r.action.to_string(),
                        matches: v.to_string(),
                        comment: r.comment.clone(),
                        packets,
                        bytes,
                    }
                })
                .collect();
            let (policy_packets, policy_bytes) = sum(None);
            StageShow {
                name: name.to_string(),
                policy: match s.policy {
                    config::ruleset::Policy::Accept => "accept".into(),
                    config::ruleset::Policy::Drop => "drop".into(),
                },
                rules,
                policy_packets,
                policy_bytes,
            }
        };
        let defaults = ConntrackSettings::default();
        let settings = ConntrackSettings::KEYS
            .iter()
            .filter_map(|k| {
                let v = st.ruleset.conntrack.get(k).ok()?;
                (defaults.get(k).ok()? != v).then(|| ((*k).to_string(), v))
            })
            .collect();
        Show {
            generation,
            file: st.file.clone(),
            age_s: at.elapsed().as_secs(),
            ports: st.ruleset.port_names(),
            pairs: st.ruleset.port_pairs(),
            settings,
            stages: vec![
                stage("raw", &st.ruleset.raw, |c| &c.raw),
                stage("mangle", &st.ruleset.mangle, |c| &c.mangle),
                stage("mangle_forward", &st.ruleset.mangle_forward, |c| {
                    &c.mangle_forward
                }),
                stage("forward", &st.ruleset.forward, |c| &c.forward),
            ],
            yaml: st.yaml.clone(),
        }
    }

    /// Each worker's published counters.
    pub fn counters(&self) -> Vec<WorkerCounters> {
        self.shared.slots.iter().map(|s| s.stats.read()).collect()
    }

    /// Counters per worker and in total, with packets per second.
    pub fn stats(&self, per_core: bool) -> Stats {
        let counters = self.counters();
        let pps = self.rates(&counters);
        let expectations = self.shared.expect.len() as u64;
        let mut total = WorkerCounters::default();
        for c in &counters {
            total.add(c);
        }
        let core = |worker: Option<usize>, c: &WorkerCounters, pps: f64| {
            let named = |names: &[&str], vals: &[u64]| -> BTreeMap<String, u64> {
                names
                    .iter()
                    .zip(vals)
                    .map(|(n, v)| ((*n).to_string(), *v))
                    .collect()
            };
            let drop_names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
            let inv_names: Vec<&str> = InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
            let ct_names: Vec<&str> = config::matches::CtState::ALL
                .iter()
                .map(|s| s.name())
                .collect();
            CoreStats {
                worker,
                generation: c.generation as u32,
                rx_packets: c.rx_packets,
                rx_bytes: c.rx_bytes,
                tx_packets: c.tx_packets,
                tx_bytes: c.tx_bytes,
                rx_pps: pps,
                processed: c.processed,
                accepted: c.accepted,
                dropped: named(&drop_names, &c.dropped),
                dropped_total: c.dropped_total(),
                ctstate: named(&ct_names, &c.ctstate),
                invalid: named(&inv_names, &c.invalid),
                fragments: named(&engine::defrag::DefragCounters::NAMES, &c.fragments),
                handoffs_out: c.handoffs_out,
                handoffs_in: c.handoffs_in,
                cache_hits: c.cache_hits,
                batches: c.batches,
                entries: c.entries,
                capacity: c.capacity,
                inserted: c.inserted,
                expired: c.expired,
                early_drops: c.early_drops,
                table_full: c.table_full,
                expectations,
            }
        };
        Stats {
            workers: self.shared.workers,
            generation: self.generation(),
            uptime_s: self.shared.started.elapsed().as_secs_f64(),
            io_mode: self.shared.io_mode.clone(),
            total: core(None, &total, pps.iter().sum()),
            per_core: if per_core {
                counters
                    .iter()
                    .enumerate()
                    .map(|(i, c)| core(Some(i), c, pps[i]))
                    .collect()
            } else {
                Vec::new()
            },
            sync: self.shared.sync.as_ref().map(|s| Box::new(s.status())),
        }
    }

    /// Received packets per second per worker, over the last second (or the time since the
    /// previous reading, when that is longer).
    #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
    fn rates(&self, counters: &[WorkerCounters]) -> Vec<f64> {
        let now = Instant::now();
        let rx: Vec<u64> = counters.iter().map(|c| c.rx_packets).collect();
        let mut r = lock(&self.rates);
        let base = r
            .samples
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1))
            .or_else(|| r.samples.front())
            .cloned();
        let pps = match base {
            Some((t, old)) if now > t => {
                let dt = now.duration_since(t).as_secs_f64();
                rx.iter()
                    .zip(&old)
                    .map(|(n, o)| n.saturating_sub(*o) as f64 / dt)
                    .collect()
            }
            _ => vec![0.0; rx.len()],
        };
        r.samples.push_back((now, rx));
        while r
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(5))
        {
            r.samples.pop_front();
        }
        pps
    }

    /// Send a command to worker `w` and wait for its answer.
    fn ask<R>(&self, w: usize, make: impl FnOnce(Sender<R>) -> WorkerCmd) -> Result<R, ErrorReply> {
        let (tx, rx) = channel::bounded(1);
        let slot = &self.shared.slots[w];
        slot.cmds.try_send(make(tx)).map_err(|_| {
            err(
                ErrorKind::Busy,
                format!("worker {w}'s command queue is full; try again"),
            )
        })?;
        slot.wake();
        rx.recv_timeout(WORKER_REPLY_TIMEOUT).map_err(|_| {
            err(
                ErrorKind::WorkerTimeout,
                format!("worker {w} did not answer within {WORKER_REPLY_TIMEOUT:?}"),
            )
        })
    }

    /// `sync status|commit|flush|resync|bulk|request|purge`.
    pub fn sync(&self, op: SyncOp) -> Result<SyncReply, ErrorReply> {
        match &self.shared.sync {
            Some(s) => s.request(op),
            None => Err(err(
                ErrorKind::BadRequest,
                "sync is off: add a `sync:` section (mode, udp or multicast link) to the ruleset and restart the daemon",
            )),
        }
    }

    /// [`Self::scan`] for the sync thread.
    pub(crate) fn scan_all(
        &self,
        filter: EntryFilter,
        action: ScanAction,
        f: impl FnMut(usize, ScanReply),
    ) -> Result<(), ErrorReply> {
        self.scan(filter, action, f)
    }

    /// Changes from the sync peer for worker `w`.
    pub(crate) fn inject(&self, w: usize, ops: Vec<Inject>) -> Result<InjectReply, ErrorReply> {
        self.ask(w, |reply| WorkerCmd::Inject { ops, reply })
    }

    /// Walk every worker's table, `f` called with each chunk's reply.
    fn scan(
        &self,
        filter: EntryFilter,
        action: ScanAction,
        mut f: impl FnMut(usize, ScanReply),
    ) -> Result<(), ErrorReply> {
        for w in 0..self.shared.workers {
            let mut from = Some(0);
            while let Some(start) = from {
                let buf = Vec::with_capacity(if action == ScanAction::Copy {
                    SCAN_SLOTS
                } else {
                    0
                });
                let r = self.ask(w, |reply| WorkerCmd::Scan {
                    from: start,
                    filter,
                    action,
                    buf,
                    reply,
                })?;
                from = r.next;
                f(w, r);
            }
        }
        Ok(())
    }

    /// `conntrack list|count|flush|get|save`.
    pub fn conntrack(
        &self,
        op: ConntrackOp,
        filter: &ConntrackFilter,
    ) -> Result<ConntrackReply, ErrorReply> {
        if op == ConntrackOp::Get
            && (filter.proto.is_none() || filter.src.is_none() || filter.dst.is_none())
        {
            return Err(err(
                ErrorKind::BadRequest,
                "conntrack get needs a whole tuple: protocol, source and destination (and ports)",
            ));
        }
        let ef = EntryFilter::from_request(filter, op == ConntrackOp::Get)
            .map_err(|m| err(ErrorKind::BadRequest, m))?;
        let mut reply = ConntrackReply::default();
        match op {
            ConntrackOp::List | ConntrackOp::Get | ConntrackOp::Count | ConntrackOp::Save => {
                let mut found: Vec<(usize, Entry)> = Vec::new();
                self.scan(ef, ScanAction::Copy, |w, r| {
                    found.extend(r.entries.into_iter().map(|e| (w, e)));
                })?;
                let now = self.now();
                reply.count = found.len() as u64;
                if op == ConntrackOp::Save {
                    (reply.lines, reply.skipped) =
                        save::format_all(found.iter().map(|(_, e)| e), now);
                } else if op == ConntrackOp::Count {
                    for (_, e) in &found {
                        *reply
                            .by_proto
                            .entry(Proto(e.key.proto).to_string())
                            .or_default() += 1;
                        if e.key.proto == Proto::TCP.0 {
                            let s = state::name(e.tcp.state);
                            *reply.by_state.entry(s.to_string()).or_default() += 1;
                        }
                    }
                } else {
                    found.sort_by_key(|(_, e)| listing::order_key(e));
                    reply.entries = found
                        .iter()
                        .map(|(w, e)| listing::message(*w, e, now))
                        .collect();
                }
            }
            ConntrackOp::Flush => {
                if filter.is_empty() {
                    for w in 0..self.shared.workers {
                        reply.flushed += self.ask(w, |reply| WorkerCmd::FlushAll { reply })?;
                    }
                } else {
                    let mut flushed = 0;
                    self.scan(ef, ScanAction::Expire, |_, r| flushed += r.matched)?;
                    // Reap what was expired: one full sweep of each table, in slices.
                    for w in 0..self.shared.workers {
                        let cap = self.shared.slots[w].stats.read().capacity as usize;
                        for _ in 0..=cap / SCAN_SLOTS {
                            self.ask(w, |reply| WorkerCmd::Sweep {
                                slots: SCAN_SLOTS,
                                reply,
                            })?;
                        }
                    }
                    reply.flushed = flushed;
                }
                reply.count = reply.flushed;
            }
        }
        Ok(reply)
    }

    /// `conntrack_restore`: read every line of `text` (line `first_line` of `file`); unless
    /// all are good, add nothing and say which are not. With `check`, only read. Each entry
    /// goes to the worker that owns its flow, in slices of [`ADOPT_ENTRIES`].
    pub fn restore(
        &self,
        text: &str,
        file: &str,
        first_line: usize,
        check: bool,
    ) -> Result<Restored, ErrorReply> {
        let now = self.now();
        let parsed = save::parse(text, now).map_err(|errors| {
            let n = errors.len();
            ErrorReply {
                kind: ErrorKind::InvalidEntries,
                message: format!(
                    "{n} bad line{} in {file}{}; nothing was restored",
                    if n == 1 { "" } else { "s" },
                    if n > MAX_RESTORE_ERRORS {
                        format!(" (the first {MAX_RESTORE_ERRORS} shown)")
                    } else {
                        String::new()
                    }
                ),
                diagnostics: errors
                    .into_iter()
                    .take(MAX_RESTORE_ERRORS)
                    .map(|e| DiagnosticMsg {
                        severity: "error".into(),
                        file: file.to_string(),
                        line: e.line + first_line.max(1) - 1,
                        col: e.col,
                        message: e.message,
                        hint: Some(e.hint),
                    })
                    .collect(),
            }
        })?;
        let done = Restored {
            parsed: parsed.len() as u64,
            checked: check,
            ..Restored::default()
        };
        if check {
            return Ok(done);
        }
        let added = self
            .adopt_all(parsed.into_iter().map(|p| p.entry).collect())
            .map_err(|mut e| {
                e.message = format!("{} (restoring {file})", e.message);
                e
            })?;
        Ok(Restored {
            parsed: done.parsed,
            checked: false,
            ..added
        })
    }

    /// Put entries into the table, each by the worker that owns its flow, in slices of
    /// [`ADOPT_ENTRIES`]; entries already there stay as they are.
    pub(crate) fn adopt_all(&self, all: Vec<Entry>) -> Result<Restored, ErrorReply> {
        let mut done = Restored::default();
        let workers = self.shared.workers;
        let mut per_worker: Vec<Vec<Entry>> = vec![Vec::new(); workers];
        for e in all {
            per_worker[owner(e.key.symmetric_hash(), workers)].push(e);
        }
        let mut invalid = (0, None);
        for (w, entries) in per_worker.iter().enumerate() {
            for slice in entries.chunks(ADOPT_ENTRIES) {
                let r = self
                    .ask(w, |reply| WorkerCmd::Adopt {
                        entries: slice.to_vec(),
                        reply,
                    })
                    .map_err(|mut e| {
                        e.message = format!(
                            "{}; {} entries were added before that, the rest were not",
                            e.message, done.added
                        );
                        e
                    })?;
                done.added += r.added;
                done.present += r.present;
                done.expired += r.expired;
                done.full += r.full;
                invalid.0 += r.invalid;
                invalid.1 = invalid.1.or(r.invalid_reason);
            }
        }
        if let (n @ 1.., Some(why)) = invalid {
            return Err(err(
                ErrorKind::Internal,
                format!(
                    "the table refused {n} entries ({why}); {} were added",
                    done.added
                ),
            ));
        }
        Ok(done)
    }

    /// Latency histograms since start or the last reset.
    pub fn hist(&self, reset: bool, per_core: bool) -> Result<HistReply, ErrorReply> {
        let mut hs = lock(&self.hist);
        for w in 0..self.shared.workers {
            let spare = hs.spare[w].take().unwrap_or_else(|| Box::new(Hists::new()));
            let mut got = self.ask(w, |reply| WorkerCmd::SwapHist { spare, reply })?;
            hs.total[w].add(&got);
            got.reset();
            hs.spare[w] = Some(got);
        }
        let mut all = Hists::new();
        for h in &hs.total {
            all.add(h);
        }
        let set = |worker: Option<usize>, h: &Hists| HistSet {
            worker,
            forwarded: summary(&h.forwarded),
            dropped: summary(&h.dropped),
            batch: summary(&h.batch),
        };
        let reply = HistReply {
            total: set(None, &all),
            per_core: if per_core {
                hs.total
                    .iter()
                    .enumerate()
                    .map(|(i, h)| set(Some(i), h))
                    .collect()
            } else {
                Vec::new()
            },
            reset,
        };
        if reset {
            for h in &mut hs.total {
                h.reset();
            }
        }
        Ok(reply)
    }
}

fn summary(h: &Histogram<u64>) -> HistSummary {
    if h.is_empty() {
        return HistSummary::default();
    }
    HistSummary {
        count: h.len(),
        min: h.min(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
        buckets: h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
            .collect(),
    }
}
