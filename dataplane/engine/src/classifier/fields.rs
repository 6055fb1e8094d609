//! The classifier's number lines: every match field is one dimension of `u128` values, and a
//! rule constrains a dimension to a sorted set of disjoint inclusive intervals.
//!
//! Using one value type for all fields lets the compiler, the decision tree and the exact
//! check share one representation (an address, a port, a protocol and a conntrack state are
//! all "a value in a set of intervals").

use config::matches::{CtDir, CtState};

use super::Key;
use crate::packet::IpFamily;

/// Dimension indices. The order is also the order [`Key::values`] fills.
pub(crate) const FAMILY: usize = 0;
pub(crate) const IN_PORT: usize = 1;
pub(crate) const OUT_PORT: usize = 2;
pub(crate) const PROTO: usize = 3;
pub(crate) const SPORT: usize = 4;
pub(crate) const DPORT: usize = 5;
pub(crate) const ICMP: usize = 6;
pub(crate) const SRC: usize = 7;
pub(crate) const DST: usize = 8;
pub(crate) const CT: usize = 9;
pub(crate) const FLAGS: usize = 10;
pub(crate) const NDIMS: usize = 11;

/// Family values: v4 is 0, v6 is 1.
pub(crate) const FAMILY_V4: u128 = 0;
pub(crate) const FAMILY_V6: u128 = 1;

/// ICMP values are `type << 8 | code`; a packet without ICMP type/code gets this sentinel,
/// which no ICMP match contains (negated ones included: `! --icmp-type` still needs ICMP).
pub(crate) const ICMP_NONE: u128 = 0x1_0000;

/// Conntrack values are `state * 3 + dir`, with state 0..=4 as [`CtState`]'s discriminant
/// and 5 for "no state" (raw stage), dir 0 original, 1 reply, 2 none.
pub(crate) const CT_NO_STATE: u8 = 5;
pub(crate) const CT_NO_DIR: u8 = 2;
pub(crate) const CT_VALUES: u8 = 18;

/// The largest value of each dimension (the smallest is always 0).
pub(crate) const DIM_MAX: [u128; NDIMS] = [
    1,
    255,
    255,
    255,
    65535,
    65535,
    ICMP_NONE,
    u128::MAX,
    u128::MAX,
    (CT_VALUES - 1) as u128,
    255,
];

/// The conntrack dimension's value for a (state, direction) pair.
pub(crate) fn ct_value(state: Option<CtState>, dir: Option<CtDir>) -> u8 {
    let s = state.map_or(CT_NO_STATE, |s| s as u8);
    let d = match dir {
        Some(CtDir::Original) => 0,
        Some(CtDir::Reply) => 1,
        None => CT_NO_DIR,
    };
    s * 3 + d
}

/// IPv4-mapped form of the low 32 bits (`::ffff:a.b.c.d`).
pub(crate) fn v4_mapped(a: u128) -> u128 {
    (0xffff_u128 << 32) | (a & 0xffff_ffff)
}

impl Key {
    /// The key as one value per dimension. A v4 address is normalised to its mapped form, so
    /// a key whose upper bits are not `::ffff:` still compares as the IPv4 address it names.
    #[inline]
    pub(crate) fn values(&self) -> [u128; NDIMS] {
        let (family, src, dst) = match self.family {
            IpFamily::V4 => (FAMILY_V4, v4_mapped(self.src), v4_mapped(self.dst)),
            IpFamily::V6 => (FAMILY_V6, self.src, self.dst),
        };
        let icmp = self
            .icmp
            .map_or(ICMP_NONE, |(t, c)| (u128::from(t) << 8) | u128::from(c));
        [
            family,
            u128::from(self.in_port),
            u128::from(self.out_port),
            u128::from(self.proto),
            u128::from(self.sport),
            u128::from(self.dport),
            icmp,
            src,
            dst,
            u128::from(ct_value(self.ctstate, self.ctdir)),
            u128::from(self.tcp_flags),
        ]
    }
}

