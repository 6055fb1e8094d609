//! Address sets (`config::sets`), as ipset's `hash:ip` and `hash:net` answer a lookup: a
//! `hash:ip` set is one hash of addresses; a `hash:net` set is one hash per prefix length
//! it holds, tried from the most specific, the first network found answering (a `nomatch`
//! one: not in the set). A lookup costs one hash probe per prefix length (at most 33 for
//! IPv4, 129 for IPv6, a handful in practice), whatever the number of members.
//!
//! Built once when a ruleset is compiled; read-only on the packet path.

use std::collections::{HashMap, HashSet};

use ahash::RandomState;

use config::ruleset::Family;
use config::sets::{IpSet, MatchSet, SetDir, SetType};

use crate::packet::{IpFamily, PacketMeta};

/// Fixed seeds: the members are the operator's, never chosen by traffic.
fn hasher() -> RandomState {
    RandomState::with_seeds(
        0x0005_eed0_f5e7_0001,
        0x0005_eed0_f5e7_0002,
        0x0005_eed0_f5e7_0003,
        0x0005_eed0_f5e7_0004,
    )
}

/// (prefix length, network -> nomatch), longest prefix first.
type ByLength<K> = Vec<(u8, HashMap<K, bool, RandomState>)>;

/// IPv4 members are kept as `u32`: a quarter of the memory of `u128` keys, so a large set
/// stays in cache longer.
#[derive(Debug)]
enum Members {
    Ips4(HashSet<u32, RandomState>),
    Ips6(HashSet<u128, RandomState>),
    Nets4(ByLength<u32>),
    Nets6(ByLength<u128>),
}

fn by_length<K: std::hash::Hash + Eq>(nets: impl Iterator<Item = (u8, K, bool)>) -> ByLength<K> {
    let mut out: ByLength<K> = Vec::new();
    for (len, net, nomatch) in nets {
        let at = match out.iter().position(|(l, _)| *l == len) {
            Some(i) => i,
            None => {
                out.push((len, HashMap::with_hasher(hasher())));
                out.len() - 1
            }
        };
        if let Some((_, h)) = out.get_mut(at) {
            h.insert(net, nomatch);
        }
    }
    out.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    out
}

#[derive(Debug)]
pub struct Set {
    family: IpFamily,
    bits: u8,
    members: Members,
}

/// The address as a number of `bits` bits (IPv4 in the low 32).
fn value(family: IpFamily, a: &[u8; 16]) -> u128 {
    match family {
        IpFamily::V4 => u128::from(u32::from_be_bytes([a[12], a[13], a[14], a[15]])),
        IpFamily::V6 => u128::from_be_bytes(*a),
    }
}

fn mask(bits: u8, prefix: u8) -> u128 {
    let all = if bits == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    match u32::from(bits - prefix.min(bits)) {
        0 => all,
        host if host >= 128 => 0,
        host => all & !((1u128 << host) - 1),
    }
}

impl Set {
    /// The set of a validated `sets:` entry.
    pub fn build(s: &IpSet) -> Set {
        let (family, bits) = match s.family {
            Family::Ipv4 => (IpFamily::V4, 32u8),
            Family::Ipv6 => (IpFamily::V6, 128u8),
        };
        let addr = |c: &config::matches::Cidr| match c.addr {
            std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
            std::net::IpAddr::V6(a) => u128::from(a),
        };
        let ips = || {
            s.members.iter().flat_map(move |m| {
                let base = addr(&m.net) & mask(bits, m.net.prefix);
                let n = 1u128 << u32::from(bits - m.net.prefix.min(bits));
                (0..n.min(config::sets::EXPAND_MAX)).map(move |i| base + i)
            })
        };
        let nets = || {
            s.members.iter().map(move |m| {
                let len = m.net.prefix.min(bits);
                (len, addr(&m.net) & mask(bits, len), m.nomatch)
            })
        };
        let members = match (s.kind, family) {
            (SetType::HashIp, IpFamily::V4) => {
                let mut h = HashSet::with_capacity_and_hasher(s.members.len(), hasher());
                h.extend(ips().map(|v| v as u32));
                Members::Ips4(h)
            }
            (SetType::HashIp, IpFamily::V6) => {
                let mut h = HashSet::with_capacity_and_hasher(s.members.len(), hasher());
                h.extend(ips());
                Members::Ips6(h)
            }
            (SetType::HashNet, IpFamily::V4) => {
                Members::Nets4(by_length(nets().map(|(l, n, x)| (l, n as u32, x))))
            }
            (SetType::HashNet, IpFamily::V6) => Members::Nets6(by_length(nets())),
        };
        Set {
            family,
            bits,
            members,
        }
    }

