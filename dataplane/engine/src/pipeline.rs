//! The engine's per-worker packet path, sans IO: frames and a clock in, verdicts out.
//!
//! parse → raw stage → conntrack (shard) → forward stage → confirm. One `Pipeline` per
//! worker owns its conntrack shard; the ruleset is shared read-only (`Arc`) and swapped
//! between batches. Nothing here allocates, locks, or reads a clock.

use std::sync::Arc;

use config::matches::CtState;
use config::ruleset::{Policy, RejectWith};

use crate::classifier::Key;
use crate::conntrack::entry::{status, CachedVerdict};
use crate::conntrack::expect::SharedExpectations;
use crate::conntrack::{HeapSlab, HelperVerdict, Shard, SlabMemory, Track};
use crate::flow::steer_hash;
use crate::log::{LogPlace, LogRing};
use crate::mark::Marks;
use crate::packet::PacketMeta;
use crate::passes::Passes;
use crate::reason::{DropReason, InvalidReason, L3Error};
use crate::ruleset::{CompiledRuleset, Target};
use crate::wire::{self, proto};

/// Packets parsed and prefetched together by [`Pipeline::process`].
pub const PREFETCH_GROUP: usize = 32;

/// One frame to process and the port it arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub frame: &'a [u8],
    pub in_port: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    #[default]
    Accept,
    Drop,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
        }
    }
}

/// Which stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StageId {
    #[default]
    None,
    Raw,
    Mangle,
    MangleForward,
    Forward,
}

impl StageId {
    /// The stage's name in the YAML and in `replay`'s output.
    pub fn as_str(self) -> &'static str {
        match self {
            StageId::None => "none",
            StageId::Raw => "raw",
            StageId::Mangle => "mangle",
            StageId::MangleForward => "mangle_forward",
            StageId::Forward => "forward",
        }
    }
}

/// Why the verdict is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reason {
    /// A rule of `stage` matched.
    #[default]
    Rule,
    /// No rule matched: the stage's policy.
    Policy,
    /// ARP and other non-IP frames pass untracked.
    NonIp,
    /// Dropped before conntrack.
    Malformed(L3Error),
    /// Conntrack found the packet INVALID (the rules still decided the verdict).
    Invalid(InvalidReason),
    TableFull,
    NoRoute,
    /// The FTP helper dropped a partial or malformed command.
    HelperDrop,
    /// An IP fragment held for a datagram that was never completed (or, for an accepted
    /// datagram, the datagram's verdict carried to its fragments).
    FragHeld,
    /// An IP fragment reassembly consumed ([`crate::defrag`]).
    Defrag(crate::defrag::FragDrop),
}

impl Reason {
    /// The machine-readable `reason` of `replay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::Policy => "policy",
            Reason::NonIp => "non_ip",
            Reason::Malformed(e) => e.as_str(),
            Reason::Invalid(r) => r.as_str(),
            Reason::TableFull => "table_full",
            Reason::NoRoute => "no_route",
            Reason::HelperDrop => "helper_drop",
            Reason::FragHeld => "frag_held",
            Reason::Defrag(d) => d.as_str(),
        }
    }
}

/// The result for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub verdict: Verdict,
    /// `None` for packets that never reached conntrack (non-IP, malformed, table full).
    pub ctstate: Option<CtState>,
    pub stage: StageId,
    /// Position of the matched rule in `stage`, `None` for the policy or no stage.
    pub rule: Option<u32>,
    pub reason: Reason,
    /// Port to send an accepted packet out of.
    pub out_port: Option<u8>,
    /// The verdict came from the per-flow cache (the rules were not walked).
    pub cached: bool,
    /// The packet was dropped by a `reject` rule: the runtime sends the answer
    /// ([`crate::reject::build`]) with `reject_with` back out of the ingress port.
    pub reject: bool,
    pub reject_with: Option<RejectWith>,
}

/// Per-worker counters, written only by the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub accepted: u64,
    pub dropped: [u64; DropReason::COUNT],
    /// Packets by ctstate (`CtState as usize`).
    pub ctstate: [u64; 5],
    pub invalid: [u64; InvalidReason::COUNT],
    pub cache_hits: u64,
}

impl Counters {
    /// A drop by `stage`'s rule `rule`, or by its policy (`rule` None).
    #[inline]
    fn stage_drop(
        &mut self,
        stage: StageId,
        rule: Option<u32>,
        ctstate: Option<CtState>,
    ) -> Outcome {
        let (reason, why) = match rule {
            Some(_) => (Reason::Rule, DropReason::Rule),
            None => (Reason::Policy, DropReason::Policy),
        };
        let o = Outcome {
            ctstate,
            stage,
            rule,
            reason,
            ..Outcome::default()
        };
        self.drop(o, why)
    }

