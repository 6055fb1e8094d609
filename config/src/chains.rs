//! User-defined chains: the checks iptables makes when a ruleset with chains is loaded
//! (a jump to a chain that does not exist, a loop), the limits statewall adds (chain names,
//! nesting depth), and the warnings `statewall check` gives (a chain nothing reaches,
//! `return` in a stage's main list).
//!
//! Chains belong to a stage, as iptables' chains belong to a table: a `forward` rule cannot
//! jump to a `raw` chain.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::ruleset::{Action, Rule, Stage};
use crate::source_map::SourceMap;
use crate::suggest::did_you_mean;

/// Deepest chain nesting allowed (jumps within jumps). iptables-legacy has no fixed limit;
/// nftables allows 16; 64 is far past any generated ruleset and bounds the engine's walk.
pub const MAX_DEPTH: usize = 64;

/// Longest chain name, as iptables (`XT_EXTENSION_MAXNAMELEN` less the final NUL).
pub const MAX_NAME: usize = 28;

/// Whether a chain name is one statewall accepts: 1 to 28 letters, digits, `-` and `_`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The YAML name of each imported chain name: the name with characters a chain name may not
/// have made `_`, cut to [`MAX_NAME`], and, where that is taken (in name order), ending in
/// `_2`, `_3`, ... instead.
pub fn yaml_names<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.dedup();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for n in names {
        // ASCII from here on, so byte lengths are character counts.
        let base: String = n
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_NAME)
            .collect();
        let y = unique_name(&base, |c| out.values().any(|v| v == c));
        out.insert(n.to_string(), y);
    }
    out
}

/// `base` (a valid chain name), or where `taken` says it is taken, `base` ending in `_2`,
/// `_3`, ... (cut to stay within [`MAX_NAME`]).
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut y = base.to_string();
    let mut k = 2;
    while taken(&y) {
        let suffix = format!("_{k}");
        let keep = base.len().min(MAX_NAME.saturating_sub(suffix.len()));
        y = format!("{}{suffix}", base.get(..keep).unwrap_or_default());
        k += 1;
    }
    y
}

/// The errors of a stage's chains: bad names, jumps to unknown chains, loops, depth.
pub fn check(stage_name: &str, stage: &Stage, source: &SourceMap, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let names: Vec<&str> = stage.chains.keys().map(String::as_str).collect();
    for name in stage.chains.keys() {
        if !valid_name(name) {
            out.push(
                Diagnostic::error(
                    file,
                    source.locate(&format!("{stage_name}.chains.{name}")),
                    format!("invalid chain name `{name}`"),
                )
                .with_hint(format!(
                    "use 1 to {MAX_NAME} letters, digits, `-` and `_` (import-iptables replaces other characters with `_`)"
                )),
            );
        }
    }
    for (chain, i, rule) in stage.numbered() {
        let Some(target) = rule.action.chain() else {
            continue;
        };
        if !stage.chains.contains_key(target) {
            let path = Stage::rule_path(stage_name, chain, i);
            let hint = if names.is_empty() {
                format!("the {stage_name} stage has no chains: add `chains: {{{target}: [...]}}` under `{stage_name}:`")
            } else {
                format!("chains of the {stage_name} stage: {}", names.join(", "))
            };
            out.push(
                Diagnostic::error(
                    file,
                    source.locate(&format!("{path}.action")),
                    format!(
                        "{} to unknown chain `{target}`{}",
                        rule.action.name(),
                        did_you_mean(target, &names)
                    ),
                )
                .with_hint(hint),
            );
        }
    }
    if !out.is_empty() {
        return out;
    }
    // Loops and depth: a depth-first walk from each chain over the call graph.
    let graph = calls(stage);
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for start in stage.chains.keys() {
        let mut path = vec![start.as_str()];
        if let Err(e) = walk(&graph, &mut path, &mut depth) {
            let (msg, hint) = match e {
                Walk::Loop(cycle) => (
                    format!("chains jump in a loop: {}", cycle.join(" -> ")),
                    "iptables refuses a loop (ELOOP): break it by removing one of the jumps",
                ),
                Walk::TooDeep(chain) => (
                    format!(
                        "chain `{chain}` is reached through more than {MAX_DEPTH} nested jumps"
                    ),
                    "flatten some of the chains into their callers",
                ),
            };
            let at = source.locate(&format!("{stage_name}.chains.{start}"));
            out.push(Diagnostic::error(file, at, msg).with_hint(hint));
            // One report per stage: a loop seen from each of its chains is one loop.
            break;
        }
    }
    out
}

