//! The options of the matches on each packet's own fields: `-m length --length`, `-m ttl
//! --ttl-eq/--ttl-lt/--ttl-gt`, `-m hl --hl-eq/--hl-lt/--hl-gt`, `-m mac --mac-source`,
//! `-m pkttype --pkt-type` (`config::packet_matches`).

use crate::matches::{Match, Scalar};
use crate::packet_matches::{LengthRange, MacAddr, PktType, Range, TtlRange};
use crate::ruleset::Family;

use super::family::fam_tool;
use super::rule::{set_once, RuleParser};
use super::words::Tok;

impl RuleParser<'_> {
    /// One value of type `T` for `tok`, negated as written; `None` after an error.
    pub(super) fn one<T: Scalar>(&mut self, tok: &Tok) -> Option<Match<T>> {
        let neg = self.take_neg();
        let v = self.value(tok)?;
        let neg = neg || self.take_neg();
        match T::parse_str(v.text.trim()) {
            Ok(x) => Some(Match {
                negated: neg,
                values: vec![x],
            }),
            Err(e) => {
                self.err(
                    v.pos,
                    format!("`{} {}`: {e}", tok.text, v.text),
                    T::EXPECTING,
                );
                None
            }
        }
    }

    /// `--length N[:M]`.
    pub(super) fn length(&mut self, tok: &Tok) {
        if let Some(m) = self.one::<LengthRange>(tok) {
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.length,
                m,
                tok,
                "length",
            );
        }
    }

    /// `--ttl-eq N` (`!` allowed), `--ttl-lt N`, `--ttl-gt N`; the same for `--hl-*`.
    pub(super) fn ttl(&mut self, tok: &Tok) {
        let hl = tok.text.starts_with("--hl");
        let own = if hl { Family::Ipv6 } else { Family::Ipv4 };
        if self.fam != own {
            self.err(
                tok.pos,
                format!("`{}` in an {} rule", tok.text, fam_tool(self.fam)),
                if hl {
                    "the hop limit is IPv6's: `-m hl` in ip6tables, `-m ttl` in iptables"
                } else {
                    "the TTL is IPv4's: `-m ttl` in iptables, `-m hl` in ip6tables"
                },
            );
        }
        let eq = tok.text.ends_with("-eq");
        if !eq {
            self.no_neg(tok);
        }
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let Ok(n) = v.text.trim().parse::<u8>() else {
            self.err(
                v.pos,
                format!("`{} {}`: not a number from 0 to 255", tok.text, v.text),
                "write e.g. `--ttl-eq 64`",
            );
            return;
        };
        let n = u16::from(n);
        let range = if eq {
            Some(Range { lo: n, hi: n })
        } else if tok.text.ends_with("-lt") {
            n.checked_sub(1).map(|hi| Range { lo: 0, hi })
        } else {
            (n < 255).then(|| Range { lo: n + 1, hi: 255 })
        };
        let Some(range) = range else {
            self.err(
                v.pos,
                format!("`{} {}` is never true", tok.text, v.text),
                "remove the rule: no packet matches it",
            );
            return;
        };
        let m: Match<TtlRange> = Match {
            negated: neg,
            values: vec![range],
        };
        let (slot, what) = if hl {
            (&mut self.out.rule.hop_limit, "hop limit")
        } else {
            (&mut self.out.rule.ttl, "TTL")
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    /// `--mac-source ADDR`.
    pub(super) fn mac(&mut self, tok: &Tok) {
        if let Some(m) = self.one::<MacAddr>(tok) {
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.mac_source,
                m,
                tok,
                "source MAC",
            );
        }
    }

    /// `--pkt-type unicast|broadcast|multicast`.
    pub(super) fn pkttype(&mut self, tok: &Tok) {
        if let Some(m) = self.one::<PktType>(tok) {
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.pkttype,
                m,
                tok,
                "packet type",
            );
        }
    }

    /// `--rt-type N` (`!` allowed): the IPv6 routing header's type.
    pub(super) fn rt(&mut self, tok: &Tok) {
        if tok.text != "--rt-type" {
            self.neg = None;
            let _ = self.value(tok);
            self.err(
                tok.pos,
                format!("unsupported option `{}`", tok.text),
                "statewall matches the routing header's type (`--rt-type`) only",
            );
            return;
        }
        if self.fam != Family::Ipv6 {
            self.err(
                tok.pos,
                "`--rt-type` in an iptables rule",
                "the routing header is IPv6's: `-m rt` in ip6tables",
            );
        }
        if let Some(m) = self.one::<TtlRange>(tok) {
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.rt_type,
                m,
                tok,
                "routing header type",
            );
        }
    }

    /// `-m set`'s options: `[!] --match-set NAME src|dst` against `--ipset`'s sets;
    /// `--update-counters` and `--update-subcounters` touch only ipset's counters; the
    /// counter matches and `--return-nomatch` are errors.
    pub(super) fn set_option(&mut self, tok: &Tok) {
        match tok.text.as_str() {
            "--update-counters" | "--update-subcounters" => {
                self.neg = None;
                return;
            }
            "--match-set" => {}
            other => {
                self.neg = None;
                if other != "--return-nomatch" {
                    let _ = self.value(tok);
                }
                self.err(
                    tok.pos,
                    format!("unsupported option `{other}`"),
                    "statewall matches set membership (`--match-set NAME src|dst`) only",
                );
                return;
            }
        }
        let neg = self.take_neg();
        let Some(name) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let Some(flags) = self.value(tok) else { return };
        let dir = match flags.text.as_str() {
            "src" => crate::sets::SetDir::Src,
            "dst" => crate::sets::SetDir::Dst,
            other => {
                self.err(
                    flags.pos,
                    format!(
                        "`--match-set {} {other}`: statewall's sets have one dimension",
                        name.text
                    ),
                    "write `src` or `dst` (hash:ip and hash:net sets)",
                );
                return;
            }
        };
        match self.sets.map(|s| s.get(&name.text)) {
            None => {
                self.err(
                    name.pos,
                    format!("set `{}`: its contents are not given", name.text),
                    "pass `--ipset FILE` with the output of `ipset save`",
                );
                return;
            }
            Some(None) => {
                self.err(
                    name.pos,
                    format!("no set `{}` in the --ipset file", name.text),
                    "save every set the rules name: `ipset save > FILE`",
                );
                return;
            }
            Some(Some(set)) if set.family != self.fam => {
                self.err(
                    name.pos,
                    format!(
                        "set `{}` is of the other family than this {} rule",
                        name.text,
                        fam_tool(self.fam)
                    ),
                    "iptables rules name `family inet` sets, ip6tables rules `family inet6` ones",
                );
                return;
            }
            Some(Some(_)) => {}
        }
        let m = crate::sets::MatchSet {
            name: name.text.clone(),
            dir,
            not: neg,
        };
        if self.out.rule.match_set.is_some() {
            self.err(
                tok.pos,
                "a second `--match-set` in one rule",
                "statewall takes one set per rule; split the rule",
            );
            return;
        }
        // A set implies nothing of the family: the rule keeps its own (written by import).
        self.out.rule.match_set = Some(m);
    }

    /// `-m tcpmss --mss N[:M]` (`!` allowed): the TCP MSS option's value.
    pub(super) fn tcpmss(&mut self, tok: &Tok) {
        if let Some(m) = self.one::<LengthRange>(tok) {
            set_once(
                &mut self.out.errs,
                self.file,
                &mut self.out.rule.tcp_mss,
                m,
                tok,
                "MSS",
            );
        }
    }
}
