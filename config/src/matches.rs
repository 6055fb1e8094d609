//! Leaf values of a rule's matches, as a person writes them in YAML.
//!
//! Each type parses itself from a YAML scalar (string or integer), so that a bad value is
//! reported by serde_yaml at the value's own line and column, with a hint.
//! [`Match<T>`] is the shared shape of every list-valued match: a scalar, a list, or
//! `{not: scalar-or-list}` for iptables' `!` negation. [`Proto`] lives in [`crate::proto`] and
//! is re-exported here, beside the other match values.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

pub use crate::proto::{Proto, PROTO_NAMES};
use crate::suggest::did_you_mean;

/// A value that can be written as one YAML scalar.
pub trait Scalar: Sized {
    /// What the value looks like, for error messages ("a port or range like 1024-65535").
    const EXPECTING: &'static str;
    /// Parse from a string scalar; the error says what is wrong and how to fix it.
    fn parse_str(s: &str) -> Result<Self, String>;
    /// Parse from an integer scalar.
    fn parse_int(n: i64) -> Result<Self, String> {
        Self::parse_str(&n.to_string())
    }
    /// Write back as a YAML scalar (for `import-iptables` output).
    fn to_yaml(&self) -> serde_yaml::Value;
}

/// A list-valued match with optional negation: `dport: 80`, `dport: [22, 80]`,
/// `dport: {not: [22, 80]}`. A negated match matches when no listed value does, as
/// iptables' `!` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<T> {
    pub negated: bool,
    pub values: Vec<T>,
}

impl<T> Match<T> {
    pub fn new(values: Vec<T>) -> Self {
        Match {
            negated: false,
            values,
        }
    }

    pub fn negated(values: Vec<T>) -> Self {
        Match {
            negated: true,
            values,
        }
    }

    /// Whether a value satisfies this match, given how one listed value matches it.
    pub fn test(&self, mut f: impl FnMut(&T) -> bool) -> bool {
        self.values.iter().any(&mut f) != self.negated
    }
}

struct ScalarSeed<T>(std::marker::PhantomData<T>);

impl<'de, T: Scalar> de::DeserializeSeed<'de> for ScalarSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(ScalarVisitor::<T>(std::marker::PhantomData))
    }
}

struct ScalarVisitor<T>(std::marker::PhantomData<T>);

impl<T: Scalar> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::parse_str(v.trim()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::parse_int(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        let n = i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))?;
        T::parse_int(n).map_err(E::custom)
    }
}

/// Deserializes one scalar of type `T` (used for single-valued keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct One<T>(pub T);

impl<'de, T: Scalar> Deserialize<'de> for One<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor::<T>(std::marker::PhantomData))
            .map(One)
    }
}

impl<T: Scalar> Serialize for One<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_yaml().serialize(s)
    }
}

struct MatchVisitor<T>(std::marker::PhantomData<T>);

fn read_seq<'de, T: Scalar, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let mut out = Vec::new();
    while let Some(v) = seq.next_element_seed(ScalarSeed::<T>(std::marker::PhantomData))? {
        out.push(v);
    }
    if out.is_empty() {
        return Err(de::Error::custom(format!(
            "empty list: give at least one value ({}), or remove the key to match anything",
            T::EXPECTING
        )));
    }
    Ok(out)
}

/// Inner value of `{not: ...}`: a scalar or a list.
struct ListSeed<T>(std::marker::PhantomData<T>);

impl<'de, T: Scalar> de::DeserializeSeed<'de> for ListSeed<T> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Scalar> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{} or a list of them", T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
                T::parse_str(v.trim()).map(|x| vec![x]).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
                T::parse_int(v).map(|x| vec![x]).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
                ScalarVisitor::<T>(std::marker::PhantomData)
                    .visit_u64(v)
                    .map(|x| vec![x])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
                read_seq(seq)
            }
        }
        d.deserialize_any(V::<T>(std::marker::PhantomData))
    }
}

