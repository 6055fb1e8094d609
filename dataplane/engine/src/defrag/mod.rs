//! IP fragment reassembly before conntrack, as the kernel's nf_defrag does it: IPv4 with
//! `ip_defrag` (net/ipv4/ip_fragment.c, which nf_defrag_ipv4 calls), IPv6 with
//! `nf_ct_frag6_gather` (net/ipv6/netfilter/nf_conntrack_reasm.c). Sans IO, per worker,
//! bounded: every byte is allocated in [`Defrag::new`].
//!
//! [`Defrag::gather`] takes each parsed frame. A frame that is not a fragment is the caller's
//! to process as always. A fragment is held (the kernel's NF_STOLEN: neither forwarded nor
//! dropped yet), or dropped for one of the kernel's reasons, or it completes its datagram:
//! then [`Defrag::datagram`] is the whole datagram as one frame (the first fragment's link and
//! IP header, the fragment fields cleared), which goes through the raw stage, conntrack and
//! the rules like any packet; if accepted, [`Defrag::each_fragment`] gives the frames to
//! send, as the kernel bridge sends them (`br_nf_dev_queue_xmit` → `ip_do_fragment` /
//! `ip6_fragment`, fast path: the original fragments' geometry, in offset order, each with a
//! header made from the reassembled one). See docs/fragments.md.
//!
//! Limits by the kernel's sysctl names ([`FragLimits`]): memory per family
//! (`net.ipv4.ipfrag_high_thresh`, `net.netfilter.nf_conntrack_frag6_high_thresh`) split
//! between the workers, the reassembly timeout (`ipfrag_time`,
//! `nf_conntrack_frag6_timeout`), and IPv4's `ipfrag_max_dist`.

mod ipv4;
mod ipv6;
pub mod pool;
pub mod queue;

use crate::packet::{IpFamily, PacketMeta};
use pool::Pool;
use queue::{FragKey, FragRec, Insert, Queues, NIL};

const NS: u64 = 1_000_000_000;

/// Bytes a queue itself is charged (the kernel charges `sizeof(struct ipq)` /
/// `sizeof(struct frag_queue)`, a few hundred bytes).
pub const QUEUE_BYTES: usize = 256;

/// The largest reassembled frame: link header with two VLAN tags, then an IPv4 datagram of
/// 65,535 bytes or an IPv6 header and 65,535 bytes of payload (what the parser reads).
pub const MAX_DATAGRAM_FRAME: usize = crate::wire::MAX_FRAME;

/// One family's limits, by the kernel's sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragLimits {
    /// `ipfrag_high_thresh` / `nf_conntrack_frag6_high_thresh`: above this many bytes held, a
    /// fragment is refused (`inet_frag_find`). Whole box; each of N workers gets 1/N.
    pub high_thresh: usize,
    /// `ipfrag_time` / `nf_conntrack_frag6_timeout`: an incomplete datagram is dropped this
    /// long after its queue was made (ns).
    pub time: u64,
    /// `ipfrag_max_dist` (IPv4 only; 0 turns it off): a queue that has seen no fragment while
    /// more than this many other fragments came from its source is started afresh.
    pub max_dist: u32,
}

impl FragLimits {
    /// Both families' limits from the config's settings (`conntrack:` `ipfrag_*`,
    /// `frag6_*`).
    pub fn from_settings(s: &config::ConntrackSettings) -> (FragLimits, FragLimits) {
        let bytes = |b: u64| usize::try_from(b).unwrap_or(usize::MAX);
        (
            FragLimits {
                high_thresh: bytes(s.ipfrag_high_thresh),
                time: u64::from(s.ipfrag_time) * NS,
                max_dist: s.ipfrag_max_dist,
            },
            FragLimits {
                high_thresh: bytes(s.frag6_high_thresh),
                time: u64::from(s.frag6_timeout) * NS,
                max_dist: 0,
            },
        )
    }

    /// The kernel's IPv4 defaults (4 MiB, 30 s, 64).
    pub const IPV4: FragLimits = FragLimits {
        high_thresh: 4 * 1024 * 1024,
        time: 30 * NS,
        max_dist: 64,
    };
    /// The kernel's nf_conntrack IPv6 defaults (4 MiB, 60 s).
    pub const IPV6: FragLimits = FragLimits {
        high_thresh: 4 * 1024 * 1024,
        time: 60 * NS,
        max_dist: 0,
    };
}

