//! The `--sysctl` file (sysctl.conf conntrack and IP fragment reassembly settings) and the
//! `--helpers` file (`NAME PROTO PORT[,PORT...]` lines).

use crate::diag::{Diagnostic, Pos};
use crate::settings::ConntrackSettings;
use crate::suggest::{did_you_mean, nearest};

/// What a sysctl key names: a statewall setting, a near miss in a form statewall reads, or
/// some other sysctl.
enum Sysctl {
    Setting(&'static str),
    /// A conntrack-form name (or `net.ipv4.ipfrag_*`) that is no setting: what it stripped
    /// to, for a suggestion.
    Unknown(String),
    /// Not a conntrack or IPv4 fragment sysctl at all.
    Foreign,
}

/// The statewall setting a sysctl key names: one of the conntrack sysctl forms, or
/// `net.ipv4.ipfrag_*` (which the conntrack forms do not name).
fn sysctl_setting(key: &str) -> Sysctl {
    let known = |s: &str, ipv4_frag: bool| match ConntrackSettings::KEYS.iter().find(|k| **k == s) {
        Some(k) if k.starts_with("ipfrag_") == ipv4_frag => Sysctl::Setting(k),
        _ => Sysctl::Unknown(s.to_string()),
    };
    if key == "net.nf_conntrack_max" || key == "net.ipv4.ip_conntrack_max" {
        return Sysctl::Setting("max");
    }
    if let Some(s) = key
        .strip_prefix("net.ipv4.")
        .filter(|s| s.starts_with("ipfrag_"))
    {
        return known(s, true);
    }
    [
        "net.netfilter.nf_conntrack_",
        "net.ipv4.netfilter.ip_conntrack_",
        "net.ipv4.netfilter.nf_conntrack_",
    ]
    .iter()
    .find_map(|p| key.strip_prefix(p))
    .map_or(Sysctl::Foreign, |s| known(s, false))
}

fn canonical_sysctl(setting: &str) -> String {
    ConntrackSettings::sysctl_name(setting)
        .unwrap_or_else(|| format!("net.netfilter.nf_conntrack_{setting}"))
}

/// `net.ipv6.ip6frag_*`, the host's IPv6 reassembly, and the conntrack setting that does
/// the same before conntrack.
fn host_ipv6_frag(key: &str) -> Option<&'static str> {
    match key.strip_prefix("net.ipv6.")? {
        "ip6frag_time" => Some("frag6_timeout"),
        "ip6frag_high_thresh" => Some("frag6_high_thresh"),
        "ip6frag_low_thresh" => Some("frag6_low_thresh"),
        _ => None,
    }
}

