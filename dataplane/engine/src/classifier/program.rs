//! A stage with user-defined chains as one first-match list of *entries*, the form the
//! decision tree answers for.
//!
//! Each chain's rules are inlined where a rule jumps (or goes) to it, narrowed by that
//! rule's match: a packet the jumping rule does not match matches none of them. What moves
//! the walk forward becomes a *skip*, an entry whose step is "go on from entry N":
//!
//! - `return` in a chain skips to the end of the chain's inlined copy (in the main list: to
//!   the end of the program, where the policy decides);
//! - `goto` inlines the chain, then skips to where the jumping rule's own list returns to,
//!   narrowed by the jumping rule: the walk does not come back to the rest of that list;
//! - `jump` needs no entry of its own: falling off the inlined chain is going on after it.
//!
//! A jump, goto or return whose rule has matches the classifier cannot decide (a rate
//! limit, `recent`, a match on the packet's own fields: see [`guarded`]) gets a *test*
//! entry, whose step asks whether those hold for the packet and goes on at one of two
//! entries: a jump's test enters the chain's copy or skips over it, a return's test leaves
//! the chain or goes on with the next entry.
//!
//! A lookup finds the first entry that matches, follows skips (each strictly forward, so a
//! walk takes at most one lookup per skip), and reports the rule of the entry that decides,
//! numbered as [`config::ruleset::Stage::numbered`] numbers it. Without chains there are no
//! skips and entry `i` is rule `i`.

use std::collections::BTreeMap;

use config::chains::MAX_DEPTH;
use config::ruleset::{Action, Rule};

use super::compile::{rule_shapes, Shape};
use super::fields::IntervalSet;

/// What an entry does when it is the first match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Rule `n` of the stage decides (its action is a verdict).
    Rule(u32),
    /// Go on with the first match at entry `n` or later.
    Skip(u32),
    /// As `Skip`, and never folded into the entries it passes over: the skip out of a
    /// guarded goto's copy, which the packets its test turned away do not pass.
    Out(u32),
    /// Ask whether rule `rule`'s other matches hold (`accept`): go on at entry `yes` if
    /// they do, at `no` if not.
    Test { rule: u32, yes: u32, no: u32 },
}

/// Whether a rule that moves between chains has matches only the packet path can test:
/// a rate limit, `recent`, a match on the packet's own fields, or a set.
pub(crate) fn guarded(r: &Rule) -> bool {
    r.limit.is_some()
        || r.recent.is_some()
        || r.has_packet_matches()
        || r.match_set.is_some()
        || r.hashlimit.is_some()
        || r.mark.is_some()
        || r.connmark.is_some()
}

/// The flattened stage: boxes with the entry each belongs to, and each entry's step.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub(crate) shapes: Vec<Shape>,
    pub(crate) entry_of: Vec<u32>,
    pub(crate) steps: Vec<Step>,
}

/// Why a stage cannot be flattened: the inlined copies exceed the limit (a chain reached
/// from many places, nested), or a chain is unknown or nested too deeply (validation
/// prevents both).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("inlining the chains where they are jumped to makes more than {0} entries")]
    TooLarge(usize),
    #[error("jump to unknown chain `{0}`")]
    UnknownChain(String),
    #[error("chains nest more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// A place in the program not known until the code after it is emitted.
#[derive(Debug, Clone, Copy)]
struct Label(usize);

struct Flattener<'a> {
    /// `None`: a list compiled without its chains, where jumps never match.
    chains: Option<&'a BTreeMap<String, Vec<Rule>>>,
    /// Stage number of each chain's first rule.
    offsets: BTreeMap<&'a str, u32>,
    ports: &'a [String],
    prog: Program,
    /// Entry position of each label, once bound.
    labels: Vec<u32>,
    limit: usize,
}

