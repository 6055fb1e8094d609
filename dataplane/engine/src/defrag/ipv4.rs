//! IPv4: `ip_defrag` → `ip_frag_queue` → `ip_frag_reasm` (net/ipv4/ip_fragment.c), and the
//! bridge's refragmentation (`ip_do_fragment`'s fast path: `ip_fraglist_init`,
//! `ip_fraglist_prepare`, `ip_options_fragment`).
//!
//! Every fragment is consumed (nf_defrag_ipv4 returns NF_STOLEN whatever `ip_defrag` says);
//! a fragment that breaks its datagram (`discard_qp`) takes the datagram with it.

use super::queue::{FragKey, FragRec};
use super::{Defrag, Done, FragDrop, FragInfo, Gather, Queued, Reassembler};
use crate::packet::{Fragment, IpFamily, PacketMeta};
use crate::wire::checksum;

const MF: u16 = 0x2000;
const DF: u16 = 0x4000;
const OFFSET: u16 = 0x1fff;

/// The reassembly key of an IPv4 fragment (`frag_v4_compare_key`).
pub(super) fn key(meta: &PacketMeta) -> FragKey {
    FragKey {
        src: meta.src,
        dst: meta.dst,
        id: meta.ip_id,
        proto: meta.proto,
        iif: 0,
    }
}

pub(super) fn gather(
    d: &mut Defrag,
    now: u64,
    frame: &[u8],
    meta: &PacketMeta,
    tag: u64,
) -> Gather {
    if meta.fragment == Fragment::None {
        return Gather::NotFragment;
    }
    let l3 = usize::from(meta.l3_offset);
    // wire::parse checked the header: version, IHL, checksum, total length within the frame.
    let Some(h) = frame.get(l3..l3 + 20) else {
        return Gather::NotFragment;
    };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let offset = u32::from(frag & OFFSET) << 3;
    let info = FragInfo {
        key: key(meta),
        offset,
        end: offset + (total - ihl) as u32,
        more: frag & MF != 0,
        l3,
        nhoff: 0,
        head_len: l3 + ihl,
        ecn: 1 << (h[1] & 3),
        df: frag & DF != 0,
        tag,
    };
    let frame = &frame[..l3 + total];
    let r = &mut d.v4;
    r.counters.fragments += 1;
    let qi = match r.find(now, &info.key) {
        Ok(qi) => qi,
        Err(why) => return dropped(r, why),
    };
    r.too_far(now, qi);
    match queue(r, qi, &info, frame, ihl) {
        Ok(Queued::Held) => Gather::Held,
        Ok(Queued::Complete(qi)) => match reassemble(r, qi, &mut d.out) {
            Ok(len) => {
                r.counters.reassembled += 1;
                d.done = Some(Done {
                    family: IpFamily::V4,
                    queue: qi,
                    len,
                    l3,
                    // A single fragment never completes an IPv4 datagram: always refragmented.
                    whole: false,
                    unfrag: 0,
                    id: 0,
                    nhoff: 0,
                    first_end: 0,
                });
                Gather::Complete
            }
            Err(why) => {
                r.kill(qi);
                dropped(r, why)
            }
        },
        Err(why) => dropped(r, why),
    }
}

fn dropped(r: &mut Reassembler, why: FragDrop) -> Gather {
    r.counters.dropped[why as usize] += 1;
    Gather::Dropped(why)
}

/// `ip_frag_queue` from "Determine the position of this fragment" on.
fn queue(
    r: &mut Reassembler,
    qi: u32,
    info: &FragInfo,
    frame: &[u8],
    ihl: usize,
) -> Result<Queued, FragDrop> {
    let mut end = info.end;
    let q = &mut r.qs.q[qi as usize];
    if info.more {
        end &= !7;
        if end > q.len {
            if q.last_in {
                r.kill(qi);
                return Err(FragDrop::Corrupt);
            }
            q.len = end;
        }
    } else {
        // The last fragment: nothing held may lie beyond it, and a second one must agree.
        if end < q.len || (q.last_in && end != q.len) {
            r.kill(qi);
            return Err(FragDrop::Corrupt);
        }
        q.last_in = true;
        q.len = end;
    }
    if end == info.offset {
        r.kill(qi);
        return Err(FragDrop::Corrupt);
    }
    let size = (end - info.offset) + ihl as u32;
    r.insert(qi, info, end, frame, size)
}

/// `ip_frag_reasm`: the first fragment's link and IP headers, every payload in order; the
/// total length, DF only when the largest fragment had it, ECN merged, a new checksum.
fn reassemble(r: &Reassembler, qi: u32, out: &mut [u8]) -> Result<usize, FragDrop> {
    let q = r.qs.q[qi as usize];
    let first = r.qs.f[q.head as usize];
    let head = usize::from(first.head_len);
    let l3 = usize::from(first.l3);
    let ihl = head - l3;
    if ihl + q.len as usize > 65_535 {
        return Err(FragDrop::Oversize);
    }
    let ecn = Reassembler::ecn(q.ecn).ok_or(FragDrop::Ecn)?;
    r.pool.read(first.chain, 0, &mut out[..head]);
    r.copy_payload(qi, &mut out[head..]);
    let ip = &mut out[l3..l3 + ihl];
    ip[1] |= ecn;
    ip[2..4].copy_from_slice(&((ihl as u32 + q.len) as u16).to_be_bytes());
    let frag_off = if q.max_df_size == q.max_size { DF } else { 0 };
    ip[6..8].copy_from_slice(&frag_off.to_be_bytes());
    set_checksum(ip);
    Ok(head + q.len as usize)
}

fn set_checksum(ip: &mut [u8]) {
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Frame `index` of the datagram in `datagram` as the bridge sends it: the reassembled link
/// and IP header with this fragment's length, offset and MF (DF cleared: `ip_fraglist_init`
/// and `ip_fraglist_prepare` set the field to MF and the offset only); from the second
/// fragment on, options without the copy bit are NOOPs (`ip_options_fragment`).
pub(super) fn write_fragment(
    datagram: &[u8],
    ip_at: usize,
    rec: &FragRec,
    index: usize,
    dst: &mut [u8],
) -> usize {
    let ihl = usize::from(datagram[ip_at] & 0x0f) * 4;
    let head = ip_at + ihl;
    let (o, e) = (rec.offset as usize, rec.end as usize);
    let total_len = datagram.len() - head;
    dst[..head].copy_from_slice(&datagram[..head]);
    dst[head..head + e - o].copy_from_slice(&datagram[head + o..head + e]);
    let ip = &mut dst[ip_at..head];
    ip[2..4].copy_from_slice(&((ihl + e - o) as u16).to_be_bytes());
    let mut field = (o >> 3) as u16;
    if e < total_len {
        field |= MF;
    }
    ip[6..8].copy_from_slice(&field.to_be_bytes());
    if index > 0 {
        options_fragment(&mut ip[20..]);
    }
    set_checksum(ip);
    head + e - o
}

/// `ip_options_fragment`: options whose copy bit is clear become NOOPs.
fn options_fragment(opts: &mut [u8]) {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return,
            1 => i += 1,
            t => {
                let Some(&len) = opts.get(i + 1) else { return };
                let len = usize::from(len);
                if len < 2 || len > opts.len() - i {
                    return;
                }
                if t & 0x80 == 0 {
                    opts[i..i + len].fill(1);
                }
                i += len;
            }
        }
    }
}
