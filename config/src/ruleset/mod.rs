//! The ruleset document: ports, conntrack settings, helpers and the two rule stages.
//!
//! These types are both what serde_yaml reads (unknown keys are errors) and what
//! `import-iptables` writes. [`crate::validate`] checks what a type cannot (cross-field rules,
//! port names) and reports positions through [`crate::source_map`].
//!
//! Queries over a document live beside it, as methods: the ports with their defaults applied
//! (`ports.rs`: [`Ruleset::port_names`], [`Ruleset::port_pairs`],
//! [`Ruleset::port_interfaces`]) and the IP family a rule is restricted to (`family.rs`:
//! [`Rule::implied_family`], [`Rule::family_evidence`]).

use std::collections::BTreeMap;

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::hashlimit::HashLimit;
use crate::limit::Limit;
use crate::log::LogOptions;
use crate::mark::{MarkCopy, MarkValue};
use crate::matches::{
    Cidr, CtDir, CtState, Icmp4Type, Icmp6Type, Match, PortName, PortRange, TcpFlagsMatch,
};
use crate::packet_matches::{LengthRange, MacAddr, PktType, TtlRange};
use crate::proto::Proto;
use crate::recent::Recent;
use crate::sets::{MatchSet, Sets};
use crate::settings::ConntrackSettings;

// Data and logic: this file has the document's types; `family.rs` and `ports.rs` add `impl`
// blocks of queries over them (and use the types from here), and `FamilyEvidence`, the
// answer type of one query, is re-exported here so that it is named beside `Rule`.
mod family;
mod ports;

pub use family::FamilyEvidence;

/// A whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    /// Gateway ports by name. Absent: two ports `lan` and `wan` (interfaces of the same
    /// names), forwarded to each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<BTreeMap<String, PortSpec>>,
    /// Port pairs that forward to each other (bump-in-the-wire). Absent with exactly two
    /// ports: those two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<Vec<[String; 2]>>,
    #[serde(default, skip_serializing_if = "ConntrackSettings::is_default")]
    pub conntrack: ConntrackSettings,
    #[serde(default, skip_serializing_if = "Helpers::is_empty")]
    pub helpers: Helpers,
    /// Address sets by name, as ipset's hash:ip and hash:net (rules' `match_set`).
    #[serde(default, skip_serializing_if = "Sets::is_empty")]
    pub sets: Sets,
    #[serde(default, skip_serializing_if = "Stage::is_empty")]
    pub raw: Stage,
    /// After conntrack: where packets and connections are marked (iptables' mangle
    /// PREROUTING, nftables' prerouting chains after conntrack). Its `accept` (and its
    /// policy) hands the packet to `mangle_forward`; `drop` drops it.
    #[serde(default, skip_serializing_if = "Stage::is_empty")]
    pub mangle: Stage,
    /// After `mangle`, before `forward` (iptables' mangle FORWARD, nftables' forward chains
    /// before the last): the same actions, with the packet's way out known (a log line's
    /// `OUT=`). Its `accept` hands the packet to `forward`.
    #[serde(default, skip_serializing_if = "Stage::is_empty")]
    pub mangle_forward: Stage,
    #[serde(default)]
    pub forward: Stage,
    /// Connection-state sync with a peer gateway (conntrackd's protocol); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::sync::SyncConfig>,
}

/// One gateway port: `lan: veth-lan` or `lan: {interface: veth-lan, xdp_mode: skb}`.
///
/// Serialized untagged (a string or a map); deserialized by hand so that a mistake inside the
/// map is reported at its key, naming the key and the allowed ones, rather than serde's
/// "data did not match any variant of untagged enum".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PortSpec {
    Interface(String),
    Detailed(PortDetail),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PortSpecVisitor)
    }
}

/// Keys of the map form, in the order the docs list them.
const PORT_DETAIL_KEYS: &[&str] = &["interface", "xdp_mode", "zero_copy"];

struct PortSpecVisitor;