    /// Whether `a` (of `family`) is in the set; an address of the other family never is.
    #[inline]
    pub fn contains(&self, family: IpFamily, a: &[u8; 16]) -> bool {
        if family != self.family {
            return false;
        }
        let v = value(family, a);
        let found = match &self.members {
            Members::Ips4(ips) => return ips.contains(&(v as u32)),
            Members::Ips6(ips) => return ips.contains(&v),
            Members::Nets4(by_len) => by_len
                .iter()
                .find_map(|(len, nets)| nets.get(&((v & mask(self.bits, *len)) as u32)).copied()),
            Members::Nets6(by_len) => by_len
                .iter()
                .find_map(|(len, nets)| nets.get(&(v & mask(self.bits, *len))).copied()),
        };
        found.is_some_and(|nomatch| !nomatch)
    }

    pub fn len(&self) -> usize {
        match &self.members {
            Members::Ips4(ips) => ips.len(),
            Members::Ips6(ips) => ips.len(),
            Members::Nets4(by_len) => by_len.iter().map(|(_, h)| h.len()).sum(),
            Members::Nets6(by_len) => by_len.iter().map(|(_, h)| h.len()).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rule's `match_set`, its set resolved.
#[derive(Debug)]
pub struct SetMatch {
    set: std::sync::Arc<Set>,
    dst: bool,
    not: bool,
}

impl SetMatch {
    pub fn new(m: &MatchSet, set: std::sync::Arc<Set>) -> SetMatch {
        SetMatch {
            set,
            dst: m.dir == SetDir::Dst,
            not: m.not,
        }
    }

    #[inline]
    pub fn matches(&self, m: &PacketMeta) -> bool {
        let a = if self.dst { &m.dst } else { &m.src };
        self.set.contains(m.family, a) != self.not
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kind: SetType, family: Family, members: &[&str]) -> Set {
        Set::build(&IpSet {
            kind,
            family,
            members: members.iter().map(|m| m.parse().unwrap()).collect(),
        })
    }

    fn v4(s: &str) -> [u8; 16] {
        let a: std::net::Ipv4Addr = s.parse().unwrap();
        a.to_ipv6_mapped().octets()
    }

    #[test]
    fn nets_answer_from_the_most_specific() {
        let s = set(
            SetType::HashNet,
            Family::Ipv4,
            &["10.0.0.0/8", "10.1.0.0/16 nomatch", "10.1.2.0/24"],
        );
        assert!(s.contains(IpFamily::V4, &v4("10.9.9.9")));
        assert!(!s.contains(IpFamily::V4, &v4("10.1.9.9")));
        assert!(s.contains(IpFamily::V4, &v4("10.1.2.3")));
        assert!(!s.contains(IpFamily::V4, &v4("11.0.0.1")));
        let a: std::net::Ipv6Addr = "::ffff:10.9.9.9".parse().unwrap();
        assert!(!s.contains(IpFamily::V6, &a.octets()));
    }

    #[test]
    fn ips_expand_networks() {
        let s = set(
            SetType::HashIp,
            Family::Ipv4,
            &["192.0.2.0/30", "198.51.100.7"],
        );
        assert_eq!(s.len(), 5);
        assert!(s.contains(IpFamily::V4, &v4("192.0.2.3")));
        assert!(!s.contains(IpFamily::V4, &v4("192.0.2.4")));
        let s = set(SetType::HashNet, Family::Ipv6, &["2001:db8::/32"]);
        let a: std::net::Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        assert!(s.contains(IpFamily::V6, &a.octets()));
    }
}