/// Why reassembly dropped a fragment (and, for some, the datagram held so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragDrop {
    /// Wholly inside what is held: the fragment is dropped, the queue kept (IPv6 counts it
    /// as held: "pretend they got queued").
    Duplicate,
    /// Partly over what is held: the whole datagram is dropped (RFC 5722).
    Overlap,
    /// The datagram would exceed 65,535 bytes: dropped.
    Oversize,
    /// Over the family's `high_thresh` (or out of records): refused.
    NoMemory,
    /// Inconsistent with what is held (a second, different last fragment; data past the
    /// last fragment; no data); IPv4 drops the datagram, IPv6 the fragment.
    Corrupt,
    /// Fragments disagree about ECN (not-ECT with ECT or CE): the datagram is dropped.
    Ecn,
}

impl FragDrop {
    pub const COUNT: usize = 6;
    pub const ALL: [FragDrop; Self::COUNT] = [
        FragDrop::Duplicate,
        FragDrop::Overlap,
        FragDrop::Oversize,
        FragDrop::NoMemory,
        FragDrop::Corrupt,
        FragDrop::Ecn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FragDrop::Duplicate => "frag_duplicate",
            FragDrop::Overlap => "frag_overlap",
            FragDrop::Oversize => "frag_oversize",
            FragDrop::NoMemory => "frag_no_memory",
            FragDrop::Corrupt => "frag_corrupt",
            FragDrop::Ecn => "frag_ecn",
        }
    }
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gather {
    /// Not a fragment: process the frame as it is.
    NotFragment,
    /// A fragment the kernel lets through unreassembled (IPv6: a first fragment without the
    /// whole upper-layer header, RFC 8200 §4.5; a non-final fragment whose length is not a
    /// multiple of 8, which also drops its datagram): process the frame as it is; conntrack
    /// sees a fragment.
    Pass,
    /// Kept for reassembly: nothing to send or count as a verdict.
    Held,
    /// Consumed by reassembly for this reason.
    Dropped(FragDrop),
    /// The datagram is complete: [`Defrag::datagram`] until the next call.
    Complete,
}

/// Reassembly counters of one family (written by the owning worker only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefragCounters {
    /// Fragments taken in (held or completing).
    pub fragments: u64,
    pub reassembled: u64,
    pub dropped: [u64; FragDrop::COUNT],
    /// IPv6 fragments passed on unreassembled.
    pub passed: u64,
    /// Datagrams whose timer fired before they were complete, and their fragments.
    pub timed_out: u64,
    pub timed_out_fragments: u64,
    /// IPv4 queues started afresh by `ipfrag_max_dist`.
    pub too_far: u64,
}

impl DefragCounters {
    /// The published counters' names, in [`Self::words`]' order: fragments taken, datagrams
    /// reassembled, IPv6 fragments passed on unreassembled, datagrams timed out and their
    /// fragments, IPv4 queues restarted by `ipfrag_max_dist`, then drops by [`FragDrop`].
    pub const NAMES: [&'static str; 6 + FragDrop::COUNT] = [
        "fragments",
        "reassembled",
        "passed",
        "timed_out",
        "timed_out_fragments",
        "too_far",
        "frag_duplicate",
        "frag_overlap",
        "frag_oversize",
        "frag_no_memory",
        "frag_corrupt",
        "frag_ecn",
    ];
    pub const WORDS: usize = Self::NAMES.len();

    pub fn words(&self) -> [u64; Self::WORDS] {
        let d = &self.dropped;
        [
            self.fragments,
            self.reassembled,
            self.passed,
            self.timed_out,
            self.timed_out_fragments,
            self.too_far,
            d[0],
            d[1],
            d[2],
            d[3],
            d[4],
            d[5],
        ]
    }
}

/// One family's reassembly state.
#[derive(Debug)]
struct Reassembler {
    limits: FragLimits,
    pool: Pool,
    qs: Queues,
    /// Bytes charged: chunks of held fragments and `QUEUE_BYTES` per queue.
    mem: usize,
    peers: Peers,
    counters: DefragCounters,
}