impl<'de> Visitor<'de> for PortSpecVisitor {
    type Value = PortSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "an interface name like veth-lan (quoted if it looks like a number), or a map \
             {interface: NAME, xdp_mode: auto|native|skb, zero_copy: auto|on|off}",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PortSpec, E> {
        Ok(PortSpec::Interface(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PortSpec, A::Error> {
        let mut interface: Option<String> = None;
        let mut xdp_mode: Option<XdpMode> = None;
        let mut zero_copy: Option<ZeroCopy> = None;
        // Keys are read as strings so that an unknown one is named in the error (serde's
        // `unknown_field` message lists the allowed keys, and the loader suggests the nearest).
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "interface" => set_once(&mut interface, "interface", map.next_value()?)?,
                "xdp_mode" => set_once(&mut xdp_mode, "xdp_mode", map.next_value()?)?,
                "zero_copy" => set_once(&mut zero_copy, "zero_copy", map.next_value()?)?,
                other => return Err(de::Error::unknown_field(other, PORT_DETAIL_KEYS)),
            }
        }
        let interface = interface.ok_or_else(|| de::Error::missing_field("interface"))?;
        Ok(PortSpec::Detailed(PortDetail {
            interface,
            xdp_mode: xdp_mode.unwrap_or_default(),
            zero_copy: zero_copy.unwrap_or_default(),
        }))
    }
}

/// Store a map value, refusing a key given twice.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(key));
    }
    *slot = Some(v);
    Ok(())
}

impl PortSpec {
    pub fn interface(&self) -> &str {
        match self {
            PortSpec::Interface(i) => i,
            PortSpec::Detailed(d) => &d.interface,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDetail {
    pub interface: String,
    /// XDP attach mode: `auto` (native where the driver has it, else generic), `native`, `skb`.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// AF_XDP zero-copy: `auto` (where the driver offers it), `on` (fail without), `off`.
    #[serde(default)]
    pub zero_copy: ZeroCopy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    #[default]
    Auto,
    Native,
    Skb,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    #[default]
    Auto,
    On,
    Off,
}

/// Connection-tracking helpers (`-j CT --helper NAME` in the kernel's raw table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helpers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp: Option<FtpHelper>,
}

impl Helpers {
    pub fn is_empty(&self) -> bool {
        self.ftp.is_none()
    }
}

/// The FTP helper, watching control connections to these TCP ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpHelper {
    #[serde(default = "FtpHelper::default_ports")]
    pub ports: Vec<u16>,
}

impl FtpHelper {
    /// The kernel's nf_conntrack_ftp default (`ports=21`).
    pub fn default_ports() -> Vec<u16> {
        vec![21]
    }
}

impl Default for FtpHelper {
    fn default() -> Self {
        FtpHelper {
            ports: Self::default_ports(),
        }
    }
}

/// An ordered rule list with a policy for packets no rule matches, and the user-defined
/// chains its rules jump to (iptables' `-N CHAIN`, `-j CHAIN`, `-g CHAIN`).
///
/// Rules are numbered across the stage (counters, `replay`'s `rule`, `statewallctl show`):
/// the main list from 0, then each chain's rules in chain-name order
/// ([`Stage::numbered`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// User-defined chains by name, reached by `action: {jump: NAME}` or `{goto: NAME}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chains: BTreeMap<String, Vec<Rule>>,
}

impl Ruleset {
    /// The stages by name, in the order a packet meets them.
    pub fn stages(&self) -> [(&'static str, &Stage); 4] {
        [
            ("raw", &self.raw),
            ("mangle", &self.mangle),
            ("mangle_forward", &self.mangle_forward),
            ("forward", &self.forward),
        ]
    }

    /// The stages by name, to change.
    pub fn stages_mut(&mut self) -> [(&'static str, &mut Stage); 4] {
        [
            ("raw", &mut self.raw),
            ("mangle", &mut self.mangle),
            ("mangle_forward", &mut self.mangle_forward),
            ("forward", &mut self.forward),
        ]
    }
}

impl Stage {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.chains.is_empty() && self.policy == Policy::Accept
    }

    /// Every rule with its chain (`None`: the main list) and its index in that list, in
    /// stage numbering: the main list, then the chains in name order.
    pub fn numbered(&self) -> impl Iterator<Item = (Option<&str>, usize, &Rule)> {
        let main = self.rules.iter().enumerate().map(|(i, r)| (None, i, r));
        let chains = self.chains.iter().flat_map(|(name, rules)| {
            rules
                .iter()
                .enumerate()
                .map(move |(i, r)| (Some(name.as_str()), i, r))
        });
        main.chain(chains)
    }

    /// Rules in the stage, the chains' included.
    pub fn rule_count(&self) -> usize {
        self.rules.len() + self.chains.values().map(Vec::len).sum::<usize>()
    }

    /// The stage number of a chain's first rule.
    pub fn chain_offset(&self, chain: &str) -> Option<usize> {
        let mut at = self.rules.len();
        for (name, rules) in &self.chains {
            if name == chain {
                return Some(at);
            }
            at += rules.len();
        }
        None
    }

    /// The path of rule `i` of a chain (`None`: the main list) in a ruleset document, as the
    /// source map names it: `forward.rules.3`, `forward.chains.lan-in.0`.
    pub fn rule_path(stage: &str, chain: Option<&str>, i: usize) -> String {
        match chain {
            None => format!("{stage}.rules.{i}"),
            Some(c) => format!("{stage}.chains.{c}.{i}"),
        }
    }
}

/// What happens to a packet no rule matches. The kernel's default chain policy is ACCEPT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Accept,
    Drop,
}

