//! Interfaces named by imported rules (iptables' `-i`/`-o`/physdev, nftables' `iifname`/
//! `oifname`) as the gateway's ports: both importers translate them the same way.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Pos};
use crate::matches::{Match, PortName};
use crate::ruleset::{PortSpec, Rule};

/// The `ports:` to declare for the interfaces the rules name (each with where it is first
/// named), and the port name of each interface. `lo` is an error (it carries only the
/// host's own traffic); so is a count other than two (a gateway's pair), except one
/// interface named `lan` or `wan` (the other default port: no `ports:` key). `how` names
/// the input's way of naming interfaces, for the hint.
pub(crate) fn ports_for(
    ifaces: &[(String, Pos)],
    file: &str,
    how: &str,
    errs: &mut Vec<Diagnostic>,
) -> (Option<BTreeMap<String, PortSpec>>, BTreeMap<String, String>) {
    let mut seen: Vec<(String, Pos)> = Vec::new();
    let mut lo_seen = false;
    for (name, pos) in ifaces {
        if name == "lo" {
            lo_seen = true;
            errs.push(
                Diagnostic::error(file, *pos, "loopback interface `lo` cannot be translated")
                    .with_hint(
                        "it carries only the host's own traffic, and a bump-in-the-wire gateway forwards none; remove the rule",
                    ),
            );
        } else if !seen.iter().any(|(n, _)| n == name) {
            seen.push((name.clone(), *pos));
        }
    }
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // One interface, `lan` or `wan`: the other is the other default port, so no `ports:`
    // key (the rules' names stay as they are). Two are declared, even `lan` and `wan`.
    let defaults = seen.len() == 1 && seen.iter().all(|(n, _)| n == "lan" || n == "wan");
    if seen.is_empty() || lo_seen || defaults {
        // The default ports, whose interfaces have their names (for wildcards).
        if !lo_seen {
            for p in ["lan", "wan"] {
                names.insert(p.to_string(), p.to_string());
            }
        }
        return (None, names);
    }
    if seen.len() != 2 {
        let list: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        let pos = seen
            .get(2)
            .or(seen.first())
            .map_or(Pos::default(), |(_, p)| *p);
        errs.push(
            Diagnostic::error(
                file,
                pos,
                format!(
                    "the rules name {} interface(s) ({}): a statewall gateway forwards between a pair of ports",
                    list.len(),
                    list.join(", ")
                ),
            )
            .with_hint(format!(
                "name exactly two interfaces with {how} (the gateway's two sides), only `lan` or only `wan` (the default ports), or none, and declare further ports and pairs in the YAML by hand"
            )),
        );
        return (None, names);
    }
    let mut ports = BTreeMap::new();
    for (iface, _) in &seen {
        let mut name = port_name(iface);
        while ports.contains_key(&name) {
            name.push('_');
        }
        ports.insert(name.clone(), PortSpec::Interface(iface.clone()));
        names.insert(iface.clone(), name);
    }
    (Some(ports), names)
}

/// Rename a rule's interface names to their port names (`names`: interface to port), a
/// wildcard (`eth+`, kept so by the parsers) to the ports whose interfaces it matches. `Err`
/// says why the rule never matches: a wildcard that matches no port.
pub(crate) fn rename_ports(r: &mut Rule, names: &BTreeMap<String, String>) -> Result<(), String> {
    for m in [&mut r.in_port, &mut r.out_port] {
        let Some(Match { values, negated }) = m else {
            continue;
        };
        let mut out: Vec<PortName> = Vec::new();
        let mut wildcard = None;
        for PortName(v) in values.iter() {
            let ports: Vec<&String> = match v.strip_suffix('+') {
                Some(prefix) => {
                    wildcard = Some(v.clone());
                    names
                        .iter()
                        .filter(|(iface, _)| iface.starts_with(prefix))
                        .map(|(_, port)| port)
                        .collect()
                }
                None => vec![names.get(v).unwrap_or(v)],
            };
            for p in ports {
                if !out.iter().any(|o| &o.0 == p) {
                    out.push(PortName(p.clone()));
                }
            }
        }
        if out.is_empty() {
            let w = wildcard.unwrap_or_default();
            if *negated {
                // `! -i eth+` with no `eth` port: true of every packet.
                *m = None;
                continue;
            }
            let ifaces: Vec<&str> = names.keys().map(String::as_str).collect();
            return Err(format!(
                "interface wildcard `{w}` matches none of the gateway's interfaces ({})",
                ifaces.join(", ")
            ));
        }
        *values = out;
    }
    Ok(())
}

/// A port name for an interface: letters, digits, `-`, `_`, starting with a letter.
fn port_name(iface: &str) -> String {
    let mut s: String = iface
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "if");
    }
    s
}
