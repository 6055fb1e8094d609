//! A validated config compiled into the read-only artifact the packet path uses: port
//! indices and peers, both stages' classifiers and actions, conntrack parameters, and a
//! generation number that cached verdicts are checked against.

use std::collections::BTreeMap;
use std::sync::Arc;

use config::log::LogOptions;
use config::matches::{CtDir, CtState, Proto};
use config::ruleset::{Action, Family, Policy, RejectWith, Rule, Ruleset, Stage};

use crate::classifier::reference::{self, Visit};
use crate::classifier::{Classifier, Key, ProgramError};
use crate::conntrack::Sysctls;
use crate::hashlimit::{Answer, Table, Tables};
use crate::ipset::{Set, SetMatch};
use crate::limit::Bucket;
use crate::mark::{Marks, RuleMarks};
use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::packet_match::PacketMatches;
use crate::reason::InvalidReason;
use crate::recent::{Lists, RecentMatch};

/// Most ports a gateway may have (port indices fit the verdict cache's 7 bits).
pub const MAX_PORTS: usize = 64;
/// Most rules per stage, the chains' included (rule indices fit the verdict cache's u16,
/// minus the policy mark).
pub const MAX_RULES: usize = 65_000;
/// Most entries a stage's chains may inline into (a chain counts once per place that
/// jumps to it; see `classifier/program.rs`).
pub const MAX_ENTRIES: usize = 4 * MAX_RULES;

/// What a rule that decides does to the packet: the verdicts among [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Accept,
    Drop,
    Reject,
    Notrack,
}

impl Target {
    /// The verdict of an action; `None` for those that move between chains.
    pub fn of(a: &Action) -> Option<Target> {
        match a {
            Action::Accept => Some(Target::Accept),
            Action::Drop => Some(Target::Drop),
            Action::Reject => Some(Target::Reject),
            Action::Notrack => Some(Target::Notrack),
            Action::Log
            | Action::Continue
            | Action::Return
            | Action::Jump(_)
            | Action::Goto(_)
            | Action::Mark(_)
            | Action::ConnMark(_)
            | Action::SaveMark(_)
            | Action::RestoreMark(_) => None,
        }
    }

    fn of_policy(p: Policy) -> Target {
        match p {
            Policy::Accept => Target::Accept,
            Policy::Drop => Target::Drop,
        }
    }
}

/// One compiled stage: classifier, the target of each rule, the policy.
#[derive(Debug)]
pub struct CompiledStage {
    pub classifier: Classifier,
    /// Each rule's target, in stage numbering; `None` for a rule that logs, jumps, goes or
    /// returns (the classifier never names one).
    targets: Vec<Option<Target>>,
    pub policy: Policy,
    /// Bytes of L4 header each rule's port/ICMP/flag matches read (0: none); see `hotdrop`.
    l4_need: Vec<u8>,
    /// Each rule's `reject_with`.
    reject_with: Vec<Option<RejectWith>>,
    /// Each rule's rate limit, shared by the workers (`limit.rs`).
    limits: Vec<Option<Bucket>>,
    /// Each `log` rule's options.
    logs: Vec<Option<LogOptions>>,
    /// Each rule's matches on the packet's own fields (`packet_match.rs`).
    packet: Vec<Option<PacketMatches>>,
    /// Each rule's `recent` match (`recent.rs`).
    recent: Vec<Option<RecentMatch>>,
    /// Each rule's `match_set` (`ipset.rs`).
    sets: Vec<Option<SetMatch>>,
    /// Each rule's `hashlimit` table (`hashlimit.rs`).
    hashlimits: Vec<Option<Arc<Table>>>,
    /// Each rule's mark matches and mark action (`mark.rs`).
    marks: Vec<Option<RuleMarks>>,
    /// The stage, for the rare truncated-header path.
    stage: Stage,
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
    pub fn decide_policy(&self) -> (Option<u32>, Target) {
        (None, Target::of_policy(self.policy))
    }

