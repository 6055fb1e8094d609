//! A logged packet as the kernel's LOG target writes it (`nf_log_syslog.c`): the prefix,
//! then `IN= OUT= MAC=`, the IP header's fields, the L4 header's, each field followed by a
//! space. Off the packet path: it allocates its line.
//!
//! ```text
//! drop: IN=veth-lan OUT=veth-wan MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 SRC=10.0.0.2 DST=10.1.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4321 DF PROTO=TCP SPT=40000 DPT=23 WINDOW=64240 RES=0x00 SYN URGP=0
//! ```
//!
//! Not written: `PHYSIN=`/`PHYSOUT=` (the ports are the interfaces), `UID=`/`GID=`
//! (forwarded packets have no socket), and the quoted packet of an ICMP error, of which
//! only the type and code are.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{extras, LogRecord};
use crate::packet::IpFamily;
use crate::wire::proto;

/// The line for `r`, its ports' interfaces named by `interface(port)`.
pub fn line(r: &LogRecord, interface: impl Fn(u8) -> String) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(&String::from_utf8_lossy(r.prefix()));
    let out = r.out_port.map(&interface).unwrap_or_default();
    let _ = write!(s, "IN={} OUT={} ", interface(r.in_port), out);
    let f = r.snap();
    let l3 = usize::from(r.l3_offset);
    if let Some(mac) = f.get(..12) {
        // The MAC header as the kernel prints it: destination, source, EtherType.
        s.push_str("MAC=");
        let etype = f.get(l3.saturating_sub(2)..l3).unwrap_or_default();
        for (i, b) in mac.iter().chain(etype).enumerate() {
            let _ = write!(s, "{}{b:02x}", if i == 0 { "" } else { ":" });
        }
        s.push(' ');
    }
    let l4 = match r.family {
        IpFamily::V4 => ipv4(&mut s, r, f.get(l3..).unwrap_or_default()),
        IpFamily::V6 => ipv6(&mut s, r, f.get(l3..).unwrap_or_default()),
    };
    if l4 {
        transport(
            &mut s,
            r,
            f.get(usize::from(r.l4_offset)..).unwrap_or_default(),
        );
    }
    if r.mark != 0 {
        let _ = write!(s, "MARK={:#x} ", r.mark);
    }
    s
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn hex_opts(s: &mut String, opts: &[u8]) {
    s.push_str("OPT (");
    for b in opts {
        let _ = write!(s, "{b:02X}");
    }
    s.push_str(") ");
}

/// The IPv4 header's fields; whether the L4 header is there to print (the first fragment).
fn ipv4(s: &mut String, r: &LogRecord, h: &[u8]) -> bool {
    let (Some(a), Some(b)) = (h.get(12..16), h.get(16..20)) else {
        s.push_str("TRUNCATED ");
        return false;
    };
    let addr = |x: &[u8]| Ipv4Addr::new(x[0], x[1], x[2], x[3]);
    let tos = h.get(1).copied().unwrap_or(0);
    let frag = be16(h, 6).unwrap_or(0);
    let _ = write!(
        s,
        "SRC={} DST={} LEN={} TOS=0x{:02X} PREC=0x{:02X} TTL={} ID={} ",
        addr(a),
        addr(b),
        be16(h, 2).unwrap_or(0),
        tos & 0x1e,
        tos & 0xe0,
        h.get(8).copied().unwrap_or(0),
        be16(h, 4).unwrap_or(0),
    );
    for (bit, name) in [(0x8000, "CE"), (0x4000, "DF"), (0x2000, "MF")] {
        if frag & bit != 0 {
            let _ = write!(s, "{name} ");
        }
    }
    let offset = frag & 0x1fff;
    if offset != 0 {
        let _ = write!(s, "FRAG:{offset} ");
    }
    let ihl = usize::from(h.first().copied().unwrap_or(0x45) & 0x0f) * 4;
    if r.extras & extras::IP_OPTIONS != 0 && ihl > 20 {
        hex_opts(s, h.get(20..ihl).unwrap_or_default());
    }
    if offset != 0 {
        let _ = write!(s, "PROTO={} ", proto_name(r.proto, r.family));
        return false;
    }
    true
}

