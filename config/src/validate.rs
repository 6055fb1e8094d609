//! Loading and validating a ruleset file.
//!
//! serde_yaml reports syntax and type errors (with position); [`validate`] reports what no
//! single field can know: actions allowed per stage, port names, matches that need a
//! protocol, families that contradict each other. Every diagnostic has file:line:col and a
//! fix; a ruleset with any error is never handed to the engine.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Pos};
use crate::lint::lint;
use crate::matches::{Cidr, Match, Proto};
use crate::ruleset::{Action, Family, PortSpec, RejectWith, Rule, Ruleset};
use crate::settings::ConntrackSettings;
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
            Pos { line: 1, col: 1 },
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
        serde_yaml::from_str(text)
            .map_err(|e| vec![yaml_error(&e, text, &SourceMap::parse(text), file)])?
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

/// Field names of a rule, for "did you mean" when serde names no alternatives.
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

/// Where to read about the schema, for hints that cannot say more.
const REFERENCE: &str = "docs/ruleset.md";

/// Turn a serde_yaml error into a diagnostic: position (refined through the source map when
/// serde points before the element), the document path, what is wrong, and a hint.
///
/// serde_yaml writes `PATH: MESSAGE at line L column C`; the position moves into the
/// diagnostic, the path stays in the message (it says which rule), and long "expected one
/// of" lists move to the hint.
fn yaml_error(e: &serde_yaml::Error, text: &str, source: &SourceMap, file: &str) -> Diagnostic {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    let (path, inner) = split_path(&msg);
    let mut pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
        line: l.line(),
        col: l.column(),
    });
    if let (None, Some(p)) = (e.location(), path) {
        // serde_yaml gave no position: the path's node (`forward.rules[0].src[1]` is
        // `forward.rules.0.src.1` in the source map) or the nearest enclosing one.
        pos = source.locate(&dotted(p));
    }
    let prefix = path.map_or(String::new(), |p| format!("{p}: "));
    let (message, hint) = explain(inner, path.unwrap_or(""), text, pos);
    let mut d = Diagnostic::error(file, pos, format!("{prefix}{message}"));
    d.hint = hint;
    d
}

/// Split `forward.rules[0]: unknown field ...` into the path and the rest. Messages without a
/// path (syntax errors, top-level keys) come back whole.
fn split_path(msg: &str) -> (Option<&str>, &str) {
    if let Some((p, rest)) = msg.split_once(": ") {
        let looks_like_path = !p.is_empty()
            && !p.contains(char::is_whitespace)
            && !p.contains('`')
            && !p.contains('"');
        if looks_like_path {
            return (Some(p), rest);
        }
    }
    (None, msg)
}

/// serde_yaml's path syntax (`a.b[2].c`) to the source map's (`a.b.2.c`).
fn dotted(path: &str) -> String {
    path.replace('[', ".").replace(']', "")
}

/// The words in backticks: "`a`, `b` or `c`" gives a, b, c.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The message to show and a hint, for the part of a serde_yaml message after its path.
fn explain(inner: &str, path: &str, text: &str, pos: Pos) -> (String, Option<String>) {
    // "unknown field `dprt`, expected one of `a`, `b`" and "unknown variant `acept`, expected
    // `accept` or `drop`": keep the word, move the alternatives to the hint.
    for (what, noun) in [("unknown field `", "keys"), ("unknown variant `", "values")] {
        let Some(rest) = inner.strip_prefix(what) else {
            continue;
        };
        let Some(end) = rest.find('`') else {
            continue;
        };
        let word = &rest[..end];
        let expected = backticked(&rest[end + 1..]);
        let candidates = if expected.is_empty() && what.starts_with("unknown field") {
            RULE_KEYS.to_vec()
        } else {
            expected.clone()
        };
        let message = format!("{what}{word}`");
        if let Some(h) = ran_into_next_line(word, text, pos) {
            return (message, Some(h));
        }
        let guess = crate::suggest::nearest(word, &candidates)
            .map_or(String::new(), |c| format!("did you mean `{c}`? "));
        let allowed = if expected.is_empty() {
            format!("remove it, or see {REFERENCE} for the allowed {noun}")
        } else {
            format!("allowed {noun}: {}", expected.join(", "))
        };
        let hint = format!("{guess}{allowed}");
        return (message, Some(hint));
    }
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        let hint = match field {
            "action" => "every rule needs an action: `action: accept`, `drop` or `reject` in forward, `notrack` or `accept` in raw".to_string(),
            "interface" => "write `NAME: IFACE`, or `NAME: {interface: IFACE, xdp_mode: auto}`".to_string(),
            "mask" | "comp" => "write e.g. `tcp_flags: {mask: [syn, rst, ack, fin], comp: [syn]}`: the flags in mask are examined and those in comp must be set".to_string(),
            f => format!("add `{f}: ...` (see {REFERENCE})"),
        };
        return (inner.to_string(), Some(hint));
    }
    if let Some(rest) = inner.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let message = format!(
                "invalid type: {found}, expected {}",
                friendly_type(expected)
            );
            return (message, Some(type_hint(path, expected)));
        }
    }
    if inner.starts_with("invalid length ") {
        let hint = if path.starts_with("pairs") {
            "each pair is two port names: `pairs: [[lan, wan]]`".to_string()
        } else {
            format!("see {REFERENCE}")
        };
        return (inner.to_string(), Some(hint));
    }
    // Messages our own types raise say what to write; one more case to catch: a value that
    // swallowed the next, mis-indented line (`proto: tcp\n   dport: 22` reads `tcp dport: 22`).
    if let Some(word) = backticked(inner).into_iter().find(|w| w.contains(' ')) {
        if let Some(h) = ran_into_next_line(word, text, pos) {
            return (inner.to_string(), Some(h));
        }
    }
    if path.is_empty() {
        // No path: a YAML syntax error.
        let line = text.lines().nth(pos.line.saturating_sub(1)).unwrap_or("");
        let hint = if inner.contains("cannot start any token") && line.contains('\t') {
            "YAML does not allow tabs for indentation: indent with spaces"
        } else if inner.contains("expected ',' or ']'") || inner.contains("expected ',' or '}'") {
            "a `[` or `{` list is not closed: add the closing bracket"
        } else if inner.contains("mapping values are not allowed") {
            "a `:` follows a value: put each key on its own line, or quote a value that contains `: `"
        } else if inner.contains("end of stream") {
            "the file ends inside a quoted string or bracket: close it"
        } else {
            "check the YAML syntax here: indent with spaces, keep the keys of one map at the same indentation, close every bracket and quote"
        };
        return (inner.to_string(), Some(hint.to_string()));
    }
    (inner.to_string(), None)
}

