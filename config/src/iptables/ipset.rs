//! `--ipset FILE`: the output of `ipset save` (`create NAME TYPE [options]`, `add NAME
//! ENTRY [nomatch] [options]`) as the ruleset's `sets:` (`config::sets`). hash:ip and
//! hash:net sets translate; entry counters and comments are dropped (statewall counts per
//! rule); what changes a set's answers (`timeout`, `netmask`, other types) is an error.

use crate::diag::{Diagnostic, Pos};
use crate::ruleset::Family;
use crate::sets::{IpSet, Member, SetType, Sets};

/// Options of `create` and `add` that do not change which addresses are in a set.
const HARMLESS: &[&str] = &[
    "hashsize",
    "maxelem",
    "bucketsize",
    "initval",
    "counters",
    "comment",
    "skbinfo",
    "packets",
    "bytes",
    "forceadd",
];
/// Of those, the ones followed by a value.
const VALUED: &[&str] = &[
    "hashsize",
    "maxelem",
    "bucketsize",
    "initval",
    "comment",
    "packets",
    "bytes",
];

pub(super) fn parse_ipset(file: &str, text: &str, errs: &mut Vec<Diagnostic>) -> Sets {
    let mut sets = Sets::new();
    for (i, line) in text.lines().enumerate() {
        let words = split(line);
        let Some((first, _)) = words.first() else {
            continue;
        };
        let at = |col: usize| Pos {
            line: i + 1,
            col: col + 1,
        };
        let mut err = |col: usize, msg: String, hint: &str| {
            errs.push(Diagnostic::error(file, at(col), msg).with_hint(hint));
        };
        match first.as_str() {
            w if w.starts_with('#') => {}
            "create" | "-N" => {
                let (Some((name, _)), Some((kind, kcol))) = (words.get(1), words.get(2)) else {
                    err(
                        0,
                        "`create` without a name and a type".into(),
                        "write `create NAME hash:net family inet`",
                    );
                    continue;
                };
                let kind = match kind.as_str() {
                    "hash:ip" => SetType::HashIp,
                    "hash:net" => SetType::HashNet,
                    other => {
                        err(
                            *kcol,
                            format!("unsupported set type `{other}`"),
                            "statewall translates hash:ip and hash:net sets",
                        );
                        continue;
                    }
                };
                let mut family = Family::Ipv4;
                let mut k = 3;
                while let Some((opt, col)) = words.get(k) {
                    match opt.as_str() {
                        "family" => {
                            family = match words.get(k + 1).map(|(w, _)| w.as_str()) {
                                Some("inet") => Family::Ipv4,
                                Some("inet6") => Family::Ipv6,
                                _ => {
                                    err(
                                        *col,
                                        "`family` without inet or inet6".into(),
                                        "write `family inet` or `family inet6`",
                                    );
                                    Family::Ipv4
                                }
                            };
                            k += 2;
                        }
                        o if VALUED.contains(&o) => k += 2,
                        o if HARMLESS.contains(&o) => k += 1,
                        "timeout" => {
                            err(*col, format!("set `{name}` has entries that time out"), "statewall's sets are fixed: make the set without a timeout, or leave the rules that use it out");
                            break;
                        }
                        o => {
                            err(*col, format!("unsupported set option `{o}`"), "hash:ip and hash:net sets with family, hashsize, maxelem, counters and comment options translate");
                            break;
                        }
                    }
                }
                let set = IpSet {
                    kind,
                    family,
                    members: Vec::new(),
                };
                if let Some((_, msg, hint)) = set.problems(name).first() {
                    err(words.get(1).map_or(0, |w| w.1), msg.clone(), hint);
                    continue;
                }
                sets.insert(name.clone(), set);
            }
            "add" | "-A" => {
                let (Some((name, ncol)), Some((entry, ecol))) = (words.get(1), words.get(2)) else {
                    err(
                        0,
                        "`add` without a set and an entry".into(),
                        "write `add NAME ADDRESS`",
                    );
                    continue;
                };
                let Some(set) = sets.get_mut(name) else {
                    err(
                        *ncol,
                        format!("`add` to set `{name}`, not created before"),
                        "`ipset save` writes each `create` before its `add` lines",
                    );
                    continue;
                };
                let mut nomatch = false;
                let mut k = 3;
                while let Some((opt, col)) = words.get(k) {
                    match opt.as_str() {
                        "nomatch" => {
                            nomatch = true;
                            k += 1;
                        }
                        o if VALUED.contains(&o) => k += 2,
                        "timeout" => {
                            err(
                                *col,
                                "an entry that times out".into(),
                                "statewall's sets are fixed",
                            );
                            break;
                        }
                        o => {
                            err(*col, format!("unsupported entry option `{o}`"), "an entry is an address or network, `nomatch` after it in a hash:net set");
                            break;
                        }
                    }
                }
                let text = if nomatch {
                    format!("{entry} nomatch")
                } else {
                    entry.clone()
                };
                match text.parse::<Member>() {
                    // What the loader would refuse of it, said here at its place.
                    Ok(m) => {
                        let alone = IpSet {
                            kind: set.kind,
                            family: set.family,
                            members: vec![m],
                        };
                        let problems = alone.problems(name);
                        match problems.iter().find(|(path, _, _)| !path.is_empty()) {
                            Some((_, msg, hint)) => err(*ecol, msg.clone(), hint),
                            None => set.members.push(m),
                        }
                    }
                    Err(e) => err(
                        *ecol,
                        format!("`{entry}`: {e}"),
                        "an address like 192.0.2.1 or a network like 192.0.2.0/24",
                    ),
                }
            }
            other => err(
                0,
                format!("unexpected `{other}`"),
                "give the output of `ipset save` (create and add lines)",
            ),
        }
    }
    sets
}

