//! Builders of valid frames (correct lengths and checksums) for tests, benches and fuzz
//! seeds. Not on the hot path: these allocate, and panic on misuse (an unparsable address,
//! mixed address families).
//!
//! ```
//! use engine::packet::tcp_flags::{ACK, SYN};
//! use engine::wire::{build, parse};
//!
//! let syn = build::Tcp { seq: 1000, wscale: Some(7), ..build::Tcp::new("10.0.0.2:40000", "10.0.0.3:80", SYN) }
//!     .vlan(10)
//!     .frame();
//! let m = parse(&syn).unwrap();
//! assert_eq!((m.sport, m.dport, m.tcp.flags, m.tcp.wscale), (40000, 80, SYN, Some(7)));
//!
//! let dns = build::Udp::new("[fd00::2]:5353", "[fd00::3]:53").payload(*b"query").frame();
//! let ping = build::Icmp::echo_request("10.0.0.2", "10.0.0.3", 7, 1).frame();
//! let unreach = build::Icmp::port_unreachable("10.0.0.3", "10.0.0.2", &build::Udp::new("10.0.0.2:1000", "10.0.0.3:53").frame()).frame();
//! # let _ = (dns, ping, unreach, ACK);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{checksum, ethernet, ipv6, proto};

/// Source MAC of built frames (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built frames.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Something that names a transport endpoint: `"10.0.0.2:80"`, `"[fd00::2]:80"`, a
/// `SocketAddr`, or an `(ip, port)` pair.
pub trait ToEndpoint {
    fn endpoint(self) -> SocketAddr;
}

impl ToEndpoint for &str {
    fn endpoint(self) -> SocketAddr {
        self.parse()
            .unwrap_or_else(|e| panic!("bad endpoint {self:?}: {e}"))
    }
}
impl ToEndpoint for SocketAddr {
    fn endpoint(self) -> SocketAddr {
        self
    }
}
impl<I: Into<IpAddr>> ToEndpoint for (I, u16) {
    fn endpoint(self) -> SocketAddr {
        SocketAddr::new(self.0.into(), self.1)
    }
}

/// Something that names a host: `"10.0.0.2"`, `"fd00::2"`, or an address.
pub trait ToHost {
    fn host(self) -> IpAddr;
}

impl ToHost for &str {
    fn host(self) -> IpAddr {
        self.parse()
            .unwrap_or_else(|e| panic!("bad address {self:?}: {e}"))
    }
}
impl ToHost for IpAddr {
    fn host(self) -> IpAddr {
        self
    }
}
impl ToHost for Ipv4Addr {
    fn host(self) -> IpAddr {
        IpAddr::V4(self)
    }
}
impl ToHost for Ipv6Addr {
    fn host(self) -> IpAddr {
        IpAddr::V6(self)
    }
}

/// Ethernet and IP header settings shared by all builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpOpts {
    pub ttl: u8,
    /// IPv4 identification, or the IPv6 flow label (20 bits).
    pub id: u32,
    /// One 802.1Q tag with this VLAN id.
    pub vlan: Option<u16>,
    /// IPv4 don't-fragment flag.
    pub dont_frag: bool,
    /// Fragment offset in bytes (a multiple of 8). With `more_frags`, IPv4 sets the
    /// header fields; IPv6 adds a fragment extension header.
    pub frag_offset: u16,
    pub more_frags: bool,
}

impl Default for IpOpts {
    fn default() -> Self {
        IpOpts {
            ttl: 64,
            id: 0,
            vlan: None,
            dont_frag: false,
            frag_offset: 0,
            more_frags: false,
        }
    }
}

/// A TCP segment. Options are written MSS, SACK-permitted, window scale (as Linux orders
/// them), then `extra_options` raw, padded with EOL to a multiple of 4 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub extra_options: Vec<u8>,
    pub payload: Vec<u8>,
    pub ip: IpOpts,
}

impl Tcp {
    /// A segment with `flags`, seq/ack 0 and window 65535.
    pub fn new(src: impl ToEndpoint, dst: impl ToEndpoint, flags: u8) -> Self {
        Tcp {
            src: src.endpoint(),
            dst: dst.endpoint(),
            seq: 0,
            ack: 0,
            flags,
            window: 65535,
            mss: None,
            wscale: None,
            sack_perm: false,
            extra_options: Vec::new(),
            payload: Vec::new(),
            ip: IpOpts::default(),
        }
    }