impl<'de, T: Scalar> Visitor<'de> for MatchVisitor<T> {
    type Value = Match<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}, a list of them, or {{not: ...}} to negate",
            T::EXPECTING
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Match<T>, E> {
        let v = v.trim();
        if let Some(rest) = v.strip_prefix('!') {
            return Err(E::custom(format!(
                "`!{rest}`: negation is written as a map, e.g. {{not: {}}}",
                rest.trim()
            )));
        }
        T::parse_str(v)
            .map(|x| Match::new(vec![x]))
            .map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Match<T>, E> {
        T::parse_int(v)
            .map(|x| Match::new(vec![x]))
            .map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Match<T>, E> {
        ScalarVisitor::<T>(std::marker::PhantomData)
            .visit_u64(v)
            .map(|x| Match::new(vec![x]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Match<T>, A::Error> {
        read_seq(seq).map(Match::new)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Match<T>, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty map: write {not: VALUE} to negate, or a plain value",
            ));
        };
        if key != "not" {
            return Err(de::Error::custom(format!(
                "unknown key `{key}` here: the only key allowed is `not`, as in {{not: VALUE}}"
            )));
        }
        let values = map.next_value_seed(ListSeed::<T>(std::marker::PhantomData))?;
        if let Some(k) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "unexpected key `{k}` after `not`: write {{not: [a, b]}} to negate several values"
            )));
        }
        Ok(Match::negated(values))
    }
}

impl<'de, T: Scalar> Deserialize<'de> for Match<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MatchVisitor::<T>(std::marker::PhantomData))
    }
}

fn values_yaml<T: Scalar>(values: &[T]) -> serde_yaml::Value {
    if values.len() == 1 {
        values[0].to_yaml()
    } else {
        serde_yaml::Value::Sequence(values.iter().map(Scalar::to_yaml).collect())
    }
}

impl<T: Scalar> Serialize for Match<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.negated {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("not", &values_yaml(&self.values))?;
            m.end()
        } else if self.values.len() == 1 {
            self.values[0].to_yaml().serialize(s)
        } else {
            let mut seq = s.serialize_seq(Some(self.values.len()))?;
            for v in &self.values {
                seq.serialize_element(&v.to_yaml())?;
            }
            seq.end()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Addresses

/// An IPv4 or IPv6 network, `10.0.0.0/8` or a bare address (a /32 or /128), or an
/// inclusive range of one family's addresses, `10.0.0.10-10.0.0.20`. Host bits of a network
/// are cleared, as iptables does (`-s 10.1.2.3/8` means 10.0.0.0/8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
    /// The last address of a range `addr-end` (iptables' `-m iprange`, nftables' `a-b`);
    /// `prefix` is then the full length.
    pub end: Option<IpAddr>,
}

