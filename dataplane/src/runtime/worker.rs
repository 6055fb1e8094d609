//! One worker: a pinned thread that owns a [`Pipeline`] (its conntrack shard) and polls its
//! queue of every port. See `docs/multicore.md` for the reasoning.
//!
//! Each loop iteration is one batch:
//!
//! 1. read the clock once (`now` for the engine and the receive timestamp);
//! 2. pick up a newly published ruleset (one atomic load; the lock only when it changed);
//! 3. service at most a few control commands (a bounded table walk each);
//! 4. take packets other workers handed over, then receive up to `batch` frames per port:
//!    parse once, steer by owner; own packets go through the pipeline, others are copied
//!    onto the owner's handoff ring;
//! 5. transmit accepted frames on their out port, release the rest, reap completions,
//!    top up fill rings;
//! 6. record latencies, run a bounded expiry sweep, publish counters;
//! 7. when idle, spin, or (adaptive mode, see `poll`) wait on the IO until a frame arrives or
//!    the worker's doorbell rings.
//!
//! Nothing here allocates or locks per packet: every `Vec` is sized at start, the handoff
//! rings and buffer pools are preallocated, counters are plain integers published by
//! seqlock.

use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread;

use crossbeam::channel::Receiver;

use engine::conntrack::entry::Entry;
use engine::conntrack::save;
use engine::conntrack::AdoptError;
use engine::defrag::{self, Defrag, Gather};
use engine::flow::{owner, steer_hash};
use engine::packet::PacketMeta;
use engine::pipeline::{Outcome, Packet, Pipeline, Verdict};
use engine::reason::{DropReason, L3Error};
use engine::wire;

use super::cmd::{AdoptReply, Inject, InjectReply, ScanAction, ScanReply, WorkerCmd, SCAN_SLOTS};
use super::io::PortIo;
use super::poll::IdlePolicy;
use super::stats::{Hists, RuleCounters, WorkerCounters};
use super::{Handoff, PollMode, Shared};

/// Commands serviced per loop iteration at most.
const CMDS_PER_BATCH: usize = 2;
/// An idle adaptive worker's longest wait (ms). Frames, handoffs, commands, rulesets and
/// shutdown all wake it sooner (the rings and its doorbell); the timeout only paces the
/// expiry sweep of an idle worker's table.
const IDLE_WAIT_MS: i32 = 100;

/// The runtime's own per-worker counters (the engine keeps the rest).
#[derive(Debug, Default)]
struct Local {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    handoffs_out: u64,
    handoffs_in: u64,
    batches: u64,
    handoff_full: u64,
    tx_full: u64,
}

pub(crate) struct Worker<Io: PortIo> {
    pub id: usize,
    pub io: Io,
    pub pipeline: Pipeline<super::state::ShardSlab>,
    pub shared: Arc<Shared>,
    pub cmds: Receiver<WorkerCmd>,
    pub generation: u32,
    pub rule_counters: Arc<RuleCounters>,
    pub hists: Box<Hists>,
    pub batch: usize,
    pub poll: PollMode,
    /// Adaptive mode: how long (ns) an idle worker may spin before it waits on the IO.
    pub busy_poll_ns: u64,
    pub sweep_budget: usize,
    /// Free handoff buffers (capacity: the largest frame).
    pub pool: Vec<Vec<u8>>,
    pub buf_capacity: usize,
    /// Core to pin to, if any.
    pub core: Option<core_affinity::CoreId>,
    /// IP fragment reassembly for the datagrams whose fragments steer here
    /// (`defrag::steer_hash`; `docs/multicore.md`).
    pub defrag: Defrag,
    /// The pipeline's lost log records already counted in the shared log.
    pub log_lost: u64,
    /// The shard's lost sync events already counted.
    pub sync_lost: u64,
}

/// Per-batch scratch, allocated once.
struct Scratch<F> {
    /// Frames received this batch, per port.
    rx: Vec<Vec<F>>,
    tx: Vec<Vec<F>>,
    tx_bytes: Vec<u64>,
    release: Vec<F>,
    /// Receive timestamps of handed-over packets, and whether each was forwarded.
    handed: Vec<(u64, bool)>,
    /// Answers to rejected packets (TCP RST / ICMP unreachable), built during the batch in
    /// fixed slots of `MAX_REPLY` bytes and sent with it; `replies` holds (port, length).
    reject: Vec<u8>,
    replies: Vec<(usize, usize)>,
    /// One port's batch parsed and hashed ahead of processing (see `poll_once`).
    parsed: Vec<(Result<PacketMeta, L3Error>, Option<u64>)>,
}

