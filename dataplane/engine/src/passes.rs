//! The packets and bytes of rules that match and go on without deciding, other than `log`
//! rules (whose records count them): the mark actions. Counted per rule between drains, so
//! that the runtime adds them to the per-rule counters `statewallctl show` prints, as it does
//! for the rules that decide.
//!
//! Allocation-free on the packet path: each stage's counts are sized to its rules when the
//! ruleset is installed, and a rule is put on the list of those to drain once, when its count
//! leaves zero, so a drain costs the rules that were hit, not the ruleset's size.

use crate::pipeline::StageId;
use crate::ruleset::CompiledRuleset;

/// The stages that have rules, in [`StageId`] order (raw, mangle, mangle_forward, forward).
const STAGES: [StageId; 4] = [
    StageId::Raw,
    StageId::Mangle,
    StageId::MangleForward,
    StageId::Forward,
];

fn index(s: StageId) -> Option<usize> {
    STAGES.iter().position(|x| *x == s)
}

#[derive(Debug, Default)]
struct StagePasses {
    /// Packets and bytes per rule since the last drain.
    hits: Vec<(u64, u64)>,
    /// The rules whose count is not zero.
    dirty: Vec<u32>,
}

/// Per-rule counts of the rules that went on, for one pipeline.
#[derive(Debug, Default)]
pub struct Passes {
    stages: [StagePasses; 4],
}

impl Passes {
    /// Counts for `rules`' stages, all zero. A stage without a mark action gets none.
    pub fn for_rules(rules: &CompiledRuleset) -> Passes {
        let mut p = Passes::default();
        for (s, stage) in p.stages.iter_mut().zip([
            &rules.raw,
            &rules.mangle,
            &rules.mangle_forward,
            &rules.forward,
        ]) {
            if stage.has_mark_actions() {
                let n = stage.rule_count();
                s.hits = vec![(0, 0); n];
                s.dirty = Vec::with_capacity(n);
            }
        }
        p
    }

    /// Rule `rule` of `stage` went on with a packet of `bytes` bytes.
    #[inline]
    pub fn record(&mut self, stage: StageId, rule: u32, bytes: u64) {
        let Some(s) = index(stage).and_then(|i| self.stages.get_mut(i)) else {
            return;
        };
        let Some(h) = s.hits.get_mut(rule as usize) else {
            return;
        };
        if h.0 == 0 {
            s.dirty.push(rule);
        }
        h.0 += 1;
        h.1 += bytes;
    }

    /// Hand every count to `f(stage, rule, packets, bytes)` and start again from zero.
    pub fn drain(&mut self, mut f: impl FnMut(StageId, u32, u64, u64)) {
        for (id, s) in STAGES.iter().zip(&mut self.stages) {
            for r in s.dirty.drain(..) {
                if let Some(h) = s.hits.get_mut(r as usize) {
                    f(*id, r, h.0, h.1);
                    *h = (0, 0);
                }
            }
        }
    }

    /// Whether nothing was counted since the last drain.
    pub fn is_empty(&self) -> bool {
        self.stages.iter().all(|s| s.dirty.is_empty())
    }
}
