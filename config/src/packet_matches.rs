//! Matches on fields of each packet rather than of its flow: the IP length (`-m length`),
//! the IPv4 TTL (`-m ttl`), the IPv6 hop limit (`-m hl`), the source MAC address (`-m mac`),
//! the link-layer packet type (`-m pkttype`), the IPv6 routing header's type (`-m rt`) and
//! the TCP MSS option (`-m tcpmss`). Two packets of one flow may differ in
//! them, so a rule with one is decided packet by packet (never from the verdict cache).

use std::fmt;

use crate::matches::Scalar;

/// An inclusive range of numbers up to `MAX`: `1500`, `0-100`, iptables' `0:100`, open
/// ends (`:100`, `1000:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range<const MAX: u16> {
    pub lo: u16,
    pub hi: u16,
}

/// An IP packet length (`length`): the IPv4 total length, the IPv6 payload length plus its
/// 40-byte header.
pub type LengthRange = Range<65535>;
/// A TTL or hop limit (`ttl`, `hop_limit`).
pub type TtlRange = Range<255>;

impl<const MAX: u16> Range<MAX> {
    pub fn contains(&self, v: u16) -> bool {
        self.lo <= v && v <= self.hi
    }
}

impl<const MAX: u16> fmt::Display for Range<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl<const MAX: u16> Range<MAX> {
    fn number(s: &str, whole: &str) -> Result<u16, String> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n <= MAX)
            .ok_or_else(|| format!("invalid value `{s}` in `{whole}`: a number from 0 to {MAX}"))
    }
}

impl<const MAX: u16> Scalar for Range<MAX> {
    const EXPECTING: &'static str = "a number like 64 or an inclusive range like 0-100";
    fn parse_str(s: &str) -> Result<Self, String> {
        let (lo, hi) = match s.find(['-', ':']) {
            Some(i) => {
                let (a, b) = (&s[..i], &s[i + 1..]);
                let lo = if a.trim().is_empty() {
                    0
                } else {
                    Self::number(a, s)?
                };
                let hi = if b.trim().is_empty() {
                    MAX
                } else {
                    Self::number(b, s)?
                };
                (lo, hi)
            }
            None => {
                let n = Self::number(s, s)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!(
                "range `{s}` is reversed: the first number must not exceed the second, write {hi}-{lo}"
            ));
        }
        Ok(Range { lo, hi })
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        if self.lo == self.hi {
            serde_yaml::Value::Number(self.lo.into())
        } else {
            serde_yaml::Value::String(self.to_string())
        }
    }
}

/// A MAC address, `02:00:00:00:00:01` (`-` also separates; any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Scalar for MacAddr {
    const EXPECTING: &'static str = "a MAC address like 02:00:00:00:00:01";
    fn parse_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid MAC address `{s}`: write six hex bytes like 02:00:00:00:00:01");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(out))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.to_string())
    }
}

/// The link-layer packet type (`-m pkttype --pkt-type`), from the destination MAC: the
/// broadcast address, a group (multicast) address, or any other (unicast). A packet a
/// bridge forwards is unicast when it is to one host, as the kernel's bridge netfilter
/// shows it to FORWARD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PktType {
    Unicast,
    Broadcast,
    Multicast,
}

impl PktType {
    pub const NAMES: [&'static str; 3] = ["unicast", "broadcast", "multicast"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The type of a frame to `dst`.
    pub fn of(dst: [u8; 6]) -> PktType {
        if dst == [0xff; 6] {
            PktType::Broadcast
        } else if dst[0] & 1 != 0 {
            PktType::Multicast
        } else {
            PktType::Unicast
        }
    }
}

impl Scalar for PktType {
    const EXPECTING: &'static str = "unicast, broadcast or multicast";
    fn parse_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "unicast" | "host" => Ok(PktType::Unicast),
            "broadcast" => Ok(PktType::Broadcast),
            "multicast" => Ok(PktType::Multicast),
            _ => Err(format!(
                "unknown packet type `{s}`: use unicast, broadcast or multicast"
            )),
        }
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.name().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_iptables_writes_them() {
        assert_eq!(
            LengthRange::parse_str("0:100"),
            Ok(Range { lo: 0, hi: 100 })
        );
        assert_eq!(
            LengthRange::parse_str("1000:"),
            Ok(Range {
                lo: 1000,
                hi: 65535
            })
        );
        assert_eq!(TtlRange::parse_str("64"), Ok(Range { lo: 64, hi: 64 }));
        assert!(TtlRange::parse_str("256").unwrap_err().contains("0 to 255"));
        assert!(TtlRange::parse_str("9-3").unwrap_err().contains("reversed"));
    }

    #[test]
    fn macs_and_packet_types() {
        let m = MacAddr::parse_str("02:00:0A:00:00:ff").unwrap();
        assert_eq!(m.to_string(), "02:00:0a:00:00:ff");
        assert!(MacAddr::parse_str("02:00:00:00:00").is_err());
        assert!(MacAddr::parse_str("02:00:00:00:00:100").is_err());
        assert_eq!(PktType::of([0xff; 6]), PktType::Broadcast);
        assert_eq!(PktType::of([0x01, 0, 0x5e, 0, 0, 1]), PktType::Multicast);
        assert_eq!(PktType::of([0x02, 0, 0, 0, 0, 1]), PktType::Unicast);
        assert_eq!(PktType::parse_str("Broadcast"), Ok(PktType::Broadcast));
    }
}
