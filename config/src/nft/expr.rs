//! One nftables rule's expressions to a statewall [`Rule`]: its matches (`ct state`, `meta
//! iifname`, `ip saddr`, `tcp dport`, `icmp type`, `tcp flags`, anonymous and named sets)
//! and its statements (`counter`, `limit`, `log`, verdicts, `reject`, `jump`/`goto`/`return`,
//! `notrack`, `ct helper set`). What has no statewall counterpart is an error naming it.
//!
//! `log` goes on to the rule's next statement, as a statewall `log` rule goes on to the next
//! rule: a rule that logs and decides becomes two rules with the same matches, the `log`
//! one first. A `limit` stays with the statement after it (`limit ... log` limits the
//! logging, `log ... limit ... drop` the verdict); one before both cannot be split.

use serde_json::Value;

use crate::limit::{Limit, Rate};
use crate::log::{LogLevel, LogOptions};
use crate::mark::{MarkCopy, MarkValue};
use crate::matches::{
    flags_from_bits, Cidr, CtDir, CtState, Icmp4Type, Icmp6Type, IcmpType, Match, PortName,
    PortRange, Scalar, TcpFlag, TcpFlagsMatch,
};
use crate::packet_matches::{MacAddr, PktType, Range};
use crate::proto::Proto;
use crate::ruleset::{Action, Family, RejectWith, Rule};

use super::json::{show, single, text};
use super::Tables;

/// What a rule translates to.
#[derive(Debug)]
pub(super) enum Translated {
    /// One rule, or a `log` rule and the rule that decides.
    Rules(Vec<Rule>),
    /// A rule with a match never true for forwarded traffic, left out (its warning says so).
    Never,
    /// `tcp dport N ct helper set "NAME"` with a helper of type ftp: N is an FTP control port.
    FtpPort(u16),
}

/// A translated rule with what it names and says.
pub(super) struct Done {
    pub(super) translated: Translated,
    pub(super) ifaces: Vec<String>,
    pub(super) warns: Vec<String>,
}

/// An error about one rule: the message and a hint.
pub(super) type Fail = (String, String);

fn fail<T>(msg: impl Into<String>, hint: impl Into<String>) -> Result<T, Fail> {
    Err((msg.into(), hint.into()))
}

/// One value of a match's right-hand side, sets unfolded.
#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Num(i64),
    Range(Box<Val>, Box<Val>),
    Prefix(String, i64),
}

impl Val {
    fn show(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(n) => n.to_string(),
            Val::Range(a, b) => format!("{}-{}", a.show(), b.show()),
            Val::Prefix(a, l) => format!("{a}/{l}"),
        }
    }
}