fn ipv6(s: &mut String, r: &LogRecord, h: &[u8]) -> bool {
    let (Some(a), Some(b)) = (h.get(8..24), h.get(24..40)) else {
        s.push_str("TRUNCATED ");
        return false;
    };
    // `%pI6`: eight groups of four hex digits, nothing compressed.
    let addr = |x: &[u8]| {
        let a = Ipv6Addr::from(<[u8; 16]>::try_from(x).unwrap_or_default());
        let g: Vec<String> = a.segments().iter().map(|w| format!("{w:04x}")).collect();
        g.join(":")
    };
    let word = be32(h, 0).unwrap_or(0);
    let _ = write!(
        s,
        "SRC={} DST={} LEN={} TC={} HOPLIMIT={} FLOWLBL={} ",
        addr(a),
        addr(b),
        usize::from(be16(h, 4).unwrap_or(0)) + 40,
        (word >> 20) & 0xff,
        h.get(7).copied().unwrap_or(0),
        word & 0x000f_ffff,
    );
    let ext = usize::from(r.l4_offset)
        .saturating_sub(usize::from(r.l3_offset))
        .saturating_sub(40);
    if r.extras & extras::IP_OPTIONS != 0 && ext > 0 {
        hex_opts(s, h.get(40..40 + ext).unwrap_or_default());
    }
    true
}

fn proto_name(p: u8, family: IpFamily) -> String {
    match (p, family) {
        (proto::TCP, _) => "TCP".into(),
        (proto::UDP, _) => "UDP".into(),
        (proto::UDPLITE, _) => "UDPLITE".into(),
        (proto::ICMP, IpFamily::V4) => "ICMP".into(),
        (proto::ICMPV6, IpFamily::V6) => "ICMPv6".into(),
        _ => p.to_string(),
    }
}

fn transport(s: &mut String, r: &LogRecord, h: &[u8]) {
    let _ = write!(s, "PROTO={} ", proto_name(r.proto, r.family));
    match r.proto {
        proto::TCP => tcp(s, r, h),
        proto::UDP | proto::UDPLITE => match (be16(h, 0), be16(h, 2), be16(h, 4)) {
            (Some(sp), Some(dp), Some(len)) => {
                let _ = write!(s, "SPT={sp} DPT={dp} LEN={len} ");
            }
            _ => {
                let _ = write!(s, "INCOMPLETE [{} bytes] ", h.len());
            }
        },
        proto::ICMP | proto::ICMPV6 => {
            let (Some(&t), Some(&c)) = (h.first(), h.get(1)) else {
                let _ = write!(s, "INCOMPLETE [{} bytes] ", h.len());
                return;
            };
            let _ = write!(s, "TYPE={t} CODE={c} ");
            let echo = match r.family {
                IpFamily::V4 => t == 0 || t == 8,
                IpFamily::V6 => t == 128 || t == 129,
            };
            if echo {
                if let (Some(id), Some(seq)) = (be16(h, 4), be16(h, 6)) {
                    let _ = write!(s, "ID={id} SEQ={seq} ");
                }
            }
            if r.family == IpFamily::V4 && t == 3 && c == 4 {
                if let Some(mtu) = be16(h, 6) {
                    let _ = write!(s, "MTU={mtu} ");
                }
            }
        }
        _ => {}
    }
}

