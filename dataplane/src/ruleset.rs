//! A validated config compiled into the read-only artifact the packet path uses: port
//! indices and peers, both stages' classifiers and actions, conntrack parameters, and a
//! generation number that cached verdicts are checked against.

use config::matches::{CtDir, CtState};
use config::ruleset::{Action, Policy, Ruleset};
use config::validate::{port_names, port_pairs};

use crate::classifier::{Classifier, Key};
use crate::conntrack::Timeouts;

/// Most ports a gateway may have (port indices fit the verdict cache's 7 bits).
pub const MAX_PORTS: usize = 64;
/// Most rules per stage (rule indices fit the verdict cache's u16, minus the policy mark).
pub const MAX_RULES: usize = 65_000;

/// One compiled stage: classifier, the action of each rule, the policy.
#[derive(Debug)]
pub struct CompiledStage {
    pub classifier: Classifier,
    pub actions: Vec<Action>,
    pub policy: Policy,
}

impl CompiledStage {
    /// First matching rule and its action, or the policy (`rule` None).
    #[inline]
    pub fn decide(&self, key: &Key) -> (Option<u32>, Action) {
        match self.classifier.classify(key) {
            Some(i) => (Some(i), self.actions[i as usize]),
            None => (
                None,
                match self.policy {
                    Policy::Accept => Action::Accept,
                    Policy::Drop => Action::Drop,
                },
            ),
        }
    }

    /// Whether verdicts for packets of this state and direction may be cached per flow.
    #[inline]
    pub fn cacheable(&self, state: Option<CtState>, dir: Option<CtDir>) -> bool {
        self.classifier.cacheable(state, dir)
    }
}

/// Everything the pipeline needs from a config.
#[derive(Debug)]
pub struct CompiledRuleset {
    /// Starts at 1 and grows with every reload; 0 never names a ruleset.
    pub generation: u32,
    /// Port names in index order.
    pub ports: Vec<String>,
    /// Out port of each in port (bump-in-the-wire pairs), `None` for unpaired ports.
    pub peer: Vec<Option<u8>>,
    pub raw: CompiledStage,
    pub forward: CompiledStage,
    pub timeouts: Timeouts,
    pub max_entries: usize,
    pub expect_max: usize,
    pub ftp_ports: Vec<u16>,
}

/// Why a validated ruleset still cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{0} ports declared; at most {MAX_PORTS} are supported")]
    TooManyPorts(usize),
    #[error("the {stage} stage has {count} rules; at most {MAX_RULES} are supported")]
    TooManyRules { stage: &'static str, count: usize },
}

fn stage(rules: &[config::ruleset::Rule], policy: Policy, ports: &[String]) -> CompiledStage {
    CompiledStage {
        classifier: Classifier::compile(rules, ports),
        actions: rules.iter().map(|r| r.action).collect(),
        policy,
    }
}

impl CompiledRuleset {
    /// Compile a validated ruleset.
    pub fn compile(r: &Ruleset, generation: u32) -> Result<CompiledRuleset, CompileError> {
        let ports = port_names(r);
        if ports.len() > MAX_PORTS {
            return Err(CompileError::TooManyPorts(ports.len()));
        }
        for (name, s) in [("raw", &r.raw), ("forward", &r.forward)] {
            if s.rules.len() > MAX_RULES {
                return Err(CompileError::TooManyRules {
                    stage: name,
                    count: s.rules.len(),
                });
            }
        }
        let index = |n: &str| ports.iter().position(|p| p == n).map(|i| i as u8);
        let mut peer = vec![None; ports.len()];
        for [a, b] in port_pairs(r) {
            if let (Some(ia), Some(ib)) = (index(&a), index(&b)) {
                peer[ia as usize] = Some(ib);
                peer[ib as usize] = Some(ia);
            }
        }
        Ok(CompiledRuleset {
            generation: generation.max(1),
            raw: stage(&r.raw.rules, r.raw.policy, &ports),
            forward: stage(&r.forward.rules, r.forward.policy, &ports),
            peer,
            ports,
            timeouts: Timeouts::from_settings(&r.conntrack),
            max_entries: r.conntrack.max as usize,
            expect_max: r.conntrack.expect_max as usize,
            ftp_ports: r
                .helpers
                .ftp
                .as_ref()
                .map(|f| f.ports.clone())
                .unwrap_or_default(),
        })
    }

    /// Index of a port name.
    pub fn port_index(&self, name: &str) -> Option<u8> {
        self.ports.iter().position(|p| p == name).map(|i| i as u8)
    }
}