/// The words of a line with their columns; a double-quoted word (a comment) is one.
fn split(line: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut w = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        while let Some(&(_, c)) = chars.peek() {
            chars.next();
            if (quoted && c == '"') || (!quoted && c.is_whitespace()) {
                break;
            }
            w.push(c);
        }
        out.push((w, line[..i].chars().count()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipset_save_reads_as_sets() {
        let mut errs = Vec::new();
        let sets = parse_ipset(
            "sets.txt",
            "create bad hash:net family inet hashsize 1024 maxelem 65536 counters comment\n\
             add bad 192.0.2.0/24 packets 0 bytes 0 comment \"from a feed\"\n\
             add bad 192.0.2.128/25 nomatch\n\
             create bad6 hash:ip family inet6 hashsize 1024 maxelem 65536\n\
             add bad6 2001:db8::1\n",
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(sets["bad"].members.len(), 2);
        assert!(sets["bad"].members[1].nomatch);
        assert_eq!(sets["bad6"].family, Family::Ipv6);
        let mut errs = Vec::new();
        parse_ipset(
            "sets.txt",
            "create t hash:ip timeout 60\ncreate p hash:ip,port\nadd q 10.0.0.1\n",
            &mut errs,
        );
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(msgs[0].starts_with("sets.txt:1:18: error: set `t` has entries that time out"));
        assert!(msgs[1].contains("unsupported set type `hash:ip,port`"));
        assert!(msgs[2].contains("not created before"));
        // A member the loader would refuse, at its place (found by fuzzing: it was said as
        // the whole ruleset's error at line 0).
        let mut errs = Vec::new();
        parse_ipset(
            "sets.txt",
            "create s hash:net\nadd s fd00::/120\n",
            &mut errs,
        );
        assert!(
            errs[0].to_string().starts_with(
                "sets.txt:2:7: error: `fd00::/120` is not an address of the set's family"
            ),
            "{errs:?}"
        );
        let mut errs = Vec::new();
        let long = "x".repeat(40);
        parse_ipset("sets.txt", &format!("create {long} hash:ip\n"), &mut errs);
        assert!(
            errs[0]
                .to_string()
                .starts_with("sets.txt:1:8: error: `xxxx"),
            "{errs:?}"
        );
    }
}
