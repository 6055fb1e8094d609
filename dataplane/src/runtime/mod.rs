//! The daemon's runtime: pinned workers around the sans-IO engine, ruleset publication,
//! per-worker statistics and the control server. Generic over one IO trait ([`PortIo`]):
//! AF_XDP ports in the daemon, [`mem::MemPorts`] in tests.
//!
//! ```text
//!             control thread(s) ──publish(gen, Arc<CompiledRuleset>)──► workers (batch boundary)
//!                  │  ▲ commands (scan/flush/hist swap) ▼ replies
//! port p queue i ──► worker i: parse → owner? ──yes──► Pipeline i ──► TX of out_port
//!                                  └─no─► handoff ring of the owner (bounded; full = drop)
//! ```
//!
//! [`Runtime::start`] spawns the workers; [`RuntimeHandle`] is what the control side uses
//! (apply, stats, conntrack, histograms, settings); [`server::ControlServer`] speaks the
//! control protocol on a unix socket. `dataplane/docs/multicore.md` holds the reasoning.

pub mod cmd;
pub mod doorbell;
pub mod handle;
pub mod io;
pub mod liveness;
pub mod mem;
pub mod metrics;
pub mod packet_log;
mod poll;
pub mod server;
pub mod state;
pub mod stats;
pub(crate) mod sync;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::Instant;

use crossbeam::channel::{self, Sender};
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use engine::conntrack::expect::SharedExpectations;
use engine::pipeline::Pipeline;
use engine::ruleset::{CompileError, CompiledRuleset};

use self::cmd::WorkerCmd;
use self::doorbell::Doorbell;
pub use self::handle::RuntimeHandle;
pub use self::io::PortIo;
use self::stats::{Hists, RuleCounters, StatsCell};

/// Frames received per port per batch (DESIGN.md §2).
pub const DEFAULT_BATCH: usize = 64;
/// Most table slots the expiry sweep visits after one batch: a mass expiry never stalls a
/// worker for more than this many entries. The sweep itself is paced by the clock (the whole
/// table once a second, `conntrack::table::SWEEP_PERIOD_NS`), not by the batch rate: walking
/// a fixed number of slots after every batch made a worker that loops fast (light load, small
/// batches) spend most of its time streaming the table through the cache.
pub const DEFAULT_SWEEP_BUDGET: usize = 1024;
/// Packets a handoff ring holds (per receiving worker).
pub const DEFAULT_HANDOFF_RING: usize = 1024;
/// Commands a worker's queue holds.
const CMD_QUEUE: usize = 16;

/// Join `t` if it ends within `wait`; otherwise leave it running (an accept loop that its
/// wake-up connection could not reach) and say so. For the servers' shutdowns.
pub(crate) fn join_within(t: JoinHandle<()>, wait: std::time::Duration) -> bool {
    let deadline = Instant::now() + wait;
    while !t.is_finished() && Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(1));
    }
    t.is_finished() && t.join().is_ok()
}

/// Adaptive mode's default busy-poll time (µs): see `RuntimeConfig::busy_poll_ns`.
pub const DEFAULT_BUSY_POLL_US: u64 = 50;

/// How an idle worker waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Spin forever: lowest latency, one core per worker at 100% (a dedicated box).
    Busy,
    /// Spin while packets come closer together than the busy-poll time, for at most that
    /// long, else wait on the IO until a frame arrives or the doorbell rings (`poll.rs`): an
    /// idle or lightly loaded gateway sleeps.
    #[default]
    Adaptive,
}

impl std::str::FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "busy" => Ok(PollMode::Busy),
            "adaptive" => Ok(PollMode::Adaptive),
            _ => Err(format!("poll mode `{s}`: use busy or adaptive")),
        }
    }
}

