//! Connection-tracking settings, named like the kernel's sysctls without the
//! `nf_conntrack_` prefix (`net.netfilter.nf_conntrack_tcp_timeout_established` is
//! `tcp_timeout_established`). Defaults are the kernel's (Documentation/networking/
//! nf_conntrack-sysctl.rst, Linux 6.x). Timeouts are in seconds.

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

            /// Set a setting from its sysctl text (`300`, `0`, `1`, `true`).
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
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
    (@ty bool) => { SysctlBool };
    (@default bool, $d:expr) => { SysctlBool($d) };
    (@default $t:ident, $d:expr) => { $d };
    (@show bool, $v:expr) => { u8::from($v.0).to_string() };
    (@show $t:ident, $v:expr) => { $v.to_string() };
    (@parse bool, $k:expr, $v:expr, $lo:expr, $hi:expr) => { parse_bool($k, $v).map(SysctlBool) };
    (@parse $t:ident, $k:expr, $v:expr, $lo:expr, $hi:expr) => { parse_num($k, $v, $lo, $hi) };
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
}

impl ConntrackSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
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

fn parse_num(key: &str, value: &str, lo: u64, hi: u64) -> Result<u32, SettingError> {
    let n: u64 = value.trim().parse().map_err(|_| SettingError {
        message: format!("{key} = `{value}` is not a number: allowed {lo} to {hi}"),
    })?;
    if n < lo || n > hi {
        return Err(SettingError::range(key, value, lo, hi));
    }
    Ok(n as u32)
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
}
