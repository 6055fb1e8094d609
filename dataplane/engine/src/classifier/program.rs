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
//! A lookup finds the first entry that matches, follows skips (each strictly forward, so a
//! walk takes at most one lookup per skip), and reports the rule of the entry that decides,
//! numbered as [`config::ruleset::Stage::numbered`] numbers it. Without chains there are no
//! skips and entry `i` is rule `i`.

use std::collections::BTreeMap;

use config::chains::MAX_DEPTH;
use config::ruleset::{Action, Rule};

use super::compile::{rule_shapes, Shape};

/// What an entry does when it is the first match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Rule `n` of the stage decides (its action is a verdict).
    Rule(u32),
    /// Go on with the first match at entry `n` or later.
    Skip(u32),
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
    // Skips were emitted with label numbers; now every label has its position.
    for s in &mut f.prog.steps {
        if let Step::Skip(l) = s {
            *l = f.labels.get(*l as usize).copied().unwrap_or(u32::MAX);
        }
    }
    Ok(f.prog)
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
            match &r.action {
                Action::Jump(_) | Action::Goto(_) if self.chains.is_none() => {}
                Action::Return => self.push(shapes, Step::Skip(ret.0 as u32))?,
                Action::Jump(t) => {
                    let (rules, at) = self.chain(t)?;
                    let end = self.label();
                    self.emit(rules, at, Some(&shapes), end, depth + 1)?;
                    self.bind(end);
                }
                Action::Goto(t) => {
                    let (rules, at) = self.chain(t)?;
                    self.emit(rules, at, Some(&shapes), ret, depth + 1)?;
                    self.push(shapes, Step::Skip(ret.0 as u32))?;
                }
                _ => self.push(shapes, Step::Rule(base + k as u32))?,
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