/// The rule being built, with what the table's family and earlier matches imply.
pub(super) struct Builder<'a> {
    pub(super) rule: Rule,
    /// The family of the rule's table: `ip` and `ip6` tables hold one family's rules.
    pub(super) table_family: Option<Family>,
    pub(super) tables: &'a Tables,
    pub(super) family: &'a str,
    pub(super) table: &'a str,
    /// Interfaces named, for the ports.
    pub(super) ifaces: Vec<String>,
    verdict: Option<Action>,
    helper: Option<String>,
    /// `log`'s options, and whether a `limit` came before it.
    log: Option<(LogOptions, bool)>,
    /// `meta mark set`/`ct mark set` statements, in order, and how many came before `log`
    /// and before `limit`.
    marks: Vec<Action>,
    marks_before_log: usize,
    marks_before_limit: Option<usize>,
    /// What the translation changed, for warnings (`iifname "lo"`).
    pub(super) warns: Vec<String>,
    /// A match never true for forwarded traffic: the rule is left out.
    never: bool,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        family: &'a str,
        table: &'a str,
        table_family: Option<Family>,
        tables: &'a Tables,
    ) -> Self {
        Builder {
            rule: Rule::new(Action::Accept),
            table_family,
            tables,
            family,
            table,
            ifaces: Vec::new(),
            verdict: None,
            helper: None,
            log: None,
            marks: Vec::new(),
            marks_before_log: 0,
            marks_before_limit: None,
            warns: Vec::new(),
            never: false,
        }
    }

    /// Every expression of the rule, then what it came to, the interfaces it names and its
    /// warnings.
    pub(super) fn run(mut self, exprs: &[Value]) -> Result<Done, Fail> {
        let t = self.translate(exprs)?;
        Ok(Done {
            translated: if self.never { Translated::Never } else { t },
            ifaces: std::mem::take(&mut self.ifaces),
            warns: self.warns,
        })
    }

    fn translate(&mut self, exprs: &[Value]) -> Result<Translated, Fail> {
        for e in exprs {
            if self.verdict.is_some() || self.helper.is_some() {
                return fail(
                    format!("`{}` after the rule's verdict", show(e)),
                    "statements after a verdict never run; remove them",
                );
            }
            let Some((kind, body)) = single(e) else {
                return fail(
                    format!("unexpected expression `{e}`"),
                    "give `nft -j list ruleset` output",
                );
            };
            match kind {
                "match" => self.matched(body)?,
                "counter" => {}
                "accept" => self.verdict = Some(Action::Accept),
                "drop" => self.verdict = Some(Action::Drop),
                "return" => self.verdict = Some(Action::Return),
                "notrack" => self.verdict = Some(Action::Notrack),
                "reject" => {
                    self.rule.reject_with = reject_with(body)?;
                    self.verdict = Some(Action::Reject);
                }
                "jump" | "goto" => {
                    let Some(target) = text(body, "target") else {
                        return fail(format!("`{kind}` without a target"), "write `jump CHAIN`");
                    };
                    let name = self.tables.chain_name(self.family, self.table, target).ok_or_else(|| {
                        (
                            format!("`{kind} {target}`: no chain `{target}` in table {} {}", self.family, self.table),
                            "jump to a chain of the same table".to_string(),
                        )
                    })?;
                    self.verdict = Some(if kind == "jump" {
                        Action::Jump(name)
                    } else {
                        Action::Goto(name)
                    });
                }
                "mangle" => self.mangle(body)?,
                // nft 1.0's JSON for `ct helper set "NAME"`.
                "ct helper" => match body.as_str() {
                    Some(name) => self.helper(name)?,
                    None => return fail("`ct helper` without a name", "write `ct helper set \"NAME\"`"),
                },
                "log" => {
                    if self.log.is_some() {
                        return fail("a second `log` in one rule", "log once per rule");
                    }
                    self.log = Some((Self::log_options(body)?, self.rule.limit.is_some()));
                    self.marks_before_log = self.marks.len();
                }
                "limit" => {
                    if self.rule.limit.is_some() {
                        return fail("a second `limit` in one rule", "limit once per rule");
                    }
                    self.rule.limit = Some(Self::limit(body)?);
                    self.marks_before_limit = Some(self.marks.len());
                }
                "masquerade" | "snat" | "dnat" | "redirect" => {
                    return fail(format!("unsupported statement `{kind}`"), "statewall does no NAT")
                }
                "continue" => {
                    return fail(
                        "unsupported verdict `continue`",
                        "leave it out: a rule without a verdict goes on to the next",
                    )
                }
                other => {
                    return fail(
                        format!("unsupported statement `{other}`"),
                        "statewall translates matches, counter, log, limit, accept, drop, reject, jump, goto, return, notrack, `meta mark set`, `ct mark set` and `ct helper set`",
                    )
                }
            }
        }
        if let Some(h) = self.helper.take() {
            return self.ftp_port(&h);
        }
        let verdict = self.verdict.take();
        if self
            .marks_before_limit
            .is_some_and(|k| k < self.marks.len())
        {
            return fail(
                "a mark set after `limit` cannot be translated",
                "statewall's mark rule and the rule after it would each take a token; set the mark before the limit, or split the rule in two",
            );
        }
        if verdict.is_none() && self.log.is_none() && self.marks.is_empty() {
            return fail(
                "rule without a verdict",
                "a rule that only counts has no statewall equivalent; add `accept`/`drop` or remove it",
            );
        }
        // The family as import-iptables writes it: only where no match implies it.
        let explicit = self.rule.family.take().or(self.table_family);
        if self.rule.implied_family().is_none() {
            self.rule.family = explicit;
        }
        let mut rule = std::mem::replace(&mut self.rule, Rule::new(Action::Accept));
        let mut rules = Vec::new();
        // Marks set before `log` (it prints them), then the log, then the rest.
        let marked = |a: Action| {
            let mut m = rule.clone();
            m.action = a;
            m.limit = None;
            m
        };
        let before = if self.log.is_some() {
            self.marks_before_log
        } else {
            usize::MAX
        };
        // Each statement becomes a rule with the same matches, so a mark the rule tests must
        // not change before the last of them.
        let last =
            self.marks.len() + usize::from(self.log.is_some()) + usize::from(verdict.is_some());
        let changes_tested = self.marks.iter().enumerate().any(|(i, a)| {
            let at = if i >= before { i + 1 } else { i };
            at + 1 < last
                && match a {
                    Action::Mark(_) | Action::RestoreMark(_) => rule.mark.is_some(),
                    Action::ConnMark(_) | Action::SaveMark(_) => rule.connmark.is_some(),
                    _ => false,
                }
        });
        if changes_tested {
            return fail(
                "a rule that sets a mark it matches, and then does more, cannot be translated",
                "statewall makes each statement a rule with this rule's matches, and the later ones would test the changed mark: make the mark set the rule's last statement, or move what follows it into a chain the rule jumps to",
            );
        }
        let mut marks = std::mem::take(&mut self.marks).into_iter();
        rules.extend(marks.by_ref().take(before).map(marked));
        if let Some((opts, limited)) = self.log.take() {
            let mut log = rule.clone();
            log.action = Action::Log;
            log.log = Some(opts).filter(|o| *o != LogOptions::default());
            match (limited, &verdict) {
                // `limit ... log`: the limit is the log's.
                (true, None) => {}
                (true, Some(v)) => {
                    return fail(
                        format!("a `limit` before both `log` and `{}` cannot be translated", v.name()),
                        "statewall's log rule and the rule that decides would each take a token; write the limit after `log` (it then limits the verdict), or split the rule in two",
                    )
                }
                // `log ... limit ... VERDICT`: the limit is the verdict's.
                (false, _) => log.limit = None,
            }
            rules.push(log);
        }
        rules.extend(marks.map(marked));
        if let Some(v) = verdict {
            rule.action = v;
            rules.push(rule);
        }
        Ok(Translated::Rules(rules))
    }

    /// `limit rate [over] N/UNIT [burst M packets]`: packet rates only.
    fn limit(body: &Value) -> Result<Limit, Fail> {
        if body.get("inv").and_then(Value::as_bool) == Some(true) {
            return fail(
            "unsupported `limit rate over`",
            "statewall's limit matches packets within the rate; write the rule for those, with `limit rate`",
        );
        }
        if let Some(u) = text(body, "rate_unit").filter(|u| *u != "packets") {
            return fail(
                format!("unsupported byte rate (`{u}/...`)"),
                "statewall limits packets per time unit, as iptables' -m limit",
            );
        }
        let count = body.get("rate").and_then(Value::as_u64).unwrap_or(0);
        let per = text(body, "per").unwrap_or("second");
        let mut l = Limit::new(
            format!("{count}/{per}")
                .parse::<Rate>()
                .or_else(|e| fail(e, "write the rate per second, minute, hour or day"))?,
        );
        if let Some(b) = body.get("burst").and_then(Value::as_u64).filter(|b| *b > 0) {
            if b > u64::from(crate::limit::MAX_BURST) {
                return fail(
                    format!("burst {b} is too large"),
                    format!("at most {}", crate::limit::MAX_BURST),
                );
            }
            l.burst = b as u32;
        }
        Ok(l)
    }

    /// `log [prefix "P"] [level L] [flags ...]`; `log group N` is NFLOG's, not translated.
    fn log_options(body: &Value) -> Result<LogOptions, Fail> {
        if body.get("group").is_some() {
            return fail(
                "unsupported `log group` (nflog)",
                "statewall writes log lines (statewallctl log, journald); leave out `group`",
            );
        }
        let mut o = LogOptions {
            prefix: text(body, "prefix").map(str::to_string),
            ..LogOptions::default()
        };
        if let Some(l) = text(body, "level") {
            if l == "audit" {
                return fail(
                    "unsupported `log level audit`",
                    "use a syslog level: emerg to debug",
                );
            }
            o.level = l
                .parse::<LogLevel>()
                .or_else(|e| fail(e, "use a syslog level: emerg to debug"))?;
        }
        let flags: Vec<&str> = match body.get("flags") {
            Some(Value::String(f)) => vec![f.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for f in flags {
            match f {
                "tcp sequence" => o.tcp_sequence = true,
                "tcp options" => o.tcp_options = true,
                "ip options" => o.ip_options = true,
                "all" => {
                    (o.tcp_sequence, o.tcp_options, o.ip_options) = (true, true, true);
                }
                // No socket for forwarded packets; the MAC header is always written.
                "skuid" | "ether" => {}
                other => {
                    return fail(
                        format!("unknown log flag `{other}`"),
                        "flags: tcp sequence, tcp options, ip options, skuid, ether, all",
                    )
                }
            }
        }
        if let Some(p) = o.problem() {
            return fail(p, "shorten the prefix to printable text");
        }
        Ok(o)
    }

    /// `meta mark set ...`, `ct mark set ...` ([`mark_set`]), and `ct helper set "NAME"`
    /// (the helper object must be of type ftp over TCP).
    fn mangle(&mut self, body: &Value) -> Result<(), Fail> {
        if let (Some(ct), Some(v)) = (body.get("key").and_then(mark_key), body.get("value")) {
            let a = mark_set(ct, v)?;
            self.marks.push(a);
            return Ok(());
        }
        let is_helper = body
            .get("key")
            .and_then(|k| k.get("ct"))
            .and_then(|c| text(c, "key"))
            == Some("helper");
        let Some(name) = body
            .get("value")
            .and_then(Value::as_str)
            .filter(|_| is_helper)
        else {
            return fail(
                format!(
                    "unsupported statement `{} set ...`",
                    body.get("key").map_or_else(String::new, show)
                ),
                "statewall sets `meta mark`, `ct mark` and `ct helper` (ftp); it does not modify packets",
            );
        };
        self.helper(name)
    }

    /// `ct helper set "NAME"`: the helper object must be of type ftp.
    fn helper(&mut self, name: &str) -> Result<(), Fail> {
        match self.tables.helper_type(self.family, self.table, name) {
            Some("ftp") => {
                self.helper = Some(name.to_string());
                Ok(())
            }
            Some(other) => fail(
                format!("unsupported conntrack helper type `{other}`"),
                "statewall has the FTP helper only",
            ),
            None => fail(
                format!(
                    "`ct helper set \"{name}\"`: no ct helper `{name}` in table {} {}",
                    self.family, self.table
                ),
                "declare it: `ct helper NAME { type \"ftp\" protocol tcp; }`",
            ),
        }
    }

    fn ftp_port(&self, helper: &str) -> Result<Translated, Fail> {
        let only_port = |r: &Rule| {
            let mut probe = Rule::new(r.action.clone());
            probe.proto.clone_from(&r.proto);
            probe.dport.clone_from(&r.dport);
            probe.family = r.family;
            probe == *r && r.proto == Some(Match::new(vec![Proto::TCP]))
        };
        let port = self
            .rule
            .dport
            .as_ref()
            .and_then(|m| match m.values.as_slice() {
                [p] if !m.negated && p.lo == p.hi => Some(p.lo),
                _ => None,
            });
        match port {
            Some(p) if only_port(&self.rule) => Ok(Translated::FtpPort(p)),
            _ => fail(
                format!("`ct helper set \"{helper}\"` is translated only as `tcp dport PORT ct helper set \"{helper}\"`"),
                "statewall's FTP helper watches TCP control ports for all addresses and interfaces: list them under helpers.ftp.ports",
            ),
        }
    }

    /// `{"match": {"op", "left", "right"}}`.
    fn matched(&mut self, body: &Value) -> Result<(), Fail> {
        let op = text(body, "op").unwrap_or("==");
        let (Some(left), Some(right)) = (body.get("left"), body.get("right")) else {
            return fail(
                "a match without left and right",
                "give `nft -j list ruleset` output",
            );
        };
        let negated = match op {
            "==" | "in" => false,
            "!=" => true,
            "<" | "<=" | ">" | ">=" => return self.port_compare(left, op, right),
            other => {
                return fail(
                    format!("unsupported operator `{other}`"),
                    "statewall translates ==, !=, in and port comparisons",
                )
            }
        };
        let what = show(left);
        if let Some((ct, mask)) = mark_left(left)? {
            let vals = self.values(right)?;
            let mut marks = Vec::new();
            for v in &vals {
                let Val::Num(n) = v else {
                    return fail(
                        format!("`{what} {}` is not a mark", v.show()),
                        "a mark is a 32-bit number",
                    );
                };
                let value = u32::try_from(*n).or_else(|_| {
                    fail(
                        format!("mark {n} is not a 32-bit number"),
                        "a mark is a number from 0 to 0xffffffff",
                    )
                })?;
                marks.push(MarkValue { value, mask });
            }
            let slot = if ct {
                &mut self.rule.connmark
            } else {
                &mut self.rule.mark
            };
            return set_once(slot, list(marks, negated), &what);
        }
        if let Some((m, mask)) =
            left.get("&")
                .and_then(Value::as_array)
                .and_then(|a| match a.as_slice() {
                    [m, f] => Some((m, f)),
                    _ => None,
                })
        {
            return self.tcp_flags(m, mask, right, negated);
        }
        let plain_flags = left.get("payload").is_some_and(|p| {
            text(p, "protocol") == Some("tcp") && text(p, "field") == Some("flags")
        });
        if plain_flags {
            return self.plain_tcp_flags(op, right, negated);
        }
        let vals = self.values(right)?;
        if let Some(ct) = left.get("ct") {
            return match text(ct, "key") {
                Some("state") => {
                    let states = vals
                        .iter()
                        .map(|v| {
                            CtState::parse_str(&v.show())
                                .map_err(|e| (e, "nft's ct states are the kernel's".to_string()))
                        })
                        .collect::<Result<Vec<_>, Fail>>()?;
                    set_once(&mut self.rule.ctstate, list(states, negated), "ct state")
                }
                Some("direction") => {
                    let dir = match (vals.as_slice(), negated) {
                        ([Val::Str(d)], n) => match (d.as_str(), n) {
                            ("original", false) | ("reply", true) => CtDir::Original,
                            ("reply", false) | ("original", true) => CtDir::Reply,
                            _ => {
                                return fail(
                                    format!("unknown ct direction `{d}`"),
                                    "original or reply",
                                )
                            }
                        },
                        _ => {
                            return fail("`ct direction` with several values", "original or reply")
                        }
                    };
                    if self.rule.ctdir.replace(dir).is_some() {
                        return fail("two `ct direction` matches in one rule", "keep one");
                    }
                    Ok(())
                }
                _ => fail(
                    format!("unsupported match `{what}`"),
                    "statewall translates ct state and ct direction",
                ),
            };
        }
        if let Some(meta) = left.get("meta") {
            return match text(meta, "key") {
                Some(k @ ("iifname" | "oifname")) => {
                    let mut names = Vec::new();
                    for v in &vals {
                        let Val::Str(n) = v else {
                            return fail(
                                format!("`{k} {}` is not an interface name", v.show()),
                                "",
                            );
                        };
                        // A wildcard (`eth*`; `\*` is a literal star): the ports whose
                        // interfaces start with the prefix, once they are known.
                        if let Some(prefix) = n.strip_suffix('*').filter(|p| !p.ends_with('\\')) {
                            names.push(PortName(format!("{prefix}+")));
                            continue;
                        }
                        if n == "lo" {
                            continue; // never a forwarded packet's interface
                        }
                        self.ifaces.push(n.clone());
                        names.push(PortName(n.clone()));
                    }
                    if names.len() < vals.len() {
                        let note = match (names.is_empty(), negated) {
                            (true, false) => {
                                self.never = true;
                                "never true for forwarded traffic: the rule is left out"
                            }
                            (true, true) => "always true for forwarded traffic: the match is left out",
                            (false, _) => "`lo` is never a forwarded packet's interface: it is left out of the list",
                        };
                        self.warns.push(format!(
                            "`{k} {}lo`: {note}",
                            if negated { "!= " } else { "" }
                        ));
                        if names.is_empty() {
                            return Ok(());
                        }
                    }
                    let slot = if k == "iifname" {
                        &mut self.rule.in_port
                    } else {
                        &mut self.rule.out_port
                    };
                    set_once(slot, list(names, negated), k)
                }
                Some("l4proto") => self.proto(&vals, negated),
                Some("nfproto") => {
                    let f = match (vals.as_slice(), negated) {
                        ([Val::Str(s)], false) if s == "ipv4" => Family::Ipv4,
                        ([Val::Str(s)], false) if s == "ipv6" => Family::Ipv6,
                        ([Val::Str(s)], true) if s == "ipv4" => Family::Ipv6,
                        ([Val::Str(s)], true) if s == "ipv6" => Family::Ipv4,
                        _ => return fail("unsupported `meta nfproto` match", "ipv4 or ipv6"),
                    };
                    self.family_is(f)
                }
                Some("length") => {
                    let r = vals.iter().map(num_range::<65535>).collect::<Result<Vec<_>, Fail>>()?;
                    set_once(&mut self.rule.length, list(r, negated), &what)
                }
                Some("pkttype") => {
                    let mut types = Vec::new();
                    for v in &vals {
                        types.push(match v.show().as_str() {
                            "host" | "unicast" => PktType::Unicast,
                            "broadcast" => PktType::Broadcast,
                            "multicast" => PktType::Multicast,
                            other => {
                                return fail(
                                    format!("unsupported packet type `{other}`"),
                                    "unicast (host), broadcast or multicast",
                                )
                            }
                        });
                    }
                    set_once(&mut self.rule.pkttype, list(types, negated), &what)
                }
                Some("iif" | "oif") => fail(
                    format!("`{what}` (an interface index) cannot be translated"),
                    "use iifname/oifname, which statewall translates to ports",
                ),
                _ => fail(
                    format!("unsupported match `{what}`"),
                    "statewall translates meta iifname, oifname, l4proto, nfproto, length and pkttype",
                ),
            };
        }
        let Some(p) = left.get("payload") else {
            return fail(
                format!("unsupported match `{what}`"),
                "see docs/ruleset.md, import-nft",
            );
        };
        let (proto, field) = (
            text(p, "protocol").unwrap_or(""),
            text(p, "field").unwrap_or(""),
        );
        match (proto, field) {
            ("ip" | "ip6", "saddr" | "daddr") => {
                self.family_is(if proto == "ip" { Family::Ipv4 } else { Family::Ipv6 })?;
                let nets = vals.iter().map(|v| cidr(v, proto)).collect::<Result<Vec<_>, Fail>>()?;
                let slot = if field == "saddr" { &mut self.rule.src } else { &mut self.rule.dst };
                set_once(slot, list(nets, negated), &what)
            }
            ("ip", "protocol") => {
                self.family_is(Family::Ipv4)?;
                self.proto(&vals, negated)
            }
            ("ip6", "nexthdr") => {
                self.family_is(Family::Ipv6)?;
                self.proto(&vals, negated)
            }
            ("tcp" | "udp" | "sctp" | "dccp" | "udplite" | "th", "sport" | "dport") => {
                if proto != "th" {
                    self.implied_proto(proto)?;
                } else if self.rule.proto.as_ref().is_none_or(|m| m.negated) {
                    return fail(
                        format!("`{what}` without a protocol"),
                        "add `meta l4proto { tcp, udp }` before it: statewall's port matches name their protocols",
                    );
                }
                let ports = vals.iter().map(port_range).collect::<Result<Vec<_>, Fail>>()?;
                let slot = if field == "sport" { &mut self.rule.sport } else { &mut self.rule.dport };
                set_once(slot, list(ports, negated), &what)
            }
            ("icmp" | "icmpv6", "code") => self.icmp_code(proto == "icmpv6", &vals, negated),
            ("ip", "ttl") => {
                self.family_is(Family::Ipv4)?;
                let r = vals.iter().map(num_range::<255>).collect::<Result<Vec<_>, Fail>>()?;
                set_once(&mut self.rule.ttl, list(r, negated), &what)
            }
            ("ip6", "hoplimit") => {
                self.family_is(Family::Ipv6)?;
                let r = vals.iter().map(num_range::<255>).collect::<Result<Vec<_>, Fail>>()?;
                set_once(&mut self.rule.hop_limit, list(r, negated), &what)
            }
            ("ether", "saddr") => {
                let mut macs = Vec::new();
                for v in &vals {
                    macs.push(MacAddr::parse_str(&v.show()).or_else(|e| fail(e, "six hex bytes"))?);
                }
                set_once(&mut self.rule.mac_source, list(macs, negated), &what)
            }
            ("icmp" | "icmpv6", "type") => {
                let v6 = proto == "icmpv6";
                self.family_is(if v6 { Family::Ipv6 } else { Family::Ipv4 })?;
                self.implied_proto(proto)?;
                let mut types = Vec::new();
                for v in &vals {
                    types.push(icmp_type(v, v6)?);
                }
                if v6 {
                    let t = types.into_iter().map(Icmp6Type).collect();
                    set_once(&mut self.rule.icmpv6_type, list(t, negated), &what)
                } else {
                    let t = types.into_iter().map(Icmp4Type).collect();
                    set_once(&mut self.rule.icmp_type, list(t, negated), &what)
                }
            }
            _ => fail(format!("unsupported match `{what}`"), "statewall translates ip/ip6 saddr, daddr, protocol, nexthdr; ip ttl, ip6 hoplimit, ether saddr; tcp/udp/sctp/dccp/udplite/th sport, dport; icmp/icmpv6 type; tcp flags"),
        }
    }

    /// `icmp type X icmp code Y`: the code joins the one type matched before it.
    fn icmp_code(&mut self, v6: bool, vals: &[Val], negated: bool) -> Result<(), Fail> {
        // nft writes codes with its names for them (whatever the type: code 0 of an echo
        // request is `net-unreachable`).
        let names: &[(&str, u8)] = if v6 { ICMPV6_CODES } else { ICMP_CODES };
        let code = match (vals, negated) {
            ([Val::Num(n)], false) => u8::try_from(*n).ok(),
            ([Val::Str(s)], false) => names.iter().find(|(n, _)| n == s).map(|(_, c)| *c),
            _ => None,
        };
        // The one plain type without a code matched before, whichever family.
        fn one<T>(
            m: Option<&mut Match<T>>,
            inner: fn(&mut T) -> &mut IcmpType,
        ) -> Option<&mut IcmpType> {
            match m? {
                Match {
                    negated: false,
                    values,
                } if values.len() == 1 => {
                    values.first_mut().map(inner).filter(|t| t.code.is_none())
                }
                _ => None,
            }
        }
        let ty = if v6 {
            one(self.rule.icmpv6_type.as_mut(), |t| &mut t.0)
        } else {
            one(self.rule.icmp_type.as_mut(), |t| &mut t.0)
        };
        match (code, ty) {
            (Some(c), Some(t)) => {
                t.code = Some(c);
                Ok(())
            }
            _ => fail(
                "`icmp code` is translated only as one code after one `icmp type`",
                "write `icmp type TYPE icmp code CODE` (a number)",
            ),
        }
    }

    /// `tcp dport < 1024` and friends: one port range; `ip ttl < 5`, `ip6 hoplimit > 1`,
    /// `meta length > 1000` likewise.
    fn port_compare(&mut self, left: &Value, op: &str, right: &Value) -> Result<(), Fail> {
        let p = left.get("payload");
        let numeric = match (
            p.and_then(|p| text(p, "protocol")),
            p.and_then(|p| text(p, "field")),
            left.get("meta").and_then(|m| text(m, "key")),
        ) {
            (Some("ip"), Some("ttl"), _) => Some((255u16, "ttl")),
            (Some("ip6"), Some("hoplimit"), _) => Some((255, "hop_limit")),
            (_, _, Some("length")) => Some((65535, "length")),
            _ => None,
        };
        if let Some((max, key)) = numeric {
            let n = right.as_i64().filter(|n| (0..=i64::from(max)).contains(n));
            let range = n.and_then(|n| {
                let n = n as u16;
                match op {
                    "<" => n.checked_sub(1).map(|hi| (0, hi)),
                    "<=" => Some((0, n)),
                    ">" => (n < max).then(|| (n + 1, max)),
                    ">=" => Some((n, max)),
                    _ => None,
                }
            });
            let Some((lo, hi)) = range else {
                return fail(
                    format!("`{} {op} {}` matches nothing", show(left), show(right)),
                    "remove the rule",
                );
            };
            let what = show(left);
            return match key {
                "ttl" => {
                    self.family_is(Family::Ipv4)?;
                    set_once(
                        &mut self.rule.ttl,
                        Match::new(vec![Range { lo, hi }]),
                        &what,
                    )
                }
                "hop_limit" => {
                    self.family_is(Family::Ipv6)?;
                    set_once(
                        &mut self.rule.hop_limit,
                        Match::new(vec![Range { lo, hi }]),
                        &what,
                    )
                }
                _ => set_once(
                    &mut self.rule.length,
                    Match::new(vec![Range { lo, hi }]),
                    &what,
                ),
            };
        }
        let proto = p.and_then(|p| text(p, "protocol")).unwrap_or("");
        let field = p.and_then(|p| text(p, "field")).unwrap_or("");
        let n = right.as_i64().filter(|n| (0..=65535).contains(n));
        let (Some(n), true) = (n, matches!(field, "sport" | "dport") && proto != "th") else {
            return fail(
                format!(
                    "unsupported comparison `{} {op} {}`",
                    show(left),
                    show(right)
                ),
                "statewall translates comparisons of tcp/udp ports only",
            );
        };
        let n = n as u16;
        let range = match op {
            "<" if n > 0 => PortRange { lo: 0, hi: n - 1 },
            "<=" => PortRange { lo: 0, hi: n },
            ">" if n < u16::MAX => PortRange {
                lo: n + 1,
                hi: u16::MAX,
            },
            ">=" => PortRange {
                lo: n,
                hi: u16::MAX,
            },
            _ => {
                return fail(
                    format!("`{} {op} {n}` matches no port", show(left)),
                    "remove the rule",
                )
            }
        };
        self.implied_proto(proto)?;
        let slot = if field == "sport" {
            &mut self.rule.sport
        } else {
            &mut self.rule.dport
        };
        set_once(slot, Match::new(vec![range]), &show(left))
    }

    /// `tcp flags & (syn | ack) == syn`: the flags in the mask must equal the value.
    fn tcp_flags(
        &mut self,
        left: &Value,
        mask: &Value,
        right: &Value,
        negated: bool,
    ) -> Result<(), Fail> {
        let is_flags = left.get("payload").is_some_and(|p| {
            text(p, "protocol") == Some("tcp") && text(p, "field") == Some("flags")
        });
        if !is_flags {
            return fail(
                format!("unsupported bitwise match on `{}`", show(left)),
                "statewall translates `tcp flags & MASK == FLAGS`",
            );
        }
        self.set_flags(flag_bits(mask)?, flag_bits(right)?, negated)
    }

    /// `tcp flags syn` (the bit is set), `tcp flags == syn` (exactly those flags), `!=`.
    fn plain_tcp_flags(&mut self, op: &str, right: &Value, negated: bool) -> Result<(), Fail> {
        let bits = flag_bits(right)?;
        match op {
            "in" if bits.is_power_of_two() => self.set_flags(bits, bits, false),
            "in" => fail(
                format!(
                    "`tcp flags {}` (any of several flags) cannot be translated",
                    show(right)
                ),
                "write one rule per flag, or `tcp flags & MASK == FLAGS`",
            ),
            _ => self.set_flags(0xff, bits, negated),
        }
    }

    fn set_flags(&mut self, mask: u8, comp: u8, not: bool) -> Result<(), Fail> {
        self.implied_proto("tcp")?;
        if self.rule.tcp_flags.is_some() {
            return fail("two `tcp flags` matches in one rule", "keep one");
        }
        self.rule.tcp_flags = Some(TcpFlagsMatch {
            mask: Match::new(flags_from_bits(mask)),
            comp: Match::new(flags_from_bits(comp)),
            not,
        });
        Ok(())
    }

    fn proto(&mut self, vals: &[Val], negated: bool) -> Result<(), Fail> {
        let protos = vals
            .iter()
            .map(|v| match v {
                Val::Num(n) => Proto::parse_int(*n),
                v => Proto::parse_str(&v.show()),
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| (e, String::new()))?;
        set_once(&mut self.rule.proto, list(protos, negated), "l4proto")
    }

    /// A port or ICMP match implies its protocol, as nft adds `meta l4proto` for it.
    fn implied_proto(&mut self, name: &str) -> Result<(), Fail> {
        let p = Proto::parse_str(name).map_err(|e| (e, String::new()))?;
        match &self.rule.proto {
            None => {
                self.rule.proto = Some(Match::new(vec![p]));
                Ok(())
            }
            Some(m) if !m.negated && m.values == [p] => Ok(()),
            Some(_) => fail(
                format!("`{name}` matches after a protocol match that allows other protocols"),
                "statewall's rules name one protocol for port and ICMP matches; split the rule",
            ),
        }
    }

    fn family_is(&mut self, f: Family) -> Result<(), Fail> {
        match self.table_family.or(self.rule.family) {
            Some(g) if g != f => fail(
                "a match of the other IP family than the rule's table or earlier matches",
                "the rule can never match; remove it",
            ),
            _ => {
                if self.table_family.is_none() {
                    self.rule.family = Some(f);
                }
                Ok(())
            }
        }
    }

    /// The right-hand side as values: a value, a list, an anonymous set, or `@named`.
    fn values(&self, right: &Value) -> Result<Vec<Val>, Fail> {
        let mut out = Vec::new();
        self.unfold(right, &mut out)?;
        if out.is_empty() {
            return fail(
                "a match on an empty set",
                "an empty set matches nothing: remove the rule",
            );
        }
        Ok(out)
    }

    fn unfold(&self, v: &Value, out: &mut Vec<Val>) -> Result<(), Fail> {
        match v {
            Value::String(s) if s.starts_with('@') => {
                let name = &s[1..];
                let Some(elems) = self.tables.set_elems(self.family, self.table, name)? else {
                    return fail(
                        format!("no set `{name}` in table {} {}", self.family, self.table),
                        "",
                    );
                };
                for e in elems {
                    self.unfold(e, out)?;
                }
            }
            Value::String(s) => out.push(Val::Str(s.clone())),
            Value::Number(n) => match n.as_i64() {
                Some(n) => out.push(Val::Num(n)),
                None => return fail(format!("unexpected number `{n}`"), ""),
            },
            Value::Array(items) => {
                for i in items {
                    self.unfold(i, out)?;
                }
            }
            Value::Object(_) => {
                let Some((k, inner)) = single(v) else {
                    return fail(format!("unsupported value `{}`", show(v)), "");
                };
                match k {
                    "set" => self.unfold(inner, out)?,
                    "elem" => match inner.get("val") {
                        Some(val) => self.unfold(val, out)?,
                        None => return fail("a set element without a value", ""),
                    },
                    "prefix" => {
                        let addr = text(inner, "addr").unwrap_or_default().to_string();
                        let len = inner.get("len").and_then(Value::as_i64).unwrap_or(-1);
                        out.push(Val::Prefix(addr, len));
                    }
                    "range" => match inner.as_array().map(Vec::as_slice) {
                        Some([a, b]) => {
                            let (mut x, mut y) = (Vec::new(), Vec::new());
                            self.unfold(a, &mut x)?;
                            self.unfold(b, &mut y)?;
                            match (x.pop(), y.pop()) {
                                (Some(a), Some(b)) if x.is_empty() && y.is_empty() => {
                                    out.push(Val::Range(Box::new(a), Box::new(b)));
                                }
                                _ => return fail("a range of several values", ""),
                            }
                        }
                        _ => return fail("a range without two ends", ""),
                    },
                    "concat" => {
                        return fail(
                            "concatenated set elements cannot be translated",
                            "split the rule by field",
                        )
                    }
                    other => {
                        return fail(
                            format!("unsupported value `{other}`"),
                            "statewall translates values, sets and prefixes",
                        )
                    }
                }
            }
            other => return fail(format!("unsupported value `{}`", show(other)), ""),
        }
        Ok(())
    }
}

/// Which mark an expression is: `meta mark` (the packet's, false) or `ct mark` (the
/// connection's, true).
fn mark_key(v: &Value) -> Option<bool> {
    let is = |k: &str| v.get(k).and_then(|m| text(m, "key")) == Some("mark");
    if is("meta") {
        Some(false)
    } else if is("ct") && v.get("ct").and_then(|c| c.get("dir")).is_none() {
        Some(true)
    } else {
        None
    }
}

/// A mark match's left side: `meta mark`/`ct mark`, or either `& MASK`; with its mask.
fn mark_left(left: &Value) -> Result<Option<(bool, u32)>, Fail> {
    if let Some(ct) = mark_key(left) {
        return Ok(Some((ct, u32::MAX)));
    }
    let Some([m, mask]) = left.get("&").and_then(Value::as_array).map(Vec::as_slice) else {
        return Ok(None);
    };
    let Some(ct) = mark_key(m) else {
        return Ok(None);
    };
    Ok(Some((ct, mark_number(mask)?)))
}

fn mark_number(v: &Value) -> Result<u32, Fail> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            (
                format!("`{}` is not a 32-bit mark", show(v)),
                "marks and masks are numbers from 0 to 0xffffffff".to_string(),
            )
        })
}