/// Read sysctl.conf lines into `settings`, reporting each line that cannot be used.
pub(super) fn parse_sysctl(
    file: &str,
    text: &str,
    settings: &mut ConntrackSettings,
    errs: &mut Vec<Diagnostic>,
) {
    // Settings that failed their own check, and the line that last set each setting.
    let mut failed: Vec<&str> = Vec::new();
    let mut last: Vec<(&str, Pos, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let body = raw.trim();
        if body.is_empty() || body.starts_with('#') || body.starts_with(';') {
            continue;
        }
        // A leading `-` tells sysctl to ignore failures; the setting is the same.
        let (body, dash) = match body.strip_prefix('-') {
            Some(b) => (b, 1),
            None => (body, 0),
        };
        let key_col = indent + dash + 1;
        let Some((k, v)) = body.split_once('=') else {
            errs.push(
                Diagnostic::error(
                    file,
                    Pos { line, col: key_col },
                    format!("expected `KEY = VALUE`, found `{body}`"),
                )
                .with_hint("e.g. `net.netfilter.nf_conntrack_udp_timeout = 30`"),
            );
            continue;
        };
        let key_raw = k.trim();
        let value = v.trim();
        let value_col =
            key_col + k.chars().count() + 1 + v.chars().take_while(|c| c.is_whitespace()).count();
        // `net/netfilter/nf_conntrack_max` and `/proc/sys/...` name the same key.
        let key = key_raw.trim_start_matches("/proc/sys/").replace('/', ".");
        let pos = Pos { line, col: key_col };
        let setting = match sysctl_setting(&key) {
            Sysctl::Setting(s) => s,
            Sysctl::Foreign => {
                if let Some(frag6) = host_ipv6_frag(&key) {
                    errs.push(
                        Diagnostic::error(
                            file,
                            pos,
                            format!(
                                "`{key_raw}` is the host's IPv6 reassembly setting, not conntrack's (did you mean `{}`?)",
                                canonical_sysctl(frag6)
                            ),
                        )
                        .with_hint(
                            "IPv6 fragments are reassembled before conntrack by nf_conntrack_frag6_* settings; remove the line or rename it",
                        ),
                    );
                    continue;
                }
                let mut known: Vec<String> = ConntrackSettings::KEYS
                    .iter()
                    .map(|k| canonical_sysctl(k))
                    .collect();
                known.push("net.nf_conntrack_max".into());
                let refs: Vec<&str> = known.iter().map(String::as_str).collect();
                let msg = if key.contains("conntrack") {
                    format!(
                        "unknown conntrack sysctl `{key_raw}`{}",
                        did_you_mean(&key, &refs)
                    )
                } else {
                    format!(
                        "`{key_raw}` is not a connection-tracking or IP fragment sysctl{}",
                        did_you_mean(&key, &refs)
                    )
                };
                errs.push(Diagnostic::error(file, pos, msg).with_hint(
                    "--sysctl reads net.netfilter.nf_conntrack_* settings (and the older ip_conntrack names) and net.ipv4.ipfrag_*; remove other lines",
                ));
                continue;
            }
            Sysctl::Unknown(setting) => {
                let suggestion = nearest(&setting, ConntrackSettings::KEYS)
                    .map(|s| format!(" (did you mean `{}`?)", canonical_sysctl(s)))
                    .unwrap_or_default();
                let what = if key.starts_with("net.ipv4.ipfrag_") {
                    "IPv4 fragment"
                } else {
                    "conntrack"
                };
                errs.push(
                    Diagnostic::error(
                        file,
                        pos,
                        format!("unknown {what} sysctl `{key_raw}`{suggestion}"),
                    )
                    .with_hint(format!(
                        "statewall's settings: {}",
                        ConntrackSettings::KEYS
                            .iter()
                            .map(|k| canonical_sysctl(k))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
                continue;
            }
        };
        // Each threshold is checked against its pair once the whole file is read: a file
        // may raise a low_thresh before its high_thresh.
        if let Err(e) = settings.set_value(setting, value) {
            failed.push(setting);
            let range = ConntrackSettings::range(setting)
                .map(|(lo, hi)| format!("allowed {lo} to {hi}"))
                .unwrap_or_default();
            errs.push(
                Diagnostic::error(
                    file,
                    Pos {
                        line,
                        col: value_col,
                    },
                    format!("`{key_raw}`: {}", e.message),
                )
                .with_hint(range),
            );
        } else {
            last.retain(|(s, _, _)| *s != setting);
            last.push((setting, pos, key_raw.to_string()));
        }
    }
    for e in settings.check_pairs() {
        if failed.contains(&e.low) || failed.contains(&e.high) {
            continue;
        }
        // At the later of the two lines (the file sets at least one: defaults are in order).
        let Some((_, pos, key_raw)) = last
            .iter()
            .rev()
            .find(|(s, _, _)| *s == e.low || *s == e.high)
        else {
            continue;
        };
        let (low, high) = (canonical_sysctl(e.low), canonical_sysctl(e.high));
        let at = |s: &str| {
            last.iter().find(|(k, _, _)| *k == s).map_or_else(
                || " (the kernel default)".to_string(),
                |(_, p, _)| format!(" (line {})", p.line),
            )
        };
        errs.push(
            Diagnostic::error(
                file,
                *pos,
                format!(
                    "`{key_raw}`: {low} = {}{} is above {high} = {}{}: the kernel requires low_thresh <= high_thresh",
                    settings.get(e.low).unwrap_or_default(),
                    at(e.low),
                    settings.get(e.high).unwrap_or_default(),
                    at(e.high),
                ),
            )
            .with_hint(format!(
                "lower {low} or raise {high} (low_thresh has had no other effect since Linux 4.17)"
            )),
        );
    }
}

/// Read `NAME PROTO PORT[,PORT...]` lines; only `ftp tcp PORT` is supported.
pub(super) fn parse_helpers(
    file: &str,
    text: &str,
    ports: &mut Vec<u16>,
    errs: &mut Vec<Diagnostic>,
) {
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let body = raw.split('#').next().unwrap_or_default();
        // Words with their 1-based columns.
        let mut words: Vec<(usize, &str)> = Vec::new();
        let mut start = None;
        for (i, c) in body
            .char_indices()
            .chain(std::iter::once((body.len(), ' ')))
        {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    words.push((s, body.get(s..i).unwrap_or_default()));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        let col = |byte: usize| body.get(..byte).map_or(1, |p| p.chars().count() + 1);
        let (first_col, _) = words.first().copied().unwrap_or((0, ""));
        match words.as_slice() {
            [] => {}
            [(nc, name), (pc, proto), (portc, port_list)] => {
                if !name.eq_ignore_ascii_case("ftp") {
                    errs.push(
                        Diagnostic::error(
                            file,
                            Pos {
                                line,
                                col: col(*nc),
                            },
                            format!("unsupported helper `{name}`"),
                        )
                        .with_hint("statewall has the FTP helper only (`ftp tcp 21`)"),
                    );
                    continue;
                }
                if !proto.eq_ignore_ascii_case("tcp") {
                    errs.push(
                        Diagnostic::error(
                            file,
                            Pos {
                                line,
                                col: col(*pc),
                            },
                            format!("the FTP helper runs over tcp, not `{proto}`"),
                        )
                        .with_hint("write `ftp tcp PORT`"),
                    );
                    continue;
                }
                let mut off = *portc;
                for p in port_list.split(',') {
                    match p.parse::<u16>() {
                        Ok(v) if v > 0 => {
                            if !ports.contains(&v) {
                                ports.push(v);
                            }
                        }
                        _ => errs.push(
                            Diagnostic::error(
                                file,
                                Pos {
                                    line,
                                    col: col(off),
                                },
                                format!("invalid port `{p}` for the FTP helper"),
                            )
                            .with_hint("a port is a number from 1 to 65535"),
                        ),
                    }
                    off += p.len() + 1;
                }
            }
            _ => errs.push(
                Diagnostic::error(
                    file,
                    Pos {
                        line,
                        col: col(first_col),
                    },
                    format!("expected `NAME PROTO PORT`, found `{}`", body.trim()),
                )
                .with_hint("e.g. `ftp tcp 21`; `#` starts a comment"),
            ),
        }
    }
}