fn tcp(s: &mut String, r: &LogRecord, h: &[u8]) {
    let (Some(sp), Some(dp)) = (be16(h, 0), be16(h, 2)) else {
        let _ = write!(s, "INCOMPLETE [{} bytes] ", h.len());
        return;
    };
    let _ = write!(s, "SPT={sp} DPT={dp} ");
    let (Some(seq), Some(ack), Some(win), Some(urg)) =
        (be32(h, 4), be32(h, 8), be16(h, 14), be16(h, 18))
    else {
        return;
    };
    if r.extras & extras::TCP_SEQUENCE != 0 {
        let _ = write!(s, "SEQ={seq} ACK={ack} ");
    }
    let off = h.get(12).copied().unwrap_or(0x50);
    let flags = h.get(13).copied().unwrap_or(0);
    // The four reserved bits as the kernel shows them: `(flag word & 0x0F000000) >> 22`.
    let _ = write!(s, "WINDOW={win} RES=0x{:02x} ", (off & 0x0f) << 2);
    for (bit, name) in [
        (0x80, "CWR"),
        (0x40, "ECE"),
        (0x20, "URG"),
        (0x10, "ACK"),
        (0x08, "PSH"),
        (0x04, "RST"),
        (0x02, "SYN"),
        (0x01, "FIN"),
    ] {
        if flags & bit != 0 {
            let _ = write!(s, "{name} ");
        }
    }
    let _ = write!(s, "URGP={urg} ");
    let doff = usize::from(off >> 4) * 4;
    if r.extras & extras::TCP_OPTIONS != 0 && doff > 20 {
        hex_opts(s, h.get(20..doff).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogPlace, LogRing};
    use config::log::{LogLevel, LogOptions};

    fn logged(frame: &[u8], opts: &LogOptions) -> String {
        let m = crate::wire::parse(frame).unwrap();
        let mut ring = LogRing::default();
        let at = LogPlace {
            time: 1,
            stage: crate::pipeline::StageId::Forward,
            in_port: 0,
            out_port: Some(1),
        };
        ring.record(at, 3, opts, &m, frame, 0);
        let r = *ring.drain().next().unwrap();
        assert!(ring.is_empty());
        line(&r, |p| ["veth-lan", "veth-wan"][usize::from(p)].to_string())
    }

    /// An Ethernet + IPv4 + TCP SYN frame with one MSS option.
    fn syn() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut ip = vec![
            0x45, 0x10, 0, 44, 0x10, 0xe1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 1, 0, 2,
        ];
        let tcp = [
            0x9c, 0x40, 0, 23, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5,
            0xb4,
        ];
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
        ip.extend_from_slice(&tcp);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn a_tcp_syn_reads_as_the_kernel_writes_it() {
        let opts = LogOptions {
            prefix: Some("drop: ".into()),
            level: LogLevel::Warning,
            tcp_sequence: true,
            tcp_options: true,
            ip_options: false,
        };
        assert_eq!(
            logged(&syn(), &opts),
            "drop: IN=veth-lan OUT=veth-wan MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 \
             SRC=10.0.0.2 DST=10.1.0.2 LEN=44 TOS=0x10 PREC=0x00 TTL=64 ID=4321 DF PROTO=TCP \
             SPT=40000 DPT=23 SEQ=1 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B4) "
        );
        // Without the extras: no sequence numbers, no options.
        let plain = logged(&syn(), &LogOptions::default());
        assert!(
            plain.starts_with("IN=veth-lan OUT=veth-wan MAC="),
            "{plain}"
        );
        assert!(
            plain.ends_with("WINDOW=64240 RES=0x00 SYN URGP=0 "),
            "{plain}"
        );
    }

    #[test]
    fn a_ring_that_is_full_counts_what_it_loses() {
        let f = syn();
        let m = crate::wire::parse(&f).unwrap();
        let mut ring = LogRing::default();
        let at = LogPlace {
            time: 1,
            stage: crate::pipeline::StageId::Forward,
            in_port: 0,
            out_port: None,
        };
        for _ in 0..super::super::RING + 3 {
            ring.record(at, 0, &LogOptions::default(), &m, &f, 0);
        }
        assert_eq!((ring.logged, ring.lost), (super::super::RING as u64, 3));
        assert_eq!(ring.drain().count(), super::super::RING);
        ring.record(at, 0, &LogOptions::default(), &m, &f, 0);
        assert_eq!(ring.drain().count(), 1);
    }
}