/// A fragment's facts, read from its headers by the family's parser.
#[derive(Debug, Clone, Copy)]
struct FragInfo {
    key: FragKey,
    /// Payload bytes `offset..end` (IPv4: `end` before the multiple-of-8 trim).
    offset: u32,
    end: u32,
    more: bool,
    /// Where the IP header starts in the frame.
    l3: usize,
    /// IPv6: the offset (from the IPv6 header) of the byte that names the fragment header.
    nhoff: usize,
    /// Frame bytes before the payload.
    head_len: usize,
    ecn: u8,
    df: bool,
    /// The caller's name for the frame.
    tag: u64,
}

/// What [`Reassembler::queue`] did.
enum Queued {
    Held,
    Complete(u32),
}

impl Reassembler {
    /// One worker's part of a whole-box `high_thresh`: 0 queues nothing (as in the kernel);
    /// otherwise each worker gets at least a byte.
    fn share(high_thresh: usize, workers: usize) -> usize {
        match high_thresh {
            0 => 0,
            h => (h / workers.max(1)).max(1),
        }
    }

    fn new(limits: FragLimits, workers: usize) -> Reassembler {
        let share = Self::share(limits.high_thresh, workers);
        // `mem > high_thresh` is checked before a fragment is charged, so one more fragment
        // (the largest frame) fits above the share.
        let chunks = share / pool::CHUNK + Pool::chunks_for(MAX_DATAGRAM_FRAME) + 1;
        Reassembler {
            limits: FragLimits {
                high_thresh: share,
                ..limits
            },
            pool: Pool::new(chunks),
            qs: Queues::new(chunks, chunks),
            mem: 0,
            peers: Peers::new(if limits.max_dist == 0 { 1 } else { 1024 }),
            counters: DefragCounters::default(),
        }
    }

    /// The datagram's queue, made if new (`inet_frag_find`): refused above `high_thresh`; a
    /// queue whose timer has fired is dropped first, as the timer would have.
    fn find(&mut self, now: u64, key: &FragKey) -> Result<u32, FragDrop> {
        if self.limits.high_thresh == 0 || self.mem > self.limits.high_thresh {
            return Err(FragDrop::NoMemory);
        }
        if let Some(qi) = self.qs.find(key) {
            if self.qs.q[qi as usize].expires > now {
                return Ok(qi);
            }
            self.time_out(qi);
        }
        let qi = self
            .qs
            .create(*key, now.saturating_add(self.limits.time))
            .ok_or(FragDrop::NoMemory)?;
        self.mem += QUEUE_BYTES;
        self.qs.q[qi as usize].mem = QUEUE_BYTES;
        if self.limits.max_dist != 0 {
            if let Some(p) = self.peers.get(&key.src) {
                let q = &mut self.qs.q[qi as usize];
                q.peer = p;
                q.rid = self.peers.rid[p as usize];
            }
        }
        Ok(qi)
    }

    /// Drop a queue's fragments (keep the queue).
    fn clear(&mut self, qi: u32) {
        let pool = &mut self.pool;
        let mut freed = 0;
        self.qs.take_frags(qi, |f| {
            pool.release(f.chain);
            freed += usize::from(f.chunks) * pool::CHUNK;
        });
        self.mem -= freed;
        self.qs.q[qi as usize].mem = QUEUE_BYTES;
    }

    /// `inet_frag_kill`: the queue and what it holds are gone.
    fn kill(&mut self, qi: u32) {
        self.clear(qi);
        let peer = self.qs.q[qi as usize].peer;
        if peer != NIL {
            self.peers.put(peer);
        }
        self.mem -= QUEUE_BYTES;
        self.qs.destroy(qi);
    }

    fn time_out(&mut self, qi: u32) {
        self.counters.timed_out += 1;
        let mut n = 0;
        let mut at = self.qs.q[qi as usize].head;
        while at != NIL {
            n += 1;
            at = self.qs.f[at as usize].next;
        }
        self.counters.timed_out_fragments += n;
        self.kill(qi);
    }