    /// The TCP header and payload, checksum included.
    pub fn segment(&self) -> Vec<u8> {
        let mut opts = Vec::new();
        if let Some(mss) = self.mss {
            opts.extend_from_slice(&[2, 4]);
            opts.extend_from_slice(&mss.to_be_bytes());
        }
        if self.sack_perm {
            opts.extend_from_slice(&[4, 2]);
        }
        if let Some(ws) = self.wscale {
            opts.extend_from_slice(&[1, 3, 3, ws]);
        }
        opts.extend_from_slice(&self.extra_options);
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let header_len = 20 + opts.len();
        assert!(header_len <= 60, "TCP options longer than 40 bytes");
        let mut s = Vec::with_capacity(header_len + self.payload.len());
        s.extend_from_slice(&self.src.port().to_be_bytes());
        s.extend_from_slice(&self.dst.port().to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push((header_len as u8 / 4) << 4);
        s.push(self.flags);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        s.extend_from_slice(&opts);
        s.extend_from_slice(&self.payload);
        set_l4_checksum(&mut s, 16, self.src.ip(), self.dst.ip(), proto::TCP);
        s
    }

    /// The whole Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        ip_frame(
            self.src.ip(),
            self.dst.ip(),
            proto::TCP,
            &self.segment(),
            &self.ip,
        )
    }
}

/// A UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
    /// Write checksum 0 ("none"; meaningful for IPv4).
    pub no_checksum: bool,
    pub ip: IpOpts,
}

impl Udp {
    pub fn new(src: impl ToEndpoint, dst: impl ToEndpoint) -> Self {
        Udp {
            src: src.endpoint(),
            dst: dst.endpoint(),
            payload: Vec::new(),
            no_checksum: false,
            ip: IpOpts::default(),
        }
    }

    /// The UDP header and payload, checksum included.
    pub fn datagram(&self) -> Vec<u8> {
        let len = u16::try_from(8 + self.payload.len()).expect("UDP payload too long");
        let mut d = Vec::with_capacity(usize::from(len));
        d.extend_from_slice(&self.src.port().to_be_bytes());
        d.extend_from_slice(&self.dst.port().to_be_bytes());
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&self.payload);
        if !self.no_checksum {
            set_l4_checksum(&mut d, 6, self.src.ip(), self.dst.ip(), proto::UDP);
            // RFC 768: a computed zero is sent as all ones.
            if d[6..8] == [0, 0] {
                d[6..8].copy_from_slice(&[0xff, 0xff]);
            }
        }
        d
    }

    pub fn frame(&self) -> Vec<u8> {
        ip_frame(
            self.src.ip(),
            self.dst.ip(),
            proto::UDP,
            &self.datagram(),
            &self.ip,
        )
    }
}

/// An ICMP message (ICMPv6 when the addresses are IPv6): type, code, the 4 bytes after the
/// checksum (`rest`: id and sequence, or unused/MTU/pointer), then `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ty: u8,
    pub code: u8,
    pub rest: [u8; 4],
    pub body: Vec<u8>,
    pub ip: IpOpts,
}

/// How much of the offending packet an ICMP error quotes: the kernel fills the error up to
/// 576 bytes (IPv4, RFC 1812 §4.3.2.3) or 1280 (IPv6, RFC 4443 §2.4(c)).
const QUOTE_MAX_V4: usize = 576 - 20 - 8;
const QUOTE_MAX_V6: usize = 1280 - 40 - 8;

impl Icmp {
    pub fn new(src: impl ToHost, dst: impl ToHost, ty: u8, code: u8) -> Self {
        Icmp {
            src: src.host(),
            dst: dst.host(),
            ty,
            code,
            rest: [0; 4],
            body: Vec::new(),
            ip: IpOpts::default(),
        }
    }

    /// Echo request (type 8, or 128 for IPv6).
    pub fn echo_request(src: impl ToHost, dst: impl ToHost, id: u16, seq: u16) -> Self {
        let src = src.host();
        let ty = if src.is_ipv4() { 8 } else { 128 };
        Self::echo(src, dst.host(), ty, id, seq)
    }