impl Cidr {
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies in this network (an IPv4 network never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.end.is_some() {
            let (lo, hi) = self.range_u128();
            let v = match ip {
                IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
                IpAddr::V6(a) => u128::from(a),
            };
            return ip.is_ipv4() == self.is_v4() && (lo..=hi).contains(&v);
        }
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// First and last address of the network, as 128-bit integers; IPv4 networks are
    /// mapped into `::ffff:0:0/96` so both families share one number line.
    pub fn range_u128(&self) -> (u128, u128) {
        let number = |a: IpAddr| match a {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        if let Some(end) = self.end {
            return (number(self.addr), number(end));
        }
        let (base, bits) = match self.addr {
            IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let host_bits = bits - u32::from(self.prefix);
        let span = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        (base, base | span)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(end) = self.end {
            return write!(f, "{}-{end}", self.addr);
        }
        let full = if self.is_v4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Scalar for Cidr {
    const EXPECTING: &'static str =
        "an address, network or range like 10.0.0.0/8, fd00::/64 or 10.0.0.10-10.0.0.20";
    fn parse_str(s: &str) -> Result<Self, String> {
        if let Some((a, b)) = s.split_once('-') {
            let bad = |x: &str| {
                format!(
                    "invalid address `{x}` in the range `{s}`: write two addresses of one family, like 10.0.0.10-10.0.0.20"
                )
            };
            let lo: IpAddr = a.trim().parse().map_err(|_| bad(a))?;
            let hi: IpAddr = b.trim().parse().map_err(|_| bad(b))?;
            if lo.is_ipv4() != hi.is_ipv4() {
                return Err(format!(
                    "the range `{s}` mixes IPv4 and IPv6: give two addresses of one family"
                ));
            }
            let full = if lo.is_ipv4() { 32 } else { 128 };
            let c = Cidr {
                addr: lo,
                prefix: full,
                end: Some(hi),
            };
            let (l, h) = c.range_u128();
            if l > h {
                return Err(format!(
                    "the range `{s}` ends before it starts: write the lower address first"
                ));
            }
            return Ok(c);
        }
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| {
            format!(
                "invalid address `{a}` in `{s}`: write an IPv4 address like 10.0.0.1 or an IPv6 address like fd00::1, optionally followed by /PREFIX"
            )
        })?;
        let full: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => full,
            Some(p) => {
                let n: u8 = p.parse().map_err(|_| {
                    format!("invalid prefix length `{p}` in `{s}`: write a number from 0 to {full}")
                })?;
                if n > full {
                    return Err(format!(
                        "prefix length /{n} in `{s}` is too long: an {} prefix is 0 to {full}",
                        if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ));
                }
                n
            }
        };
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Cidr {
            addr,
            prefix,
            end: None,
        })
    }
    fn parse_int(n: i64) -> Result<Self, String> {
        Err(format!(
            "`{n}` is not an address: write an address or network like 10.0.0.0/8 or fd00::/64"
        ))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Ports

/// An inclusive L4 port range; a single port is `lo == hi`. Written `80`, `1024-65535` or
/// iptables' `1024:65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| format!("invalid port `{s}` in `{whole}`: a port is a number from 0 to 65535"))
}

impl Scalar for PortRange {
    const EXPECTING: &'static str = "a port like 80 or an inclusive range like 1024-65535";
    fn parse_str(s: &str) -> Result<Self, String> {
        let sep = s.find(['-', ':']);
        let (lo, hi) = if let Some(i) = sep {
            let (a, b) = (&s[..i], &s[i + 1..]);
            // iptables allows open ends: `:1023` and `1024:`.
            let lo = if a.trim().is_empty() {
                0
            } else {
                parse_port(a, s)?
            };
            let hi = if b.trim().is_empty() {
                65535
            } else {
                parse_port(b, s)?
            };
            (lo, hi)
        } else {
            let p = parse_port(s, s)?;
            (p, p)
        };
        if lo > hi {
            return Err(format!(
                "port range `{s}` is reversed: the first port must not exceed the second, write {hi}-{lo}"
            ));
        }
        Ok(PortRange { lo, hi })
    }
    fn parse_int(n: i64) -> Result<Self, String> {
        let p = u16::try_from(n)
            .map_err(|_| format!("invalid port {n}: a port is a number from 0 to 65535"))?;
        Ok(PortRange { lo: p, hi: p })
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        if self.lo == self.hi {
            serde_yaml::Value::Number(self.lo.into())
        } else {
            serde_yaml::Value::String(self.to_string())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Protocols (the type, its numbers and names are in `crate::proto`)

impl Scalar for Proto {
    const EXPECTING: &'static str = "a protocol name (tcp, udp, icmp, icmpv6, ...) or number";
    fn parse_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(p) = Proto::from_name(&lower) {
            return Ok(p);
        }
        if let Ok(n) = lower.parse::<u8>() {
            return Ok(Proto(n));
        }
        if lower == "all" {
            return Err(
                "`all` is not a protocol: remove the `proto` key to match every protocol".into(),
            );
        }
        let names: Vec<&str> = PROTO_NAMES.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown protocol `{s}`{}; known names: {}, or a number 0-255",
            did_you_mean(&lower, &names),
            names.join(", ")
        ))
    }
    fn parse_int(n: i64) -> Result<Self, String> {
        u8::try_from(n)
            .map(Proto)
            .map_err(|_| format!("invalid protocol number {n}: use 0 to 255"))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Connection-tracking state

/// Netfilter's packet states, as `-m state --state` / `-m conntrack --ctstate` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CtState {
    New = 0,
    Established = 1,
    Related = 2,
    Invalid = 3,
    Untracked = 4,
}

impl CtState {
    pub const ALL: [CtState; 5] = [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }
}

impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Scalar for CtState {
    const EXPECTING: &'static str = "a state: new, established, related, invalid or untracked";
    fn parse_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(st) = CtState::ALL.iter().find(|st| st.name() == lower) {
            return Ok(*st);
        }
        let names: Vec<&str> = CtState::ALL.iter().map(|s| s.name()).collect();
        Err(format!(
            "unknown state `{s}`{}; states are {}",
            did_you_mean(&lower, &names),
            names.join(", ")
        ))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.name().into())
    }
}

/// Direction of a packet relative to its connection's first packet (`--ctdir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtDir {
    Original,
    Reply,
}

// ---------------------------------------------------------------------------------------
// ICMP

/// An ICMP or ICMPv6 type with optional code: `8`, `3/4`, `echo-request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpType {
    pub ty: u8,
    pub code: Option<u8>,
}

