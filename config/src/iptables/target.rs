//! The target options of a rule specification: `-j`, `--reject-with`, `-j CT`'s
//! `--notrack`/`--helper`, and `-j LOG`'s `--log-*`.

use crate::log::LogOptions;
use crate::ruleset::{Family, RejectWith};
use crate::suggest::did_you_mean;

use super::family::fam_tool;
use super::rule::{RuleParser, Target};
use super::words::Tok;

impl RuleParser<'_> {
    pub(super) fn jump(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let Some(v) = self.value(tok) else { return };
        let target = match v.text.as_str() {
            "ACCEPT" => Target::Accept,
            "DROP" => Target::Drop,
            "REJECT" => Target::Reject(None),
            "CT" => Target::Ct {
                notrack: false,
                helper: None,
            },
            "NOTRACK" => Target::Notrack,
            "RETURN" => Target::Return,
            "LOG" => Target::Log(LogOptions::default()),
            "MARK" => Target::Mark(None),
            "CONNMARK" => Target::ConnMark(None),
            other => {
                self.skipping = true;
                Target::Other(other.to_string())
            }
        };
        if self.out.target.is_some() {
            self.err(tok.pos, "a second `-j` in one rule", "give one target");
            return;
        }
        self.out.target = Some((target, v.pos));
    }

    /// `-g CHAIN`: the chain must be a user-defined one, which the importer checks.
    pub(super) fn goto(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let Some(v) = self.value(tok) else { return };
        if self.out.target.is_some() {
            self.err(
                tok.pos,
                "`-g` in a rule that has a target",
                "give one `-j` or `-g`",
            );
            return;
        }
        self.out.target = Some((Target::Goto(v.text.clone()), v.pos));
    }

    pub(super) fn reject_with(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let Some(v) = self.value(tok) else { return };
        if !matches!(self.out.target, Some((Target::Reject(_), _))) {
            self.err(
                tok.pos,
                "`--reject-with` without `-j REJECT` before it",
                "write `-j REJECT --reject-with TYPE`",
            );
            return;
        }
        let name = v.text.as_str();
        let v4 = [
            ("icmp-port-unreachable", None),
            ("port-unreach", None),
            (
                "icmp-host-unreachable",
                Some(RejectWith::IcmpHostUnreachable),
            ),
            ("host-unreach", Some(RejectWith::IcmpHostUnreachable)),
            ("icmp-net-unreachable", Some(RejectWith::IcmpNetUnreachable)),
            ("net-unreach", Some(RejectWith::IcmpNetUnreachable)),
            (
                "icmp-proto-unreachable",
                Some(RejectWith::IcmpProtoUnreachable),
            ),
            ("proto-unreach", Some(RejectWith::IcmpProtoUnreachable)),
            (
                "icmp-admin-prohibited",
                Some(RejectWith::IcmpAdminProhibited),
            ),
            ("admin-prohib", Some(RejectWith::IcmpAdminProhibited)),
            ("icmp-net-prohibited", Some(RejectWith::IcmpNetProhibited)),
            ("net-prohib", Some(RejectWith::IcmpNetProhibited)),
            ("icmp-host-prohibited", Some(RejectWith::IcmpHostProhibited)),
            ("host-prohib", Some(RejectWith::IcmpHostProhibited)),
            ("tcp-reset", Some(RejectWith::TcpReset)),
            ("tcp-rst", Some(RejectWith::TcpReset)),
        ];
        let v6 = [
            ("icmp6-port-unreachable", None),
            ("port-unreach", None),
            (
                "icmp6-adm-prohibited",
                Some(RejectWith::IcmpAdminProhibited),
            ),
            ("adm-prohibited", Some(RejectWith::IcmpAdminProhibited)),
            ("icmp6-no-route", Some(RejectWith::IcmpNetUnreachable)),
            ("no-route", Some(RejectWith::IcmpNetUnreachable)),
            (
                "icmp6-addr-unreachable",
                Some(RejectWith::IcmpHostUnreachable),
            ),
            ("addr-unreach", Some(RejectWith::IcmpHostUnreachable)),
            ("icmp6-policy-fail", Some(RejectWith::Icmp6PolicyFail)),
            ("policy-fail", Some(RejectWith::Icmp6PolicyFail)),
            ("icmp6-reject-route", Some(RejectWith::Icmp6RejectRoute)),
            ("reject-route", Some(RejectWith::Icmp6RejectRoute)),
            ("tcp-reset", Some(RejectWith::TcpReset)),
            ("tcp-rst", Some(RejectWith::TcpReset)),
        ];
        let table: &[(&str, Option<RejectWith>)] = if self.fam == Family::Ipv4 { &v4 } else { &v6 };
        if let Some((_, rw)) = table.iter().find(|(n, _)| *n == name) {
            self.out.target = Some((Target::Reject(*rw), v.pos));
            return;
        }
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        let hint = format!("{} reject types: {}", fam_tool(self.fam), names.join(", "));
        self.err(
            v.pos,
            format!(
                "unsupported `--reject-with {name}` in an {} rule{}",
                fam_tool(self.fam),
                did_you_mean(name, &names)
            ),
            hint,
        );
    }

    pub(super) fn ct_option(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let helper = if tok.text == "--helper" {
            match self.value(tok) {
                Some(v) => Some(v.text.clone()),
                None => return,
            }
        } else {
            None
        };
        match &mut self.out.target {
            Some((Target::Ct { notrack, helper: h }, _)) => {
                if let Some(name) = helper {
                    *h = Some(name);
                } else {
                    *notrack = true;
                }
            }
            _ => self.err(
                tok.pos,
                format!("`{}` without `-j CT` before it", tok.text),
                format!("write `-j CT {}`", tok.text),
            ),
        }
    }

    /// `-j LOG`'s options: `--log-prefix`, `--log-level`, `--log-tcp-sequence`,
    /// `--log-tcp-options`, `--log-ip-options`; `--log-uid` prints nothing for forwarded
    /// packets (they have no socket) and is taken as it is.
    pub(super) fn log_option(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let name = tok.text.as_str();
        let value = match name {
            "--log-prefix" | "--log-level" => match self.value(tok) {
                Some(v) => Some(v.clone()),
                None => return,
            },
            "--log-tcp-sequence" | "--log-tcp-options" | "--log-ip-options" | "--log-uid" => None,
            _ => {
                self.err(
                    tok.pos,
                    format!("unknown `-j LOG` option `{name}`"),
                    "LOG takes --log-prefix, --log-level, --log-tcp-sequence, --log-tcp-options, --log-ip-options and --log-uid",
                );
                return;
            }
        };
        let Some((Target::Log(o), _)) = &mut self.out.target else {
            self.err(
                tok.pos,
                format!("`{name}` without `-j LOG` before it"),
                format!("write `-j LOG {name}`"),
            );
            return;
        };
        let mut problem = None;
        match (name, value) {
            ("--log-prefix", Some(v)) => {
                // iptables refuses a longer prefix, and one with a line break.
                if v.text.len() > 29 {
                    problem = Some((
                        v.pos,
                        format!(
                            "the log prefix is {} characters long; iptables allows 29",
                            v.text.len()
                        ),
                    ));
                }
                o.prefix = Some(v.text.clone());
                problem = problem.or_else(|| o.problem().map(|p| (v.pos, p)));
            }
            ("--log-level", Some(v)) => match v.text.parse() {
                Ok(l) => o.level = l,
                Err(e) => problem = Some((v.pos, e)),
            },
            ("--log-tcp-sequence", _) => o.tcp_sequence = true,
            ("--log-tcp-options", _) => o.tcp_options = true,
            ("--log-ip-options", _) => o.ip_options = true,
            _ => {}
        }
        if let Some((pos, msg)) = problem {
            self.err(pos, msg, "write the rule as iptables would accept it");
        }
    }
}
