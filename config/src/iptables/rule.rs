//! One rule specification (the words after `-A CHAIN`) to a [`Rule`] and a target: the
//! parser's state, its helpers and the dispatch over options. The options' own parsers are
//! further `impl RuleParser` blocks in `options.rs` (matches) and `target.rs` (targets).

use crate::diag::{Diagnostic, Pos};
use crate::log::LogOptions;
use crate::mark::{MarkCopy, MarkValue};
use crate::matches::{CtDir, Scalar};
use crate::proto::Proto;
use crate::ruleset::{Action, Family, RejectWith, Rule};

use super::family::fam_tool;
use super::words::Tok;

/// A rule's target as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Accept,
    Drop,
    /// `None`: the default, ICMP port unreachable.
    Reject(Option<RejectWith>),
    /// `-j CT`: `notrack` and `helper` from its options.
    Ct {
        notrack: bool,
        helper: Option<String>,
    },
    Notrack,
    /// `-j RETURN`.
    Return,
    /// `-j LOG` and its options.
    Log(LogOptions),
    /// No target: the rule does what its matches do and the walk goes on.
    Continue,
    /// `-g CHAIN`.
    Goto(String),
    /// `-j MARK` and what its option sets (`None` until one is given).
    Mark(Option<MarkValue>),
    /// `-j CONNMARK` and its operation (`None` until one is given).
    ConnMark(Option<ConnMarkOp>),
    /// Anything else: a user chain or an untranslated target.
    Other(String),
}

/// What `-j CONNMARK` does to the connection's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnMarkOp {
    /// `--set-xmark` and the forms that reduce to it.
    Set(MarkValue),
    /// `--save-mark`: the packet's mark into the connection's.
    Save(MarkCopy),
    /// `--restore-mark`: the connection's mark into the packet's.
    Restore(MarkCopy),
}

/// What a rule specification parsed to.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) rule: Rule,
    pub(super) target: Option<(Target, Pos)>,
    /// `-t TABLE` given inside a command line's rule.
    pub(super) table: Option<(String, Pos)>,
    /// Interfaces named by `-i`/`-o`/`--physdev-in`/`--physdev-out`, with the position of
    /// each.
    pub(super) ifaces: Vec<(String, Pos)>,
    /// `--physdev-is-bridged`: accepted in filter FORWARD only (checked by the chain).
    pub(super) physdev_bridged: Option<Pos>,
    pub(super) errs: Vec<Diagnostic>,
    /// Matches that are never or always true for forwarded traffic (`-i lo`, `--ctstate
    /// DNAT`), said as warnings.
    pub(super) warns: Vec<Diagnostic>,
    /// A match that never holds for forwarded traffic: the rule never matches and is left
    /// out (its warning says why).
    pub(super) never: bool,
}

/// Options that are not part of a match module or target (where skipping an untranslated
/// module's options stops).
const GENERAL_OPTS: &[&str] = &[
    "-s",
    "--source",
    "--src",
    "-d",
    "--destination",
    "--dst",
    "-i",
    "--in-interface",
    "-o",
    "--out-interface",
    "-p",
    "--protocol",
    "-m",
    "--match",
    "-j",
    "--jump",
    "-g",
    "--goto",
    "-f",
    "--fragment",
    "-t",
    "--table",
    "-4",
    "--ipv4",
    "-6",
    "--ipv6",
    "-c",
    "--set-counters",
    "-w",
    "--wait",
];

pub(super) const SUPPORTED_MATCHES: &str =
    "statewall translates -m state, conntrack (--ctstate, --ctdir), multiport, tcp, udp, icmp, icmp6, physdev (--physdev-in, --physdev-out), iprange (--src-range, --dst-range), limit (--limit, --limit-burst), recent, set (--match-set NAME src|dst, with --ipset), hashlimit, addrtype, tcpmss, length, ttl, hl, rt (--rt-type), mac (--mac-source), pkttype, mark, connmark (--mark) and comment";

const OTHER_CT_OPTS: &[&str] = &[
    "--ctproto",
    "--ctorigsrc",
    "--ctorigdst",
    "--ctreplsrc",
    "--ctrepldst",
    "--ctorigsrcport",
    "--ctorigdstport",
    "--ctreplsrcport",
    "--ctrepldstport",
    "--ctstatus",
    "--ctexpire",
];

