//! Several pipelines as one engine, the way the daemon's workers share the work: each packet
//! goes to the worker that owns its flow (`owner(steer_hash) `), expectations are shared.
//! Used by `replay --workers N` and the multi-worker tests, single-threaded and on a fake
//! clock: the results must equal one worker's.

use std::sync::Arc;

use crate::conntrack::expect::SharedExpectations;
use crate::flow::{owner, steer_hash};
use crate::pipeline::{Outcome, Packet, Pipeline};
use crate::ruleset::CompiledRuleset;
use crate::wire;

/// N pipelines (shards) with shared expectations.
#[derive(Debug)]
pub struct Sharded {
    pipelines: Vec<Pipeline>,
}

impl Sharded {
    /// `workers` pipelines splitting `rules.max_entries` between them.
    pub fn new(rules: &Arc<CompiledRuleset>, workers: usize) -> Sharded {
        let workers = workers.max(1);
        let expect = Arc::new(SharedExpectations::new(rules.expect_max));
        let per_shard = rules.max_entries.div_ceil(workers);
        let pipelines = (0..workers)
            .map(|_| Pipeline::with_expectations(Arc::clone(rules), per_shard, Arc::clone(&expect)))
            .collect();
        Sharded { pipelines }
    }

    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }

    /// The worker that owns a frame (0 for frames without a flow).
    pub fn owner_of(&self, frame: &[u8]) -> usize {
        wire::parse(frame)
            .ok()
            .as_ref()
            .and_then(steer_hash)
            .map_or(0, |h| owner(h, self.pipelines.len()))
    }

    /// Process one packet on its owner (parsed once, as a worker does).
    pub fn process_one(&mut self, now: u64, p: &Packet) -> Outcome {
        let parsed = wire::parse(p.frame);
        let w = parsed
            .as_ref()
            .ok()
            .and_then(steer_hash)
            .map_or(0, |h| owner(h, self.pipelines.len()));
        self.pipelines[w].process_parsed(now, p, parsed)
    }

    /// One step of every shard's expiry sweep.
    pub fn expire(&mut self, now: u64, budget: usize) {
        for p in &mut self.pipelines {
            p.expire(now, budget);
        }
    }

    /// One packet of a capture, as `statewall replay` runs it: the capture's timestamp is the
    /// clock, and [`REPLAY_SWEEP_BUDGET`] entries of each shard are swept before the packet.
    pub fn replay_one(&mut self, now: u64, p: &Packet) -> Outcome {
        self.expire(now, REPLAY_SWEEP_BUDGET);
        self.process_one(now, p)
    }
}

/// Entries each shard's expiry sweep examines per packet in an offline replay.
pub const REPLAY_SWEEP_BUDGET: usize = 16;
