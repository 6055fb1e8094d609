//! Which nftables chains become which stage, and the ruleset they make: base chains by hook
//! and priority, the chains they reach, rules translated in order, policies per family,
//! interfaces as ports, and every translated rule checked by the loader's validation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::chains;
use crate::diag::{Diagnostic, Pos};
use crate::interfaces;
use crate::ruleset::{Action, Family, FtpHelper, Policy, Rule, Ruleset, Stage};
use crate::source_map::SourceMap;
use crate::validate::validate;

use super::expr::{Builder, Translated};
use super::json::{single, text};
use super::{key, Chain, Objects};

/// Conntrack's priority on prerouting: a chain below it runs before connection tracking.
const CONNTRACK_PRIO: i64 = -200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StageId {
    Raw,
    /// Prerouting after conntrack.
    Mangle,
    /// Forward chains before the last one.
    MangleForward,
    Forward,
}

impl StageId {
    fn of(self, rs: &mut Ruleset) -> &mut Stage {
        match self {
            StageId::Raw => &mut rs.raw,
            StageId::Mangle => &mut rs.mangle,
            StageId::MangleForward => &mut rs.mangle_forward,
            StageId::Forward => &mut rs.forward,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StageId::Raw => "raw",
            StageId::Mangle => "mangle",
            StageId::MangleForward => "mangle_forward",
            StageId::Forward => "forward",
        }
    }
}

/// The families a table's rules see: `ip` IPv4, `ip6` IPv6, `inet` both; others none.
fn families(family: &str) -> &'static [Family] {
    match family {
        "ip" => &[Family::Ipv4],
        "ip6" => &[Family::Ipv6],
        "inet" => &[Family::Ipv4, Family::Ipv6],
        _ => &[],
    }
}

fn table_family(family: &str) -> Option<Family> {
    match family {
        "ip" => Some(Family::Ipv4),
        "ip6" => Some(Family::Ipv6),
        _ => None,
    }
}

fn where_is(c: &Chain) -> String {
    format!("table {} {} chain {}", c.family, c.table, c.name)
}

/// The chains a rule jumps or goes to.
fn targets(exprs: &[Value]) -> impl Iterator<Item = &str> {
    exprs.iter().filter_map(|e| match single(e) {
        Some(("jump" | "goto", body)) => text(body, "target"),
        _ => None,
    })
}

