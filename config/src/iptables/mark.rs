//! Marks: `-m mark --mark`, `-m connmark --mark`, and the options of `-j MARK` and `-j
//! CONNMARK`, as libxt_MARK and libxt_CONNMARK read them (every form becomes the kernel's
//! `--set-xmark` arithmetic, see [`crate::mark`]).

use crate::mark::{parse_u32, MarkCopy, MarkValue};

use super::rule::{set_once, ConnMarkOp, RuleParser, Target};
use super::words::Tok;

/// The options of `-j MARK` and `-j CONNMARK` that set a mark.
const SET_OPTS: &[&str] = &[
    "--set-xmark",
    "--set-mark",
    "--and-mark",
    "--or-mark",
    "--xor-mark",
];

/// Whether `opt` is an option of `-j MARK` or `-j CONNMARK` (given after it).
pub(super) fn is_target_option(opt: &str) -> bool {
    SET_OPTS.contains(&opt)
        || matches!(
            opt,
            "--save-mark"
                | "--restore-mark"
                | "--nfmask"
                | "--ctmask"
                | "--left-shift-mark"
                | "--right-shift-mark"
        )
}

impl RuleParser<'_> {
    /// `[!] --mark VALUE[/MASK]`: of whichever of `-m mark` and `-m connmark` was loaded
    /// last (iptables gives an option to the newest module that has it).
    pub(super) fn mark_match(&mut self, tok: &Tok) {
        let last = self
            .modules
            .iter()
            .rev()
            .find(|m| matches!(m.as_str(), "mark" | "connmark"))
            .cloned();
        let Some(module) = last else {
            self.needs(
                tok,
                &["mark", "connmark"],
                &[],
                "`-m mark` or `-m connmark`",
            );
            self.neg = None;
            let _ = self.value(tok);
            return;
        };
        let Some(m) = self.one::<MarkValue>(tok) else {
            return;
        };
        let (slot, what) = if module == "mark" {
            (&mut self.out.rule.mark, "mark")
        } else {
            (&mut self.out.rule.connmark, "connmark")
        };
        set_once(&mut self.out.errs, self.file, slot, m, tok, what);
    }

    /// An option of `-j MARK` or `-j CONNMARK`.
    pub(super) fn mark_target_option(&mut self, tok: &Tok) {
        self.no_neg(tok);
        let opt = tok.text.as_str();
        let connmark = match &self.out.target {
            Some((Target::Mark(_), _)) => false,
            Some((Target::ConnMark(_), _)) => true,
            _ => {
                let _ = self.value_if(opt);
                self.err(
                    tok.pos,
                    format!("`{opt}` without `-j MARK` or `-j CONNMARK` before it"),
                    format!("write `-j MARK {opt} ...` or `-j CONNMARK {opt} ...`"),
                );
                return;
            }
        };
        if matches!(opt, "--left-shift-mark" | "--right-shift-mark") {
            let Some(v) = self.value(tok) else { return };
            if !connmark {
                self.err(
                    tok.pos,
                    format!("`{opt}` is an option of `-j CONNMARK`, not of `-j MARK`"),
                    "MARK takes --set-xmark, --set-mark, --and-mark, --or-mark and --xor-mark",
                );
                return;
            }
            if parse_u32(&v.text) != Some(0) {
                self.err(
                    v.pos,
                    format!("unsupported `-j CONNMARK {opt}`"),
                    "statewall copies marks without shifting them; write the rule without the shift",
                );
            }
            return;
        }
        if SET_OPTS.contains(&opt) {
            let Some(v) = self.value(tok) else { return };
            let Some(value) = self.set_value(opt, v) else {
                return;
            };
            let slot = match &mut self.out.target {
                Some((Target::Mark(slot), _)) => slot,
                Some((Target::ConnMark(op), _)) => {
                    let prev = op.replace(ConnMarkOp::Set(value));
                    self.once(tok, prev.is_some());
                    return;
                }
                _ => return,
            };
            let prev = slot.replace(value);
            self.once(tok, prev.is_some());
            return;
        }
        if !connmark {
            self.err(
                tok.pos,
                format!("`{opt}` is an option of `-j CONNMARK`, not of `-j MARK`"),
                "MARK takes --set-xmark, --set-mark, --and-mark, --or-mark and --xor-mark",
            );
            let _ = self.value_if(opt);
            return;
        }
        match opt {
            "--save-mark" | "--restore-mark" => {
                let copy = MarkCopy::default();
                let new = if opt == "--save-mark" {
                    ConnMarkOp::Save(copy)
                } else {
                    ConnMarkOp::Restore(copy)
                };
                if let Some((Target::ConnMark(op), _)) = &mut self.out.target {
                    let prev = op.replace(new);
                    self.once(tok, prev.is_some());
                }
            }
            // "--nfmask" | "--ctmask" | "--mask"
            _ => {
                let Some(v) = self.value(tok) else { return };
                let Some(bits) = parse_u32(&v.text) else {
                    self.err(
                        v.pos,
                        format!("`{opt} {}`: not a 32-bit number", v.text),
                        "write a mask like 0xff or 0xffffffff",
                    );
                    return;
                };
                let Some((
                    Target::ConnMark(Some(ConnMarkOp::Save(copy) | ConnMarkOp::Restore(copy))),
                    _,
                )) = &mut self.out.target
                else {
                    self.err(
                        tok.pos,
                        format!("`{opt}` without `--save-mark` or `--restore-mark` before it"),
                        format!("write `-j CONNMARK --save-mark {opt} MASK` (or `--restore-mark`)"),
                    );
                    return;
                };
                if opt != "--ctmask" {
                    copy.nfmask = bits;
                }
                if opt != "--nfmask" {
                    copy.ctmask = bits;
                }
            }
        }
    }

    /// The value of a mark-setting option as `--set-xmark` arithmetic: `--set-mark V/M` is
    /// `V/(M|V)`, `--and-mark B` is `0/!B`, `--or-mark B` is `B/B`, `--xor-mark B` is `B/0`.
    fn set_value(&mut self, opt: &str, v: &Tok) -> Option<MarkValue> {
        let bad = |p: &mut Self, what: &str| {
            p.err(
                v.pos,
                format!("`{opt} {}`: {what}", v.text),
                "write a 32-bit value like 0x10 (and for --set-xmark/--set-mark an optional mask, 0x10/0xff)",
            );
            None
        };
        let masked = matches!(opt, "--set-xmark" | "--set-mark");
        if masked {
            let Ok(m) = <MarkValue as crate::matches::Scalar>::parse_str(v.text.trim()) else {
                return bad(self, "not a mark");
            };
            return Some(if opt == "--set-mark" {
                MarkValue {
                    value: m.value,
                    mask: m.mask | m.value,
                }
            } else {
                m
            });
        }
        let Some(bits) = parse_u32(&v.text) else {
            return bad(self, "not a 32-bit number");
        };
        Some(match opt {
            "--and-mark" => MarkValue {
                value: 0,
                mask: !bits,
            },
            "--or-mark" => MarkValue {
                value: bits,
                mask: bits,
            },
            _ => MarkValue {
                value: bits,
                mask: 0,
            },
        })
    }

    /// The value of an option that takes one, when it has one (for skipping a misplaced one).
    fn value_if(&mut self, opt: &str) -> Option<()> {
        if matches!(opt, "--save-mark" | "--restore-mark") {
            return None;
        }
        self.next().map(|_| ())
    }

    fn once(&mut self, tok: &Tok, twice: bool) {
        if twice {
            self.err(
                tok.pos,
                format!("`{}`: the target's mark is already set in this rule", tok.text),
                "give one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark, --save-mark, --restore-mark",
            );
        }
    }

    /// A `-j MARK`/`-j CONNMARK` with nothing to do is refused, as iptables refuses it.
    pub(super) fn finish_mark(&mut self) {
        let missing = match &self.out.target {
            Some((Target::Mark(None), p)) => Some(("MARK", *p)),
            Some((Target::ConnMark(None), p)) => Some(("CONNMARK", *p)),
            _ => None,
        };
        if let Some((t, p)) = missing {
            self.err(
                p,
                format!("`-j {t}` without an operation"),
                if t == "MARK" {
                    "add --set-xmark VALUE[/MASK] (or --set-mark, --and-mark, --or-mark, --xor-mark)"
                } else {
                    "add --set-xmark VALUE[/MASK], --save-mark or --restore-mark"
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_target_option;

    #[test]
    fn target_options() {
        assert!(is_target_option("--set-xmark"));
        assert!(is_target_option("--restore-mark"));
        assert!(!is_target_option("--mark"));
        assert!(!is_target_option("--mask"));
    }
}