/// Flatten a stage's main list and chains into at most `limit` entries. Without `chains`,
/// a `jump` or `goto` is left out (it never matches).
pub(crate) fn flatten(
    main: &[Rule],
    chains: Option<&BTreeMap<String, Vec<Rule>>>,
    ports: &[String],
    limit: usize,
) -> Result<Program, ProgramError> {
    let mut offsets = BTreeMap::new();
    let mut at = main.len() as u32;
    for (name, rules) in chains.into_iter().flatten() {
        offsets.insert(name.as_str(), at);
        at += rules.len() as u32;
    }
    let mut f = Flattener {
        chains,
        offsets,
        ports,
        prog: Program::default(),
        labels: Vec::new(),
        limit,
    };
    let end = f.label();
    f.emit(main, 0, None, end, 0)?;
    f.bind(end);
    // Skips and tests were emitted with label numbers; now every label has its position.
    let at = |l: u32| f.labels.get(l as usize).copied().unwrap_or(u32::MAX);
    for s in &mut f.prog.steps {
        match s {
            Step::Skip(l) | Step::Out(l) => *l = at(*l),
            Step::Test { yes, no, .. } => {
                *yes = at(*yes);
                *no = at(*no);
            }
            Step::Rule(_) => {}
        }
    }
    let mut prog = f.prog;
    // Skips to the next entry first: they would stop others from folding.
    drop_dead_entries(&mut prog);
    fold_skips(&mut prog);
    drop_dead_entries(&mut prog);
    Ok(prog)
}

/// How subtracting one box from another went.
enum Minus {
    /// They do not meet: the box is unchanged.
    Apart,
    /// The second covers the first: nothing is left.
    Gone,
    /// What is left is one box.
    One(Box<Shape>),
    /// What is left needs several boxes.
    Split,
}

fn minus(e: &Shape, s: &Shape) -> Minus {
    let meet: Shape = std::array::from_fn(|d| e[d].intersect(&s[d]));
    if meet.iter().any(IntervalSet::is_empty) {
        return Minus::Apart;
    }
    // Dimensions where `e` reaches outside `s`: `e` minus `s` is `e` narrowed to the part
    // outside `s` in one of them, and one box only when there is one such dimension.
    let outside: Vec<usize> = (0..e.len()).filter(|&d| meet[d] != e[d]).collect();
    match outside.as_slice() {
        [] => Minus::Gone,
        [d] => {
            let mut left = e.clone();
            left[*d] = e[*d].intersect(&s[*d].complement(*d));
            Minus::One(Box::new(left))
        }
        _ => Minus::Split,
    }
}

/// Fold a skip into the entries it jumps over where that keeps every box one box: a packet
/// that matches the skip never reaches them, so each loses the skip's boxes, and the skip
/// then matches nothing (a `return` on `in_port: wan` in a chain of `in_port: lan` rules, or
/// an unconditional one mid-chain, costs no second lookup). Sound because a skip lands at
/// the end of the innermost chain copy (or the program) holding it, so no other skip lands
/// between it and its target: every packet that reaches an entry in between passed the
/// skip. Work is bounded; past the bound, skips stay skips.
fn fold_skips(prog: &mut Program) {
    let mut budget = 16 * prog.shapes.len() + (1 << 20);
    for i in 0..prog.steps.len() {
        let Some(Step::Skip(to)) = prog.steps.get(i).copied() else {
            continue;
        };
        let range = |lo: u32, hi: u32| {
            prog.entry_of.partition_point(|&e| e < lo)..prog.entry_of.partition_point(|&e| e < hi)
        };
        let own = range(i as u32, i as u32 + 1);
        let over = range(i as u32 + 1, to);
        if over.len() > budget {
            continue;
        }
        budget -= over.len();
        let skips: Vec<Shape> = prog.shapes.get(own.clone()).unwrap_or_default().to_vec();
        let mut next: Vec<Option<Shape>> = Vec::with_capacity(over.len());
        let mut fits = true;
        'boxes: for e in prog.shapes.get(over.clone()).unwrap_or_default() {
            let mut cur = e.clone();
            for s in &skips {
                match minus(&cur, s) {
                    Minus::Apart => {}
                    Minus::Gone => {
                        next.push(None);
                        continue 'boxes;
                    }
                    Minus::One(left) => cur = *left,
                    Minus::Split => {
                        fits = false;
                        break 'boxes;
                    }
                }
            }
            next.push(Some(cur));
        }
        if !fits {
            continue;
        }
        // Boxes left empty (and the skip's own) are emptied here and dropped below.
        for (slot, new) in prog
            .shapes
            .get_mut(over)
            .unwrap_or_default()
            .iter_mut()
            .zip(next)
        {
            *slot = new.unwrap_or_else(empty_shape);
        }
        for slot in prog.shapes.get_mut(own).unwrap_or_default() {
            *slot = empty_shape();
        }
    }
}

