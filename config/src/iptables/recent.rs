//! `-m recent`'s options: `--set`, `--rcheck`, `--update`, `--remove` (`!` allowed),
//! `--seconds`, `--hitcount`, `--reap`, `--name`, `--rsource`, `--rdest`, `--mask`
//! (`config::recent`).

use std::net::IpAddr;

use crate::recent::{Recent, RecentSide};
use crate::ruleset::Family;

use super::rule::RuleParser;
use super::words::Tok;

/// Modules iptables may run after a `recent` that changes its list without the order
/// mattering here: statewall tests `recent` after every other match but `limit`.
const AFTER_RECENT_OK: &[&str] = &["recent", "comment", "limit"];

impl RuleParser<'_> {
    /// The rule's `recent` match (made by `-m recent`).
    fn recent(&mut self) -> &mut Recent {
        self.out.rule.recent.get_or_insert_with(Recent::default)
    }

    pub(super) fn recent_option(&mut self, tok: &Tok) {
        let name = tok.text.as_str();
        if self.out.rule.recent.is_none() {
            return; // `needs` reported the missing `-m recent`
        }
        match name {
            "--set" | "--rcheck" | "--update" | "--remove" => {
                let neg = self.neg.take().is_some();
                let cmd = name.trim_start_matches('-').to_string();
                let r = self.recent();
                let slot = match name {
                    "--set" => &mut r.set,
                    "--rcheck" => &mut r.rcheck,
                    "--update" => &mut r.update,
                    _ => &mut r.remove,
                };
                // The list's name is filled in by `finish_recent`.
                *slot = Some(String::new());
                r.not = neg;
                if self.recent_cmd.replace((cmd, tok.pos)).is_some() {
                    self.err(
                        tok.pos,
                        "a second recent command in one rule",
                        "give one of --set, --rcheck, --update, --remove",
                    );
                }
            }
            "--seconds" | "--hitcount" => {
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                let Ok(n) = v.text.trim().parse::<u32>() else {
                    self.err(
                        v.pos,
                        format!("`{name} {}`: not a number", v.text),
                        "write a whole number",
                    );
                    return;
                };
                let r = self.recent();
                if name == "--seconds" {
                    r.seconds = Some(n);
                } else {
                    r.hitcount = Some(n);
                }
            }
            "--reap" => {
                self.no_neg(tok);
                self.recent().reap = true;
            }
            "--rsource" | "--rdest" => {
                self.no_neg(tok);
                self.recent().side = if name == "--rdest" {
                    RecentSide::Destination
                } else {
                    RecentSide::Source
                };
            }
            "--name" => {
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                self.recent_name = Some(v.text.clone());
            }
            "--mask" => {
                self.no_neg(tok);
                let Some(v) = self.value(tok) else { return };
                match v.text.trim().parse::<IpAddr>() {
                    Ok(m) if m.is_ipv4() == (self.fam == Family::Ipv4) => {
                        // All ones is the default: leave it out.
                        let all = match m {
                            IpAddr::V4(a) => a.to_bits() == u32::MAX,
                            IpAddr::V6(a) => a.to_bits() == u128::MAX,
                        };
                        self.recent().mask = (!all).then_some(m);
                    }
                    _ => self.err(
                        v.pos,
                        format!("`--mask {}`: not an address of the rule's family", v.text),
                        "write a netmask like 255.255.255.0 (ffff:ffff:ffff:ffff:: in ip6tables)",
                    ),
                }
            }
            "--rttl" => {
                self.no_neg(tok);
                self.err(
                    tok.pos,
                    "unsupported option `--rttl`",
                    "statewall's recent lists do not keep TTLs; remove --rttl",
                );
            }
            _ => {}
        }
    }

    /// At the end of a rule with `-m recent`: the list's name in its command, and a command
    /// that changes the list after every other match but `comment` and `limit`.
    pub(super) fn finish_recent(&mut self) {
        let Some(r) = self.out.rule.recent.as_mut() else {
            return;
        };
        let name = self.recent_name.take().unwrap_or_else(|| "DEFAULT".into());
        for slot in [&mut r.set, &mut r.rcheck, &mut r.update, &mut r.remove] {
            if slot.is_some() {
                *slot = Some(name.clone());
            }
        }
        let Some((cmd, pos)) = self.recent_cmd.take() else {
            let at = self.recent_at.unwrap_or_default();
            self.err(
                at,
                "`-m recent` without --set, --rcheck, --update or --remove",
                "give the command, e.g. `-m recent --update --seconds 60 --hitcount 4 --name ssh`",
            );
            return;
        };
        if cmd == "rcheck" {
            return;
        }
        let after: Vec<String> = self
            .modules
            .iter()
            .skip_while(|m| *m != "recent")
            .filter(|m| !AFTER_RECENT_OK.contains(&m.as_str()))
            .cloned()
            .collect();
        if let Some(m) = after.first() {
            self.err(
                pos,
                format!("`--{cmd}` changes its list before `-m {m}` is tested"),
                format!(
                    "statewall tests `recent` after the rule's other matches; write `-m recent` after `-m {m}`, as ufw and the usual recipes do"
                ),
            );
        }
    }
}