/// A mark expression as `(source & and) ^ xor`: the source is `meta mark` (false), `ct mark`
/// (true) or none (a constant, `and` 0), as nft's bitwise expression computes.
fn mark_expr(v: &Value) -> Result<(Option<bool>, u32, u32), Fail> {
    if let Some(ct) = mark_key(v) {
        return Ok((Some(ct), u32::MAX, 0));
    }
    if v.is_number() {
        return Ok((None, 0, mark_number(v)?));
    }
    let bad = || {
        fail(
            format!("unsupported mark expression `{}`", show(v)),
            "statewall sets a mark to a value, to the other mark, or to either with `&`, `|` and `^` by constants",
        )
    };
    let Some((op, args)) = single(v) else {
        return bad();
    };
    let Some([inner, n]) = args.as_array().map(Vec::as_slice) else {
        return bad();
    };
    let (src, and, xor) = mark_expr(inner)?;
    let n = mark_number(n)?;
    Ok(match op {
        "&" => (src, and & n, xor & n),
        "^" => (src, and, xor ^ n),
        "|" => (src, and & !n, xor | n),
        _ => return bad(),
    })
}

/// `meta mark set EXPR` (`ct` false) or `ct mark set EXPR` (true) as a statewall action: a
/// constant or the same mark changed by constants is `mark`/`connmark` (`--set-xmark`
/// arithmetic); `meta mark set ct mark [& M]` is `restore_mark`, `ct mark set meta mark [&
/// M]` is `save_mark`.
fn mark_set(ct: bool, v: &Value) -> Result<Action, Fail> {
    let (src, and, xor) = mark_expr(v)?;
    let value = |mask: u32| MarkValue { value: xor, mask };
    Ok(match src {
        None => {
            if ct {
                Action::ConnMark(value(u32::MAX))
            } else {
                Action::Mark(value(u32::MAX))
            }
        }
        Some(s) if s == ct => {
            if ct {
                Action::ConnMark(value(!and))
            } else {
                Action::Mark(value(!and))
            }
        }
        Some(_) if xor != 0 => {
            return fail(
                format!("`{} set {}` cannot be translated", if ct { "ct mark" } else { "meta mark" }, show(v)),
                "statewall copies one mark into the other under a mask (save_mark, restore_mark); set constant bits in a rule of their own",
            )
        }
        Some(_) if ct => Action::SaveMark(MarkCopy {
            nfmask: and,
            ctmask: u32::MAX,
        }),
        Some(_) => Action::RestoreMark(MarkCopy {
            nfmask: u32::MAX,
            ctmask: and,
        }),
    })
}

