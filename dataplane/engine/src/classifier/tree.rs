//! The decision tree over boxes: a superset filter that narrows a lookup to a few small
//! leaves, which are then checked exactly.
//!
//! Each inner node cuts one dimension into elementary intervals (from the boundaries of the
//! boxes that constrain it within the node's region). A box that falls in at most [`SPREAD`]
//! of them goes to those children; a box that does not constrain the dimension, or spans
//! more, goes to the node's *rest* subtree instead, so no box is copied widely. A lookup
//! therefore descends into one child *and* the rest subtree, keeping the lowest rule index
//! found and skipping every subtree whose smallest rule index cannot beat it.
//!
//! Nodes, boundaries, child links and leaf entries live in flat vectors indexed by `u32`,
//! so a lookup walks a few cache lines and allocates nothing.

use super::compile::Shape;
use super::fields::{Interval, NDIMS};

/// "No node" in child links and the root of an empty tree.
pub(crate) const NONE: u32 = u32::MAX;
/// Marks a leaf in [`Node::dim`].
const LEAF: u8 = u8::MAX;
/// Boxes a leaf may hold before the builder tries to split it.
const LEAF_SIZE: usize = 8;
/// How many children one box may be copied into before it goes to the rest subtree.
const SPREAD: usize = 4;
/// Deepest node the builder makes; the lookup stack is sized from it.
const MAX_DEPTH: usize = 28;
/// Each level of the walk leaves at most one sibling pending, plus the two just pushed.
const STACK: usize = MAX_DEPTH + 4;

/// One node: a leaf (`dim == LEAF`, `start..start+len` in `leaf`) or a cut of dimension
/// `dim` (`start..start+len` in `bounds` and `children`) with a `rest` subtree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    /// Smallest rule index anywhere below (pruning).
    min_rule: u32,
    dim: u8,
    start: u32,
    len: u32,
    rest: u32,
}

const _: () = assert!(std::mem::size_of::<Node>() <= 20);

/// The tree: flat arrays.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// Per cut: the first value of each child's range, ascending.
    bounds: Vec<u128>,
    /// Per cut: the child node of each range (or [`NONE`]).
    children: Vec<u32>,
    /// Per leaf: (rule, box) in rule order.
    leaf: Vec<(u32, u32)>,
    root: u32,
}

/// Shape statistics, for the benchmark and debugging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub nodes: usize,
    pub leaves: usize,
    pub leaf_entries: usize,
    pub max_depth: usize,
    pub largest_leaf: usize,
    pub bytes: usize,
}

/// How the builder would cut one node along one dimension.
struct Plan {
    dim: usize,
    bounds: Vec<u128>,
    kids: Vec<Vec<u32>>,
    rest: Vec<u32>,
    /// (largest child + rest, copies made): smaller is better.
    score: (usize, usize),
}

struct Builder<'a> {
    shapes: &'a [Shape],
    rule_of: &'a [u32],
    tree: Tree,
    /// Leaf entries and child links still allowed (bounds memory on adversarial sets).
    budget: usize,
    stats: TreeStats,
}

impl Tree {
    /// Build over boxes `shapes` (in rule order), `rule_of[b]` being box `b`'s rule.
    pub(crate) fn build(shapes: &[Shape], rule_of: &[u32]) -> (Tree, TreeStats) {
        let mut b = Builder {
            shapes,
            rule_of,
            tree: Tree {
                root: NONE,
                ..Tree::default()
            },
            budget: 64 * shapes.len() + 65_536,
            stats: TreeStats::default(),
        };
        let entries: Vec<u32> = (0..shapes.len() as u32).collect();
        let region: [Interval; NDIMS] = std::array::from_fn(|d| (0, super::fields::DIM_MAX[d]));
        let root = b.build(entries, &region, 0);
        b.tree.root = root;
        b.tree.nodes.shrink_to_fit();
        b.tree.bounds.shrink_to_fit();
        b.tree.children.shrink_to_fit();
        b.tree.leaf.shrink_to_fit();
        let t = &b.tree;
        b.stats.nodes = t.nodes.len();
        b.stats.bytes = t.nodes.len() * std::mem::size_of::<Node>()
            + t.bounds.len() * 16
            + t.children.len() * 4
            + t.leaf.len() * 8;
        (b.tree, b.stats)
    }

