//! A rule's `hashlimit`, iptables' `-m hashlimit`: a rate limit per address (or address and
//! port), each with its own token bucket in a named table shared by every rule that names
//! it, as the kernel's xt_hashlimit.
//!
//! ```yaml
//! - {proto: tcp, dport: 22, ctstate: new, hashlimit: {name: ssh, upto: 3/minute, burst: 3, mode: [srcip]}, action: accept}
//! ```
//!
//! `upto: RATE` matches the packets within the rate of their key; `above: RATE` those
//! over it. A key's bucket starts full (`burst` packets), fills at the rate, and is
//! forgotten after `expire` milliseconds without a packet. A table holds at most `max` keys
//! (the kernel's `--hashlimit-htable-max`); a packet that would need one more is dropped,
//! as the kernel drops it.

use serde::{Deserialize, Serialize};

use crate::limit::{Rate, DEFAULT_BURST, MAX_BURST};

/// The kernel's default `--hashlimit-htable-expire` (ms).
pub const DEFAULT_EXPIRE_MS: u32 = 10_000;
/// The keys a table holds without `max`: the kernel's default for a machine with 1 GiB or
/// more (`8 * --hashlimit-htable-size`, the size at most 8192).
pub const DEFAULT_MAX: u32 = 65_536;
/// The most keys statewall lets one table hold.
pub const MAX_MAX: u32 = 1 << 20;

/// What a table's keys are made of (`--hashlimit-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashMode {
    Srcip,
    Srcport,
    Dstip,
    Dstport,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashLimit {
    /// The table (`--hashlimit-name`).
    pub name: String,
    /// Match within this rate per key (`--hashlimit-upto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upto: Option<Rate>,
    /// Match over this rate per key (`--hashlimit-above`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<Rate>,
    #[serde(default = "default_burst", skip_serializing_if = "is_default_burst")]
    pub burst: u32,
    /// The key's parts; none: one bucket for every packet (`--hashlimit-mode` absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mode: Vec<HashMode>,
    /// Prefix lengths applied to the addresses (`--hashlimit-srcmask`, `--hashlimit-dstmask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcmask: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dstmask: Option<u8>,
    /// Milliseconds a key is kept without a packet (`--hashlimit-htable-expire`).
    #[serde(default = "default_expire", skip_serializing_if = "is_default_expire")]
    pub expire: u32,
    /// Keys the table holds at most (`--hashlimit-htable-max`).
    #[serde(default = "default_max", skip_serializing_if = "is_default_max")]
    pub max: u32,
}

fn default_burst() -> u32 {
    DEFAULT_BURST
}
fn default_expire() -> u32 {
    DEFAULT_EXPIRE_MS
}
fn default_max() -> u32 {
    DEFAULT_MAX
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_default_burst(b: &u32) -> bool {
    *b == DEFAULT_BURST
}
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_default_expire(b: &u32) -> bool {
    *b == DEFAULT_EXPIRE_MS
}
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_default_max(b: &u32) -> bool {
    *b == DEFAULT_MAX
}

impl HashLimit {
    /// The rate and whether the match is over it.
    pub fn rate(&self) -> Option<(Rate, bool)> {
        match (self.upto, self.above) {
            (Some(r), None) => Some((r, false)),
            (None, Some(r)) => Some((r, true)),
            _ => None,
        }
    }

    /// What is wrong, as (key, message, hint).
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if self.rate().is_none() {
            out.push((
                "",
                "`hashlimit` needs one of `upto` and `above`".into(),
                "write e.g. `hashlimit: {name: ssh, upto: 3/minute, mode: [srcip]}`".into(),
            ));
        }
        if self.name.is_empty() || self.name.len() > 200 || self.name.contains(['/', '\n']) {
            out.push((
                "name",
                format!("`{}` is not a table name", self.name),
                "1 to 200 characters, no `/`".into(),
            ));
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            out.push((
                "burst",
                format!("burst {} is out of range", self.burst),
                format!("1 to {MAX_BURST}"),
            ));
        }
        if self.max == 0 || self.max > MAX_MAX {
            out.push((
                "max",
                format!("max {} is out of range", self.max),
                format!("1 to {MAX_MAX}"),
            ));
        }
        if self.expire == 0 {
            out.push((
                "expire",
                "expire 0 forgets every key at once".into(),
                "milliseconds, at least 1".into(),
            ));
        }
        for (key, mask, mode) in [
            ("srcmask", self.srcmask, HashMode::Srcip),
            ("dstmask", self.dstmask, HashMode::Dstip),
        ] {
            if let Some(m) = mask {
                if m > 128 {
                    out.push((
                        key,
                        format!("{key} {m} is out of range"),
                        "a prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6".into(),
                    ));
                }
                if !self.mode.contains(&mode) {
                    out.push((
                        key,
                        format!(
                            "`{key}` without `{}` in `mode`",
                            if mode == HashMode::Srcip {
                                "srcip"
                            } else {
                                "dstip"
                            }
                        ),
                        "add it to `mode`, or remove the mask".into(),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rate_a_name_and_sane_bounds() {
        let h: HashLimit =
            serde_yaml::from_str("{name: ssh, upto: 3/minute, mode: [srcip], srcmask: 24}")
                .unwrap();
        assert!(h.problems().is_empty(), "{:?}", h.problems());
        assert_eq!(
            h.rate().map(|(r, above)| (r.to_string(), above)),
            Some(("3/minute".into(), false))
        );
        assert_eq!((h.burst, h.expire, h.max), (5, 10_000, 65_536));
        let h: HashLimit =
            serde_yaml::from_str("{name: x, upto: 1/s, above: 2/s, dstmask: 8}").unwrap();
        let keys: Vec<&str> = h.problems().iter().map(|p| p.0).collect();
        assert_eq!(keys, ["", "dstmask"]);
    }
}