    /// `ip_frag_too_far` then `ip_frag_reinit`: count this fragment against its source; a
    /// queue that missed more than `max_dist` of them starts afresh (timer re-armed).
    fn too_far(&mut self, now: u64, qi: u32) {
        let q = self.qs.q[qi as usize];
        if q.peer == NIL || self.limits.max_dist == 0 {
            return;
        }
        let end = self.peers.bump(q.peer);
        self.qs.q[qi as usize].rid = end;
        if q.head != NIL && end.wrapping_sub(q.rid) > self.limits.max_dist {
            self.counters.too_far += 1;
            self.clear(qi);
            self.qs.rearm(qi, now.saturating_add(self.limits.time));
        }
    }

    /// Insert a fragment's payload `offset..end` (already trimmed) into queue `qi`, storing
    /// `frame` (the bytes before the payload, then the payload), and update the queue's
    /// facts; IPv4 and IPv6 share this part (`inet_frag_queue_insert` and what follows it).
    fn insert(
        &mut self,
        qi: u32,
        info: &FragInfo,
        end: u32,
        frame: &[u8],
        size: u32,
    ) -> Result<Queued, FragDrop> {
        let offset = info.offset;
        let after = match self.qs.place(qi, offset, end) {
            Insert::At { after, run_start } => (after, run_start),
            Insert::Dup => return Err(FragDrop::Duplicate),
            Insert::Overlap => {
                self.kill(qi);
                return Err(FragDrop::Overlap);
            }
        };
        let stored = &frame[..info.head_len + (end - offset) as usize];
        let Some(chain) = self.pool.store(stored) else {
            self.kill(qi);
            return Err(FragDrop::NoMemory);
        };
        let chunks = Pool::chunks_for(stored.len());
        let rec = FragRec {
            offset,
            end,
            chain,
            head_len: info.head_len as u16,
            l3: info.l3 as u8,
            chunks: chunks as u16,
            run_start: after.1,
            trimmed: end != info.end,
            tag: info.tag,
            next: NIL,
        };
        if self.qs.insert(qi, after.0, rec).is_none() {
            self.pool.release(chain);
            self.kill(qi);
            return Err(FragDrop::NoMemory);
        }
        self.mem += chunks * pool::CHUNK;
        let q = &mut self.qs.q[qi as usize];
        q.mem += chunks * pool::CHUNK;
        q.meat += end - offset;
        q.ecn |= info.ecn;
        if offset == 0 {
            q.first_in = true;
            q.nhoff = info.nhoff as u16;
        }
        q.max_size = q.max_size.max(size);
        if info.df {
            q.max_df_size = q.max_df_size.max(size);
        }
        if q.first_in && q.last_in && q.meat == q.len {
            Ok(Queued::Complete(qi))
        } else {
            Ok(Queued::Held)
        }
    }

    /// The ECN codepoint of the reassembled datagram (`ip_frag_ecn_table`), `None` for a
    /// mix the kernel drops.
    fn ecn(seen: u8) -> Option<u8> {
        const NOT_ECT: u8 = 1;
        const CE: u8 = 8;
        if seen & NOT_ECT != 0 && seen != NOT_ECT {
            return None;
        }
        Some(if seen & CE != 0 { 3 } else { 0 })
    }

    /// Copy the queue's fragments' payloads, in order, into `out` (which has room).
    fn copy_payload(&self, qi: u32, out: &mut [u8]) {
        let mut at = self.qs.q[qi as usize].head;
        while at != NIL {
            let f = self.qs.f[at as usize];
            let (o, e) = (f.offset as usize, f.end as usize);
            self.pool
                .read(f.chain, usize::from(f.head_len), &mut out[o..e]);
            at = f.next;
        }
    }

    /// Expire queues whose timer fired, oldest first, at most `budget`.
    fn expire(&mut self, now: u64, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let qi = self.qs.oldest;
            if qi == NIL || self.qs.q[qi as usize].expires > now {
                break;
            }
            self.time_out(qi);
            n += 1;
        }
        n
    }
}