    /// First-match rule, at or after `from`, among the boxes the tree leads `vals` to;
    /// `matches(box)` is the exact check. `None` if the walk ran out of stack (it cannot,
    /// given [`MAX_DEPTH`]; the caller then scans linearly). Always inlined: in the common
    /// lookup `from` is 0 and its test drops out.
    #[inline(always)]
    pub(crate) fn lookup(
        &self,
        vals: &[u128; NDIMS],
        from: u32,
        matches: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let mut best = NONE;
        let mut stack = [NONE; STACK];
        let mut sp = 0usize;
        if self.root != NONE {
            stack[0] = self.root;
            sp = 1;
        }
        while sp > 0 {
            sp -= 1;
            let Some(node) = self.nodes.get(stack[sp] as usize) else {
                continue;
            };
            if node.min_rule >= best {
                continue;
            }
            let (start, end) = (node.start as usize, node.start as usize + node.len as usize);
            if node.dim == LEAF {
                for &(r, b) in self.leaf.get(start..end).unwrap_or(&[]) {
                    if r >= best {
                        break;
                    }
                    if r >= from && matches(b) {
                        best = r;
                        break;
                    }
                }
                continue;
            }
            let v = vals.get(node.dim as usize).copied().unwrap_or(0);
            let bounds = self.bounds.get(start..end).unwrap_or(&[]);
            let i = bounds.partition_point(|&s| s <= v).saturating_sub(1);
            let child = self.children.get(start + i).copied().unwrap_or(NONE);
            // Push the subtree with the larger minimum first, so the one more likely to hold
            // the answer is walked first and tightens `best` for the other.
            let min_of = |n: u32| self.nodes.get(n as usize).map_or(NONE, |x| x.min_rule);
            let (a, b) = (child, node.rest);
            let (first, second) = if min_of(a) > min_of(b) {
                (a, b)
            } else {
                (b, a)
            };
            for n in [first, second] {
                if min_of(n) < best {
                    if sp == STACK {
                        return None;
                    }
                    stack[sp] = n;
                    sp += 1;
                }
            }
        }
        Some(best)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.bounds.capacity() * 16
            + self.children.capacity() * 4
            + self.leaf.capacity() * 8
    }
}

