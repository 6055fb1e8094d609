//! Frames written in place into UMEM frames: Ethernet (optionally one 802.1Q tag), IPv4 or
//! IPv6, UDP, TCP or ICMP echo, and the stamp the receiver reads (magic, slot, sequence,
//! send time). Checksums are computed in full: at 60 to 100 bytes that is a few ns, and the
//! gateway (like the kernel, `nf_conntrack_checksum`) verifies them.

use std::net::IpAddr;

use engine::wire::checksum;

use super::flows::Tuple;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;

/// The stamp in every generated payload that has room for it.
pub const STAMP_LEN: usize = 16;
const MAGIC: u32 = 0x5357_4731; // "SWG1"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Global flow slot.
    pub slot: u32,
    /// Per-slot sequence number.
    pub seq: u32,
    /// Send time, ns since the generator's epoch, modulo 2^32 (latencies up to 4.29 s).
    pub ts: u32,
}

impl Stamp {
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&self.slot.to_be_bytes());
        out[8..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.ts.to_be_bytes());
    }

    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..STAMP_LEN)?;
        let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (w(0) == MAGIC).then(|| Stamp {
            slot: w(4),
            seq: w(8),
            ts: w(12),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHdr {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// SYN options: MSS 1460 and this window scale.
    pub syn_wscale: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Udp,
    Tcp(TcpHdr),
    /// Echo request, id = source port, sequence = the stamp's low bits.
    Icmp,
}

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_ICMPV6: u8 = 58;

/// Header bytes before the payload.
pub fn header_len(l2: &L2, v4: bool, l4: &L4) -> usize {
    let eth = if l2.vlan.is_some() { 18 } else { 14 };
    let ip = if v4 { 20 } else { 40 };
    let l4 = match l4 {
        L4::Udp | L4::Icmp => 8,
        L4::Tcp(h) => {
            if h.syn_wscale.is_some() {
                28
            } else {
                20
            }
        }
    };
    eth + ip + l4
}

/// Write one frame of `len` bytes (raised to the headers' length if shorter) into `buf`;
/// the stamp goes first in the payload when it fits. Returns the frame length; 0 when `buf`
/// is too small.
pub fn write(
    buf: &mut [u8],
    l2: &L2,
    t: &Tuple,
    l4: &L4,
    len: usize,
    stamp: Option<&Stamp>,
) -> usize {
    let v4 = t.src.is_ipv4();
    let hdr = header_len(l2, v4, l4);
    let len = len.max(hdr);
    let Some(buf) = buf.get_mut(..len) else {
        return 0;
    };
    // Ethernet.
    buf[0..6].copy_from_slice(&l2.dst);
    buf[6..12].copy_from_slice(&l2.src);
    let mut o = 12;
    if let Some(vid) = l2.vlan {
        buf[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        buf[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
        o = 16;
    }
    buf[o..o + 2].copy_from_slice(&(if v4 { ETH_P_IPV4 } else { ETH_P_IPV6 }).to_be_bytes());
    let l3 = o + 2;
    let proto = match (l4, v4) {
        (L4::Udp, _) => PROTO_UDP,
        (L4::Tcp(_), _) => PROTO_TCP,
        (L4::Icmp, true) => PROTO_ICMP,
        (L4::Icmp, false) => PROTO_ICMPV6,
    };
    let l4o = l3 + if v4 { 20 } else { 40 };
    let l4_len = len - l4o;
    // Payload: the stamp, then zeros (frames are reused).
    let pay = hdr;
    let mut p = pay;
    if let Some(s) = stamp {
        if len - pay >= STAMP_LEN {
            s.write(&mut buf[pay..pay + STAMP_LEN]);
            p += STAMP_LEN;
        }
    }
    buf[p..len].fill(0);
    let seq_lo = stamp.map_or(0, |s| s.seq as u16);
    // IP.
    let pseudo = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = &mut buf[l3..l3 + 20];
            h[0] = 0x45;
            h[1] = 0;
            h[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&seq_lo.to_be_bytes());
            h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            h[8] = 64;
            h[9] = proto;
            h[10..12].fill(0);
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = checksum::checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            checksum::pseudo_v4(s.octets(), d.octets(), proto, l4_len as u32)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = &mut buf[l3..l3 + 40];
            h[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            checksum::pseudo_v6(&s.octets(), &d.octets(), proto, l4_len as u32)
        }
        _ => return 0,
    };
    // L4, checksum field zero until the end.
    let h = &mut buf[l4o..len];
    let csum_at = match l4 {
        L4::Udp => {
            h[0..2].copy_from_slice(&t.sport.to_be_bytes());
            h[2..4].copy_from_slice(&t.dport.to_be_bytes());
            h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            h[6..8].fill(0);
            6
        }
        L4::Tcp(th) => {
            h[0..2].copy_from_slice(&t.sport.to_be_bytes());
            h[2..4].copy_from_slice(&t.dport.to_be_bytes());
            h[4..8].copy_from_slice(&th.seq.to_be_bytes());
            h[8..12].copy_from_slice(&th.ack.to_be_bytes());
            let words = if th.syn_wscale.is_some() { 7u8 } else { 5 };
            h[12] = words << 4;
            h[13] = th.flags;
            h[14..16].copy_from_slice(&th.window.to_be_bytes());
            h[16..20].fill(0);
            if let Some(ws) = th.syn_wscale {
                // MSS 1460, NOP, window scale.
                h[20..28].copy_from_slice(&[2, 4, 0x05, 0xb4, 1, 3, 3, ws]);
            }
            16
        }
        L4::Icmp => {
            h[0] = if v4 { 8 } else { 128 };
            h[1] = 0;
            h[2..4].fill(0);
            h[4..6].copy_from_slice(&t.sport.to_be_bytes());
            h[6..8].copy_from_slice(&seq_lo.to_be_bytes());
            2
        }
    };
    let sum = checksum::sum(h);
    let c = if proto == PROTO_ICMP {
        !checksum::fold(sum)
    } else {
        !checksum::fold(sum + pseudo)
    };
    // UDP sends an all-zero result as all ones (RFC 768).
    let c = if proto == PROTO_UDP && c == 0 {
        0xffff
    } else {
        c
    };
    h[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::packet::tcp_flags::{ACK, SYN};
    use engine::wire::{self, build};

    const L2A: L2 = L2 {
        src: [2, 0x5e, 0, 0, 0, 2],
        dst: [2, 0x5e, 0, 0, 0, 3],
        vlan: None,
    };

    fn tuple(src: &str, dst: &str) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: 1234,
            dport: 80,
        }
    }

    #[test]
    fn udp_and_tcp_frames_parse_and_verify() {
        let mut buf = [0xaau8; 2048];
        let stamp = Stamp {
            slot: 7,
            seq: 42,
            ts: 123_456,
        };
        for (src, dst) in [("10.10.0.2", "10.10.0.3"), ("fd00:10::2", "fd00:10::3")] {
            let t = tuple(src, dst);
            for vlan in [None, Some(100)] {
                let l2 = L2 { vlan, ..L2A };
                let tcp = TcpHdr {
                    seq: 1000,
                    ack: 2000,
                    flags: ACK,
                    window: 512,
                    syn_wscale: None,
                };
                let syn = TcpHdr {
                    flags: SYN,
                    syn_wscale: Some(7),
                    ..tcp
                };
                for l4 in [L4::Udp, L4::Tcp(tcp), L4::Tcp(syn), L4::Icmp] {
                    for len in [60usize, 100, 1514] {
                        let n = write(&mut buf, &l2, &t, &l4, len, Some(&stamp));
                        assert_eq!(n, len.max(header_len(&l2, t.src.is_ipv4(), &l4)));
                        let f = &buf[..n];
                        let m = wire::parse(f).unwrap_or_else(|e| panic!("{l4:?}: {e:?}"));
                        assert!(m.is_ip);
                        assert_eq!(m.vlan, vlan);
                        assert_eq!(m.src_ip(), t.src);
                        assert!(wire::l4_checksum_ok(f, &m), "{l4:?} {src} {len}");
                        assert_eq!(m.l4_invalid, None);
                        if let L4::Tcp(h) = l4 {
                            assert_eq!(
                                (m.tcp.seq, m.tcp.ack, m.tcp.flags),
                                (h.seq, h.ack, h.flags)
                            );
                            assert_eq!(m.tcp.wscale, h.syn_wscale);
                        }
                        let payload = &f[header_len(&l2, t.src.is_ipv4(), &l4)..];
                        let fits = payload.len() >= STAMP_LEN;
                        assert_eq!(Stamp::read(payload), fits.then_some(stamp));
                    }
                }
            }
        }
    }

    #[test]
    fn same_bytes_as_the_reference_builder() {
        let mut buf = [0u8; 256];
        let t = tuple("10.10.0.2", "10.10.0.3");
        let n = write(&mut buf, &L2A, &t, &L4::Udp, 60, None);
        let mut want = build::Udp::new("10.10.0.2:1234", "10.10.0.3:80")
            .payload(vec![0u8; 18])
            .ip_id(0)
            .frame();
        // The builder leaves DF clear and uses its own MACs: compare from the IP header's
        // addresses on, and the UDP header and payload.
        let ours = &buf[..n];
        assert_eq!(ours.len(), want.len());
        assert_eq!(&ours[26..34], &want[26..34], "addresses");
        want.truncate(n);
        assert_eq!(&ours[34..], &want[34..], "UDP header, checksum and payload");
    }
}
