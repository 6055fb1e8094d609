//! Entries in conntrack-tools' save format: the lines `conntrack -L -o save` prints
//! (conntrack-tools 1.4.7, `ct_save_snprintf` in `src/conntrack.c` and the protocols'
//! `print_opts`), which `conntrack -R FILE` loads into a kernel, and the same lines read back
//! into entries, so a table moves between a Linux box and Statewall both ways:
//!
//! ```text
//! -A -t 431999 -u SEEN_REPLY,ASSURED -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p tcp --sport 40000 --dport 80 --reply-port-src 80 --reply-port-dst 40000 --state ESTABLISHED
//! -A -t 29 -u UNSET -s 2001:db8::1 -d 2001:db8::2 -r 2001:db8::2 -q 2001:db8::1 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 9
//! -A -t 599 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p 50
//! ```
//!
//! The printer, as conntrack-tools': `-A`; the remaining timeout in whole seconds; the status
//! bits it has names for, in bit order, or `UNSET`; the original and reply addresses
//! (`inet_ntop`); `-p` and the protocol's options (ports and TCP state; ICMP type, code and
//! id of the original direction only; GRE keys), or `-p NUMBER` for a protocol
//! conntrack-tools has no module for; then `--mark N` for a connection with a mark (which
//! conntrack-tools 1.4.7 never prints, so a kernel's dump loses its marks, but `conntrack
//! -R` sets them from it). Never printed: labels, zone 0, and
//! `EXPECTED`: a kernel refuses to set that bit (`conntrack -R` stops at the line with
//! "Device or resource busy"), and it only matters until a reply is seen. SCTP and DCCP
//! entries have no line: `conntrack -R` needs their protocol state (and SCTP's verification
//! tags), which Statewall does not track.
//!
//! The reader takes what the printer and conntrack-tools write (any option order, long option
//! names, `--opt=value`, blank lines and `#` comments) and refuses, with line and column,
//! what the engine cannot hold: NAT (a reply tuple that is not the original's inverse),
//! zones, labels, GRE keys, TCP state NONE, ICMP answers as the original direction.
//! The engine is sans-IO, so the caller passes `now`, and applies nothing unless every line
//! parsed ([`parse`] returns every bad line, or every entry).
//!
//! A restored TCP entry carries no window data (the save format has none): each direction's
//! first segment initialises that direction's window from the segment itself
//! (`tcp_in_window` for a sender with `td_maxwin == 0`). Nor does it carry the window scales
//! the handshake negotiated, so strict tracking would read every scaled window as unscaled
//! and drop a bulk transfer's segments as out of window. The entry is therefore tracked
//! liberally in both directions (`IP_CT_TCP_FLAG_BE_LIBERAL`, with SACK permitted), as the
//! kernel tracks a connection it picked up in mid-stream (`tcp_new`'s "its history is lost
//! for us ... liberal window checking to handle window scaling") and as conntrackd commits
//! the entries it takes over.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use config::matches::Proto;

use crate::flow::FlowKey;
use crate::packet::{to_ip, v4_mapped, Addr, IpFamily};
use crate::wire::icmp;
use crate::wire::proto;

use super::entry::{status, Entry};
use super::table::SlabMemory;
use super::tcp::state;
use super::{AdoptError, Shard};

const NS: u64 = 1_000_000_000;

/// Why an entry has no save line.
pub const NO_LINE_SCTP_DCCP: &str = "SCTP and DCCP entries have no save line: `conntrack -R` \
     needs their protocol state (and SCTP's verification tags), which Statewall does not track";

/// One entry's save line (without the newline); `now` gives the remaining timeout. `Err` for
/// an entry the format cannot carry (SCTP, DCCP: [`NO_LINE_SCTP_DCCP`]).
pub fn format_line(e: &Entry, now: u64) -> Result<String, &'static str> {
    let k = &e.key;
    if matches!(k.proto, proto::SCTP | proto::DCCP) {
        return Err(NO_LINE_SCTP_DCCP);
    }
    let mut out = String::with_capacity(192);
    let _ = write!(out, "-A -t {} -u ", e.remaining_secs(now));
    // conntrack_status_map, in bit order: EXPECTED (left out, see above), SEEN_REPLY,
    // ASSURED, FIXED_TIMEOUT (never set here).
    match (e.has(status::SEEN_REPLY), e.has(status::ASSURED)) {
        (true, true) => out.push_str("SEEN_REPLY,ASSURED"),
        (true, false) => out.push_str("SEEN_REPLY"),
        (false, true) => out.push_str("ASSURED"),
        (false, false) => out.push_str("UNSET"),
    }
    let (s, d) = (ntop(k.family, &k.src), ntop(k.family, &k.dst));
    let _ = write!(out, " -s {s} -d {d} -r {d} -q {s} -p ");
    match k.proto {
        proto::TCP => {
            let _ = write!(
                out,
                "tcp --sport {} --dport {} --reply-port-src {} --reply-port-dst {} --state {}",
                k.sport,
                k.dport,
                k.dport,
                k.sport,
                state::name(e.tcp.state)
            );
        }
        proto::UDP | proto::UDPLITE => {
            let _ = write!(
                out,
                "{} --sport {} --dport {} --reply-port-src {} --reply-port-dst {}",
                Proto(k.proto).conntrack_name(),
                k.sport,
                k.dport,
                k.dport,
                k.sport
            );
        }
        proto::ICMP | proto::ICMPV6 => {
            let name = if k.proto == proto::ICMP {
                "icmp"
            } else {
                "icmpv6"
            };
            out.push_str(name);
            // The kernel's ICMP trackers fill these only for their own family; conntrack-tools
            // names the protocol by number either way.
            if icmp::is_icmp(k.family, k.proto) {
                let _ = write!(
                    out,
                    " --{name}-type {} --{name}-code {} --{name}-id {}",
                    k.dport >> 8,
                    k.dport & 0xff,
                    k.sport
                );
            }
        }
        proto::GRE => {
            // The engine tracks GRE without keys (key 0, as the kernel for GRE outside PPTP).
            let _ = write!(
                out,
                "gre --srckey {} --dstkey {} --reply-key-src {} --reply-key-dst {}",
                k.sport, k.dport, k.dport, k.sport
            );
        }
        n => {
            let _ = write!(out, "{n}");
        }
    }
    // conntrack-tools never prints the mark; `conntrack -R` sets it from `--mark`.
    if e.mark != 0 {
        let _ = write!(out, " --mark {}", e.mark);
    }
    Ok(out)
}

