//! Several pipelines as one engine, the way the daemon's workers share the work: each packet
//! goes to the worker that owns its flow (`owner(steer_hash) `), expectations are shared.
//! Used by `replay --workers N` and the multi-worker tests, single-threaded and on a fake
//! clock: the results must equal one worker's.

use std::sync::Arc;

use crate::conntrack::expect::SharedExpectations;
use crate::defrag::{Defrag, Gather};
use crate::flow::{owner, steer_hash};
use crate::log::LogRecord;
use crate::pipeline::{Outcome, Packet, Pipeline, Reason, Verdict};
use crate::ruleset::CompiledRuleset;
use crate::wire;

/// N pipelines (shards) with shared expectations, and IP fragment reassembly in front.
#[derive(Debug)]
pub struct Sharded {
    pipelines: Vec<Pipeline>,
    /// One reassembler with the whole memory (the daemon's workers each hold 1/N; a replay
    /// that fills it differs there).
    defrag: Defrag,
    /// What `log` rules logged in [`Self::replay_all`], with the index of the packet.
    logged: Vec<(usize, LogRecord)>,
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
        Sharded {
            pipelines,
            defrag: Defrag::new(rules.frag_limits.0, rules.frag_limits.1, 1),
            logged: Vec::new(),
        }
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

    /// One step of every shard's expiry sweep (and of reassembly's).
    pub fn expire(&mut self, now: u64, budget: usize) {
        for p in &mut self.pipelines {
            p.expire(now, budget);
        }
        self.defrag.expire(now, budget);
    }

    pub fn defrag(&self) -> &Defrag {
        &self.defrag
    }

    /// What `log` rules logged during [`Self::replay_all`] since the last call, each with
    /// the index of the packet that was logged (for a reassembled datagram, the fragment
    /// that completed it), in order.
    pub fn take_logged(&mut self) -> Vec<(usize, LogRecord)> {
        std::mem::take(&mut self.logged)
    }

    /// Move what the pipelines logged for packet `index` to `logged`.
    fn collect_logs(&mut self, index: usize) {
        let Sharded {
            pipelines, logged, ..
        } = self;
        for p in pipelines {
            logged.extend(p.log.drain().map(|r| (index, *r)));
        }
    }

    /// Replay packets as `statewall replay` does ([`Self::replay_one`] for each, IP fragments
    /// reassembled first, as the kernel's nf_defrag does) and give each packet's outcome,
    /// in order. `sent(now, frame)` sees every frame that leaves, in order.
    ///
    /// A fragment's outcome is known only once its datagram is: the fragment that completes
    /// it carries the datagram's outcome (its ctstate included); the others get the
    /// datagram's verdict without a ctstate (they never met conntrack), and a fragment
    /// whose datagram never completes, or that reassembly dropped, is dropped
    /// (`frag_held`, `frag_*`). A fragment cut to a multiple of 8 is dropped too: part of
    /// it never leaves. This is how the kernel's recorded answers count fragments
    /// (tests/scenarios-fragments/README.md).
    pub fn replay_all<'a>(
        &mut self,
        packets: impl IntoIterator<Item = (u64, u8, &'a [u8])>,
        mut sent: impl FnMut(u64, &[u8]),
    ) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = Vec::new();
        for (now, in_port, frame) in packets {
            self.expire(now, REPLAY_SWEEP_BUDGET);
            let index = out.len();
            let parsed = wire::parse(frame);
            let gathered = match &parsed {
                Ok(m) => self.defrag.gather(now, frame, m, in_port, index as u64),
                Err(_) => Gather::NotFragment,
            };
            let dropped = |reason| Outcome {
                verdict: Verdict::Drop,
                reason,
                ..Outcome::default()
            };
            match gathered {
                Gather::NotFragment | Gather::Pass => {
                    let p = Packet { frame, in_port };
                    let o = self.process_parsed(now, &p, parsed);
                    if o.verdict == Verdict::Accept {
                        sent(now, frame);
                    }
                    out.push(o);
                }
                Gather::Held => out.push(dropped(Reason::FragHeld)),
                Gather::Dropped(why) => out.push(dropped(Reason::Defrag(why))),
                Gather::Complete => {
                    let Sharded {
                        pipelines, defrag, ..
                    } = self;
                    let datagram = defrag.datagram().unwrap_or_default();
                    let p = Packet {
                        frame: datagram,
                        in_port,
                    };
                    let parsed = wire::parse(datagram);
                    let w = Self::owner_in(pipelines.len(), &parsed);
                    let o = pipelines[w].process_parsed(now, &p, parsed);
                    out.push(o);
                    if o.verdict == Verdict::Accept {
                        defrag.each_fragment(|f, bytes| {
                            sent(now, bytes);
                            let Some(slot) = out.get_mut(f.tag as usize) else {
                                return;
                            };
                            let ctstate = if f.tag as usize == index {
                                o.ctstate
                            } else {
                                None
                            };
                            *slot = Outcome {
                                ctstate,
                                verdict: if f.trimmed {
                                    Verdict::Drop
                                } else {
                                    Verdict::Accept
                                },
                                ..o
                            };
                        });
                    }
                    defrag.finish();
                }
            }
            self.collect_logs(index);
        }
        out
    }

    fn owner_in(
        workers: usize,
        parsed: &Result<crate::packet::PacketMeta, crate::reason::L3Error>,
    ) -> usize {
        parsed
            .as_ref()
            .ok()
            .and_then(steer_hash)
            .map_or(0, |h| owner(h, workers))
    }

    fn process_parsed(
        &mut self,
        now: u64,
        p: &Packet,
        parsed: Result<crate::packet::PacketMeta, crate::reason::L3Error>,
    ) -> Outcome {
        let w = Self::owner_in(self.pipelines.len(), &parsed);
        self.pipelines[w].process_parsed(now, p, parsed)
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