pub(super) fn assemble(file: &str, mut o: Objects) -> (Ruleset, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut errs = Vec::new();
    let mut warns = Vec::new();
    let rule_count = |o: &Objects, c: &Chain| {
        o.rules
            .iter()
            .filter(|r| (&r.family, &r.table, &r.chain) == (&c.family, &c.table, &c.name))
            .count()
    };
    // Base chains: which stage, if any.
    let mut stage_of: BTreeMap<(String, String, String), StageId> = BTreeMap::new();
    let mut seen: BTreeMap<(StageId, u8), String> = BTreeMap::new();
    let mut left_out: Vec<(Pos, String)> = Vec::new();
    // The highest priority of a forward filter chain, per family: that chain is the forward
    // stage, a forward chain before it is mangle_forward.
    let mut last_forward: BTreeMap<u8, i64> = BTreeMap::new();
    for c in &o.chains {
        let Some(b) = c
            .base
            .as_ref()
            .filter(|b| b.kind == "filter" && b.hook == "forward")
        else {
            continue;
        };
        for f in families(&c.family) {
            let p = last_forward.entry(*f as u8).or_insert(b.prio);
            *p = (*p).max(b.prio);
        }
    }
    for c in &o.chains {
        let Some(b) = &c.base else { continue };
        let fams = families(&c.family);
        let filter = b.kind == "filter" && !fams.is_empty();
        let is_last = |f: &Family| last_forward.get(&(*f as u8)) == Some(&b.prio);
        let stage = match b.hook.as_str() {
            "forward" if filter && fams.iter().all(is_last) => Some(StageId::Forward),
            "forward" if filter && !fams.iter().any(is_last) => Some(StageId::MangleForward),
            "forward" if filter => {
                errs.push(
                    Diagnostic::error(file, c.pos, format!("{}: a forward chain that is the last forward chain for one family and not for the other cannot be translated", where_is(c)))
                        .with_hint("statewall's forward stage is the last forward chain of each family (the one of highest priority): give the chains of both families the same order"),
                );
                continue;
            }
            "prerouting" if filter && b.prio < CONNTRACK_PRIO => Some(StageId::Raw),
            "prerouting" if filter => Some(StageId::Mangle),
            _ => None,
        };
        let used = rule_count(&o, c) > 0 || b.policy == Policy::Drop;
        let Some(stage) = stage else {
            if filter && matches!(b.hook.as_str(), "input" | "output") {
                if used {
                    left_out.push((c.pos, where_is(c)));
                }
            } else if used {
                let hint = match (b.kind.as_str(), b.hook.as_str()) {
                    ("nat", _) => "statewall does no NAT: do NAT on another box, import the filter chains".to_string(),
                    _ if fams.is_empty() => format!(
                        "statewall translates ip, ip6 and inet tables; a {} table's chains cannot be translated",
                        c.family
                    ),
                    _ => "statewall translates filter chains on the prerouting and forward hooks".to_string(),
                };
                errs.push(
                    Diagnostic::error(
                        file,
                        c.pos,
                        format!(
                            "{}: a {} chain on hook {} cannot be translated",
                            where_is(c),
                            b.kind,
                            b.hook
                        ),
                    )
                    .with_hint(hint),
                );
            }
            continue;
        };
        for f in fams {
            if let Some(other) = seen.insert((stage, *f as u8), where_is(c)) {
                errs.push(
                    Diagnostic::error(
                        file,
                        c.pos,
                        format!("{} and {other} both see {} packets on hook {}", where_is(c), match f { Family::Ipv4 => "IPv4", Family::Ipv6 => "IPv6" }, b.hook),
                    )
                    .with_hint("nftables runs every base chain on a hook, and a packet must pass each; statewall has one rule list per stage: merge the chains into one"),
                );
            }
        }
        stage_of.insert(key(&c.family, &c.table, &c.name), stage);
    }
    if !left_out.is_empty() {
        let names: Vec<&str> = left_out.iter().map(|(_, n)| n.as_str()).collect();
        warns.push(
            Diagnostic::warning(
                file,
                left_out[0].0,
                format!(
                    "input and output chains were left out ({}): they protect the gateway host itself, and the kernel never runs them for forwarded or bridged packets",
                    names.join(", ")
                ),
            )
            .with_hint("keep the host's own firewall on the host; statewall filters the traffic it forwards between its ports"),
        );
    }
    // The chains the translated base chains reach, each in its stage.
    let mut todo: Vec<((String, String, String), StageId)> =
        stage_of.iter().map(|(k, s)| (k.clone(), *s)).collect();
    while let Some((k, stage)) = todo.pop() {
        for r in o
            .rules
            .iter()
            .filter(|r| (&r.family, &r.table, &r.chain) == (&k.0, &k.1, &k.2))
        {
            for t in targets(&r.exprs) {
                let tk = key(&k.0, &k.1, t);
                let exists = o
                    .chains
                    .iter()
                    .any(|c| key(&c.family, &c.table, &c.name) == tk);
                if !exists {
                    continue; // the rule's own error names it
                }
                match stage_of.get(&tk) {
                    None => {
                        stage_of.insert(tk.clone(), stage);
                        todo.push((tk, stage));
                    }
                    Some(s) if *s != stage => errs.push(
                        Diagnostic::error(
                            file,
                            r.pos,
                            format!(
                                "chain `{t}` is reached from two stages, {} and {}",
                                s.name(),
                                stage.name()
                            ),
                        )
                        .with_hint(
                            "statewall's stages have their own chains: give each its own copy",
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    let bases: BTreeSet<(String, String, String)> = o
        .chains
        .iter()
        .filter(|c| c.base.is_some())
        .map(|c| key(&c.family, &c.table, &c.name))
        .collect();
    let unreached: Vec<String> = o
        .chains
        .iter()
        .filter(|c| c.base.is_none() && !stage_of.contains_key(&key(&c.family, &c.table, &c.name)))
        .map(where_is)
        .collect();
    if !unreached.is_empty() {
        warns.push(
            Diagnostic::warning(
                file,
                Pos::default(),
                format!("chain(s) left out, as no translated chain jumps to them: {}", unreached.join(", ")),
            )
            .with_hint("only filter chains on the prerouting and forward hooks are translated, with the chains they reach"),
        );
    }
    // YAML names of the user chains kept.
    for k in stage_of.keys().filter(|k| !bases.contains(*k)) {
        let base = chains::yaml_names(std::iter::once(k.2.as_str()))
            .remove(&k.2)
            .unwrap_or_default();
        let taken = &o.tables.chain_names;
        let y = chains::unique_name(&base, |c| taken.values().any(|v| v == c));
        o.tables.chain_names.insert(k.clone(), y);
    }
    // Rules, in order, and where each came from (by stage and chain, in the same order).
    let mut rs = Ruleset::default();
    let mut origin: BTreeMap<(&'static str, Option<String>), Vec<Pos>> = BTreeMap::new();
    let mut ifaces: Vec<(String, Pos)> = Vec::new();
    let mut ftp: Vec<u16> = Vec::new();
    let mut checked: Vec<(Pos, StageId, Rule)> = Vec::new();
    for r in &o.rules {
        let k = key(&r.family, &r.table, &r.chain);
        let Some(&stage) = stage_of.get(&k) else {
            continue;
        };
        let at = |msg: String| {
            format!(
                "table {} {} chain {} rule handle {}: {msg}",
                r.family, r.table, r.chain, r.handle
            )
        };
        let b = Builder::new(&r.family, &r.table, table_family(&r.family), &o.tables);
        let done = match b.run(&r.exprs) {
            Ok(t) => t,
            Err((msg, hint)) => {
                let mut d = Diagnostic::error(file, r.pos, at(msg));
                if !hint.is_empty() {
                    d = d.with_hint(hint);
                }
                errs.push(d);
                continue;
            }
        };
        for w in &done.warns {
            warns.push(Diagnostic::warning(file, r.pos, at(w.clone())));
        }
        match done.translated {
            Translated::Never => {}
            Translated::FtpPort(p) if stage == StageId::Raw && bases.contains(&k) => {
                if !ftp.contains(&p) {
                    ftp.push(p);
                }
            }
            Translated::FtpPort(_) => errs.push(
                Diagnostic::error(file, r.pos, at("`ct helper set` cannot be translated here".into()))
                    .with_hint("statewall's FTP helper is set per control port: put `tcp dport PORT ct helper set \"NAME\"` in the prerouting chain at priority raw"),
            ),
            Translated::Rules(rules) => {
                ifaces.extend(done.ifaces.into_iter().map(|n| (n, r.pos)));
                for mut rule in rules {
                    rule.comment.clone_from(&r.comment);
                    checked.push((r.pos, stage, rule.clone()));
                    let st = stage.of(&mut rs);
                    if bases.contains(&k) {
                        st.rules.push(rule);
                        origin.entry((stage.name(), None)).or_default().push(r.pos);
                    } else if let Some(n) = o.tables.chain_names.get(&k) {
                        st.chains.entry(n.clone()).or_default().push(rule);
                        origin.entry((stage.name(), Some(n.clone()))).or_default().push(r.pos);
                    }
                }
            }
        }
    }
    // A chain jumped to may have no rules: it still exists (the walk comes back).
    for (k, stage) in &stage_of {
        if let Some(n) = o.tables.chain_names.get(k) {
            stage.of(&mut rs).chains.entry(n.clone()).or_default();
        }
    }
    if !ftp.is_empty() {
        rs.helpers.ftp = Some(FtpHelper { ports: ftp });
    }
    for (stage, st) in [
        (StageId::Raw, &mut rs.raw),
        (StageId::Mangle, &mut rs.mangle),
        (StageId::MangleForward, &mut rs.mangle_forward),
        (StageId::Forward, &mut rs.forward),
    ] {
        policies(&o, &stage_of, &bases, stage, st);
    }
    // Interfaces → ports.
    let (ports, port_names) = interfaces::ports_for(&ifaces, file, "iifname/oifname", &mut errs);
    rs.ports = ports;
    let mut source = SourceMap::default();
    for (name, st) in rs.stages_mut() {
        let lists = std::iter::once((None, &mut st.rules))
            .chain(st.chains.iter_mut().map(|(c, r)| (Some(c.clone()), r)));
        for (chain, rules) in lists {
            let from = origin.remove(&(name, chain.clone())).unwrap_or_default();
            let mut i = 0;
            let mut kept = 0;
            rules.retain_mut(|r| {
                let pos = from.get(i).copied().unwrap_or_default();
                i += 1;
                if let Err(why) = interfaces::rename_ports(r, &port_names) {
                    warns.push(
                        Diagnostic::warning(
                            file,
                            pos,
                            format!("{why}: a rule that never matches is left out"),
                        )
                        .with_hint("a wildcard matches the interfaces the rules name"),
                    );
                    return false;
                }
                if let Some(c) = &chain {
                    if kept == 0 {
                        source.insert(format!("{name}.chains.{c}"), pos);
                    }
                }
                source.insert(Stage::rule_path(name, chain.as_deref(), kept), pos);
                kept += 1;
                true
            });
        }
    }
    check(file, &rs, &source, checked, &mut errs);
    (rs, errs, warns)
}

/// A stage's policy from its base chains' policies per family; a family no base chain sees
/// is accepted (nftables accepts what no chain drops).
fn policies(
    o: &Objects,
    stage_of: &BTreeMap<(String, String, String), StageId>,
    bases: &BTreeSet<(String, String, String)>,
    stage: StageId,
    st: &mut Stage,
) {
    let mut per: BTreeMap<u8, (Policy, String)> = BTreeMap::new();
    for c in &o.chains {
        let k = key(&c.family, &c.table, &c.name);
        let (Some(b), Some(s)) = (&c.base, stage_of.get(&k)) else {
            continue;
        };
        if *s != stage || !bases.contains(&k) {
            continue;
        }
        for f in families(&c.family) {
            per.insert(*f as u8, (b.policy, where_is(c)));
        }
    }
    let get = |f: Family| {
        per.get(&(f as u8))
            .cloned()
            .unwrap_or((Policy::Accept, String::new()))
    };
    let (p4, p6) = (get(Family::Ipv4), get(Family::Ipv6));
    if p4.0 == p6.0 {
        st.policy = p4.0;
        return;
    }
    st.policy = Policy::Drop;
    for (f, (p, from)) in [(Family::Ipv4, p4), (Family::Ipv6, p6)] {
        if p == Policy::Accept {
            let mut r = Rule::new(Action::Accept);
            r.family = Some(f);
            let fam = if f == Family::Ipv4 { "IPv4" } else { "IPv6" };
            r.comment = Some(if from.is_empty() {
                format!("no base chain on this hook sees {fam}: nftables accepts it")
            } else {
                format!("{from} policy accept")
            });
            st.rules.push(r);
        }
    }
}

/// Each translated rule through the loader's validation, reported at its rule; then the
/// whole ruleset (chains: unknown targets, loops).
fn check(
    file: &str,
    rs: &Ruleset,
    source: &SourceMap,
    checked: Vec<(Pos, StageId, Rule)>,
    errs: &mut Vec<Diagnostic>,
) {
    for (pos, stage, mut r) in checked {
        r.in_port = None;
        r.out_port = None;
        let mut one = Ruleset::default();
        let st = stage.of(&mut one);
        // The chain a rule jumps to, as an empty one: chains are checked with the whole
        // ruleset below.
        if let Some(c) = r.action.chain() {
            st.chains.insert(c.to_string(), Vec::new());
        }
        st.rules.push(r);
        for d in validate(&one, &SourceMap::default(), file) {
            let mut e = Diagnostic::error(
                file,
                pos,
                format!("the translated rule would be invalid: {}", d.message),
            );
            e.hint = d.hint;
            errs.push(e);
        }
    }
    if errs.is_empty() {
        for d in validate(rs, source, file) {
            let mut e = Diagnostic::error(
                file,
                d.pos,
                format!("the translated ruleset would be invalid: {}", d.message),
            );
            e.hint = d.hint;
            errs.push(e);
        }
    }
}