/// Reject answers sent per batch at most (like the kernel's ICMP rate limit, a flood of
/// rejected packets cannot turn into a flood of answers).
const REJECTS_PER_BATCH: usize = 32;

impl<Io: PortIo> Worker<Io> {
    pub fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                crate::log_warn!(
                    "worker {}: could not pin to core {} (running unpinned)",
                    self.id,
                    core.id
                );
            }
        }
        let _ = self.shared.slots[self.id].thread.set(thread::current());
        let ports = self.io.port_count();
        let per_port = self.batch * 2;
        let mut s = Scratch {
            rx: (0..ports).map(|_| Vec::with_capacity(self.batch)).collect(),
            tx: (0..ports).map(|_| Vec::with_capacity(per_port)).collect(),
            tx_bytes: vec![0; ports],
            release: Vec::with_capacity(per_port * ports.max(1)),
            handed: Vec::with_capacity(self.batch),
            reject: vec![0; engine::reject::MAX_REPLY * REJECTS_PER_BATCH],
            replies: Vec::with_capacity(REJECTS_PER_BATCH),
            parsed: Vec::with_capacity(self.batch),
        };
        let mut local = Local::default();
        let mut idle = IdlePolicy::new(self.poll, self.busy_poll_ns, self.shared.clock.now());
        for p in 0..ports {
            self.io.fill(p);
        }
        self.publish(&local);
        // Liveness (`liveness.rs`): in the loop now, and a heartbeat per iteration.
        let mut beat = 0u64;
        self.shared.slots[self.id]
            .running
            .store(true, Ordering::Release);
        while !self.shared.stop.load(Ordering::Relaxed) {
            beat = beat.wrapping_add(1);
            self.shared.slots[self.id]
                .heartbeat
                .store(beat, Ordering::Relaxed);
            let mut dirty = self.check_publication();
            let (t0, received, fwd, drop) = self.poll_once(&mut s, &mut local);
            dirty |= self.service_commands(t0);
            self.hand_over_log();
            self.hand_over_sync();
            // Frames received (own or handed over ones) are work even when all of them went
            // to other workers: their counters must be published.
            let work = received + s.handed.len();
            let t1 = if work > 0 {
                let t1 = self.shared.clock.now();
                let lat = t1.saturating_sub(t0);
                Hists::record(&mut self.hists.forwarded, lat, fwd as u64);
                Hists::record(&mut self.hists.dropped, lat, drop as u64);
                for &(rx_ns, forwarded) in &s.handed {
                    let h = if forwarded {
                        &mut self.hists.forwarded
                    } else {
                        &mut self.hists.dropped
                    };
                    Hists::record(h, t1.saturating_sub(rx_ns), 1);
                }
                Hists::record(&mut self.hists.batch, lat, 1);
                local.batches += 1;
                t1
            } else {
                t0
            };
            s.handed.clear();
            let expired = self.pipeline.sweep(t1, self.sweep_budget)
                + self.defrag.expire(t1, self.sweep_budget);
            if work > 0 || expired > 0 || dirty {
                self.publish(&local);
                idle.worked(t1);
            } else if idle.spin(t1) {
                std::hint::spin_loop();
            } else {
                self.sleep();
            }
        }
        self.shared.slots[self.id]
            .running
            .store(false, Ordering::Release);
        // The last round's sweep events: the sync thread, joined after the workers, sends them.
        self.hand_over_sync();
        // Give every frame back before the IO is dropped.
        for (p, q) in s.tx.iter_mut().enumerate() {
            self.io.send(p, q);
            self.io.release(q);
        }
        self.publish(&local);
    }

    /// Move the entry events of the last round onto this worker's ring to the sync thread
    /// (full: dropped and counted; FTFW's resync repairs what is lost).
    fn hand_over_sync(&mut self) {
        let Some(sync) = &self.shared.sync else {
            return;
        };
        let Some(log) = self.pipeline.shard_mut().events_mut() else {
            return;
        };
        let lost_in_log = log.lost - self.sync_lost;
        if log.is_empty() && lost_in_log == 0 {
            return;
        }
        self.sync_lost = log.lost;
        let ring = &sync.rings[self.id];
        let mut lost = lost_in_log;
        for ev in log.drain() {
            if ring.push(ev).is_err() {
                lost += 1;
            }
        }
        sync.lost_more(lost);
    }

    /// Move what `log` rules recorded during the batch onto the shared log queue, and count
    /// the packets of the rules that went on with a mark action.
    fn hand_over_log(&mut self) {
        if !self.pipeline.passes.is_empty() {
            let c = &self.rule_counters;
            self.pipeline.passes.drain(|stage, rule, packets, bytes| {
                if let Some(s) = c.of(stage) {
                    s.count_many(Some(rule), packets, bytes);
                }
            });
        }
        let ring = &mut self.pipeline.log;
        if ring.is_empty() && ring.lost == self.log_lost {
            return;
        }
        let log = &self.shared.packet_log;
        log.lost_more(ring.lost - self.log_lost);
        self.log_lost = ring.lost;
        // A log rule's counters count the packets it logged (a rule that decides nothing
        // is counted by no outcome).
        let c = &self.rule_counters;
        log.push(ring.drain().map(|r| {
            if let Some(stage) = c.of(r.stage) {
                stage.count(Some(r.rule), u64::from(r.wire_len));
            }
            *r
        }));
    }

    /// Receive and process one batch: `(now, received, forwarded, dropped)`, the last three
    /// among this worker's own receptions (handed-over packets are in `s.handed`). The clock is read once,
    /// after receiving, so `now` is never earlier than a frame's arrival.
    fn poll_once(
        &mut self,
        s: &mut Scratch<Io::Frame>,
        local: &mut Local,
    ) -> (u64, usize, usize, usize) {
        let Worker {
            id,
            io,
            pipeline,
            shared,
            rule_counters,
            batch,
            pool,
            buf_capacity,
            defrag,
            ..
        } = self;
        let me = *id;
        let workers = shared.workers;
        let ports = io.port_count();
        let mut received = 0;
        for (port, rx) in s.rx.iter_mut().enumerate() {
            received += io.recv(port, rx, *batch);
        }
        let t0 = shared.clock.now();
        let mut now = t0;

        // Packets other workers handed over: copy into a frame of ours to transmit.
        let inbox = &shared.inbox[me];
        while s.handed.len() < *batch {
            let Some(h) = inbox.pop() else { break };
            local.handoffs_in += 1;
            // A packet is never processed before it arrived: the sender's clock may be ahead
            // of the time this batch started. Engine time stays monotonic per worker.
            now = now.max(h.rx_ns);
            if h.fragment {
                // A fragment for our reassembly: held, dropped, or it completes a datagram.
                let forwarded = match wire::parse(&h.buf) {
                    Ok(m) => match defrag.gather(now, &h.buf, &m, h.in_port, 0) {
                        Gather::Complete => complete(
                            defrag,
                            pipeline,
                            io,
                            &mut Out {
                                tx: &mut s.tx,
                                tx_bytes: &mut s.tx_bytes,
                                reject: &mut s.reject,
                                replies: &mut s.replies,
                            },
                            shared,
                            pool,
                            *buf_capacity,
                            me,
                            rule_counters,
                            local,
                            now,
                            h.in_port,
                        ),
                        _ => false,
                    },
                    Err(_) => false,
                };
                s.handed.push((h.rx_ns, forwarded));
                let _ = shared.returns[usize::from(h.from)].push(h.buf);
                continue;
            }
            let o = pipeline.process_parsed(
                now,
                &Packet {
                    frame: &h.buf,
                    in_port: h.in_port,
                },
                wire::parse(&h.buf),
            );
            count_rule(rule_counters, &o, h.buf.len() as u64);
            if o.reject {
                reject_reply(
                    &h.buf,
                    &o,
                    usize::from(h.in_port),
                    &mut s.reject,
                    &mut s.replies,
                );
            }
            let mut forwarded = false;
            if let (Verdict::Accept, Some(out)) = (o.verdict, o.out_port) {
                let out = usize::from(out);
                match io.alloc() {
                    Some(mut f) if out < ports => {
                        io.set_len(&mut f, h.buf.len()).copy_from_slice(&h.buf);
                        s.tx_bytes[out] += h.buf.len() as u64;
                        s.tx[out].push(f);
                        forwarded = true;
                    }
                    Some(f) => s.release.push(f),
                    None => {}
                }
                if !forwarded {
                    local.tx_full += 1;
                }
            }
            s.handed.push((h.rx_ns, forwarded));
            // The buffer goes home; the ring is as large as the sender's pool, so this only
            // fails if the sender is gone, and then the buffer is simply dropped.
            let _ = shared.returns[usize::from(h.from)].push(h.buf);
        }

        // Our queue of every port. Two passes over a port's batch: parse and hash every
        // frame and start fetching its flow's table slot and entry, then process them in
        // order; the loads of the first pass overlap where one packet at a time would wait
        // out each cache miss in turn (the frames were just written by the kernel on
        // another core; at 10k flows and more the table is not in this core's cache).
        let (mut fwd, mut drop) = (0, 0);
        for (port, rx) in s.rx.iter_mut().enumerate() {
            s.parsed.clear();
            for f in rx.iter() {
                let parsed = wire::parse(io.data(f));
                // Frames without a flow (ARP, malformed) are decided where they arrive.
                let hash = parsed.as_ref().ok().and_then(steer_hash);
                if let Some(h) = hash {
                    pipeline.shard().prefetch(h);
                }
                s.parsed.push((parsed, hash));
            }
            for (f, (parsed, hash)) in rx.drain(..).zip(s.parsed.drain(..)) {
                let data = io.data(&f);
                local.rx_packets += 1;
                local.rx_bytes += data.len() as u64;
                // An IP fragment goes to the worker that reassembles its datagram.
                let frag = parsed
                    .as_ref()
                    .ok()
                    .and_then(|m| Some((m, defrag::steer_hash(data, m, port as u8)?)));
                if let Some((m, fh)) = frag {
                    let r = owner(fh, workers);
                    if r != me {
                        handoff(
                            shared,
                            pool,
                            *buf_capacity,
                            me,
                            r,
                            data,
                            port,
                            now,
                            local,
                            true,
                        );
                        s.release.push(f);
                        continue;
                    }
                    match defrag.gather(now, data, m, port as u8, 0) {
                        // Not reassembled (IPv6 only): decided as the frame it is, below.
                        Gather::Pass | Gather::NotFragment => {}
                        g => {
                            s.release.push(f);
                            let sent = g == Gather::Complete
                                && complete(
                                    defrag,
                                    pipeline,
                                    io,
                                    &mut Out {
                                        tx: &mut s.tx,
                                        tx_bytes: &mut s.tx_bytes,
                                        reject: &mut s.reject,
                                        replies: &mut s.replies,
                                    },
                                    shared,
                                    pool,
                                    *buf_capacity,
                                    me,
                                    rule_counters,
                                    local,
                                    now,
                                    port as u8,
                                );
                            if sent {
                                fwd += 1;
                            } else {
                                drop += 1;
                            }
                            continue;
                        }
                    }
                }
                let data = io.data(&f);
                let w = hash.map_or(me, |h| owner(h, workers));
                if w != me {
                    handoff(
                        shared,
                        pool,
                        *buf_capacity,
                        me,
                        w,
                        data,
                        port,
                        now,
                        local,
                        false,
                    );
                    s.release.push(f);
                    continue;
                }
                let o = pipeline.process_hashed(
                    now,
                    &Packet {
                        frame: data,
                        in_port: port as u8,
                    },
                    parsed,
                    hash,
                );
                count_rule(rule_counters, &o, data.len() as u64);
                if o.reject {
                    reject_reply(data, &o, port, &mut s.reject, &mut s.replies);
                }
                match (o.verdict, o.out_port) {
                    (Verdict::Accept, Some(out)) if usize::from(out) < ports => {
                        s.tx_bytes[usize::from(out)] += data.len() as u64;
                        s.tx[usize::from(out)].push(f);
                        fwd += 1;
                    }
                    _ => {
                        s.release.push(f);
                        drop += 1;
                    }
                }
            }
        }

        // Answers to rejected packets go out of the port their packet came in on.
        for (i, (port, len)) in s.replies.drain(..).enumerate() {
            let slot = &s.reject[i * engine::reject::MAX_REPLY..][..len];
            match io.alloc() {
                Some(mut f) if port < ports => {
                    io.set_len(&mut f, len).copy_from_slice(slot);
                    s.tx_bytes[port] += len as u64;
                    s.tx[port].push(f);
                }
                Some(f) => s.release.push(f),
                None => local.tx_full += 1,
            }
        }

        // Transmit; what does not fit on a TX ring is dropped and counted.
        for port in 0..ports {
            if s.tx[port].is_empty() {
                continue;
            }
            let queued = s.tx[port].len();
            let bytes = s.tx_bytes[port];
            let sent = io.send(port, &mut s.tx[port]);
            let mut left_bytes = 0;
            for f in &s.tx[port] {
                left_bytes += io.data(f).len() as u64;
            }
            local.tx_packets += sent as u64;
            local.tx_bytes += bytes - left_bytes;
            local.tx_full += (queued - sent) as u64;
            s.tx_bytes[port] = 0;
            s.release.append(&mut s.tx[port]);
        }
        io.release(&mut s.release);
        for port in 0..ports {
            io.complete(port);
            io.fill(port);
        }
        (t0, received, fwd, drop)
    }

    /// Pick up a newly published ruleset. One atomic load per batch; the lock is taken only
    /// when the generation changed.
    fn check_publication(&mut self) -> bool {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g == self.generation {
            return false;
        }
        let (rules, counters) = {
            let p = self
                .shared
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (Arc::clone(&p.rules), Arc::clone(&p.counters[self.id]))
        };
        self.generation = rules.generation;
        self.defrag
            .set_limits(rules.frag_limits.0, rules.frag_limits.1);
        self.pipeline.set_rules(rules);
        self.rule_counters = counters;
        true
    }

    fn service_commands(&mut self, now: u64) -> bool {
        let mut any = false;
        for _ in 0..CMDS_PER_BATCH {
            let Ok(cmd) = self.cmds.try_recv() else { break };
            any = true;
            match cmd {
                WorkerCmd::Scan {
                    from,
                    filter,
                    action,
                    mut buf,
                    reply,
                } => {
                    let cap = self.pipeline.shard().capacity();
                    let end = (from + SCAN_SLOTS).min(cap);
                    let mut matched = 0;
                    for id in from..end {
                        let e: &Entry = self.pipeline.shard().entry(id as u32);
                        if !e.is_live(now) || !filter.matches(e) {
                            continue;
                        }
                        matched += 1;
                        match action {
                            ScanAction::Copy => {
                                if buf.len() < buf.capacity() {
                                    buf.push(*e);
                                }
                            }
                            ScanAction::Expire => {
                                self.pipeline.shard_mut().entry_mut(id as u32).expires = 0;
                            }
                            ScanAction::Shorten { until } => {
                                let e = self.pipeline.shard_mut().entry_mut(id as u32);
                                e.expires = e.expires.min(until);
                            }
                        }
                    }
                    let _ = reply.try_send(ScanReply {
                        next: (end < cap).then_some(end),
                        matched,
                        entries: buf,
                    });
                }
                WorkerCmd::FlushAll { reply } => {
                    let n = self.pipeline.shard().len() as u64;
                    self.pipeline.shard_mut().flush();
                    let _ = reply.try_send(n);
                }
                WorkerCmd::Sweep { slots, reply } => {
                    let n = self.pipeline.expire(now, slots);
                    let _ = reply.try_send(n);
                }
                WorkerCmd::Adopt { mut entries, reply } => {
                    let mut r = AdoptReply::default();
                    for e in entries.drain(..) {
                        r.count(save::adopt(self.pipeline.shard_mut(), e, now));
                    }
                    r.entries = entries;
                    let _ = reply.try_send(r);
                }
                WorkerCmd::Inject { mut ops, reply } => {
                    let mut r = InjectReply::default();
                    let shard = self.pipeline.shard_mut();
                    for op in ops.drain(..) {
                        match op {
                            Inject::Put(e) if e.expires <= now => r.absent += 1,
                            Inject::Put(e) => match shard.sync_put(e) {
                                Ok(true) => r.updated += 1,
                                Ok(false) => r.added += 1,
                                Err(AdoptError::Full) => r.full += 1,
                                Err(_) => r.invalid += 1,
                            },
                            Inject::Remove(k) => {
                                if shard.sync_remove(&k) {
                                    r.removed += 1;
                                } else {
                                    r.absent += 1;
                                }
                            }
                        }
                    }
                    r.ops = ops;
                    let _ = reply.try_send(r);
                }
                WorkerCmd::SwapHist { mut spare, reply } => {
                    std::mem::swap(&mut self.hists, &mut spare);
                    let _ = reply.try_send(spare);
                }
            }
        }
        any
    }

    fn publish(&self, local: &Local) {
        let c = &self.pipeline.counters;
        let st = &self.pipeline.shard().stats;
        let mut dropped = c.dropped;
        dropped[DropReason::HandoffFull as usize] += local.handoff_full;
        dropped[DropReason::TxFull as usize] += local.tx_full;
        let w = WorkerCounters {
            rx_packets: local.rx_packets,
            rx_bytes: local.rx_bytes,
            tx_packets: local.tx_packets,
            tx_bytes: local.tx_bytes,
            handoffs_out: local.handoffs_out,
            handoffs_in: local.handoffs_in,
            batches: local.batches,
            generation: u64::from(self.generation),
            processed: c.rx_packets,
            accepted: c.accepted,
            cache_hits: c.cache_hits,
            dropped,
            ctstate: c.ctstate,
            invalid: c.invalid,
            fragments: self.defrag.counter_words(),
            entries: self.pipeline.shard().len() as u64,
            capacity: self.pipeline.shard().capacity() as u64,
            inserted: st.inserted,
            expired: st.expired,
            early_drops: st.early_drops,
            table_full: dropped[DropReason::TableFull as usize],
        };
        self.shared.slots[self.id].stats.publish(&w);
    }

    /// Nothing to do, and not worth spinning for (`IdlePolicy`): wait on the IO until a frame
    /// arrives, the doorbell rings or the timeout ends.
    fn sleep(&mut self) {
        // Announce the sleep, then look once more: a worker that handed us a packet after
        // our last look sees `sleeping` (SeqCst on both sides) and rings our doorbell.
        let slot = &self.shared.slots[self.id];
        slot.sleeping.store(true, Ordering::SeqCst);
        if self.shared.inbox[self.id].is_empty()
            && self.cmds.is_empty()
            && !self.shared.stop.load(Ordering::Relaxed)
        {
            let _ = self.io.wait(IDLE_WAIT_MS, slot.bell.fd());
        }
        slot.sleeping.store(false, Ordering::Relaxed);
        slot.bell.drain();
    }
}