/// An address as glibc's `inet_ntop` writes it (what conntrack-tools prints): RFC 5952 for
/// IPv6, and an IPv4-compatible address (`::a.b.c.d`, six zero groups, then not zero) with
/// its last 32 bits dotted, where Rust would write `::a0b:c0d`.
fn ntop(family: IpFamily, a: &Addr) -> String {
    match to_ip(family, a) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] == [0; 6] && s[6] != 0 {
                format!("::{}", Ipv4Addr::new(a[12], a[13], a[14], a[15]))
            } else {
                v6.to_string()
            }
        }
    }
}

/// Save lines for a set of entries in listing order
/// ([`super::listing::order_key`]), and how many had none ([`format_line`]'s `Err`).
pub fn format_all<'a>(entries: impl Iterator<Item = &'a Entry>, now: u64) -> (Vec<String>, u64) {
    let mut v: Vec<&Entry> = entries.collect();
    v.sort_by_key(|e| super::listing::order_key(e));
    let mut skipped = 0;
    let lines = v
        .into_iter()
        .filter_map(|e| {
            let l = format_line(e, now).ok();
            skipped += u64::from(l.is_none());
            l
        })
        .collect();
    (lines, skipped)
}

/// A bad line: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (characters) of the offending option or value.
    pub col: usize,
    pub message: String,
    pub hint: String,
}

impl LineError {
    /// `FILE:LINE:COL: what; hint`.
    pub fn render(&self, file: &str) -> String {
        format!(
            "{file}:{}:{}: {}; {}",
            self.line, self.col, self.message, self.hint
        )
    }
}

/// One line's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// 1-based line number.
    pub line: usize,
    /// The entry; its expiry is `now` plus the line's timeout (equal to `now`, expired, for
    /// `-t 0`). For TCP, no window data (see the module's documentation).
    pub entry: Entry,
}

/// Read save lines. Every entry, or every bad line (each line's first problem); blank lines
/// and `#` comments are skipped. Never panics.
pub fn parse(text: &str, now: u64) -> Result<Vec<Parsed>, Vec<LineError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line, now) {
            Ok(Some(entry)) => entries.push(Parsed { line: i + 1, entry }),
            Ok(None) => {}
            Err(b) => errors.push(LineError {
                line: i + 1,
                col: b.col,
                message: b.message,
                hint: b.hint,
            }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// A line's problem, before it knows its line number.
#[derive(Debug)]
struct Bad {
    col: usize,
    message: String,
    hint: String,
}

fn bad(col: usize, message: impl Into<String>, hint: impl Into<String>) -> Bad {
    Bad {
        col,
        message: message.into(),
        hint: hint.into(),
    }
}

const SHAPE: &str = "a line is what `conntrack -L -o save` prints: `-A -t SECONDS -u STATUS \
     -s SRC -d DST -r DST -q SRC -p PROTO [protocol options]`";
const NO_NAT: &str = "Statewall does no NAT and cannot hold NAT'd connections; leave them out \
     (e.g. `conntrack -L -o save | grep -v -e ' -g ' -e ' -n '`)";

/// A token of a line: its 1-based column and text.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    col: usize,
    text: &'a str,
}

/// The options the reader knows, by what they set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Timeout,
    Status,
    Src,
    Dst,
    ReplySrc,
    ReplyDst,
    Proto,
    Family,
    Sport,
    Dport,
    ReplySport,
    ReplyDport,
    State,
    IcmpType,
    IcmpCode,
    IcmpId,
    Icmp6Type,
    Icmp6Code,
    Icmp6Id,
    GreSrc,
    GreDst,
    GreReplySrc,
    GreReplyDst,
    OrigVtag,
    ReplyVtag,
    Role,
    Zone,
    OrigZone,
    ReplyZone,
    Mark,
    Secmark,
}

const KEYS: usize = Key::Secmark as usize + 1;

/// Option names (conntrack-tools' short and long ones) and what they set.
const OPTIONS: &[(&str, Key)] = &[
    ("-t", Key::Timeout),
    ("--timeout", Key::Timeout),
    ("-u", Key::Status),
    ("--status", Key::Status),
    ("-s", Key::Src),
    ("--src", Key::Src),
    ("--orig-src", Key::Src),
    ("-d", Key::Dst),
    ("--dst", Key::Dst),
    ("--orig-dst", Key::Dst),
    ("-r", Key::ReplySrc),
    ("--reply-src", Key::ReplySrc),
    ("-q", Key::ReplyDst),
    ("--reply-dst", Key::ReplyDst),
    ("-p", Key::Proto),
    ("--proto", Key::Proto),
    ("--protonum", Key::Proto),
    ("-f", Key::Family),
    ("--family", Key::Family),
    ("--sport", Key::Sport),
    ("--orig-port-src", Key::Sport),
    ("--dport", Key::Dport),
    ("--orig-port-dst", Key::Dport),
    ("--reply-port-src", Key::ReplySport),
    ("--reply-src-port", Key::ReplySport),
    ("--reply-port-dst", Key::ReplyDport),
    ("--reply-dst-port", Key::ReplyDport),
    ("--state", Key::State),
    ("--icmp-type", Key::IcmpType),
    ("--icmp-code", Key::IcmpCode),
    ("--icmp-id", Key::IcmpId),
    ("--icmpv6-type", Key::Icmp6Type),
    ("--icmpv6-code", Key::Icmp6Code),
    ("--icmpv6-id", Key::Icmp6Id),
    ("--srckey", Key::GreSrc),
    ("--orig-key-src", Key::GreSrc),
    ("--dstkey", Key::GreDst),
    ("--orig-key-dst", Key::GreDst),
    ("--reply-key-src", Key::GreReplySrc),
    ("--reply-src-key", Key::GreReplySrc),
    ("--reply-key-dst", Key::GreReplyDst),
    ("--reply-dst-key", Key::GreReplyDst),
    ("--orig-vtag", Key::OrigVtag),
    ("--reply-vtag", Key::ReplyVtag),
    ("--role", Key::Role),
    ("-w", Key::Zone),
    ("--zone", Key::Zone),
    ("--orig-zone", Key::OrigZone),
    ("--reply-zone", Key::ReplyZone),
    ("-m", Key::Mark),
    ("--mark", Key::Mark),
    ("-c", Key::Secmark),
    ("--secmark", Key::Secmark),
];

