//! The `--sysctl` file (sysctl.conf conntrack settings) and the `--helpers` file
//! (`NAME PROTO PORT[,PORT...]` lines).

use crate::diag::{Diagnostic, Pos};
use crate::settings::ConntrackSettings;
use crate::suggest::{did_you_mean, nearest};

/// The statewall setting a sysctl key names, if it is one of the conntrack sysctl forms.
fn sysctl_setting(key: &str) -> Option<String> {
    if key == "net.nf_conntrack_max" || key == "net.ipv4.ip_conntrack_max" {
        return Some("max".into());
    }
    [
        "net.netfilter.nf_conntrack_",
        "net.ipv4.netfilter.ip_conntrack_",
        "net.ipv4.netfilter.nf_conntrack_",
    ]
    .iter()
    .find_map(|p| key.strip_prefix(p))
    .map(str::to_string)
}

fn canonical_sysctl(setting: &str) -> String {
    format!("net.netfilter.nf_conntrack_{setting}")
}

/// Read sysctl.conf lines into `settings`, reporting each line that cannot be used.
pub(super) fn parse_sysctl(
    file: &str,
    text: &str,
    settings: &mut ConntrackSettings,
    errs: &mut Vec<Diagnostic>,
) {
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
        let Some(setting) = sysctl_setting(&key) else {
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
                    "`{key_raw}` is not a connection-tracking sysctl{}",
                    did_you_mean(&key, &refs)
                )
            };
            errs.push(Diagnostic::error(file, pos, msg).with_hint(
                "--sysctl reads net.netfilter.nf_conntrack_* settings (and the older ip_conntrack names); remove other lines",
            ));
            continue;
        };
        if !ConntrackSettings::KEYS.contains(&setting.as_str()) {
            let suggestion = nearest(&setting, ConntrackSettings::KEYS)
                .map(|s| format!(" (did you mean `{}`?)", canonical_sysctl(s)))
                .unwrap_or_default();
            errs.push(
                Diagnostic::error(
                    file,
                    pos,
                    format!("unknown conntrack sysctl `{key_raw}`{suggestion}"),
                )
                .with_hint(format!(
                    "statewall's conntrack settings: {}",
                    ConntrackSettings::KEYS.join(", ")
                )),
            );
            continue;
        }
        if let Err(e) = settings.set(&setting, value) {
            let range = ConntrackSettings::range(&setting)
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
        }
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