/// A TCP flags value: a flag name, a number, `[a, b]` or `{"|": [a, b]}` (the bits of each).
fn flag_bits(v: &Value) -> Result<u8, Fail> {
    match v {
        Value::String(s) => TcpFlag::parse_str(s)
            .map(|f| f.0)
            .map_err(|e| (e, String::new())),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| (format!("TCP flags value {n} out of range"), String::new())),
        Value::Array(items) => items.iter().try_fold(0, |acc, i| Ok(acc | flag_bits(i)?)),
        Value::Object(_) => match single(v) {
            Some(("|", inner)) => flag_bits(inner),
            Some(("set", Value::Array(items))) if items.len() == 1 => flag_bits(&items[0]),
            _ => fail(
                format!("unsupported TCP flags value `{}`", show(v)),
                "name the flags",
            ),
        },
        _ => fail(
            format!("unsupported TCP flags value `{}`", show(v)),
            "name the flags",
        ),
    }
}

fn list<T>(values: Vec<T>, negated: bool) -> Match<T> {
    if negated {
        Match::negated(values)
    } else {
        Match::new(values)
    }
}

fn set_once<T>(slot: &mut Option<Match<T>>, m: Match<T>, what: &str) -> Result<(), Fail> {
    if slot.is_some() {
        return fail(format!("two `{what}` matches in one rule"), "statewall's rules have one match per field: put the values in one set, or split the rule");
    }
    *slot = Some(m);
    Ok(())
}

