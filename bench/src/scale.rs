//! `statewall-bench scale`: the engine on several cores at once, as the daemon runs it.
//!
//! Each thread is a worker: pinned to its own core, with its own `Pipeline` (conntrack shard)
//! sharing the one compiled ruleset, and its own share of the flows (`flows / threads`, as the
//! owner hash splits them), set up and touched on that core. The traces are the pipeline
//! bench's (see `engine`): established ACKs through the verdict cache, or a steady state of
//! new connections. Every round starts all threads together (a barrier) and counts
//! `--packets` per thread; the round's rate is all their packets over the slowest thread's
//! time. What does not scale shows up as the speedup falling short of the thread count:
//! shared cache and memory bandwidth, the ruleset's cache lines, the machine's other load.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use engine::conntrack::tcp::state;
use engine::pipeline::{Outcome, Pipeline};
use engine::ruleset::CompiledRuleset;

use crate::engine::{
    established_frames, established_pipeline, median, new_conn_step, packets, pipeline_loop,
    syn_frames, synthetic_ruleset, Args,
};

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub common: Args,
    /// Worker thread counts, comma separated (default: 1, 2, 4, ... up to the cores there are).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trace {
    Established,
    New,
}

/// What one worker thread is asked to do.
struct Job {
    rules: Arc<CompiledRuleset>,
    tail: Arc<Vec<u32>>,
    flows: usize,
    trace: Trace,
    core: Option<core_affinity::CoreId>,
    packets: usize,
    rounds: usize,
    batch: usize,
    sweep: usize,
    start: Arc<Barrier>,
}

/// One worker: set up on its core, warm up, then the timed rounds (each after the barrier).
fn worker(j: &Job) -> anyhow::Result<Vec<Duration>> {
    if let Some(c) = j.core {
        ensure!(
            core_affinity::set_for_current(c),
            "cannot pin to core {}",
            c.id
        );
    }
    let (mut p, frames, order, step, first_now) = match j.trace {
        Trace::Established => {
            let p = established_pipeline(&j.rules, j.flows, &j.tail)?;
            let (frames, order) = established_frames(j.flows, &j.tail);
            (p, frames, order, 1, 2)
        }
        Trace::New => {
            let p = Pipeline::new(Arc::clone(&j.rules), j.flows);
            let (frames, order) = syn_frames(j.flows, &j.tail);
            let timeout = j.rules.sysctls.tcp[state::SYN_SENT as usize];
            (
                p,
                frames,
                order,
                new_conn_step(j.flows, j.batch, timeout),
                1,
            )
        }
    };
    let pkts = packets(&frames, &order);
    let mut out = vec![Outcome::default(); j.batch];
    let (mut pos, mut now) = (0, first_now);
    // Warm-up: the trace twice (for new connections: fill the table, then every SYN replaces
    // an expired entry).
    pipeline_loop(
        &mut p,
        &pkts,
        &mut pos,
        2 * pkts.len(),
        j.batch,
        &mut now,
        step,
        j.sweep,
        &mut out,
        None,
    );
    let mut times = Vec::with_capacity(j.rounds);
    for _ in 0..j.rounds {
        j.start.wait();
        let t = Instant::now();
        let accepted = pipeline_loop(
            &mut p, &pkts, &mut pos, j.packets, j.batch, &mut now, step, j.sweep, &mut out, None,
        );
        times.push(t.elapsed());
        ensure!(
            accepted == j.packets as u64,
            "{accepted} of {} accepted",
            j.packets
        );
    }
    Ok(times)
}

/// Aggregate Mpps of each round: all threads' packets over the slowest thread's time.
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn round_rates(times: &[Vec<Duration>], packets: usize) -> Vec<f64> {
    let rounds = times.first().map_or(0, Vec::len);
    (0..rounds)
        .map(|r| {
            let slowest = times.iter().map(|t| t[r]).max().unwrap_or_default();
            (times.len() * packets) as f64 / slowest.as_secs_f64() / 1e6
        })
        .collect()
}

#[expect(clippy::cast_precision_loss, reason = "thread counts")]
pub fn run(a: &ScaleArgs) -> anyhow::Result<()> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads = if a.threads.is_empty() {
        std::iter::successors(Some(1), |&t| Some(t * 2))
            .take_while(|&t| t <= cores.len().max(1))
            .collect()
    } else {
        a.threads.clone()
    };
    let c = &a.common;
    println!(
        "# scale: {} cores; each thread pinned to its own core, flows split evenly",
        cores.len()
    );
    println!(
        "{:<12} {:>9} {:>6} {:>7} {:>11} {:>11} {:>8} {:>8} {:>8}",
        "trace", "flows", "rules", "threads", "total_Mpps", "Mpps/thread", "speedup", "min", "max"
    );
    let mut traces = Vec::new();
    if c.traffic.established() {
        traces.push(Trace::Established);
    }
    if c.traffic.new_conns() {
        traces.push(Trace::New);
    }
    for &flows in &c.flows {
        for &r in &c.rules {
            let (rules, tail) = synthetic_ruleset(r)?;
            let (rules, tail) = (Arc::new(rules), Arc::new(tail));
            for &trace in &traces {
                let mut one = None;
                for &n in &threads {
                    ensure!(n >= 1, "--threads: counts are at least 1");
                    if n > cores.len() {
                        println!("# {n} threads on {} cores: some share a core", cores.len());
                    }
                    let start = Arc::new(Barrier::new(n));
                    let handles: Vec<_> = (0..n)
                        .map(|i| {
                            let job = Job {
                                rules: Arc::clone(&rules),
                                tail: Arc::clone(&tail),
                                flows: (flows / n).max(1),
                                trace,
                                core: (!cores.is_empty()).then(|| cores[i % cores.len()]),
                                packets: c.packets,
                                rounds: c.rounds,
                                batch: c.batch.max(1),
                                sweep: c.sweep,
                                start: Arc::clone(&start),
                            };
                            std::thread::Builder::new()
                                .name(format!("scale-{i}"))
                                .spawn(move || worker(&job))
                        })
                        .collect::<Result<_, _>>()
                        .context("spawning a worker thread")?;
                    let mut times = Vec::with_capacity(n);
                    for h in handles {
                        let t = h
                            .join()
                            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
                        times.push(t?);
                    }
                    let (med, min, max) = median(round_rates(&times, c.packets));
                    let base = *one.get_or_insert(med / n as f64);
                    println!(
                        "{:<12} {:>9} {:>6} {:>7} {:>11.2} {:>11.2} {:>8.2} {:>8.2} {:>8.2}",
                        match trace {
                            Trace::Established => "established",
                            Trace::New => "new",
                        },
                        flows,
                        r,
                        n,
                        med,
                        med / n as f64,
                        med / base,
                        min,
                        max
                    );
                }
            }
        }
    }
    Ok(())
}
