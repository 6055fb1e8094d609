//! `-m addrtype --src-type/--dst-type TYPE[,TYPE...]` on a bump-in-the-wire gateway. The
//! kernel asks its routing table what an address is; a transparent gateway routes nothing
//! and owns no address its forwarded packets are sent to, so the types are what the address
//! itself says:
//!
//! | type | an address of that type | translated as |
//! |---|---|---|
//! | `BROADCAST` | 255.255.255.255 (IPv6 has no broadcast) | `src`/`dst` 255.255.255.255 |
//! | `MULTICAST` | 224.0.0.0/4, ff00::/8 | `src`/`dst` those networks |
//! | `UNICAST` | any other | `src`/`dst` `{not: [...]}` of the two above |
//! | `LOCAL` | the gateway's own: never a forwarded packet's | never true: the rule is left out |
//! | `BLACKHOLE`, `UNREACHABLE`, `PROHIBIT`, `THROW`, `NAT`, `XRESOLVE`, `ANYCAST`, `UNSPEC` | routes a gateway does not have | never true |
//!
//! A negated type list (`! --dst-type LOCAL`) is the complement. The rule's `-s`/`-d` on
//! the same side is an error (one address match per side).

use crate::matches::{Cidr, Match, Scalar};
use crate::ruleset::Family;

use super::rule::RuleParser;
use super::words::Tok;

const NEVER: &[&str] = &[
    "LOCAL",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
    "ANYCAST",
    "UNSPEC",
];

/// A network of the table above (constants that parse).
fn cidr(s: &str) -> Vec<Cidr> {
    Cidr::parse_str(s).into_iter().collect()
}

impl RuleParser<'_> {
    /// `--src-type`/`--dst-type`, and `--limit-iface-in`/`--limit-iface-out` (errors).
    pub(super) fn addrtype(&mut self, tok: &Tok) {
        if tok.text.starts_with("--limit-iface") {
            self.neg = None;
            self.err(
                tok.pos,
                format!("unsupported option `{}`", tok.text),
                "a bump-in-the-wire gateway routes nothing: the address type does not depend on an interface",
            );
            return;
        }
        let src = tok.text == "--src-type";
        let neg = self.take_neg();
        let Some(v) = self.value(tok) else { return };
        let neg = neg || self.take_neg();
        let v4 = self.fam == Family::Ipv4;
        let special: Vec<Cidr> = if v4 {
            [cidr("255.255.255.255"), cidr("224.0.0.0/4")].concat()
        } else {
            cidr("ff00::/8")
        };
        // What the listed types cover: some of (broadcast, multicast, unicast).
        let (mut bcast, mut mcast, mut ucast) = (false, false, false);
        for t in v.text.split(',') {
            match t.trim().to_ascii_uppercase().as_str() {
                "BROADCAST" => bcast = true,
                "MULTICAST" => mcast = true,
                "UNICAST" => ucast = true,
                n if NEVER.contains(&n) => {}
                other => {
                    self.err(
                        v.pos,
                        format!("unknown address type `{other}`"),
                        "types: UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE, UNSPEC",
                    );
                    return;
                }
            }
        }
        if !v4 {
            bcast = false;
        }
        let mut listed: Vec<Cidr> = Vec::new();
        if bcast {
            listed.extend(cidr("255.255.255.255"));
        }
        if mcast {
            listed.extend(if v4 {
                cidr("224.0.0.0/4")
            } else {
                cidr("ff00::/8")
            });
        }
        // The addresses the match holds for, as (negated, networks); None: every address.
        let m: Option<(bool, Vec<Cidr>)> = match (ucast, neg) {
            (false, false) => Some((false, listed)),
            (false, true) => Some((true, listed)),
            // Unicast is what is not special; with broadcast/multicast listed too it is the
            // complement of the specials not listed.
            (true, false) => {
                let rest: Vec<Cidr> = special
                    .iter()
                    .filter(|c| !listed.contains(c))
                    .copied()
                    .collect();
                Some((true, rest))
            }
            (true, true) => {
                let rest: Vec<Cidr> = special
                    .iter()
                    .filter(|c| !listed.contains(c))
                    .copied()
                    .collect();
                Some((false, rest))
            }
        };
        let Some((negated, values)) = m else { return };
        let what = format!("`{}{} {}`", if neg { "! " } else { "" }, tok.text, v.text);
        if values.is_empty() {
            if negated {
                return; // every address: no constraint
            }
            self.out.never = true;
            self.warn(
                v.pos,
                format!("{what} is never true for forwarded traffic: the rule is left out"),
                "a bump-in-the-wire gateway owns no address its forwarded packets are sent to, and routes nothing",
            );
            return;
        }
        let slot = if src {
            &mut self.out.rule.src
        } else {
            &mut self.out.rule.dst
        };
        if slot.is_some() {
            self.err(
                tok.pos,
                format!("{what} beside an address match on the same side"),
                "statewall translates the address type into an address match; write them as two rules",
            );
            return;
        }
        *slot = Some(Match { negated, values });
    }
}
