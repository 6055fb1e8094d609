//! Packet and connection marks on the packet path ([`config::mark`] has the operations).
//!
//! A packet's walk through the stages carries a [`Marks`]: its mark (0 when it arrives) and
//! the mark of its connection, when it has one (the entry's `mark`, read after conntrack and
//! written back after each stage that may change it). Each rule with a `mark`/`connmark`
//! match or a mark action has a [`RuleMarks`], tested and applied in
//! `CompiledStage::hit` when the rule's other matches hold.

use std::cell::Cell;

use config::mark::{MarkCopy, MarkValue};
use config::matches::Match;
use config::ruleset::{Action, Rule};

/// The marks of the packet being walked. Cells: the classifier's callback reads and
/// writes them while the stage holds only shared references.
#[derive(Debug, Default)]
pub struct Marks {
    /// `skb->mark`.
    pub packet: Cell<u32>,
    /// `ct->mark`; `None` for a packet without a connection (before conntrack, untracked,
    /// INVALID): `connmark` never matches it and the connection actions do nothing, as
    /// `xt_connmark` does without a conntrack.
    pub ct: Cell<Option<u32>>,
}

impl Marks {
    /// A packet off the wire: mark 0, no connection yet.
    pub fn new() -> Marks {
        Marks::default()
    }
}

/// What a rule's mark action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Mark(MarkValue),
    ConnMark(MarkValue),
    Save(MarkCopy),
    Restore(MarkCopy),
}

/// One rule's mark matches and action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMarks {
    mark: Option<Match<MarkValue>>,
    connmark: Option<Match<MarkValue>>,
    op: Option<Op>,
}

impl RuleMarks {
    /// The rule's marks, or `None` when it has neither a mark match nor a mark action.
    pub fn of(r: &Rule) -> Option<RuleMarks> {
        let op = match &r.action {
            Action::Mark(v) => Some(Op::Mark(*v)),
            Action::ConnMark(v) => Some(Op::ConnMark(*v)),
            Action::SaveMark(c) => Some(Op::Save(*c)),
            Action::RestoreMark(c) => Some(Op::Restore(*c)),
            _ => None,
        };
        (op.is_some() || r.mark.is_some() || r.connmark.is_some()).then(|| RuleMarks {
            mark: r.mark.clone(),
            connmark: r.connmark.clone(),
            op,
        })
    }

    /// Whether the packet's marks satisfy the rule's mark matches.
    #[inline]
    pub fn matches(&self, m: &Marks) -> bool {
        if let Some(x) = &self.mark {
            let p = m.packet.get();
            if !x.test(|v| v.matches(p)) {
                return false;
            }
        }
        if let Some(x) = &self.connmark {
            // Without a connection the match fails, negated or not.
            let Some(ct) = m.ct.get() else {
                return false;
            };
            if !x.test(|v| v.matches(ct)) {
                return false;
            }
        }
        true
    }

    /// Do the rule's action (the rule matched in full); whether it had one.
    #[inline]
    pub fn apply(&self, m: &Marks) -> bool {
        let ct = m.ct.get();
        match self.op {
            None => return false,
            Some(Op::Mark(v)) => m.packet.set(v.apply(m.packet.get())),
            Some(Op::ConnMark(v)) => m.ct.set(ct.map(|c| v.apply(c))),
            Some(Op::Save(c)) => m.ct.set(ct.map(|x| c.save(x, m.packet.get()))),
            Some(Op::Restore(c)) => {
                if let Some(x) = ct {
                    m.packet.set(c.restore(m.packet.get(), x));
                }
            }
        }
        true
    }

    /// Whether the rule has a mark action.
    pub fn acts(&self) -> bool {
        self.op.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use config::matches::Scalar;

    fn mv(s: &str) -> MarkValue {
        MarkValue::parse_str(s).unwrap()
    }

    #[test]
    fn matches_and_actions_as_the_kernel() {
        let m = Marks::new();
        let set = RuleMarks::of(&Rule::new(Action::Mark(mv("0x10/0xf0")))).unwrap();
        assert!(set.matches(&m));
        m.packet.set(0xabcd);
        set.apply(&m);
        assert_eq!(m.packet.get(), 0xab1d);
        // No connection: connmark fails both ways, the connection actions do nothing.
        let not = RuleMarks::of(&Rule {
            connmark: Some(Match::negated(vec![mv("1")])),
            ..Rule::new(Action::SaveMark(MarkCopy::default()))
        })
        .unwrap();
        assert!(!not.matches(&m));
        not.apply(&m);
        assert_eq!(m.ct.get(), None);
        m.ct.set(Some(0));
        assert!(not.matches(&m));
        not.apply(&m);
        assert_eq!(m.ct.get(), Some(0xab1d));
        m.packet.set(0);
        let restore = RuleMarks::of(&Rule {
            mark: Some(Match::new(vec![mv("0")])),
            ..Rule::new(Action::RestoreMark(MarkCopy {
                nfmask: 0xff,
                ctmask: 0xf,
            }))
        })
        .unwrap();
        assert!(restore.matches(&m));
        restore.apply(&m);
        assert_eq!(m.packet.get(), 0xd);
        assert!(RuleMarks::of(&Rule::new(Action::Accept)).is_none());
    }
}