    /// Whether rule `r`, whose classifier matches hold, matches the packet `pkt` (its
    /// parsed headers and frame) in full at `now`: its matches on the packet's own fields
    /// hold, its `recent` match holds (and does to its list what it does), a rate-limited
    /// rule takes a token. A `log` rule that matches calls `log`; a mark action that
    /// matches changes `marks`.
    #[inline]
    fn hit(
        &self,
        r: u32,
        now: u64,
        pkt: (&PacketMeta, &[u8]),
        marks: &Marks,
        hot: &std::cell::Cell<Option<u32>>,
        log: &mut impl FnMut(u32, Option<&LogOptions>),
    ) -> bool {
        // After a hotdrop the walk only runs out: nothing more happens.
        if hot.get().is_some() {
            return true;
        }
        if let Some(Some(p)) = self.packet.get(r as usize) {
            match p.matches(pkt.0, pkt.1) {
                Some(true) => {}
                Some(false) => return false,
                None => {
                    hot.set(Some(r));
                    return true;
                }
            }
        }
        let rule_marks = self.marks.get(r as usize).and_then(Option::as_ref);
        if rule_marks.is_some_and(|x| !x.matches(marks)) {
            return false;
        }
        if let Some(Some(s)) = self.sets.get(r as usize) {
            if !s.matches(pkt.0) {
                return false;
            }
        }
        if let Some(Some(m)) = self.recent.get(r as usize) {
            if !m.matches(pkt.0, now) {
                return false;
            }
        }
        if let Some(Some(t)) = self.hashlimits.get(r as usize) {
            match t.check(pkt.0, now) {
                Answer::Match => {}
                Answer::NoMatch => return false,
                Answer::Drop => {
                    hot.set(Some(r));
                    return true;
                }
            }
        }
        if let Some(Some(b)) = self.limits.get(r as usize) {
            if !b.take(now) {
                return false;
            }
        }
        if let Some(Some(o)) = self.logs.get(r as usize) {
            log(r, Some(o));
        }
        if rule_marks.is_some_and(|x| x.apply(marks)) {
            log(r, None);
        }
        true
    }

    /// The rule that decides the packet `pkt` (its parsed headers and frame; `key` is its
    /// classifier key) and its target, or the policy (`rule` None), at time `now` (ns; a
    /// rate-limited rule with no token left does not match). Each `log` rule on the way
    /// that matches calls `log(rule, Some(options))`, each mark action `log(rule, None)`; the
    /// mark matches read, and the mark actions write, `marks`.
    #[inline]
    pub fn decide(
        &self,
        key: &Key,
        pkt: (&PacketMeta, &[u8]),
        marks: &Marks,
        now: u64,
        mut log: impl FnMut(u32, Option<&LogOptions>),
    ) -> (Option<u32>, Target) {
        let hot = std::cell::Cell::new(None);
        let decided = self
            .classifier
            .classify_with(key, |r| self.hit(r, now, pkt, marks, &hot, &mut log));
        if let Some(h) = hot.get() {
            return (Some(h), Target::Drop);
        }
        match decided.and_then(|i| Some((i, (*self.targets.get(i as usize)?)?))) {
            Some((i, t)) => (Some(i), t),
            None => self.decide_policy(),
        }
    }

    /// The target of rule `i`, if it decides.
    #[inline]
    pub fn target(&self, i: u32) -> Option<Target> {
        self.targets.get(i as usize).copied().flatten()
    }

    /// Whether some rule of the stage has a mark action (a rule that goes on, counted by
    /// [`crate::passes::Passes`]).
    pub fn has_mark_actions(&self) -> bool {
        self.marks.iter().flatten().any(RuleMarks::acts)
    }

    /// Rules in the stage, the chains' included.
    pub fn rule_count(&self) -> usize {
        self.targets.len()
    }

    /// As [`Self::decide`] for a packet whose L4 header is too short for some rule's
    /// matches; `None` for every other packet (then `decide` answers).
    ///
    /// The kernel's "hotdrop": a match module that must read an L4 header the packet is too
    /// short to have drops the packet on the spot, whatever the rule's target. This walks
    /// the stage as the kernel does (chains included, logging on the way) and drops at the
    /// first rule whose IP-level part matches and whose L4 matches need more than the
    /// packet's `l4_len`, with that rule as the one that decided; a walk that reaches a
    /// verdict or the policy first ends there. iptables runs match modules in the order
    /// written; this takes the port/ICMP matches to run before the conntrack ones, as in
    /// `-p tcp -m multiport --dports 22,80 -m state --state NEW`.
    pub fn decide_truncated(
        &self,
        (m, frame): (&PacketMeta, &[u8]),
        key: &Key,
        ports: &[String],
        marks: &Marks,
        now: u64,
        mut log: impl FnMut(u32, Option<&LogOptions>),
    ) -> Option<(Option<u32>, Target)> {
        // Only a header shorter than its protocol's minimum can be too short for a match.
        if m.l4_invalid != Some(InvalidReason::Truncated)
            || m.fragment == Fragment::Later
            || m.l4_len >= u16::from(self.max_l4_need)
        {
            return None;
        }
        let name = |i: u8| ports.get(usize::from(i)).map_or("", String::as_str);
        let (in_port, out_port) = (name(key.in_port), name(key.out_port));
        let mut hot = false;
        let hot_table = std::cell::Cell::new(None);
        let at = reference::walk(
            &self.stage,
            ports,
            key,
            &mut Visit {
                stop: &mut |i, r| {
                    let i = i as usize;
                    hot = m.l4_len < u16::from(self.l4_need.get(i).copied().unwrap_or(0))
                        && ip_level_matches(
                            r,
                            self.families.get(i).copied().flatten(),
                            m,
                            in_port,
                            out_port,
                        );
                    hot
                },
                hit: &mut |i, _| self.hit(i, now, (m, frame), marks, &hot_table, &mut log),
            },
        );
        if let Some(h) = hot_table.get() {
            return Some((Some(h), Target::Drop));
        }
        Some(match at {
            Some(i) if hot => (Some(i), Target::Drop),
            Some(i) => match self.target(i) {
                Some(t) => (Some(i), t),
                None => self.decide_policy(),
            },
            None => self.decide_policy(),
        })
    }

