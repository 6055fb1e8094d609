//! Validating a parsed ruleset.
//!
//! serde_yaml reports syntax and type errors (with position, see [`crate::load`]); [`validate`]
//! reports what no single field can know: actions allowed per stage, port names, matches that
//! need a protocol, families that contradict each other. Every diagnostic has file:line:col
//! and a fix; a ruleset with any error is never handed to the engine.

use crate::chains;
use crate::diag::Diagnostic;
use crate::matches::{Cidr, Match};
use crate::proto::Proto;
use crate::ruleset::{Action, Family, PortSpec, RejectWith, Rule, Ruleset, Stage};
use crate::settings::ConntrackSettings;
use crate::source_map::SourceMap;
use crate::suggest::did_you_mean;

struct Checker<'a> {
    file: &'a str,
    source: &'a SourceMap,
    errors: Vec<Diagnostic>,
    ports: Vec<String>,
    sets: &'a crate::sets::Sets,
}

impl Checker<'_> {
    fn err(&mut self, path: &str, msg: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(self.file, self.source.locate(path), msg);
        d.hint = hint;
        self.errors.push(d);
    }

    fn check_ports(&mut self, r: &Ruleset) {
        if let Some(ports) = &r.ports {
            for (name, spec) in ports {
                let path = format!("ports.{name}");
                if !valid_name(name) {
                    self.err(
                        &path,
                        format!("invalid port name `{name}`"),
                        Some("use letters, digits, `-` and `_`, starting with a letter".into()),
                    );
                }
                let iface = spec.interface();
                if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
                    self.err(
                        &path,
                        format!("invalid interface name `{iface}` for port `{name}`"),
                        Some(
                            "a Linux interface name has 1 to 15 characters, no `/` or spaces"
                                .into(),
                        ),
                    );
                }
                if let PortSpec::Detailed(_) = spec {}
            }
        }
        if let Some(pairs) = &r.pairs {
            let mut seen: Vec<&str> = Vec::new();
            for (i, [a, b]) in pairs.iter().enumerate() {
                let path = format!("pairs.{i}");
                for (j, p) in [a, b].into_iter().enumerate() {
                    if !self.ports.contains(p) {
                        let names: Vec<&str> = self.ports.iter().map(String::as_str).collect();
                        self.err(
                            &format!("{path}.{j}"),
                            format!("pair names unknown port `{p}`{}", did_you_mean(p, &names)),
                            Some(format!("declared ports: {}", names.join(", "))),
                        );
                    }
                    // `[dmz, dmz]` is reported once, as paired with itself.
                    if seen.contains(&p.as_str()) && !(j == 1 && a == b) {
                        self.err(
                            &format!("{path}.{j}"),
                            format!("port `{p}` is in more than one pair"),
                            Some("a port forwards to exactly one peer".into()),
                        );
                    }
                    seen.push(p);
                }
                if a == b {
                    self.err(&path, format!("port `{a}` is paired with itself"), None);
                }
            }
        } else if self.ports.len() != 2 {
            self.err(
                "ports",
                format!(
                    "{} ports declared but no `pairs`: say which ports forward to each other",
                    self.ports.len()
                ),
                Some("add e.g. `pairs: [[lan, wan]]`".into()),
            );
        }
    }

    fn check_stage(&mut self, name: &str, stage: &Stage) {
        for (chain, i, rule) in stage.numbered() {
            self.check_rule(name, &Stage::rule_path(name, chain, i), rule);
        }
        self.errors
            .append(&mut chains::check(name, stage, self.source, self.file));
    }

    fn check_rule(&mut self, stage: &str, path: &str, r: &Rule) {
        let at = |k: &str| format!("{path}.{k}");
        // Verdicts per stage; `log`, `continue`, `return`, `jump` and `goto` are allowed in
        // both.
        let allowed: &[Action] = match stage {
            "raw" => &[Action::Notrack, Action::Accept],
            "mangle" | "mangle_forward" => &[Action::Accept, Action::Drop],
            _ => &[Action::Accept, Action::Drop, Action::Reject],
        };
        if r.action.is_verdict() && !allowed.contains(&r.action) {
            let names: Vec<&str> = allowed
                .iter()
                .map(Action::name)
                .chain(Action::EVERY_STAGE.iter().copied())
                .collect();
            let hint = match (&r.action, stage) {
                (Action::Notrack, _) => {
                    "notrack belongs in the `raw` stage, which runs before connection tracking"
                }
                (_, "mangle" | "mangle_forward") => {
                    "the mangle stages mark packets and connections; reject in the `forward` stage (as iptables allows REJECT only in filter)"
                }
                _ => "the raw stage only decides what to track; filter in the `forward` stage",
            };
            self.err(
                &at("action"),
                format!(
                    "action `{}` is not allowed in the `{stage}` stage (allowed: {})",
                    r.action.name(),
                    names.join(", ")
                ),
                Some(hint.into()),
            );
        }
        if r.tcp_mss.is_some()
            && !r
                .proto
                .as_ref()
                .is_some_and(|p| !p.negated && p.values == [Proto::TCP])
        {
            self.err(
                &at("tcp_mss"),
                "`tcp_mss` needs `proto: tcp`",
                Some("the MSS is a TCP option: add `proto: tcp`".into()),
            );
        }
        if r.log.is_some() && r.action != Action::Log {
            self.err(
                &at("log"),
                "`log` options only apply to `action: log`",
                Some(
                    "a log rule decides nothing: write it as its own rule before the one that \
                     decides, as iptables' `-j LOG` is"
                        .into(),
                ),
            );
        }
        if let Some(ms) = &r.match_set {
            match self.sets.get(&ms.name) {
                None => {
                    let names: Vec<&str> = self.sets.keys().map(String::as_str).collect();
                    self.err(
                        &at("match_set.name"),
                        format!(
                            "no set `{}`{}",
                            ms.name,
                            crate::suggest::did_you_mean(&ms.name, &names)
                        ),
                        Some("declare it under the top-level `sets:` (import-iptables --ipset FILE reads `ipset save`)".into()),
                    );
                }
                Some(set) if r.implied_family() != Some(set.family) => {
                    let fam = match set.family {
                        Family::Ipv4 => "ipv4",
                        Family::Ipv6 => "ipv6",
                    };
                    self.err(
                        &at("match_set"),
                        format!("set `{}` holds {fam} addresses; the rule must be an {fam} rule", ms.name),
                        Some(format!("add `family: {fam}` to the rule, as iptables requires a set of the rule's family")),
                    );
                }
                Some(_) => {}
            }
        }
        for (key, msg, hint) in r
            .hashlimit
            .iter()
            .flat_map(crate::hashlimit::HashLimit::problems)
        {
            let path = if key.is_empty() {
                at("hashlimit")
            } else {
                at(&format!("hashlimit.{key}"))
            };
            self.err(&path, msg, Some(hint));
        }
        for (key, msg, hint) in r.recent.iter().flat_map(crate::recent::Recent::problems) {
            let path = if key.is_empty() {
                at("recent")
            } else {
                at(&format!("recent.{key}"))
            };
            self.err(&path, msg, Some(hint));
        }
        if let Some(problem) = r.log.as_ref().and_then(crate::log::LogOptions::problem) {
            self.err(
                &at("log.prefix"),
                problem,
                Some("shorten the prefix to printable text".into()),
            );
        }
        if r.reject_with.is_some() && r.action != Action::Reject {
            self.err(
                &at("reject_with"),
                "`reject_with` only applies to `action: reject`",
                Some("remove `reject_with`, or set `action: reject`".into()),
            );
        }
        // Conntrack matches need conntrack: the raw stage runs before it.
        if stage == "raw" {
            for (k, present) in [
                ("ctstate", r.ctstate.is_some()),
                ("ctdir", r.ctdir.is_some()),
                ("connmark", r.connmark.is_some()),
            ] {
                if present {
                    self.err(
                        &at(k),
                        format!("`{k}` cannot be matched in the `raw` stage: it runs before connection tracking"),
                        Some("move the rule to the `forward` stage".into()),
                    );
                }
            }
            if matches!(
                r.action,
                Action::ConnMark(_) | Action::SaveMark(_) | Action::RestoreMark(_)
            ) {
                self.err(
                    &at("action"),
                    format!(
                        "`{}` cannot be done in the `raw` stage: the packet has no connection yet",
                        r.action.name()
                    ),
                    Some(
                        "move the rule to the `mangle` stage, which runs after connection tracking"
                            .into(),
                    ),
                );
            }
        }
        // Port names.
        for (k, m) in [("in_port", &r.in_port), ("out_port", &r.out_port)] {
            if let Some(m) = m {
                for (j, p) in m.values.iter().enumerate() {
                    if !self.ports.contains(&p.0) {
                        let names: Vec<&str> = self.ports.iter().map(String::as_str).collect();
                        // The list element when the value is a list, else the key.
                        self.err(
                            &element(&at(k), m.negated, j),
                            format!("unknown port `{}`{}", p.0, did_you_mean(&p.0, &names)),
                            Some(format!("declared ports: {}", names.join(", "))),
                        );
                    }
                }
            }
        }
        // Family consistency: an address list that mixes families, then keys that imply
        // different families (`Rule::family_evidence` says which key implies which).
        for (k, m) in [("src", &r.src), ("dst", &r.dst)] {
            if let Some(m) = m {
                let v4 = m.values.iter().any(Cidr::is_v4);
                let v6 = m.values.iter().any(|c| !c.is_v4());
                if v4 && v6 {
                    // Point at the first element of the other family than the first one.
                    let first = m.values[0].is_v4();
                    let j = m
                        .values
                        .iter()
                        .position(|c| c.is_v4() != first)
                        .unwrap_or(0);
                    self.err(
                        &element(&at(k), m.negated, j),
                        format!("`{k}` mixes IPv4 and IPv6 networks"),
                        Some("split the rule into an IPv4 rule and an IPv6 rule".into()),
                    );
                }
            }
        }
        let families = r.family_evidence();
        if let Some(first) = families.first() {
            if let Some(other) = families.iter().find(|e| e.family != first.family) {
                let (k0, k1) = (first.key, other.key);
                self.err(
                    &at(k1),
                    format!(
                        "`{k1}` is for the other IP family than `{k0}`: the rule can never match"
                    ),
                    Some(
                        "keep one family per rule: IPv4 addresses with icmp, IPv6 with icmpv6"
                            .into(),
                    ),
                );
            }
        }
        // Matches that need a protocol, as iptables' `-m tcp`/`-m udp` do.
        let protos: Option<&Match<Proto>> = r.proto.as_ref().filter(|m| !m.negated);
        let only =
            |ok: &dyn Fn(Proto) -> bool| protos.is_some_and(|m| m.values.iter().all(|p| ok(*p)));
        for (k, present) in [
            ("sport", r.sport.is_some()),
            ("dport", r.dport.is_some()),
            ("ports", r.ports.is_some()),
        ] {
            if present && !only(&|p: Proto| p.has_ports()) {
                self.err(
                    &at(k),
                    format!("`{k}` needs a protocol with ports"),
                    Some("add `proto: tcp` (or udp, sctp, udplite, dccp) to the rule".into()),
                );
            }
        }
        if r.ports.is_some() && (r.sport.is_some() || r.dport.is_some()) {
            self.err(
                &at("ports"),
                "`ports` (either side) cannot be combined with `sport`/`dport` in one rule",
                Some("use `ports` alone, or `sport`/`dport`, as multiport does".into()),
            );
        }
        if r.icmp_type.is_some() && !only(&|p: Proto| p == Proto::ICMP) {
            self.err(
                &at("icmp_type"),
                "`icmp_type` needs `proto: icmp`",
                Some("add `proto: icmp`".into()),
            );
        }
        if r.icmpv6_type.is_some() && !only(&|p: Proto| p == Proto::ICMPV6) {
            self.err(
                &at("icmpv6_type"),
                "`icmpv6_type` needs `proto: icmpv6`",
                Some("add `proto: icmpv6`".into()),
            );
        }
        for (k, present) in [
            ("tcp_flags", r.tcp_flags.is_some()),
            ("syn", r.syn.is_some()),
        ] {
            if present && !only(&|p: Proto| p == Proto::TCP) {
                self.err(
                    &at(k),
                    format!("`{k}` needs `proto: tcp`"),
                    Some("add `proto: tcp`".into()),
                );
            }
        }
        if r.tcp_flags.is_some() && r.syn.is_some() {
            self.err(
                &at("syn"),
                "`syn` and `tcp_flags` in one rule",
                Some("`syn: true` is `tcp_flags: {mask: [syn, rst, ack, fin], comp: [syn]}`; keep one".into()),
            );
        }
        if r.reject_with == Some(RejectWith::TcpReset) && !only(&|p: Proto| p == Proto::TCP) {
            self.err(
                &at("reject_with"),
                "`reject_with: tcp-reset` needs `proto: tcp`",
                Some("add `proto: tcp`, as iptables requires".into()),
            );
        }
    }
}

