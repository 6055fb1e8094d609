//! The tuple space and the flow slots that walk it (the kernel pktgen's `flows` and
//! `flowlen`): `flows` slots are live at once; packets go to the slots in turn; after
//! `flowlen` packets a slot moves on to a fresh tuple (0: never), so the gateway sees new
//! connections at `rate / flowlen` per second on top of established traffic.
//!
//! Tuple `i` is a mixed-radix number over (source port, source address, destination port,
//! destination address), source port fastest, so it can be decoded from a received packet:
//! that is how the far side of the stateful mode finds a connection without any table.

use std::net::IpAddr;

use super::spec::{IpRange, PortRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct TupleSpace {
    pub src: IpRange,
    pub dst: IpRange,
    pub sport: PortRange,
    pub dport: PortRange,
}

impl TupleSpace {
    pub fn new(
        src: IpRange,
        dst: IpRange,
        sport: PortRange,
        dport: PortRange,
    ) -> Result<Self, String> {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err("src and dst must both be IPv4 or both IPv6".to_string());
        }
        Ok(TupleSpace {
            src,
            dst,
            sport,
            dport,
        })
    }

    /// Distinct tuples.
    pub fn len(&self) -> u128 {
        u128::from(self.sport.len)
            .saturating_mul(self.src.len)
            .saturating_mul(u128::from(self.dport.len))
            .saturating_mul(self.dst.len)
    }

    pub fn nth(&self, i: u128) -> Tuple {
        let i = i % self.len();
        let sp = u128::from(self.sport.len);
        let s = i / sp;
        let dp = s / self.src.len;
        let d = dp / u128::from(self.dport.len);
        Tuple {
            sport: self.sport.nth(i),
            src: self.src.nth(s),
            dport: self.dport.nth(dp),
            dst: self.dst.nth(d),
        }
    }

    /// The index of a tuple in the space, from its client side (src = the generator's
    /// sender).
    pub fn index(&self, t: &Tuple) -> Option<u128> {
        let sp = self.sport.index(t.sport)?;
        let s = self.src.index(t.src)?;
        let dp = self.dport.index(t.dport)?;
        let d = self.dst.index(t.dst)?;
        Some(
            sp + u128::from(self.sport.len)
                * (s + self.src.len * (dp + u128::from(self.dport.len) * d)),
        )
    }
}

/// One sender thread's share of the slots: global slots `first`, `first + step`, ...
/// (`count` of them), their generation and packets sent in the current one.
#[derive(Debug)]
pub struct Slots {
    pub flows: u64,
    pub flowlen: u64,
    /// Generations before the tuples repeat (tuple space / flows): a slot's generation
    /// counts modulo this, so tuple indices stay inside the space and decode exactly.
    gens: u32,
    pub first: u64,
    pub step: u64,
    gen: Vec<u32>,
    sent: Vec<u32>,
    next: usize,
    /// Tuples started (slot rotations, the first generation included).
    pub started: u64,
}

impl Slots {
    /// Slots of thread `t` of `threads`, over a space of `tuples` tuples (≥ `flows`).
    pub fn new(flows: u64, flowlen: u64, tuples: u128, t: u64, threads: u64) -> Self {
        let count = (flows.saturating_sub(t)).div_ceil(threads) as usize;
        let gens = (tuples / u128::from(flows.max(1))).clamp(1, u128::from(u32::MAX)) as u32;
        Slots {
            flows,
            flowlen,
            gens,
            first: t,
            step: threads,
            gen: vec![0; count],
            sent: vec![0; count],
            next: 0,
            started: count as u64,
        }
    }

    pub fn len(&self) -> usize {
        self.gen.len()
    }

    /// The global slot number of local slot `k`.
    pub fn global(&self, k: usize) -> u64 {
        self.first + self.step * k as u64
    }

    /// The tuple index slot `k` has now.
    pub fn tuple_index(&self, k: usize) -> u128 {
        u128::from(self.global(k)) + u128::from(self.flows) * u128::from(self.gen[k])
    }

    /// The local slot for the next packet, and that slot's tuple index; rotates the slot
    /// afterwards when it has sent `flowlen` packets.
    pub fn next_packet(&mut self) -> (usize, u128) {
        let k = self.next;
        self.next = if k + 1 == self.gen.len() { 0 } else { k + 1 };
        let idx = self.tuple_index(k);
        self.sent[k] += 1;
        if self.flowlen > 0 && u64::from(self.sent[k]) >= self.flowlen {
            self.sent[k] = 0;
            self.gen[k] = (self.gen[k] + 1) % self.gens;
            self.started += 1;
        }
        (k, idx)
    }

    /// Move slot `k` to its next tuple (the stateful mode, when a connection closes).
    pub fn rotate(&mut self, k: usize) {
        self.gen[k] = (self.gen[k] + 1) % self.gens;
        self.sent[k] = 0;
        self.started += 1;
    }

    /// Which local slot and generation a tuple index belongs to, if it is this thread's.
    pub fn locate(&self, idx: u128) -> Option<(usize, u32)> {
        let global = (idx % u128::from(self.flows)) as u64;
        let gen = (idx / u128::from(self.flows)) as u32;
        let off = global.checked_sub(self.first)?;
        if off % self.step != 0 {
            return None;
        }
        let k = (off / self.step) as usize;
        (k < self.gen.len()).then_some((k, gen))
    }

    pub fn generation(&self, k: usize) -> u32 {
        self.gen[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> TupleSpace {
        TupleSpace::new(
            "10.0.0.1-10.0.0.3".parse().unwrap(),
            "10.0.1.1-10.0.1.2".parse().unwrap(),
            "1000-1009".parse().unwrap(),
            "80-81".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn tuples_round_trip() {
        let s = space();
        assert_eq!(s.len(), 10 * 3 * 2 * 2);
        let mut seen = std::collections::HashSet::new();
        for i in 0..s.len() {
            let t = s.nth(i);
            assert_eq!(s.index(&t), Some(i));
            assert!(seen.insert((t.src, t.dst, t.sport, t.dport)));
        }
        assert_eq!(s.nth(0).sport, 1000);
        assert_eq!(s.nth(1).sport, 1001);
        assert_eq!(s.nth(10).src.to_string(), "10.0.0.2");
    }

    #[test]
    fn slots_rotate_after_flowlen() {
        let mut a = Slots::new(5, 2, 100, 0, 2);
        let b = Slots::new(5, 2, 100, 1, 2);
        assert_eq!((a.len(), b.len()), (3, 2));
        let got: Vec<u128> = (0..8).map(|_| a.next_packet().1).collect();
        // Slots 0, 2, 4 twice each at generation 0, then generation 1 (tuple + 5).
        assert_eq!(got, vec![0, 2, 4, 0, 2, 4, 5, 7]);
        assert_eq!(a.locate(7), Some((1, 1)));
        assert_eq!(a.locate(8), None, "slot 3 is thread 1's");
        assert_eq!(b.locate(8), Some((1, 1)));
        let mut never = Slots::new(3, 0, 100, 0, 1);
        assert!((0..100).all(|_| never.next_packet().1 < 3));
        // 7 tuples, 3 flows: two generations fit, then the slots start over.
        let mut small = Slots::new(3, 1, 7, 0, 1);
        let got: Vec<u128> = (0..9).map(|_| small.next_packet().1).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 0, 1, 2]);
        assert_eq!(small.locate(5), Some((2, 1)));
    }
}
