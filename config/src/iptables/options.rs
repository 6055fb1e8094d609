//! The match options of a rule specification: addresses, interfaces, protocol, match
//! modules, conntrack states, ports, TCP flags and ICMP types.

use crate::matches::{
    Cidr, CtState, Icmp4Type, Icmp6Type, Match, PortName, PortRange, Scalar, TcpFlag, TcpFlagsMatch,
};
use crate::proto::Proto;
use crate::ruleset::Family;

use super::family::fam_tool;
use super::rule::{set_once, RuleParser, SUPPORTED_MATCHES};
use super::words::Tok;
use crate::limit::{Limit, Rate, MAX_BURST};

impl RuleParser<'_> {
    pub(super) fn addr(&mut self, tok: &Tok, src: bool) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let Some(values) = self.list::<Cidr>(tok, v) else {
            return;
        };
        let mut off = 0;
        for (item, c) in v.text.split(',').zip(&values) {
            if c.end.is_some() {
                self.err(
                    v.at(off),
                    format!(
                        "`{} {item}`: iptables takes a network here, not a range",
                        tok.text
                    ),
                    format!(
                        "a range is `-m iprange {} {item}`",
                        if src { "--src-range" } else { "--dst-range" }
                    ),
                );
            }
            if c.is_v4() != (self.fam == Family::Ipv4) {
                self.err(
                    v.at(off),
                    format!(
                        "`{c}` is an {} address in an {} rule",
                        if c.is_v4() { "IPv4" } else { "IPv6" },
                        fam_tool(self.fam)
                    ),
                    "put IPv4 rules in iptables input and IPv6 rules in ip6tables input",
                );
            }
            off += item.chars().count() + 1;
        }
        let m = Match {
            negated: neg,
            values,
        };
        let (slot, what) = if src {
            (&mut self.out.rule.src, "source address")
        } else {
            (&mut self.out.rule.dst, "destination address")
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    /// `-m limit --limit RATE` / `--limit-burst N` (no `!`: xt_limit has no inversion).
    pub(super) fn limit(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let Some(v) = self.value(tok) else { return };
        let Some(l) = self.out.rule.limit.as_mut() else {
            return; // `needs` reported the missing `-m limit`
        };
        if tok.text == "--limit" {
            match v.text.parse::<Rate>() {
                Ok(r) => l.rate = r,
                Err(e) => self.err(
                    v.pos,
                    format!("`--limit {}`: {e}", v.text),
                    "write RATE/UNIT, e.g. 100/second",
                ),
            }
        } else {
            match v.text.parse::<u32>() {
                Ok(b) if (1..=MAX_BURST).contains(&b) => l.burst = b,
                _ => self.err(
                    v.pos,
                    format!("`--limit-burst {}`: not a burst", v.text),
                    format!("a number from 1 to {MAX_BURST}"),
                ),
            }
        }
    }

    /// `-m iprange --src-range FROM[-TO]` / `--dst-range`: one range (or one address).
    pub(super) fn range(&mut self, tok: &Tok, src: bool) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let mut c = match Cidr::parse_str(v.text.trim()) {
            Ok(c) if c.end.is_some() || c.prefix == if c.is_v4() { 32 } else { 128 } => c,
            _ => {
                self.err(
                    v.pos,
                    format!("`{} {}`: not an address range", tok.text, v.text),
                    "write FROM-TO, two addresses of the rule's family, e.g. 10.0.0.10-10.0.0.20",
                );
                return;
            }
        };
        if c.end.is_none() {
            c.end = Some(c.addr);
        }
        if c.is_v4() != (self.fam == Family::Ipv4) {
            self.err(
                v.pos,
                format!(
                    "`{c}` is an {} range in an {} rule",
                    if c.is_v4() { "IPv4" } else { "IPv6" },
                    fam_tool(self.fam)
                ),
                "put IPv4 rules in iptables input and IPv6 rules in ip6tables input",
            );
        }
        let m = Match {
            negated: neg,
            values: vec![c],
        };
        let (slot, what) = if src {
            (&mut self.out.rule.src, "source address")
        } else {
            (&mut self.out.rule.dst, "destination address")
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    pub(super) fn iface(&mut self, tok: &Tok, input: bool) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let name = v.text.as_str();
        if let Some(prefix) = name.strip_suffix('+') {
            // A wildcard: the ports whose interfaces start with `prefix`, once the
            // interfaces are known (`interfaces::rename_ports`).
            if prefix.len() > 14 || prefix.contains(['/', ' ', ',']) {
                self.err(
                    v.pos,
                    format!("invalid interface wildcard `{name}`"),
                    "a wildcard is up to 14 characters of an interface name, then `+`",
                );
                return;
            }
            self.set_port(tok, input, neg, name);
            return;
        }
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ',']) {
            self.err(
                v.pos,
                format!("invalid interface name `{name}`"),
                "a Linux interface name has 1 to 15 characters, no `/`, `,` or spaces",
            );
            return;
        }
        if name == "lo" {
            // Loopback carries the host's own traffic only: never forwarded.
            let (what, note) = if neg {
                ("always true", "the match is left out")
            } else {
                self.out.never = true;
                ("never true", "the rule is left out")
            };
            self.warn(
                v.pos,
                format!("`{}{} lo` is {what} for forwarded traffic: {note}", if neg { "! " } else { "" }, tok.text),
                "the loopback interface carries only the host's own traffic, which a bump-in-the-wire gateway never forwards",
            );
            return;
        }
        self.out.ifaces.push((name.to_string(), v.pos));
        self.set_port(tok, input, neg, name);
    }

    /// The rule's input (or output) port match: the interface `name`, or a wildcard.
    fn set_port(&mut self, tok: &Tok, input: bool, neg: bool, name: &str) {
        let m = Match {
            negated: neg,
            values: vec![PortName(name.to_string())],
        };
        let (slot, what) = if input {
            (&mut self.out.rule.in_port, "input interface")
        } else {
            (&mut self.out.rule.out_port, "output interface")
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    pub(super) fn proto(&mut self, tok: &Tok) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let lower = v.text.to_ascii_lowercase();
        if lower == "all" || lower == "0" {
            if neg {
                self.err(
                    tok.pos,
                    format!("`! -p {}` never matches", v.text),
                    "remove the rule",
                );
            }
            return;
        }
        let p = if lower == "icmp6" {
            Ok(Proto::ICMPV6)
        } else {
            Proto::parse_str(&lower)
        };
        let p = match p {
            Ok(p) => p,
            Err(msg) => {
                self.err(
                    v.pos,
                    format!("`-p {}`: {msg}", v.text),
                    "write a protocol name or number",
                );
                return;
            }
        };
        let other = match self.fam {
            Family::Ipv4 => Proto::ICMPV6,
            Family::Ipv6 => Proto::ICMP,
        };
        if p == other && !neg {
            self.err(
                v.pos,
                format!(
                    "protocol `{}` in an {} rule never matches",
                    v.text,
                    fam_tool(self.fam)
                ),
                "use icmp in iptables rules and icmpv6 in ip6tables rules",
            );
        }
        let m = Match {
            negated: neg,
            values: vec![p],
        };
        set_once(
            &mut self.out.errs,
            self.file,
            &mut self.out.rule.proto,
            m,
            tok,
            "protocol",
        );
    }

    /// A module of one family (`[IPv4's, IPv6's]`): loaded, and an error in the other's rule.
    fn family_module(&mut self, name: &str, own: [&str; 2], pos: crate::diag::Pos) -> bool {
        let own = own[usize::from(self.fam == Family::Ipv6)];
        if name != own {
            self.err(
                pos,
                format!("`-m {name}` in an {} rule", fam_tool(self.fam)),
                format!("{} uses `-m {own}`", fam_tool(self.fam)),
            );
        }
        true
    }

    pub(super) fn module(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let Some(v) = self.value(tok) else { return };
        let name = v.text.as_str();
        let ok = match name {
            "state" | "conntrack" | "multiport" | "tcp" | "udp" | "comment" | "physdev"
            | "iprange" | "length" | "mac" | "pkttype" | "rt" | "set" | "addrtype" | "tcpmss"
            | "mark" | "connmark" => true,
            "ttl" | "hl" => self.family_module(name, ["ttl", "hl"], v.pos),
            "hashlimit" => {
                if self.hashlimit_at.is_none() {
                    self.hashlimit_at = Some(v.pos);
                    self.hashlimit_mut();
                }
                true
            }
            "recent" => {
                if self.out.rule.recent.is_none() {
                    self.out.rule.recent = Some(crate::recent::Recent::default());
                    self.recent_at = Some(v.pos);
                }
                true
            }
            "limit" => {
                // The kernel's defaults: 3/hour, burst 5, until --limit/--limit-burst say.
                if self.out.rule.limit.is_none() {
                    self.out.rule.limit = Some(Limit::new(Rate {
                        count: 3,
                        per_secs: 3600,
                    }));
                }
                true
            }
            "icmp" | "icmp6" => self.family_module(name, ["icmp", "icmp6"], v.pos),
            _ => false,
        };
        if ok {
            self.modules.push(name.to_string());
            return;
        }
        let hint = match name {
            "connlimit" => {
                "statewall limits rates (-m limit, -m hashlimit), not connection counts; remove the rule, or enforce the limit elsewhere".to_string()
            }
            "helper" => {
                "connections the FTP helper expects are matched with `--ctstate RELATED`".to_string()
            }
            "sctp" | "dccp" | "udplite" => {
                format!("match `-p {name}` by protocol only; ports are translated for tcp and udp")
            }
            _ => format!("{SUPPORTED_MATCHES}; rewrite the rule with those, or remove it"),
        };
        self.err(tok.pos, format!("unsupported match `-m {name}`"), hint);
        self.skipping = true;
    }

    pub(super) fn ctstate(&mut self, tok: &Tok) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let mut values = Vec::new();
        let mut off = 0;
        let mut ok = true;
        let mut nat = false;
        for item in v.text.split(',') {
            let upper = item.to_ascii_uppercase();
            if upper == "SNAT" || upper == "DNAT" {
                // Never true without NAT: the state drops out of the list.
                nat = true;
            } else {
                match CtState::parse_str(item) {
                    Ok(s) => values.push(s),
                    Err(msg) => {
                        ok = false;
                        self.err(
                            v.at(off),
                            format!("`{} {}`: {msg}", tok.text, v.text),
                            "states are NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED",
                        );
                    }
                }
            }
            off += item.chars().count() + 1;
        }
        if ok && nat {
            let written = format!("{}{} {}", if neg { "! " } else { "" }, tok.text, v.text);
            let msg = match (values.is_empty(), neg) {
                (true, false) => {
                    self.out.never = true;
                    format!("`{written}` never matches without NAT: the rule is left out")
                }
                (true, true) => {
                    format!("`{written}` always matches without NAT: the match is left out")
                }
                (false, _) => format!(
                    "`{written}`: SNAT and DNAT never hold without NAT and are left out of the list"
                ),
            };
            self.warn(
                v.pos,
                msg,
                "statewall does no NAT, so no connection is SNAT or DNAT",
            );
            if values.is_empty() {
                return;
            }
        }
        if ok {
            // Canonical order (new, established, related, invalid, untracked).
            values.sort();
            values.dedup();
            let m = Match {
                negated: neg,
                values,
            };
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.ctstate,
                m,
                tok,
                "connection state",
            );
        }
    }

    pub(super) fn ports(&mut self, tok: &Tok) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let Some(values) = self.list::<PortRange>(tok, v) else {
            return;
        };
        let m = Match {
            negated: neg,
            values,
        };
        let (slot, what) = match tok.text.as_str() {
            "--dports" | "--destination-ports" | "--dport" | "--destination-port" => {
                (&mut self.out.rule.dport, "destination port")
            }
            "--sports" | "--source-ports" | "--sport" | "--source-port" => {
                (&mut self.out.rule.sport, "source port")
            }
            _ => (&mut self.out.rule.ports, "either-side port"),
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    pub(super) fn tcp_flags(&mut self, tok: &Tok) {
        let neg = self.take_neg();
        let Some(mask) = self.value(tok) else { return };
        let Some(comp) = self.next() else {
            self.err(
                tok.pos,
                "`--tcp-flags` needs two values: MASK COMP",
                "e.g. `--tcp-flags SYN,RST,ACK,FIN SYN`",
            );
            return;
        };
        let neg = neg || self.take_neg();
        let (Some(m), Some(c)) = (
            self.list::<TcpFlag>(tok, mask),
            self.list::<TcpFlag>(tok, comp),
        ) else {
            return;
        };
        let f = TcpFlagsMatch {
            mask: Match::new(m),
            comp: Match::new(c),
            not: neg,
        };
        set_once(
            &mut self.out.errs,
            self.file,
            &mut self.out.rule.tcp_flags,
            f,
            tok,
            "TCP flags",
        );
    }

    pub(super) fn icmp(&mut self, tok: &Tok, v6: bool) {
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        if v.text.eq_ignore_ascii_case("any") {
            // iptables takes it; the kernel's match is then never true: said, not refused.
            if neg {
                self.out.never = true;
                self.warn(
                    v.pos,
                    format!("`! {} any` never matches: the rule is left out", tok.text),
                    "no ICMP type is outside `any`; remove the rule",
                );
            }
            return;
        }
        if v6 {
            match Icmp6Type::parse_str(&v.text) {
                Ok(t) => set_once(
                    &mut self.out.errs,
                    self.file,
                    &mut self.out.rule.icmpv6_type,
                    Match {
                        negated: neg,
                        values: vec![t],
                    },
                    tok,
                    "ICMPv6 type",
                ),
                Err(msg) => self.err(
                    v.pos,
                    format!("`{} {}`: {msg}", tok.text, v.text),
                    "write a type name or TYPE[/CODE]",
                ),
            }
        } else {
            match Icmp4Type::parse_str(&v.text) {
                Ok(t) => set_once(
                    &mut self.out.errs,
                    self.file,
                    &mut self.out.rule.icmp_type,
                    Match {
                        negated: neg,
                        values: vec![t],
                    },
                    tok,
                    "ICMP type",
                ),
                Err(msg) => self.err(
                    v.pos,
                    format!("`{} {}`: {msg}", tok.text, v.text),
                    "write a type name or TYPE[/CODE]",
                ),
            }
        }
    }
}