/// An inclusive interval `lo..=hi`.
pub(crate) type Interval = (u128, u128);

/// A set of values: sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct IntervalSet(pub(crate) Vec<Interval>);

impl IntervalSet {
    /// Every value of dimension `dim`.
    pub(crate) fn full(dim: usize) -> Self {
        IntervalSet(vec![(0, DIM_MAX[dim])])
    }

    /// The set of exactly these values.
    pub(crate) fn from_values(values: impl IntoIterator<Item = u128>) -> Self {
        Self::from_intervals(values.into_iter().map(|v| (v, v)))
    }

    /// Normalise arbitrary intervals (any order, overlapping) into a set.
    pub(crate) fn from_intervals(ivs: impl IntoIterator<Item = Interval>) -> Self {
        let mut v: Vec<Interval> = ivs.into_iter().filter(|(lo, hi)| lo <= hi).collect();
        v.sort_unstable();
        let mut out: Vec<Interval> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                // Overlapping or adjacent: extend (hi + 1 cannot overflow when hi < lo).
                Some(last) if last.1 == u128::MAX || lo <= last.1 + 1 => {
                    last.1 = last.1.max(hi);
                }
                _ => out.push((lo, hi)),
            }
        }
        IntervalSet(out)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn is_full(&self, dim: usize) -> bool {
        self.0.as_slice() == [(0, DIM_MAX[dim])]
    }

    /// The values of dimension `dim` not in this set.
    pub(crate) fn complement(&self, dim: usize) -> Self {
        let max = DIM_MAX[dim];
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut next = 0u128; // first value not yet covered
        let mut done = false;
        for &(lo, hi) in &self.0 {
            let hi = hi.min(max);
            if lo > max {
                break;
            }
            if lo > next {
                out.push((next, lo - 1));
            }
            if hi == max {
                done = true;
                break;
            }
            next = hi + 1;
        }
        if !done {
            out.push((next, max));
        }
        IntervalSet(out)
    }

    pub(crate) fn intersect(&self, other: &IntervalSet) -> Self {
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let lo = a[i].0.max(b[j].0);
            let hi = a[i].1.min(b[j].1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet(out)
    }

    pub(crate) fn contains(&self, v: u128) -> bool {
        contains(&self.0, v)
    }
}

/// Whether `v` lies in one of the sorted, disjoint intervals `ivs`.
#[inline]
pub(crate) fn contains(ivs: &[Interval], v: u128) -> bool {
    if ivs.len() <= 4 {
        // Short lists (the common case: one CIDR, one port) are faster scanned.
        return ivs.iter().any(|&(lo, hi)| lo <= v && v <= hi);
    }
    let i = ivs.partition_point(|&(_, hi)| hi < v);
    ivs.get(i).is_some_and(|&(lo, _)| lo <= v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_merges_overlaps_and_neighbours() {
        let s = IntervalSet::from_intervals([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]);
        assert_eq!(s.0, vec![(1, 9), (20, 30)]);
        let s = IntervalSet::from_intervals([(0, u128::MAX), (3, 4)]);
        assert_eq!(s.0, vec![(0, u128::MAX)]);
    }

    #[test]
    fn complement_and_intersect() {
        let s = IntervalSet::from_intervals([(0, 9), (20, 30)]);
        assert_eq!(s.complement(PROTO).0, vec![(10, 19), (31, 255)]);
        assert_eq!(IntervalSet::full(PROTO).complement(PROTO).0, vec![]);
        assert_eq!(IntervalSet(vec![]).complement(SRC).0, vec![(0, u128::MAX)]);
        let t = IntervalSet::from_intervals([(5, 25)]);
        assert_eq!(s.intersect(&t).0, vec![(5, 9), (20, 25)]);
        let many = IntervalSet::from_values((0..20).map(|v| v * 3));
        assert!(many.contains(57) && !many.contains(58) && !many.contains(1000));
    }
}
