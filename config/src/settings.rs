//! Connection-tracking settings, named like the kernel's sysctls without the
//! `nf_conntrack_` prefix (`net.netfilter.nf_conntrack_tcp_timeout_established` is
//! `tcp_timeout_established`). Defaults are the kernel's (Documentation/networking/
//! nf_conntrack-sysctl.rst, Linux 6.x). Timeouts are in seconds.
//!
//! IP fragment reassembly, which runs before conntrack as the kernel's nf_defrag does, is set
//! here too: IPv6 by conntrack's own sysctls (`nf_conntrack_frag6_*`, so `frag6_timeout`),
//! IPv4 by the `net.ipv4.ipfrag_*` sysctls that nf_defrag_ipv4 shares with the host's stack,
//! keyed by their last component (`net.ipv4.ipfrag_time` is `ipfrag_time`; no conntrack
//! sysctl starts with `ipfrag_`). [`ConntrackSettings::sysctl_name`] gives each key's full
//! sysctl name. Ranges are the kernel's (net/ipv4/ip_fragment.c `ip4_frags_ns_ctl_table`,
//! net/ipv6/netfilter/nf_conntrack_reasm.c `nf_ct_frag6_sysctl_table`), including its one
//! cross-field rule: a `low_thresh` may not exceed its `high_thresh`
//! ([`ConntrackSettings::check_pairs`]).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::suggest::did_you_mean;

/// A sysctl boolean: YAML `true`/`false` or the kernel's `1`/`0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SysctlBool(pub bool);