fn empty_shape() -> Shape {
    std::array::from_fn(|_| IntervalSet::default())
}

/// Remove the boxes left empty, the entries left without a box, and every skip to the entry
/// right after it (a `return` that ends its chain, a `goto` that ends its caller's list:
/// matching one would cost a second lookup for nothing, and tools end chains so: `-A
/// f2b-sshd -j RETURN`). Repeated until none is left, as a removal can make another skip's
/// target its next entry.
fn drop_dead_entries(prog: &mut Program) {
    // Empty boxes first: they never match.
    let (shapes, entry_of): (Vec<Shape>, Vec<u32>) = std::mem::take(&mut prog.shapes)
        .into_iter()
        .zip(std::mem::take(&mut prog.entry_of))
        .filter(|(s, _)| s.iter().all(|set| !set.is_empty()))
        .unzip();
    prog.shapes = shapes;
    prog.entry_of = entry_of;
    loop {
        let mut boxes = vec![0usize; prog.steps.len()];
        for &e in &prog.entry_of {
            if let Some(n) = boxes.get_mut(e as usize) {
                *n += 1;
            }
        }
        let no_op: Vec<bool> = prog
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                matches!(*s, Step::Skip(to) | Step::Out(to) if to == i as u32 + 1)
                    || boxes.get(i) == Some(&0)
            })
            .collect();
        if !no_op.contains(&true) {
            return;
        }
        // New index of each old entry (and of the end), counting the entries kept before it.
        let mut new_at = Vec::with_capacity(no_op.len() + 1);
        let mut kept = 0u32;
        for &gone in &no_op {
            new_at.push(kept);
            kept += u32::from(!gone);
        }
        new_at.push(kept);
        let at = |old: u32| new_at.get(old as usize).copied().unwrap_or(kept);
        let gone = |e: u32| no_op.get(e as usize).copied().unwrap_or(true);
        prog.steps = prog
            .steps
            .iter()
            .zip(&no_op)
            .filter(|(_, gone)| !**gone)
            .map(|(s, _)| match *s {
                Step::Skip(to) => Step::Skip(at(to)),
                Step::Out(to) => Step::Out(at(to)),
                Step::Test { rule, yes, no } => Step::Test {
                    rule,
                    yes: at(yes),
                    no: at(no),
                },
                r @ Step::Rule(_) => r,
            })
            .collect();
        let (shapes, entry_of): (Vec<Shape>, Vec<u32>) = std::mem::take(&mut prog.shapes)
            .into_iter()
            .zip(std::mem::take(&mut prog.entry_of))
            .filter(|(_, e)| !gone(*e))
            .map(|(s, e)| (s, at(e)))
            .unzip();
        prog.shapes = shapes;
        prog.entry_of = entry_of;
    }
}

impl<'a> Flattener<'a> {
    fn label(&mut self) -> Label {
        self.labels.push(u32::MAX);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        if let Some(slot) = self.labels.get_mut(l.0) {
            *slot = self.prog.steps.len() as u32;
        }
    }