pub(super) struct RuleParser<'t> {
    pub(super) toks: &'t [Tok],
    pub(super) i: usize,
    pub(super) fam: Family,
    /// iptables-save line (no `-t` allowed) rather than a command line.
    pub(super) save: bool,
    pub(super) file: &'t str,
    pub(super) neg: Option<Pos>,
    pub(super) modules: Vec<String>,
    pub(super) skipping: bool,
    /// `-m recent`: where it was loaded, its command (and where), its `--name`.
    pub(super) recent_at: Option<Pos>,
    pub(super) recent_cmd: Option<(String, Pos)>,
    pub(super) recent_name: Option<String>,
    /// Where `-m hashlimit` was loaded.
    pub(super) hashlimit_at: Option<Pos>,
    /// `--ipset`'s sets (`None`: none given).
    pub(super) sets: Option<&'t crate::sets::Sets>,
    pub(super) out: Parsed,
}

pub(super) fn set_once<T>(
    errs: &mut Vec<Diagnostic>,
    file: &str,
    slot: &mut Option<T>,
    value: T,
    opt: &Tok,
    what: &str,
) {
    if slot.is_some() {
        errs.push(
            Diagnostic::error(
                file,
                opt.pos,
                format!("`{}` gives a second {what} match in one rule", opt.text),
            )
            .with_hint(format!(
                "statewall has one {what} match per rule; merge the values into one list or split the rule"
            )),
        );
    } else {
        *slot = Some(value);
    }
}

impl<'t> RuleParser<'t> {
    pub(super) fn new(
        toks: &'t [Tok],
        fam: Family,
        save: bool,
        file: &'t str,
        sets: Option<&'t crate::sets::Sets>,
    ) -> Self {
        RuleParser {
            toks,
            i: 0,
            fam,
            save,
            file,
            neg: None,
            modules: Vec::new(),
            skipping: false,
            recent_at: None,
            recent_cmd: None,
            recent_name: None,
            hashlimit_at: None,
            sets,
            out: Parsed {
                rule: Rule::new(Action::Accept),
                target: None,
                table: None,
                ifaces: Vec::new(),
                physdev_bridged: None,
                errs: Vec::new(),
                warns: Vec::new(),
                never: false,
            },
        }
    }

    pub(super) fn err(&mut self, pos: Pos, msg: impl Into<String>, hint: impl Into<String>) {
        self.out
            .errs
            .push(Diagnostic::error(self.file, pos, msg).with_hint(hint));
    }