impl Builder<'_> {
    fn leaf(&mut self, entries: &[u32], min_rule: u32, depth: usize) -> u32 {
        let idx = self.tree.nodes.len() as u32;
        self.tree.nodes.push(Node {
            min_rule,
            dim: LEAF,
            start: self.tree.leaf.len() as u32,
            len: entries.len() as u32,
            rest: NONE,
        });
        self.tree
            .leaf
            .extend(entries.iter().map(|&b| (self.rule_of[b as usize], b)));
        self.budget = self.budget.saturating_sub(entries.len());
        self.stats.leaves += 1;
        self.stats.leaf_entries += entries.len();
        self.stats.largest_leaf = self.stats.largest_leaf.max(entries.len());
        self.stats.max_depth = self.stats.max_depth.max(depth);
        idx
    }

    fn build(&mut self, entries: Vec<u32>, region: &[Interval; NDIMS], depth: usize) -> u32 {
        let Some(&first) = entries.first() else {
            return NONE;
        };
        let min_rule = self.rule_of[first as usize];
        if entries.len() <= LEAF_SIZE || depth >= MAX_DEPTH || self.budget < entries.len() {
            return self.leaf(&entries, min_rule, depth);
        }
        let mut best: Option<Plan> = None;
        for dim in 0..NDIMS {
            if let Some(p) = self.plan(&entries, region, dim) {
                if best.as_ref().is_none_or(|b| p.score < b.score) {
                    best = Some(p);
                }
            }
        }
        // Cut only when the worst walk (largest child plus rest) beats scanning the node.
        let Some(plan) = best.filter(|p| p.score.0 < entries.len()) else {
            return self.leaf(&entries, min_rule, depth);
        };
        drop(entries);
        let idx = self.tree.nodes.len() as u32;
        let start = self.tree.bounds.len() as u32;
        let n = plan.kids.len();
        self.tree.nodes.push(Node {
            min_rule,
            dim: plan.dim as u8,
            start,
            len: n as u32,
            rest: NONE,
        });
        self.tree.bounds.extend_from_slice(&plan.bounds);
        self.tree.children.extend(std::iter::repeat_n(NONE, n));
        self.budget = self.budget.saturating_sub(n);
        let (_, hi) = region[plan.dim];
        for (i, kid) in plan.kids.into_iter().enumerate() {
            let mut r = *region;
            r[plan.dim] = (
                plan.bounds[i],
                plan.bounds.get(i + 1).map_or(hi, |next| next - 1),
            );
            let c = self.build(kid, &r, depth + 1);
            self.tree.children[start as usize + i] = c;
        }
        let rest = self.build(plan.rest, region, depth + 1);
        self.tree.nodes[idx as usize].rest = rest;
        idx
    }

    /// Plan a cut of `dim` within `region`; `None` when no box constrains it there.
    fn plan(&self, entries: &[u32], region: &[Interval; NDIMS], dim: usize) -> Option<Plan> {
        let (rlo, rhi) = region[dim];
        let mut points: Vec<u128> = vec![rlo];
        // (entry, first clipped interval index in `clipped`, count)
        let mut constrained: Vec<(u32, usize, usize)> = Vec::new();
        let mut clipped: Vec<Interval> = Vec::new();
        let mut rest: Vec<u32> = Vec::new();
        for &e in entries {
            let set = &self.shapes[e as usize][dim].0;
            let from = set.partition_point(|&(_, hi)| hi < rlo);
            let c0 = clipped.len();
            for &(lo, hi) in set[from..].iter().take_while(|&&(lo, _)| lo <= rhi) {
                clipped.push((lo.max(rlo), hi.min(rhi)));
            }
            let mine = &clipped[c0..];
            if mine == [(rlo, rhi)] {
                clipped.truncate(c0);
                rest.push(e);
                continue;
            }
            for &(lo, hi) in mine {
                points.push(lo);
                if hi < rhi {
                    points.push(hi + 1);
                }
            }
            constrained.push((e, c0, mine.len()));
        }
        if constrained.is_empty() {
            return None;
        }
        points.sort_unstable();
        points.dedup();
        // Children per elementary interval, in entry (rule) order.
        let mut elems: Vec<Vec<u32>> = vec![Vec::new(); points.len()];
        let mut copies = 0usize;
        let mut spread_out: Vec<u32> = Vec::new();
        let mut span: Vec<(usize, usize)> = Vec::new();
        for &(e, c0, n) in &constrained {
            span.clear();
            let mut count = 0usize;
            for &(lo, hi) in &clipped[c0..c0 + n] {
                let i0 = points.partition_point(|&p| p < lo);
                let i1 = points.partition_point(|&p| p <= hi) - 1;
                count += i1 - i0 + 1;
                span.push((i0, i1));
            }
            if count > SPREAD {
                spread_out.push(e);
                continue;
            }
            copies += count;
            for &(i0, i1) in &span {
                for elem in &mut elems[i0..=i1] {
                    elem.push(e);
                }
            }
        }
        if !spread_out.is_empty() {
            // Keep the rest in rule order: merge the two sorted lists.
            let mut merged = Vec::with_capacity(rest.len() + spread_out.len());
            let (mut i, mut j) = (0, 0);
            while i < rest.len() || j < spread_out.len() {
                if j == spread_out.len() || (i < rest.len() && rest[i] < spread_out[j]) {
                    merged.push(rest[i]);
                    i += 1;
                } else {
                    merged.push(spread_out[j]);
                    j += 1;
                }
            }
            rest = merged;
        }
        // Merge neighbouring elementary intervals that hold the same boxes.
        let mut bounds = Vec::new();
        let mut kids: Vec<Vec<u32>> = Vec::new();
        for (p, elem) in points.into_iter().zip(elems) {
            if kids.last().is_some_and(|k| *k == elem) {
                continue;
            }
            bounds.push(p);
            kids.push(elem);
        }
        let largest = kids.iter().map(Vec::len).max().unwrap_or(0);
        if largest >= entries.len() || rest.len() >= entries.len() {
            return None;
        }
        Some(Plan {
            dim,
            bounds,
            kids,
            score: (largest + rest.len(), copies),
            rest,
        })
    }
}
