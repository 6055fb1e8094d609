//! `import-nft`: the JSON of `nft -j list ruleset` to a [`Ruleset`].
//!
//! # What is translated
//!
//! - **The forward hook**: a base chain `type filter hook forward` of an `ip`, `ip6` or
//!   `inet` table becomes the `forward` stage, its policy the stage's. An `ip` and an `ip6`
//!   forward chain together are one stage whose rules each keep their family; a family with
//!   no forward chain is accepted, as nftables accepts what no chain on a hook drops (a last
//!   rule `{family: ..., action: accept}` says so when the other family's policy is drop).
//!   When two forward chains see a family, the one of lower priority (`priority mangle`
//!   before `priority filter`) becomes the `mangle_forward` stage, which runs before
//!   `forward` as nftables runs it first; a third, or two at one place, is an error.
//! - **After conntrack, on prerouting**: a `hook prerouting` filter chain at conntrack's
//!   priority or later (`priority mangle`, -150) becomes the `mangle` stage.
//! - **Before conntrack**: a `hook prerouting` base chain with a priority below conntrack's
//!   (-200; `priority raw` is -300) becomes the `raw` stage (`notrack`, `accept`, and
//!   `tcp dport N ct helper set "NAME"` with a `ct helper NAME { type "ftp" ... }` object,
//!   which adds N to `helpers.ftp.ports`).
//! - **Chains** reached from those (`jump`, `goto`, `return`) become the stage's `chains`,
//!   named after the nftables chain (with `_` for other characters; a name two tables use
//!   gets `_2`...). Chains nothing translated reaches are left out with a warning.
//! - **Input and output** hooks protect the box itself and never see forwarded packets: left
//!   out, with a warning. Other hooks and chain types (nat, route, postrouting, ingress,
//!   bridge and netdev tables) are errors when they have rules or a policy other than
//!   accept.
//! - **Matches**: `ct state`, `ct direction`, `meta iifname`/`oifname` (ports, as
//!   import-iptables' `-i`/`-o`), `meta l4proto`, `meta nfproto`, `ip protocol`,
//!   `ip6 nexthdr`, `ip`/`ip6` `saddr`/`daddr` (addresses and prefixes), `tcp`/`udp`/`sctp`/
//!   `dccp`/`udplite` `sport`/`dport` (also `<`, `<=`, `>`, `>=`), `th sport`/`dport` after
//!   a `meta l4proto` match, `icmp type`, `icmpv6 type`, `tcp flags & MASK == FLAGS`; `!=`
//!   negates; anonymous sets `{ ... }` and named sets `@name` (constant ones: a set with
//!   timeouts or the dynamic flag is filled at run time); `meta mark` and `ct mark` (with
//!   `& MASK`).
//! - **Statements**: `counter` (statewall counts per rule itself), `accept`, `drop`,
//!   `reject` (`with tcp reset`, `with icmp|icmpv6|icmpx type ...`), `jump`, `goto`,
//!   `return`, `notrack`, `ct helper set`, `log`, `limit`, `meta mark set` and `ct mark
//!   set` (`expr.rs` says which values); a rule's `comment`.
//!
//! Everything else (other keys set, NAT statements, maps and verdict maps,
//! concatenations, address ranges, `continue`) is an error naming the
//! rule (table, chain, handle) and its place in the text; all errors are collected.
//!
//! # Layout
//!
//! `json.rs` finds where each object of the text starts; this file reads the objects into
//! tables, sets, helpers, chains and rules; `expr.rs` translates one rule; `stages.rs`
//! decides which chains become which stage and assembles the ruleset.

mod expr;
mod json;
mod stages;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diag::{Diagnostic, Pos};
use crate::iptables::Imported;
use crate::ruleset::Policy;

use expr::Fail;
use json::{element_positions, single, text};

/// What to import: `(name for messages, text)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftInput<'a> {
    pub rules: (&'a str, &'a str),
}

/// A base chain's hook.
#[derive(Debug, Clone)]
struct Base {
    hook: String,
    kind: String,
    prio: i64,
    policy: Policy,
}

#[derive(Debug, Clone)]
struct Chain {
    family: String,
    table: String,
    name: String,
    base: Option<Base>,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct NftRule {
    family: String,
    table: String,
    chain: String,
    handle: i64,
    exprs: Vec<Value>,
    comment: Option<String>,
    pos: Pos,
}

#[derive(Debug, Clone)]
struct Set {
    elems: Vec<Value>,
    /// Why the set cannot be translated, if it cannot.
    dynamic: Option<String>,
}

/// Everything the rules refer to, by (family, table, name).
#[derive(Debug, Default)]
pub(crate) struct Tables {
    sets: BTreeMap<(String, String, String), Set>,
    helpers: BTreeMap<(String, String, String), String>,
    /// The YAML name of each chain that becomes a stage's chain.
    chain_names: BTreeMap<(String, String, String), String>,
}

fn key(family: &str, table: &str, name: &str) -> (String, String, String) {
    (family.to_string(), table.to_string(), name.to_string())
}

impl Tables {
    fn set_elems(&self, family: &str, table: &str, name: &str) -> Result<Option<&[Value]>, Fail> {
        match self.sets.get(&key(family, table, name)) {
            None => Ok(None),
            Some(Set { dynamic: Some(why), .. }) => Err((
                format!("set `{name}` {why}: its contents change while the firewall runs"),
                "statewall loads a ruleset's contents once: list the elements in the rule, or use a constant set".to_string(),
            )),
            Some(s) => Ok(Some(&s.elems)),
        }
    }