fn cidr(v: &Val, proto: &str) -> Result<Cidr, Fail> {
    let text = match v {
        Val::Str(s) => s.clone(),
        Val::Prefix(a, l) => format!("{a}/{l}"),
        Val::Range(a, b) => format!("{}-{}", a.show(), b.show()),
        Val::Num(_) => return fail(format!("`{}` is not an address", v.show()), ""),
    };
    let c = Cidr::parse_str(&text).map_err(|e| (e, String::new()))?;
    if c.is_v4() != (proto == "ip") {
        return fail(format!("`{text}` is not an {proto} address"), "");
    }
    Ok(c)
}

/// A number or range up to `MAX` (`ip ttl 1-5`, `meta length 0-100`).
fn num_range<const MAX: u16>(v: &Val) -> Result<Range<MAX>, Fail> {
    let one = |v: &Val| match v {
        Val::Num(n) if (0..=i64::from(MAX)).contains(n) => Ok(*n as u16),
        other => fail(
            format!("`{}` is not a number from 0 to {MAX}", other.show()),
            "",
        ),
    };
    let (lo, hi) = match v {
        Val::Range(a, b) => (one(a)?, one(b)?),
        v => {
            let n = one(v)?;
            (n, n)
        }
    };
    if lo > hi {
        return fail(
            format!("range `{lo}-{hi}` ends before it starts"),
            "write the lower number first",
        );
    }
    Ok(Range { lo, hi })
}