impl IcmpType {
    pub fn matches(&self, ty: u8, code: u8) -> bool {
        self.ty == ty && self.code.is_none_or(|c| c == code)
    }
}

/// iptables' ICMP type names (`iptables -p icmp -h`).
pub const ICMP_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// ip6tables' ICMPv6 type names (`ip6tables -p icmpv6 -h`).
pub const ICMPV6_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("mld-listener-query", 130, None),
    ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("redirect", 137, None),
];

fn parse_icmp(s: &str, table: &[(&str, u8, Option<u8>)], family: &str) -> Result<IcmpType, String> {
    if let Some((_, ty, code)) = table.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(IcmpType {
            ty: *ty,
            code: *code,
        });
    }
    let num = |x: &str| {
        x.trim().parse::<u8>().map_err(|_| {
            let names: Vec<&str> = table.iter().map(|(n, _, _)| *n).collect();
            format!(
                "unknown {family} type `{s}`{}; write a name ({}) or TYPE[/CODE] with numbers 0-255",
                did_you_mean(s, &names),
                names.join(", ")
            )
        })
    };
    match s.split_once('/') {
        Some((t, c)) => Ok(IcmpType {
            ty: num(t)?,
            code: Some(num(c)?),
        }),
        None => Ok(IcmpType {
            ty: num(s)?,
            code: None,
        }),
    }
}

fn icmp_yaml(t: IcmpType, table: &[(&str, u8, Option<u8>)]) -> serde_yaml::Value {
    if let Some((name, _, _)) = table
        .iter()
        .find(|(_, ty, code)| *ty == t.ty && *code == t.code)
    {
        return serde_yaml::Value::String((*name).into());
    }
    match t.code {
        Some(c) => serde_yaml::Value::String(format!("{}/{c}", t.ty)),
        None => serde_yaml::Value::Number(t.ty.into()),
    }
}

/// An ICMP (IPv4) type match value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmp4Type(pub IcmpType);

impl Scalar for Icmp4Type {
    const EXPECTING: &'static str = "an ICMP type like echo-request, 8 or 3/4";
    fn parse_str(s: &str) -> Result<Self, String> {
        parse_icmp(s, ICMP_NAMES, "ICMP").map(Icmp4Type)
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        icmp_yaml(self.0, ICMP_NAMES)
    }
}

/// An ICMPv6 type match value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmp6Type(pub IcmpType);

impl Scalar for Icmp6Type {
    const EXPECTING: &'static str = "an ICMPv6 type like echo-request, 128 or 1/4";
    fn parse_str(s: &str) -> Result<Self, String> {
        parse_icmp(s, ICMPV6_NAMES, "ICMPv6").map(Icmp6Type)
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        icmp_yaml(self.0, ICMPV6_NAMES)
    }
}

// ---------------------------------------------------------------------------------------
// TCP flags