    fn helper_type(&self, family: &str, table: &str, name: &str) -> Option<&str> {
        self.helpers
            .get(&key(family, table, name))
            .map(String::as_str)
    }

    fn chain_name(&self, family: &str, table: &str, name: &str) -> Option<String> {
        self.chain_names.get(&key(family, table, name)).cloned()
    }
}

/// The objects of the text, read.
#[derive(Debug, Default)]
struct Objects {
    chains: Vec<Chain>,
    rules: Vec<NftRule>,
    tables: Tables,
}

/// Translate, or report every rule that cannot be translated.
pub fn import(input: &NftInput) -> Result<Imported, Vec<Diagnostic>> {
    let (file, text) = input.rules;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![Diagnostic::error(
            file,
            Pos {
                line: e.line(),
                col: e.column(),
            },
            // serde_json's message ends with the place, which the diagnostic gives.
            format!(
                "not JSON: {}",
                e.to_string().split(" at line ").next().unwrap_or_default()
            ),
        )
        .with_hint("give the output of `nft -j list ruleset` (JSON), not `nft list ruleset`")]
    })?;
    let Some(items) = value.get("nftables").and_then(Value::as_array) else {
        return Err(vec![Diagnostic::error(
            file,
            Pos { line: 1, col: 1 },
            "no `nftables` array at the top level",
        )
        .with_hint("give the output of `nft -j list ruleset`")]);
    };
    let positions = element_positions(text);
    let mut errs = Vec::new();
    let objects = read(file, items, &positions, &mut errs);
    let (ruleset, mut more, warnings) = stages::assemble(file, objects);
    errs.append(&mut more);
    errs.sort_by_key(|d| d.pos);
    if errs.is_empty() {
        Ok(Imported {
            ruleset,
            warnings,
            generator: "import-nft",
        })
    } else {
        Err(errs)
    }
}

fn read(file: &str, items: &[Value], positions: &[Pos], errs: &mut Vec<Diagnostic>) -> Objects {
    let mut o = Objects::default();
    for (i, item) in items.iter().enumerate() {
        let pos = positions.get(i).copied().unwrap_or(Pos { line: 1, col: 1 });
        let Some((kind, body)) = single(item) else {
            errs.push(
                Diagnostic::error(
                    file,
                    pos,
                    "expected an object with one key (`table`, `chain`, `rule`, `set`, ...)",
                )
                .with_hint("give the output of `nft -j list ruleset`"),
            );
            continue;
        };
        let family = text(body, "family").unwrap_or_default();
        let table = text(body, "table").unwrap_or_default();
        let name = text(body, "name").unwrap_or_default();
        match kind {
            "metainfo" | "table" | "counter" | "quota" | "limit" | "ct timeout"
            | "ct expectation" | "secmark" | "synproxy" => {}
            "chain" => {
                let base = text(body, "hook").map(|hook| Base {
                    hook: hook.to_string(),
                    kind: text(body, "type").unwrap_or("filter").to_string(),
                    prio: body.get("prio").and_then(Value::as_i64).unwrap_or(0),
                    policy: if text(body, "policy") == Some("drop") {
                        Policy::Drop
                    } else {
                        Policy::Accept
                    },
                });
                o.chains.push(Chain {
                    family: family.into(),
                    table: table.into(),
                    name: name.into(),
                    base,
                    pos,
                });
            }
            "rule" => {
                let exprs = body
                    .get("expr")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                o.rules.push(NftRule {
                    family: family.into(),
                    table: table.into(),
                    chain: text(body, "chain").unwrap_or_default().into(),
                    handle: body.get("handle").and_then(Value::as_i64).unwrap_or(0),
                    exprs,
                    comment: text(body, "comment").map(str::to_string),
                    pos,
                });
            }
            "set" | "map" => {
                let flags: Vec<&str> = body
                    .get("flags")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let dynamic = if kind == "map" {
                    Some("is a map".to_string())
                } else if flags.contains(&"dynamic") || body.get("timeout").is_some() {
                    Some("is dynamic (flag dynamic or a timeout)".to_string())
                } else if body.get("type").is_some_and(Value::is_array) {
                    Some("has a concatenated type".to_string())
                } else {
                    None
                };
                let elems = body
                    .get("elem")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                o.tables
                    .sets
                    .insert(key(family, table, name), Set { elems, dynamic });
            }
            "ct helper" => {
                o.tables.helpers.insert(
                    key(family, table, name),
                    text(body, "type").unwrap_or_default().to_string(),
                );
            }
            other => errs.push(
                Diagnostic::error(file, pos, format!("unsupported object `{other}`"))
                    .with_hint("import-nft reads tables, chains, rules, sets and ct helpers"),
            ),
        }
    }
    o
}
