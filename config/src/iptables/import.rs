//! The whole input, statement by statement: `*table` sections, chain lines, COMMIT, and
//! command lines (`-A`, `-I`, `-P`, `-N`, `-F`, `-X`, `-Z`). What a rule line contributes is
//! decided in `stages.rs`, a further `impl Importer` block, which also assembles the
//! [`crate::ruleset::Ruleset`].

use std::collections::{HashMap, HashSet};

use crate::diag::{Diagnostic, Pos};
use crate::ruleset::{Family, Policy, Rule};
use crate::suggest::did_you_mean;

use super::family::{fam_flag, fam_index, fam_name, statement_families};
use super::rule::RuleParser;
use super::words::{Stmt, Tok};

pub(super) const TABLES: &[&str] = &["filter", "raw", "nat", "mangle", "security"];

pub(super) fn builtin_chains(table: &str) -> &'static [&'static str] {
    match table {
        "filter" | "security" => &["INPUT", "FORWARD", "OUTPUT"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        _ => &[],
    }
}

/// What a translated rule line contributes.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Rule(Box<Rule>),
    FtpPort(u16),
}

/// One translated rule line, in its chain.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) fam: Family,
    /// `filter`, `raw` or `mangle`.
    pub(super) table: &'static str,
    pub(super) chain: String,
    pub(super) item: Item,
    pub(super) pos: Pos,
    pub(super) ifaces: Vec<(String, Pos)>,
}

/// A chain: family, table, name.
pub(super) type ChainKey = (Family, String, String);

pub(super) struct Importer<'a> {
    pub(super) file: &'a str,
    pub(super) errs: Vec<Diagnostic>,
    pub(super) entries: Vec<Entry>,
    pub(super) policies: HashMap<ChainKey, Policy>,
    pub(super) user_chains: HashSet<ChainKey>,
    pub(super) restored: HashSet<(Family, String)>,
    pub(super) families: [bool; 2],
    /// Errors and warnings of rules whose chain may be left out (`add_rule`), by chain.
    pub(super) held: Vec<(ChainKey, Vec<Diagnostic>)>,
    /// What the translation left out or changed, for the operator to read.
    pub(super) warns: Vec<Diagnostic>,
    /// `--family`: the family of every section and rule line.
    pub(super) family: Option<Family>,
    /// `--ipset`: the sets rules may name (`None`: none given).
    pub(super) sets: Option<&'a crate::sets::Sets>,
}

/// An open `*table` section.
struct Section {
    table: String,
    pos: Pos,
    fam: Family,
}

/// The command name of a command line (`iptables`, `/sbin/ip6tables-legacy`, ...).
pub(super) fn command_family(word: &str) -> Option<Family> {
    let base = word.rsplit('/').next().unwrap_or(word);
    let base = base
        .strip_suffix("-legacy")
        .or_else(|| base.strip_suffix("-nft"))
        .unwrap_or(base);
    match base {
        "iptables" => Some(Family::Ipv4),
        "ip6tables" => Some(Family::Ipv6),
        _ => None,
    }
}

