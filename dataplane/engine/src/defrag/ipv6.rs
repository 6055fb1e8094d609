//! IPv6: `nf_ct_frag6_gather` → `nf_ct_frag6_queue` → `nf_ct_frag6_reasm`
//! (net/ipv6/netfilter/nf_conntrack_reasm.c), and the bridge's refragmentation
//! (`ip6_fragment`'s fast path, the fragment header placed by `ip6_find_1stfragopt`).
//!
//! Unlike IPv4, not every fragment is consumed: `ipv6_defrag` accepts a frame the gather
//! returns 0 for (not reassembled), drops one it returns an error for, and steals one it
//! queued (-EINPROGRESS).

use super::queue::{FragKey, FragRec};
use super::{Defrag, Done, FragDrop, FragInfo, Gather, Queued, Reassembler};
use crate::packet::{IpFamily, PacketMeta};
use crate::wire::ipv6::{
    NEXTHDR_AUTH, NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_NONE, NEXTHDR_ROUTING,
};
use crate::wire::proto;

const HDR: usize = 40;
const IPV6_MAXPLEN: u32 = 65_535;

/// `find_prev_fhdr`: the offsets (in `ip`, the frame from the IPv6 header on) of the byte
/// naming the fragment header, and of the fragment header; `None` when the chain of
/// extension headers reaches something else first.
fn find_prev_fhdr(ip: &[u8]) -> Option<(usize, usize)> {
    let mut nh = ip[6];
    let mut prev = 6;
    let mut start = HDR;
    let mut len = ip.len() as isize - HDR as isize;
    while nh != NEXTHDR_FRAGMENT {
        if !matches!(
            nh,
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_AUTH | NEXTHDR_DEST | NEXTHDR_NONE
        ) || nh == NEXTHDR_NONE
            || len < 2
        {
            return None;
        }
        let (next, l) = (ip[start], usize::from(ip[start + 1]));
        let hdrlen = if nh == NEXTHDR_AUTH {
            (l + 2) << 2
        } else {
            (l + 1) << 3
        };
        prev = start;
        nh = next;
        len -= hdrlen as isize;
        start += hdrlen;
    }
    (len >= 0).then_some((prev, start))
}

/// `ipv6frag_thdr_truncated`: a first fragment that does not hold the whole upper-layer
/// header (RFC 8200 §4.5). `ip` ends where the packet does.
fn thdr_truncated(ip: &[u8], fhoff: usize) -> bool {
    // ipv6_skip_exthdr from the fragment header on.
    let mut nh = NEXTHDR_FRAGMENT;
    let mut at = fhoff;
    loop {
        match nh {
            NEXTHDR_FRAGMENT => {
                let Some(&[next, _, hi, lo]) = ip.get(at..at + 4) else {
                    return false;
                };
                if u16::from_be_bytes([hi, lo]) & !7 != 0 {
                    return false;
                }
                nh = next;
                at += 8;
            }
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_AUTH => {
                let Some(&[next, l]) = ip.get(at..at + 2) else {
                    return false;
                };
                at += if nh == NEXTHDR_AUTH {
                    (usize::from(l) + 2) << 2
                } else {
                    (usize::from(l) + 1) << 3
                };
                nh = next;
            }
            NEXTHDR_NONE => return false,
            _ => break,
        }
    }
    let need = match nh {
        proto::TCP => 20,
        proto::UDP => 8,
        proto::ICMPV6 => 8,
        _ => 1,
    };
    at + need > ip.len()
}

