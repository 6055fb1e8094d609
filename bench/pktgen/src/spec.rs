//! The generator's knobs as an operator writes them: counts and rates with SI suffixes,
//! packet sizes, address and port ranges, MACs, and `IF@NETNS` devices. Pure parsing, so the
//! error messages are tested here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A number with an optional SI suffix: `64`, `10k`, `1.5M`, `2G`.
pub fn si(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, 1.0),
        Some((i, _)) => {
            let m = match &t[i..] {
                "k" | "K" => 1e3,
                "m" | "M" => 1e6,
                "g" | "G" => 1e9,
                other => return Err(format!("`{s}`: unknown suffix `{other}` (k, M or G)")),
            };
            (&t[..i], m)
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a number (e.g. 1000, 10k, 1.5M)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}` must be a non-negative number"));
    }
    Ok(v * mult)
}

/// A whole count with an optional SI suffix (`count 10M`).
pub fn count(s: &str) -> Result<u64, String> {
    let v = si(s)?;
    if v.fract() != 0.0 || v > u64::MAX as f64 {
        return Err(format!("`{s}` is not a whole number"));
    }
    Ok(v as u64)
}

/// `rate`: packets per second (`1M`, `500kpps`), bits per second (`1Gbit`, `100Mbps`),
/// or `0` for as fast as possible (the kernel pktgen's `rate`/`ratep`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    Pps(f64),
    BitsPerSec(f64),
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let (num, bits) = if let Some(n) = lower.strip_suffix("pps") {
            (n.to_string(), false)
        } else if let Some(n) = lower.strip_suffix("bit").or(lower.strip_suffix("bps")) {
            (n.to_string(), true)
        } else {
            (lower.clone(), false)
        };
        let v = si(&num).map_err(|e| {
            format!("rate {e}; write packets/s (1M, 500kpps), bits/s (1Gbit), or 0 for line rate")
        })?;
        Ok(if v == 0.0 {
            Rate::Max
        } else if bits {
            Rate::BitsPerSec(v)
        } else {
            Rate::Pps(v)
        })
    }
}

impl Rate {
    /// Packets per second for frames of `avg_len` bytes (FCS excluded, as `pkt_size`);
    /// bit rates count the frame with its 4-byte FCS. `None`: unlimited.
    pub fn pps(self, avg_len: f64) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::Pps(p) => Some(p),
            Rate::BitsPerSec(b) => Some(b / ((avg_len + 4.0) * 8.0)),
        }
    }
}

/// `pkt_size`: frame length handed to the port, FCS excluded (the kernel pktgen's meaning:
/// 60 is a minimum 64-byte Ethernet frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PktSize {
    Fixed(u16),
    /// Uniform over `lo..=hi`, cycling deterministically.
    Range(u16, u16),
    /// Simple IMIX 7:4:1 of 64, 594 and 1518-byte frames (60, 590, 1514 without FCS).
    Imix,
}

pub const MIN_FRAME: u16 = 60;
pub const MAX_FRAME: u16 = 1514;
const IMIX: [u16; 12] = [60, 590, 60, 60, 1514, 60, 590, 60, 60, 590, 60, 590];

impl FromStr for PktSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("imix") {
            return Ok(PktSize::Imix);
        }
        let one = |x: &str| -> Result<u16, String> {
            let v: u16 = x.trim().parse().map_err(|_| {
                format!("pkt_size `{s}`: write a size (60), a range (60-1514) or imix")
            })?;
            if !(MIN_FRAME..=MAX_FRAME).contains(&v) {
                return Err(format!(
                    "pkt_size {v}: frames are {MIN_FRAME} to {MAX_FRAME} bytes (FCS excluded)"
                ));
            }
            Ok(v)
        };
        match t.split_once('-') {
            None => Ok(PktSize::Fixed(one(t)?)),
            Some((a, b)) => {
                let (lo, hi) = (one(a)?, one(b)?);
                if lo > hi {
                    return Err(format!("pkt_size `{s}`: the range is reversed"));
                }
                Ok(PktSize::Range(lo, hi))
            }
        }
    }
}

impl PktSize {
    /// The size of the `n`th packet.
    pub fn nth(self, n: u64) -> u16 {
        match self {
            PktSize::Fixed(v) => v,
            PktSize::Range(lo, hi) => {
                // A stride coprime to most span lengths spreads sizes over the range.
                let span = u64::from(hi - lo) + 1;
                lo + (n.wrapping_mul(7919) % span) as u16
            }
            PktSize::Imix => IMIX[(n % IMIX.len() as u64) as usize],
        }
    }

    pub fn min(self) -> u16 {
        match self {
            PktSize::Fixed(v) | PktSize::Range(v, _) => v,
            PktSize::Imix => 60,
        }
    }

    pub fn average(self) -> f64 {
        match self {
            PktSize::Fixed(v) => f64::from(v),
            PktSize::Range(lo, hi) => f64::midpoint(f64::from(lo), f64::from(hi)),
            PktSize::Imix => IMIX.iter().map(|&v| f64::from(v)).sum::<f64>() / IMIX.len() as f64,
        }
    }
}

impl fmt::Display for PktSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PktSize::Fixed(v) => write!(f, "{v}"),
            PktSize::Range(lo, hi) => write!(f, "{lo}-{hi}"),
            PktSize::Imix => f.write_str("imix"),
        }
    }
}

/// An address range: `10.0.0.1`, `10.0.0.1-10.0.0.200`, `10.1.0.0/16`, or the same in IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub first: IpAddr,
    /// Addresses in the range (≥ 1).
    pub len: u128,
}

fn ip_int(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let addr = |x: &str| -> Result<IpAddr, String> {
            x.trim()
                .parse()
                .map_err(|_| format!("`{x}` in `{s}` is not an IPv4 or IPv6 address"))
        };
        if let Some((a, bits)) = t.split_once('/') {
            let first = addr(a)?;
            let width = if first.is_ipv4() { 32 } else { 128 };
            let bits: u32 = bits
                .parse()
                .ok()
                .filter(|&b| b <= width)
                .ok_or_else(|| format!("`{s}`: prefix length 0 to {width}"))?;
            let host_bits = width - bits;
            if host_bits > 64 {
                return Err(format!("`{s}`: at most 2^64 addresses"));
            }
            let len = 1u128 << host_bits;
            let base = ip_int(first) & !(len - 1);
            return Ok(IpRange {
                first: from_int(first, base),
                len,
            });
        }
        match t.split_once('-') {
            None => Ok(IpRange {
                first: addr(t)?,
                len: 1,
            }),
            Some((a, b)) => {
                let (lo, hi) = (addr(a)?, addr(b)?);
                if lo.is_ipv4() != hi.is_ipv4() {
                    return Err(format!("`{s}`: both ends must be IPv4 or both IPv6"));
                }
                if ip_int(lo) > ip_int(hi) {
                    return Err(format!("`{s}`: the range is reversed"));
                }
                Ok(IpRange {
                    first: lo,
                    len: ip_int(hi) - ip_int(lo) + 1,
                })
            }
        }
    }
}

fn from_int(like: IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

impl IpRange {
    pub fn nth(&self, i: u128) -> IpAddr {
        from_int(self.first, ip_int(self.first) + i % self.len)
    }

    /// The index of `a` in the range.
    pub fn index(&self, a: IpAddr) -> Option<u128> {
        if a.is_ipv4() != self.first.is_ipv4() {
            return None;
        }
        let d = ip_int(a).checked_sub(ip_int(self.first))?;
        (d < self.len).then_some(d)
    }

    pub fn is_ipv4(&self) -> bool {
        self.first.is_ipv4()
    }
}

/// A port range: `9`, `1024-65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub len: u32,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let p = |x: &str| -> Result<u16, String> {
            x.trim()
                .parse()
                .map_err(|_| format!("`{s}`: ports are 0 to 65535 (e.g. 9 or 1024-65535)"))
        };
        let (lo, hi) = match s.split_once('-') {
            None => (p(s)?, p(s)?),
            Some((a, b)) => (p(a)?, p(b)?),
        };
        if lo > hi {
            return Err(format!("`{s}`: the range is reversed"));
        }
        Ok(PortRange {
            first: lo,
            len: u32::from(hi - lo) + 1,
        })
    }
}

