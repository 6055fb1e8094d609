//! Reassembly queues: one per datagram being put together, its fragments in offset order,
//! inserted with the kernel's rules (`inet_frag_queue_insert`, net/ipv4/inet_fragment.c):
//! a fragment that continues the last one joins its *run*, one past the end starts a run, one
//! anywhere else must fit a hole; a fragment wholly inside one run is a duplicate (dropped,
//! the queue kept), any other overlap kills the queue (RFC 5722, and for IPv4 since Linux
//! 4.19). All storage is preallocated: queue and fragment records, and a hash index from key
//! to queue (open addressing, linear probing, backward-shift deletion).

use crate::flow::hash_seed;
use crate::packet::Addr;

pub const NIL: u32 = u32::MAX;

/// What identifies a datagram's fragments: the kernel's `frag_v4_compare_key` (addresses,
/// id, protocol) and `frag_v6_compare_key` (addresses, id, the interface: `iif`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragKey {
    pub src: Addr,
    pub dst: Addr,
    pub id: u32,
    /// IPv4: the protocol. IPv6: 0.
    pub proto: u8,
    /// IPv6: the port it arrived on. IPv4: 0.
    pub iif: u8,
}

impl FragKey {
    pub fn hash(&self) -> u64 {
        let s = hash_seed() ^ 0x6a09_e667_f3bc_c908;
        let mut h = s;
        for w in [
            u128::from_le_bytes(self.src),
            u128::from_le_bytes(self.dst),
            u128::from(self.id) | u128::from(self.proto) << 32 | u128::from(self.iif) << 40,
        ] {
            let lo = (w as u64) ^ h;
            let hi = ((w >> 64) as u64) ^ 0x9e37_79b9_7f4a_7c15;
            let p = u128::from(lo) * u128::from(hi);
            h = (p as u64) ^ ((p >> 64) as u64) ^ s.rotate_left(17);
        }
        h
    }
}

/// One held fragment.
#[derive(Debug, Clone, Copy)]
pub struct FragRec {
    /// Payload bytes `offset..end` of the datagram.
    pub offset: u32,
    pub end: u32,
    /// Its frame in the pool: the bytes before the payload (`head_len`: link, IP and, for
    /// IPv6, extension headers up to and with the fragment header) then the payload.
    pub chain: u32,
    pub head_len: u16,
    /// Where its IP header starts (the link header's length).
    pub l3: u8,
    /// Chunks it holds (for the memory count).
    pub chunks: u16,
    /// It started a run (it did not continue the fragment before it when it came).
    pub run_start: bool,
    /// IPv4: its payload was cut to a multiple of 8 (not all of its bytes will leave).
    pub trimmed: bool,
    /// The caller's name for the frame (`Defrag::gather`'s `tag`).
    pub tag: u64,
    pub next: u32,
}

/// One datagram being reassembled.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub key: FragKey,
    /// Fragments in offset order, and the last of them (the highest end).
    pub head: u32,
    pub tail: u32,
    /// The datagram's payload length as far as known (`q.len`), and the bytes held (`meat`).
    pub len: u32,
    pub meat: u32,
    pub first_in: bool,
    pub last_in: bool,
    /// The largest fragment, and the largest with DF set (IPv4), as the kernel records them
    /// for refragmenting.
    pub max_size: u32,
    pub max_df_size: u32,
    /// ECN codepoints seen (bit `1 << (tos & 3)`, `ip4_frag_ecn`).
    pub ecn: u8,
    /// Engine time the queue's timer fires (armed when created or reinitialised).
    pub expires: u64,
    /// Bytes charged to the family's memory.
    pub mem: usize,
    /// IPv4 `ipfrag_max_dist`: the source's counter slot and its value at this queue's last
    /// fragment.
    pub peer: u32,
    pub rid: u32,
    /// IPv6: where the byte naming the fragment header is, from the first fragment
    /// (`nhoffset`).
    pub nhoff: u16,
    /// Creation order, for expiry.
    pub older: u32,
    pub newer: u32,
    pub live: bool,
}

impl Queue {
    fn empty() -> Queue {
        Queue {
            key: FragKey::default(),
            head: NIL,
            tail: NIL,
            len: 0,
            meat: 0,
            first_in: false,
            last_in: false,
            max_size: 0,
            max_df_size: 0,
            ecn: 0,
            expires: 0,
            mem: 0,
            peer: NIL,
            rid: 0,
            nhoff: 0,
            older: NIL,
            newer: NIL,
            live: false,
        }
    }
}

/// Where a fragment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Insert after this fragment (`NIL`: at the front), starting a run or not.
    At { after: u32, run_start: bool },
    /// Inside one run: a duplicate.
    Dup,
    /// Partly over what is held.
    Overlap,
}

