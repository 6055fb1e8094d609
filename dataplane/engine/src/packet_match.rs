//! A rule's matches on each packet's own fields (`length`, `ttl`, `hop_limit`, `mac_source`,
//! `pkttype`, `rt_type`; `config::packet_matches`). The classifier decides on the flow's fields; these
//! are tested after it, when a rule that has them is the first whose other matches hold
//! (`CompiledStage::decide`), from the packet's parsed headers and its frame. Such rules
//! are volatile: their packets are never answered from the verdict cache.

use config::matches::Match;
use config::packet_matches::{LengthRange, MacAddr, PktType, TtlRange};
use config::ruleset::Rule;

use crate::packet::{IpFamily, PacketMeta};

#[derive(Debug, Clone)]
pub struct PacketMatches {
    length: Option<Match<LengthRange>>,
    ttl: Option<Match<TtlRange>>,
    hop_limit: Option<Match<TtlRange>>,
    mac_source: Option<Match<MacAddr>>,
    pkttype: Option<Match<PktType>>,
    rt_type: Option<Match<TtlRange>>,
    tcp_mss: Option<Match<LengthRange>>,
}

/// The IP packet's length as `-m length` reads it: the IPv4 total length, or the IPv6
/// payload length plus the 40-byte header.
fn ip_length(m: &PacketMeta, frame: &[u8]) -> Option<u16> {
    let l3 = usize::from(m.l3_offset);
    let at = match m.family {
        IpFamily::V4 => l3 + 2,
        IpFamily::V6 => l3 + 4,
    };
    let b = frame.get(at..at + 2)?;
    let n = u16::from_be_bytes([b[0], b[1]]);
    Some(match m.family {
        IpFamily::V4 => n,
        IpFamily::V6 => n.saturating_add(40),
    })
}

/// The type of the IPv6 packet's routing header, found as the kernel's `ipv6_find_hdr`
/// finds it: through hop-by-hop, destination options, AH and a first fragment's header;
/// `None` when there is none (or the chain is cut short: the kernel then drops the packet,
/// which the L4 parse has already marked).
fn routing_type(m: &PacketMeta, frame: &[u8]) -> Option<u8> {
    use crate::wire::ipv6::{
        NEXTHDR_AUTH, NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING,
    };
    if m.family != IpFamily::V6 {
        return None;
    }
    let l3 = usize::from(m.l3_offset);
    let mut nh = *frame.get(l3 + 6)?;
    let mut at = l3 + 40;
    // A chain is at most a few headers; bound the walk all the same.
    for _ in 0..16 {
        let len = match nh {
            NEXTHDR_ROUTING => return frame.get(at + 2).copied(),
            NEXTHDR_HOP | NEXTHDR_DEST => (usize::from(*frame.get(at + 1)?) + 1) * 8,
            NEXTHDR_AUTH => (usize::from(*frame.get(at + 1)?) + 2) * 4,
            NEXTHDR_FRAGMENT => {
                let off = u16::from_be_bytes([*frame.get(at + 2)?, *frame.get(at + 3)?]);
                if off & 0xfff8 != 0 {
                    return None;
                }
                8
            }
            _ => return None,
        };
        nh = *frame.get(at)?;
        at += len;
    }
    None
}

/// What xt_tcpmss finds in a TCP header.
enum Mss {
    Value(u16),
    Absent,
}

/// The MSS option of the TCP packet `m`, as xt_tcpmss reads it; `None` for a data offset
/// under 5 or options cut short, which the kernel drops.
fn tcp_mss(m: &PacketMeta, frame: &[u8]) -> Option<Mss> {
    let l4 = usize::from(m.l4_offset);
    let doff = usize::from(frame.get(l4 + 12)? >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let end = l4 + doff;
    if doff > usize::from(m.l4_len) {
        return None;
    }
    let opts = frame.get(l4 + 20..end)?;
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == 2 && opts.len() - i >= 4 && opts.get(i + 1) == Some(&4) {
            return Some(Mss::Value(u16::from_be_bytes([opts[i + 2], opts[i + 3]])));
        }
        i += if kind < 2 {
            1
        } else {
            usize::from(opts.get(i + 1).copied().unwrap_or(1)).max(1)
        };
    }
    Some(Mss::Absent)
}

fn mac(frame: &[u8], at: usize) -> Option<[u8; 6]> {
    frame.get(at..at + 6)?.try_into().ok()
}

impl PacketMatches {
    /// The rule's packet matches, if it has any.
    pub fn of(r: &Rule) -> Option<PacketMatches> {
        r.has_packet_matches().then(|| PacketMatches {
            length: r.length.clone(),
            ttl: r.ttl.clone(),
            hop_limit: r.hop_limit.clone(),
            mac_source: r.mac_source.clone(),
            pkttype: r.pkttype.clone(),
            rt_type: r.rt_type.clone(),
            tcp_mss: r.tcp_mss.clone(),
        })
    }

    /// Whether every one holds of the packet `m` in `frame`; `None`: the packet is to be
    /// dropped on the spot, as the kernel's `-m tcpmss` drops a TCP header whose options it
    /// cannot read. A field the frame is too short to have matches nothing (the rule's
    /// family was checked by the classifier: `ttl` is only tested on IPv4 packets,
    /// `hop_limit` on IPv6 ones).
    #[inline]
    pub fn matches(&self, m: &PacketMeta, frame: &[u8]) -> Option<bool> {
        let mss_ok = match &self.tcp_mss {
            None => true,
            Some(x) => match tcp_mss(m, frame)? {
                Mss::Value(v) => x.test(|r| r.contains(v)),
                Mss::Absent => x.negated,
            },
        };
        Some(mss_ok && self.fields(m, frame))
    }

    fn fields(&self, m: &PacketMeta, frame: &[u8]) -> bool {
        self.length
            .as_ref()
            .is_none_or(|x| ip_length(m, frame).is_some_and(|v| x.test(|r| r.contains(v))))
            && self.ttl.as_ref().is_none_or(|x| {
                m.family == IpFamily::V4 && x.test(|r| r.contains(u16::from(m.ttl)))
            })
            && self.hop_limit.as_ref().is_none_or(|x| {
                m.family == IpFamily::V6 && x.test(|r| r.contains(u16::from(m.ttl)))
            })
            && self
                .mac_source
                .as_ref()
                .is_none_or(|x| mac(frame, 6).is_some_and(|s| x.test(|a| a.0 == s)))
            && self
                .pkttype
                .as_ref()
                .is_none_or(|x| mac(frame, 0).is_some_and(|d| x.test(|t| *t == PktType::of(d))))
            && self.rt_type.as_ref().is_none_or(|x| {
                routing_type(m, frame).is_some_and(|t| x.test(|r| r.contains(u16::from(t))))
            })
    }
}