/// Options that name something the engine cannot hold: the refusal and its hint.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "-g",
        "the entry is destination-NAT'd: its reply source is not the original destination",
        NO_NAT,
    ),
    ("--dst-nat", "the entry is destination-NAT'd", NO_NAT),
    (
        "-n",
        "the entry is source-NAT'd: its reply destination is not the original source",
        NO_NAT,
    ),
    ("--src-nat", "the entry is source-NAT'd", NO_NAT),
    ("--any-nat", "the entry is NAT'd", NO_NAT),
    (
        "--label",
        "connection labels are not kept",
        "remove `--label ...` from the line",
    ),
    (
        "--label-add",
        "connection labels are not kept",
        "remove `--label-add ...` from the line",
    ),
];

/// `-u` names: the status bit each sets (0: accepted and ignored).
const STATUS_NAMES: &[(&str, u16)] = &[
    ("SEEN_REPLY", status::SEEN_REPLY),
    ("ASSURED", status::ASSURED),
    ("EXPECTED", status::EXPECTED),
    ("UNSET", 0),
    // Harmless without the kernel's machinery behind them: the timeout is refreshed as
    // usual, NAT is refused by its tuples (not by these bits), offload is the kernel's.
    ("CONFIRMED", 0),
    ("FIXED_TIMEOUT", 0),
    ("SRC_NAT", 0),
    ("DST_NAT", 0),
    ("SRC_NAT_DONE", 0),
    ("DST_NAT_DONE", 0),
    ("OFFLOAD", 0),
    ("HW_OFFLOAD", 0),
    ("NAT_CLASH", 0),
];

fn tokens(line: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut col = 0;
    for (i, c) in line.char_indices() {
        col += 1;
        if c.is_whitespace() {
            if let Some((b, bc)) = start.take() {
                out.push(Tok {
                    col: bc,
                    text: &line[b..i],
                });
            }
        } else if start.is_none() {
            start = Some((i, col));
        }
    }
    if let Some((b, bc)) = start {
        out.push(Tok {
            col: bc,
            text: &line[b..],
        });
    }
    out
}

/// Option values of one line, by [`Key`].
struct Values<'a> {
    v: [Option<(Tok<'a>, Tok<'a>)>; KEYS],
}

impl<'a> Values<'a> {
    /// The value of `k`, if given.
    fn get(&self, k: Key) -> Option<Tok<'a>> {
        self.v[k as usize].map(|(_, v)| v)
    }

    /// The option token of `k`, if given.
    fn opt(&self, k: Key) -> Option<Tok<'a>> {
        self.v[k as usize].map(|(o, _)| o)
    }
}

fn parse_line(line: &str, now: u64) -> Result<Option<Entry>, Bad> {
    let toks = tokens(line);
    let Some(first) = toks.first() else {
        return Ok(None);
    };
    if first.text.starts_with('#') {
        return Ok(None);
    }
    if !matches!(first.text, "-A" | "--add" | "-I" | "--create") {
        return Err(bad(
            first.col,
            format!(
                "`{}` is not a command that adds an entry (-A or -I)",
                clip(first.text)
            ),
            SHAPE,
        ));
    }
    let vals = options(&toks[1..])?;
    build(&vals, first.col, now).map(Some)
}

/// At most 40 characters of a token, for messages.
fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let mut t: String = s.chars().take(40).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

fn options<'a>(toks: &[Tok<'a>]) -> Result<Values<'a>, Bad> {
    let mut vals = Values { v: [None; KEYS] };
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        i += 1;
        // `--opt=value`.
        let (name, inline) = match t.text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (
                n,
                Some(Tok {
                    col: t.col + n.chars().count() + 1,
                    text: v,
                }),
            ),
            _ => (t.text, None),
        };
        if let Some((_, what, hint)) = REFUSED.iter().find(|(n, _, _)| *n == name) {
            return Err(bad(t.col, format!("`{name}`: {what}"), *hint));
        }
        let Some(&(_, key)) = OPTIONS.iter().find(|(n, _)| *n == name) else {
            return Err(bad(
                t.col,
                format!("unknown option `{}`", clip(name)),
                SHAPE,
            ));
        };
        let value = match inline {
            Some(v) => v,
            None => {
                let Some(v) = toks.get(i).copied() else {
                    return Err(bad(
                        t.col,
                        format!("`{name}` needs a value"),
                        "give it one, as in `conntrack -L -o save` output",
                    ));
                };
                i += 1;
                v
            }
        };
        if value.text.is_empty() {
            return Err(bad(t.col, format!("`{name}` needs a value"), SHAPE));
        }
        let slot = &mut vals.v[key as usize];
        if let Some((first, _)) = slot {
            return Err(bad(
                t.col,
                format!("`{name}` is given twice (first at column {})", first.col),
                "give each option once",
            ));
        }
        *slot = Some((
            Tok {
                col: t.col,
                text: name,
            },
            value,
        ));
    }
    Ok(vals)
}

fn number<T: std::str::FromStr>(t: Tok, what: &str, range: &str) -> Result<T, Bad> {
    // Decimal digits only (`FromStr` would take a leading `+`).
    if !t.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            t.col,
            format!("{what} `{}` is not a number", clip(t.text)),
            format!("write it in decimal, {range}"),
        ));
    }
    t.text.parse().map_err(|_| {
        bad(
            t.col,
            format!("{what} `{}` is out of range", clip(t.text)),
            format!("it is {range}"),
        )
    })
}

/// A 32-bit number (zones, marks): decimal or `0x` hex, as conntrack-tools reads them.
fn u32_value(vals: &Values, k: Key, what: &str) -> Result<Option<u32>, Bad> {
    let Some(v) = vals.get(k) else {
        return Ok(None);
    };
    let n = match v
        .text
        .strip_prefix("0x")
        .or_else(|| v.text.strip_prefix("0X"))
    {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v
            .text
            .parse::<u32>()
            .ok()
            .filter(|_| !v.text.starts_with('+')),
    };
    n.map(Some).ok_or_else(|| {
        bad(
            v.col,
            format!("{what} `{}` is not a 32-bit number", clip(v.text)),
            SHAPE,
        )
    })
}