/// Every queue and fragment record of one family, preallocated.
#[derive(Debug)]
pub struct Queues {
    pub q: Box<[Queue]>,
    pub f: Box<[FragRec]>,
    free_q: u32,
    free_f: u32,
    index: Box<[u32]>,
    /// Oldest and newest live queue.
    pub oldest: u32,
    pub newest: u32,
    pub live: usize,
}

impl Queues {
    /// Room for `queues` queues and `frags` fragments.
    pub fn new(queues: usize, frags: usize) -> Queues {
        let queues = queues.clamp(1, NIL as usize / 4);
        let frags = frags.clamp(1, NIL as usize - 1);
        let mut q = vec![Queue::empty(); queues].into_boxed_slice();
        for (i, e) in q.iter_mut().enumerate() {
            e.newer = if i + 1 == queues { NIL } else { i as u32 + 1 };
        }
        let f = (0..frags)
            .map(|i| FragRec {
                offset: 0,
                end: 0,
                chain: NIL,
                head_len: 0,
                l3: 0,
                chunks: 0,
                run_start: false,
                trimmed: false,
                tag: 0,
                next: if i + 1 == frags { NIL } else { i as u32 + 1 },
            })
            .collect();
        Queues {
            q,
            f,
            free_q: 0,
            free_f: 0,
            index: vec![NIL; (queues * 2).next_power_of_two()].into_boxed_slice(),
            oldest: NIL,
            newest: NIL,
            live: 0,
        }
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The live queue of `key`.
    pub fn find(&self, key: &FragKey) -> Option<u32> {
        let mut i = key.hash() as usize & self.mask();
        loop {
            let qi = self.index[i];
            if qi == NIL {
                return None;
            }
            if self.q[qi as usize].key == *key {
                return Some(qi);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// A new queue for `key` (not present), timer at `expires`; `None` when every queue
    /// record is in use.
    pub fn create(&mut self, key: FragKey, expires: u64) -> Option<u32> {
        let qi = self.free_q;
        if qi == NIL {
            return None;
        }
        self.free_q = self.q[qi as usize].newer;
        self.q[qi as usize] = Queue {
            key,
            expires,
            live: true,
            ..Queue::empty()
        };
        self.link_newest(qi);
        let mut i = key.hash() as usize & self.mask();
        while self.index[i] != NIL {
            i = (i + 1) & self.mask();
        }
        self.index[i] = qi;
        self.live += 1;
        Some(qi)
    }

    fn link_newest(&mut self, qi: u32) {
        let q = &mut self.q[qi as usize];
        q.older = self.newest;
        q.newer = NIL;
        if self.newest == NIL {
            self.oldest = qi;
        } else {
            self.q[self.newest as usize].newer = qi;
        }
        self.newest = qi;
    }

    fn unlink(&mut self, qi: u32) {
        let (older, newer) = (self.q[qi as usize].older, self.q[qi as usize].newer);
        if older == NIL {
            self.oldest = newer;
        } else {
            self.q[older as usize].newer = newer;
        }
        if newer == NIL {
            self.newest = older;
        } else {
            self.q[newer as usize].older = older;
        }
    }

    /// Re-arm a queue's timer: it becomes the newest.
    pub fn rearm(&mut self, qi: u32, expires: u64) {
        self.unlink(qi);
        self.q[qi as usize].expires = expires;
        self.link_newest(qi);
    }

    /// Remove a queue whose fragments were already released ([`Self::take_frags`]).
    pub fn destroy(&mut self, qi: u32) {
        let key = self.q[qi as usize].key;
        let mask = self.mask();
        let mut i = key.hash() as usize & mask;
        while self.index[i] != qi {
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: move later members of the probe run into the hole.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.index[j] != NIL {
            let home = self.q[self.index[j] as usize].key.hash() as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = self.index[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.index[hole] = NIL;
        self.unlink(qi);
        self.q[qi as usize].live = false;
        self.q[qi as usize].newer = self.free_q;
        self.free_q = qi;
        self.live -= 1;
    }

    /// Detach every fragment of a queue; `f(rec)` sees each (to give its chain back) and the
    /// record is freed. The queue is left empty, as `ip_frag_reinit` leaves it.
    pub fn take_frags(&mut self, qi: u32, mut f: impl FnMut(&FragRec)) {
        let mut at = self.q[qi as usize].head;
        while at != NIL {
            let rec = self.f[at as usize];
            f(&rec);
            self.f[at as usize].next = self.free_f;
            self.free_f = at;
            at = rec.next;
        }
        let q = &mut self.q[qi as usize];
        *q = Queue {
            key: q.key,
            expires: q.expires,
            peer: q.peer,
            rid: q.rid,
            older: q.older,
            newer: q.newer,
            live: q.live,
            ..Queue::empty()
        };
    }

    /// Where `offset..end` goes in queue `qi`: `inet_frag_queue_insert`'s decision.
    pub fn place(&self, qi: u32, offset: u32, end: u32) -> Insert {
        let q = &self.q[qi as usize];
        if q.tail == NIL {
            return Insert::At {
                after: NIL,
                run_start: true,
            };
        }
        let tail = &self.f[q.tail as usize];
        if tail.end < end {
            // The common case: past the last fragment.
            if offset < tail.end {
                return Insert::Overlap;
            }
            return Insert::At {
                after: q.tail,
                run_start: offset != tail.end,
            };
        }
        // Against every run (the kernel searches its tree of runs; the runs are disjoint, so
        // the first one met that the fragment touches decides, wherever the search starts).
        let mut after = NIL;
        let mut at = q.head;
        while at != NIL {
            let start = self.f[at as usize].offset;
            let mut run_end = self.f[at as usize].end;
            let mut last = at;
            at = self.f[at as usize].next;
            while at != NIL && !self.f[at as usize].run_start {
                run_end = self.f[at as usize].end;
                last = at;
                at = self.f[at as usize].next;
            }
            if end <= start {
                break;
            }
            if offset >= run_end {
                after = last;
                continue;
            }
            return if offset >= start && end <= run_end {
                Insert::Dup
            } else {
                Insert::Overlap
            };
        }
        Insert::At {
            after,
            run_start: true,
        }
    }

    /// Link a new fragment record where [`Self::place`] said; `None` when every record is in
    /// use.
    pub fn insert(&mut self, qi: u32, after: u32, mut rec: FragRec) -> Option<u32> {
        let fi = self.free_f;
        if fi == NIL {
            return None;
        }
        self.free_f = self.f[fi as usize].next;
        let q = &mut self.q[qi as usize];
        if after == NIL {
            rec.next = q.head;
            q.head = fi;
        } else {
            rec.next = self.f[after as usize].next;
            self.f[after as usize].next = fi;
        }
        if rec.next == NIL {
            q.tail = fi;
        }
        self.f[fi as usize] = rec;
        Some(fi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u32, end: u32, run_start: bool) -> FragRec {
        FragRec {
            offset,
            end,
            chain: 0,
            head_len: 0,
            l3: 14,
            chunks: 1,
            run_start,
            trimmed: false,
            tag: 0,
            next: NIL,
        }
    }

    fn add(qs: &mut Queues, qi: u32, offset: u32, end: u32) -> Insert {
        let p = qs.place(qi, offset, end);
        if let Insert::At { after, run_start } = p {
            qs.insert(qi, after, rec(offset, end, run_start)).unwrap();
        }
        p
    }

    fn key(id: u32) -> FragKey {
        FragKey {
            id,
            ..FragKey::default()
        }
    }

    #[test]
    fn runs_duplicates_and_overlaps_as_the_kernel_decides() {
        let mut qs = Queues::new(4, 16);
        let qi = qs.create(key(1), 10).unwrap();
        assert!(matches!(add(&mut qs, qi, 16, 24), Insert::At { .. }));
        // Continues the tail: same run.
        assert_eq!(
            add(&mut qs, qi, 24, 32),
            Insert::At {
                after: 0,
                run_start: false
            }
        );
        // Wholly inside the run 16..32, across its two fragments: a duplicate.
        assert_eq!(qs.place(qi, 20, 28), Insert::Dup);
        assert_eq!(qs.place(qi, 16, 32), Insert::Dup);
        // Past the end but starting inside: overlap.
        assert_eq!(qs.place(qi, 24, 40), Insert::Overlap);
        // In front, disjoint: its own run at the front.
        assert_eq!(
            add(&mut qs, qi, 0, 8),
            Insert::At {
                after: NIL,
                run_start: true
            }
        );
        // 8..16 fills the hole, a run of its own; 0..16 now spans two runs: an overlap,
        // though every byte of it is held (the kernel compares against runs).
        assert!(matches!(add(&mut qs, qi, 8, 16), Insert::At { .. }));
        assert_eq!(qs.place(qi, 0, 16), Insert::Overlap);
        assert_eq!(qs.place(qi, 8, 16), Insert::Dup);
        let mut got = vec![];
        let mut at = qs.q[qi as usize].head;
        while at != NIL {
            got.push((qs.f[at as usize].offset, qs.f[at as usize].end));
            at = qs.f[at as usize].next;
        }
        assert_eq!(got, [(0, 8), (8, 16), (16, 24), (24, 32)]);
    }

    #[test]
    fn the_index_survives_churn() {
        let mut qs = Queues::new(64, 64);
        let mut live = std::collections::BTreeSet::new();
        for round in 0..2000u32 {
            let id = round.wrapping_mul(2_654_435_761) % 97;
            if let Some(qi) = qs.find(&key(id)) {
                qs.take_frags(qi, |_| {});
                qs.destroy(qi);
                live.remove(&id);
            } else if qs.create(key(id), u64::from(round)).is_some() {
                live.insert(id);
            }
            for id in 0..97 {
                assert_eq!(
                    qs.find(&key(id)).is_some(),
                    live.contains(&id),
                    "round {round}"
                );
            }
            assert_eq!(qs.live, live.len());
        }
    }
}