    /// Count a drop and turn the outcome into one.
    #[inline]
    fn drop(&mut self, o: Outcome, why: DropReason) -> Outcome {
        self.dropped[why as usize] += 1;
        Outcome {
            verdict: Verdict::Drop,
            out_port: None,
            ..o
        }
    }
}

/// Store the connection mark the rules left in `marks` in the packet's entry (the
/// kernel's `ct->mark` is written in place; an unconfirmed entry keeps it if accepted).
#[inline]
fn keep_ct_mark<M: SlabMemory>(shard: &mut Shard<M>, track: Track, marks: &Marks) {
    let Some(mark) = marks.ct.get() else {
        return;
    };
    match track {
        Track::Tracked { id, .. } => shard.set_mark(id, mark),
        Track::New { .. } => {
            if let Some(e) = shard.pending_mut() {
                e.mark = mark;
            }
        }
        _ => {}
    }
}

/// One worker's engine.
#[derive(Debug)]
pub struct Pipeline<M: SlabMemory = HeapSlab> {
    rules: Arc<CompiledRuleset>,
    shard: Shard<M>,
    pub counters: Counters,
    /// What `log` rules recorded since the caller last drained it.
    pub log: LogRing,
    /// What the rules that went on with a mark action counted since the caller last drained
    /// it.
    pub passes: Passes,
}

impl Pipeline {
    /// A single-worker pipeline whose shard holds `capacity` entries.
    pub fn new(rules: Arc<CompiledRuleset>, capacity: usize) -> Pipeline {
        let expect = Arc::new(SharedExpectations::new(rules.expect_max));
        Pipeline::with_expectations(rules, capacity, expect)
    }

    /// One worker's pipeline of a multi-worker engine: its own shard, the engine's shared
    /// expectations.
    pub fn with_expectations(
        rules: Arc<CompiledRuleset>,
        capacity: usize,
        expect: Arc<SharedExpectations>,
    ) -> Pipeline {
        Pipeline::with_slab(rules, crate::conntrack::table::heap_slab(capacity), expect)
    }
}

impl<M: SlabMemory> Pipeline<M> {
    /// One worker's pipeline whose shard keeps its entries in `slab` (one per slot).
    pub fn with_slab(
        rules: Arc<CompiledRuleset>,
        slab: M,
        expect: Arc<SharedExpectations>,
    ) -> Pipeline<M> {
        let shard = Shard::with_slab(slab, rules.sysctls, &rules.ftp_ports, expect);
        Pipeline {
            passes: Passes::for_rules(&rules),
            rules,
            shard,
            counters: Counters::default(),
            log: LogRing::default(),
        }
    }

    pub fn rules(&self) -> &Arc<CompiledRuleset> {
        &self.rules
    }

    /// Swap in a new ruleset (between batches). Conntrack state survives; cached verdicts
    /// of the old generation stop matching.
    pub fn set_rules(&mut self, rules: Arc<CompiledRuleset>) {
        self.shard.set_sysctls(rules.sysctls);
        self.shard.set_ftp_ports(&rules.ftp_ports);
        // Counts of the old rules are for the old rules: the caller drains them first.
        self.passes = Passes::for_rules(&rules);
        self.rules = rules;
    }

    pub fn shard(&self) -> &Shard<M> {
        &self.shard
    }

    pub fn shard_mut(&mut self) -> &mut Shard<M> {
        &mut self.shard
    }

