//! Address sets, as ipset's `hash:ip` and `hash:net` (the top-level `sets:` map), and a
//! rule's `match_set`, iptables' `-m set --match-set NAME src|dst`.
//!
//! ```yaml
//! sets:
//!   blocklist:
//!     type: hash:net
//!     family: ipv4
//!     members: [192.0.2.0/24, 198.51.100.7, 192.0.2.128/25 nomatch]
//! forward:
//!   rules:
//!     - {family: ipv4, match_set: {name: blocklist, dir: src}, action: drop}
//! ```
//!
//! A `hash:net` member marked `nomatch` is an exception: an address whose most specific
//! listed network is a `nomatch` one is not in the set, as ipset answers. A `hash:ip`
//! member may be a network of at most 65536 addresses, each of which is added.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::matches::{Cidr, Scalar};
use crate::ruleset::Family;

/// ipset's longest set name (`IPSET_MAXNAMELEN` less its NUL).
pub const NAME_MAX: usize = 31;
/// Most addresses one `hash:ip` member may stand for.
pub const EXPAND_MAX: u128 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpSet {
    #[serde(rename = "type")]
    pub kind: SetType,
    /// ipset's `family inet` (the default) or `inet6`.
    #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
    pub family: Family,
    #[serde(default)]
    pub members: Vec<Member>,
}

fn ipv4() -> Family {
    Family::Ipv4
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_ipv4(f: &Family) -> bool {
    *f == Family::Ipv4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SetType {
    #[serde(rename = "hash:ip")]
    HashIp,
    #[serde(rename = "hash:net")]
    HashNet,
}

impl SetType {
    pub fn name(self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashNet => "hash:net",
        }
    }
}

/// One member: an address or network, `nomatch` after it for an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    pub net: Cidr,
    pub nomatch: bool,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if self.nomatch {
            f.write_str(" nomatch")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Member {
    type Err = String;
    fn from_str(s: &str) -> Result<Member, String> {
        let mut words = s.split_whitespace();
        let net = words
            .next()
            .ok_or_else(|| "an empty member: write an address or a network".to_string())?;
        let nomatch = match words.next() {
            None => false,
            Some("nomatch") => true,
            Some(w) => {
                return Err(format!(
                    "`{w}` after `{net}`: only `nomatch` may follow a member"
                ))
            }
        };
        if let Some(w) = words.next() {
            return Err(format!("`{w}` after `{net} nomatch`: one member per entry"));
        }
        let net = Cidr::parse_str(net)?;
        if net.end.is_some() {
            return Err(format!("`{net}`: a range is no member; write networks"));
        }
        Ok(Member { net, nomatch })
    }
}

impl Serialize for Member {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Which of the packet's addresses is looked up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetDir {
    #[default]
    Src,
    Dst,
}

/// A rule's `match_set: {name: SET, dir: src|dst, not: false}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSet {
    pub name: String,
    #[serde(default)]
    pub dir: SetDir,
    /// iptables' `!`: the address is not in the set.
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub not: bool,
}

impl IpSet {
    /// What is wrong with a set, as (path below the set, message, hint).
    pub fn problems(&self, name: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        if name.is_empty()
            || name.len() > NAME_MAX
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            out.push((
                String::new(),
                format!("`{name}` is not a set name"),
                format!("1 to {NAME_MAX} characters, no spaces (ipset's limit)"),
            ));
        }
        for (i, m) in self.members.iter().enumerate() {
            let v4 = m.net.is_v4();
            if v4 != (self.family == Family::Ipv4) {
                out.push((
                    format!("members.{i}"),
                    format!("`{}` is not an address of the set's family", m.net),
                    "an ipv4 set holds IPv4 addresses; give `family: ipv6` to a set of IPv6 ones"
                        .into(),
                ));
            }
            if m.nomatch && self.kind == SetType::HashIp {
                out.push((
                    format!("members.{i}"),
                    format!("`{m}`: `nomatch` belongs to hash:net sets"),
                    "remove `nomatch`, or make the set `type: hash:net`".into(),
                ));
            }
            let bits = if v4 { 32 } else { 128 };
            if self.kind == SetType::HashIp
                && 1u128
                    .checked_shl(u32::from(bits - m.net.prefix))
                    .is_none_or(|n| n > EXPAND_MAX)
            {
                out.push((
                    format!("members.{i}"),
                    format!("`{}` stands for more than {EXPAND_MAX} addresses", m.net),
                    "a hash:ip set lists addresses; use `type: hash:net` for networks".into(),
                ));
            }
        }
        out
    }
}

/// The sets a ruleset declares, by name.
pub type Sets = BTreeMap<String, IpSet>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_and_write_back() {
        let m: Member = "10.1.0.0/16 nomatch".parse().unwrap();
        assert!(m.nomatch);
        assert_eq!(m.to_string(), "10.1.0.0/16 nomatch");
        assert!("10.0.0.1-10.0.0.9"
            .parse::<Member>()
            .unwrap_err()
            .contains("range"));
        assert!("10.0.0.1 timeout"
            .parse::<Member>()
            .unwrap_err()
            .contains("nomatch"));
        let s: IpSet = serde_yaml::from_str("{type: 'hash:ip', members: [10.0.0.0/8]}").unwrap();
        assert_eq!(s.problems("x").len(), 1);
        let s: IpSet =
            serde_yaml::from_str("{type: 'hash:net', family: ipv6, members: ['10.0.0.0/8']}")
                .unwrap();
        assert!(s.problems("x")[0].1.contains("family"));
    }
}
