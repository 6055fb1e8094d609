//! Packet and connection marks: iptables' `-m mark`/`-m connmark` matches and `-j MARK`/
//! `-j CONNMARK` targets, nftables' `meta mark` and `ct mark`.
//!
//! A packet's mark (`skb->mark`) starts at 0 on the wire and lives through one packet's
//! stages (raw, mangle, forward); the connection's mark (`ct->mark`) lives in its conntrack
//! entry, starts at 0 (a RELATED connection's at its master's) and is what `connmark` tests.
//! Every operation is the kernel's: a match is `mark & mask == value`; setting is
//! `(mark & !mask) ^ value` (`--set-xmark`); `save_mark` is `ct = (ct & !ctmask) ^ (packet &
//! nfmask)`, `restore_mark` is `packet = (packet & !nfmask) ^ (ct & ctmask)`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::matches::Scalar;

/// A mark and a mask: `0x10/0xff`, `16`, `0x1` (hex with `0x`, else decimal; the mask
/// defaults to `0xffffffff`). As a match: the mark's bits under `mask` equal `value`. As a
/// `mark`/`connmark` action: the bits of `mask` are zeroed, then `value` is XORed in
/// (iptables' `--set-xmark`; its `--set-mark V/M` is `V/(M|V)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkValue {
    pub value: u32,
    pub mask: u32,
}

impl MarkValue {
    /// `value` with every bit of the mask tested or set.
    pub const fn exact(value: u32) -> MarkValue {
        MarkValue {
            value,
            mask: u32::MAX,
        }
    }

    /// Whether `mark` matches (`mark & mask == value`).
    #[inline]
    pub fn matches(&self, mark: u32) -> bool {
        mark & self.mask == self.value
    }

    /// `mark` after this value is set (`--set-xmark`).
    #[inline]
    pub fn apply(&self, mark: u32) -> u32 {
        (mark & !self.mask) ^ self.value
    }
}

/// Parse a 32-bit number as iptables writes marks: `0x` hex, else decimal (`0` octal is
/// read as decimal, as nothing generates it).
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 8 => u32::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

impl fmt::Display for MarkValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.mask == u32::MAX {
            write!(f, "{:#x}", self.value)
        } else {
            write!(f, "{:#x}/{:#x}", self.value, self.mask)
        }
    }
}

impl Scalar for MarkValue {
    const EXPECTING: &'static str = "a mark like 0x10, or a mark and mask like 0x10/0xff";
    fn parse_str(s: &str) -> Result<Self, String> {
        let bad = |part: &str| {
            format!(
                "invalid mark `{s}`: `{part}` is not a 32-bit number; write a value and an optional mask like 0x10/0xff"
            )
        };
        let (v, m) = match s.split_once('/') {
            Some((v, m)) => (v, Some(m)),
            None => (s, None),
        };
        let value = parse_u32(v).ok_or_else(|| bad(v))?;
        let mask = match m {
            Some(m) => parse_u32(m).ok_or_else(|| bad(m))?,
            None => u32::MAX,
        };
        Ok(MarkValue { value, mask })
    }
    fn parse_int(n: i64) -> Result<Self, String> {
        u32::try_from(n)
            .map(MarkValue::exact)
            .map_err(|_| format!("invalid mark {n}: a mark is a number from 0 to 0xffffffff"))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        serde_yaml::Value::String(self.to_string())
    }
}

impl Serialize for MarkValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MarkValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::matches::One::<MarkValue>::deserialize(d).map(|o| o.0)
    }
}

fn all_ones() -> u32 {
    u32::MAX
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_all_ones(m: &u32) -> bool {
    *m == u32::MAX
}

/// The masks of `save_mark` and `restore_mark` (CONNMARK's `--nfmask` and `--ctmask`; both
/// default to every bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkCopy {
    #[serde(
        default = "all_ones",
        skip_serializing_if = "is_all_ones",
        with = "hex"
    )]
    pub nfmask: u32,
    #[serde(
        default = "all_ones",
        skip_serializing_if = "is_all_ones",
        with = "hex"
    )]
    pub ctmask: u32,
}

impl Default for MarkCopy {
    fn default() -> Self {
        MarkCopy {
            nfmask: u32::MAX,
            ctmask: u32::MAX,
        }
    }
}

impl MarkCopy {
    /// The connection mark after `save_mark` of the packet mark `packet`.
    #[inline]
    pub fn save(&self, ct: u32, packet: u32) -> u32 {
        (ct & !self.ctmask) ^ (packet & self.nfmask)
    }

    /// The packet mark after `restore_mark` from the connection mark `ct`.
    #[inline]
    pub fn restore(&self, packet: u32, ct: u32) -> u32 {
        (packet & !self.nfmask) ^ (ct & self.ctmask)
    }

    /// Whether both masks are every bit (the action is then written without them).
    pub fn is_default(&self) -> bool {
        *self == MarkCopy::default()
    }
}

impl fmt::Display for MarkCopy {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "nfmask {:#x} ctmask {:#x}", self.nfmask, self.ctmask)
    }
}

/// A mask written as `0xff` (or a plain number) in YAML.
mod hex {
    use serde::{de, Deserializer, Serializer};

    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's `with` passes a reference"
    )]
    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = u32;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a 32-bit mask like 0xff")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
                u32::try_from(v).map_err(|_| E::custom(format!("mask {v} is over 0xffffffff")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
                u32::try_from(v)
                    .map_err(|_| E::custom(format!("mask {v} is not from 0 to 0xffffffff")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
                super::parse_u32(v).ok_or_else(|| {
                    E::custom(format!(
                        "invalid mask `{v}`: write a 32-bit number like 0xff"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_operations() {
        let m = MarkValue::parse_str("0x10/0xf0").unwrap();
        assert!(m.matches(0x1ff1 & !0xe0));
        assert!(!m.matches(0x20));
        // --set-xmark 0x10/0xf0 on 0xabcd: zero the nibble, XOR 0x10.
        assert_eq!(m.apply(0xabcd), 0xab1d);
        assert_eq!(MarkValue::exact(7).apply(0xffff), 7);
        let c = MarkCopy {
            nfmask: 0xff,
            ctmask: 0xf0f,
        };
        assert_eq!(c.save(0xffff, 0x1234), (0xffff & !0xf0f) ^ 0x34);
        assert_eq!(c.restore(0xffff, 0x1234), (0xffff & !0xff) ^ 0x204);
        assert_eq!(m.to_string(), "0x10/0xf0");
        assert_eq!(MarkValue::parse_str("16").unwrap(), MarkValue::exact(16));
        let e = MarkValue::parse_str("0x1/zz").unwrap_err();
        assert!(e.contains("`zz` is not a 32-bit number"), "{e}");
        assert!(MarkValue::parse_str("0x123456789").is_err());
        assert!(MarkValue::parse_int(-1).is_err());
    }
}