/// A rule's action. `raw` allows `notrack` and `accept`; `forward` allows `accept`, `drop`
/// and `reject`; both allow `log`, `return`, `{jump: CHAIN}` and `{goto: CHAIN}`.
///
/// `log` writes a line for the packet (the rule's `log:` options) and decides nothing: the
/// walk goes on with the next rule, as iptables' `-j LOG`. `continue` does nothing at all
/// (iptables' rule without a target, nftables' `continue`): it is there for what its
/// matches do, as `recent: {set: NAME}`.
///
/// `jump` walks the chain and, when no rule there decides (or one returns), goes on after
/// the jumping rule; `goto` walks it and then returns from the jumping rule's own list;
/// `return` leaves the current chain (in the main list: the policy decides), as iptables'
/// `-j CHAIN`, `-g CHAIN` and `-j RETURN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Drop,
    Reject,
    Notrack,
    Log,
    Continue,
    Return,
    Jump(String),
    Goto(String),
    /// Set the packet's mark (iptables' `-j MARK --set-xmark`; [`crate::mark`]).
    Mark(MarkValue),
    /// Set the connection's mark (`-j CONNMARK --set-xmark`).
    ConnMark(MarkValue),
    /// Copy the packet's mark to the connection (`-j CONNMARK --save-mark`).
    SaveMark(MarkCopy),
    /// Copy the connection's mark to the packet (`-j CONNMARK --restore-mark`).
    RestoreMark(MarkCopy),
}

impl Action {
    /// The names a YAML `action:` takes, in an order the two lists below are cut from: the
    /// verdicts of some stages, those every stage allows without a map form, then the keys
    /// of the map forms.
    pub const NAMES: &'static [&'static str] = &[
        "accept",
        "drop",
        "reject",
        "notrack",
        "log",
        "continue",
        "return",
        "jump",
        "goto",
        "mark",
        "connmark",
        "save_mark",
        "restore_mark",
    ];

    /// The keys of the map forms (`{jump: CHAIN}`, `{mark: 0x1}`, ...).
    pub const MAP_KEYS: &'static [&'static str] = Self::NAMES.split_at(7).1;

    /// The actions every stage allows, which decide nothing or move between chains.
    pub const EVERY_STAGE: &'static [&'static str] = Self::NAMES.split_at(4).1;

    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Notrack => "notrack",
            Action::Log => "log",
            Action::Continue => "continue",
            Action::Return => "return",
            Action::Jump(_) => "jump",
            Action::Goto(_) => "goto",
            Action::Mark(_) => "mark",
            Action::ConnMark(_) => "connmark",
            Action::SaveMark(_) => "save_mark",
            Action::RestoreMark(_) => "restore_mark",
        }
    }

    /// Whether the action sets a packet or connection mark (and decides nothing).
    pub fn marks(&self) -> bool {
        matches!(
            self,
            Action::Mark(_) | Action::ConnMark(_) | Action::SaveMark(_) | Action::RestoreMark(_)
        )
    }

    /// Whether the action never decides: the walk goes on after it (`log`, `continue`, the
    /// mark actions).
    pub fn passes(&self) -> bool {
        matches!(self, Action::Log | Action::Continue) || self.marks()
    }

    /// The chain a `jump` or `goto` names.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Action::Jump(c) | Action::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the action decides the packet's fate (accept, drop, reject, notrack), rather
    /// than log it or move it between chains.
    pub fn is_verdict(&self) -> bool {
        self.chain().is_none() && *self != Action::Return && !self.passes()
    }

    /// Whether the action moves the walk between chains (`return`, `jump`, `goto`) rather
    /// than act on the packet where it stands.
    pub fn moves(&self) -> bool {
        self.chain().is_some() || *self == Action::Return
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Action::Mark(m) | Action::ConnMark(m) => write!(f, "{} {m}", self.name()),
            Action::SaveMark(c) | Action::RestoreMark(c) if !c.is_default() => {
                write!(f, "{} {c}", self.name())
            }
            _ => match self.chain() {
                Some(c) => write!(f, "{} {c}", self.name()),
                None => f.write_str(self.name()),
            },
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        fn one<S: serde::Serializer, V: Serialize>(
            s: S,
            k: &str,
            v: &V,
        ) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(k, v)?;
            m.end()
        }
        match self {
            Action::Mark(v) | Action::ConnMark(v) => one(s, self.name(), v),
            Action::SaveMark(c) | Action::RestoreMark(c) if !c.is_default() => {
                one(s, self.name(), c)
            }
            Action::Jump(c) | Action::Goto(c) => one(s, self.name(), c),
            _ => s.serialize_str(self.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ActionVisitor)
    }
}

