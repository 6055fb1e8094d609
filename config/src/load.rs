//! Loading a ruleset file: `text → serde_yaml → Ruleset → validate() → lint()`.
//!
//! serde_yaml reports syntax and type errors (with position); this module turns its messages
//! into diagnostics a person can act on (the position refined through the [`SourceMap`], the
//! path kept, "expected one of" lists moved to a hint). Cross-field errors come from
//! [`crate::validate`], warnings from [`crate::lint`]. Every diagnostic has file:line:col and
//! a fix; a ruleset with any error is never handed to the engine.

use crate::diag::{Diagnostic, Pos};
use crate::lint::lint;
use crate::ruleset::{Rule, Ruleset};
use crate::settings::ConntrackSettings;
use crate::source_map::SourceMap;
use crate::suggest::nearest;
use crate::validate::validate;

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
    // At the end of a text whose last line has no newline, libyaml points one line past it;
    // the person reading the message wants the last line (found by the `config` fuzz target).
    let lines = text.split('\n').count();
    if pos.line > lines {
        let last = text.split('\n').next_back().unwrap_or_default();
        pos = Pos {
            line: lines,
            col: last.chars().count() + 1,
        };
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
            Rule::KEYS.to_vec()
        } else {
            expected.clone()
        };
        let message = format!("{what}{word}`");
        if let Some(h) = ran_into_next_line(word, text, pos) {
            return (message, Some(h));
        }
        if let Some(h) = misplaced_setting(word, path) {
            return (message, Some(h));
        }
        let guess =
            nearest(word, &candidates).map_or(String::new(), |c| format!("did you mean `{c}`? "));
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

/// An unknown key that names a setting of the `conntrack:` section written elsewhere, or the
/// host's IPv6 reassembly sysctls where conntrack has its own.
fn misplaced_setting(word: &str, path: &str) -> Option<String> {
    let fragments = "IP fragment reassembly is set in `conntrack:` by the kernel's sysctl names: \
                     ipfrag_high_thresh, ipfrag_low_thresh, ipfrag_time, ipfrag_max_dist (net.ipv4) \
                     and frag6_high_thresh, frag6_low_thresh, frag6_timeout (net.netfilter.nf_conntrack_)";
    if path == "conntrack" {
        // net.ipv6.ip6frag_* are the host's own; conntrack reassembles IPv6 by nf_conntrack_frag6_*.
        let frag6 = match word {
            "ip6frag_time" | "ip6frag_timeout" => "frag6_timeout",
            "ip6frag_high_thresh" => "frag6_high_thresh",
            "ip6frag_low_thresh" => "frag6_low_thresh",
            _ => return None,
        };
        return Some(format!(
            "did you mean `{frag6}`? net.ipv6.{word} is the host's IPv6 reassembly; before \
             conntrack IPv6 is reassembled by net.netfilter.nf_conntrack_{frag6}"
        ));
    }
    if path.is_empty() {
        if ConntrackSettings::KEYS.contains(&word) {
            return Some(format!(
                "`{word}` is a conntrack setting: write it under `conntrack:`"
            ));
        }
        if matches!(
            word,
            "ipv4" | "ipv6" | "ip" | "defrag" | "fragments" | "frag" | "ipfrag" | "sysctl"
        ) {
            return Some(fragments.to_string());
        }
    }
    None
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
        "u64" => "a whole number from 0 to 18446744073709551615".into(),
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
        "forward" | "raw" | "mangle" | "mangle_forward" => {
            format!("write `{path}: {{policy: drop, rules: [...]}}`, the rules a list of maps")
        }
        "forward.rules" | "raw.rules" | "mangle.rules" | "mangle_forward.rules" => {
            "rules are a list: start each rule with `- `".into()
        }
        "pairs" => "write `pairs: [[lan, wan]]`: a list of two-port lists".into(),
        "ports" => "write `ports: {lan: veth-lan, wan: veth-wan}`: port names to interfaces".into(),
        _ if expected == "struct Rule" => {
            "each rule is a map: `- {proto: tcp, dport: 22, action: accept}`".into()
        }
        _ => format!("see {REFERENCE} for the form of this key"),
    }
}