fn is_counters(t: &str) -> bool {
    t.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

impl<'a> Importer<'a> {
    pub(super) fn new(
        file: &'a str,
        family: Option<Family>,
        sets: Option<&'a crate::sets::Sets>,
    ) -> Self {
        Importer {
            file,
            errs: Vec::new(),
            entries: Vec::new(),
            policies: HashMap::new(),
            user_chains: HashSet::new(),
            restored: HashSet::new(),
            families: [false; 2],
            held: Vec::new(),
            warns: Vec::new(),
            family,
            sets,
        }
    }

    pub(super) fn err(&mut self, pos: Pos, msg: impl Into<String>, hint: impl Into<String>) {
        self.errs
            .push(Diagnostic::error(self.file, pos, msg).with_hint(hint));
    }

    pub(super) fn run(&mut self, stmts: &[Stmt]) {
        let fams = statement_families(stmts, self.family, self.file, &mut self.errs);
        let mut section: Option<Section> = None;
        for (idx, st) in stmts.iter().enumerate() {
            let Stmt::Words(toks) = st else { continue };
            let Some(first) = toks.first() else { continue };
            let save_fam = fams.get(idx).copied().unwrap_or(Family::Ipv4);
            let t = first.text.as_str();
            if let Some(name) = t.strip_prefix('*') {
                if let Some(open) = &section {
                    let (table, pos) = (open.table.clone(), open.pos);
                    self.err(
                        pos,
                        format!("section `*{table}` has no COMMIT"),
                        "end each section with a COMMIT line, as iptables-save does",
                    );
                }
                section = self.begin_section(name, first, toks, save_fam);
            } else if t == "COMMIT" {
                if section.take().is_none() {
                    self.err(first.pos, "COMMIT outside a `*table` section", "remove it");
                }
            } else if t.starts_with(':') {
                self.chain_line(toks, section.as_ref());
            } else if t.starts_with('-') || is_counters(t) {
                let rest = if is_counters(t) {
                    toks.get(1..).unwrap_or_default()
                } else {
                    toks.as_slice()
                };
                let (fam, table, table_pos) = match &section {
                    Some(s) => (s.fam, s.table.clone(), s.pos),
                    None => (save_fam, "filter".to_string(), first.pos),
                };
                self.families[fam_index(fam)] = true;
                self.command(rest, first.pos, fam, Some((table, table_pos)), true);
            } else {
                self.command_line(toks);
            }
        }
        if let Some(open) = section {
            self.err(
                open.pos,
                format!("section `*{}` has no COMMIT", open.table),
                "end each section with a COMMIT line, as iptables-save does",
            );
        }
    }

    fn begin_section(
        &mut self,
        name: &str,
        first: &Tok,
        toks: &[Tok],
        fam: Family,
    ) -> Option<Section> {
        if let Some(extra) = toks.get(1) {
            self.err(
                extra.pos,
                format!("unexpected `{}` after `{}`", extra.text, first.text),
                "a section starts with a line holding only `*TABLE`",
            );
        }
        if !TABLES.contains(&name) {
            self.err(
                first.pos,
                format!("unknown table `{name}`{}", did_you_mean(name, TABLES)),
                format!("tables are {}", TABLES.join(", ")),
            );
            return None;
        }
        self.families[fam_index(fam)] = true;
        if !self.restored.insert((fam, name.to_string())) {
            self.err(
                first.pos,
                format!(
                    "a second `*{name}` section for {}: iptables-restore would replace the first with it",
                    fam_name(fam)
                ),
                "merge the two sections into one, or import them separately",
            );
        }
        Some(Section {
            table: name.to_string(),
            pos: first.pos,
            fam,
        })
    }

    /// `:CHAIN POLICY [packets:bytes]`.
    fn chain_line(&mut self, toks: &[Tok], section: Option<&Section>) {
        let Some(first) = toks.first() else { return };
        let Some(s) = section else {
            self.err(
                first.pos,
                "chain line outside a `*table` section",
                "put `*filter` (or `*raw`) before it",
            );
            return;
        };
        let chain = first.text.trim_start_matches(':');
        let Some(policy) = toks.get(1) else {
            self.err(
                first.pos,
                format!("`{}` has no policy", first.text),
                "write `:CHAIN POLICY [0:0]`, e.g. `:FORWARD DROP [0:0]`",
            );
            return;
        };
        if let Some(extra) = toks.get(2) {
            if !is_counters(&extra.text) || toks.len() > 3 {
                self.err(
                    extra.pos,
                    format!("unexpected `{}` in a chain line", extra.text),
                    "write `:CHAIN POLICY [packets:bytes]`",
                );
            }
        }
        let (fam, table) = (s.fam, s.table.clone());
        if policy.text == "-" {
            self.new_chain(fam, &table, first, chain);
        } else {
            self.set_policy(fam, &table, first, chain, policy);
        }
    }

    fn new_chain(&mut self, fam: Family, table: &str, at: &Tok, chain: &str) {
        if builtin_chains(table).contains(&chain) {
            self.err(
                at.pos,
                format!("`{chain}` is a built-in chain of `{table}`"),
                "built-in chains exist already; give them a policy instead",
            );
            return;
        }
        self.user_chains
            .insert((fam, table.to_string(), chain.to_string()));
    }

    fn set_policy(&mut self, fam: Family, table: &str, at: &Tok, chain: &str, policy: &Tok) {
        let p = match policy.text.as_str() {
            "ACCEPT" => Policy::Accept,
            "DROP" => Policy::Drop,
            other => {
                self.err(
                    policy.pos,
                    format!("unsupported policy `{other}`"),
                    "a built-in chain's policy is ACCEPT or DROP",
                );
                return;
            }
        };
        if !builtin_chains(table).contains(&chain) {
            self.err(
                at.pos,
                format!("`{chain}` is not a built-in chain of `{table}`, so it has no policy"),
                format!(
                    "built-in chains of `{table}`: {}",
                    builtin_chains(table).join(", ")
                ),
            );
            return;
        }
        let translated = matches!(
            (table, chain),
            ("filter", "INPUT" | "FORWARD" | "OUTPUT")
                | ("raw", "PREROUTING")
                | ("mangle", "PREROUTING" | "FORWARD" | "INPUT" | "OUTPUT")
        );
        if !translated && p != Policy::Accept {
            self.err(
                policy.pos,
                format!("policy {} on `{table}` {chain} cannot be translated", policy.text),
                "statewall translates filter INPUT/FORWARD/OUTPUT, raw PREROUTING and mangle PREROUTING/FORWARD (INPUT/OUTPUT); other chains must have policy ACCEPT",
            );
            return;
        }
        self.policies
            .insert((fam, table.to_string(), chain.to_string()), p);
    }

    /// `[sudo] iptables [-t TABLE] COMMAND ...`
    fn command_line(&mut self, toks: &[Tok]) {
        let toks = match toks.first() {
            Some(t) if t.text == "sudo" => toks.get(1..).unwrap_or_default(),
            _ => toks,
        };
        let Some(first) = toks.first() else { return };
        let Some(fam) = command_family(&first.text) else {
            self.err(
                first.pos,
                format!(
                    "`{}` is neither an iptables command nor an iptables-save line",
                    first.text
                ),
                "give iptables-save / ip6tables-save output or `iptables ...` / `ip6tables ...` command lines",
            );
            return;
        };
        if let Some(f) = self.family.filter(|f| *f != fam) {
            self.err(
                first.pos,
                format!(
                    "`{}` is an {} command, but --family says {}",
                    first.text,
                    fam_name(fam),
                    fam_flag(f)
                ),
                "drop --family: a command line names its family",
            );
        }
        self.families[fam_index(fam)] = true;
        let mut table: Option<(String, Pos)> = None;
        let mut i = 1;
        while let Some(t) = toks.get(i) {
            match t.text.as_str() {
                "-t" | "--table" => {
                    let Some(v) = toks.get(i + 1) else {
                        self.err(t.pos, "`-t` needs a table name", "e.g. `-t raw`");
                        return;
                    };
                    table = Some((v.text.clone(), v.pos));
                    i += 2;
                }
                "-w" | "--wait" => {
                    i += 1;
                    if toks.get(i).is_some_and(|n| n.text.parse::<u32>().is_ok()) {
                        i += 1;
                    }
                }
                "-W" | "--wait-interval" => i += 2,
                _ => break,
            }
        }
        let end = toks.last().map_or(first.pos, |t| t.pos);
        self.command(toks.get(i..).unwrap_or_default(), end, fam, table, false);
    }

    /// A command (`-A CHAIN rule`, `-I CHAIN [N] rule`, `-P`, `-N`, `-F`, `-X`, `-Z`);
    /// `at` is where the line's missing command is reported when `toks` is empty.
    fn command(
        &mut self,
        toks: &[Tok],
        at: Pos,
        fam: Family,
        table: Option<(String, Pos)>,
        save: bool,
    ) {
        let Some(verb) = toks.first() else {
            self.err(at, "missing command", "e.g. `-A FORWARD ...`");
            return;
        };
        let rest = toks.get(1..).unwrap_or_default();
        match verb.text.as_str() {
            "-A" | "--append" | "-I" | "--insert" => {
                let Some(chain) = rest.first() else {
                    self.err(
                        verb.pos,
                        format!("`{}` needs a chain", verb.text),
                        "e.g. `-A FORWARD ...`",
                    );
                    return;
                };
                let mut spec = rest.get(1..).unwrap_or_default();
                let mut insert = None;
                if verb.is(&["-I", "--insert"]) {
                    insert = Some((1usize, verb.pos));
                    if let Some(n) = spec.first() {
                        if let Ok(k) = n.text.parse::<usize>() {
                            insert = Some((k, n.pos));
                            spec = spec.get(1..).unwrap_or_default();
                        }
                    }
                }
                let parsed = RuleParser::new(spec, fam, save, self.file, self.sets).run();
                let table = parsed.table.clone().or(table);
                let (table, table_pos) = table.unwrap_or_else(|| ("filter".to_string(), verb.pos));
                let mark = self.said();
                self.add_rule(fam, &table, table_pos, chain, insert, parsed, verb.pos);
                self.hold_since(mark, fam, &table, &chain.text);
            }
            "-P" | "--policy" => {
                let (table, rest) = self.trailing_table(rest, table);
                let (Some(chain), Some(policy)) = (rest.first(), rest.get(1)) else {
                    self.err(
                        verb.pos,
                        "`-P` needs a chain and a policy",
                        "e.g. `-P FORWARD DROP`",
                    );
                    return;
                };
                if let Some(extra) = rest.get(2) {
                    self.err(
                        extra.pos,
                        format!("unexpected `{}`", extra.text),
                        "write `-P CHAIN POLICY`",
                    );
                }
                let tname = table.map_or_else(|| "filter".to_string(), |(t, _)| t);
                if self.check_table(&tname, verb.pos) {
                    self.set_policy(fam, &tname, chain, &chain.text, policy);
                }
            }
            "-N" | "--new-chain" => {
                let (table, rest) = self.trailing_table(rest, table);
                let Some(chain) = rest.first() else {
                    self.err(verb.pos, "`-N` needs a chain name", "e.g. `-N mychain`");
                    return;
                };
                let tname = table.map_or_else(|| "filter".to_string(), |(t, _)| t);
                if self.check_table(&tname, verb.pos) {
                    self.new_chain(fam, &tname, chain, &chain.text);
                }
            }
            "-F" | "--flush" | "-X" | "--delete-chain" | "-Z" | "--zero" => {
                let (table, rest) = self.trailing_table(rest, table);
                let tname = table.map_or_else(|| "filter".to_string(), |(t, _)| t);
                if !self.check_table(&tname, verb.pos) {
                    return;
                }
                let chain = rest.first().map(|t| t.text.clone());
                if verb.is(&["-F", "--flush"]) {
                    self.entries.retain(|e| {
                        !(e.fam == fam
                            && e.table == tname
                            && chain.as_ref().is_none_or(|c| *c == e.chain))
                    });
                } else if verb.is(&["-X", "--delete-chain"]) {
                    self.user_chains.retain(|(f, t, c)| {
                        !(*f == fam && *t == tname && chain.as_ref().is_none_or(|x| x == c))
                    });
                }
            }
            "-t" | "--table" if save => self.err(
                verb.pos,
                "`-t` inside an iptables-save section",
                "the section's `*TABLE` line gives the table",
            ),
            other => {
                let hint = "import takes -A, -I, -P, -N, -F, -X and -Z; give the rules as they should end up (iptables-save output is simplest)";
                if other.starts_with('-') {
                    self.err(verb.pos, format!("unsupported command `{other}`"), hint);
                } else {
                    self.err(
                        verb.pos,
                        format!("expected a command such as `-A`, found `{other}`"),
                        hint,
                    );
                }
            }
        }
    }

    /// `-t TABLE` after a short command (`iptables -F -t raw`).
    fn trailing_table<'t>(
        &mut self,
        rest: &'t [Tok],
        table: Option<(String, Pos)>,
    ) -> (Option<(String, Pos)>, Vec<&'t Tok>) {
        let mut table = table;
        let mut out = Vec::new();
        let mut it = rest.iter();
        while let Some(t) = it.next() {
            if t.is(&["-t", "--table"]) {
                match it.next() {
                    Some(v) => table = Some((v.text.clone(), v.pos)),
                    None => self.err(t.pos, "`-t` needs a table name", "e.g. `-t raw`"),
                }
            } else if t.is(&["-w", "--wait"]) {
            } else {
                out.push(t);
            }
        }
        (table, out)
    }

    fn check_table(&mut self, table: &str, pos: Pos) -> bool {
        if TABLES.contains(&table) {
            true
        } else {
            self.err(
                pos,
                format!("unknown table `{table}`{}", did_you_mean(table, TABLES)),
                format!("tables are {}", TABLES.join(", ")),
            );
            false
        }
    }
}
