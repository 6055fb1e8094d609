//! The rule classifier: a stage's rules compiled into a read-only artifact whose lookup cost
//! does not grow linearly with the rule count (DESIGN §5).
//!
//! - [`fields`] puts every match field on a `u128` number line (one *dimension* each).
//! - [`compile`] turns each rule into one or a few *boxes*: per-dimension interval sets whose
//!   conjunction is exactly the rule's match (multiport `ports` is an OR, so two boxes).
//! - [`tree`] builds a decision tree over the boxes that narrows a lookup to a few leaves;
//!   leaves are checked exactly, so the tree only has to be a superset filter.
//! - [`reference`] is an independent, naive matcher written straight from the match
//!   semantics, for tests.
//!
//! [`Classifier::classify_linear`] scans the same boxes in order; the property test
//! `tests/classifier_prop.rs` checks that both agree with each other and with
//! [`reference::rule_matches`].
//!
//! Semantics are iptables': first match wins; every present match must hold; a list matches
//! when one value does (`{not: ..}` when none does); port, ICMP and TCP-flag matches need
//! their protocol even when negated; a packet without conntrack state (the raw stage) never
//! matches a `ctstate` or `ctdir` rule.

mod compile;
mod fields;
mod program;
pub mod reference;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use config::matches::{CtDir, CtState};
use config::ruleset::Rule;

use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::reason::InvalidReason;
use crate::wire::proto;
use fields::{contains, ct_value, Interval, CT, CT_VALUES, FLAGS, NDIMS};
pub use program::ProgramError;
use program::{Program, Step};
use tree::Tree;
pub use tree::TreeStats;

/// What the classifier looks at in a packet. Addresses are 128-bit; IPv4 ones are mapped
/// (`::ffff:a.b.c.d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Key {
    pub family: IpFamily,
    /// Index of the arrival port in the port list given to [`Classifier::compile`].
    pub in_port: u8,
    pub out_port: u8,
    pub src: u128,
    pub dst: u128,
    pub proto: u8,
    /// 0 when the protocol has no ports.
    pub sport: u16,
    pub dport: u16,
    /// Type and code of an ICMP (v4, proto 1) or ICMPv6 (v6, proto 58) packet.
    pub icmp: Option<(u8, u8)>,
    /// 0 unless TCP.
    pub tcp_flags: u8,
    /// `None` in the raw stage, before conntrack.
    pub ctstate: Option<CtState>,
    /// `None` when the state is invalid/untracked, or in the raw stage.
    pub ctdir: Option<CtDir>,
}

impl Key {
    /// The key of a parsed packet. A later fragment (or an unusable L4 header) gives no ICMP
    /// type and no TCP flags; ports are taken from `meta` as they are.
    pub fn from_meta(
        meta: &PacketMeta,
        in_port: u8,
        out_port: u8,
        ctstate: Option<CtState>,
        ctdir: Option<CtDir>,
    ) -> Key {
        // A later fragment has no L4 header; a truncated one is caught by the stage's hotdrop.
        // A TCP header with a bad data offset still has its flags (iptables' `-m tcp` reads
        // the fixed 20 bytes).
        let has_l4 = has_l4(meta);
        let icmp_proto = match meta.family {
            IpFamily::V4 => 1,
            IpFamily::V6 => 58,
        };
        Key {
            family: meta.family,
            in_port,
            out_port,
            src: u128::from_be_bytes(meta.src),
            dst: u128::from_be_bytes(meta.dst),
            proto: meta.proto,
            sport: meta.sport,
            dport: meta.dport,
            icmp: (has_l4 && meta.proto == icmp_proto).then_some((meta.icmp.ty, meta.icmp.code)),
            tcp_flags: key_tcp_flags(meta, has_l4),
            ctstate,
            ctdir,
        }
    }

    /// The TCP flags value the key of this packet has (what `from_meta` puts there).
    #[inline]
    pub fn tcp_flags_of(meta: &PacketMeta) -> u8 {
        key_tcp_flags(meta, has_l4(meta))
    }
}

/// Whether the classifier sees the packet's L4 header (ICMP type, TCP flags).
#[inline]
fn has_l4(meta: &PacketMeta) -> bool {
    meta.fragment != Fragment::Later
        && !matches!(
            meta.l4_invalid,
            Some(InvalidReason::Truncated | InvalidReason::Fragment)
        )
}

/// The key's TCP flags: the header's, or 0 without one (and for other protocols).
#[inline]
fn key_tcp_flags(meta: &PacketMeta, has_l4: bool) -> u8 {
    if has_l4 && meta.proto == proto::TCP {
        meta.tcp.flags
    } else {
        0
    }
}