    /// Echo reply (type 0, or 129 for IPv6).
    pub fn echo_reply(src: impl ToHost, dst: impl ToHost, id: u16, seq: u16) -> Self {
        let src = src.host();
        let ty = if src.is_ipv4() { 0 } else { 129 };
        Self::echo(src, dst.host(), ty, id, seq)
    }

    fn echo(src: IpAddr, dst: IpAddr, ty: u8, id: u16, seq: u16) -> Self {
        let mut m = Self::new(src, dst, ty, 0);
        m.rest[..2].copy_from_slice(&id.to_be_bytes());
        m.rest[2..].copy_from_slice(&seq.to_be_bytes());
        m
    }

    /// An error of `ty`/`code` from `src` to `dst` quoting the IP packet inside `frame`
    /// (Ethernet and VLAN headers stripped, Ethernet padding excluded), as much as a real
    /// error would carry. Truncate `body` to test short quotes.
    pub fn error(src: impl ToHost, dst: impl ToHost, ty: u8, code: u8, frame: &[u8]) -> Self {
        let mut m = Self::new(src, dst, ty, code);
        let max = if m.src.is_ipv4() {
            QUOTE_MAX_V4
        } else {
            QUOTE_MAX_V6
        };
        let q = ip_packet(frame);
        m.body = q[..q.len().min(max)].to_vec();
        m
    }

    /// Port unreachable (3/3, or 1/4 for IPv6) quoting `frame`.
    pub fn port_unreachable(src: impl ToHost, dst: impl ToHost, frame: &[u8]) -> Self {
        let src = src.host();
        let (ty, code) = if src.is_ipv4() { (3, 3) } else { (1, 4) };
        Self::error(src, dst, ty, code, frame)
    }

    /// The ICMP message, checksum included.
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + self.body.len());
        m.extend_from_slice(&[self.ty, self.code, 0, 0]);
        m.extend_from_slice(&self.rest);
        m.extend_from_slice(&self.body);
        set_l4_checksum(&mut m, 2, self.src, self.dst, self.proto());
        m
    }

    fn proto(&self) -> u8 {
        if self.src.is_ipv4() {
            proto::ICMP
        } else {
            proto::ICMPV6
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        ip_frame(self.src, self.dst, self.proto(), &self.message(), &self.ip)
    }
}

/// Any other IP protocol: `payload` is the L4 bytes as given (no checksum computed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: Vec<u8>,
    pub ip: IpOpts,
}

impl Raw {
    pub fn new(src: impl ToHost, dst: impl ToHost, proto: u8) -> Self {
        Raw {
            src: src.host(),
            dst: dst.host(),
            proto,
            payload: Vec::new(),
            ip: IpOpts::default(),
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        ip_frame(self.src, self.dst, self.proto, &self.payload, &self.ip)
    }
}

macro_rules! ip_setters {
    ($($t:ty, $payload:ident;)*) => {$(
        impl $t {
            /// Tag the frame with this 802.1Q VLAN id.
            pub fn vlan(mut self, vid: u16) -> Self {
                self.ip.vlan = Some(vid);
                self
            }
            pub fn ttl(mut self, ttl: u8) -> Self {
                self.ip.ttl = ttl;
                self
            }
            /// IPv4 identification / IPv6 flow label.
            pub fn ip_id(mut self, id: u32) -> Self {
                self.ip.id = id;
                self
            }
            pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
                self.$payload = payload.into();
                self
            }
        }
    )*};
}

ip_setters! {
    Tcp, payload;
    Udp, payload;
    Icmp, body;
    Raw, payload;
}