/// Count a packet on the rule (or policy) that decided it.
#[inline]
fn count_rule(c: &RuleCounters, o: &Outcome, bytes: u64) {
    if let Some(s) = c.of(o.stage) {
        s.count(o.rule, bytes);
    }
}

/// Copy a frame onto its owner's handoff ring; a full ring (or no free buffer) is a counted
/// drop.
#[inline]
fn handoff(
    shared: &Shared,
    pool: &mut Vec<Vec<u8>>,
    buf_capacity: usize,
    me: usize,
    to: usize,
    data: &[u8],
    port: usize,
    now: u64,
    local: &mut Local,
    fragment: bool,
) {
    if pool.is_empty() {
        while let Some(b) = shared.returns[me].pop() {
            pool.push(b);
        }
    }
    let Some(mut buf) = pool.pop() else {
        local.handoff_full += 1;
        return;
    };
    if data.len() > buf_capacity {
        // Cannot happen (buffers hold the largest frame any worker's IO has); never grow a
        // buffer on the packet path.
        pool.push(buf);
        local.handoff_full += 1;
        return;
    }
    buf.clear();
    buf.extend_from_slice(data);
    let h = Handoff {
        buf,
        in_port: port as u8,
        from: me as u16,
        rx_ns: now,
        fragment,
    };
    match shared.inbox[to].push(h) {
        Ok(()) => {
            local.handoffs_out += 1;
            fence(Ordering::SeqCst);
            let slot = &shared.slots[to];
            if slot.sleeping.load(Ordering::SeqCst) {
                slot.wake();
            }
        }
        Err(h) => {
            pool.push(h.buf);
            local.handoff_full += 1;
        }
    }
}