/// One box of one program entry: `len` constraints from `start` in
/// `Classifier::constraints`.
#[derive(Debug, Clone, Copy)]
struct BoxRef {
    entry: u32,
    start: u32,
    len: u32,
}

/// One constrained dimension of a box: its value must lie in `len` intervals from `start`
/// in `Classifier::intervals`. `lo..=hi` spans them all, so most misses (and every hit on a
/// single interval, the common case) need no second lookup.
#[derive(Debug, Clone, Copy)]
struct Constraint {
    lo: u128,
    hi: u128,
    dim: u32,
    start: u32,
    len: u32,
}

const _: () = assert!(std::mem::size_of::<Constraint>() <= 48);

/// The order a box's constraints are checked in: most selective first, so a miss is
/// usually found on the first one.
const CHECK_ORDER: [usize; NDIMS] = [
    fields::DST,
    fields::DPORT,
    fields::SRC,
    fields::SPORT,
    fields::PROTO,
    fields::ICMP,
    fields::CT,
    fields::IN_PORT,
    fields::OUT_PORT,
    fields::FLAGS,
    fields::FAMILY,
];

/// A compiled stage: immutable after [`Classifier::compile`], shared read-only by workers.
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: usize,
    /// Rule `r` never decides (`log`, `continue`): it matches, does what it does, and the
    /// walk goes on.
    passes: Vec<bool>,
    /// What each program entry does (`program.rs`): without chains, entry `i` is rule `i`.
    steps: Vec<Step>,
    /// Entry `i` is rule `i` for every entry (no chains, or none left after folding): a
    /// lookup is then the first match, with no step to follow.
    flat: bool,
    /// Some entry is a skip: a lookup may need a second one.
    skips: bool,
    boxes: Vec<BoxRef>,
    constraints: Vec<Constraint>,
    intervals: Vec<Interval>,
    tree: Tree,
    stats: TreeStats,
    /// Bit `ct_value(state, dir)` set when some box that can match that conntrack value
    /// tests TCP flags (the verdict then depends on more than the flow).
    flags_by_ct: u32,
    /// Bit `v` set when some box that tests TCP flags accepts the flags value `v`.
    flag_values: [u64; 4],
    /// Bit `ct_value(state, dir)` set when some box of a volatile rule (rate-limited, or
    /// `log`) can match that conntrack value: the verdict depends on time, or the packet
    /// must be logged, so it is never cached.
    volatile_by_ct: u32,
}

const _: () = assert!(CT_VALUES as u32 <= u32::BITS);

/// Whether what a rule does can differ from packet to packet of a flow: a rate limit (the
/// verdict depends on time), `log` (every packet is logged), a match on each packet's own
/// fields (length, TTL, ...), `recent` (it depends on, and may change, the lists).
fn volatile(r: &Rule) -> bool {
    r.limit.is_some()
        || r.action == config::ruleset::Action::Log
        || r.has_packet_matches()
        || r.recent.is_some()
        || r.hashlimit.is_some()
        || r.mark.is_some()
        || r.connmark.is_some()
        || r.action.marks()
}

impl Classifier {
    /// `rules` are already validated (`config::validate`); `ports` are the port names in
    /// index order ([`Key::in_port`] indexes it). A list without chains: a `jump` or `goto`
    /// here names a chain it cannot have, and never matches.
    pub fn compile(rules: &[Rule], ports: &[String]) -> Classifier {
        let program = program::flatten(rules, None, ports, usize::MAX);
        Self::from_program(program.unwrap_or_default(), rules.iter())
    }

    /// A stage's main list and its chains (validated: every target exists, no loops), as
    /// one program of at most `limit` entries.
    pub fn compile_chains(
        rules: &[Rule],
        chains: &BTreeMap<String, Vec<Rule>>,
        ports: &[String],
        limit: usize,
    ) -> Result<Classifier, ProgramError> {
        let program = program::flatten(rules, Some(chains), ports, limit)?;
        Ok(Self::from_program(
            program,
            rules.iter().chain(chains.values().flatten()),
        ))
    }

