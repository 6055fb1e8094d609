//! Conntrack entries to and from sync messages' attributes ([`CtAttrs`]), as conntrackd 1.4.7
//! fills them from a kernel entry and sets a kernel entry from them.
//!
//! Sent: the original tuple, the kernel's status bits (`IPS_CONFIRMED` always, as a
//! conntrackd sending from its kernel's table does), the protocol with its ports and TCP
//! state or ICMP query, the seconds left, the mark, and `ftp` as the helper of an FTP
//! control connection. SCTP and DCCP entries are not sent: conntrackd needs their protocol
//! states (and SCTP's verification tags), which Statewall does not track.
//!
//! Taken: what the engine can hold. Refused with the reason: NAT (any NAT attribute), a
//! zone other than 0, connection labels, SCTP and DCCP states, a message without a tuple,
//! protocol or timeout, TCP without a state Statewall tracks, ICMP that is not a query, a
//! helper other than ftp, status bits only NAT helpers, templates or untracked entries have.
//! A TCP entry taken is tracked liberally until each direction's next segment (no window data
//! travels), as conntrackd's peers do.

use std::net::IpAddr;

use crate::conntrack::entry::{status, Entry};
use crate::conntrack::tcp::state;
use crate::flow::FlowKey;
use crate::packet::{to_ip, IpFamily};
use crate::wire::{icmp, proto};

use super::wire::{Addrs, CtAttrs, IcmpAttrs};

const NS: u64 = 1_000_000_000;

/// The kernel's status bits (`enum ip_conntrack_status`).
pub mod ips {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
    pub const SEQ_ADJUST: u32 = 1 << 6;
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    pub const DST_NAT_DONE: u32 = 1 << 8;
    pub const DYING: u32 = 1 << 9;
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    pub const TEMPLATE: u32 = 1 << 11;
    pub const UNTRACKED: u32 = 1 << 12;
    pub const HELPER: u32 = 1 << 13;
    pub const OFFLOAD: u32 = 1 << 14;
    pub const HW_OFFLOAD: u32 = 1 << 15;
}

/// Status bits of the engine and the kernel that mean the same.
const SAME: [(u16, u32); 3] = [
    (status::SEEN_REPLY, ips::SEEN_REPLY),
    (status::ASSURED, ips::ASSURED),
    (status::EXPECTED, ips::EXPECTED),
];

/// Kernel bits taken without meaning anything here: confirmation, the NAT module's "done"
/// marks (set on every connection where the nat table is loaded), a fixed timeout (the
/// timeout still runs down), a helper (named by its own attribute), offloads, dying (the
/// CT_DEL that follows removes it).
const HARMLESS: u32 = ips::CONFIRMED
    | ips::SRC_NAT_DONE
    | ips::DST_NAT_DONE
    | ips::FIXED_TIMEOUT
    | ips::HELPER
    | ips::OFFLOAD
    | ips::HW_OFFLOAD
    | ips::DYING;

