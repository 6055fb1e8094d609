//! A validated config compiled into the read-only artifact the packet path uses: port
//! indices and peers, both stages' classifiers and actions, conntrack parameters, and a
//! generation number that cached verdicts are checked against.

use config::matches::{CtDir, CtState, Proto};
use config::ruleset::{Action, Family, Policy, Rule, Ruleset};

use crate::classifier::{Classifier, Key};
use crate::conntrack::Sysctls;
use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::reason::InvalidReason;

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
    /// Bytes of L4 header each rule's port/ICMP/flag matches read (0: none); see `hotdrop`.
    l4_need: Vec<u8>,
    /// The rules, for the rare truncated-header path.
    rules: Vec<Rule>,
    /// Each rule's family ([`Rule::implied_family`]), worked out once for that path.
    families: Vec<Option<Family>>,
    max_l4_need: u8,
}

/// L4 header bytes an iptables match module reads before it can decide: `-m tcp` 20
/// (`struct tcphdr`), `-m udp` 8, `-m multiport` 4 (the ports), `-m icmp`/`-m icmp6` 8.
fn l4_need(r: &Rule) -> u8 {
    let tcp = r
        .proto
        .as_ref()
        .is_some_and(|p| !p.negated && p.values.contains(&Proto::TCP));
    if r.sport.is_some() || r.dport.is_some() || r.tcp_flags.is_some() || r.syn.is_some() {
        return if tcp { 20 } else { 8 };
    }
    if r.ports.is_some() {
        return 4;
    }
    if r.icmp_type.is_some() || r.icmpv6_type.is_some() {
        return 8;
    }
    0
}

/// Whether the IP-level part of a rule (family, ports, addresses, protocol) matches: what
/// iptables checks before it runs the rule's match modules.
fn ip_level_matches(
    r: &Rule,
    family: Option<Family>,
    m: &PacketMeta,
    in_port: &str,
    out_port: &str,
) -> bool {
    let family_ok = match family {
        Some(Family::Ipv4) => m.family == IpFamily::V4,
        Some(Family::Ipv6) => m.family == IpFamily::V6,
        None => true,
    };
    family_ok
        && r.in_port
            .as_ref()
            .is_none_or(|x| x.test(|p| p.0 == in_port))
        && r.out_port
            .as_ref()
            .is_none_or(|x| x.test(|p| p.0 == out_port))
        && r.src
            .as_ref()
            .is_none_or(|x| x.test(|c| c.contains(m.src_ip())))
        && r.dst
            .as_ref()
            .is_none_or(|x| x.test(|c| c.contains(m.dst_ip())))
        && r.proto.as_ref().is_none_or(|x| x.test(|p| p.0 == m.proto))
}

impl CompiledStage {
    /// The policy's verdict, as `decide` gives it when no rule matches.
    #[inline]
    pub fn decide_policy(&self) -> (Option<u32>, Action) {
        (
            None,
            match self.policy {
                Policy::Accept => Action::Accept,
                Policy::Drop => Action::Drop,
            },
        )
    }

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

    /// The kernel's "hotdrop": a match module that must read an L4 header the packet is too
    /// short to have drops the packet on the spot, whatever the rule's target. Returns the
    /// first rule before `before` (the classifier's match, or the rule count) whose IP-level
    /// part matches and whose L4 matches need more than the packet's `l4_len`. iptables runs
    /// match modules in the order written; this takes the port/ICMP matches to run before
    /// the conntrack ones, as in `-p tcp -m multiport --dports 22,80 -m state --state NEW`.
    pub fn hotdrop(
        &self,
        m: &PacketMeta,
        in_port: &str,
        out_port: &str,
        before: Option<u32>,
    ) -> Option<u32> {
        // Only a header shorter than its protocol's minimum can be too short for a match.
        if m.l4_invalid != Some(InvalidReason::Truncated)
            || m.fragment == Fragment::Later
            || m.l4_len >= u16::from(self.max_l4_need)
        {
            return None;
        }
        let end = before.map_or(self.rules.len(), |b| b as usize);
        (0..end.min(self.rules.len()))
            .find(|&i| {
                m.l4_len < u16::from(self.l4_need[i])
                    && ip_level_matches(&self.rules[i], self.families[i], m, in_port, out_port)
            })
            .map(|i| i as u32)
    }

    /// The `reject_with` of rule `i`.
    pub fn reject_with(&self, i: u32) -> Option<config::ruleset::RejectWith> {
        self.rules.get(i as usize).and_then(|r| r.reject_with)
    }

    /// Whether the verdict for this packet, of this state and direction, may be cached for
    /// its flow direction, and a cached one used for it: no rule that tests TCP flags can
    /// match the state, or none can match this packet's flags.
    #[inline]
    pub fn cacheable(&self, m: &PacketMeta, state: Option<CtState>, dir: Option<CtDir>) -> bool {
        self.classifier.cacheable(state, dir)
            || self
                .classifier
                .flags_irrelevant(m.proto, Key::tcp_flags_of(m))
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
    pub sysctls: Sysctls,
    pub max_entries: usize,
    pub expect_max: usize,
    /// IP fragment reassembly limits, IPv4 and IPv6 (`ipfrag_*`, `frag6_*`).
    pub frag_limits: (crate::defrag::FragLimits, crate::defrag::FragLimits),
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

fn stage(rules: &[Rule], policy: Policy, ports: &[String]) -> CompiledStage {
    let l4: Vec<u8> = rules.iter().map(l4_need).collect();
    CompiledStage {
        classifier: Classifier::compile(rules, ports),
        actions: rules.iter().map(|r| r.action).collect(),
        policy,
        max_l4_need: l4.iter().copied().max().unwrap_or(0),
        l4_need: l4,
        rules: rules.to_vec(),
        families: rules.iter().map(Rule::implied_family).collect(),
    }
}

impl CompiledRuleset {
    /// Compile a validated ruleset.
    pub fn compile(r: &Ruleset, generation: u32) -> Result<CompiledRuleset, CompileError> {
        let ports = r.port_names();
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
        for [a, b] in r.port_pairs() {
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
            sysctls: Sysctls::from_settings(&r.conntrack),
            max_entries: r.conntrack.max as usize,
            expect_max: r.conntrack.expect_max as usize,
            frag_limits: crate::defrag::FragLimits::from_settings(&r.conntrack),
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