/// Where a frame's fragment header is: the packet (from its IPv6 header to the end of its
/// payload), the offset of the byte naming the fragment header and of the fragment header.
/// `None` when `nf_ct_frag6_gather` would not queue it: a jumbogram (no fragment header
/// possible), or no fragment header in the chain of extension headers.
fn locate<'a>(frame: &'a [u8], meta: &PacketMeta) -> Option<(&'a [u8], usize, usize)> {
    let l3 = usize::from(meta.l3_offset);
    // wire::parse checked the fixed header and the payload length against the frame.
    let h = frame.get(l3..l3 + HDR)?;
    if !matches!(
        h[6],
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_AUTH | NEXTHDR_DEST | NEXTHDR_FRAGMENT
    ) {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if payload_len == 0 {
        return None;
    }
    let ip = frame.get(l3..l3 + HDR + payload_len)?;
    let (prev, fhoff) = find_prev_fhdr(ip)?;
    Some((ip, prev, fhoff))
}

/// The reassembly key of an IPv6 fragment (`None`: not one reassembly takes).
pub(super) fn key(frame: &[u8], meta: &PacketMeta, in_port: u8) -> Option<FragKey> {
    let (ip, _, fhoff) = locate(frame, meta)?;
    let &[a, b, c, e] = ip.get(fhoff + 4..fhoff + 8)? else {
        return None;
    };
    Some(FragKey {
        src: meta.src,
        dst: meta.dst,
        id: u32::from_be_bytes([a, b, c, e]),
        proto: 0,
        iif: in_port,
    })
}

pub(super) fn gather(
    d: &mut Defrag,
    now: u64,
    frame: &[u8],
    meta: &PacketMeta,
    in_port: u8,
    tag: u64,
) -> Gather {
    let l3 = usize::from(meta.l3_offset);
    let Some((ip, prev, fhoff)) = locate(frame, meta) else {
        return Gather::NotFragment;
    };
    let h = &ip[..HDR];
    let payload_len = (ip.len() - HDR) as u32;
    let r = &mut d.v6;
    if thdr_truncated(ip, fhoff) {
        r.counters.passed += 1;
        return Gather::Pass;
    }
    let Some(&[_, _, hi, lo, a, b, c, e]) = ip.get(fhoff..fhoff + 8) else {
        // The fragment header is cut short (pskb_may_pull fails: NF_DROP).
        return dropped(r, FragDrop::Corrupt);
    };
    let frag = u16::from_be_bytes([hi, lo]);
    let offset = u32::from(frag & !7);
    let end = offset + payload_len - (fhoff + 8 - HDR) as u32;
    let info = FragInfo {
        key: FragKey {
            src: meta.src,
            dst: meta.dst,
            id: u32::from_be_bytes([a, b, c, e]),
            proto: 0,
            iif: in_port,
        },
        offset,
        end,
        more: frag & 1 != 0,
        l3,
        nhoff: prev,
        head_len: l3 + fhoff + 8,
        ecn: 1 << ((h[1] >> 4) & 3),
        df: false,
        tag,
    };
    r.counters.fragments += 1;
    let qi = match r.find(now, &info.key) {
        Ok(qi) => qi,
        Err(why) => return dropped(r, why),
    };
    match queue(
        r,
        qi,
        &info,
        &frame[..l3 + HDR + payload_len as usize],
        payload_len,
    ) {
        Ok(Queued::Held) => Gather::Held,
        Ok(Queued::Complete(qi)) => match reassemble(r, qi, &mut d.out) {
            Ok((len, unfrag)) => {
                r.counters.reassembled += 1;
                let q = &r.qs.q[qi as usize];
                d.done = Some(Done {
                    family: IpFamily::V6,
                    queue: qi,
                    len,
                    l3,
                    // ip6_fragment is not called when the datagram fits the largest
                    // fragment (an atomic fragment): it leaves without a fragment header.
                    whole: len - l3 <= HDR + q.max_size as usize,
                    unfrag,
                    id: info.key.id,
                    nhoff: usize::from(q.nhoff),
                    first_end: r.qs.f[q.head as usize].end as usize,
                });
                Gather::Complete
            }
            Err(why) => {
                r.kill(qi);
                dropped(r, why)
            }
        },
        Err(Step::Pass) => {
            r.counters.passed += 1;
            Gather::Pass
        }
        Err(Step::Drop(why)) => dropped(r, why),
    }
}

fn dropped(r: &mut Reassembler, why: FragDrop) -> Gather {
    r.counters.dropped[why as usize] += 1;
    Gather::Dropped(why)
}

enum Step {
    Pass,
    Drop(FragDrop),
}

impl From<FragDrop> for Step {
    fn from(d: FragDrop) -> Step {
        Step::Drop(d)
    }
}

/// `nf_ct_frag6_queue`. Unlike IPv4, most inconsistencies drop the fragment and keep the
/// queue (`goto err`).
fn queue(
    r: &mut Reassembler,
    qi: u32,
    info: &FragInfo,
    frame: &[u8],
    payload_len: u32,
) -> Result<Queued, Step> {
    let end = info.end;
    if end > IPV6_MAXPLEN {
        return Err(FragDrop::Oversize.into());
    }
    let q = &mut r.qs.q[qi as usize];
    if info.more {
        if end & 7 != 0 {
            // "RFC2460 says always send parameter problem in this case": the queue is
            // killed and the frame goes on unreassembled (-EPROTO becomes NF_ACCEPT).
            r.kill(qi);
            return Err(Step::Pass);
        }
        if end > q.len {
            if q.last_in {
                return Err(FragDrop::Corrupt.into());
            }
            q.len = end;
        }
    } else {
        if end < q.len || (q.last_in && end != q.len) {
            return Err(FragDrop::Corrupt.into());
        }
        q.last_in = true;
        q.len = end;
    }
    if end == info.offset {
        return Err(FragDrop::Corrupt.into());
    }
    r.insert(qi, info, end, frame, payload_len)
        .map_err(Step::Drop)
}

/// `nf_ct_frag6_reasm`: the first fragment's headers without the fragment header (the
/// header before it names what the fragment header named), every payload in order, the
/// payload length, ECN merged. Returns the frame length and the bytes of extension headers
/// that preceded the fragment header.
fn reassemble(r: &Reassembler, qi: u32, out: &mut [u8]) -> Result<(usize, usize), FragDrop> {
    let q = r.qs.q[qi as usize];
    let first = r.qs.f[q.head as usize];
    let l3 = usize::from(first.l3);
    let fh = usize::from(first.head_len) - 8; // the fragment header's offset in the frame
    let unfrag = fh - l3 - HDR;
    let payload = unfrag as u32 + q.len;
    if payload > IPV6_MAXPLEN {
        return Err(FragDrop::Oversize);
    }
    let ecn = Reassembler::ecn(q.ecn).ok_or(FragDrop::Ecn)?;
    let mut fragment_header = [0u8; 8];
    r.pool.read(first.chain, 0, &mut out[..fh]);
    r.pool.read(first.chain, fh, &mut fragment_header);
    r.copy_payload(qi, &mut out[fh..]);
    out[l3 + usize::from(q.nhoff)] = fragment_header[0];
    out[l3 + 4..l3 + 6].copy_from_slice(&(payload as u16).to_be_bytes());
    out[l3 + 1] |= ecn << 4;
    Ok((fh + q.len as usize, unfrag))
}

/// `ip6_find_1stfragopt` on the reassembled datagram (`ip`: from its IPv6 header): where the
/// fragment header goes (after hop-by-hop, routing, and destination options unless they
/// follow a routing header), and the offset of the byte that must name it.
fn first_frag_opt(ip: &[u8]) -> (usize, usize) {
    let mut offset = HDR;
    let mut prev = 6;
    let mut found_rhdr = false;
    loop {
        match ip[prev] {
            NEXTHDR_HOP => {}
            NEXTHDR_ROUTING => found_rhdr = true,
            NEXTHDR_DEST if !found_rhdr => {}
            _ => return (offset, prev),
        }
        let Some(&l) = ip.get(offset + 1) else {
            return (offset, prev);
        };
        prev = offset;
        offset += (usize::from(l) + 1) << 3;
    }
}

/// The frame for fragment `rec` of the datagram in `datagram` as `ip6_fragment`'s fast path
/// sends it: the datagram's unfragmentable headers, a fragment header with the original
/// identification (the kernel draws a new one: a documented deviation), this fragment's
/// data.
pub(super) fn write_fragment(datagram: &[u8], d: Done, rec: &FragRec, dst: &mut [u8]) -> usize {
    let l3 = d.l3;
    let ip = &datagram[l3..];
    let (mut hlen, mut prev) = first_frag_opt(ip);
    // Fragmentable bytes start here in the datagram; fragment offsets count from there.
    let base = l3 + HDR + d.unfrag;
    // The fast path needs the unfragmentable headers inside the first fragment's data. When
    // they reach past it (crafted: a destination-options header after the fragment header,
    // cut by it, before "no next header"), the fragment header goes back where it was.
    if l3 + hlen > base + d.first_end {
        (hlen, prev) = (HDR + d.unfrag, d.nhoff);
    }
    let data_start = if rec.offset == 0 {
        l3 + hlen
    } else {
        base + rec.offset as usize
    };
    let data_end = base + rec.end as usize;
    let frag_offset = data_start - (l3 + hlen);
    let more = data_end < datagram.len();
    let n = data_end - data_start;
    let mut at = 0;
    dst[..l3 + hlen].copy_from_slice(&datagram[..l3 + hlen]);
    at += l3 + hlen;
    let next = ip[prev];
    dst[l3 + prev] = NEXTHDR_FRAGMENT;
    let id = d.id;
    let off = (frag_offset as u16) | u16::from(more);
    dst[at..at + 8].copy_from_slice(&[
        next,
        0,
        (off >> 8) as u8,
        off as u8,
        (id >> 24) as u8,
        (id >> 16) as u8,
        (id >> 8) as u8,
        id as u8,
    ]);
    at += 8;
    dst[at..at + n].copy_from_slice(&datagram[data_start..data_end]);
    at += n;
    let payload = (at - l3 - HDR) as u16;
    dst[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
    at
}