/// The parts of a batch's scratch that sending takes (the receive side stays borrowed).
struct Out<'a, F> {
    tx: &'a mut [Vec<F>],
    tx_bytes: &'a mut [u64],
    reject: &'a mut [u8],
    replies: &'a mut Vec<(usize, usize)>,
}

/// The datagram this worker's reassembly just completed: its flow's owner decides it. Here:
/// through the pipeline, and if accepted its fragments go out (as the kernel bridge sends
/// them). Elsewhere: its fragments are handed to the owner, whose reassembly completes them
/// again. Returns whether frames were sent.
fn complete<Io: PortIo>(
    defrag: &mut Defrag,
    pipeline: &mut Pipeline<super::state::ShardSlab>,
    io: &mut Io,
    out: &mut Out<'_, Io::Frame>,
    shared: &Shared,
    pool: &mut Vec<Vec<u8>>,
    buf_capacity: usize,
    me: usize,
    rule_counters: &RuleCounters,
    local: &mut Local,
    now: u64,
    in_port: u8,
) -> bool {
    let datagram = defrag.datagram().unwrap_or_default();
    let parsed = wire::parse(datagram);
    let hash = parsed.as_ref().ok().and_then(steer_hash);
    let w = hash.map_or(me, |h| owner(h, shared.workers));
    if w != me {
        defrag.each_fragment(|_, frame| {
            handoff(
                shared,
                pool,
                buf_capacity,
                me,
                w,
                frame,
                usize::from(in_port),
                now,
                local,
                true,
            );
        });
        defrag.finish();
        return false;
    }
    let o = pipeline.process_hashed(
        now,
        &Packet {
            frame: datagram,
            in_port,
        },
        parsed,
        hash,
    );
    count_rule(rule_counters, &o, datagram.len() as u64);
    if o.reject {
        reject_reply(datagram, &o, usize::from(in_port), out.reject, out.replies);
    }
    let mut sent = false;
    if let (Verdict::Accept, Some(port)) = (o.verdict, o.out_port) {
        defrag.each_fragment(|_, frame| {
            sent |= queue_copy(io, out, usize::from(port), frame, local);
        });
    }
    defrag.finish();
    sent
}