/// The attributes conntrackd would send for `e` at `now`; `None` for SCTP and DCCP.
pub fn attrs_of(e: &Entry, now: u64) -> Option<CtAttrs> {
    let k = &e.key;
    if matches!(k.proto, proto::SCTP | proto::DCCP) {
        return None;
    }
    let addrs = match (to_ip(k.family, &k.src), to_ip(k.family, &k.dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Addrs::V4(s.octets(), d.octets()),
        (s, d) => Addrs::V6(v6(s), v6(d)),
    };
    let mut a = CtAttrs {
        addrs: Some(addrs),
        l4proto: Some(k.proto),
        status: Some(
            SAME.iter()
                .filter(|(mine, _)| e.has(*mine))
                .fold(ips::CONFIRMED, |acc, (_, theirs)| acc | theirs),
        ),
        timeout: Some(u32::try_from(e.remaining_secs(now)).unwrap_or(u32::MAX)),
        mark: Some(e.mark),
        ..CtAttrs::default()
    };
    match k.proto {
        proto::TCP | proto::UDP | proto::UDPLITE => a.ports = Some((k.sport, k.dport)),
        p if icmp::is_icmp(k.family, p) => {
            a.icmp = IcmpAttrs {
                kind: Some((k.dport >> 8) as u8),
                code: Some((k.dport & 0xff) as u8),
                id: Some(k.sport),
            };
        }
        _ => {}
    }
    if k.proto == proto::TCP {
        a.tcp_state = Some(e.tcp.state);
    }
    if e.has(status::HELPER_FTP) {
        a.helper = Some("ftp".to_string());
    }
    Some(a)
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// The entry a message's attributes make at `now`, or why the engine cannot hold it.
pub fn entry_of(a: &CtAttrs, now: u64) -> Result<Entry, String> {
    if a.nat {
        return Err("a NAT'd connection (NAT attributes): Statewall does no NAT".into());
    }
    if a.zone.is_some_and(|z| z != 0) {
        return Err(format!(
            "zone {}: Statewall keeps zone 0 only",
            a.zone.unwrap_or(0)
        ));
    }
    if a.labels.as_ref().is_some_and(|l| l.iter().any(|b| *b != 0)) {
        return Err("connection labels: Statewall keeps none".into());
    }
    if a.sctp_dccp {
        return Err("SCTP or DCCP state: Statewall tracks these protocols without it".into());
    }
    let (family, src, dst) = match a.addrs {
        Some(Addrs::V4(s, d)) => (
            IpFamily::V4,
            crate::packet::v4_mapped(s),
            crate::packet::v4_mapped(d),
        ),
        Some(Addrs::V6(s, d)) => (IpFamily::V6, s, d),
        None => return Err("no original tuple (IPV4 or IPV6 attribute)".into()),
    };
    let p = a.l4proto.ok_or("no protocol (L4PROTO attribute)")?;
    let t = a.timeout.ok_or(
        "no timeout (TIMEOUT attribute; a conntrackd with CommitTimeout set leaves it out)",
    )?;
    let st = a.status.unwrap_or(ips::CONFIRMED);
    let known = SAME.iter().fold(HARMLESS, |acc, (_, b)| acc | b) | ips::SRC_NAT | ips::DST_NAT;
    if st & !known != 0 {
        return Err(format!(
            "status bits {:#x}: only NAT helpers, templates and untracked entries have them",
            st & !known
        ));
    }
    if st & (ips::SRC_NAT | ips::DST_NAT) != 0 {
        return Err("a NAT'd connection (SRC_NAT/DST_NAT status): Statewall does no NAT".into());
    }
    let mut bits = SAME
        .iter()
        .filter(|(_, theirs)| st & theirs != 0)
        .fold(0, |acc, (mine, _)| acc | mine);
    match a.helper.as_deref() {
        None => {}
        Some("ftp") => bits |= status::HELPER_FTP,
        Some(h) => return Err(format!("helper `{h}`: Statewall has the FTP helper only")),
    }
    let (mut sport, mut dport, mut tcp_state) = (0, 0, None);
    match p {
        proto::TCP | proto::UDP | proto::UDPLITE => {
            (sport, dport) = a.ports.ok_or("no ports (PORT attribute)")?;
            if p == proto::TCP {
                let s = a.tcp_state.ok_or("a TCP connection without its state")?;
                if !(state::SYN_SENT..=state::SYN_SENT2).contains(&s) {
                    return Err(format!("TCP state {s}: not one a connection is tracked in"));
                }
                tcp_state = Some(s);
            }
        }
        p if icmp::is_icmp(family, p) => {
            let (Some(ty), Some(code), Some(id)) = (a.icmp.kind, a.icmp.code, a.icmp.id) else {
                return Err("an ICMP connection without its type, code and id".into());
            };
            if !icmp::valid_new(family, ty) {
                return Err(format!("ICMP type {ty} does not start a connection"));
            }
            sport = id;
            dport = u16::from(ty) << 8 | u16::from(code);
        }
        proto::SCTP | proto::DCCP => {
            return Err("SCTP and DCCP connections are not taken (no protocol state)".into());
        }
        _ => {}
    }
    let key = FlowKey::new(family, src, dst, p, sport, dport);
    let mut e = Entry::handed_over(key, now.saturating_add(u64::from(t) * NS), bits, tcp_state);
    e.mark = a.mark.unwrap_or(0);
    e.check()
        .map_err(|m| format!("not an entry Statewall can hold: {m}"))?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u8, sport: u16, dport: u16) -> FlowKey {
        FlowKey::new(
            IpFamily::V4,
            crate::packet::v4_mapped([10, 0, 0, 1]),
            crate::packet::v4_mapped([10, 0, 0, 2]),
            p,
            sport,
            dport,
        )
    }

    #[test]
    fn an_entry_goes_out_and_comes_back() {
        let mut e = Entry::handed_over(
            key(proto::TCP, 40000, 21),
            100 * NS,
            status::SEEN_REPLY | status::ASSURED | status::HELPER_FTP,
            Some(state::ESTABLISHED),
        );
        e.mark = 0x42;
        let a = attrs_of(&e, 10 * NS).unwrap();
        assert_eq!(
            a.status,
            Some(ips::CONFIRMED | ips::SEEN_REPLY | ips::ASSURED)
        );
        assert_eq!(a.timeout, Some(90));
        assert_eq!(a.helper.as_deref(), Some("ftp"));
        let back = entry_of(&a, 10 * NS).unwrap();
        assert_eq!(back.key, e.key);
        assert_eq!(
            (back.status, back.mark, back.tcp.state),
            (e.status, 0x42, 3)
        );
        assert_eq!(back.expires, 100 * NS);
        // An ICMP echo: type, code and id from the key.
        let e = Entry::handed_over(key(proto::ICMP, 7, 8 << 8), 5 * NS, 0, None);
        let a = attrs_of(&e, 0).unwrap();
        assert_eq!(
            a.icmp,
            IcmpAttrs {
                kind: Some(8),
                code: Some(0),
                id: Some(7)
            }
        );
        assert_eq!(entry_of(&a, 0).unwrap().key, e.key);
        // SCTP is not sent.
        let e = Entry::handed_over(key(proto::SCTP, 1, 2), 5 * NS, 0, None);
        assert!(attrs_of(&e, 0).is_none());
    }

    #[test]
    fn what_the_engine_cannot_hold_is_refused() {
        let e = Entry::handed_over(key(proto::UDP, 1, 53), 5 * NS, 0, None);
        let good = attrs_of(&e, 0).unwrap();
        let refused = |f: &dyn Fn(&mut CtAttrs), why: &str| {
            let mut a = good.clone();
            f(&mut a);
            let e = entry_of(&a, 0).unwrap_err();
            assert!(e.contains(why), "{e}");
        };
        refused(&|a| a.nat = true, "NAT");
        refused(&|a| a.status = Some(ips::CONFIRMED | ips::SRC_NAT), "NAT");
        refused(&|a| a.status = Some(ips::SEQ_ADJUST), "status bits 0x40");
        refused(&|a| a.zone = Some(3), "zone 3");
        refused(&|a| a.labels = Some(vec![0, 0, 0, 1]), "labels");
        refused(&|a| a.timeout = None, "no timeout");
        refused(&|a| a.ports = None, "no ports");
        refused(&|a| a.addrs = None, "no original tuple");
        refused(&|a| a.helper = Some("sip".into()), "helper `sip`");
        refused(
            &|a| {
                a.l4proto = Some(proto::TCP);
                a.tcp_state = Some(0);
            },
            "TCP state 0",
        );
        refused(
            &|a| {
                a.l4proto = Some(proto::ICMP);
                a.icmp = IcmpAttrs {
                    kind: Some(0),
                    code: Some(0),
                    id: Some(1),
                };
            },
            "does not start a connection",
        );
        // Labels all zero, zone 0, the NAT module's done bits: taken.
        let mut a = good.clone();
        a.labels = Some(vec![0; 16]);
        a.zone = Some(0);
        a.status = Some(ips::CONFIRMED | ips::SRC_NAT_DONE | ips::DST_NAT_DONE);
        assert!(entry_of(&a, 0).is_ok());
    }
}