/// TCP flag bits in header order (the low byte of the flags field).
pub const TCP_FLAG_NAMES: &[(&str, u8)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

/// One TCP flag name, or `all` / `none` as in `--tcp-flags ALL NONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlag(pub u8);

impl Scalar for TcpFlag {
    const EXPECTING: &'static str =
        "a TCP flag: fin, syn, rst, psh, ack, urg, ece, cwr, all or none";
    fn parse_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "all" => return Ok(TcpFlag(0x3f)),
            "none" => return Ok(TcpFlag(0)),
            _ => {}
        }
        if let Some((_, bit)) = TCP_FLAG_NAMES.iter().find(|(n, _)| *n == lower) {
            return Ok(TcpFlag(*bit));
        }
        let mut names: Vec<&str> = TCP_FLAG_NAMES.iter().map(|(n, _)| *n).collect();
        names.extend(["all", "none"]);
        Err(format!(
            "unknown TCP flag `{s}`{}; flags are {}",
            did_you_mean(&lower, &names),
            names.join(", ")
        ))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        let name = TCP_FLAG_NAMES
            .iter()
            .find(|(_, b)| *b == self.0)
            .map_or(if self.0 == 0 { "none" } else { "all" }, |(n, _)| n);
        serde_yaml::Value::String(name.into())
    }
}

/// Fold flag names into a bit set.
pub fn flag_bits(flags: &[TcpFlag]) -> u8 {
    flags.iter().fold(0, |acc, f| acc | f.0)
}

/// Split a bit set into flag names (for output).
pub fn flags_from_bits(bits: u8) -> Vec<TcpFlag> {
    if bits == 0 {
        return vec![TcpFlag(0)];
    }
    if bits == 0x3f {
        return vec![TcpFlag(0x3f)];
    }
    TCP_FLAG_NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(_, b)| TcpFlag(*b))
        .collect()
}

/// `--tcp-flags MASK COMP`: the flags in `mask` are examined and must equal `comp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpFlagsMatch {
    pub mask: Match<TcpFlag>,
    pub comp: Match<TcpFlag>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not: bool,
}

impl TcpFlagsMatch {
    /// `(mask, comp)` as bit sets.
    pub fn bits(&self) -> (u8, u8) {
        (flag_bits(&self.mask.values), flag_bits(&self.comp.values))
    }
}

/// A port name as declared under `ports:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortName(pub String);

impl Scalar for PortName {
    const EXPECTING: &'static str = "a port name declared under `ports:` (e.g. lan)";
    fn parse_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty port name: write a name declared under `ports:`".into());
        }
        Ok(PortName(s.to_string()))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_masks_host_bits_and_maps_v4() {
        let c = Cidr::parse_str("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let (lo, hi) = c.range_u128();
        assert_eq!(hi - lo, (1 << 24) - 1);
        let all6 = Cidr::parse_str("::/0").unwrap();
        assert_eq!(all6.range_u128(), (0, u128::MAX));
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert!(Cidr::parse_str("10.0.0.300/8")
            .unwrap_err()
            .contains("invalid address `10.0.0.300`"));
        assert!(Cidr::parse_str("10.0.0.0/33")
            .unwrap_err()
            .contains("prefix length /33"));
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            PortRange::parse_str("1024:65535").unwrap(),
            PortRange {
                lo: 1024,
                hi: 65535
            }
        );
        assert_eq!(
            PortRange::parse_str(":1023").unwrap(),
            PortRange { lo: 0, hi: 1023 }
        );
        assert!(PortRange::parse_str("90-80")
            .unwrap_err()
            .contains("write 80-90"));
        assert!(PortRange::parse_int(70000).is_err());
    }

    #[test]
    fn misspelled_names_suggest() {
        assert!(CtState::parse_str("establised")
            .unwrap_err()
            .contains("did you mean `established`?"));
        assert!(Proto::parse_str("tpc")
            .unwrap_err()
            .contains("did you mean `tcp`?"));
        assert_eq!(Proto::parse_str("ipv6-icmp").unwrap(), Proto::ICMPV6);
    }

    #[test]
    fn icmp_types() {
        let t = Icmp4Type::parse_str("port-unreachable").unwrap().0;
        assert_eq!((t.ty, t.code), (3, Some(3)));
        assert!(t.matches(3, 3) && !t.matches(3, 1));
        let t = Icmp6Type::parse_str("128").unwrap().0;
        assert!(t.matches(128, 5));
    }
}