    fn push(&mut self, shapes: Vec<Shape>, step: Step) -> Result<(), ProgramError> {
        if self.prog.steps.len() >= self.limit {
            return Err(ProgramError::TooLarge(self.limit));
        }
        let entry = self.prog.steps.len() as u32;
        self.prog.steps.push(step);
        self.prog
            .entry_of
            .extend(std::iter::repeat_n(entry, shapes.len()));
        self.prog.shapes.extend(shapes);
        Ok(())
    }

    /// A test of rule `rule`'s other matches: on at `yes` when they hold, at `no` if not.
    fn push_test(
        &mut self,
        shapes: Vec<Shape>,
        rule: u32,
        yes: Label,
        no: Label,
    ) -> Result<(), ProgramError> {
        self.push(
            shapes,
            Step::Test {
                rule,
                yes: yes.0 as u32,
                no: no.0 as u32,
            },
        )
    }

    /// Entries for `rules` (stage numbers from `base`), each narrowed to `cond` (`None`: no
    /// narrowing, the main list); `ret` is where a `return` goes.
    fn emit(
        &mut self,
        rules: &[Rule],
        base: u32,
        cond: Option<&[Shape]>,
        ret: Label,
        depth: usize,
    ) -> Result<(), ProgramError> {
        if depth > MAX_DEPTH {
            return Err(ProgramError::TooDeep);
        }
        for (k, r) in rules.iter().enumerate() {
            let own = rule_shapes(r, self.ports);
            let shapes = match cond {
                None => own,
                Some(c) => intersect_all(c, &own),
            };
            if shapes.is_empty() {
                continue; // never matches where it stands: nothing to inline or skip
            }
            let rule = base + k as u32;
            match &r.action {
                Action::Jump(_) | Action::Goto(_) if self.chains.is_none() => {}
                Action::Return if guarded(r) => {
                    let next = self.label();
                    self.push_test(shapes, rule, ret, next)?;
                    self.bind(next);
                }
                Action::Return => self.push(shapes, Step::Skip(ret.0 as u32))?,
                Action::Jump(t) | Action::Goto(t) => {
                    let (rules, at) = self.chain(t)?;
                    let end = self.label();
                    if guarded(r) {
                        let into = self.label();
                        self.push_test(shapes.clone(), rule, into, end)?;
                        self.bind(into);
                    }
                    if matches!(r.action, Action::Jump(_)) {
                        self.emit(rules, at, Some(&shapes), end, depth + 1)?;
                    } else if guarded(r) {
                        // Returns land at the end of this copy, on the step out of the
                        // caller's list; that step is never folded: the entries after it
                        // are reached by the packets the test turned away.
                        let back = self.label();
                        self.emit(rules, at, Some(&shapes), back, depth + 1)?;
                        self.bind(back);
                        self.push(shapes, Step::Out(ret.0 as u32))?;
                    } else {
                        self.emit(rules, at, Some(&shapes), ret, depth + 1)?;
                        self.push(shapes, Step::Skip(ret.0 as u32))?;
                    }
                    self.bind(end);
                }
                _ => self.push(shapes, Step::Rule(rule))?,
            }
        }
        Ok(())
    }

    fn chain(&self, name: &str) -> Result<(&'a [Rule], u32), ProgramError> {
        match (
            self.chains.and_then(|c| c.get(name)),
            self.offsets.get(name),
        ) {
            (Some(rules), Some(at)) => Ok((rules.as_slice(), *at)),
            _ => Err(ProgramError::UnknownChain(name.to_string())),
        }
    }
}

