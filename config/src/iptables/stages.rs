//! From translated rule lines to the ruleset: each line's chain becomes a stage and its
//! target an action (or an FTP helper port), `-I` positions are honoured, chain policies of
//! the two families are merged, interfaces become ports, and every translated rule is checked
//! by the loader's validation.

use std::collections::{BTreeMap, HashSet};

use crate::chains;
use crate::diag::{Diagnostic, Pos};
use crate::interfaces;
use crate::log::LogOptions;
use crate::matches::{Match, PortRange};
use crate::proto::Proto;
use crate::ruleset::{Action, Family, FtpHelper, Policy, Rule, Ruleset, Stage};
use crate::source_map::SourceMap;
use crate::suggest::did_you_mean;
use crate::validate::validate;

use super::family::{fam_index, fam_tool};
use super::import::{builtin_chains, ChainKey, Entry, Importer, Item, TABLES};
use super::rule::{ConnMarkOp, Parsed, Target};
use super::words::Tok;

impl Importer<'_> {
    /// What has been said so far (errors, warnings), for [`Importer::hold_since`].
    pub(super) fn said(&self) -> (usize, usize) {
        (self.errs.len(), self.warns.len())
    }

    /// Hold what was said since `mark` about a rule of filter INPUT or OUTPUT or of a
    /// user-defined chain until `finish` knows whether that chain is translated at all
    /// (INPUT/OUTPUT of a gateway, and chains only they reach, are left out).
    pub(super) fn hold_since(
        &mut self,
        mark: (usize, usize),
        fam: Family,
        table: &str,
        chain: &str,
    ) {
        let key: ChainKey = (fam, table.to_string(), chain.to_string());
        let may_be_left_out = (matches!(table, "filter" | "mangle")
            && matches!(chain, "INPUT" | "OUTPUT"))
            || (matches!(table, "filter" | "raw" | "mangle") && self.user_chains.contains(&key));
        if may_be_left_out {
            let mut said = self.errs.split_off(mark.0);
            said.append(&mut self.warns.split_off(mark.1));
            if !said.is_empty() {
                self.held.push((key, said));
            }
        }
    }

    /// Translate one rule line into its chain.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each argument a part of the line"
    )]
    pub(super) fn add_rule(
        &mut self,
        fam: Family,
        table: &str,
        table_pos: Pos,
        chain: &Tok,
        insert: Option<(usize, Pos)>,
        parsed: Parsed,
        pos: Pos,
    ) {
        let Parsed {
            mut rule,
            target,
            ifaces,
            physdev_bridged,
            mut errs,
            mut warns,
            never,
            ..
        } = parsed;
        self.warns.append(&mut warns);
        if never {
            // A match never true for forwarded traffic: the rule is left out (its warning
            // says so); only what is wrong with how it is written still counts.
            self.errs.append(&mut errs);
            return;
        }
        let name = chain.text.as_str();
        let key = (fam, table.to_string(), name.to_string());
        let user = self.user_chains.contains(&key);
        if let Some(p) = physdev_bridged {
            // With br_netfilter, filter FORWARD sees bridged packets (true) and routed ones
            // (false); a bump-in-the-wire gateway routes nothing, so in FORWARD (and the
            // user chains it reaches) the match is always true and drops out. INPUT/OUTPUT
            // see locally delivered or sent packets, for which it is false; PREROUTING is
            // before the bridging decision.
            if !(table == "filter" && (name == "FORWARD" || user)) {
                errs.push(
                    Diagnostic::error(
                        self.file,
                        p,
                        format!("`--physdev-is-bridged` in {table} {name} cannot be translated"),
                    )
                    .with_hint(
                        "it is always true in filter FORWARD on a bridge, where import drops it; elsewhere remove the rule or move it to FORWARD",
                    ),
                );
            }
        }
        let ok = errs.is_empty();
        self.errs.append(&mut errs);
        let stage_table: &'static str = match (table, name) {
            ("filter", "INPUT" | "FORWARD" | "OUTPUT") => "filter",
            ("raw", "PREROUTING") => "raw",
            ("mangle", "PREROUTING" | "FORWARD" | "INPUT" | "OUTPUT" | "POSTROUTING") => "mangle",
            ("filter", _) if user => "filter",
            ("raw", _) if user => "raw",
            ("mangle", _) if user => "mangle",
            _ => {
                let (msg, hint) = {
                    match table {                        "nat" => (
                            format!("`{name}` in table `nat`: statewall does no NAT"),
                            "remove the nat table (do NAT on another box); import the filter and raw tables".to_string(),
                        ),
                        "security" => (
                            format!("`{name}` in table `{table}` cannot be translated"),
                            format!("statewall has no {table} table; remove these rules"),
                        ),
                        "raw" if name == "OUTPUT" => (
                            "raw OUTPUT rules cannot be translated".to_string(),
                            "raw OUTPUT sees locally generated packets, and a bump-in-the-wire gateway has none; use raw PREROUTING".to_string(),
                        ),
                        "filter" | "raw" | "mangle" => (
                            format!("no chain `{name}` in table `{table}`"),
                            format!(
                                "built-in chains of `{table}`: {}",
                                builtin_chains(table).join(", ")
                            ),
                        ),
                        _ => (
                            format!("unknown table `{table}`{}", did_you_mean(table, TABLES)),
                            format!("tables are {}", TABLES.join(", ")),
                        ),
                    }
                };
                let at = if TABLES.contains(&table) {
                    chain.pos
                } else {
                    table_pos
                };
                self.err(at, msg, hint);
                return;
            }
        };
        // No target: the rule only counts, and does what its matches do (`-m recent --set`).
        let (target, tpos) = target.unwrap_or((Target::Continue, pos));
        let user_target = |t: &str| {
            self.user_chains
                .contains(&(fam, table.to_string(), t.to_string()))
        };
        if stage_table == "raw" && rule.connmark.is_some() {
            // No connection exists before conntrack: the kernel's connmark match is false,
            // negated or not.
            self.warns.push(
                Diagnostic::warning(
                    self.file,
                    pos,
                    "`-m connmark` in the raw table never matches (no connection exists before conntrack): the rule is left out",
                )
                .with_hint("match connection marks in mangle or filter chains"),
            );
            return;
        }
        let item = match (stage_table, target) {
            (_, Target::Accept) => {
                rule.action = Action::Accept;
                Item::Rule(Box::new(rule))
            }
            (_, Target::Return) => {
                rule.action = Action::Return;
                Item::Rule(Box::new(rule))
            }
            (_, Target::Continue) => {
                rule.action = Action::Continue;
                Item::Rule(Box::new(rule))
            }
            (_, Target::Log(o)) => {
                rule.action = Action::Log;
                rule.log = Some(o).filter(|o| *o != LogOptions::default());
                Item::Rule(Box::new(rule))
            }
            (_, Target::Other(t)) if user_target(&t) => {
                rule.action = Action::Jump(t);
                Item::Rule(Box::new(rule))
            }
            (_, Target::Goto(t)) if user_target(&t) => {
                rule.action = Action::Goto(t);
                Item::Rule(Box::new(rule))
            }
            (_, Target::Goto(t)) => {
                let names: Vec<&str> = self
                    .user_chains
                    .iter()
                    .filter(|(f, tb, _)| *f == fam && tb == table)
                    .map(|(_, _, c)| c.as_str())
                    .collect();
                self.err(
                    tpos,
                    format!(
                        "`-g {t}`: no user-defined chain `{t}` in table `{table}`{}",
                        did_you_mean(&t, &names)
                    ),
                    "`-g` goes to a user-defined chain: declare it with `:NAME - [0:0]` (or `-N NAME`) before the rules",
                );
                return;
            }
            (_, Target::Mark(Some(v))) => {
                rule.action = Action::Mark(v);
                Item::Rule(Box::new(rule))
            }
            ("raw", Target::ConnMark(Some(_))) => {
                // CONNMARK does nothing to a packet without a connection.
                self.warns.push(
                    Diagnostic::warning(
                        self.file,
                        tpos,
                        "`-j CONNMARK` in the raw table does nothing (no connection exists before conntrack): the rule only counts",
                    )
                    .with_hint("set connection marks in mangle or filter chains"),
                );
                rule.action = Action::Continue;
                Item::Rule(Box::new(rule))
            }
            (_, Target::ConnMark(Some(op))) => {
                rule.action = match op {
                    ConnMarkOp::Set(v) => Action::ConnMark(v),
                    ConnMarkOp::Save(c) => Action::SaveMark(c),
                    ConnMarkOp::Restore(c) => Action::RestoreMark(c),
                };
                Item::Rule(Box::new(rule))
            }
            // Refused by the parser already.
            (_, Target::Mark(None) | Target::ConnMark(None)) => return,
            ("filter" | "mangle", Target::Drop) => {
                rule.action = Action::Drop;
                Item::Rule(Box::new(rule))
            }
            ("filter", Target::Reject(rw)) => {
                rule.action = Action::Reject;
                rule.reject_with = rw;
                Item::Rule(Box::new(rule))
            }
            (
                "raw",
                Target::Notrack
                | Target::Ct {
                    notrack: true,
                    helper: None,
                },
            ) => {
                rule.action = Action::Notrack;
                Item::Rule(Box::new(rule))
            }
            (
                "raw",
                Target::Ct {
                    notrack: false,
                    helper: Some(_),
                },
            ) if name != "PREROUTING" => {
                self.err(
                    tpos,
                    format!("`-j CT --helper` in user-defined chain `{name}` cannot be translated"),
                    "statewall's FTP helper is set per control port: put `-p tcp --dport PORT -j CT --helper ftp` in raw PREROUTING",
                );
                return;
            }
            (
                "raw",
                Target::Ct {
                    notrack: false,
                    helper: Some(h),
                },
            ) => match self.ftp_port(&rule, &h, tpos) {
                Some(p) => Item::FtpPort(p),
                None => return,
            },
            (_, Target::Ct { notrack, helper }) if stage_table == "raw" => {
                let msg = if notrack && helper.is_some() {
                    "`-j CT` with both --notrack and --helper"
                } else {
                    "`-j CT` without --notrack or --helper"
                };
                self.err(
                    tpos,
                    msg,
                    "statewall translates `-j CT --notrack` and `-p tcp --dport N -j CT --helper ftp`",
                );
                return;
            }
            ("mangle", Target::Reject(_)) => {
                self.err(
                    tpos,
                    "`-j REJECT` in the mangle table cannot be translated",
                    "iptables allows REJECT in the filter table only; reject in filter FORWARD",
                );
                return;
            }
            ("filter" | "mangle", Target::Ct { .. } | Target::Notrack) => {
                self.err(
                    tpos,
                    "`-j CT`/`-j NOTRACK` belongs in the raw table",
                    "use `iptables -t raw -A PREROUTING ...`",
                );
                return;
            }
            ("raw", Target::Drop | Target::Reject(_)) => {
                self.err(
                    tpos,
                    "dropping in the raw table cannot be translated",
                    "statewall's raw stage only decides what to track (notrack, accept); drop in the filter FORWARD chain",
                );
                return;
            }
            (_, Target::Other(t)) => {
                self.other_target(&t, tpos);
                return;
            }
            (_, t) => {
                self.err(
                    tpos,
                    format!("target {t:?} cannot be translated here"),
                    "use ACCEPT, DROP or REJECT in filter chains, CT --notrack or ACCEPT in raw PREROUTING",
                );
                return;
            }
        };
        if !ok {
            return;
        }
        let item = match item {
            Item::Rule(mut r) => {
                if r.implied_family().is_none() {
                    r.family = Some(fam);
                }
                if matches!(name, "INPUT" | "OUTPUT")
                    && stage_table == "filter"
                    && r.comment.is_none()
                {
                    r.comment = Some(format!("from {name}"));
                }
                Item::Rule(r)
            }
            i @ Item::FtpPort(_) => i,
        };
        let entry = Entry {
            fam,
            table: stage_table,
            chain: name.to_string(),
            item,
            pos,
            ifaces,
        };
        self.insert(entry, insert);
    }

    pub(super) fn other_target(&mut self, t: &str, pos: Pos) {
        let (msg, hint) = {
            let hint = match t {
                "NFLOG" | "ULOG" => {
                    "statewall logs with `-j LOG` (statewallctl log, journald), and counts verdicts per rule (statewallctl stats); use LOG or remove the rule"
                }
                "MASQUERADE" | "SNAT" | "DNAT" | "REDIRECT" | "NETMAP" => "statewall does no NAT",
                "TOS" | "DSCP" | "TTL" | "HL" | "TCPMSS" => {
                    "statewall does not modify packets"
                }
                "QUEUE" | "NFQUEUE" => "statewall does not queue packets to user space",
                _ => "targets statewall translates: ACCEPT, DROP, REJECT, RETURN, LOG, MARK, CONNMARK, a user-defined chain (declared with `:NAME - [0:0]` or `-N NAME` before the rules); in raw also CT --notrack, NOTRACK, and CT --helper ftp in PREROUTING",
            };
            let known = [
                "NFLOG",
                "ULOG",
                "MASQUERADE",
                "SNAT",
                "DNAT",
                "REDIRECT",
                "NETMAP",
                "TOS",
                "DSCP",
                "TTL",
                "HL",
                "TCPMSS",
                "QUEUE",
                "NFQUEUE",
                "TRACE",
                "AUDIT",
                "TEE",
                "CLASSIFY",
                "SET",
                "CHECKSUM",
                "SECMARK",
                "CONNSECMARK",
            ];
            if known.contains(&t) {
                (format!("unsupported target `-j {t}`"), hint.to_string())
            } else {
                (
                    format!(
                        "unknown target `-j {t}`: no such chain{}",
                        did_you_mean(t, &["ACCEPT", "DROP", "REJECT", "RETURN", "CT", "NOTRACK"])
                    ),
                    hint.to_string(),
                )
            }
        };
        self.err(pos, msg, hint);
    }

    /// `-p tcp --dport N -j CT --helper ftp` → N.
    pub(super) fn ftp_port(&mut self, rule: &Rule, helper: &str, pos: Pos) -> Option<u16> {
        if helper != "ftp" {
            self.err(
                pos,
                format!("unsupported conntrack helper `{helper}`"),
                "statewall has the FTP helper only",
            );
            return None;
        }
        let port = rule.dport.as_ref().and_then(|m| match m.values.as_slice() {
            [r] if !m.negated && r.lo == r.hi => Some(r.lo),
            _ => None,
        });
        if let Some(p) = port {
            let mut probe = Rule::new(rule.action.clone());
            probe.proto = Some(Match::new(vec![Proto::TCP]));
            probe.dport = Some(Match::new(vec![PortRange { lo: p, hi: p }]));
            probe.comment.clone_from(&rule.comment);
            if probe == *rule {
                return Some(p);
            }
        }
        self.err(
            pos,
            "`-j CT --helper ftp` is translated only as `-p tcp --dport PORT -j CT --helper ftp`",
            "statewall's FTP helper watches TCP control ports for all addresses and interfaces: list them under helpers.ftp.ports (or in --helpers)",
        );
        None
    }

    /// Append, or insert at a chain position (1-based) as `-I CHAIN N` does.
    pub(super) fn insert(&mut self, entry: Entry, at: Option<(usize, Pos)>) {
        let Some((n, npos)) = at else {
            self.entries.push(entry);
            return;
        };
        let same: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.fam == entry.fam && e.table == entry.table && e.chain == entry.chain)
            .map(|(i, _)| i)
            .collect();
        if n == 0 || n > same.len() + 1 {
            self.err(
                npos,
                format!(
                    "cannot insert at position {n}: chain `{}` has {} rule(s) here",
                    entry.chain,
                    same.len()
                ),
                "positions start at 1 and go up to the rule count plus one",
            );
            return;
        }
        let idx = match same.get(n - 1) {
            Some(i) => *i,
            None => same.last().map_or(self.entries.len(), |i| i + 1),
        };
        self.entries.insert(idx, entry);
    }

    /// A built-in chain's policy in one family (ACCEPT when none was given).
    fn policy(&self, fam: Family, table: &str, chain: &str) -> Policy {
        self.policies
            .get(&(fam, table.to_string(), chain.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// A stage's policy from each family's (`policy`), and the rules that keep a family's
    /// ACCEPT when the families differ (`chain` names the chain in their comments).
    pub(super) fn stage_policy(
        &self,
        chain: &str,
        policy: impl Fn(Family) -> Policy,
    ) -> (Policy, Vec<Rule>) {
        let per: Vec<(Family, Policy)> = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .filter(|f| self.families[fam_index(*f)])
            .map(|f| (f, policy(f)))
            .collect();
        let first = per.first().map_or(Policy::Accept, |(_, p)| *p);
        if per.iter().all(|(_, p)| *p == first) {
            return (first, Vec::new());
        }
        let tail = per
            .iter()
            .filter(|(_, p)| *p == Policy::Accept)
            .map(|(f, _)| {
                let mut r = Rule::new(Action::Accept);
                r.family = Some(*f);
                r.comment = Some(format!("{} {chain} policy ACCEPT", fam_tool(*f)));
                r
            })
            .collect();
        (Policy::Drop, tail)
    }

    /// Which chains are translated, per family: FORWARD and raw PREROUTING always; INPUT
    /// and OUTPUT only for a host-firewall-style dump (FORWARD empty with policy ACCEPT),
    /// where they are folded into `forward`; and the user-defined chains those reach.
    /// Says what was folded or left out, and why.
    fn kept_chains(&mut self) -> HashSet<ChainKey> {
        let key = |f: Family, t: &str, c: &str| (f, t.to_string(), c.to_string());
        let mut kept = HashSet::new();
        for fam in [Family::Ipv4, Family::Ipv6] {
            kept.insert(key(fam, "filter", "FORWARD"));
            kept.insert(key(fam, "raw", "PREROUTING"));
            let in_chain = |e: &Entry, c: &[&str]| {
                e.fam == fam && e.table == "filter" && c.contains(&e.chain.as_str())
            };
            let forward_rules = self
                .entries
                .iter()
                .filter(|e| in_chain(e, &["FORWARD"]))
                .count();
            let forward_drops =
                self.policies.get(&key(fam, "filter", "FORWARD")) == Some(&Policy::Drop);
            let io: Vec<Pos> = self
                .entries
                .iter()
                .filter(|e| in_chain(e, &["INPUT", "OUTPUT"]))
                .map(|e| e.pos)
                .chain(
                    self.held
                        .iter()
                        .filter(|(k, _)| {
                            k.0 == fam
                                && k.1 == "filter"
                                && matches!(k.2.as_str(), "INPUT" | "OUTPUT")
                        })
                        .flat_map(|(_, errs)| errs.iter().map(|d| d.pos)),
                )
                .collect();
            let Some(first) = io.iter().min().copied() else {
                continue;
            };
            let tool = fam_tool(fam);
            if forward_rules == 0 && !forward_drops {
                kept.insert(key(fam, "filter", "INPUT"));
                kept.insert(key(fam, "filter", "OUTPUT"));
                self.warns.push(
                    Diagnostic::warning(
                        self.file,
                        first,
                        format!(
                            "{tool} INPUT and OUTPUT rules were folded into `forward` (each with `comment: from INPUT` or `from OUTPUT`): FORWARD is empty with policy ACCEPT, so this reads as a host firewall whose rules are meant for the traffic statewall now forwards"
                        ),
                    )
                    .with_hint(
                        "if this box was a router that forwarded everything, the INPUT/OUTPUT rules protected the host only: remove them from the output",
                    ),
                );
            } else {
                let why = if forward_rules > 0 {
                    format!("FORWARD has {forward_rules} rule(s)")
                } else {
                    "FORWARD's policy is DROP".to_string()
                };
                self.warns.push(
                    Diagnostic::warning(
                        self.file,
                        first,
                        format!(
                            "{tool} INPUT and OUTPUT rules were left out: they protect the gateway host itself, and the kernel never runs them for forwarded or bridged packets ({why}, so they are not forwarding rules)"
                        ),
                    )
                    .with_hint(
                        "keep the host's own firewall on the host; statewall filters the traffic it forwards between its ports",
                    ),
                );
            }
        }
        self.mangle_chains(&mut kept);
        // User-defined chains the kept chains reach.
        let mut todo: Vec<ChainKey> = kept.iter().cloned().collect();
        while let Some(k) = todo.pop() {
            for e in &self.entries {
                if (e.fam, e.table, e.chain.as_str()) != (k.0, k.1.as_str(), k.2.as_str()) {
                    continue;
                }
                if let Item::Rule(r) = &e.item {
                    if let Some(t) = r.action.chain() {
                        let tk = key(k.0, &k.1, t);
                        if kept.insert(tk.clone()) {
                            todo.push(tk);
                        }
                    }
                }
            }
        }
        let mut left: Vec<&ChainKey> = self
            .user_chains
            .iter()
            .filter(|k| matches!(k.1.as_str(), "filter" | "raw" | "mangle") && !kept.contains(*k))
            .collect();
        left.sort_by_key(|(f, t, c)| (fam_index(*f), t.clone(), c.clone()));
        if !left.is_empty() {
            let names: Vec<String> = left
                .iter()
                .map(|(f, t, c)| format!("{} {t} {c}", fam_tool(*f)))
                .collect();
            // At the first rule of a chain left out (the file's start when none has rules).
            let at = self
                .entries
                .iter()
                .filter(|e| left.contains(&&(e.fam, e.table.to_string(), e.chain.clone())))
                .map(|e| e.pos)
                .min()
                .unwrap_or(Pos { line: 1, col: 1 });
            self.warns.push(
                Diagnostic::warning(
                    self.file,
                    at,
                    format!(
                        "user-defined chain(s) left out, as no translated chain jumps to them: {}",
                        names.join(", ")
                    ),
                )
                .with_hint("only filter FORWARD (INPUT/OUTPUT for a host firewall), raw PREROUTING and mangle PREROUTING/FORWARD are translated, with the chains they reach"),
            );
        }
        kept
    }

    /// Ports from interfaces, stages, helpers; then a check of every translated rule.
    /// Returns the ruleset, the errors and the warnings.
    pub(super) fn finish(mut self) -> (Ruleset, Vec<Diagnostic>, Vec<Diagnostic>) {
        let kept = self.kept_chains();
        let is_kept = |e: &Entry| kept.contains(&(e.fam, e.table.to_string(), e.chain.clone()));
        self.entries.retain(is_kept);
        for (k, said) in std::mem::take(&mut self.held) {
            if kept.contains(&k) {
                for d in said {
                    if d.is_error() {
                        self.errs.push(d);
                    } else {
                        self.warns.push(d);
                    }
                }
            }
        }
        self.errs.sort_by_key(|d| d.pos);
        let chain_names = self.chain_names();
        let mut rs = Ruleset::default();
        // Interfaces → ports.
        let ifaces: Vec<(String, Pos)> = self
            .entries
            .iter()
            .flat_map(|e| e.ifaces.iter().cloned())
            .collect();
        let (ports, names) = interfaces::ports_for(
            &ifaces,
            self.file,
            "-i/-o or --physdev-in/--physdev-out",
            &mut self.errs,
        );
        rs.ports = ports;
        let mut ftp: Vec<u16> = Vec::new();
        let mut checked: Vec<(Pos, &'static str, Rule)> = Vec::new();
        let mut origin = SourceMap::default();
        // The stages a chain's rules go to: mangle's user-defined chains to each of mangle
        // PREROUTING's and FORWARD's stages that reaches them.
        let reach = |fam: Family, c: &str| -> HashSet<ChainKey> {
            self.reached(&(fam, "mangle".to_string(), c.to_string()))
                .iter()
                .map(|e| (e.fam, e.table.to_string(), e.chain.clone()))
                .collect()
        };
        let mut from_pre: HashSet<ChainKey> = HashSet::new();
        let mut from_fwd: HashSet<ChainKey> = HashSet::new();
        for fam in [Family::Ipv4, Family::Ipv6] {
            from_pre.extend(reach(fam, "PREROUTING"));
            from_fwd.extend(reach(fam, "FORWARD"));
        }
        let stages_of = |fam: Family, table: &str, chain: &str| -> Vec<&'static str> {
            match (table, chain) {
                ("raw", _) => vec!["raw"],
                ("mangle", "PREROUTING") => vec!["mangle"],
                ("mangle", "FORWARD") => vec!["mangle_forward"],
                ("mangle", _) => {
                    let k = (fam, table.to_string(), chain.to_string());
                    [("mangle", &from_pre), ("mangle_forward", &from_fwd)]
                        .iter()
                        .filter(|(_, set)| set.contains(&k))
                        .map(|(n, _)| *n)
                        .collect()
                }
                _ => vec!["forward"],
            }
        };
        for e in &self.entries {
            match &e.item {
                Item::FtpPort(p) => {
                    if !ftp.contains(p) {
                        ftp.push(*p);
                    }
                }
                Item::Rule(r) => {
                    let mut r = (**r).clone();
                    if let Err(why) = interfaces::rename_ports(&mut r, &names) {
                        self.warns.push(
                            Diagnostic::warning(self.file, e.pos, format!("{why}: the rule never matches and is left out"))
                                .with_hint("a wildcard matches the interfaces the rules name; name the interface itself if this rule is meant for one"),
                        );
                        continue;
                    }
                    r.action = match r.action {
                        Action::Jump(c) => Action::Jump(chain_names.get(&c).cloned().unwrap_or(c)),
                        Action::Goto(c) => Action::Goto(chain_names.get(&c).cloned().unwrap_or(c)),
                        a => a,
                    };
                    let stages = stages_of(e.fam, e.table, &e.chain);
                    if let Some(first) = stages.first() {
                        checked.push((e.pos, first, r.clone()));
                    }
                    for st in stages {
                        let stage = stage_of(&mut rs, st);
                        // Where each rule (and chain) came from, for the whole ruleset's
                        // validation below.
                        if matches!(
                            e.chain.as_str(),
                            "FORWARD" | "INPUT" | "OUTPUT" | "PREROUTING"
                        ) {
                            origin.insert(Stage::rule_path(st, None, stage.rules.len()), e.pos);
                            stage.rules.push(r.clone());
                        } else {
                            let name = chain_names
                                .get(&e.chain)
                                .cloned()
                                .unwrap_or_else(|| e.chain.clone());
                            let rules = stage.chains.entry(name.clone()).or_default();
                            if rules.is_empty() {
                                origin.insert(format!("{st}.chains.{name}"), e.pos);
                            }
                            origin.insert(Stage::rule_path(st, Some(&name), rules.len()), e.pos);
                            rules.push(r.clone());
                        }
                    }
                }
            }
        }
        // A chain jumped to may have no rules: it still exists (the walk comes back).
        for (fam, table, chain) in kept.iter().filter(|k| self.user_chains.contains(*k)) {
            let name = chain_names
                .get(chain)
                .cloned()
                .unwrap_or_else(|| chain.clone());
            for st in stages_of(*fam, table, chain) {
                stage_of(&mut rs, st)
                    .chains
                    .entry(name.clone())
                    .or_default();
            }
        }
        if !ftp.is_empty() {
            rs.helpers.ftp = Some(FtpHelper { ports: ftp });
        }
        let (p, mut tail) = self.stage_policy("FORWARD", |f| self.policy(f, "filter", "FORWARD"));
        rs.forward.policy = p;
        rs.forward.rules.append(&mut tail);
        let (p, mut tail) =
            self.stage_policy("PREROUTING", |f| self.policy(f, "raw", "PREROUTING"));
        rs.raw.policy = p;
        rs.raw.rules.append(&mut tail);
        for (stage, chain) in [("mangle", "PREROUTING"), ("mangle_forward", "FORWARD")] {
            let (p, mut tail) = self.stage_policy(&format!("mangle {chain}"), |f| {
                self.policy(f, "mangle", chain)
            });
            let st = stage_of(&mut rs, stage);
            st.policy = p;
            st.rules.append(&mut tail);
        }
        // Each rule through the loader's validation, reported at its line.
        for (pos, table, mut r) in checked {
            r.in_port = None;
            r.out_port = None;
            let mut one = Ruleset::default();
            // The set it names, without its members: they are checked with the whole.
            if let Some(set) = r
                .match_set
                .as_ref()
                .and_then(|m| Some((m.name.clone(), self.sets?.get(&m.name)?)))
            {
                one.sets.insert(
                    set.0,
                    crate::sets::IpSet {
                        kind: set.1.kind,
                        family: set.1.family,
                        members: Vec::new(),
                    },
                );
            }
            let stage = stage_of(&mut one, table);
            // The chain a rule jumps to, as an empty one: chains are checked with the whole
            // ruleset below.
            if let Some(c) = r.action.chain() {
                stage.chains.insert(c.to_string(), Vec::new());
            }
            stage.rules.push(r);
            for d in validate(&one, &SourceMap::default(), self.file) {
                let mut e = Diagnostic::error(
                    self.file,
                    pos,
                    format!("the translated rule would be invalid: {}", d.message),
                );
                e.hint = d.hint;
                self.errs.push(e);
            }
        }
        rs.sets = self.sets.cloned().unwrap_or_default();
        if self.errs.is_empty() {
            for d in validate(&rs, &origin, self.file) {
                let mut e = Diagnostic::error(
                    self.file,
                    d.pos,
                    format!("the translated ruleset would be invalid: {}", d.message),
                );
                e.hint = d.hint;
                self.errs.push(e);
            }
        }
        (rs, self.errs, self.warns)
    }

    /// Mangle PREROUTING makes the `mangle` stage and FORWARD `mangle_forward`. INPUT and
    /// OUTPUT (the box's own traffic) and POSTROUTING (after filter FORWARD, where a
    /// forwarded packet's mark changes nothing statewall does) are left out with a warning;
    /// POSTROUTING rules that drop or change a connection's mark (which later packets see)
    /// are errors.
    fn mangle_chains(&mut self, kept: &mut HashSet<ChainKey>) {
        let key = |f: Family, c: &str| (f, "mangle".to_string(), c.to_string());
        for fam in [Family::Ipv4, Family::Ipv6] {
            kept.insert(key(fam, "PREROUTING"));
            kept.insert(key(fam, "FORWARD"));
            let first_in = |me: &Self, c: &str| {
                me.entries
                    .iter()
                    .filter(|e| e.fam == fam && e.table == "mangle" && e.chain == c)
                    .map(|e| e.pos)
                    .min()
            };
            // POSTROUTING: what would change statewall's answers is an error.
            let post = self.reached(&key(fam, "POSTROUTING"));
            let mut errs = Vec::new();
            for e in &post {
                let Item::Rule(r) = &e.item else { continue };
                let what = match r.action {
                    Action::Drop => "drops packets",
                    Action::ConnMark(_) | Action::SaveMark(_) => "changes the connection's mark",
                    _ => continue,
                };
                errs.push(Diagnostic::error(
                    self.file,
                    e.pos,
                    format!("a rule of mangle POSTROUTING that {what} cannot be translated: POSTROUTING runs after filter FORWARD, where statewall has no stage"),
                ).with_hint("move the rule to mangle FORWARD (or PREROUTING), where it runs before the filter decides"));
            }
            let post_chains: HashSet<ChainKey> = post
                .iter()
                .map(|e| (e.fam, e.table.to_string(), e.chain.clone()))
                .collect();
            drop(post);
            self.errs.append(&mut errs);
            // What the chains POSTROUTING reaches said is not held back: they are read.
            let (said, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(k, _)| post_chains.contains(k) && !kept.contains(k));
            self.held = held;
            for d in said.into_iter().flat_map(|(_, d)| d) {
                if d.is_error() {
                    self.errs.push(d);
                } else {
                    self.warns.push(d);
                }
            }
            let left = ["INPUT", "OUTPUT", "POSTROUTING"]
                .iter()
                .filter_map(|c| first_in(self, c))
                .min();
            if let Some(at) = left {
                self.warns.push(
                    Diagnostic::warning(
                        self.file,
                        at,
                        format!("{} mangle INPUT, OUTPUT and POSTROUTING rules were left out: INPUT and OUTPUT see the gateway's own traffic, and POSTROUTING runs after the filter has decided, where a packet's mark changes nothing statewall does", fam_tool(fam)),
                    )
                    .with_hint("statewall's mangle stages are mangle PREROUTING (`mangle`) and FORWARD (`mangle_forward`)"),
                );
            }
        }
    }

    /// The rules of a chain and of the user-defined chains it reaches.
    fn reached(&self, from: &ChainKey) -> Vec<&Entry> {
        let mut seen: HashSet<ChainKey> = HashSet::from([from.clone()]);
        let mut todo = vec![from.clone()];
        let mut out = Vec::new();
        while let Some(k) = todo.pop() {
            for e in &self.entries {
                if (e.fam, e.table, e.chain.as_str()) != (k.0, k.1.as_str(), k.2.as_str()) {
                    continue;
                }
                out.push(e);
                if let Item::Rule(r) = &e.item {
                    if let Some(t) = r.action.chain() {
                        let tk = (k.0, k.1.clone(), t.to_string());
                        if seen.insert(tk.clone()) {
                            todo.push(tk);
                        }
                    }
                }
            }
        }
        out
    }

    /// The YAML name of each user-defined chain ([`chains::yaml_names`]). The same name in
    /// both families is one chain: each of its rules keeps its family.
    fn chain_names(&self) -> BTreeMap<String, String> {
        chains::yaml_names(self.user_chains.iter().map(|(_, _, c)| c.as_str()))
    }
}

/// A stage by its name.
fn stage_of<'r>(rs: &'r mut Ruleset, stage: &str) -> &'r mut Stage {
    match stage {
        "raw" => &mut rs.raw,
        "mangle" => &mut rs.mangle,
        "mangle_forward" => &mut rs.mangle_forward,
        _ => &mut rs.forward,
    }
}