/// A broadcast ARP request (who-has `target` tell `sender`).
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethernet::ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Ethernet + IP header around `l4` (taken as is).
pub fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8], ip: &IpOpts) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + 48 + l4.len());
    out.extend_from_slice(&DST_MAC);
    out.extend_from_slice(&SRC_MAC);
    if let Some(vid) = ip.vlan {
        out.extend_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
        out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
            let total = u16::try_from(20 + l4.len()).expect("IPv4 packet too long");
            let mut flags = ip.frag_offset / 8;
            if ip.more_frags {
                flags |= 0x2000;
            }
            if ip.dont_frag {
                flags |= 0x4000;
            }
            let mut hdr = [0u8; 20];
            hdr[0] = 0x45;
            hdr[2..4].copy_from_slice(&total.to_be_bytes());
            hdr[4..6].copy_from_slice(&(ip.id as u16).to_be_bytes());
            hdr[6..8].copy_from_slice(&flags.to_be_bytes());
            hdr[8] = ip.ttl;
            hdr[9] = proto;
            hdr[12..16].copy_from_slice(&s.octets());
            hdr[16..20].copy_from_slice(&d.octets());
            let sum = checksum::checksum(&hdr);
            hdr[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend_from_slice(&hdr);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
            let fragmented = ip.frag_offset != 0 || ip.more_frags;
            let ext = if fragmented { 8 } else { 0 };
            let plen = u16::try_from(ext + l4.len()).expect("IPv6 payload too long");
            let label = ip.id & 0x000f_ffff;
            out.extend_from_slice(&(0x6000_0000 | label).to_be_bytes());
            out.extend_from_slice(&plen.to_be_bytes());
            out.push(if fragmented {
                ipv6::NEXTHDR_FRAGMENT
            } else {
                proto
            });
            out.push(ip.ttl);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            if fragmented {
                let off = (ip.frag_offset & !7) | u16::from(ip.more_frags);
                out.extend_from_slice(&[proto, 0]);
                out.extend_from_slice(&off.to_be_bytes());
                out.extend_from_slice(&ip.id.to_be_bytes());
            }
        }
        _ => panic!("source {src} and destination {dst} are of different families"),
    }
    out.extend_from_slice(l4);
    out
}

/// The IP packet inside an Ethernet frame: VLAN tags skipped, Ethernet padding cut when the
/// IP header can be read.
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    let Ok(eth) = ethernet::parse(frame) else {
        return &[];
    };
    let ip = frame.get(eth.l3_offset..).unwrap_or(&[]);
    let len = match (eth.ethertype, ip) {
        (ethernet::ETHERTYPE_IPV4, [_, _, a, b, ..]) => usize::from(u16::from_be_bytes([*a, *b])),
        (ethernet::ETHERTYPE_IPV6, [_, _, _, _, a, b, ..]) => {
            40 + usize::from(u16::from_be_bytes([*a, *b]))
        }
        _ => ip.len(),
    };
    &ip[..len.min(ip.len())]
}

/// Writes the L4 checksum at `at` of `l4` (whose checksum field is zero), with the
/// pseudo-header for TCP/UDP/ICMPv6, without for ICMPv4.
fn set_l4_checksum(l4: &mut [u8], at: usize, src: IpAddr, dst: IpAddr, proto: u8) {
    let len = u32::try_from(l4.len()).expect("L4 too long");
    let pseudo = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) if proto == proto::ICMP => 0,
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_v4(s.octets(), d.octets(), proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_v6(&s.octets(), &d.octets(), proto, len),
        _ => panic!("source {src} and destination {dst} are of different families"),
    };
    let c = !checksum::fold(pseudo + checksum::sum(l4));
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Flips bits of the IPv4 header checksum (no-op for other frames).
pub fn corrupt_ip_checksum(frame: &mut [u8]) {
    if let Ok(eth) = ethernet::parse(frame) {
        if eth.ethertype == ethernet::ETHERTYPE_IPV4 {
            if let Some(b) = frame.get_mut(eth.l3_offset + 10) {
                *b ^= 0x5a;
            }
        }
    }
}

/// Flips bits of the TCP/UDP/ICMP/ICMPv6 checksum field of a frame that parses.
pub fn corrupt_l4_checksum(frame: &mut [u8]) {
    let Ok(m) = super::parse(frame) else {
        return;
    };
    let at = match m.proto {
        proto::TCP => 16,
        proto::UDP | proto::UDPLITE => 6,
        proto::ICMP | proto::ICMPV6 => 2,
        _ => return,
    };
    if let Some(b) = frame.get_mut(usize::from(m.l4_offset) + at) {
        *b ^= 0x5a;
    }
}

/// Appends zero bytes up to the 60-byte Ethernet minimum (what a NIC delivers for short
/// frames); the parser must ignore them.
pub fn pad_to_min(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}