/// Path of element `j` of a list-valued match at `path` (`{not: [...]}` nests one deeper).
/// A scalar value has no element paths; [`SourceMap::locate`] then falls back to the key.
fn element(path: &str, negated: bool, j: usize) -> String {
    if negated {
        format!("{path}.not.{j}")
    } else {
        format!("{path}.{j}")
    }
}

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// All errors of a parsed ruleset (empty when it is valid).
pub fn validate(r: &Ruleset, source: &SourceMap, file: &str) -> Vec<Diagnostic> {
    let mut c = Checker {
        file,
        source,
        errors: Vec::new(),
        ports: r.port_names(),
        sets: &r.sets,
    };
    c.check_ports(r);
    for (name, set) in &r.sets {
        for (path, msg, hint) in set.problems(name) {
            let at = if path.is_empty() {
                format!("sets.{name}")
            } else {
                format!("sets.{name}.{path}")
            };
            c.err(&at, msg, Some(hint));
        }
    }
    if let Err(e) = r.conntrack.check_ranges() {
        let key = e.message.split_whitespace().next().unwrap_or("");
        let hint = ConntrackSettings::default()
            .get(key)
            .ok()
            .map(|d| format!("pick a value in range; the kernel default is {d}"));
        c.err(
            &format!("conntrack.{key}"),
            format!("conntrack: {}", e.message),
            hint,
        );
    }
    for e in r.conntrack.check_pairs() {
        // At the key the file writes: low_thresh when it is there, else high_thresh (lowered
        // under the default low_thresh).
        let (low, high) = (
            format!("conntrack.{}", e.low),
            format!("conntrack.{}", e.high),
        );
        let at = if source.key(&low).is_some() || source.key(&high).is_none() {
            low
        } else {
            high
        };
        let hint = format!(
            "lower {} to at most {} or raise {} to at least {}: the kernel refuses a low_thresh above \
             its high_thresh (low_thresh has had no other effect since Linux 4.17)",
            e.low,
            r.conntrack.get(e.high).unwrap_or_default(),
            e.high,
            r.conntrack.get(e.low).unwrap_or_default(),
        );
        c.err(&at, format!("conntrack: {}", e.message), Some(hint));
    }
    if let Some(ftp) = &r.helpers.ftp {
        if ftp.ports.is_empty() {
            c.err(
                "helpers.ftp.ports",
                "the FTP helper has no ports",
                Some("list the control ports, e.g. `ports: [21]`, or remove the helper".into()),
            );
        }
    }
    if let Some(sync) = &r.sync {
        for (key, msg, hint) in sync.problems() {
            c.err(&format!("sync.{key}"), format!("sync: {msg}"), Some(hint));
        }
    }
    for (name, stage) in r.stages() {
        c.check_stage(name, stage);
    }
    c.errors.sort_by_key(|d| d.pos);
    c.errors
}
