//! IP protocol numbers and their names: the one table that the config, the engine and the
//! tools share.
//!
//! [`number`] has the numbers as plain `u8` constants (usable in `match` patterns on a
//! packet's protocol byte), [`Proto`] the typed value a rule's `proto` match holds, with the
//! name statewall reads and writes ([`Proto::name`], [`PROTO_NAMES`]) and the name the
//! kernel's conntrack listing prints ([`Proto::conntrack_name`]). Reading a `proto:` value
//! from YAML is [`crate::matches`]' business (`impl Scalar for Proto`).

use std::fmt;

/// Protocol numbers (IANA, as in /etc/protocols).
pub mod number {
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const DCCP: u8 = 33;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header" (RFC 8200 4.7).
    pub const IPV6_NONXT: u8 = 59;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// An IP protocol number (`tcp`, `udp`, `icmp`, `icmpv6`, ... or 0-255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proto(pub u8);

impl Proto {
    pub const ICMP: Proto = Proto(number::ICMP);
    pub const TCP: Proto = Proto(number::TCP);
    pub const UDP: Proto = Proto(number::UDP);
    pub const DCCP: Proto = Proto(number::DCCP);
    pub const GRE: Proto = Proto(number::GRE);
    pub const ICMPV6: Proto = Proto(number::ICMPV6);
    pub const SCTP: Proto = Proto(number::SCTP);
    pub const UDPLITE: Proto = Proto(number::UDPLITE);

    /// Whether packets of this protocol carry source and destination ports.
    pub const fn has_ports(self) -> bool {
        matches!(
            self.0,
            number::TCP | number::UDP | number::SCTP | number::UDPLITE | number::DCCP
        )
    }

    /// The name statewall writes for the protocol (the first of [`PROTO_NAMES`] with this
    /// number: /etc/protocols' name in lower case, except `icmpv6` for 58, which
    /// /etc/protocols calls `ipv6-icmp`), or `None` for a number without a name here.
    pub fn name(self) -> Option<&'static str> {
        PROTO_NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(name, _)| *name)
    }

    /// The protocol a name in [`PROTO_NAMES`] stands for, in any case (`TCP`, `ipv6-icmp`).
    /// Numbers are not names: `"6"` gives `None`.
    pub fn from_name(name: &str) -> Option<Proto> {
        PROTO_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| Proto(*p))
    }

    /// The name /proc/net/nf_conntrack prints for the protocol (the kernel's l4proto
    /// name): tcp, udp, icmp, icmpv6, udplite, sctp, dccp, gre; `unknown` for any other,
    /// which the kernel tracks with its generic protocol.
    pub const fn conntrack_name(self) -> &'static str {
        match self.0 {
            number::TCP => "tcp",
            number::UDP => "udp",
            number::ICMP => "icmp",
            number::ICMPV6 => "icmpv6",
            number::UDPLITE => "udplite",
            number::SCTP => "sctp",
            number::DCCP => "dccp",
            number::GRE => "gre",
            _ => "unknown",
        }
    }
}

/// Names accepted for protocols, as in /etc/protocols and iptables.
pub const PROTO_NAMES: &[(&str, u8)] = &[
    ("icmp", number::ICMP),
    ("igmp", number::IGMP),
    ("ipip", number::IPIP),
    ("tcp", number::TCP),
    ("udp", number::UDP),
    ("dccp", number::DCCP),
    ("ipv6", number::IPV6),
    ("gre", number::GRE),
    ("esp", number::ESP),
    ("ah", number::AH),
    ("icmpv6", number::ICMPV6),
    ("ipv6-icmp", number::ICMPV6),
    ("sctp", number::SCTP),
    ("udplite", number::UDPLITE),
];

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_conntrack_names() {
        assert_eq!(Proto::ICMPV6.name(), Some("icmpv6"));
        assert_eq!(Proto::from_name("IPv6-ICMP"), Some(Proto::ICMPV6));
        assert_eq!(Proto::from_name("6"), None);
        assert_eq!(Proto(99).name(), None);
        assert_eq!(Proto(99).to_string(), "99");
        assert_eq!(Proto::GRE.conntrack_name(), "gre");
        assert_eq!(Proto(number::ESP).conntrack_name(), "unknown");
        assert!(Proto::DCCP.has_ports() && !Proto::GRE.has_ports());
        // Every named protocol reads back as itself.
        for (name, n) in PROTO_NAMES {
            assert_eq!(Proto::from_name(name), Some(Proto(*n)));
        }
    }
}
