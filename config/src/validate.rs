//! Loading and validating a ruleset file.
//!
//! serde_yaml reports syntax and type errors (with position); [`validate`] reports what no
//! single field can know: actions allowed per stage, port names, matches that need a
//! protocol, families that contradict each other. Every diagnostic has file:line:col and a
//! fix; a ruleset with any error is never handed to the engine.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Pos};
use crate::lint::lint;
use crate::matches::{Match, Proto};
use crate::ruleset::{Action, Family, PortSpec, RejectWith, Rule, Ruleset};
use crate::source_map::SourceMap;
use crate::suggest::did_you_mean;

/// A ruleset that passed validation, with its lint warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub ruleset: Ruleset,
    pub warnings: Vec<Diagnostic>,
    pub source: SourceMap,
}

/// Read and load a file; IO errors become a diagnostic at 1:1... of the path.
pub fn load_file(path: &str) -> Result<Loaded, Vec<Diagnostic>> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, path),
        Err(e) => Err(vec![Diagnostic::error(
            path,
            Pos { line: 0, col: 0 },
            format!("cannot read the file: {e}"),
        )
        .with_hint("check the path and that you may read it")]),
    }
}

/// Parse, validate and lint a ruleset text; `file` names it in diagnostics.
pub fn load_str(text: &str, file: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let ruleset: Ruleset = if text.trim().is_empty() {
        Ruleset::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| vec![yaml_error(&e, file)])?
    };
    let source = SourceMap::parse(text);
    let errors = validate(&ruleset, &source, file);
    if !errors.is_empty() {
        return Err(errors);
    }
    let warnings = lint(&ruleset, &source, file);
    Ok(Loaded {
        ruleset,
        warnings,
        source,
    })
}

/// Field names of a rule, for "did you mean" on unknown keys.
const RULE_KEYS: &[&str] = &[
    "family",
    "in_port",
    "out_port",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "ports",
    "icmp_type",
    "icmpv6_type",
    "tcp_flags",
    "syn",
    "ctstate",
    "ctdir",
    "action",
    "reject_with",
    "comment",
];

/// Turn a serde_yaml error into a diagnostic: strip the position it embeds in the text, and
/// add a suggestion for unknown keys and variants.
fn yaml_error(e: &serde_yaml::Error, file: &str) -> Diagnostic {
    let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let mut msg = e.to_string();
    // serde_yaml appends " at line L column C"; the position is already in the prefix.
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    let mut d = Diagnostic::error(file, pos, msg.clone());
    // "unknown field `dprt`, expected one of `a`, `b`" / "unknown variant `acept`, ..."
    for what in ["unknown field `", "unknown variant `"] {
        if let Some(start) = msg.find(what) {
            let rest = &msg[start + what.len()..];
            if let Some(end) = rest.find('`') {
                let word = &rest[..end];
                let expected: Vec<&str> = rest[end..]
                    .split('`')
                    .skip(2)
                    .step_by(2)
                    .collect();
                let candidates = if expected.is_empty() {
                    RULE_KEYS.to_vec()
                } else {
                    expected
                };
                let s = did_you_mean(word, &candidates);
                if !s.is_empty() {
                    d = d.with_hint(s.trim().trim_start_matches('(').trim_end_matches(')').to_string());
                } else if what.starts_with("unknown field") {
                    d = d.with_hint("remove the key, or check the spelling against the README's ruleset reference");
                }
            }
        }
    }
    d
}

/// The ports of a ruleset with the default applied: `lan` and `wan` when none are declared.
pub fn port_names(r: &Ruleset) -> Vec<String> {
    match &r.ports {
        Some(p) => p.keys().cloned().collect(),
        None => vec!["lan".into(), "wan".into()],
    }
}

/// Forwarding pairs with the default applied (the two ports, when there are exactly two).
pub fn port_pairs(r: &Ruleset) -> Vec<[String; 2]> {
    if let Some(p) = &r.pairs {
        return p.clone();
    }
    let names = port_names(r);
    if names.len() == 2 {
        vec![[names[0].clone(), names[1].clone()]]
    } else {
        Vec::new()
    }
}

/// Interfaces by port name, with the default applied.
pub fn port_interfaces(r: &Ruleset) -> BTreeMap<String, String> {
    match &r.ports {
        Some(p) => p
            .iter()
            .map(|(k, v)| (k.clone(), v.interface().to_string()))
            .collect(),
        None => port_names(r).into_iter().map(|n| (n.clone(), n)).collect(),
    }
}