/// A number that must be zero (zones, the secmark).
fn must_be_zero(vals: &Values, k: Key, what: &str) -> Result<(), Bad> {
    match u32_value(vals, k, what)? {
        None | Some(0) => Ok(()),
        Some(_) => {
            let v = vals.get(k).map_or("", |v| v.text);
            let o = vals.opt(k).map_or(v, |o| o.text);
            let col = vals.get(k).map_or(1, |v| v.col);
            Err(bad(
                col,
                format!("{what} {v} is not kept by Statewall"),
                format!("only {what} 0 can be restored; remove `{o} {v}`"),
            ))
        }
    }
}

fn address(t: Tok, what: &str) -> Result<IpAddr, Bad> {
    t.text.parse().map_err(|_| {
        bad(
            t.col,
            format!("{what} `{}` is not an IP address", clip(t.text)),
            "write an IPv4 or IPv6 address without a mask (10.0.0.1, 2001:db8::1)",
        )
    })
}

fn addr_bytes(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

fn protocol(t: Tok) -> Result<u8, Bad> {
    let s = t.text;
    let named = [
        ("tcp", proto::TCP),
        ("udp", proto::UDP),
        ("udplite", proto::UDPLITE),
        ("icmp", proto::ICMP),
        ("icmpv6", proto::ICMPV6),
        ("sctp", proto::SCTP),
        ("dccp", proto::DCCP),
        ("gre", proto::GRE),
    ];
    if let Some((_, p)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(*p);
    }
    if let Some(p) = Proto::from_name(s) {
        return Ok(p.0);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = s.parse::<u8>() {
            return Ok(n);
        }
    }
    Err(bad(
        t.col,
        format!("unknown protocol `{}`", clip(s)),
        "name it (tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre) or give its number 0-255",
    ))
}

fn status_bits(t: Tok) -> Result<u16, Bad> {
    let mut bits = 0;
    let mut col = t.col;
    for name in t.text.split(',') {
        match STATUS_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, b)) => bits |= b,
            None => {
                let hint = if name.eq_ignore_ascii_case("SEQ_ADJUST") {
                    "TCP sequence adjustment belongs to NAT helpers, which Statewall does not run; \
                     leave such entries out"
                        .to_string()
                } else {
                    format!(
                        "status names are {}",
                        STATUS_NAMES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(bad(
                    col,
                    format!("status `{}` cannot be restored", clip(name)),
                    hint,
                ));
            }
        }
        col += name.chars().count() + 1;
    }
    Ok(bits)
}

/// Options that only some protocols take: the option and the protocols.
fn refuse_foreign(vals: &Values, keys: &[Key], proto_name: &str) -> Result<(), Bad> {
    for &k in keys {
        if let Some(o) = vals.opt(k) {
            return Err(bad(
                o.col,
                format!("`{}` does not apply to protocol {proto_name}", o.text),
                "remove it, or fix `-p`",
            ));
        }
    }
    Ok(())
}

const PORT_KEYS: [Key; 4] = [Key::Sport, Key::Dport, Key::ReplySport, Key::ReplyDport];
const ICMP_KEYS: [Key; 3] = [Key::IcmpType, Key::IcmpCode, Key::IcmpId];
const ICMP6_KEYS: [Key; 3] = [Key::Icmp6Type, Key::Icmp6Code, Key::Icmp6Id];
const GRE_KEYS: [Key; 4] = [Key::GreSrc, Key::GreDst, Key::GreReplySrc, Key::GreReplyDst];
const SCTP_DCCP_KEYS: [Key; 3] = [Key::OrigVtag, Key::ReplyVtag, Key::Role];

fn required<'a>(vals: &Values<'a>, k: Key, col: usize, what: &str) -> Result<Tok<'a>, Bad> {
    vals.get(k)
        .ok_or_else(|| bad(col, format!("no {what}"), SHAPE))
}

/// A reply-direction value, if given, must be the original's inverse (no NAT).
fn inverse_of(vals: &Values, k: Key, want: &str, what: &str) -> Result<(), Bad> {
    if let Some(v) = vals.get(k) {
        if v.text != want {
            let o = vals.opt(k).map_or("", |o| o.text);
            return Err(bad(
                v.col,
                format!(
                    "the reply tuple is not the inverse of the original: `{o} {}`, where the \
                     original gives {want} ({what}); the connection is NAT'd",
                    clip(v.text)
                ),
                NO_NAT,
            ));
        }
    }
    Ok(())
}