    /// The `reject_with` of rule `i`.
    pub fn reject_with(&self, i: u32) -> Option<RejectWith> {
        self.reject_with.get(i as usize).copied().flatten()
    }

    /// Whether the verdict for this packet, of this state and direction, may be cached for
    /// its flow direction, and a cached one used for it: no rule that tests TCP flags can
    /// match the state, or none can match this packet's flags.
    #[inline]
    pub fn cacheable(&self, m: &PacketMeta, state: Option<CtState>, dir: Option<CtDir>) -> bool {
        !self.classifier.volatile(state, dir)
            && (self.classifier.cacheable(state, dir)
                || self
                    .classifier
                    .flags_irrelevant(m.proto, Key::tcp_flags_of(m)))
    }
}

/// Everything the pipeline needs from a config.
#[derive(Debug)]
pub struct CompiledRuleset {
    /// Starts at 1 and grows with every reload; 0 never names a ruleset.
    pub generation: u32,
    /// Port names in index order.
    pub ports: Vec<String>,
    /// Each port's interface, in the same order (log lines name them, as the kernel does).
    pub interfaces: Vec<String>,
    /// Out port of each in port (bump-in-the-wire pairs), `None` for unpaired ports.
    pub peer: Vec<Option<u8>>,
    pub raw: CompiledStage,
    /// After conntrack, before `forward`: marks (empty with policy accept: skipped), as
    /// mangle PREROUTING and then mangle FORWARD.
    pub mangle: CompiledStage,
    pub mangle_forward: CompiledStage,
    pub forward: CompiledStage,
    /// Some rule reads or writes connection marks (`connmark`, `connmark`/`save_mark`/
    /// `restore_mark` actions): only then does the pipeline carry the entry's mark.
    pub uses_ct_mark: bool,
    pub sysctls: Sysctls,
    pub max_entries: usize,
    pub expect_max: usize,
    /// IP fragment reassembly limits, IPv4 and IPv6 (`ipfrag_*`, `frag6_*`).
    pub frag_limits: (crate::defrag::FragLimits, crate::defrag::FragLimits),
    pub ftp_ports: Vec<u16>,
    /// The `recent` matches' lists, by name (carried to the next ruleset).
    pub recent: Lists,
    /// The `hashlimit` matches' tables, by name and family (carried too).
    pub hashlimit: Tables,
}

/// Why a validated ruleset still cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{0} ports declared; at most {MAX_PORTS} are supported")]
    TooManyPorts(usize),
    #[error("the {stage} stage has {count} rules (its chains' included); at most {MAX_RULES} are supported")]
    TooManyRules { stage: &'static str, count: usize },
    #[error("the {stage} stage: {error}; jump to fewer chains from fewer places, or flatten some chains")]
    Chains {
        stage: &'static str,
        error: ProgramError,
    },
}

/// What a stage's rules share with the rest of the ruleset: `recent` lists, `hashlimit`
/// tables, sets.
struct Shared<'a> {
    lists: &'a mut Lists,
    tables: &'a mut Tables,
    sets: &'a BTreeMap<String, Arc<Set>>,
}

