//! A rule's rate limit, iptables' `-m limit --limit RATE --limit-burst N`: the rule matches
//! at most `burst` packets at once and then one per `1/rate`, as a token bucket of `burst`
//! tokens, full at the start, refilled at `rate`. A packet over the limit does not match the
//! rule and goes on to the next one, as in the kernel.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The fastest rate iptables accepts (`XT_LIMIT_SCALE`: "Rate too fast").
pub const MAX_PER_SECOND: u64 = 10_000;
/// iptables' default `--limit-burst`.
pub const DEFAULT_BURST: u32 = 5;
/// The largest `--limit-burst` iptables accepts.
pub const MAX_BURST: u32 = 10_000;

/// `COUNT/UNIT`, the unit one of second, minute, hour, day (iptables also takes `s`, `sec`,
/// `m`, `min`, `h`, `d` and plurals; written back in full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub count: u32,
    /// The unit in seconds: 1, 60, 3600 or 86400.
    pub per_secs: u32,
}

impl Rate {
    /// Nanoseconds between two packets at this rate.
    pub fn interval_ns(self) -> u64 {
        u64::from(self.per_secs) * 1_000_000_000 / u64::from(self.count.max(1))
    }

    fn unit(self) -> &'static str {
        match self.per_secs {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.unit())
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("invalid rate `{s}`: write COUNT/UNIT, e.g. 100/second, 3/minute");
        let (n, unit) = s.split_once('/').unwrap_or((s, "second"));
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per_secs = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!("rate `{s}` is zero: the rule would never match"));
        }
        if u64::from(count) > MAX_PER_SECOND * u64::from(per_secs) {
            return Err(format!(
                "rate `{s}` is too fast: at most {MAX_PER_SECOND}/second, as iptables"
            ));
        }
        Ok(Rate { count, per_secs })
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        rate(&String::deserialize(d)?)
    }
}

/// `limit: 100/second` or `limit: {rate: 100/second, burst: 10}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub rate: Rate,
    /// Packets matched at once before the rate applies (the bucket's size).
    pub burst: u32,
}

impl Limit {
    pub fn new(rate: Rate) -> Limit {
        Limit {
            rate,
            burst: DEFAULT_BURST,
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.burst == DEFAULT_BURST {
            return s.serialize_str(&self.rate.to_string());
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("rate", &self.rate.to_string())?;
        m.serialize_entry("burst", &self.burst)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LimitVisitor)
    }
}

struct LimitVisitor;

fn rate<E: de::Error>(s: &str) -> Result<Rate, E> {
    s.parse().map_err(E::custom)
}

impl<'de> Visitor<'de> for LimitVisitor {
    type Value = Limit;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rate like 100/second, or {rate: 100/second, burst: 10}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
        Ok(Limit::new(rate(v)?))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Limit, A::Error> {
        let (mut r, mut burst) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "rate" => r = Some(rate(&map.next_value::<String>()?)?),
                "burst" => {
                    let b: u32 = map.next_value()?;
                    if b == 0 || b > MAX_BURST {
                        return Err(de::Error::custom(format!(
                            "burst {b} is out of range: 1 to {MAX_BURST}"
                        )));
                    }
                    burst = Some(b);
                }
                other => return Err(de::Error::unknown_field(other, &["rate", "burst"])),
            }
        }
        let rate = r.ok_or_else(|| de::Error::missing_field("rate"))?;
        Ok(Limit {
            rate,
            burst: burst.unwrap_or(DEFAULT_BURST),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_iptables_writes_them() {
        let r: Rate = "100/sec".parse().unwrap();
        assert_eq!(
            (r.count, r.per_secs, r.to_string()),
            (100, 1, "100/second".into())
        );
        assert_eq!(r.interval_ns(), 10_000_000);
        let r: Rate = "3/hour".parse().unwrap();
        assert_eq!(r.interval_ns(), 1_200_000_000_000);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("10001/s".parse::<Rate>().unwrap_err().contains("too fast"));
        assert!("5/fortnight".parse::<Rate>().is_err());
        let l: Limit = serde_yaml::from_str("{rate: 2/minute, burst: 1}").unwrap();
        assert_eq!(
            serde_yaml::to_string(&l).unwrap(),
            "rate: 2/minute\nburst: 1\n"
        );
        let l: Limit = serde_yaml::from_str("10/s").unwrap();
        assert_eq!(l.burst, DEFAULT_BURST);
        assert_eq!(serde_yaml::to_string(&l).unwrap(), "10/second\n");
    }
}