    pub(super) fn next(&mut self) -> Option<&'t Tok> {
        let t = self.toks.get(self.i)?;
        self.i += 1;
        Some(t)
    }

    /// The option's value; `--opt ! value` (the old negation syntax) negates.
    pub(super) fn value(&mut self, opt: &Tok) -> Option<&'t Tok> {
        let old_neg = opt.text != "--comment"
            && self
                .toks
                .get(self.i)
                .is_some_and(|t| t.text == "!" && t.plain);
        if old_neg && self.toks.len() > self.i + 1 {
            if let Some(t) = self.toks.get(self.i) {
                if self.neg.is_some() {
                    self.err(t.pos, "`!` given twice", "negate an option once");
                }
                self.neg = Some(t.pos);
            }
            self.i += 1;
        }
        let v = self.next();
        if let Some(t) = v {
            if t.expands {
                self.err(
                    t.pos,
                    format!(
                        "`{}` uses a shell expansion, which import does not perform",
                        t.text
                    ),
                    "write the value itself, or run the script and import iptables-save's output",
                );
                return None;
            }
        }
        if v.is_none() {
            self.err(
                opt.pos,
                format!("`{}` needs a value", opt.text),
                format!("write `{} VALUE`", opt.text),
            );
        }
        v
    }

    pub(super) fn take_neg(&mut self) -> bool {
        self.neg.take().is_some()
    }

    pub(super) fn no_neg(&mut self, opt: &Tok) {
        if let Some(p) = self.neg.take() {
            self.err(
                p,
                format!("`!` cannot negate `{}`", opt.text),
                "remove the `!`",
            );
        }
    }

    fn proto_is(&self, protos: &[Proto]) -> bool {
        self.out
            .rule
            .proto
            .as_ref()
            .is_some_and(|m| !m.negated && m.values.iter().all(|p| protos.contains(p)))
    }

    /// Whether a module option may be used: its module is loaded or implied by `-p`.
    pub(super) fn warn(&mut self, pos: Pos, msg: impl Into<String>, hint: impl Into<String>) {
        self.out
            .warns
            .push(Diagnostic::warning(self.file, pos, msg).with_hint(hint));
    }

    pub(super) fn needs(&mut self, opt: &Tok, modules: &[&str], protos: &[Proto], what: &str) {
        let loaded = self.modules.iter().any(|m| modules.contains(&m.as_str()));
        if !loaded && !self.proto_is(protos) {
            self.err(
                opt.pos,
                format!("`{}` needs {what} before it", opt.text),
                format!("add {what}, as iptables requires"),
            );
        }
    }

    /// A comma list of values, each parsed as `T`, errors at the item's column.
    pub(super) fn list<T: Scalar>(&mut self, opt: &Tok, v: &Tok) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut off = 0;
        for item in v.text.split(',') {
            match T::parse_str(item.trim()) {
                Ok(x) => out.push(x),
                Err(msg) => {
                    ok = false;
                    self.err(
                        v.at(off),
                        format!("`{} {}`: {msg}", opt.text, v.text),
                        format!("write {}", T::EXPECTING),
                    );
                }
            }
            off += item.chars().count() + 1;
        }
        ok.then_some(out)
    }

    pub(super) fn run(mut self) -> Parsed {
        while let Some(tok) = self.next() {
            let t = tok.text.as_str();
            if self.skipping {
                let general = tok.is(GENERAL_OPTS)
                    || (t == "!" && self.toks.get(self.i).is_some_and(|n| n.is(GENERAL_OPTS)));
                if !general {
                    continue;
                }
                self.skipping = false;
            }
            if tok.expands {
                self.err(
                    tok.pos,
                    format!("`{t}` uses a shell expansion, which import does not perform"),
                    "write the value itself, or run the script and import iptables-save's output",
                );
                continue;
            }
            if t == "!" {
                if self.neg.is_some() {
                    self.err(tok.pos, "`!` given twice", "negate an option once");
                }
                self.neg = Some(tok.pos);
                continue;
            }
            self.option(tok);
        }
        if let Some(p) = self.neg {
            self.err(p, "`!` at the end of the rule negates nothing", "remove it");
        }
        self.finish_recent();
        self.finish_hashlimit();
        self.finish_mark();
        self.out
    }

    fn option(&mut self, tok: &'t Tok) {
        match tok.text.as_str() {
            "-s" | "--source" | "--src" => self.addr(tok, true),
            "-d" | "--destination" | "--dst" => self.addr(tok, false),
            "-i" | "--in-interface" => self.iface(tok, true),
            "-o" | "--out-interface" => self.iface(tok, false),
            "--physdev-in" | "--physdev-out" => {
                self.needs(tok, &["physdev"], &[], "`-m physdev`");
                self.iface(tok, tok.text == "--physdev-in");
            }
            "--physdev-is-bridged" => {
                self.needs(tok, &["physdev"], &[], "`-m physdev`");
                if let Some(p) = self.neg.take() {
                    self.err(
                        p,
                        "`! --physdev-is-bridged` cannot be translated",
                        "a bump-in-the-wire gateway bridges every packet it forwards, so the rule would never match; remove it",
                    );
                } else {
                    self.out.physdev_bridged = Some(tok.pos);
                }
            }
            "--physdev-is-in" | "--physdev-is-out" => {
                self.needs(tok, &["physdev"], &[], "`-m physdev`");
                self.neg = None;
                self.err(
                    tok.pos,
                    format!("unsupported physdev option `{}`", tok.text),
                    "statewall translates --physdev-in NAME and --physdev-out NAME (ports); name the port instead",
                );
            }
            "-p" | "--protocol" => self.proto(tok),
            "-m" | "--match" => self.module(tok),
            "-j" | "--jump" => self.jump(tok),
            "-g" | "--goto" => self.goto(tok),
            "-f" | "--fragment" => {
                self.neg = None;
                self.err(
                    tok.pos,
                    "unsupported match `-f` (IP fragments)",
                    "statewall tracks reassembled flows only; remove the fragment rule",
                );
            }
            "-t" | "--table" => {
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                if self.save {
                    self.err(
                        tok.pos,
                        "`-t` inside an iptables-save section",
                        "the section's `*TABLE` line gives the table",
                    );
                } else if self.out.table.is_some() {
                    self.err(tok.pos, "`-t` given twice", "give the table once");
                } else {
                    self.out.table = Some((v.text.clone(), v.pos));
                }
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => {
                self.no_neg(tok);
                let want = if tok.is(&["-4", "--ipv4"]) {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                if want != self.fam {
                    self.err(
                        tok.pos,
                        format!(
                            "`{}` in an {} rule: {} skips this rule",
                            tok.text,
                            fam_tool(self.fam),
                            fam_tool(self.fam)
                        ),
                        "remove the rule, or move it to the other family's input",
                    );
                }
            }
            "-c" | "--set-counters" => {
                self.no_neg(tok);
                if let Some(v) = self.value(tok) {
                    if !v.text.contains(',') {
                        let _ = self.value(tok);
                    }
                }
            }
            "-w" | "--wait" => {
                self.no_neg(tok);
                if self
                    .toks
                    .get(self.i)
                    .is_some_and(|t| t.text.parse::<u32>().is_ok())
                {
                    self.i += 1;
                }
            }
            "--state" => {
                self.needs(tok, &["state"], &[], "`-m state`");
                self.ctstate(tok);
            }
            "--ctstate" => {
                self.needs(tok, &["conntrack"], &[], "`-m conntrack`");
                self.ctstate(tok);
            }
            "--ctdir" => {
                self.needs(tok, &["conntrack"], &[], "`-m conntrack`");
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                let dir = match v.text.to_ascii_uppercase().as_str() {
                    "ORIGINAL" => CtDir::Original,
                    "REPLY" => CtDir::Reply,
                    _ => {
                        self.err(
                            v.pos,
                            format!("unknown `--ctdir {}`", v.text),
                            "write ORIGINAL or REPLY",
                        );
                        return;
                    }
                };
                set_once(
                    &mut self.out.errs,
                    self.file,
                    &mut self.out.rule.ctdir,
                    dir,
                    tok,
                    "ctdir",
                );
            }
            t if OTHER_CT_OPTS.contains(&t) => {
                self.neg = None;
                let _ = self.value(tok);
                self.err(
                    tok.pos,
                    format!("unsupported conntrack option `{t}`"),
                    "statewall matches --ctstate and --ctdir only; rewrite the rule with addresses, ports and states",
                );
            }
            "--dports" | "--destination-ports" | "--sports" | "--source-ports" | "--ports" => {
                self.needs(tok, &["multiport"], &[], "`-m multiport`");
                self.ports(tok);
            }
            "--dport" | "--destination-port" | "--sport" | "--source-port" => {
                self.needs(
                    tok,
                    &["tcp", "udp"],
                    &[Proto::TCP, Proto::UDP],
                    "`-p tcp` or `-p udp`",
                );
                self.ports(tok);
            }
            "--syn" => {
                self.needs(tok, &["tcp"], &[Proto::TCP], "`-p tcp`");
                let neg = self.take_neg();
                set_once(
                    &mut self.out.errs,
                    self.file,
                    &mut self.out.rule.syn,
                    !neg,
                    tok,
                    "TCP flags",
                );
            }
            "--tcp-flags" => {
                self.needs(tok, &["tcp"], &[Proto::TCP], "`-p tcp`");
                self.tcp_flags(tok);
            }
            "--tcp-option" => {
                self.neg = None;
                let _ = self.value(tok);
                self.err(
                    tok.pos,
                    "unsupported option `--tcp-option`",
                    "statewall matches TCP flags, not TCP options; remove the rule",
                );
            }
            "--icmp-type" => {
                self.needs(tok, &["icmp"], &[Proto::ICMP], "`-p icmp`");
                self.icmp(tok, false);
            }
            "--icmpv6-type" => {
                self.needs(tok, &["icmp6"], &[Proto::ICMPV6], "`-p icmpv6`");
                self.icmp(tok, true);
            }
            "--limit" | "--limit-burst" => {
                self.needs(tok, &["limit"], &[], "`-m limit`");
                self.limit(tok);
            }
            "--src-range" | "--dst-range" => {
                self.needs(tok, &["iprange"], &[], "`-m iprange`");
                self.range(tok, tok.text == "--src-range");
            }
            "--length" => {
                self.needs(tok, &["length"], &[], "`-m length`");
                self.length(tok);
            }
            "--ttl-eq" | "--ttl-lt" | "--ttl-gt" => {
                self.needs(tok, &["ttl"], &[], "`-m ttl`");
                self.ttl(tok);
            }
            "--hl-eq" | "--hl-lt" | "--hl-gt" => {
                self.needs(tok, &["hl"], &[], "`-m hl`");
                self.ttl(tok);
            }
            "--rt-type" | "--rt-segsleft" | "--rt-len" | "--rt-0-res" | "--rt-0-addrs"
            | "--rt-0-not-strict" => {
                self.needs(tok, &["rt"], &[], "`-m rt`");
                self.rt(tok);
            }
            "--match-set"
            | "--return-nomatch"
            | "--update-counters"
            | "--update-subcounters"
            | "--packets-eq"
            | "--packets-lt"
            | "--packets-gt"
            | "--bytes-eq"
            | "--bytes-lt"
            | "--bytes-gt" => {
                self.needs(tok, &["set"], &[], "`-m set`");
                self.set_option(tok);
            }
            t if t.starts_with("--hashlimit") => {
                self.needs(tok, &["hashlimit"], &[], "`-m hashlimit`");
                self.hashlimit_option(tok);
            }
            "--src-type" | "--dst-type" | "--limit-iface-in" | "--limit-iface-out" => {
                self.needs(tok, &["addrtype"], &[], "`-m addrtype`");
                self.addrtype(tok);
            }
            "--mss" => {
                self.needs(tok, &["tcpmss"], &[], "`-m tcpmss`");
                self.tcpmss(tok);
            }
            "--mac-source" => {
                self.needs(tok, &["mac"], &[], "`-m mac`");
                self.mac(tok);
            }
            "--pkt-type" => {
                self.needs(tok, &["pkttype"], &[], "`-m pkttype`");
                self.pkttype(tok);
            }
            "--mark" => self.mark_match(tok),
            "--mask" if matches!(self.out.target, Some((Target::ConnMark(_), _))) => {
                self.mark_target_option(tok);
            }
            t if super::mark::is_target_option(t) => self.mark_target_option(tok),
            "--set" | "--rcheck" | "--update" | "--remove" | "--seconds" | "--hitcount"
            | "--reap" | "--rsource" | "--rdest" | "--name" | "--mask" | "--rttl" => {
                self.needs(tok, &["recent"], &[], "`-m recent`");
                self.recent_option(tok);
            }
            "--comment" => {
                self.needs(tok, &["comment"], &[], "`-m comment`");
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                let c = match self.out.rule.comment.take() {
                    Some(prev) => format!("{prev}; {}", v.text),
                    None => v.text.clone(),
                };
                self.out.rule.comment = Some(c);
            }
            "--reject-with" => self.reject_with(tok),
            "--notrack" | "--helper" => self.ct_option(tok),
            t if t.starts_with("--log-") => self.log_option(tok),
            t => {
                self.neg = None;
                let (msg, hint) = if t.starts_with('-') {
                    (
                        format!("unknown or unsupported option `{t}`"),
                        format!(
                            "{SUPPORTED_MATCHES}; targets ACCEPT, DROP, REJECT, RETURN, LOG, MARK, CONNMARK, CT --notrack/--helper ftp and NOTRACK"
                        ),
                    )
                } else {
                    (
                        format!("unexpected `{t}` where an option was expected"),
                        "options start with `-`; quote values that contain spaces".to_string(),
                    )
                };
                self.err(tok.pos, msg, hint);
            }
        }
    }
}