fn port_range(v: &Val) -> Result<PortRange, Fail> {
    let one = |v: &Val| match v {
        Val::Num(n) if (0..=65535).contains(n) => Ok(*n as u16),
        Val::Str(s) => match PortRange::parse_str(s) {
            Ok(r) if r.lo == r.hi => Ok(r.lo),
            _ => fail(
                format!("`{s}` is not a port"),
                "give the port number (nft -j writes service names as numbers)",
            ),
        },
        other => fail(format!("`{}` is not a port", other.show()), ""),
    };
    match v {
        Val::Range(a, b) => {
            let (lo, hi) = (one(a)?, one(b)?);
            if lo > hi {
                return fail(
                    format!("port range `{lo}-{hi}` ends before it starts"),
                    "write the lower port first",
                );
            }
            Ok(PortRange { lo, hi })
        }
        v => {
            let p = one(v)?;
            Ok(PortRange { lo: p, hi: p })
        }
    }
}

/// nft's ICMPv6 type names that differ from ip6tables'.
const ICMPV6_NAMES: &[(&str, u8)] = &[
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("mld2-listener-report", 143),
];

/// nft's names for ICMP codes (`icmp_code`) and ICMPv6 codes (`icmpv6_code`).
const ICMP_CODES: &[(&str, u8)] = &[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
];
const ICMPV6_CODES: &[(&str, u8)] = &[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
];