fn build(vals: &Values, cmd_col: usize, now: u64) -> Result<Entry, Bad> {
    let t: u32 = number(
        required(vals, Key::Timeout, cmd_col, "timeout (-t SECONDS)")?,
        "timeout",
        "0 to 4294967295 seconds",
    )?;
    let p = protocol(required(vals, Key::Proto, cmd_col, "protocol (-p PROTO)")?)?;
    let src_t = required(vals, Key::Src, cmd_col, "original source (-s ADDRESS)")?;
    let dst_t = required(vals, Key::Dst, cmd_col, "original destination (-d ADDRESS)")?;
    let src = address(src_t, "source")?;
    let dst = address(dst_t, "destination")?;
    let family = match src {
        IpAddr::V4(_) => IpFamily::V4,
        IpAddr::V6(_) => IpFamily::V6,
    };
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(bad(
            dst_t.col,
            "the source and destination are of different families",
            "both IPv4 or both IPv6",
        ));
    }
    if let Some(f) = vals.get(Key::Family) {
        let ok = match f.text.to_ascii_lowercase().as_str() {
            "ipv4" => family == IpFamily::V4,
            "ipv6" => family == IpFamily::V6,
            _ => {
                return Err(bad(
                    f.col,
                    format!("unknown family `{}`", clip(f.text)),
                    "ipv4 or ipv6",
                ))
            }
        };
        if !ok {
            return Err(bad(
                f.col,
                format!("family {} does not match the addresses", f.text),
                "drop `-f` or fix the addresses",
            ));
        }
    }
    // The reply addresses, compared as addresses (IPv6 has many spellings).
    for (k, want) in [(Key::ReplySrc, dst), (Key::ReplyDst, src)] {
        if let Some(v) = vals.get(k) {
            let got = address(v, "reply address")?;
            if got != want {
                let o = vals.opt(k).map_or("", |o| o.text);
                return Err(bad(
                    v.col,
                    format!(
                        "the reply tuple is not the inverse of the original: `{o} {got}`, \
                         where the original gives {want}; the connection is NAT'd"
                    ),
                    NO_NAT,
                ));
            }
        }
    }
    let bits = match vals.get(Key::Status) {
        Some(s) => status_bits(s)?,
        None => 0,
    };
    must_be_zero(vals, Key::Zone, "zone")?;
    must_be_zero(vals, Key::OrigZone, "zone")?;
    must_be_zero(vals, Key::ReplyZone, "zone")?;
    let mark = u32_value(vals, Key::Mark, "mark")?.unwrap_or(0);
    must_be_zero(vals, Key::Secmark, "secmark")?;

    let name = Proto(p).conntrack_name();
    let proto_name = if name == "unknown" {
        p.to_string()
    } else {
        name.to_string()
    };
    let (mut sport, mut dport) = (0u16, 0u16);
    let mut tcp_state = None;
    if icmp::is_icmp(family, p) {
        let (keys, other) = if family == IpFamily::V4 {
            (ICMP_KEYS, ICMP6_KEYS)
        } else {
            (ICMP6_KEYS, ICMP_KEYS)
        };
        refuse_foreign(vals, &other, &proto_name)?;
        refuse_foreign(vals, &PORT_KEYS, &proto_name)?;
        refuse_foreign(vals, &GRE_KEYS, &proto_name)?;
        refuse_foreign(vals, &SCTP_DCCP_KEYS, &proto_name)?;
        refuse_foreign(vals, &[Key::State], &proto_name)?;
        let opt = if family == IpFamily::V4 {
            "--icmp"
        } else {
            "--icmpv6"
        };
        let ty_t = required(vals, keys[0], cmd_col, &format!("ICMP type ({opt}-type)"))?;
        let ty: u8 = number(ty_t, "ICMP type", "0 to 255")?;
        let code: u8 = number(
            required(vals, keys[1], cmd_col, &format!("ICMP code ({opt}-code)"))?,
            "ICMP code",
            "0 to 255",
        )?;
        let id: u16 = number(
            required(vals, keys[2], cmd_col, &format!("ICMP id ({opt}-id)"))?,
            "ICMP id",
            "0 to 65535",
        )?;
        if !icmp::valid_new(family, ty) {
            return Err(bad(
                ty_t.col,
                format!("ICMP type {ty} does not start a connection"),
                if family == IpFamily::V4 {
                    "the original direction is a query: echo request 8, timestamp 13, \
                     information request 15 or address mask request 17"
                } else {
                    "the original direction is a query: echo request 128 or node information \
                     query 139"
                },
            ));
        }
        sport = id;
        dport = u16::from(ty) << 8 | u16::from(code);
    } else {
        refuse_foreign(vals, &ICMP_KEYS, &proto_name)?;
        refuse_foreign(vals, &ICMP6_KEYS, &proto_name)?;
        if Proto(p).has_ports() {
            refuse_foreign(vals, &GRE_KEYS, &proto_name)?;
            if matches!(p, proto::SCTP | proto::DCCP)
                && vals.get(Key::Sport).is_none()
                && vals.get(Key::Dport).is_none()
            {
                // A kernel without the protocol's tracker (DCCP's left Linux in 6.16) keeps
                // these by addresses alone.
                return Err(bad(
                    cmd_col,
                    format!(
                        "a {proto_name} entry without ports (the kernel tracked it without its \
                         protocol module); Statewall tracks {proto_name} by ports"
                    ),
                    format!("leave such entries out (`grep -v ' -p {proto_name} '`)"),
                ));
            }
            sport = number(
                required(vals, Key::Sport, cmd_col, "source port (--sport)")?,
                "source port",
                "0 to 65535",
            )?;
            dport = number(
                required(vals, Key::Dport, cmd_col, "destination port (--dport)")?,
                "destination port",
                "0 to 65535",
            )?;
            inverse_of(vals, Key::ReplySport, &dport.to_string(), "--dport")?;
            inverse_of(vals, Key::ReplyDport, &sport.to_string(), "--sport")?;
            if p == proto::TCP {
                refuse_foreign(vals, &SCTP_DCCP_KEYS, &proto_name)?;
                let st = required(vals, Key::State, cmd_col, "TCP state (--state)")?;
                let up = st.text.to_ascii_uppercase();
                let s = if up == "LISTEN" {
                    // conntrack-tools' old name for index 9.
                    Some(state::SYN_SENT2)
                } else {
                    state::from_name(&up)
                };
                match s {
                    Some(s) if s != state::NONE => tcp_state = Some(s),
                    Some(_) => return Err(bad(
                        st.col,
                        "TCP state NONE is not a connection state",
                        "restore entries in SYN_SENT .. SYN_SENT2 (ESTABLISHED, TIME_WAIT, ...)",
                    )),
                    None => {
                        return Err(bad(
                            st.col,
                            format!("unknown TCP state `{}`", clip(st.text)),
                            format!("TCP states are {}", state::NAMES[1..].join(", ")),
                        ))
                    }
                }
            } else if matches!(p, proto::UDP | proto::UDPLITE) {
                refuse_foreign(vals, &SCTP_DCCP_KEYS, &proto_name)?;
                refuse_foreign(vals, &[Key::State], &proto_name)?;
            }
            // SCTP and DCCP: the engine tracks them by ports alone; their state, tags and
            // role have nothing to go into and are left out.
        } else {
            refuse_foreign(vals, &PORT_KEYS, &proto_name)?;
            refuse_foreign(vals, &SCTP_DCCP_KEYS, &proto_name)?;
            refuse_foreign(vals, &[Key::State], &proto_name)?;
            if p == proto::GRE {
                for k in GRE_KEYS {
                    if let Some(v) = vals.get(k) {
                        let n: u16 = number(v, "GRE key", "0 to 65535")?;
                        if n != 0 {
                            return Err(bad(
                                v.col,
                                format!("GRE key {n}: GRE keys (PPTP call ids) are not tracked"),
                                "only GRE entries with keys 0 can be restored",
                            ));
                        }
                    }
                }
            } else {
                refuse_foreign(vals, &GRE_KEYS, &proto_name)?;
            }
        }
    }

    let key = FlowKey::new(family, addr_bytes(src), addr_bytes(dst), p, sport, dport);
    // No window data and no window scales in the format: liberal, as picked up mid-stream.
    let mut e = Entry::handed_over(key, now.saturating_add(u64::from(t) * NS), bits, tcp_state);
    e.mark = mark;
    e.check().map_err(|m| {
        bad(
            cmd_col,
            format!("the entry is not one Statewall can hold: {m}"),
            SHAPE,
        )
    })?;
    Ok(e)
}

