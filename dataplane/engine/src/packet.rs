//! The owned, `Copy` description of one parsed frame that the engine works with.
//!
//! [`crate::wire::parse`] fills a [`PacketMeta`] from bytes; conntrack and the classifier see
//! only this, never the bytes (except the FTP helper, which reads the L4 payload through the
//! offsets here). Addresses are 16 bytes; IPv4 addresses are stored IPv4-mapped
//! (`::ffff:a.b.c.d`), so both families share one representation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::reason::InvalidReason;

/// IP version of a packet.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    zerocopy::TryFromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
#[repr(u8)]
pub enum IpFamily {
    #[default]
    V4 = 4,
    V6 = 6,
}

/// A 16-byte address; IPv4 is IPv4-mapped.
pub type Addr = [u8; 16];

/// The IPv4-mapped form of an IPv4 address.
pub fn v4_mapped(a: [u8; 4]) -> Addr {
    let mut out = [0u8; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12..].copy_from_slice(&a);
    out
}

/// An address back as `IpAddr`, given its family.
pub fn to_ip(family: IpFamily, a: &Addr) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15])),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(*a)),
    }
}

/// TCP flag bits as in the header's low flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// TCP header fields conntrack needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpMeta {
    pub seq: u32,
    pub ack: u32,
    /// Raw (unscaled) window.
    pub window: u16,
    /// FIN..CWR bits (the low byte of the flags field).
    pub flags: u8,
    /// Header length in bytes (data offset × 4).
    pub header_len: u8,
    /// Window-scale option shift, if the option is present (only meaningful on SYN).
    pub wscale: Option<u8>,
    /// SACK-permitted option present.
    pub sack_perm: bool,
}

/// ICMP / ICMPv6 header fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmpMeta {
    pub ty: u8,
    pub code: u8,
    /// Identifier of echo (and other query) messages; 0 otherwise.
    pub id: u16,
    /// Whether the type is an error that quotes an offending packet
    /// (v4: 3, 4, 5, 11, 12; v6: 1-4).
    pub is_error: bool,
}

/// The tuple of the packet quoted inside an ICMP error, in the quoted packet's own
/// direction (as the offending packet was sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InnerTuple {
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    /// Ports for TCP/UDP/SCTP/UDP-Lite/DCCP; 0 otherwise.
    pub sport: u16,
    pub dport: u16,
    /// For a quoted ICMP query: its type and id.
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
}

/// Fragment position of an IP packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fragment {
    #[default]
    None,
    /// Offset 0 with more fragments: L4 header present.
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// Everything the engine needs from one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Outer VLAN id when the frame is 802.1Q/802.1ad tagged.
    pub vlan: Option<u16>,
    /// EtherType after any VLAN tags (0x0800, 0x86dd, 0x0806, ...).
    pub ethertype: u16,
    /// Whether this is an IPv4 or IPv6 packet the engine tracks (false: ARP and other
    /// non-IP frames, which are passed without tracking).
    pub is_ip: bool,
    pub family: IpFamily,
    pub src: Addr,
    pub dst: Addr,
    /// L4 protocol after IPv6 extension headers.
    pub proto: u8,
    /// IPv4 identification, or the IPv6 flow label.
    pub ip_id: u32,
    pub ttl: u8,
    pub fragment: Fragment,
    /// Offset of the IP header in the frame.
    pub l3_offset: u16,
    /// Offset of the L4 header in the frame.
    pub l4_offset: u16,
    /// L4 header + payload length, from the IP header (Ethernet padding excluded).
    pub l4_len: u16,
    /// Ports for TCP/UDP/SCTP/UDP-Lite/DCCP; 0 otherwise.
    pub sport: u16,
    pub dport: u16,
    pub tcp: TcpMeta,
    pub icmp: IcmpMeta,
    /// For ICMP errors: the quoted packet's tuple, when enough of it is quoted.
    pub inner: Option<InnerTuple>,
    /// Offset and length of the L4 payload in the frame (after the TCP/UDP header).
    pub payload_offset: u16,
    pub payload_len: u16,
    /// Set when the L4 header is unusable (truncated, bad TCP data offset): conntrack then
    /// marks the packet INVALID with this reason, as the kernel does when it cannot get a
    /// tuple.
    pub l4_invalid: Option<InvalidReason>,
}

impl PacketMeta {
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.family, &self.src)
    }

    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.family, &self.dst)
    }

    /// The L4 payload bytes of `frame` (the frame this meta was parsed from).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = usize::from(self.payload_offset);
        let end = start + usize::from(self.payload_len);
        frame.get(start..end).unwrap_or(&[])
    }
}