struct Checker<'a> {
    file: &'a str,
    source: &'a SourceMap,
    errors: Vec<Diagnostic>,
    ports: Vec<String>,
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
                        Some("a Linux interface name has 1 to 15 characters, no `/` or spaces".into()),
                    );
                }
                if let PortSpec::Detailed(_) = spec {}
            }
        }
        if let Some(pairs) = &r.pairs {
            let mut seen: Vec<&str> = Vec::new();
            for (i, [a, b]) in pairs.iter().enumerate() {
                let path = format!("pairs.{i}");
                for p in [a, b] {
                    if !self.ports.contains(p) {
                        let names: Vec<&str> = self.ports.iter().map(String::as_str).collect();
                        self.err(
                            &path,
                            format!("pair names unknown port `{p}`{}", did_you_mean(p, &names)),
                            Some(format!("declared ports: {}", names.join(", "))),
                        );
                    }
                    if seen.contains(&p.as_str()) {
                        self.err(
                            &path,
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

    fn check_stage(&mut self, stage: &str, rules: &[Rule]) {
        for (i, rule) in rules.iter().enumerate() {
            self.check_rule(stage, i, rule);
        }
    }

    fn check_rule(&mut self, stage: &str, i: usize, r: &Rule) {
        let path = format!("{stage}.rules.{i}");
        let at = |k: &str| format!("{path}.{k}");
        // Actions per stage.
        let allowed: &[Action] = if stage == "raw" {
            &[Action::Notrack, Action::Accept]
        } else {
            &[Action::Accept, Action::Drop, Action::Reject]
        };
        if !allowed.contains(&r.action) {
            let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
            let hint = if r.action == Action::Notrack {
                "notrack belongs in the `raw` stage, which runs before connection tracking"
            } else {
                "the raw stage only decides what to track; filter in the `forward` stage"
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
        if r.reject_with.is_some() && r.action != Action::Reject {
            self.err(
                &at("reject_with"),
                "`reject_with` only applies to `action: reject`",
                Some("remove `reject_with`, or set `action: reject`".into()),
            );
        }
        // Conntrack matches need conntrack: the raw stage runs before it.
        if stage == "raw" {
            for (k, present) in [("ctstate", r.ctstate.is_some()), ("ctdir", r.ctdir.is_some())] {
                if present {
                    self.err(
                        &at(k),
                        format!("`{k}` cannot be matched in the `raw` stage: it runs before connection tracking"),
                        Some("move the rule to the `forward` stage".into()),
                    );
                }
            }
        }
        // Port names.
        for (k, m) in [("in_port", &r.in_port), ("out_port", &r.out_port)] {
            if let Some(m) = m {
                for p in &m.values {
                    if !self.ports.contains(&p.0) {
                        let names: Vec<&str> = self.ports.iter().map(String::as_str).collect();
                        self.err(
                            &at(k),
                            format!("unknown port `{}`{}", p.0, did_you_mean(&p.0, &names)),
                            Some(format!("declared ports: {}", names.join(", "))),
                        );
                    }
                }
            }
        }
        // Family consistency.
        let mut families: Vec<(Family, &str)> = Vec::new();
        if let Some(f) = r.family {
            families.push((f, "family"));
        }
        for (k, m) in [("src", &r.src), ("dst", &r.dst)] {
            if let Some(m) = m {
                let v4 = m.values.iter().any(|c| c.is_v4());
                let v6 = m.values.iter().any(|c| !c.is_v4());
                if v4 && v6 {
                    self.err(
                        &at(k),
                        format!("`{k}` mixes IPv4 and IPv6 networks"),
                        Some("split the rule into an IPv4 rule and an IPv6 rule".into()),
                    );
                } else if v4 {
                    families.push((Family::Ipv4, k));
                } else if v6 {
                    families.push((Family::Ipv6, k));
                }
            }
        }
        if r.icmp_type.is_some() {
            families.push((Family::Ipv4, "icmp_type"));
        }
        if r.icmpv6_type.is_some() {
            families.push((Family::Ipv6, "icmpv6_type"));
        }
        if let Some(m) = &r.proto {
            if !m.negated && m.values.iter().all(|p| *p == Proto::ICMP) {
                families.push((Family::Ipv4, "proto"));
            }
            if !m.negated && m.values.iter().all(|p| *p == Proto::ICMPV6) {
                families.push((Family::Ipv6, "proto"));
            }
        }
        if let Some((f0, k0)) = families.first().copied() {
            if let Some((_, k1)) = families.iter().find(|(f, _)| *f != f0) {
                self.err(
                    &at(k1),
                    format!("`{k1}` is for the other IP family than `{k0}`: the rule can never match"),
                    Some("keep one family per rule: IPv4 addresses with icmp, IPv6 with icmpv6".into()),
                );
            }
        }
        // Matches that need a protocol, as iptables' `-m tcp`/`-m udp` do.
        let protos: Option<&Match<Proto>> = r.proto.as_ref().filter(|m| !m.negated);
        let only = |ok: &dyn Fn(Proto) -> bool| protos.is_some_and(|m| m.values.iter().all(|p| ok(*p)));
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
            self.err(&at("icmp_type"), "`icmp_type` needs `proto: icmp`", Some("add `proto: icmp`".into()));
        }
        if r.icmpv6_type.is_some() && !only(&|p: Proto| p == Proto::ICMPV6) {
            self.err(
                &at("icmpv6_type"),
                "`icmpv6_type` needs `proto: icmpv6`",
                Some("add `proto: icmpv6`".into()),
            );
        }
        for (k, present) in [("tcp_flags", r.tcp_flags.is_some()), ("syn", r.syn.is_some())] {
            if present && !only(&|p: Proto| p == Proto::TCP) {
                self.err(&at(k), format!("`{k}` needs `proto: tcp`"), Some("add `proto: tcp`".into()));
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

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// All errors of a parsed ruleset (empty when it is valid).
pub fn validate(r: &Ruleset, source: &SourceMap, file: &str) -> Vec<Diagnostic> {
    let mut c = Checker {
        file,
        source,
        errors: Vec::new(),
        ports: port_names(r),
    };
    c.check_ports(r);
    if let Err(e) = r.conntrack.check_ranges() {
        let key = e.message.split_whitespace().next().unwrap_or("");
        c.err(&format!("conntrack.{key}"), e.message.clone(), None);
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
    c.check_stage("raw", &r.raw.rules);
    c.check_stage("forward", &r.forward.rules);
    c.errors.sort_by_key(|d| d.pos);
    c.errors
}