struct ActionVisitor;

impl<'de> Visitor<'de> for ActionVisitor {
    type Value = Action;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "accept, drop, reject, notrack, log, continue, return, save_mark, restore_mark, \
             {jump: CHAIN}, {goto: CHAIN}, {mark: VALUE/MASK} or {connmark: VALUE/MASK}",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Action, E> {
        Ok(match v {
            "accept" => Action::Accept,
            "drop" => Action::Drop,
            "reject" => Action::Reject,
            "notrack" => Action::Notrack,
            "log" => Action::Log,
            "continue" => Action::Continue,
            "return" => Action::Return,
            "save_mark" => Action::SaveMark(MarkCopy::default()),
            "restore_mark" => Action::RestoreMark(MarkCopy::default()),
            "jump" | "goto" => {
                return Err(E::custom(format!(
                    "`{v}` needs the chain's name: write `action: {{{v}: CHAIN}}`"
                )))
            }
            "mark" | "connmark" => {
                return Err(E::custom(format!(
                    "`{v}` needs the mark to set: write `action: {{{v}: 0x1}}` or `{{{v}: 0x1/0xff}}` (value/mask)"
                )))
            }
            other => return Err(E::unknown_variant(other, Action::NAMES)),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "an empty map is no action: write `{jump: CHAIN}` or `{goto: CHAIN}`",
            ));
        };
        let action = match key.as_str() {
            "jump" => Action::Jump(map.next_value()?),
            "goto" => Action::Goto(map.next_value()?),
            "mark" => Action::Mark(map.next_value()?),
            "connmark" => Action::ConnMark(map.next_value()?),
            "save_mark" => Action::SaveMark(map.next_value()?),
            "restore_mark" => Action::RestoreMark(map.next_value()?),
            other => return Err(de::Error::unknown_variant(other, Action::MAP_KEYS)),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "an action map has one key, as `{jump: CHAIN}` or `{mark: 0x1/0xff}`",
            ));
        }
        Ok(action)
    }
}

/// What `reject` answers with (`--reject-with`). Default: ICMP port unreachable, as iptables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectWith {
    IcmpPortUnreachable,
    IcmpHostUnreachable,
    IcmpNetUnreachable,
    IcmpProtoUnreachable,
    IcmpAdminProhibited,
    /// ICMP 3/9; for IPv6 packets ICMPv6 administratively prohibited.
    IcmpNetProhibited,
    /// ICMP 3/10, firewalld's default; for IPv6 packets ICMPv6 administratively prohibited.
    IcmpHostProhibited,
    /// ICMPv6 1/5; for IPv4 packets ICMP communication administratively prohibited.
    Icmp6PolicyFail,
    /// ICMPv6 1/6; for IPv4 packets ICMP communication administratively prohibited.
    Icmp6RejectRoute,
    TcpReset,
}

