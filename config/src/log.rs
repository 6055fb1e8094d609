//! What a `log` rule writes (iptables' `-j LOG`, nftables' `log`): a line per matching
//! packet, in the kernel's format, starting with `prefix`, at a syslog `level`, optionally
//! with the TCP sequence numbers and the TCP and IP options. `log` decides nothing: the walk
//! goes on with the next rule, as LOG does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest prefix: the kernel's `NF_LOG_PREFIXLEN` (128) less its terminating NUL.
/// iptables itself refuses more than 29 characters; nftables takes up to 127.
pub const MAX_PREFIX: usize = 127;

/// `log: {prefix: "drop: ", level: warning, tcp_sequence: true}` on a rule with
/// `action: log`. Every key may be left out: no prefix, level `warning`, no extras (LOG's
/// defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOptions {
    /// Written before the line (`--log-prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Syslog level (`--log-level`).
    #[serde(default, skip_serializing_if = "LogLevel::is_default")]
    pub level: LogLevel,
    /// `SEQ=` and `ACK=` of TCP packets (`--log-tcp-sequence`).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub tcp_sequence: bool,
    /// The TCP header's options as `OPT (...)` hex (`--log-tcp-options`).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub tcp_options: bool,
    /// The IPv4 header's options, or the IPv6 extension headers, as `OPT (...)` hex
    /// (`--log-ip-options`).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub ip_options: bool,
}

impl LogOptions {
    /// What is wrong with these options, for the validator: a prefix too long or holding a
    /// control character (a line break would forge a second log line).
    pub fn problem(&self) -> Option<String> {
        let p = self.prefix.as_deref()?;
        if p.len() > MAX_PREFIX {
            return Some(format!(
                "the log prefix is {} bytes long; at most {MAX_PREFIX} (the kernel's limit)",
                p.len()
            ));
        }
        p.chars()
            .any(char::is_control)
            .then(|| "the log prefix holds a control character (a line break, a tab)".into())
    }
}

/// A syslog level, as `--log-level` names it (or its number 0-7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    #[serde(alias = "error")]
    Err,
    /// LOG's default.
    #[default]
    #[serde(alias = "warn")]
    Warning,
    Notice,
    Info,
    Debug,
}

impl LogLevel {
    pub const NAMES: [&'static str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];

    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's skip_serializing_if signature"
    )]
    fn is_default(&self) -> bool {
        *self == LogLevel::Warning
    }

    /// The syslog priority number.
    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: u8) -> Option<LogLevel> {
        use LogLevel::{Alert, Crit, Debug, Emerg, Err, Info, Notice, Warning};
        [Emerg, Alert, Crit, Err, Warning, Notice, Info, Debug]
            .get(usize::from(n))
            .copied()
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    /// A name or number as iptables takes it (`warning`, `warn`, `4`; `panic` is `emerg`,
    /// `error` is `err`).
    fn from_str(s: &str) -> Result<LogLevel, String> {
        let n = match s.to_ascii_lowercase().as_str() {
            "panic" => 0,
            "error" => 3,
            "warn" => 4,
            low => match LogLevel::NAMES.iter().position(|n| *n == low) {
                Some(i) => i as u8,
                None => s.parse::<u8>().map_err(|_| {
                    format!(
                        "unknown log level `{s}`: use one of {} or 0-7",
                        LogLevel::NAMES.join(", ")
                    )
                })?,
            },
        };
        LogLevel::from_number(n).ok_or_else(|| format!("log level {n} is out of range 0-7"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_iptables_writes_them() {
        assert_eq!("4".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert_eq!("panic".parse::<LogLevel>(), Ok(LogLevel::Emerg));
        assert_eq!("error".parse::<LogLevel>(), Ok(LogLevel::Err));
        assert_eq!("DEBUG".parse::<LogLevel>(), Ok(LogLevel::Debug));
        assert!("8".parse::<LogLevel>().unwrap_err().contains("0-7"));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("warning"));
        assert_eq!(LogLevel::Info.number(), 6);
    }

    #[test]
    fn a_prefix_cannot_forge_a_line() {
        let o = LogOptions {
            prefix: Some("a\nb".into()),
            ..LogOptions::default()
        };
        assert!(o.problem().unwrap().contains("control"));
        let o = LogOptions {
            prefix: Some("x".repeat(128)),
            ..LogOptions::default()
        };
        assert!(o.problem().unwrap().contains("127"));
    }
}