impl PortRange {
    pub fn nth(self, i: u128) -> u16 {
        self.first + (i % u128::from(self.len)) as u16
    }

    pub fn index(self, p: u16) -> Option<u128> {
        let d = p.checked_sub(self.first)?;
        (u32::from(d) < self.len).then_some(u128::from(d))
    }
}

/// A MAC address `02:00:00:00:00:01`.
pub fn mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("`{s}` is not a MAC address (02:00:00:00:00:01)"));
    }
    for (d, p) in m.iter_mut().zip(&parts) {
        *d = u8::from_str_radix(p, 16)
            .map_err(|_| format!("`{s}` is not a MAC address (02:00:00:00:00:01)"))?;
    }
    Ok(m)
}

/// A port of the machine: `eth0`, or `eth0@sw-client` for an interface in a network
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dev {
    pub interface: String,
    pub netns: Option<String>,
}

impl FromStr for Dev {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, ns) = match s.split_once('@') {
            None => (s, None),
            Some((i, ns)) => (i, Some(ns.to_string())),
        };
        if i.is_empty() || ns.as_deref() == Some("") {
            return Err(format!("`{s}`: write IF or IF@NETNS (e.g. eth0@sw-client)"));
        }
        Ok(Dev {
            interface: i.to_string(),
            netns: ns,
        })
    }
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.netns {
            None => f.write_str(&self.interface),
            Some(ns) => write!(f, "{}@{ns}", self.interface),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates() {
        assert_eq!(count("10M").unwrap(), 10_000_000);
        assert_eq!(count("1500").unwrap(), 1500);
        assert!(count("1.5").is_err());
        assert!(count("3x").unwrap_err().contains("unknown suffix"));
        assert_eq!("0".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("1M".parse::<Rate>().unwrap(), Rate::Pps(1e6));
        assert_eq!("500kpps".parse::<Rate>().unwrap(), Rate::Pps(5e5));
        assert_eq!("1Gbit".parse::<Rate>().unwrap(), Rate::BitsPerSec(1e9));
        assert_eq!("100Mbps".parse::<Rate>().unwrap(), Rate::BitsPerSec(1e8));
        // 64-byte frames (60 + FCS): 1 Gbit/s = 1.953125 Mpps.
        let p = Rate::BitsPerSec(1e9).pps(60.0).unwrap();
        assert!((p - 1_953_125.0).abs() < 1.0, "{p}");
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!("60".parse::<PktSize>().unwrap(), PktSize::Fixed(60));
        assert_eq!(
            "60-1514".parse::<PktSize>().unwrap(),
            PktSize::Range(60, 1514)
        );
        assert_eq!("IMIX".parse::<PktSize>().unwrap(), PktSize::Imix);
        assert!("59".parse::<PktSize>().unwrap_err().contains("60 to 1514"));
        assert!("100-60"
            .parse::<PktSize>()
            .unwrap_err()
            .contains("reversed"));
        let imix: Vec<u16> = (0..12).map(|n| PktSize::Imix.nth(n)).collect();
        assert_eq!(imix.iter().filter(|&&v| v == 60).count(), 7);
        assert_eq!(imix.iter().filter(|&&v| v == 590).count(), 4);
        assert_eq!(imix.iter().filter(|&&v| v == 1514).count(), 1);
        let r = PktSize::Range(60, 70);
        assert!((0..1000).all(|n| (60..=70).contains(&r.nth(n))));
        assert!((0..1000).any(|n| r.nth(n) == 70));
    }

    #[test]
    fn ranges() {
        let r: IpRange = "10.0.0.1-10.0.0.3".parse().unwrap();
        assert_eq!(r.len, 3);
        assert_eq!(r.nth(2).to_string(), "10.0.0.3");
        assert_eq!(r.nth(3).to_string(), "10.0.0.1");
        assert_eq!(r.index("10.0.0.2".parse().unwrap()), Some(1));
        assert_eq!(r.index("10.0.0.4".parse().unwrap()), None);
        let c: IpRange = "10.1.2.3/16".parse().unwrap();
        assert_eq!(
            (c.first.to_string(), c.len),
            ("10.1.0.0".to_string(), 65536)
        );
        let v6: IpRange = "fd00::1-fd00::ff".parse().unwrap();
        assert_eq!(v6.len, 255);
        assert_eq!(v6.nth(1).to_string(), "fd00::2");
        assert!("10.0.0.1-fd00::1".parse::<IpRange>().is_err());
        let p: PortRange = "1024-1027".parse().unwrap();
        assert_eq!((p.nth(5), p.index(1026)), (1025, Some(2)));
        assert!("70000".parse::<PortRange>().is_err());
        assert_eq!(mac("02:5e:00:00:00:03").unwrap(), [2, 0x5e, 0, 0, 0, 3]);
        assert!(mac("02:5e").is_err());
        let d: Dev = "eth0@sw-client".parse().unwrap();
        assert_eq!(d.netns.as_deref(), Some("sw-client"));
        assert_eq!(d.to_string(), "eth0@sw-client");
        assert!("@x".parse::<Dev>().is_err());
    }
}