/// Copy `frame` into a frame of our IO queued on port `out`; a full TX batch (its `Vec` never
/// grows on the packet path) or no free frame is a counted `tx_full` drop.
fn queue_copy<Io: PortIo>(
    io: &mut Io,
    s: &mut Out<'_, Io::Frame>,
    out: usize,
    frame: &[u8],
    local: &mut Local,
) -> bool {
    let Some(tx) = s.tx.get(out) else {
        return false;
    };
    if tx.len() == tx.capacity() {
        local.tx_full += 1;
        return false;
    }
    let Some(mut f) = io.alloc() else {
        local.tx_full += 1;
        return false;
    };
    io.set_len(&mut f, frame.len()).copy_from_slice(frame);
    s.tx_bytes[out] += frame.len() as u64;
    s.tx[out].push(f);
    true
}

/// Build the answer to a rejected packet into the next free slot (none when the batch's
/// slots are used up or the kernel would send nothing).
fn reject_reply(
    frame: &[u8],
    o: &engine::pipeline::Outcome,
    port: usize,
    buf: &mut [u8],
    replies: &mut Vec<(usize, usize)>,
) {
    let i = replies.len();
    if i >= REJECTS_PER_BATCH {
        return;
    }
    let slot = &mut buf[i * engine::reject::MAX_REPLY..][..engine::reject::MAX_REPLY];
    if let Some(len) = wire::parse(frame)
        .ok()
        .and_then(|m| engine::reject::build(frame, &m, o.reject_with, slot))
    {
        replies.push((port, len));
    }
}
