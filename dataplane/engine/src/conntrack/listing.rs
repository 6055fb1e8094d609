//! Entries in `/proc/net/nf_conntrack`'s line format (nf_conntrack_standalone.c
//! `ct_seq_show`), so scripts that parse the kernel's table parse ours:
//!
//! `ipv4     2 tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=43210 dport=80 src=10.10.0.3 dst=10.10.0.2 sport=80 dport=43210 [ASSURED] mark=0 use=1`

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use config::matches::Proto;
use config::protocol::{ConntrackEntry, Family, Tuple};

use crate::flow::FlowKey;
use crate::packet::{to_ip, IpFamily};
use crate::wire::icmp::is_icmp;

use super::entry::{status, Entry};
use super::tcp::state;

/// `%pI6`: eight groups of four hex digits, uncompressed, as the kernel prints.
fn ip6_full(a: &[u8; 16]) -> String {
    let segs = Ipv6Addr::from(*a).segments();
    segs.iter()
        .map(|s| format!("{s:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn tuple(out: &mut String, k: &FlowKey) {
    match k.family {
        IpFamily::V4 => {
            let _ = write!(
                out,
                "src={} dst={} ",
                to_ip(k.family, &k.src),
                to_ip(k.family, &k.dst)
            );
        }
        IpFamily::V6 => {
            let _ = write!(out, "src={} dst={} ", ip6_full(&k.src), ip6_full(&k.dst));
        }
    }
    if is_icmp(k.family, k.proto) {
        let _ = write!(
            out,
            "type={} code={} id={} ",
            k.dport >> 8,
            k.dport & 0xff,
            k.sport
        );
    } else if Proto(k.proto).has_ports() {
        let _ = write!(out, "sport={} dport={} ", k.sport, k.dport);
    }
}

/// One entry's line (without the newline); `now` gives the remaining timeout.
pub fn format_entry(e: &Entry, now: u64) -> String {
    let k = &e.key;
    let (l3, l3num) = match k.family {
        IpFamily::V4 => ("ipv4", 2),
        IpFamily::V6 => ("ipv6", 10),
    };
    let mut out = String::with_capacity(200);
    let secs = e.remaining_secs(now);
    let _ = write!(
        out,
        "{l3:<8} {l3num} {:<8} {} {secs} ",
        Proto(k.proto).conntrack_name(),
        k.proto
    );
    if k.proto == Proto::TCP.0 {
        let _ = write!(out, "{} ", state::name(e.tcp.state));
    }
    tuple(&mut out, k);
    if !e.has(status::SEEN_REPLY) {
        out.push_str("[UNREPLIED] ");
    }
    tuple(&mut out, &k.reverse());
    if e.has(status::ASSURED) {
        out.push_str("[ASSURED] ");
    }
    if e.has(status::HELPER_FTP) {
        out.push_str("helper=ftp ");
    }
    let _ = write!(out, "mark={} use=1", e.mark);
    out
}

/// The order of a stable listing: family, protocol, then the original tuple.
pub fn order_key(e: &Entry) -> (u8, u8, [u8; 16], [u8; 16], u16, u16) {
    let k = &e.key;
    (k.family as u8, k.proto, k.src, k.dst, k.sport, k.dport)
}

/// Lines for a set of entries, in listing order ([`order_key`]).
pub fn format_all<'a>(entries: impl Iterator<Item = &'a Entry>, now: u64) -> Vec<String> {
    let mut v: Vec<&Entry> = entries.collect();
    v.sort_by_key(|e| order_key(e));
    v.into_iter().map(|e| format_entry(e, now)).collect()
}

/// One entry as the control protocol's `conntrack list/get` reply carries it: the tuples
/// as fields, and the listing line beside them. `shard` is the worker that holds it.
pub fn message(shard: usize, e: &Entry, now: u64) -> ConntrackEntry {
    let k = &e.key;
    let r = k.reverse();
    let tuple = |k: &FlowKey| Tuple {
        src: to_ip(k.family, &k.src),
        dst: to_ip(k.family, &k.dst),
        sport: k.sport,
        dport: k.dport,
    };
    ConntrackEntry {
        shard,
        family: match k.family {
            IpFamily::V4 => Family::Ipv4,
            IpFamily::V6 => Family::Ipv6,
        },
        proto: k.proto,
        timeout: e.remaining_secs(now),
        state: (k.proto == Proto::TCP.0).then(|| state::name(e.tcp.state).to_string()),
        original: tuple(k),
        reply: tuple(&r),
        assured: e.has(status::ASSURED),
        unreplied: !e.has(status::SEEN_REPLY),
        mark: e.mark,
        line: format_entry(e, now),
    }
}