impl<'de> Deserialize<'de> for SysctlBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SysctlBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true/false or 1/0")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SysctlBool, E> {
                Ok(SysctlBool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SysctlBool, E> {
                match v {
                    0 => Ok(SysctlBool(false)),
                    1 => Ok(SysctlBool(true)),
                    _ => Err(E::custom(format!(
                        "{v} is not a boolean: write 0 or 1 (or false/true)"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SysctlBool, E> {
                Err(E::custom(format!(
                    "{v} is not a boolean: write 0 or 1 (or false/true)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

macro_rules! settings {
    ($( $(#[$doc:meta])* $name:ident : $ty:ident = $default:expr, [$lo:expr, $hi:expr]; )*) => {
        /// Conntrack settings; every field is a kernel sysctl name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ConntrackSettings {
            $( $(#[$doc])* pub $name: settings!(@ty $ty), )*
        }

        impl Default for ConntrackSettings {
            fn default() -> Self {
                ConntrackSettings { $( $name: settings!(@default $ty, $default), )* }
            }
        }

        impl ConntrackSettings {
            /// Every setting's name, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The current value of a setting as the kernel's sysctl would print it.
            pub fn get(&self, key: &str) -> Result<String, SettingError> {
                match key {
                    $( stringify!($name) => Ok(settings!(@show $ty, self.$name)), )*
                    _ => Err(SettingError::unknown(key)),
                }
            }

            /// Set a setting from its sysctl text (`300`, `0`, `1`, `true`), checking its own
            /// range only. For a file of settings, which may raise a `low_thresh` before its
            /// `high_thresh`, set them all and then [`Self::check_pairs`]; [`Self::set`] checks
            /// the pair at once, as the kernel's sysctl write does.
            pub fn set_value(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
                match key {
                    $( stringify!($name) => {
                        self.$name = settings!(@parse $ty, key, value, $lo, $hi)?;
                        Ok(())
                    } )*
                    _ => Err(SettingError::unknown(key)),
                }
            }

            /// The allowed range of a setting, for messages.
            pub fn range(key: &str) -> Option<(u64, u64)> {
                match key {
                    $( stringify!($name) => Some(($lo, $hi)), )*
                    _ => None,
                }
            }

            /// Check every value lies in its range; returns the offending key and message.
            pub fn check_ranges(&self) -> Result<(), SettingError> {
                $( settings!(@check $ty, stringify!($name), self.$name, $lo, $hi)?; )*
                Ok(())
            }
        }
    };
    (@ty secs) => { u32 };
    (@ty count) => { u32 };
    (@ty bytes) => { u64 };
    (@ty bool) => { SysctlBool };
    (@default bool, $d:expr) => { SysctlBool($d) };
    (@default $t:ident, $d:expr) => { $d };
    (@show bool, $v:expr) => { u8::from($v.0).to_string() };
    (@show $t:ident, $v:expr) => { $v.to_string() };
    (@parse bool, $k:expr, $v:expr, $lo:expr, $hi:expr) => { parse_bool($k, $v).map(SysctlBool) };
    (@parse bytes, $k:expr, $v:expr, $lo:expr, $hi:expr) => { parse_num($k, $v, $lo, $hi) };
    // The ranges of u32 settings fit u32, so the cast keeps the value.
    (@parse $t:ident, $k:expr, $v:expr, $lo:expr, $hi:expr) => { parse_num($k, $v, $lo, $hi).map(|n| n as u32) };
    (@check bool, $k:expr, $v:expr, $lo:expr, $hi:expr) => { Ok::<(), SettingError>(()) };
    (@check $t:ident, $k:expr, $v:expr, $lo:expr, $hi:expr) => {
        if !($lo..=$hi).contains(&u64::from($v)) {
            Err(SettingError::range($k, &$v.to_string(), $lo, $hi))
        } else {
            Ok(())
        }
    };
}

const DAY: u64 = 86_400;
const YEAR: u64 = 365 * DAY;
/// Largest table we will pre-allocate (entries), so a typo cannot ask for terabytes.
pub const MAX_TABLE: u64 = 1 << 26;
/// Largest fragment memory threshold (bytes). The kernel's are `proc_doulongvec_minmax`
/// sysctls bounded only by each other, but statewall preallocates each family's
/// `high_thresh` at start, so a typo cannot ask for terabytes: 1 GiB.
pub const MAX_FRAG_MEM: u64 = 1 << 30;
/// The largest timeout in seconds `proc_dointvec_jiffies` accepts on every kernel: it refuses
/// more than `INT_MAX / HZ`, and HZ is at most 1000.
pub const JIFFIES_SECS_MAX: u64 = i32::MAX as u64 / 1000;

settings! {
    /// Table capacity over all shards (`nf_conntrack_max`, kernel default 262144 on a large box).
    max: count = 262_144, [1, MAX_TABLE];
    /// Seconds: an unanswered SYN.
    tcp_timeout_syn_sent: secs = 120, [1, YEAR];
    tcp_timeout_syn_recv: secs = 60, [1, YEAR];
    /// Seconds: five days, the kernel default.
    tcp_timeout_established: secs = 432_000, [1, YEAR];
    tcp_timeout_fin_wait: secs = 120, [1, YEAR];
    tcp_timeout_close_wait: secs = 60, [1, YEAR];
    tcp_timeout_last_ack: secs = 30, [1, YEAR];
    tcp_timeout_time_wait: secs = 120, [1, YEAR];
    tcp_timeout_close: secs = 10, [1, YEAR];
    /// Seconds: once a segment was retransmitted `tcp_max_retrans` times unacknowledged.
    tcp_timeout_max_retrans: secs = 300, [1, YEAR];
    /// Seconds: while data is outstanding unacknowledged.
    tcp_timeout_unacknowledged: secs = 300, [1, YEAR];
    tcp_max_retrans: count = 3, [0, 255];
    /// Pick up established TCP connections mid-stream (1, kernel default).
    tcp_loose: bool = true, [0, 1];
    /// Only mark out-of-window RSTs INVALID, accept other out-of-window segments.
    tcp_be_liberal: bool = false, [0, 1];
    /// Do not mark RSTs with a bad sequence number INVALID.
    tcp_ignore_invalid_rst: bool = false, [0, 1];
    udp_timeout: secs = 30, [1, YEAR];
    udp_timeout_stream: secs = 120, [1, YEAR];
    icmp_timeout: secs = 30, [1, YEAR];
    icmpv6_timeout: secs = 30, [1, YEAR];
    generic_timeout: secs = 600, [1, YEAR];
    /// Verify L4 checksums and mark bad ones INVALID (kernel default 1).
    checksum: bool = true, [0, 1];
    /// Most pending expectations (FTP data connections) at once.
    expect_max: count = 4096, [1, 1 << 20];
    /// Bytes: most memory IPv6 fragments awaiting reassembly may hold
    /// (`net.netfilter.nf_conntrack_frag6_high_thresh`); a fragment that would go beyond it is
    /// dropped. At least `frag6_low_thresh`; 0 (with `frag6_low_thresh` 0) queues nothing.
    frag6_high_thresh: bytes = 4_194_304, [0, MAX_FRAG_MEM];
    /// Bytes (`net.netfilter.nf_conntrack_frag6_low_thresh`): no effect since Linux 4.17
    /// beyond the kernel's rule that it is at most `frag6_high_thresh`; kept so that a
    /// sysctl file setting it imports.
    frag6_low_thresh: bytes = 3_145_728, [0, MAX_FRAG_MEM];
    /// Seconds (`net.netfilter.nf_conntrack_frag6_timeout`): an incomplete IPv6 datagram is
    /// dropped this long after its first fragment arrived.
    frag6_timeout: secs = 60, [0, JIFFIES_SECS_MAX];
    /// Bytes: most memory IPv4 fragments awaiting reassembly may hold
    /// (`net.ipv4.ipfrag_high_thresh`); a fragment that would go beyond it is dropped. At
    /// least `ipfrag_low_thresh`; 0 (with `ipfrag_low_thresh` 0) queues nothing.
    ipfrag_high_thresh: bytes = 4_194_304, [0, MAX_FRAG_MEM];
    /// Bytes (`net.ipv4.ipfrag_low_thresh`): no effect since Linux 4.17 beyond the kernel's
    /// rule that it is at most `ipfrag_high_thresh`; kept so that a sysctl file setting it
    /// imports.
    ipfrag_low_thresh: bytes = 3_145_728, [0, MAX_FRAG_MEM];
    /// Seconds (`net.ipv4.ipfrag_time`): an incomplete IPv4 datagram is dropped this long
    /// after its first fragment arrived.
    ipfrag_time: secs = 30, [0, JIFFIES_SECS_MAX];
    /// `net.ipv4.ipfrag_max_dist`: when more than this many fragments from the same source
    /// address (of any datagram) arrived since a queue's last fragment, the queue's fragments
    /// are discarded and it starts over from the new one; 0 disables the check.
    ipfrag_max_dist: count = 64, [0, i32::MAX as u64];
}

/// The sysctl prefix of the IPv4 fragment settings, which live outside net.netfilter.
const IPV4_FRAG_PREFIX: &str = "ipfrag_";

/// A `low_thresh` above its `high_thresh`, which the kernel refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    /// The `low_thresh` key.
    pub low: &'static str,
    /// The `high_thresh` key.
    pub high: &'static str,
    /// Names both and their values.
    pub message: String,
}

impl ConntrackSettings {
    /// `(low_thresh, high_thresh)` pairs: the kernel bounds each by the other.
    pub const PAIRS: &'static [(&'static str, &'static str)] = &[
        ("frag6_low_thresh", "frag6_high_thresh"),
        ("ipfrag_low_thresh", "ipfrag_high_thresh"),
    ];

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The kernel's full sysctl name of a setting: `net.ipv4.ipfrag_time` for `ipfrag_time`,
    /// `net.netfilter.nf_conntrack_X` for the others.
    pub fn sysctl_name(key: &str) -> Option<String> {
        if !Self::KEYS.contains(&key) {
            None
        } else if key.starts_with(IPV4_FRAG_PREFIX) {
            Some(format!("net.ipv4.{key}"))
        } else {
            Some(format!("net.netfilter.nf_conntrack_{key}"))
        }
    }

    /// Set a setting as the kernel's sysctl write does: its range, and for a threshold the
    /// other one of its pair as it is now (a `high_thresh` cannot go below the `low_thresh`,
    /// nor a `low_thresh` above the `high_thresh`). On error nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let before = *self;
        self.set_value(key, value)?;
        if let Some(e) = self
            .check_pairs()
            .into_iter()
            .find(|e| e.low == key || e.high == key)
        {
            *self = before;
            let other = if e.low == key { e.high } else { e.low };
            return Err(SettingError {
                message: format!("{}; change {other} first", e.message),
            });
        }
        Ok(())
    }

    /// Every `low_thresh` above its `high_thresh` (empty when all are in order).
    pub fn check_pairs(&self) -> Vec<PairError> {
        Self::PAIRS
            .iter()
            .filter_map(|&(low, high)| {
                let (lv, hv) = (self.get(low).ok()?, self.get(high).ok()?);
                let (l, h) = (lv.parse::<u64>().ok()?, hv.parse::<u64>().ok()?);
                (l > h).then(|| PairError {
                    low,
                    high,
                    message: format!(
                        "{low} = {l} is above {high} = {h}: the kernel requires {low} <= {high}"
                    ),
                })
            })
            .collect()
    }
}

/// A setting that cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingError {
    pub message: String,
}

impl SettingError {
    fn unknown(key: &str) -> Self {
        SettingError {
            message: format!(
                "unknown conntrack setting `{key}`{}; settings are {}",
                did_you_mean(key, ConntrackSettings::KEYS),
                ConntrackSettings::KEYS.join(", ")
            ),
        }
    }

    fn range(key: &str, value: &str, lo: u64, hi: u64) -> Self {
        SettingError {
            message: format!("{key} = {value} is out of range: allowed {lo} to {hi}"),
        }
    }
}

fn parse_num(key: &str, value: &str, lo: u64, hi: u64) -> Result<u64, SettingError> {
    let n: u64 = value.trim().parse().map_err(|_| SettingError {
        message: format!("{key} = `{value}` is not a number: allowed {lo} to {hi}"),
    })?;
    if n < lo || n > hi {
        return Err(SettingError::range(key, value, lo, hi));
    }
    Ok(n)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, SettingError> {
    match value.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(SettingError {
            message: format!("{key} = `{value}` is not a boolean: write 0 or 1"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_kernels() {
        let s = ConntrackSettings::default();
        assert_eq!(s.tcp_timeout_established, 432_000);
        assert_eq!(s.get("udp_timeout_stream").unwrap(), "120");
        assert_eq!(s.get("tcp_loose").unwrap(), "1");
    }

    #[test]
    fn set_checks_names_and_ranges() {
        let mut s = ConntrackSettings::default();
        s.set("tcp_timeout_established", "300").unwrap();
        assert_eq!(s.tcp_timeout_established, 300);
        s.set("tcp_be_liberal", "1").unwrap();
        assert!(s.tcp_be_liberal.0);
        let e = s.set("tcp_timeout_establised", "1").unwrap_err();
        assert!(
            e.message
                .contains("did you mean `tcp_timeout_established`?"),
            "{e}"
        );
        let e = s.set("max", "0").unwrap_err();
        assert!(e.message.contains("allowed 1 to"), "{e}");
    }

    #[test]
    fn fragment_defaults_are_the_kernels() {
        let s = ConntrackSettings::default();
        assert_eq!(s.ipfrag_high_thresh, 4_194_304);
        assert_eq!(s.ipfrag_low_thresh, 3_145_728);
        assert_eq!(s.ipfrag_time, 30);
        assert_eq!(s.ipfrag_max_dist, 64);
        assert_eq!(s.frag6_high_thresh, 4_194_304);
        assert_eq!(s.frag6_low_thresh, 3_145_728);
        assert_eq!(s.frag6_timeout, 60);
        assert!(s.check_pairs().is_empty());
        assert_eq!(s.get("ipfrag_high_thresh").unwrap(), "4194304");
    }

    #[test]
    fn fragment_sysctl_names() {
        let name = |k| ConntrackSettings::sysctl_name(k);
        assert_eq!(name("ipfrag_time").as_deref(), Some("net.ipv4.ipfrag_time"));
        assert_eq!(
            name("frag6_timeout").as_deref(),
            Some("net.netfilter.nf_conntrack_frag6_timeout")
        );
        assert_eq!(
            name("udp_timeout_stream").as_deref(),
            Some("net.netfilter.nf_conntrack_udp_timeout_stream")
        );
        assert_eq!(name("ipfrag_tme"), None);
    }

    #[test]
    fn fragment_ranges_are_the_kernels() {
        let mut s = ConntrackSettings::default();
        // proc_dointvec_jiffies: 0 .. INT_MAX / HZ (HZ up to 1000).
        s.set("ipfrag_time", "0").unwrap();
        s.set("frag6_timeout", "2147483").unwrap();
        assert_eq!(s.frag6_timeout, 2_147_483);
        let e = s.set("ipfrag_time", "2147484").unwrap_err();
        assert_eq!(
            e.message,
            "ipfrag_time = 2147484 is out of range: allowed 0 to 2147483"
        );
        assert!(s.set("frag6_timeout", "-1").is_err());
        // proc_dointvec_minmax from 0: 0 disables the check.
        s.set("ipfrag_max_dist", "0").unwrap();
        s.set("ipfrag_max_dist", "2147483647").unwrap();
        assert!(s.set("ipfrag_max_dist", "2147483648").is_err());
        // proc_doulongvec_minmax in the kernel; here at most MAX_FRAG_MEM (preallocated).
        s.set("ipfrag_high_thresh", "1073741824").unwrap();
        assert_eq!(s.ipfrag_high_thresh, MAX_FRAG_MEM);
        let e = s.set("ipfrag_high_thresh", "1073741825").unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let e = s
            .set("ipfrag_high_thresh", "18446744073709551616")
            .unwrap_err();
        assert!(e.message.contains("not a number"), "{e}");
        assert_eq!(
            ConntrackSettings::range("frag6_low_thresh"),
            Some((0, MAX_FRAG_MEM))
        );
    }

    #[test]
    fn set_keeps_low_thresh_at_most_high_thresh() {
        let mut s = ConntrackSettings::default();
        // Below the default low_thresh: refused, as the kernel refuses it; nothing changes.
        let e = s.set("ipfrag_high_thresh", "1000000").unwrap_err();
        assert_eq!(
            e.message,
            "ipfrag_low_thresh = 3145728 is above ipfrag_high_thresh = 1000000: the kernel \
             requires ipfrag_low_thresh <= ipfrag_high_thresh; change ipfrag_low_thresh first"
        );
        assert_eq!(s, ConntrackSettings::default());
        let e = s.set("frag6_low_thresh", "4194305").unwrap_err();
        assert!(e.message.contains("change frag6_high_thresh first"), "{e}");
        // Equal is fine; lowering low first, then high, works as in the kernel.
        s.set("frag6_low_thresh", "4194304").unwrap();
        s.set("ipfrag_low_thresh", "0").unwrap();
        s.set("ipfrag_high_thresh", "0").unwrap();
        assert_eq!((s.ipfrag_low_thresh, s.ipfrag_high_thresh), (0, 0));
        // set_value checks the range only; check_pairs names both of a pair out of order.
        let mut s = ConntrackSettings::default();
        s.set_value("frag6_high_thresh", "100").unwrap();
        let e = s.check_pairs();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].low, e[0].high),
            ("frag6_low_thresh", "frag6_high_thresh")
        );
        assert!(
            e[0].message.contains("frag6_low_thresh = 3145728"),
            "{}",
            e[0].message
        );
        assert!(
            e[0].message.contains("frag6_high_thresh = 100"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn unknown_fragment_setting_suggests() {
        let mut s = ConntrackSettings::default();
        let e = s.set("ipfrag_tme", "3").unwrap_err();
        assert!(e.message.contains("did you mean `ipfrag_time`?"), "{e}");
        let e = s.get("frag6_timout").unwrap_err();
        assert!(e.message.contains("did you mean `frag6_timeout`?"), "{e}");
    }
}