/// The boxes of "a box of `a` and a box of `b`": every pairwise intersection that is not
/// empty.
fn intersect_all(a: &[Shape], b: &[Shape]) -> Vec<Shape> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let s: Shape = std::array::from_fn(|d| x[d].intersect(&y[d]));
            if s.iter().all(|set| !set.is_empty()) {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::matches::{Match, PortRange, Proto};

    fn tcp_port(p: u16, action: Action) -> Rule {
        let mut r = Rule::new(action);
        r.proto = Some(Match::new(vec![Proto::TCP]));
        r.dport = Some(Match::new(vec![PortRange { lo: p, hi: p }]));
        r
    }

    #[test]
    fn a_chain_is_inlined_where_it_is_reached_and_a_final_return_costs_nothing() {
        let chains = BTreeMap::from([(
            "web".to_string(),
            vec![
                tcp_port(80, Action::Accept),
                tcp_port(81, Action::Return),
                tcp_port(443, Action::Accept),
                Rule::new(Action::Return),
            ],
        )]);
        let main = vec![
            Rule::new(Action::Jump("web".into())),
            tcp_port(22, Action::Accept),
            tcp_port(8080, Action::Goto("web".into())),
            Rule::new(Action::Jump("web".into())),
        ];
        let p = flatten(&main, Some(&chains), &[], usize::MAX).unwrap();
        // Rule numbers: main 0..=3, web 4..=7. Each copy of web is 80 (rule 4) and 443 (rule
        // 6): the return on 81 folds into the 443 rule (they never meet), the final return
        // costs nothing. Between them 22. The goto's copy, narrowed to port 8080, held only
        // web's final return and the skip after the goto, both to the policy: folded into
        // everything after, they are gone.
        assert_eq!(
            p.steps,
            [
                Step::Rule(4),
                Step::Rule(6),
                Step::Rule(1),
                Step::Rule(4),
                Step::Rule(6),
            ]
        );
        assert_eq!(p.entry_of, [0, 1, 2, 3, 4]);
        // A return that would split what follows into several boxes stays a skip.
        let x = BTreeMap::from([(
            "x".to_string(),
            vec![tcp_port(81, Action::Return), Rule::new(Action::Accept)],
        )]);
        let p = flatten(&[Rule::new(Action::Jump("x".into()))], Some(&x), &[], 99).unwrap();
        assert_eq!(p.steps, [Step::Skip(2), Step::Rule(2)]);
        // A limit on the entries.
        assert_eq!(
            flatten(&main, Some(&chains), &[], 5).unwrap_err(),
            ProgramError::TooLarge(5)
        );
    }

    #[test]
    fn a_guarded_jump_goto_or_return_asks_its_rule() {
        let limited = |mut r: Rule| {
            r.limit = Some(config::limit::Limit::new(config::limit::Rate {
                count: 1,
                per_secs: 1,
            }));
            r
        };
        let chains = BTreeMap::from([(
            "c".to_string(),
            vec![
                limited(tcp_port(22, Action::Return)),
                tcp_port(22, Action::Accept),
            ],
        )]);
        let main = vec![
            limited(Rule::new(Action::Jump("c".into()))),
            limited(Rule::new(Action::Goto("c".into()))),
            Rule::new(Action::Drop),
        ];
        let p = flatten(&main, Some(&chains), &[], usize::MAX).unwrap();
        // Rules: main 0-2, c 3-4. The jump's test enters the copy (entry 1) or skips it
        // (entry 3); in the copy, the return's test leaves it (to 3) or goes on (to 2). The
        // goto's copy (entries 4-5) has its returns land on the step out of the main list
        // (entry 6, to the policy at 8), which is never folded: the packets the goto's
        // test turns away go on to the drop (entry 7).
        assert_eq!(
            p.steps,
            [
                Step::Test {
                    rule: 0,
                    yes: 1,
                    no: 3
                },
                Step::Test {
                    rule: 3,
                    yes: 3,
                    no: 2
                },
                Step::Rule(4),
                Step::Test {
                    rule: 1,
                    yes: 4,
                    no: 7
                },
                Step::Test {
                    rule: 3,
                    yes: 6,
                    no: 5
                },
                Step::Rule(4),
                Step::Out(8),
                Step::Rule(2),
            ]
        );
    }
}