/// What became of an entry handed to [`adopt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    Added,
    /// An entry for the connection was there already (it stays as it is).
    Present,
    /// Its timeout ran out before it reached the table.
    Expired,
    /// The shard is full.
    Full,
}

/// Put a restored entry into the shard that owns it (the caller routes by
/// `owner(key.symmetric_hash(), workers)`): unless it expired by `now`, with the FTP helper
/// assigned as a new connection gets it (its destination port is one the shard's helper
/// watches). `Err` for an entry [`Shard::adopt`] finds invalid (never one [`parse`] made).
pub fn adopt<M: SlabMemory>(
    shard: &mut Shard<M>,
    mut e: Entry,
    now: u64,
) -> Result<Adopted, &'static str> {
    if e.expires <= now {
        return Ok(Adopted::Expired);
    }
    if e.key.proto == proto::TCP && shard.is_ftp_port(e.key.dport) {
        e.set(status::HELPER_FTP);
    }
    match shard.adopt(e) {
        Ok(_) => Ok(Adopted::Added),
        Err(AdoptError::Duplicate) => Ok(Adopted::Present),
        Err(AdoptError::Full) => Ok(Adopted::Full),
        Err(AdoptError::Invalid(m)) => Err(m),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conntrack::expect::SharedExpectations;
    use crate::conntrack::tcp::{flag, TcpDir};
    use crate::conntrack::{Sysctls, Track};
    use crate::packet::tcp_flags::{ACK, PSH};
    use crate::wire::{self, build};

    /// `conntrack -L -o save` from conntrack-tools 1.4.7 on Linux 6.18: entries made with
    /// `conntrack -I`, entries of real traffic, and statewall's own save that `conntrack -R`
    /// loaded (scripts/test-conntrack-save.sh).
    const SEEDS: [(&str, &str); 3] = [
        (
            "kernel-1.4.7.txt",
            include_str!("../../../fuzz/seeds/conntrack_save/kernel-1.4.7.txt"),
        ),
        (
            "kernel-traffic.txt",
            include_str!("../../../fuzz/seeds/conntrack_save/kernel-traffic.txt"),
        ),
        (
            "statewall.txt",
            include_str!("../../../fuzz/seeds/conntrack_save/statewall.txt"),
        ),
    ];

    fn shard(ftp: &[u16]) -> Shard {
        Shard::new(
            64,
            Sysctls::from_settings(&config::ConntrackSettings::default()),
            ftp,
            Arc::new(SharedExpectations::new(16)),
        )
    }

    fn one(line: &str) -> Entry {
        let v = parse(line, 0).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        assert_eq!(v.len(), 1, "{line}");
        v[0].entry
    }

    fn err(line: &str) -> LineError {
        match parse(line, 0) {
            Ok(v) => panic!("{line} parsed: {v:?}"),
            Err(mut e) => {
                assert_eq!(e.len(), 1, "{e:?}");
                e.remove(0)
            }
        }
    }

    #[test]
    fn kernel_lines_read_back_and_print_identically() {
        let mut n = 0;
        for (file, text) in SEEDS {
            for (i, line) in text.lines().enumerate() {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let e = one(line);
                n += 1;
                // Same time base: the printed timeout is the one read.
                assert_eq!(format_line(&e, 0).as_deref(), Ok(line), "{file}:{}", i + 1);
            }
        }
        assert!(n >= 35, "{n} lines");
    }

    #[test]
    fn sctp_reads_back_without_a_line_and_portless_dccp_is_refused() {
        let text = include_str!("../../../fuzz/seeds/conntrack_save/kernel-sctp-dccp.txt");
        let errs = parse(text, 0).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].message.contains("dccp entry without ports"),
            "{errs:?}"
        );
        let sctp = text.lines().find(|l| l.contains(" -p sctp ")).unwrap();
        let e = one(sctp);
        assert_eq!((e.key.proto, e.key.sport, e.key.dport), (132, 1, 2));
        assert_eq!(format_line(&e, 0), Err(NO_LINE_SCTP_DCCP));
    }

    #[test]
    fn fields_of_a_tcp_line() {
        let e = one("-A -t 431999 -u SEEN_REPLY,ASSURED -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p tcp --sport 40000 --dport 80 --reply-port-src 80 --reply-port-dst 40000 --state ESTABLISHED");
        assert_eq!(e.key.family, IpFamily::V4);
        assert_eq!(e.key.src, v4_mapped([10, 0, 0, 1]));
        assert_eq!(e.key.dst, v4_mapped([10, 0, 0, 2]));
        assert_eq!((e.key.proto, e.key.sport, e.key.dport), (6, 40000, 80));
        assert_eq!(e.expires, 431_999 * NS);
        assert_eq!(e.status, status::SEEN_REPLY | status::ASSURED);
        assert_eq!(e.tcp.state, state::ESTABLISHED);
        let liberal = TcpDir {
            flags: flag::SACK_PERM | flag::BE_LIBERAL,
            ..TcpDir::default()
        };
        assert_eq!(e.tcp.seen, [liberal; 2], "no window data, liberal checks");
        // ICMP: id and type<<8|code, as packets make them.
        let e = one("-A -t 29 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 77");
        assert_eq!(
            (e.key.proto, e.key.sport, e.key.dport, e.status),
            (1, 77, 8 << 8, 0)
        );
        let e = one("-A -t 29 -u UNSET -s 2001:db8::1 -d 2001:db8::2 -r 2001:db8::2 -q 2001:db8::1 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 9");
        assert_eq!(e.key.family, IpFamily::V6);
        assert_eq!((e.key.proto, e.key.sport, e.key.dport), (58, 9, 128 << 8));
        // conntrack-tools' spellings: long names, `=`, any order, no reply tuple, numbers
        // for protocols, and harmless kernel status names.
        let e = one("-I --proto=17 --orig-src 10.0.0.1 --timeout=30 --dst 10.0.0.2 --dport 53 --sport 5353 --status=CONFIRMED,seen_reply,SRC_NAT_DONE,DST_NAT_DONE -w 0 --mark 0");
        assert_eq!((e.key.proto, e.key.sport, e.key.dport), (17, 5353, 53));
        assert_eq!(e.status, status::SEEN_REPLY);
        assert_eq!(e.expires, 30 * NS);
        let e = one("-A -t 10 -u ASSURED -s 10.0.0.1 -d 10.0.0.2 -p sctp --sport 1 --dport 2 --state ESTABLISHED --orig-vtag 5 --reply-vtag 6");
        assert_eq!((e.key.proto, e.key.sport, e.key.dport), (132, 1, 2));
        let e = one("-A -t 10 -u EXPECTED -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 1 --dport 2 --state LISTEN");
        assert_eq!(
            (e.status, e.tcp.state),
            (status::EXPECTED, state::SYN_SENT2)
        );
        // Blank lines and comments count for line numbers but make nothing.
        let v = parse("\n# saved\n   \n-A -t 1 -s 1.2.3.4 -d 5.6.7.8 -p 50\r\n", 7).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].line, 4);
        assert_eq!(v[0].entry.expires, 7 + NS);
        assert_eq!(v[0].entry.key.proto, 50);
    }

    #[test]
    fn printed_lines() {
        let e = one("-A -t 100 -u ASSURED,SEEN_REPLY,EXPECTED -s ::2.3.4.5 -d ::ffff:1.2.3.4 -p udplite --sport 1 --dport 2");
        // EXPECTED is left out (a kernel refuses it), the order is conntrack-tools', and
        // addresses are inet_ntop's.
        assert_eq!(
            format_line(&e, 1_500_000_000).unwrap(),
            "-A -t 98 -u SEEN_REPLY,ASSURED -s ::2.3.4.5 -d ::ffff:1.2.3.4 -r ::ffff:1.2.3.4 -q ::2.3.4.5 -p udplite --sport 1 --dport 2 --reply-port-src 2 --reply-port-dst 1"
        );
        let e = one("-A -t 5 -s 2001:db8:0:0:1:0:0:1 -d ::1 -p icmp");
        assert_eq!(
            format_line(&e, 0).unwrap(),
            "-A -t 5 -u UNSET -s 2001:db8::1:0:0:1 -d ::1 -r ::1 -q 2001:db8::1:0:0:1 -p icmp"
        );
        let e = one("-A -t 5 -s 10.0.0.1 -d 10.0.0.2 -p dccp --sport 1 --dport 2 --state OPEN --role client");
        assert_eq!(format_line(&e, 0), Err(NO_LINE_SCTP_DCCP));
        let (lines, skipped) =
            format_all([e, one("-A -t 5 -s 10.0.0.1 -d 10.0.0.2 -p 2")].iter(), 0);
        assert_eq!(skipped, 1);
        assert_eq!(
            lines,
            ["-A -t 5 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p 2"]
        );
        // An entry about to expire says 0, as the kernel's listing would.
        let e = one("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2");
        assert!(format_line(&e, NS - 1).unwrap().starts_with("-A -t 0 "));
        // A mark is read (decimal or hex, `-m` or `--mark`) and written last, in decimal.
        for m in ["-m 0x1f", "--mark 31", "--mark=31"] {
            let e = one(&format!("-A -t 5 -s 10.0.0.1 -d 10.0.0.2 {m} -p 2"));
            assert_eq!(e.mark, 31);
            assert_eq!(
                format_line(&e, 0).unwrap(),
                "-A -t 5 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p 2 --mark 31"
            );
        }
    }

    #[test]
    fn bad_lines_say_where_and_why() {
        let cases: &[(&str, usize, &str)] = &[
            ("-D -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2", 1, "not a command"),
            ("  -A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2 --bogus 1", 40, "unknown option `--bogus`"),
            ("-A -s 10.0.0.1 -d 10.0.0.2 -p 2", 1, "no timeout"),
            ("-A -t x -s 10.0.0.1 -d 10.0.0.2 -p 2", 7, "timeout `x` is not a number"),
            ("-A -t 4294967296 -s 10.0.0.1 -d 10.0.0.2 -p 2", 7, "out of range"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2 -t 2", 38, "`-t` is given twice"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p", 33, "`-p` needs a value"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p bogus", 36, "unknown protocol"),
            ("-A -t 1 -s 10.0.0.1/32 -d 10.0.0.2 -p 2", 12, "not an IP address"),
            ("-A -t 1 -s 10.0.0.1 -d ::2 -p 2", 24, "different families"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 192.0.2.1 -p 2", 48, "not the inverse"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -g 192.0.2.7 -q 10.0.0.1 -p 2", 33, "destination-NAT'd"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -n 192.0.2.1 -p 2", 45, "source-NAT'd"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 1 --dport 80 --reply-port-src 8080 --state ESTABLISHED", 78, "not the inverse"),
            ("-A -t 1 -u SEEN_REPLY,SEQ_ADJUST -s 10.0.0.1 -d 10.0.0.2 -p 2", 23, "status `SEQ_ADJUST`"),
            ("-A -t 1 -w 7 -s 10.0.0.1 -d 10.0.0.2 -p 2", 12, "zone 7 is not kept"),
            ("-A -t 1 -m 5x -s 10.0.0.1 -d 10.0.0.2 -p 2", 12, "mark `5x` is not a 32-bit number"),
            ("-A -t 1 -m 4294967296 -s 10.0.0.1 -d 10.0.0.2 -p 2", 12, "not a 32-bit number"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 1 --dport 2", 1, "no TCP state"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 1 --dport 2 --state NONE", 68, "NONE"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 1 --dport 2 --state OPEN", 68, "unknown TCP state"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 70000 --dport 2 --state CLOSE", 48, "out of range"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p udp --dport 2", 1, "no source port"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p icmp --icmp-type 0 --icmp-code 0 --icmp-id 1", 53, "does not start a connection"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p icmp --icmpv6-type 128 --icmp-code 0 --icmp-id 1", 41, "`--icmpv6-type` does not apply"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p icmp --icmp-type 8 --icmp-code 0", 1, "no ICMP id"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p udp --sport 1 --dport 2 --state ESTABLISHED", 60, "`--state` does not apply"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 50 --sport 1", 39, "`--sport` does not apply to protocol 50"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p gre --srckey 5", 49, "GRE keys"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2 --label foo", 38, "labels"),
            ("-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -f ipv6 -p 2", 36, "does not match"),
        ];
        let mut wrong = vec![];
        for (line, col, what) in cases {
            let e = err(line);
            assert_eq!(e.line, 1, "{line}");
            assert!(e.message.contains(what), "{line}: {e:?}");
            if e.col != *col {
                wrong.push(format!("{} (want {col}) {line}\n   {}", e.col, e.message));
            }
            assert!(!e.hint.is_empty(), "{line}");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // Every bad line is reported, with its number; good ones make nothing then.
        let text = "-A -t 1 -s 10.0.0.1 -d 10.0.0.2 -p 2\nbogus\n\n-A -t 1 -s 1.2.3.4 -d 10.0.0.2 -r 10.0.0.3 -p 2\n";
        let errs = parse(text, 0).unwrap_err();
        assert_eq!(
            errs.iter().map(|e| (e.line, e.col)).collect::<Vec<_>>(),
            [(2, 1), (4, 35)]
        );
        let r = errs[1].render("table.save");
        assert!(
            r.starts_with("table.save:4:35: the reply tuple is not the inverse"),
            "{r}"
        );
        assert!(r.contains("; Statewall does no NAT"), "{r}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let words = [
            "-A",
            "-t",
            "-u",
            "-s",
            "-d",
            "-r",
            "-q",
            "-p",
            "--sport",
            "--dport",
            "--state",
            "--icmp-type",
            "--icmpv6-id",
            "tcp",
            "udp",
            "icmp",
            "icmpv6",
            "gre",
            "10.0.0.1",
            "::1",
            "65535",
            "99999",
            "0",
            "SEEN_REPLY,",
            "=",
            "--timeout=",
            "é",
            "\t",
            "#",
        ];
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..(rng % 24) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                line.push_str(words[(rng % words.len() as u64) as usize]);
                if rng & 0x100 != 0 {
                    line.push(' ');
                }
            }
            if let Ok(v) = parse(&line, u64::MAX - 5) {
                for p in v {
                    assert!(p.entry.check().is_ok(), "{line}");
                }
            }
        }
    }

    fn track(sh: &mut Shard, now: u64, seg: &build::Tcp) -> Track {
        let frame = seg.frame();
        let m = wire::parse(&frame).unwrap();
        sh.track(now, &m, &frame, true)
    }

    /// A restored ESTABLISHED entry (no window data, no window scales) takes the next
    /// segments of a connection in the middle of its stream, whatever their sequence numbers,
    /// in both directions, and stays liberal as the kernel's mid-stream pickup does: a bulk
    /// transfer whose windows are scaled (here 24576 << 7, 3 MB in flight) is not dropped.
    #[test]
    fn restored_tcp_picks_up_mid_stream_liberally() {
        for server_first in [false, true] {
            let mut sh = shard(&[]);
            let e = one("-A -t 431999 -u SEEN_REPLY,ASSURED -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p tcp --sport 40000 --dport 80 --reply-port-src 80 --reply-port-dst 40000 --state ESTABLISHED");
            assert_eq!(adopt(&mut sh, e, 0), Ok(Adopted::Added));
            let now = NS;
            let (c, s) = ("10.0.0.1:40000", "10.0.0.2:80");
            // Sequence numbers the tracker has never seen.
            let (cseq, sseq) = (0x8765_4321_u32, 0x0123_4567_u32);
            let seg = |from, to, seq, ack, len: usize| build::Tcp {
                seq,
                ack,
                window: 24576,
                payload: vec![b'x'; len],
                ..build::Tcp::new(from, to, ACK | PSH)
            };
            let client = seg(c, s, cseq, sseq, 0);
            let server = seg(s, c, sseq, cseq, 1448);
            let order = if server_first {
                [&server, &client]
            } else {
                [&client, &server]
            };
            for p in order {
                assert!(
                    matches!(track(&mut sh, now, p), Track::Tracked { .. }),
                    "server first: {server_first}"
                );
            }
            // The server sends 2,000 full segments (2.9 MB, within its scaled window) before
            // the client's next ACK: every one is tracked.
            for k in 1..2000u32 {
                let p = seg(s, c, sseq.wrapping_add(k * 1448), cseq, 1448);
                assert!(
                    matches!(track(&mut sh, now, &p), Track::Tracked { .. }),
                    "segment {k}, server first: {server_first}"
                );
            }
            let entry = *sh.entries().next().unwrap();
            assert!(
                entry
                    .tcp
                    .seen
                    .iter()
                    .all(|d| d.flags & flag::BE_LIBERAL != 0 && d.td_maxwin != 0),
                "both windows set up, liberal"
            );
        }
    }

    #[test]
    fn adopt_assigns_the_ftp_helper_and_counts() {
        let mut sh = shard(&[21, 2121]);
        let ftp = one("-A -t 100 -u SEEN_REPLY,ASSURED -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 40000 --dport 2121 --state ESTABLISHED");
        let web = one("-A -t 100 -u SEEN_REPLY,ASSURED -s 10.0.0.1 -d 10.0.0.2 -p tcp --sport 40000 --dport 80 --state ESTABLISHED");
        let dns = one("-A -t 100 -s 10.0.0.1 -d 10.0.0.2 -p udp --sport 21 --dport 21");
        let gone = one("-A -t 0 -s 10.0.0.1 -d 10.0.0.2 -p udp --sport 1 --dport 2");
        for e in [ftp, web, dns] {
            assert_eq!(adopt(&mut sh, e, 0), Ok(Adopted::Added));
        }
        assert_eq!(adopt(&mut sh, gone, 0), Ok(Adopted::Expired));
        assert_eq!(adopt(&mut sh, web, 0), Ok(Adopted::Present));
        let helper: Vec<u16> = sh
            .entries()
            .filter(|e| e.has(status::HELPER_FTP))
            .map(|e| e.key.dport)
            .collect();
        assert_eq!(helper, [2121]);
        let mut small = Shard::new(1, *sh.sysctls(), &[], Arc::new(SharedExpectations::new(1)));
        let cap = small.capacity();
        for i in 0..cap {
            let mut e = web;
            e.key = FlowKey::new(e.key.family, e.key.src, e.key.dst, 6, 1000 + i as u16, 80);
            assert_eq!(adopt(&mut small, e, 0), Ok(Adopted::Added));
        }
        assert_eq!(adopt(&mut small, web, 0), Ok(Adopted::Full));
    }
}
