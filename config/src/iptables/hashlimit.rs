//! `-m hashlimit`'s options (`config::hashlimit`): `--hashlimit-upto`/`--hashlimit-above`
//! (and the old `--hashlimit`), `--hashlimit-burst`, `--hashlimit-mode`, `--hashlimit-name`,
//! `--hashlimit-srcmask`/`--hashlimit-dstmask`, `--hashlimit-htable-max`,
//! `--hashlimit-htable-expire`; `--hashlimit-htable-size` and `--hashlimit-htable-gcinterval`
//! change no answer and are dropped; rate matching (`--hashlimit-rate-match`) and byte rates
//! are errors.

use crate::hashlimit::{HashLimit, HashMode, DEFAULT_EXPIRE_MS, DEFAULT_MAX};
use crate::limit::{Rate, DEFAULT_BURST};

use super::rule::RuleParser;
use super::words::Tok;

impl RuleParser<'_> {
    pub(super) fn hashlimit_mut(&mut self) -> &mut HashLimit {
        self.out.rule.hashlimit.get_or_insert_with(|| HashLimit {
            name: String::new(),
            upto: None,
            above: None,
            burst: DEFAULT_BURST,
            mode: Vec::new(),
            srcmask: None,
            dstmask: None,
            expire: DEFAULT_EXPIRE_MS,
            max: DEFAULT_MAX,
        })
    }

    pub(super) fn hashlimit_option(&mut self, tok: &Tok) {
        self.no_neg(tok);
        if self.hashlimit_at.is_none() {
            // `needs` reported the missing `-m hashlimit`; the value is still the option's.
            let _ = self.value(tok);
            return;
        }
        let name = tok.text.as_str();
        if matches!(name, "--hashlimit-rate-match" | "--hashlimit-rate-interval") {
            if name == "--hashlimit-rate-interval" {
                let _ = self.value(tok);
            }
            self.err(
                tok.pos,
                format!("unsupported option `{name}`"),
                "statewall's hashlimit is a token bucket per key (--hashlimit-upto/--hashlimit-above)",
            );
            return;
        }
        let Some(v) = self.value(tok) else { return };
        let text = v.text.trim().to_string();
        let number = |p: &mut Self, max: u32| -> Option<u32> {
            match text.parse::<u32>() {
                Ok(n) if n <= max => Some(n),
                _ => {
                    p.err(
                        v.pos,
                        format!("`{name} {text}`: not a number from 0 to {max}"),
                        "write a whole number",
                    );
                    None
                }
            }
        };
        match name {
            "--hashlimit-upto" | "--hashlimit" | "--hashlimit-above" => {
                match text.parse::<Rate>() {
                    Ok(r) => {
                        let h = self.hashlimit_mut();
                        if name == "--hashlimit-above" {
                            h.above = Some(r);
                        } else {
                            h.upto = Some(r);
                        }
                    }
                    Err(e) => self.err(
                        v.pos,
                        format!("`{name} {text}`: {e}"),
                        "statewall limits packets per time unit (byte rates are not translated)",
                    ),
                }
            }
            "--hashlimit-burst" => {
                if let Some(n) = number(self, u32::MAX) {
                    self.hashlimit_mut().burst = n;
                }
            }
            "--hashlimit-mode" => {
                let mut modes = Vec::new();
                for m in text.split(',') {
                    modes.push(match m.trim() {
                        "srcip" => HashMode::Srcip,
                        "dstip" => HashMode::Dstip,
                        "srcport" => HashMode::Srcport,
                        "dstport" => HashMode::Dstport,
                        other => {
                            self.err(
                                v.pos,
                                format!("unknown hashlimit mode `{other}`"),
                                "modes: srcip, srcport, dstip, dstport",
                            );
                            return;
                        }
                    });
                }
                modes.sort();
                modes.dedup();
                self.hashlimit_mut().mode = modes;
            }
            "--hashlimit-name" => self.hashlimit_mut().name.clone_from(&text),
            "--hashlimit-srcmask" | "--hashlimit-dstmask" => {
                if let Some(n) = number(self, 128) {
                    let h = self.hashlimit_mut();
                    if name == "--hashlimit-srcmask" {
                        h.srcmask = Some(n as u8);
                    } else {
                        h.dstmask = Some(n as u8);
                    }
                }
            }
            "--hashlimit-htable-max" => {
                if let Some(n) = number(self, u32::MAX) {
                    self.hashlimit_mut().max = n;
                }
            }
            "--hashlimit-htable-expire" => {
                if let Some(n) = number(self, u32::MAX) {
                    self.hashlimit_mut().expire = n;
                }
            }
            // Sizing and garbage-collection timing change no answer.
            _ => {}
        }
    }

    /// At the end of a rule with `-m hashlimit`: the name iptables requires.
    pub(super) fn finish_hashlimit(&mut self) {
        let Some(h) = &self.out.rule.hashlimit else {
            return;
        };
        if h.name.is_empty() {
            let at = self.hashlimit_at.unwrap_or_default();
            self.err(
                at,
                "`-m hashlimit` without `--hashlimit-name`",
                "iptables requires the table's name: add `--hashlimit-name NAME`",
            );
        }
    }
}