fn stage(
    name: &'static str,
    s: &Stage,
    ports: &[String],
    shared: &mut Shared,
) -> Result<CompiledStage, CompileError> {
    let classifier = Classifier::compile_chains(&s.rules, &s.chains, ports, MAX_ENTRIES)
        .map_err(|error| CompileError::Chains { stage: name, error })?;
    let l4: Vec<u8> = s.numbered().map(|(_, _, r)| l4_need(r)).collect();
    Ok(CompiledStage {
        classifier,
        targets: s
            .numbered()
            .map(|(_, _, r)| Target::of(&r.action))
            .collect(),
        policy: s.policy,
        max_l4_need: l4.iter().copied().max().unwrap_or(0),
        l4_need: l4,
        families: s.numbered().map(|(_, _, r)| r.implied_family()).collect(),
        reject_with: s.numbered().map(|(_, _, r)| r.reject_with).collect(),
        limits: s
            .numbered()
            .map(|(_, _, r)| r.limit.as_ref().map(Bucket::new))
            .collect(),
        packet: s.numbered().map(|(_, _, r)| PacketMatches::of(r)).collect(),
        recent: s
            .numbered()
            .map(|(_, _, r)| r.recent.as_ref().and_then(|x| shared.lists.compile(x)))
            .collect(),
        sets: s
            .numbered()
            .map(|(_, _, r)| {
                let m = r.match_set.as_ref()?;
                Some(SetMatch::new(m, Arc::clone(shared.sets.get(&m.name)?)))
            })
            .collect(),
        hashlimits: s
            .numbered()
            .map(|(_, _, r)| {
                let h = r.hashlimit.as_ref()?;
                Some(shared.tables.get(h, r.implied_family()))
            })
            .collect(),
        marks: s.numbered().map(|(_, _, r)| RuleMarks::of(r)).collect(),
        logs: s
            .numbered()
            .map(|(_, _, r)| (r.action == Action::Log).then(|| r.log.clone().unwrap_or_default()))
            .collect(),
        stage: s.clone(),
    })
}

impl CompiledRuleset {
    /// Compile a validated ruleset.
    pub fn compile(r: &Ruleset, generation: u32) -> Result<CompiledRuleset, CompileError> {
        Self::compile_after(r, generation, None)
    }

    /// Compile a validated ruleset that replaces `previous`: the `recent` lists both name
    /// keep their addresses, as the kernel keeps a table while the rules naming it are
    /// replaced.
    pub fn compile_after(
        r: &Ruleset,
        generation: u32,
        previous: Option<&CompiledRuleset>,
    ) -> Result<CompiledRuleset, CompileError> {
        let ports = r.port_names();
        if ports.len() > MAX_PORTS {
            return Err(CompileError::TooManyPorts(ports.len()));
        }
        for (name, s) in r.stages() {
            if s.rule_count() > MAX_RULES {
                return Err(CompileError::TooManyRules {
                    stage: name,
                    count: s.rule_count(),
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
        let mut lists = Lists::carry(previous.map(|p| &p.recent));
        let sets: BTreeMap<String, Arc<Set>> = r
            .sets
            .iter()
            .map(|(name, s)| (name.clone(), Arc::new(Set::build(s))))
            .collect();
        let mut tables = Tables::carry(previous.map(|p| &p.hashlimit));
        let mut shared = Shared {
            lists: &mut lists,
            tables: &mut tables,
            sets: &sets,
        };
        let raw = stage("raw", &r.raw, &ports, &mut shared)?;
        let mangle = stage("mangle", &r.mangle, &ports, &mut shared)?;
        let mangle_forward = stage("mangle_forward", &r.mangle_forward, &ports, &mut shared)?;
        let forward = stage("forward", &r.forward, &ports, &mut shared)?;
        let named_tables: Vec<(String, bool)> = r
            .stages()
            .into_iter()
            .flat_map(|(_, st)| st.numbered())
            .filter_map(|(_, _, rule)| {
                let h = rule.hashlimit.as_ref()?;
                Some((h.name.clone(), rule.implied_family() == Some(Family::Ipv6)))
            })
            .collect();
        tables.keep_only(&named_tables);
        let named: Vec<&str> = r
            .stages()
            .into_iter()
            .flat_map(|(_, st)| st.numbered())
            .filter_map(|(_, _, rule)| Some(rule.recent.as_ref()?.command()?.1))
            .collect();
        lists.keep_only(&named);
        let uses_ct_mark = r
            .stages()
            .into_iter()
            .flat_map(|(_, st)| st.numbered())
            .any(|(_, _, rule)| {
                rule.connmark.is_some()
                    || matches!(
                        rule.action,
                        Action::ConnMark(_) | Action::SaveMark(_) | Action::RestoreMark(_)
                    )
            });
        Ok(CompiledRuleset {
            generation: generation.max(1),
            uses_ct_mark,
            raw,
            mangle,
            mangle_forward,
            forward,
            recent: lists,
            hashlimit: tables,
            peer,
            interfaces: {
                let by_name = r.port_interfaces();
                ports
                    .iter()
                    .map(|p| by_name.get(p).cloned().unwrap_or_else(|| p.clone()))
                    .collect()
            },
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

    /// The line a `log` rule wrote, as the kernel's LOG target writes it.
    pub fn log_line(&self, r: &crate::log::LogRecord) -> String {
        crate::log::format::line(r, |p| {
            self.interfaces
                .get(usize::from(p))
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Index of a port name.
    pub fn port_index(&self, name: &str) -> Option<u8> {
        self.ports.iter().position(|p| p == name).map(|i| i as u8)
    }
}