/// The hash that steers a fragment to the worker that reassembles its datagram (the same
/// for every fragment of it, whichever queue it arrived on: addresses, identification, and
/// the protocol for IPv4 or the ingress port for IPv6, as the kernel's reassembly key);
/// `None` for a frame that is not a fragment reassembly would take, which is steered by its
/// flow as always. Costs one comparison on an unfragmented IPv4 packet, and on an IPv6
/// packet without extension headers.
pub fn steer_hash(frame: &[u8], meta: &PacketMeta, in_port: u8) -> Option<u64> {
    if !meta.is_ip {
        return None;
    }
    let key = match meta.family {
        IpFamily::V4 => {
            if meta.fragment == crate::packet::Fragment::None {
                return None;
            }
            ipv4::key(meta)
        }
        IpFamily::V6 => ipv6::key(frame, meta, in_port)?,
    };
    Some(key.hash())
}

/// Per-source fragment counters for `ipfrag_max_dist` (the kernel's `inet_peer.rid`): a
/// small open table keyed by source address; a source that finds no room is not checked,
/// as when the kernel cannot get a peer.
#[derive(Debug)]
struct Peers {
    addr: Box<[[u8; 16]]>,
    rid: Box<[u32]>,
    refs: Box<[u32]>,
}

impl Peers {
    const PROBE: usize = 8;

    fn new(n: usize) -> Peers {
        let n = n.next_power_of_two();
        Peers {
            addr: vec![[0; 16]; n].into_boxed_slice(),
            rid: vec![0; n].into_boxed_slice(),
            refs: vec![0; n].into_boxed_slice(),
        }
    }

    /// The slot of `src`, referenced by one more queue.
    fn get(&mut self, src: &[u8; 16]) -> Option<u32> {
        let key = FragKey {
            src: *src,
            ..FragKey::default()
        };
        let mask = self.addr.len() - 1;
        let home = key.hash() as usize;
        let mut free = None;
        for i in 0..Self::PROBE.min(self.addr.len()) {
            let s = (home + i) & mask;
            if self.refs[s] > 0 && self.addr[s] == *src {
                self.refs[s] += 1;
                return Some(s as u32);
            }
            if self.refs[s] == 0 && free.is_none() {
                free = Some(s);
            }
        }
        let s = free?;
        if self.addr[s] != *src {
            // A new peer: its counter starts where the slot's was, so the distances of
            // queues still holding the old value stay non-negative.
            self.addr[s] = *src;
        }
        self.refs[s] = 1;
        Some(s as u32)
    }

    fn put(&mut self, slot: u32) {
        self.refs[slot as usize] -= 1;
    }

    fn bump(&mut self, slot: u32) -> u32 {
        let r = &mut self.rid[slot as usize];
        *r = r.wrapping_add(1);
        *r
    }
}

/// Which held fragment a frame sent for a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The tag the fragment was gathered with.
    pub tag: u64,
    /// Its payload was cut to a multiple of 8: not every byte of it leaves.
    pub trimmed: bool,
}

impl Sent {
    fn of(rec: &FragRec) -> Sent {
        Sent {
            tag: rec.tag,
            trimmed: rec.trimmed,
        }
    }
}

/// Which family's reassembler a completed datagram is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Done {
    family: IpFamily,
    queue: u32,
    /// Length of the datagram frame in `Defrag::out`, and where its IP header starts.
    len: usize,
    l3: usize,
    /// The datagram is no larger than its largest fragment: the bridge sends it whole.
    whole: bool,
    /// IPv6: bytes of extension headers that preceded the fragment header, and the
    /// identification.
    unfrag: usize,
    id: u32,
    /// IPv6: where the byte naming the fragment header was, and the first fragment's end.
    nhoff: usize,
    first_end: usize,
}

/// One worker's reassembly: both families, and the buffer a complete datagram is built in.
#[derive(Debug)]
pub struct Defrag {
    v4: Reassembler,
    v6: Reassembler,
    out: Box<[u8]>,
    scratch: Box<[u8]>,
    done: Option<Done>,
    workers: usize,
}

impl Defrag {
    /// Reassembly for one of `workers` workers: each gets 1/`workers` of each family's
    /// `high_thresh`, allocated (and touched) here.
    pub fn new(v4: FragLimits, v6: FragLimits, workers: usize) -> Defrag {
        Defrag {
            v4: Reassembler::new(v4, workers),
            v6: Reassembler::new(v6, workers),
            out: pool::touched(MAX_DATAGRAM_FRAME),
            scratch: pool::touched(MAX_DATAGRAM_FRAME),
            done: None,
            workers: workers.max(1),
        }
    }