fn icmp_type(v: &Val, v6: bool) -> Result<IcmpType, Fail> {
    let named = match v {
        Val::Num(n) => {
            return u8::try_from(*n)
                .map(|ty| IcmpType { ty, code: None })
                .map_err(|_| (format!("ICMP type {n} out of range"), String::new()))
        }
        Val::Str(s) => s,
        other => return fail(format!("`{}` is not an ICMP type", other.show()), ""),
    };
    if v6 {
        if let Some((_, ty)) = ICMPV6_NAMES.iter().find(|(n, _)| n == named) {
            return Ok(IcmpType {
                ty: *ty,
                code: None,
            });
        }
        return Icmp6Type::parse_str(named)
            .map(|t| t.0)
            .map_err(|e| (e, String::new()));
    }
    Icmp4Type::parse_str(named)
        .map(|t| t.0)
        .map_err(|e| (e, String::new()))
}

/// `reject with tcp reset`, `reject with icmp type X`, `reject with icmpx type X`.
fn reject_with(body: &Value) -> Result<Option<RejectWith>, Fail> {
    let ty = text(body, "type");
    let code = text(body, "expr");
    Ok(match (ty, code) {
        (None, None) => None,
        (Some("tcp reset"), _) => Some(RejectWith::TcpReset),
        (Some("icmp" | "icmpv6" | "icmpx"), Some("port-unreachable")) => None,
        (Some("icmp" | "icmpx"), Some("host-unreachable")) | (Some("icmpv6" | "icmpx"), Some("addr-unreachable")) => Some(RejectWith::IcmpHostUnreachable),
        (Some("icmp"), Some("net-unreachable")) | (Some("icmpv6" | "icmpx"), Some("no-route")) => Some(RejectWith::IcmpNetUnreachable),
        (Some("icmp"), Some("prot-unreachable")) => Some(RejectWith::IcmpProtoUnreachable),
        (Some("icmp"), Some("net-prohibited")) => Some(RejectWith::IcmpNetProhibited),
        (Some("icmp"), Some("host-prohibited")) => Some(RejectWith::IcmpHostProhibited),
        (Some("icmpv6"), Some("policy-fail")) => Some(RejectWith::Icmp6PolicyFail),
        (Some("icmpv6"), Some("reject-route")) => Some(RejectWith::Icmp6RejectRoute),
        (Some("icmp" | "icmpv6" | "icmpx"), Some("admin-prohibited")) => Some(RejectWith::IcmpAdminProhibited),
        (t, c) => {
            return fail(
                format!("unsupported reject type `{} {}`", t.unwrap_or(""), c.unwrap_or("")),
                "statewall answers what iptables' REJECT does: port, host, net, protocol unreachable, admin, net, host prohibited, policy fail, reject route, tcp reset",
            )
        }
    })
}