    /// The classifier of a program over `rules` (in stage numbering).
    fn from_program<'a>(program: Program, rules: impl Iterator<Item = &'a Rule>) -> Classifier {
        let (volatile, passes): (Vec<bool>, Vec<bool>) =
            rules.map(|r| (volatile(r), r.action.passes())).unzip();
        let rules = volatile.len();
        let Program {
            shapes,
            entry_of,
            steps,
        } = program;
        let mut boxes = Vec::with_capacity(shapes.len());
        let mut constraints = Vec::new();
        let mut intervals = Vec::new();
        let mut flags_by_ct = 0u32;
        let mut flag_values = [0u64; 4];
        let mut volatile_by_ct = 0u32;
        for (shape, &entry) in shapes.iter().zip(&entry_of) {
            let rule_volatile = match steps.get(entry as usize) {
                Some(Step::Rule(r) | Step::Test { rule: r, .. }) => {
                    volatile.get(*r as usize).copied().unwrap_or(false)
                }
                _ => false,
            };
            if rule_volatile {
                for v in 0..CT_VALUES {
                    if shape[CT].contains(u128::from(v)) {
                        volatile_by_ct |= 1 << v;
                    }
                }
            }
            let start = constraints.len() as u32;
            for dim in CHECK_ORDER {
                let set = &shape[dim];
                if set.is_full(dim) {
                    continue;
                }
                let (Some(first), Some(last)) = (set.0.first(), set.0.last()) else {
                    continue; // empty sets never reach here: compile drops such boxes
                };
                constraints.push(Constraint {
                    lo: first.0,
                    hi: last.1,
                    dim: dim as u32,
                    start: intervals.len() as u32,
                    len: set.0.len() as u32,
                });
                intervals.extend_from_slice(&set.0);
            }
            boxes.push(BoxRef {
                entry,
                start,
                len: constraints.len() as u32 - start,
            });
            if !shape[FLAGS].is_full(FLAGS) {
                for &(lo, hi) in &shape[FLAGS].0 {
                    for v in lo..=hi.min(255) {
                        flag_values[(v / 64) as usize] |= 1 << (v % 64);
                    }
                }
                for v in 0..CT_VALUES {
                    if shape[CT].contains(u128::from(v)) {
                        flags_by_ct |= 1 << v;
                    }
                }
            }
        }
        constraints.shrink_to_fit();
        intervals.shrink_to_fit();
        let (tree, stats) = Tree::build(&shapes, &entry_of);
        let flat = steps
            .iter()
            .enumerate()
            .all(|(i, s)| *s == Step::Rule(i as u32));
        let skips = steps.iter().any(|s| !matches!(s, Step::Rule(_)));
        Classifier {
            rules,
            passes,
            steps,
            flat,
            skips,
            boxes,
            constraints,
            intervals,
            tree,
            stats,
            flags_by_ct,
            flag_values,
            volatile_by_ct,
        }
    }

    /// Index of the rule that decides (iptables first-match semantics, through the chains),
    /// or `None`: the policy decides.
    #[inline]
    pub fn classify(&self, key: &Key) -> Option<u32> {
        self.classify_with(key, |_| true)
    }

    /// Whether rule `r` never decides (`log`, `continue`).
    #[inline]
    pub fn passes(&self, r: u32) -> bool {
        self.passes.get(r as usize).copied().unwrap_or(false)
    }

    /// As [`Classifier::classify`], where a rule whose classifier matches hold matches in
    /// full only when `accept(rule)` says so: its other matches hold (a rate limit with a
    /// token left, `recent`, a match on the packet's own fields), and `accept` does what the
    /// rule does that decides nothing (a `log` rule logs). A rule that does not match in
    /// full is passed over; a jump, goto or return whose rule does not is not taken. A
    /// `log` or `continue` rule never decides.
    #[inline]
    pub fn classify_with(&self, key: &Key, mut accept: impl FnMut(u32) -> bool) -> Option<u32> {
        let vals = key.values();
        let first = |from: u32| {
            let found = self.tree.lookup(&vals, from, |b| {
                self.boxes
                    .get(b as usize)
                    .is_some_and(|x| self.box_matches(x, &vals))
            });
            match found {
                Some(tree::NONE) => None,
                Some(e) => Some(e),
                // The walk cannot overflow its stack by construction; stay correct if it did.
                None => self.scan(&vals, from),
            }
        };
        // The common programs need one lookup: no chains, or no skips left.
        let e = first(0)?;
        let r = match self.steps.get(e as usize)? {
            _ if self.flat => e,
            Step::Rule(r) if !self.skips => *r,
            _ => return self.walk(e, first, accept),
        };
        if accept(r) && !self.passes(r) {
            return Some(r);
        }
        let next = first(e + 1)?;
        self.walk(next, first, accept)
    }

    /// The reference: a linear first-match scan of the same compiled rules.
    pub fn classify_linear(&self, key: &Key) -> Option<u32> {
        let vals = key.values();
        let first = |from: u32| self.scan(&vals, from);
        self.walk(first(0).unwrap_or(u32::MAX), first, |_| true)
    }

    /// Follow the program from entry `e` (the first match at or after some earlier entry,
    /// or past the end): `first(from)` is the first entry at or after `from` that matches.
    /// Every step goes strictly forward, so the loop ends.
    #[inline]
    fn walk(
        &self,
        mut e: u32,
        first: impl Fn(u32) -> Option<u32>,
        mut accept: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        for _ in 0..=self.steps.len() {
            let from = match self.steps.get(e as usize)? {
                Step::Rule(r) if accept(*r) && !self.passes(*r) => return Some(*r),
                Step::Rule(_) => e + 1,
                Step::Skip(to) | Step::Out(to) => *to,
                Step::Test { rule, yes, no } => {
                    if accept(*rule) {
                        *yes
                    } else {
                        *no
                    }
                }
            };
            e = first(from)?;
        }
        None
    }

    /// Whether a volatile rule (rate-limited, `log`, or with packet matches) can match packets of this (ctstate,
    /// ctdir): their verdict then depends on time, or each must be logged, and is never
    /// cached.
    #[inline]
    pub fn volatile(&self, ctstate: Option<CtState>, ctdir: Option<CtDir>) -> bool {
        self.volatile_by_ct & (1 << ct_value(ctstate, ctdir)) != 0
    }

    /// Whether, for packets with this (ctstate, ctdir), the result depends only on
    /// flow-constant fields (family, ports, addresses, proto, in/out port, ICMP type/code):
    /// no rule whose ctstate/ctdir can match this combination tests TCP flags. The pipeline
    /// may then cache the verdict per flow direction and ruleset generation.
    pub fn cacheable(&self, ctstate: Option<CtState>, ctdir: Option<CtDir>) -> bool {
        self.flags_by_ct & (1 << ct_value(ctstate, ctdir)) == 0
    }

    /// Whether no rule that tests TCP flags can match a packet of protocol `proto` whose
    /// key has these `tcp_flags` ([`Key::tcp_flags_of`]), whatever its other fields: it is
    /// not TCP (such rules are TCP-only), or its flags are a value none of them accepts.
    /// Among packets for which this holds, the flags play no part in the result, so where
    /// [`Classifier::cacheable`] does not hold for their conntrack state, a verdict decided
    /// for one such packet of a flow direction still holds for the next such one. It holds
    /// past the usual anti-scan rules (`--tcp-flags ALL NONE`, `SYN,FIN SYN,FIN`, ...) and
    /// `--syn` rules: an established flow's ACK, PSH|ACK or FIN|ACK matches none of them.
    #[inline]
    pub fn flags_irrelevant(&self, proto: u8, tcp_flags: u8) -> bool {
        proto != proto::TCP
            || self.flag_values[usize::from(tcp_flags / 64)] & (1 << (tcp_flags % 64)) == 0
    }

    /// Number of rules compiled (matching or not), the chains' included.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// Number of program entries: the rules with each chain counted once per place that
    /// jumps to it, plus one per `return` and `goto` (the cost of chains, for the benchmark).
    pub fn entries(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// The decision tree's shape.
    pub fn stats(&self) -> TreeStats {
        self.stats
    }

    /// Heap bytes held (boxes, intervals and the tree).
    pub fn memory_bytes(&self) -> usize {
        self.boxes.capacity() * std::mem::size_of::<BoxRef>()
            + self.constraints.capacity() * std::mem::size_of::<Constraint>()
            + self.intervals.capacity() * std::mem::size_of::<Interval>()
            + self.tree.memory_bytes()
    }

    fn scan(&self, vals: &[u128; NDIMS], from: u32) -> Option<u32> {
        self.boxes
            .iter()
            .find(|b| b.entry >= from && self.box_matches(b, vals))
            .map(|b| b.entry)
    }

    #[inline]
    fn box_matches(&self, b: &BoxRef, vals: &[u128; NDIMS]) -> bool {
        let cons = self
            .constraints
            .get(b.start as usize..(b.start + b.len) as usize)
            .unwrap_or(&[]);
        cons.iter().all(|c| {
            let v = vals.get(c.dim as usize).copied().unwrap_or(0);
            if v < c.lo || v > c.hi {
                return false;
            }
            c.len == 1
                || contains(
                    self.intervals
                        .get(c.start as usize..(c.start + c.len) as usize)
                        .unwrap_or(&[]),
                    v,
                )
        })
    }
}
