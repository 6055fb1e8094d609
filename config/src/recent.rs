//! A rule's `recent` match, iptables' `-m recent`: named lists of addresses seen recently,
//! each with the times it was last seen (the SSH brute-force recipe, ufw's `limit`).
//!
//! ```yaml
//! - {proto: tcp, dport: 22, ctstate: new, recent: {set: ssh}, action: continue}
//! - {proto: tcp, dport: 22, ctstate: new, recent: {update: ssh, seconds: 60, hitcount: 4}, action: drop}
//! ```
//!
//! Exactly one command, naming the list: `set` (add the packet's address, or record one
//! more time for it; always true), `rcheck` (true when the address is listed, within
//! `seconds` and with at least `hitcount` times when given), `update` (as `rcheck`, and when
//! true, records the time as `set` does), `remove` (true when listed; takes it off). As the
//! kernel's xt_recent: a list holds at most [`LIST_MAX`] addresses (the least recently set
//! or updated goes), each with its latest times (at least `hitcount` of them, so the count
//! is the kernel's).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Addresses a list holds (xt_recent's `ip_list_tot` default).
pub const LIST_MAX: usize = 100;
/// The largest `hitcount` (xt_recent refuses 256, `XT_RECENT_MAX_NSTAMPS`).
pub const MAX_HITCOUNT: u32 = 255;
/// xt_recent's limit on a list's name.
pub const NAME_MAX: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcheck: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<String>,
    /// Only times within the last this many seconds count (`rcheck`, `update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// At least this many times must count (`rcheck`, `update`; 1 to [`MAX_HITCOUNT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hitcount: Option<u32>,
    /// Also forget the address's times older than `seconds` (`--reap`).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub reap: bool,
    /// Whose address: the packet's `source` (default) or `destination`.
    #[serde(default, skip_serializing_if = "RecentSide::is_default")]
    pub side: RecentSide,
    /// Applied to the address first (`--mask`); its family is the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<IpAddr>,
    /// iptables' `!`: true when the command's test is false (a `set` never is).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub not: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecentSide {
    #[default]
    Source,
    Destination,
}

impl RecentSide {
    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's skip_serializing_if signature"
    )]
    fn is_default(&self) -> bool {
        *self == RecentSide::Source
    }
}

/// What a `recent` match does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecentCommand {
    Set,
    Rcheck,
    Update,
    Remove,
}

impl RecentCommand {
    pub fn name(self) -> &'static str {
        match self {
            RecentCommand::Set => "set",
            RecentCommand::Rcheck => "rcheck",
            RecentCommand::Update => "update",
            RecentCommand::Remove => "remove",
        }
    }

    /// Whether the command changes the list (the packet's fate then depends on order).
    pub fn writes(self) -> bool {
        self != RecentCommand::Rcheck
    }
}

impl Recent {
    /// The command and the list it names; `None` unless exactly one is given.
    pub fn command(&self) -> Option<(RecentCommand, &str)> {
        let given: Vec<(RecentCommand, &str)> = [
            (RecentCommand::Set, &self.set),
            (RecentCommand::Rcheck, &self.rcheck),
            (RecentCommand::Update, &self.update),
            (RecentCommand::Remove, &self.remove),
        ]
        .into_iter()
        .filter_map(|(c, n)| n.as_deref().map(|n| (c, n)))
        .collect();
        match given.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// What is wrong, as (key, message, hint), for the validator.
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        let Some((cmd, name)) = self.command() else {
            out.push((
                "",
                "`recent` needs exactly one of set, rcheck, update, remove".to_string(),
                "write e.g. `recent: {update: ssh, seconds: 60, hitcount: 4}`".to_string(),
            ));
            return out;
        };
        if name.is_empty()
            || name.len() > NAME_MAX
            || name.chars().any(|c| c.is_control() || c == '/')
        {
            out.push((
                cmd.name(),
                format!("`{name}` is not a list name"),
                format!("1 to {NAME_MAX} printable characters, no `/`"),
            ));
        }
        let checks = matches!(cmd, RecentCommand::Rcheck | RecentCommand::Update);
        for (key, present) in [
            ("seconds", self.seconds.is_some()),
            ("hitcount", self.hitcount.is_some()),
            ("reap", self.reap),
        ] {
            if present && !checks {
                out.push((
                    key,
                    format!("`{key}` goes with rcheck or update, not {}", cmd.name()),
                    format!("remove `{key}`"),
                ));
            }
        }
        if self.seconds == Some(0) {
            out.push((
                "seconds",
                "`seconds: 0`".into(),
                "at least 1, or leave it out".into(),
            ));
        }
        if let Some(h) = self.hitcount {
            if h == 0 || h > MAX_HITCOUNT {
                out.push((
                    "hitcount",
                    format!("`hitcount: {h}` is out of range"),
                    format!("1 to {MAX_HITCOUNT}, as xt_recent allows"),
                ));
            }
        }
        if self.reap && self.seconds.is_none() {
            out.push((
                "reap",
                "`reap` needs `seconds`".into(),
                "add `seconds: N`".into(),
            ));
        }
        if self.not && cmd == RecentCommand::Set {
            out.push((
                "not",
                "`set` is always true: `not` would make the rule never match".into(),
                "remove `not`".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(yaml: &str) -> Recent {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn one_command_and_its_options() {
        assert_eq!(
            recent("{update: ssh, seconds: 60, hitcount: 4}").command(),
            Some((RecentCommand::Update, "ssh"))
        );
        assert!(recent("{update: ssh, seconds: 60, hitcount: 4}")
            .problems()
            .is_empty());
        assert!(recent("{set: a, rcheck: a}").command().is_none());
        let p =
            |y: &str| -> Vec<&'static str> { recent(y).problems().iter().map(|p| p.0).collect() };
        assert_eq!(p("{set: a, seconds: 5}"), ["seconds"]);
        assert_eq!(p("{rcheck: a, hitcount: 256}"), ["hitcount"]);
        assert_eq!(p("{rcheck: a, reap: true}"), ["reap"]);
        assert_eq!(p("{set: a, not: true}"), ["not"]);
        assert_eq!(p("{seconds: 3}"), [""]);
    }
}