/// Where `now` comes from. The engine never reads a clock; workers read this once per batch.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Nanoseconds since the runtime started (CLOCK_MONOTONIC).
    Monotonic(Instant),
    /// Whatever the test stores (nanoseconds).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn monotonic() -> Clock {
        Clock::Monotonic(Instant::now())
    }

    /// Engine time now (ns). Starts at 1 so that 0 stays "never".
    #[inline]
    pub fn now(&self) -> u64 {
        match self {
            Clock::Monotonic(epoch) => epoch.elapsed().as_nanos() as u64 + 1,
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// How to run the workers.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub batch: usize,
    pub poll: PollMode,
    /// Adaptive mode: how long an idle worker may spin before it waits on the IO (ns), like the
    /// kernel's `net.core.busy_poll`.
    pub busy_poll_ns: u64,
    pub sweep_budget: usize,
    pub handoff_ring: usize,
    /// Pin worker i to `cores[i]` (or, without a list, to the i-th core the OS offers).
    pub pin: bool,
    pub cores: Option<Vec<usize>>,
    pub clock: Clock,
    /// How the ports are driven, one line per port/queue, for `stats` (XDP mode, zero-copy).
    pub io_mode: Vec<String>,
    /// The state file (`--state PATH`): the table is restored from it at start and lives in
    /// it while running; `None` keeps the table in anonymous memory (`--state none`).
    pub state: Option<std::path::PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            batch: DEFAULT_BATCH,
            poll: PollMode::Adaptive,
            busy_poll_ns: DEFAULT_BUSY_POLL_US * 1000,
            sweep_budget: DEFAULT_SWEEP_BUDGET,
            handoff_ring: DEFAULT_HANDOFF_RING,
            pin: true,
            cores: None,
            clock: Clock::monotonic(),
            io_mode: Vec::new(),
            state: None,
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no workers: give at least one IO (one per worker)")]
    NoWorkers,
    #[error("worker {worker}'s IO has {got} ports, the ruleset declares {want} ({names})")]
    PortCount {
        worker: usize,
        got: usize,
        want: usize,
        names: String,
    },
    #[error("{0}")]
    Compile(#[from] CompileError),
    #[error("cannot start a worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("cannot create a worker's doorbell (a unix socket pair): {0}")]
    Doorbell(std::io::Error),
    #[error("{0}")]
    State(#[from] state::StateError),
    #[error("sync: {0}")]
    Sync(std::io::Error),
}

/// A packet on its way to its owner: the bytes (a pooled buffer of the sender), the port it
/// arrived on, the sender (to return the buffer), and the receive time.
#[derive(Debug)]
pub(crate) struct Handoff {
    buf: Vec<u8>,
    in_port: u8,
    from: u16,
    rx_ns: u64,
    /// An IP fragment for the receiving worker's reassembly (sent to the worker that
    /// reassembles its datagram, or by that worker to the datagram's flow owner).
    fragment: bool,
}

/// The ruleset generation workers pick up, with each worker's rule counters for it.
#[derive(Debug)]
pub(crate) struct Published {
    rules: Arc<CompiledRuleset>,
    counters: Vec<Arc<RuleCounters>>,
    at: Instant,
}

/// What the control side sees of a worker.
#[derive(Debug)]
pub(crate) struct WorkerSlot {
    stats: StatsCell,
    /// Set while the worker waits in adaptive mode (handoff senders then wake it).
    sleeping: AtomicBool,
    /// Wakes the worker from its wait on the rings.
    bell: Doorbell,
    thread: OnceLock<Thread>,
    cmds: Sender<WorkerCmd>,
    /// Set by the worker when it enters its loop, cleared when it leaves it.
    running: AtomicBool,
    /// Bumped by the worker once per loop iteration (`liveness`: the watchdog's evidence
    /// that it makes progress). On a line of its own: the worker writes it every iteration,
    /// and handoff senders read `sleeping` beside it.
    heartbeat: CachePadded<AtomicU64>,
}

impl WorkerSlot {
    /// Wake the worker: ring its doorbell (its wait on the rings) and unpark its thread (the
    /// in-memory IO's wait).
    fn wake(&self) {
        self.bell.ring();
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// State shared by the workers and the control side.
#[derive(Debug)]
pub(crate) struct Shared {
    stop: AtomicBool,
    clock: Clock,
    workers: usize,
    /// The published generation: workers compare it with theirs once per batch.
    generation: AtomicU32,
    published: Mutex<Published>,
    expect: Arc<SharedExpectations>,
    slots: Vec<WorkerSlot>,
    /// `inbox[i]`: packets handed to worker i.
    inbox: Vec<ArrayQueue<Handoff>>,
    /// `returns[i]`: worker i's handoff buffers coming back.
    returns: Vec<ArrayQueue<Vec<u8>>>,
    started: Instant,
    io_mode: Vec<String>,
    /// What `log` rules logged, on its way to the log.
    packet_log: packet_log::PacketLog,
    /// The sync with the peer gateway (`sync:` in the ruleset), when configured.
    sync: Option<sync::SyncShared>,
}

impl Shared {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Make `rules` the running generation. Workers switch at their next batch boundary.
    fn publish(&self, rules: Arc<CompiledRuleset>) {
        let counters = (0..self.workers)
            .map(|_| {
                Arc::new(RuleCounters::new([
                    rules.raw.rule_count(),
                    rules.mangle.rule_count(),
                    rules.mangle_forward.rule_count(),
                    rules.forward.rule_count(),
                ]))
            })
            .collect();
        let g = rules.generation;
        *self.published() = Published {
            rules,
            counters,
            at: Instant::now(),
        };
        self.generation.store(g, Ordering::Release);
    }
}

/// The running workers.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<Shared>,
    handle: RuntimeHandle,
    threads: Vec<JoinHandle<()>>,
    /// The writer of `log` rules' lines.
    logger: Option<JoinHandle<()>>,
    /// The sync thread, when sync is on.
    sync: Option<JoinHandle<()>>,
    state: Option<state::StateFile>,
    restored: state::RestoreReport,
}

impl Runtime {
    /// Start one worker per IO (worker i polls queue i of every port through `ios[i]`),
    /// running `ruleset` (already validated; `yaml` and `file` are what `show` reports) as
    /// generation 1.
    pub fn start<Io: PortIo>(
        ruleset: &config::Ruleset,
        yaml: &str,
        file: &str,
        ios: Vec<Io>,
        cfg: &RuntimeConfig,
    ) -> Result<Runtime, StartError> {
        let n = ios.len();
        if n == 0 {
            return Err(StartError::NoWorkers);
        }
        let rules = Arc::new(CompiledRuleset::compile(ruleset, 1)?);
        for (i, io) in ios.iter().enumerate() {
            if io.port_count() != rules.ports.len() {
                return Err(StartError::PortCount {
                    worker: i,
                    got: io.port_count(),
                    want: rules.ports.len(),
                    names: rules.ports.join(", "),
                });
            }
        }
        let expect = Arc::new(SharedExpectations::new(rules.expect_max));
        let per_shard = rules.max_entries.div_ceil(n);
        let buf_capacity = ios.iter().map(PortIo::capacity).max().unwrap_or(2048);
        // Each worker's buffer pool covers a full ring to every other worker: a full ring,
        // not an empty pool, is what limits a burst.
        let pool_size = cfg.handoff_ring * n.saturating_sub(1).max(1);
        let mut receivers = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = channel::bounded(CMD_QUEUE);
            receivers.push(rx);
            slots.push(WorkerSlot {
                stats: StatsCell::default(),
                sleeping: AtomicBool::new(false),
                bell: Doorbell::new().map_err(StartError::Doorbell)?,
                thread: OnceLock::new(),
                cmds: tx,
                running: AtomicBool::new(false),
                heartbeat: CachePadded::new(AtomicU64::new(0)),
            });
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            clock: cfg.clock.clone(),
            workers: n,
            generation: AtomicU32::new(0),
            published: Mutex::new(Published {
                rules: Arc::clone(&rules),
                counters: Vec::new(),
                at: Instant::now(),
            }),
            expect: Arc::clone(&expect),
            slots,
            inbox: (0..n)
                .map(|_| ArrayQueue::new(cfg.handoff_ring.max(1)))
                .collect(),
            returns: (0..n).map(|_| ArrayQueue::new(pool_size.max(1))).collect(),
            started: Instant::now(),
            io_mode: cfg.io_mode.clone(),
            packet_log: packet_log::PacketLog::default(),
            sync: ruleset.sync.as_ref().map(|c| sync::SyncShared::new(c, n)),
        });
        shared.publish(Arc::clone(&rules));
        let handle = RuntimeHandle::new(Arc::clone(&shared), ruleset.clone(), yaml, file);
        let cores = if cfg.pin {
            let ids = core_affinity::get_core_ids().unwrap_or_default();
            if ids.is_empty() {
                crate::log_warn!("cannot list the CPU cores; workers run unpinned");
            }
            let pick = |i: usize| -> Option<core_affinity::CoreId> {
                match &cfg.cores {
                    Some(list) => list.get(i).map(|&id| core_affinity::CoreId { id }),
                    None => ids.get(i % ids.len().max(1)).copied(),
                }
            };
            (0..n).map(pick).collect()
        } else {
            vec![None; n]
        };
        // The shards' slabs in the state file (or anonymous memory), and the old file's
        // entries adopted by the shards that own them in this process.
        let geometry = engine::state::Geometry {
            shards: n as u32,
            slots_per_shard: per_shard.max(1) as u32,
            expect_max: rules.expect_max as u32,
        };
        let now = cfg.clock.now();
        let mut opened = state::StateFile::open(cfg.state.as_deref(), geometry, now)?;
        let mut pipelines: Vec<Pipeline<state::ShardSlab>> = std::mem::take(&mut opened.slabs)
            .into_iter()
            .map(|slab| Pipeline::with_slab(Arc::clone(&rules), slab, Arc::clone(&expect)))
            .collect();
        let (state_file, restored) = opened.restore(now, &expect, |e| {
            let o = engine::flow::owner(e.key.symmetric_hash(), n);
            pipelines[o].shard_mut().adopt(e)
        })?;
        if let Some(c) = &ruleset.sync {
            for p in &mut pipelines {
                p.shard_mut()
                    .enable_events(sync::EVENT_LOG, u64::from(c.refresh) * 1_000_000_000);
            }
        }
        // The sync link opens before any worker runs: a link that cannot open stops the start.
        let sync_thread = sync::start(&shared, handle.clone()).map_err(StartError::Sync)?;
        let mut threads = Vec::with_capacity(n);
        let published = shared.published();
        let counters = published.counters.clone();
        drop(published);
        for (i, ((io, cmds), pipeline)) in ios.into_iter().zip(receivers).zip(pipelines).enumerate()
        {
            let w = worker::Worker {
                id: i,
                io,
                pipeline,
                shared: Arc::clone(&shared),
                cmds,
                generation: rules.generation,
                rule_counters: Arc::clone(&counters[i]),
                hists: Box::new(Hists::new()),
                batch: cfg.batch.max(1),
                poll: cfg.poll,
                busy_poll_ns: cfg.busy_poll_ns,
                sweep_budget: cfg.sweep_budget,
                pool: (0..pool_size)
                    .map(|_| Vec::with_capacity(buf_capacity))
                    .collect(),
                buf_capacity,
                core: cores[i],
                defrag: engine::defrag::Defrag::new(rules.frag_limits.0, rules.frag_limits.1, n),
                log_lost: 0,
                sync_lost: 0,
            };
            let t = thread::Builder::new()
                .name(format!("sw-worker-{i}"))
                .spawn(move || w.run());
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    for t in threads {
                        let _ = t.join();
                    }
                    if let Some(t) = sync_thread {
                        let _ = t.join();
                    }
                    return Err(StartError::Spawn(e));
                }
            }
        }
        let logger = match packet_log::start(Arc::clone(&shared)) {
            Ok(t) => Some(t),
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                for s in &shared.slots {
                    s.wake();
                }
                for t in threads {
                    let _ = t.join();
                }
                if let Some(t) = sync_thread {
                    let _ = t.join();
                }
                return Err(StartError::Spawn(e));
            }
        };
        Ok(Runtime {
            shared,
            handle,
            threads,
            logger,
            sync: sync_thread,
            state: Some(state_file),
            restored,
        })
    }

    /// What the start restored from the state file.
    pub fn restored(&self) -> &state::RestoreReport {
        &self.restored
    }

    /// The control side's handle (cheap to clone, usable from any thread).
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Whether the workers run and make progress (for systemd's watchdog).
    pub fn liveness(&self) -> liveness::Liveness {
        liveness::Liveness::new(Arc::clone(&self.shared))
    }

    /// Stop the workers (each finishes its batch) and wait for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in &self.shared.slots {
            s.wake();
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                crate::log_error!("a worker panicked");
            }
        }
        // The workers' last events are on the rings: the sync thread sends them and ends.
        if let Some(t) = self.sync.take() {
            if t.join().is_err() {
                crate::log_error!("the sync thread panicked");
            }
        }
        // The workers handed over their last records: write them, then stop the writer.
        self.shared.packet_log.stop.store(true, Ordering::Release);
        if let Some(t) = self.logger.take() {
            let _ = t.join();
        }
        // Every worker is gone, and its slab with it: mark the state file cleanly stopped.
        if let Some(mut s) = self.state.take() {
            if !s.close_clean(&self.shared.expect) {
                crate::log_warn!(
                    "state: could not mark the state file cleanly stopped; the next start checks it slot by slot"
                );
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