/// When the word serde complains about is not on the line it points at, a more-indented line
/// ran into the value.
fn ran_into_next_line(word: &str, text: &str, pos: Pos) -> Option<String> {
    if !word.contains(' ') {
        return None;
    }
    let line = text.lines().nth(pos.line.saturating_sub(1))?;
    if line.contains(word) {
        return None;
    }
    Some(format!(
        "`{word}` is one value spread over two lines: the next line is indented more than its key's \
         siblings, so YAML continues the value; indent it like the key above"
    ))
}

/// serde's type names in words a person writes YAML with.
fn friendly_type(expected: &str) -> String {
    match expected {
        "struct Ruleset" => {
            "a map of top-level keys (ports, pairs, conntrack, helpers, raw, forward)".into()
        }
        "struct Stage" => "a map with `policy` and `rules`".into(),
        "struct Rule" => "a rule, a map like {proto: tcp, dport: 22, action: accept}".into(),
        "struct ConntrackSettings" => "a map of conntrack settings".into(),
        "struct Helpers" => "a map of helpers, like {ftp: {ports: [21]}}".into(),
        "struct FtpHelper" => "a map like {ports: [21]}".into(),
        "struct TcpFlagsMatch" => "a map {mask: [flags], comp: [flags]}".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "a sequence" => "a list".into(),
        "a boolean" => "true or false".into(),
        other => other.into(),
    }
}

/// How to write the value at `path` that had the wrong type.
fn type_hint(path: &str, expected: &str) -> String {
    if let Some(key) = path.strip_prefix("conntrack.") {
        if let Some((lo, hi)) = ConntrackSettings::range(key) {
            let default = ConntrackSettings::default().get(key).unwrap_or_default();
            return format!("write a number from {lo} to {hi} (kernel default {default})");
        }
    }
    match path {
        "forward" | "raw" => {
            format!("write `{path}: {{policy: drop, rules: [...]}}`, the rules a list of maps")
        }
        "forward.rules" | "raw.rules" => "rules are a list: start each rule with `- `".into(),
        "pairs" => "write `pairs: [[lan, wan]]`: a list of two-port lists".into(),
        "ports" => "write `ports: {lan: veth-lan, wan: veth-wan}`: port names to interfaces".into(),
        _ if expected == "struct Rule" => {
            "each rule is a map: `- {proto: tcp, dport: 22, action: accept}`".into()
        }
        _ => format!("see {REFERENCE} for the form of this key"),
    }
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
            for (k, present) in [
                ("ctstate", r.ctstate.is_some()),
                ("ctdir", r.ctdir.is_some()),
            ] {
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
        // Family consistency.
        let mut families: Vec<(Family, &str)> = Vec::new();
        if let Some(f) = r.family {
            families.push((f, "family"));
        }
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

/// Where a rule (or any map node) starts: its first key. yaml-rust2 marks a block mapping's
/// start after its first key, so take the earliest of the node's mark and its keys' marks.
pub fn node_start(source: &SourceMap, path: &str, keys: &[&str]) -> Pos {
    keys.iter()
        .filter_map(|k| source.key(&format!("{path}.{k}")))
        .chain(source.key(path))
        .min()
        .unwrap_or_else(|| source.locate(path))
}

/// Where rule `i` of a stage starts, for diagnostics about the whole rule.
pub fn rule_pos(source: &SourceMap, stage: &str, i: usize) -> Pos {
    node_start(source, &format!("{stage}.rules.{i}"), RULE_KEYS)
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
        ports: port_names(r),
    };
    c.check_ports(r);
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