/// Each chain's callees (`None`: the main list), with duplicates.
fn calls(stage: &Stage) -> BTreeMap<&str, Vec<&str>> {
    let mut g: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, rules) in &stage.chains {
        g.insert(
            name,
            rules.iter().filter_map(|r| r.action.chain()).collect(),
        );
    }
    g
}

enum Walk<'a> {
    Loop(Vec<&'a str>),
    TooDeep(&'a str),
}

/// Depth-first from the last chain on `path`; `depth` memoizes each finished chain's
/// deepest nesting below it.
fn walk<'a>(
    g: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
    depth: &mut BTreeMap<&'a str, usize>,
) -> Result<usize, Walk<'a>> {
    let Some(&here) = path.last() else {
        return Ok(0);
    };
    if let Some(d) = depth.get(here) {
        return Ok(*d);
    }
    if path.len() > MAX_DEPTH {
        return Err(Walk::TooDeep(here));
    }
    let mut deepest = 0;
    for &callee in g.get(here).map_or(&[][..], Vec::as_slice) {
        if let Some(k) = path.iter().position(|c| *c == callee) {
            let mut cycle: Vec<&str> = path.get(k..).unwrap_or_default().to_vec();
            cycle.push(callee);
            return Err(Walk::Loop(cycle));
        }
        path.push(callee);
        let d = walk(g, path, depth)?;
        path.pop();
        deepest = deepest.max(d + 1);
    }
    if path.len() + deepest > MAX_DEPTH + 1 {
        return Err(Walk::TooDeep(here));
    }
    depth.insert(here, deepest);
    Ok(deepest)
}

/// The warnings of a stage's chains: chains no rule reaches, `return` in the main list.
pub fn lint(stage_name: &str, stage: &Stage, source: &SourceMap, file: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut reached: Vec<&str> = Vec::new();
    let mut todo: Vec<&str> = stage
        .rules
        .iter()
        .filter_map(|r| r.action.chain())
        .collect();
    while let Some(c) = todo.pop() {
        if reached.contains(&c) {
            continue;
        }
        reached.push(c);
        if let Some(rules) = stage.chains.get(c) {
            todo.extend(rules.iter().filter_map(|r| r.action.chain()));
        }
    }
    for name in stage.chains.keys() {
        if !reached.contains(&name.as_str()) {
            out.push(
                Diagnostic::warning(
                    file,
                    source.locate(&format!("{stage_name}.chains.{name}")),
                    format!("chain `{name}` is never reached: no rule of the {stage_name} stage jumps or goes to it"),
                )
                .with_hint(format!(
                    "add a rule with `action: {{jump: {name}}}`, or remove the chain"
                )),
            );
        }
    }
    for (i, r) in stage.rules.iter().enumerate() {
        if r.action == Action::Return {
            out.push(
                Diagnostic::warning(
                    file,
                    source.rule_start(&Stage::rule_path(stage_name, None, i)),
                    format!("`return` in {stage_name}.rules ends the walk: the {stage_name} policy decides"),
                )
                .with_hint(
                    "that is iptables' RETURN in a built-in chain; say it plainly with a rule whose action is the policy's",
                ),
            );
        }
    }
    out
}

/// Whether the walk goes on after a rule that matches: a `jump` (when the chain does not
/// decide), `log`, `continue` and the mark actions. Such a rule never hides the rules
/// after it.
pub fn falls_through(r: &Rule) -> bool {
    matches!(r.action, Action::Jump(_)) || r.action.passes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_names_are_valid_and_distinct() {
        let long = "x".repeat(40);
        let names = ["net.fw", "net_fw", "ok", &long, &format!("{long}y")];
        let y = yaml_names(names.iter().copied());
        assert_eq!(y["ok"], "ok");
        assert_eq!(y["net.fw"], "net_fw");
        assert_eq!(y["net_fw"], "net_fw_2");
        assert_eq!(y[long.as_str()], "x".repeat(28));
        assert_eq!(
            y[format!("{long}y").as_str()],
            format!("{}_2", "x".repeat(26))
        );
        assert!(y.values().all(|v| valid_name(v)));
    }
}