    /// Run the bounded expiry sweep (call between batches).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        self.shard.expire(now, budget)
    }

    /// The clock-paced timeout sweep: the whole table once a second, at most `max` slots a
    /// call (the runtime calls it after every batch).
    pub fn sweep(&mut self, now: u64, max: usize) -> usize {
        self.shard.sweep(now, max)
    }

    /// Process a batch at time `now` (ns); `out[i]` receives packet `i`'s outcome, exactly
    /// as `process_one` would have given it, packet by packet in order.
    ///
    /// Batched in groups of [`PREFETCH_GROUP`]: parse every frame and hash its flow, then
    /// start fetching each flow's index slot and entry (their loads overlap, where one at a
    /// time each would wait out a cache miss), then run the packets through in order.
    pub fn process(&mut self, now: u64, batch: &[Packet], out: &mut [Outcome]) {
        let mut parsed = [Err(L3Error::Truncated); PREFETCH_GROUP];
        let mut hashes = [None; PREFETCH_GROUP];
        for (pkts, outs) in batch
            .chunks(PREFETCH_GROUP)
            .zip(out.chunks_mut(PREFETCH_GROUP))
        {
            for ((p, m), h) in pkts.iter().zip(&mut parsed).zip(&mut hashes) {
                *m = wire::parse(p.frame);
                *h = m.as_ref().ok().and_then(steer_hash);
            }
            for h in hashes[..pkts.len()].iter().flatten() {
                self.shard.prefetch(*h);
            }
            for (((p, m), h), o) in pkts.iter().zip(&parsed).zip(&hashes).zip(outs.iter_mut()) {
                *o = self.process_ref(now, p, m, *h);
            }
        }
    }

    /// One packet through every stage.
    #[inline]
    pub fn process_one(&mut self, now: u64, p: &Packet) -> Outcome {
        let parsed = wire::parse(p.frame);
        self.process_parsed(now, p, parsed)
    }

    /// One packet whose frame the caller already parsed (workers parse once to find the
    /// owner, then hand the result here).
    #[inline]
    pub fn process_parsed(
        &mut self,
        now: u64,
        p: &Packet,
        parsed: Result<PacketMeta, L3Error>,
    ) -> Outcome {
        self.process_hashed(now, p, parsed, None)
    }

    /// As [`Self::process_parsed`], with the packet's [`crate::flow::steer_hash`] when the
    /// caller computed it already (it is then not computed again).
    pub fn process_hashed(
        &mut self,
        now: u64,
        p: &Packet,
        parsed: Result<PacketMeta, L3Error>,
        hash: Option<u64>,
    ) -> Outcome {
        self.process_ref(now, p, &parsed, hash)
    }

    /// [`Self::process_hashed`] on a parse result it borrows (the batch keeps its parse
    /// results; copying each `PacketMeta` again would cost as much as the work saved).
    #[inline]
    fn process_ref(
        &mut self,
        now: u64,
        p: &Packet,
        parsed: &Result<PacketMeta, L3Error>,
        hash: Option<u64>,
    ) -> Outcome {
        // Disjoint borrows: the ruleset is read while the shard and counters are written.
        let Pipeline {
            rules,
            shard,
            counters,
            log,
            passes,
        } = self;
        let rules: &CompiledRuleset = rules;
        counters.rx_packets += 1;
        counters.rx_bytes += p.frame.len() as u64;
        let out_port = rules.peer.get(usize::from(p.in_port)).copied().flatten();
        let m = match parsed {
            Ok(m) => m,
            Err(e) => {
                let o = Outcome {
                    reason: Reason::Malformed(*e),
                    ..Outcome::default()
                };
                return counters.drop(o, DropReason::Malformed);
            }
        };
        if out_port.is_none() {
            let o = Outcome {
                reason: Reason::NoRoute,
                ..Outcome::default()
            };
            return counters.drop(o, DropReason::NoRoute);
        }
        if !m.is_ip {
            counters.accepted += 1;
            return Outcome {
                reason: Reason::NonIp,
                out_port,
                ..Outcome::default()
            };
        }
        // The packet's mark and, after conntrack, its connection's.
        let marks = Marks::new();
        // The classifier key is built only for a stage that is walked: a packet answered by
        // the verdict cache (and an empty raw stage) needs none.
        let mut decide = |id: StageId, ctstate: Option<CtState>, ctdir| {
            let stage = match id {
                StageId::Raw => &rules.raw,
                StageId::Mangle => &rules.mangle,
                StageId::MangleForward => &rules.mangle_forward,
                _ => &rules.forward,
            };
            let key = Key::from_meta(m, p.in_port, out_port.unwrap_or(0), ctstate, ctdir);
            let at = LogPlace {
                time: now,
                stage: id,
                in_port: p.in_port,
                out_port,
            };
            let mut logged = |r, o: Option<&_>| match o {
                Some(o) => log.record(at, r, o, m, p.frame, marks.packet.get()),
                None => passes.record(id, r, p.frame.len() as u64),
            };
            let pkt = (m, p.frame);
            stage
                .decide_truncated(pkt, &key, &rules.ports, &marks, now, &mut logged)
                .unwrap_or_else(|| stage.decide(&key, pkt, &marks, now, &mut logged))
        };

        // Raw stage: before conntrack.
        let (raw_rule, raw_action) = if rules.raw.rule_count() == 0 {
            // No raw rules: the policy (accept or drop), without a lookup.
            rules.raw.decide_policy()
        } else {
            decide(StageId::Raw, None, None)
        };
        let notrack = match raw_action {
            Target::Notrack => true,
            Target::Accept => false,
            _ => {
                return counters.stage_drop(StageId::Raw, raw_rule, None);
            }
        };

        // Conntrack.
        let track = if notrack {
            Track::Untracked
        } else {
            let csum_ok = !rules.sysctls.checksum
                || !matches!(
                    m.proto,
                    proto::ICMP | proto::TCP | proto::UDP | proto::ICMPV6 | proto::UDPLITE
                )
                || wire::l4_checksum_ok(p.frame, m);
            shard.track_hashed(now, m, p.frame, csum_ok, hash)
        };
        let Some(state) = track.ctstate() else {
            let o = Outcome {
                reason: Reason::TableFull,
                ..Outcome::default()
            };
            return counters.drop(o, DropReason::TableFull);
        };
        counters.ctstate[state as usize] += 1;
        if let Track::Invalid(r) = track {
            counters.invalid[r as usize] += 1;
        }
        let ctstate = Some(state);
        let ctdir = track.ctdir();
        if rules.uses_ct_mark {
            marks.ct.set(match track {
                Track::Tracked { id, .. } => Some(shard.entry(id).mark),
                Track::New { .. } => shard.pending_mut().map(|e| e.mark),
                _ => None,
            });
        }

        // The mangle stages (PREROUTING's, FORWARD's): marks; a drop drops, an accept goes
        // on to the next stage.
        for (id, stage) in [
            (StageId::Mangle, &rules.mangle),
            (StageId::MangleForward, &rules.mangle_forward),
        ] {
            if stage.rule_count() > 0 || stage.policy != Policy::Accept {
                let (rule, action) = decide(id, ctstate, ctdir);
                keep_ct_mark(shard, track, &marks);
                if action != Target::Accept {
                    if let Track::New { .. } = track {
                        shard.discard();
                    }
                    return counters.stage_drop(id, rule, ctstate);
                }
            }
        }

        // Forward stage, through the per-flow verdict cache where the ruleset allows.
        let gen = rules.generation;
        let (rule, accept, cached) = match track {
            Track::Tracked { id, dir, .. } if rules.forward.cacheable(m, ctstate, ctdir) => {
                let e = shard.entry_mut(id);
                match e.cache[dir.idx()].get(gen, state as u8, p.in_port) {
                    Some((rule, accept)) => (rule, accept, true),
                    None => {
                        let (rule, action) = decide(StageId::Forward, ctstate, ctdir);
                        let accept = action == Target::Accept;
                        e.cache[dir.idx()] =
                            CachedVerdict::new(gen, rule, state as u8, p.in_port, accept);
                        (rule, accept, false)
                    }
                }
            }
            _ => {
                let (rule, action) = decide(StageId::Forward, ctstate, ctdir);
                (rule, action == Target::Accept, false)
            }
        };
        if cached {
            counters.cache_hits += 1;
        }
        keep_ct_mark(shard, track, &marks);
        if let Track::New { .. } = track {
            if accept {
                if let Some(e) = shard.pending_mut() {
                    if rules.forward.cacheable(m, ctstate, ctdir) {
                        e.cache[0] = CachedVerdict::new(gen, rule, state as u8, p.in_port, true);
                    }
                }
                shard.confirm();
            } else {
                shard.discard();
            }
        }
        let reason = match track {
            Track::Invalid(r) => Reason::Invalid(r),
            _ if rule.is_some() => Reason::Rule,
            _ => Reason::Policy,
        };
        let o = Outcome {
            verdict: Verdict::Accept,
            ctstate: Some(state),
            stage: StageId::Forward,
            rule,
            reason,
            out_port,
            cached,
            ..Outcome::default()
        };
        if accept {
            if let Track::Tracked {
                id,
                dir,
                state: CtState::Established,
            } = track
            {
                if shard.entry(id).has(status::HELPER_FTP)
                    && shard.help(id, dir, m, p.frame, now) == HelperVerdict::Drop
                {
                    let o = Outcome {
                        reason: Reason::HelperDrop,
                        ..o
                    };
                    return counters.drop(o, DropReason::Helper);
                }
            }
            counters.accepted += 1;
            o
        } else {
            let reject = rule.filter(|&r| rules.forward.target(r) == Some(Target::Reject));
            let o = Outcome {
                reject: reject.is_some(),
                reject_with: reject.and_then(|r| rules.forward.reject_with(r)),
                ..o
            };
            counters.drop(
                o,
                if rule.is_some() {
                    DropReason::Rule
                } else {
                    DropReason::Policy
                },
            )
        }
    }
}