/// IP family a rule applies to (`iptables` rules are ipv4, `ip6tables` rules ipv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// One rule. Every match present must hold (logical AND); a list matches when any of its
/// values does (`{not: ...}` when none does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Restrict to one family; implied by addresses and ICMP matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Port the packet arrived on (iptables `-i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_port: Option<Match<PortName>>,
    /// Port the packet would leave on (iptables `-o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_port: Option<Match<PortName>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Match<Cidr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Match<Cidr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Match<Proto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<Match<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<Match<PortRange>>,
    /// Source or destination port (multiport `--ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Match<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<Match<Icmp4Type>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmpv6_type: Option<Match<Icmp6Type>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<TcpFlagsMatch>,
    /// `syn: true` is iptables' `--syn` (SYN set, RST/ACK/FIN clear); `false` is `! --syn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctstate: Option<Match<CtState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctdir: Option<CtDir>,
    /// The packet's mark (`-m mark --mark`, nft `meta mark`): `0x1`, `0x10/0xff`; a list
    /// matches any ([`crate::mark`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Match<MarkValue>>,
    /// The connection's mark (`-m connmark --mark`, nft `ct mark`); never matches a packet
    /// without a connection (untracked, INVALID), negated or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connmark: Option<Match<MarkValue>>,
    /// The IP packet's length (`-m length`); see [`crate::packet_matches`] for these five.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<Match<LengthRange>>,
    /// The IPv4 TTL (`-m ttl`); implies `family: ipv4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Match<TtlRange>>,
    /// The IPv6 hop limit (`-m hl`); implies `family: ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_limit: Option<Match<TtlRange>>,
    /// The frame's source MAC address (`-m mac --mac-source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_source: Option<Match<MacAddr>>,
    /// Unicast, broadcast or multicast (`-m pkttype`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkttype: Option<Match<PktType>>,
    /// The type of the IPv6 routing header (`-m rt --rt-type`): a packet without one never
    /// matches, negated or not; implies `family: ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_type: Option<Match<TtlRange>>,
    /// The MSS option of a TCP packet (`-m tcpmss --mss`); a packet without one matches
    /// only a negated list. Needs `proto: tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_mss: Option<Match<LengthRange>>,
    /// The packet's source or destination address in a set of the ruleset's `sets` (iptables'
    /// `-m set --match-set`; [`crate::sets`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_set: Option<MatchSet>,
    /// Named lists of recently seen addresses (iptables' `-m recent`; [`crate::recent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent: Option<Recent>,
    /// A rate limit per address (iptables' `-m hashlimit`; [`crate::hashlimit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashlimit: Option<HashLimit>,
    /// At most this rate of packets (iptables' `-m limit`); a packet over it does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_with: Option<RejectWith>,
    /// What an `action: log` rule writes (absent: LOG's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Rule {
    /// The keys of a rule, in the order the schema lists them (for "did you mean" and for
    /// finding where a rule starts in its file).
    pub const KEYS: &'static [&'static str] = &[
        "family",
        "in_port",
        "out_port",
        "src",
        "dst",
        "proto",
        "sport",
        "dport",
        "ports",
        "icmp_type",
        "icmpv6_type",
        "tcp_flags",
        "syn",
        "ctstate",
        "ctdir",
        "mark",
        "connmark",
        "length",
        "ttl",
        "hop_limit",
        "mac_source",
        "pkttype",
        "rt_type",
        "tcp_mss",
        "match_set",
        "recent",
        "hashlimit",
        "limit",
        "action",
        "reject_with",
        "log",
        "comment",
    ];

    /// A rule with no matches and the given action.
    pub fn new(action: Action) -> Self {
        Rule {
            family: None,
            in_port: None,
            out_port: None,
            src: None,
            dst: None,
            proto: None,
            sport: None,
            dport: None,
            ports: None,
            icmp_type: None,
            icmpv6_type: None,
            tcp_flags: None,
            syn: None,
            ctstate: None,
            ctdir: None,
            mark: None,
            connmark: None,
            length: None,
            ttl: None,
            hop_limit: None,
            mac_source: None,
            pkttype: None,
            rt_type: None,
            tcp_mss: None,
            match_set: None,
            recent: None,
            hashlimit: None,
            limit: None,
            action,
            reject_with: None,
            log: None,
            comment: None,
        }
    }

    /// Whether the rule matches fields of each packet rather than of its flow (`length`,
    /// `ttl`, `hop_limit`, `mac_source`, `pkttype`, `rt_type`): then it is decided packet
    /// by packet.
    pub fn has_packet_matches(&self) -> bool {
        self.length.is_some()
            || self.ttl.is_some()
            || self.hop_limit.is_some()
            || self.mac_source.is_some()
            || self.pkttype.is_some()
            || self.rt_type.is_some()
            || self.tcp_mss.is_some()
    }

    /// `(mask, comp, negated)` of the TCP flag test, folding `syn` into `tcp_flags`.
    pub fn tcp_flag_test(&self) -> Option<(u8, u8, bool)> {
        if let Some(f) = &self.tcp_flags {
            let (m, c) = f.bits();
            return Some((m, c, f.not));
        }
        // --syn is `--tcp-flags SYN,RST,ACK,FIN SYN`.
        self.syn.map(|s| (0x17, 0x02, !s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_keys_are_the_fields_serde_knows() {
        let e = serde_yaml::from_str::<Rule>("{nope: 1, action: accept}").unwrap_err();
        let msg = e.to_string();
        let listed: Vec<&str> = msg.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, Rule::KEYS, "{msg}");
    }
}