    /// New limits (a reload): held datagrams keep their timers; memory stays as allocated
    /// (a larger `high_thresh` takes effect at the next start).
    pub fn set_limits(&mut self, v4: FragLimits, v6: FragLimits) {
        let workers = self.workers;
        for (r, l) in [(&mut self.v4, v4), (&mut self.v6, v6)] {
            let allocated =
                (r.pool.chunks() - Pool::chunks_for(MAX_DATAGRAM_FRAME) - 1) * pool::CHUNK;
            r.limits = FragLimits {
                high_thresh: Reassembler::share(l.high_thresh, workers).min(allocated),
                ..l
            };
        }
    }

    /// Both families' counters added, as [`DefragCounters::words`].
    pub fn counter_words(&self) -> [u64; DefragCounters::WORDS] {
        let (a, b) = (self.v4.counters.words(), self.v6.counters.words());
        std::array::from_fn(|i| a[i] + b[i])
    }

    pub fn counters(&self, family: IpFamily) -> &DefragCounters {
        match family {
            IpFamily::V4 => &self.v4.counters,
            IpFamily::V6 => &self.v6.counters,
        }
    }

    /// Bytes held and datagrams in reassembly, by family.
    pub fn occupancy(&self, family: IpFamily) -> (usize, usize) {
        let r = match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        };
        (r.mem, r.qs.live)
    }

    /// Take one frame (`meta` is its parse) arriving on `in_port` at `now`; `tag` is the
    /// caller's name for it, given back by [`Self::each_fragment`].
    pub fn gather(
        &mut self,
        now: u64,
        frame: &[u8],
        meta: &PacketMeta,
        in_port: u8,
        tag: u64,
    ) -> Gather {
        self.finish();
        if !meta.is_ip {
            return Gather::NotFragment;
        }
        match meta.family {
            IpFamily::V4 => ipv4::gather(self, now, frame, meta, tag),
            IpFamily::V6 => ipv6::gather(self, now, frame, meta, in_port, tag),
        }
    }

    /// The complete datagram of the last [`Gather::Complete`], as one frame.
    pub fn datagram(&self) -> Option<&[u8]> {
        self.done.map(|d| &self.out[..d.len])
    }

    /// Call `f` with each frame to send for the complete datagram (after it was accepted),
    /// in offset order, and which held fragment it is.
    pub fn each_fragment(&mut self, mut f: impl FnMut(Sent, &[u8])) {
        let Some(d) = self.done else { return };
        if d.whole {
            let r = self.reassembler(d.family);
            let rec = r.qs.f[r.qs.q[d.queue as usize].head as usize];
            f(Sent::of(&rec), &self.out[..d.len]);
            return;
        }
        let mut at = self.reassembler(d.family).qs.q[d.queue as usize].head;
        let mut index = 0;
        while at != NIL {
            let r = self.reassembler(d.family);
            let rec = r.qs.f[at as usize];
            let len = match d.family {
                IpFamily::V4 => {
                    ipv4::write_fragment(&self.out[..d.len], d.l3, &rec, index, &mut self.scratch)
                }
                IpFamily::V6 => {
                    ipv6::write_fragment(&self.out[..d.len], d, &rec, &mut self.scratch)
                }
            };
            f(Sent::of(&rec), &self.scratch[..len]);
            at = rec.next;
            index += 1;
        }
    }

    /// Forget the last complete datagram (also done by the next [`Self::gather`]).
    pub fn finish(&mut self) {
        if let Some(d) = self.done.take() {
            let r = match d.family {
                IpFamily::V4 => &mut self.v4,
                IpFamily::V6 => &mut self.v6,
            };
            r.kill(d.queue);
        }
    }

    /// Drop datagrams whose reassembly time is up, at most `budget` per family (and forget
    /// the last complete datagram).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        self.finish();
        self.v4.expire(now, budget) + self.v6.expire(now, budget)
    }

    fn reassembler(&self, family: IpFamily) -> &Reassembler {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }
}

#[cfg(test)]
mod tests;
