//! Which entries a listing, count or flush selects: `conntrack -L/-D/-G`'s tuple filters
//! (family, protocol, addresses, ports, TCP state) in engine terms.
//!
//! The control protocol's [`ConntrackFilter`] names addresses and states as text and IP
//! addresses; [`EntryFilter::from_request`] turns it into the table's own forms once, so a
//! worker scanning its shard compares plain integers and byte arrays.

use std::net::IpAddr;

use config::matches::Proto;
use config::protocol::{ConntrackFilter, Family};

use super::entry::Entry;
use super::tcp::state;
use crate::flow::FlowKey;
use crate::packet::{v4_mapped, Addr, IpFamily};

/// A conntrack filter in engine terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryFilter {
    pub family: Option<IpFamily>,
    pub proto: Option<u8>,
    pub src: Option<Addr>,
    pub dst: Option<Addr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub port: Option<u16>,
    pub tcp_state: Option<u8>,
    /// Match the tuple in either direction (`conntrack -G`).
    pub either_direction: bool,
}

fn addr(ip: IpAddr) -> (IpFamily, Addr) {
    match ip {
        IpAddr::V4(a) => (IpFamily::V4, v4_mapped(a.octets())),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (IpFamily::V4, v4_mapped(v4.octets())),
            None => (IpFamily::V6, a.octets()),
        },
    }
}

impl EntryFilter {
    /// The engine form of a protocol filter; an unknown TCP state name is an error naming
    /// the known ones.
    pub fn from_request(
        f: &ConntrackFilter,
        either_direction: bool,
    ) -> Result<EntryFilter, String> {
        let mut family = f.family.map(|x| match x {
            Family::Ipv4 => IpFamily::V4,
            Family::Ipv6 => IpFamily::V6,
        });
        let mut ip = |a: Option<IpAddr>| -> Result<Option<Addr>, String> {
            let Some(a) = a else { return Ok(None) };
            let (fam, bytes) = addr(a);
            if family.is_some_and(|x| x != fam) {
                return Err(format!("address {a} is not of the family asked for"));
            }
            family = Some(fam);
            Ok(Some(bytes))
        };
        let src = ip(f.src)?;
        let dst = ip(f.dst)?;
        let tcp_state = match &f.state {
            None => None,
            Some(s) => {
                let st = state::from_name(s).ok_or_else(|| {
                    format!(
                        "unknown TCP state `{s}`; states are {}",
                        state::NAMES[1..].join(", ")
                    )
                })?;
                Some(st)
            }
        };
        Ok(EntryFilter {
            family,
            proto: f.proto,
            src,
            dst,
            sport: f.sport,
            dport: f.dport,
            port: f.port,
            tcp_state,
            either_direction,
        })
    }

    fn matches_key(&self, k: &FlowKey) -> bool {
        self.family.is_none_or(|f| f == k.family)
            && self.proto.is_none_or(|p| p == k.proto)
            && self.src.is_none_or(|a| a == k.src)
            && self.dst.is_none_or(|a| a == k.dst)
            && self.sport.is_none_or(|p| p == k.sport)
            && self.dport.is_none_or(|p| p == k.dport)
            && self.port.is_none_or(|p| p == k.sport || p == k.dport)
    }

    /// Whether a live entry matches.
    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(s) = self.tcp_state {
            if e.key.proto != Proto::TCP.0 || e.tcp.state != s {
                return false;
            }
        }
        self.matches_key(&e.key) || (self.either_direction && self.matches_key(&e.key.reverse()))
    }
}
