//! conntrackd's sync messages, byte for byte (conntrack-tools 1.4.7: `include/network.h`,
//! `src/build.c`, `src/parse.c`), read and written without I/O.
//!
//! A datagram holds one or more messages back to back. A message is an 8-byte header —
//! version (1) in the high nibble and type in the low nibble of byte 0, flags, the u16 length
//! of the whole message, a u32 sequence number, all in network order — then, for the
//! conntrack and expectation types, attributes `{u16 len (4 + payload, padding not counted),
//! u16 type}` each padded to 4 bytes; control messages (type 10) with ACK, NACK or RESYNC
//! carry `from` and `to` (u32) after the header.
//!
//! The reader is conntrackd's: a message whose attribute has an unknown type or a length other
//! than its type's is refused whole ([`Malformed`]), and so is one whose length runs past
//! the datagram; nothing of a refused message is used. Quirk kept from conntrackd: the ICMP
//! id (and NAT ports) travel byte-swapped, little-endian between x86 peers (conntrackd swaps
//! a value that is already in network order).

use std::fmt;

/// The protocol version in every header.
pub const VERSION: u8 = 1;
/// Header bytes.
pub const HEADER_LEN: usize = 8;
/// A control message with ACK, NACK or RESYNC: header, `from`, `to`.
pub const ACK_LEN: usize = 16;

/// Message types (the header's low nibble).
pub mod kind {
    pub const CT_NEW: u8 = 0;
    pub const CT_UPD: u8 = 1;
    pub const CT_DEL: u8 = 2;
    pub const EXP_NEW: u8 = 3;
    pub const EXP_UPD: u8 = 4;
    pub const EXP_DEL: u8 = 5;
    pub const CTL: u8 = 10;
}

/// Header flags.
pub mod flag {
    pub const RESYNC: u8 = 1 << 1;
    pub const NACK: u8 = 1 << 2;
    pub const ACK: u8 = 1 << 3;
    pub const ALIVE: u8 = 1 << 4;
    pub const HELLO: u8 = 1 << 5;
    pub const HELLO_BACK: u8 = 1 << 6;
}

/// Conntrack attribute types (`enum nta_attr`).
pub mod attr {
    pub const IPV4: u16 = 0;
    pub const IPV6: u16 = 1;
    pub const L4PROTO: u16 = 2;
    pub const PORT: u16 = 3;
    pub const TCP_STATE: u16 = 4;
    pub const STATUS: u16 = 5;
    pub const TIMEOUT: u16 = 6;
    pub const MARK: u16 = 7;
    pub const MASTER_IPV4: u16 = 8;
    pub const MASTER_IPV6: u16 = 9;
    pub const MASTER_L4PROTO: u16 = 10;
    pub const MASTER_PORT: u16 = 11;
    pub const SNAT_IPV4: u16 = 12;
    pub const DNAT_IPV4: u16 = 13;
    pub const SPAT_PORT: u16 = 14;
    pub const DPAT_PORT: u16 = 15;
    pub const NAT_SEQ_ADJ: u16 = 16;
    pub const SCTP_STATE: u16 = 17;
    pub const SCTP_VTAG_ORIG: u16 = 18;
    pub const SCTP_VTAG_REPL: u16 = 19;
    pub const DCCP_STATE: u16 = 20;
    pub const DCCP_ROLE: u16 = 21;
    pub const ICMP_TYPE: u16 = 22;
    pub const ICMP_CODE: u16 = 23;
    pub const ICMP_ID: u16 = 24;
    pub const TCP_WSCALE_ORIG: u16 = 25;
    pub const TCP_WSCALE_REPL: u16 = 26;
    pub const HELPER_NAME: u16 = 27;
    pub const LABELS: u16 = 28;
    pub const SNAT_IPV6: u16 = 29;
    pub const DNAT_IPV6: u16 = 30;
    pub const SYNPROXY: u16 = 31;
    pub const ZONE: u16 = 32;
    /// One past the last.
    pub const MAX: u16 = 33;
}

/// `(exact length, or 0 with a maximum)` of each conntrack attribute, header included, as
/// conntrackd's parser checks them.
const SIZES: [(u16, u16); attr::MAX as usize] = [
    (12, 0),   // IPV4: src, dst
    (36, 0),   // IPV6
    (5, 0),    // L4PROTO
    (8, 0),    // PORT: sport, dport
    (5, 0),    // TCP_STATE
    (8, 0),    // STATUS
    (8, 0),    // TIMEOUT
    (8, 0),    // MARK
    (12, 0),   // MASTER_IPV4
    (36, 0),   // MASTER_IPV6
    (5, 0),    // MASTER_L4PROTO
    (8, 0),    // MASTER_PORT
    (8, 0),    // SNAT_IPV4
    (8, 0),    // DNAT_IPV4
    (6, 0),    // SPAT_PORT
    (6, 0),    // DPAT_PORT
    (28, 0),   // NAT_SEQ_ADJ
    (5, 0),    // SCTP_STATE
    (8, 0),    // SCTP_VTAG_ORIG
    (8, 0),    // SCTP_VTAG_REPL
    (5, 0),    // DCCP_STATE
    (5, 0),    // DCCP_ROLE
    (5, 0),    // ICMP_TYPE
    (5, 0),    // ICMP_CODE
    (6, 0),    // ICMP_ID
    (5, 0),    // TCP_WSCALE_ORIG
    (5, 0),    // TCP_WSCALE_REPL
    (0, 16),   // HELPER_NAME: NUL-terminated, NFCT_HELPER_NAME_MAX with the header
    (0, 1028), // LABELS: up to 4096 bits
    (20, 0),   // SNAT_IPV6
    (20, 0),   // DNAT_IPV6
    (16, 0),   // SYNPROXY: isn, its, tsoff
    (6, 0),    // ZONE
];

/// Why a message was refused; `at` is its byte offset in the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub at: usize,
    pub why: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "byte {}: {}", self.at, self.why)
    }
}

impl std::error::Error for Malformed {}

/// A message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub flags: u8,
    pub seq: u32,
}

/// An address pair of a tuple: IPv4 (`V4`) or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addrs {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

/// A conntrack entry as a message carries it: the original tuple and what conntrackd sends
/// beside it. Every field but the tuple's is optional, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtAttrs {
    pub addrs: Option<Addrs>,
    pub l4proto: Option<u8>,
    /// Source and destination port (TCP, UDP, UDP-Lite, SCTP, DCCP).
    pub ports: Option<(u16, u16)>,
    pub tcp_state: Option<u8>,
    /// The kernel's `IPS_*` bits.
    pub status: Option<u32>,
    /// Seconds left.
    pub timeout: Option<u32>,
    pub mark: Option<u32>,
    pub icmp: IcmpAttrs,
    pub wscale: (Option<u8>, Option<u8>),
    pub helper: Option<String>,
    pub zone: Option<u16>,
    /// The expectation's master (a RELATED connection's).
    pub master: Option<Master>,
    /// Any NAT attribute: a NAT'd connection, which Statewall cannot hold.
    pub nat: bool,
    /// SCTP or DCCP state: tracked by Statewall without these.
    pub sctp_dccp: bool,
    /// Connection labels, as sent (words in network order).
    pub labels: Option<Vec<u8>>,
}

/// A RELATED connection's master: its addresses, protocol, ports, each as sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Master {
    pub addrs: Option<Addrs>,
    pub l4proto: Option<u8>,
    pub ports: Option<(u16, u16)>,
}

/// A refusal inside a message: offset into it, why.
type Bad = (usize, String);

/// An attribute: its offset in the message, type, payload.
type Attr<'a> = (usize, u16, &'a [u8]);

/// The ICMP query of an ICMP entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmpAttrs {
    pub kind: Option<u8>,
    pub code: Option<u8>,
    pub id: Option<u16>,
}

/// One message of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// CT_NEW, CT_UPD, CT_DEL.
    Ct(Header, CtAttrs),
    /// EXP_NEW, EXP_UPD, EXP_DEL: the attributes (checked for type and length as conntrackd
    /// checks them) kept as read: type, payload.
    Exp(Header, Vec<(u16, Vec<u8>)>),
    /// A control message; `range` is `from`/`to` of ACK, NACK and RESYNC.
    Ctl(Header, Option<(u32, u32)>),
}

impl Message {
    pub fn header(&self) -> &Header {
        match self {
            Message::Ct(h, _) | Message::Exp(h, _) | Message::Ctl(h, _) => h,
        }
    }
}

pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An address pair as an IPV4 (8 bytes) or IPV6 (32 bytes) attribute carries it.
pub(crate) fn addrs(p: &[u8]) -> Addrs {
    if p.len() >= 32 {
        let mut s = [0; 16];
        let mut d = [0; 16];
        s.copy_from_slice(&p[..16]);
        d.copy_from_slice(&p[16..32]);
        Addrs::V6(s, d)
    } else {
        Addrs::V4([p[0], p[1], p[2], p[3]], [p[4], p[5], p[6], p[7]])
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Every message of a datagram, in order; each refused one as `Err` (the rest are still
/// read, as conntrackd reads them). A header that cannot be read, or a length past the end,
/// ends the datagram with one last `Err`.
pub fn decode(datagram: &[u8]) -> Vec<Result<Message, Malformed>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < datagram.len() {
        let rest = &datagram[at..];
        let bad = |why: String| Malformed { at, why };
        if rest.len() < HEADER_LEN {
            out.push(Err(bad(format!(
                "{} bytes left, too few for a message header ({HEADER_LEN})",
                rest.len()
            ))));
            break;
        }
        let len = usize::from(be16(&rest[2..]));
        if len < HEADER_LEN || len > rest.len() {
            out.push(Err(bad(format!(
                "message length {len} with {} bytes left in the datagram",
                rest.len()
            ))));
            break;
        }
        out.push(message(&rest[..len]).map_err(|(off, why)| Malformed { at: at + off, why }));
        at += len;
    }
    out
}

/// One message (exactly its `len` bytes); errors at an offset into it.
fn message(m: &[u8]) -> Result<Message, Bad> {
    let version = m[0] >> 4;
    if version != VERSION {
        return Err((0, format!("protocol version {version}, not {VERSION}")));
    }
    let h = Header {
        kind: m[0] & 0x0f,
        flags: m[1],
        seq: be32(&m[4..]),
    };
    match h.kind {
        kind::CT_NEW..=kind::CT_DEL => ct_attrs(&m[HEADER_LEN..]).map(|a| Message::Ct(h, a)),
        kind::EXP_NEW..=kind::EXP_DEL => exp_attrs(&m[HEADER_LEN..]).map(|a| Message::Exp(h, a)),
        kind::CTL => {
            let ranged = h.flags & (flag::ACK | flag::NACK | flag::RESYNC) != 0;
            if !ranged {
                return Ok(Message::Ctl(h, None));
            }
            if m.len() < ACK_LEN {
                // At its length field: the range would be past the message's end.
                return Err((
                    2,
                    format!("an ACK/NACK/RESYNC of {} bytes, not {ACK_LEN}", m.len()),
                ));
            }
            Ok(Message::Ctl(h, Some((be32(&m[8..]), be32(&m[12..])))))
        }
        k => Err((0, format!("unknown message type {k}"))),
    }
}

/// The attributes of a message body: `(offset, type, payload)`, each checked by `check(type,
/// length)` before the next is framed, as conntrackd walks them; offsets are into the whole
/// message.
fn attributes(
    body: &[u8],
    check: impl Fn(u16, usize) -> Result<(), String>,
) -> Result<Vec<Attr<'_>>, Bad> {
    let mut out = Vec::new();
    let mut at = 0;
    // conntrackd stops when fewer bytes than an attribute header are left.
    while body.len() - at > 4 {
        let len = usize::from(be16(&body[at..]));
        let t = be16(&body[at + 2..]);
        let off = HEADER_LEN + at;
        if len < 4 {
            return Err((
                off,
                format!("attribute {t} of length {len}, less than its header"),
            ));
        }
        if len > body.len() - at {
            return Err((
                off,
                format!("attribute {t} of length {len} runs past the message"),
            ));
        }
        check(t, len).map_err(|why| (off, why))?;
        out.push((off, t, &body[at + 4..at + len]));
        at += align4(len).min(body.len() - at);
    }
    Ok(out)
}

/// Whether conntrackd takes a conntrack attribute of type `t` and length `len`.
fn ct_size(t: u16, len: usize) -> Result<(), String> {
    let Some(&(exact, max)) = SIZES.get(usize::from(t)) else {
        return Err(format!("unknown attribute type {t}"));
    };
    if (exact != 0 && len != usize::from(exact)) || (max != 0 && len > usize::from(max)) {
        let want = if exact != 0 {
            exact.to_string()
        } else {
            format!("at most {max}")
        };
        return Err(format!(
            "attribute {t} of length {len}, where conntrackd takes {want}"
        ));
    }
    Ok(())
}

fn ct_attrs(body: &[u8]) -> Result<CtAttrs, Bad> {
    let mut a = CtAttrs::default();
    for (_, t, p) in attributes(body, ct_size)? {
        let v4 = |p: &[u8]| Addrs::V4([p[0], p[1], p[2], p[3]], [p[4], p[5], p[6], p[7]]);
        let v6 = |p: &[u8]| {
            let mut s = [0; 16];
            let mut d = [0; 16];
            s.copy_from_slice(&p[..16]);
            d.copy_from_slice(&p[16..32]);
            Addrs::V6(s, d)
        };
        let mut master = a.master.unwrap_or_default();
        match t {
            attr::IPV4 => a.addrs = Some(v4(p)),
            attr::IPV6 => a.addrs = Some(v6(p)),
            attr::L4PROTO => a.l4proto = Some(p[0]),
            attr::PORT => a.ports = Some((be16(p), be16(&p[2..]))),
            attr::TCP_STATE => a.tcp_state = Some(p[0]),
            attr::STATUS => a.status = Some(be32(p)),
            attr::TIMEOUT => a.timeout = Some(be32(p)),
            attr::MARK => a.mark = Some(be32(p)),
            attr::MASTER_IPV4..=attr::MASTER_PORT => {
                match t {
                    attr::MASTER_IPV4 => master.addrs = Some(v4(p)),
                    attr::MASTER_IPV6 => master.addrs = Some(v6(p)),
                    attr::MASTER_L4PROTO => master.l4proto = Some(p[0]),
                    _ => master.ports = Some((be16(p), be16(&p[2..]))),
                }
                a.master = Some(master);
            }
            attr::SNAT_IPV4..=attr::NAT_SEQ_ADJ | attr::SNAT_IPV6 | attr::DNAT_IPV6 => {
                a.nat = true;
            }
            attr::SCTP_STATE..=attr::DCCP_ROLE => a.sctp_dccp = true,
            attr::ICMP_TYPE => a.icmp.kind = Some(p[0]),
            attr::ICMP_CODE => a.icmp.code = Some(p[0]),
            // Sent byte-swapped (see the module's notes).
            attr::ICMP_ID => a.icmp.id = Some(u16::from_le_bytes([p[0], p[1]])),
            attr::TCP_WSCALE_ORIG => a.wscale.0 = Some(p[0]),
            attr::TCP_WSCALE_REPL => a.wscale.1 = Some(p[0]),
            attr::HELPER_NAME => {
                let name = p.split(|b| *b == 0).next().unwrap_or_default();
                a.helper = Some(String::from_utf8_lossy(name).into_owned());
            }
            attr::LABELS => a.labels = Some(p.to_vec()),
            attr::ZONE => a.zone = Some(be16(p)),
            // SYNPROXY: only for connections synproxy answered, which are not forwarded here.
            _ => {}
        }
    }
    Ok(a)
}

/// `(exact length, or 0 with a maximum)` of each expectation attribute (`enum
/// nta_exp_attr`), header included: the master's, the expected and the mask tuples' address
/// pairs, protocols and ports, the timeout, flags, class, the NAT tuple's addresses, port,
/// protocol and direction, the helper's name, the expectation function's name.
const EXP_SIZES: [(u16, u16); 21] = [
    (12, 0),
    (36, 0),
    (5, 0),
    (8, 0),
    (12, 0),
    (36, 0),
    (5, 0),
    (8, 0),
    (12, 0),
    (36, 0),
    (5, 0),
    (8, 0),
    (8, 0),
    (8, 0),
    (8, 0),
    (12, 0),
    (8, 0),
    (5, 0),
    (8, 0),
    (0, 16),
    (0, 32),
];

fn exp_attrs(body: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, Bad> {
    let known = |t: u16, len: usize| match EXP_SIZES.get(usize::from(t)) {
        None => Err(format!("unknown expectation attribute type {t}")),
        Some(&(exact, max))
            if (exact != 0 && len != usize::from(exact))
                || (max != 0 && len > usize::from(max)) =>
        {
            Err(format!(
                "expectation attribute {t} of length {len}, where conntrackd takes {}",
                if exact != 0 {
                    exact.to_string()
                } else {
                    format!("at most {max}")
                }
            ))
        }
        Some(_) => Ok(()),
    };
    Ok(attributes(body, known)?
        .into_iter()
        .map(|(_, t, p)| (t, p.to_vec()))
        .collect())
}

/// Writes messages into a datagram buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A conntrack message (`kind::CT_*`) in conntrackd 1.4.7's order: the tuple, status,
    /// protocol, its ports and state (and window scales) or ICMP query, the timeout, the
    /// mark, the helper, the zone, and the SYNPROXY attribute conntrackd always sends; each
    /// only where set.
    pub fn ct(&mut self, kind: u8, seq: u32, a: &CtAttrs) {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&[VERSION << 4 | kind & 0x0f, 0, 0, 0]);
        self.buf.extend_from_slice(&seq.to_be_bytes());
        match a.addrs {
            Some(Addrs::V4(s, d)) => self.attr(attr::IPV4, &[s, d].concat()),
            Some(Addrs::V6(s, d)) => self.attr(attr::IPV6, &[s, d].concat()),
            None => {}
        }
        if let Some(s) = a.status {
            self.attr(attr::STATUS, &s.to_be_bytes());
        }
        if let Some(p) = a.l4proto {
            self.attr(attr::L4PROTO, &[p]);
        }
        if let Some((s, d)) = a.ports {
            self.attr(attr::PORT, &[s.to_be_bytes(), d.to_be_bytes()].concat());
        }
        if let Some(s) = a.tcp_state {
            self.attr(attr::TCP_STATE, &[s]);
        }
        if let Some(w) = a.wscale.0 {
            self.attr(attr::TCP_WSCALE_ORIG, &[w]);
        }
        if let Some(w) = a.wscale.1 {
            self.attr(attr::TCP_WSCALE_REPL, &[w]);
        }
        if let Some(t) = a.icmp.kind {
            self.attr(attr::ICMP_TYPE, &[t]);
        }
        if let Some(c) = a.icmp.code {
            self.attr(attr::ICMP_CODE, &[c]);
        }
        if let Some(id) = a.icmp.id {
            self.attr(attr::ICMP_ID, &id.to_le_bytes());
        }
        if let Some(t) = a.timeout {
            self.attr(attr::TIMEOUT, &t.to_be_bytes());
        }
        if let Some(m) = a.mark {
            self.attr(attr::MARK, &m.to_be_bytes());
        }
        if let Some(h) = &a.helper {
            let mut name = h.as_bytes().to_vec();
            name.push(0);
            self.attr(attr::HELPER_NAME, &name);
        }
        if let Some(z) = a.zone {
            self.attr(attr::ZONE, &z.to_be_bytes());
        }
        self.attr(attr::SYNPROXY, &[0; 12]);
        self.finish(start);
    }

    /// An expectation message (`kind::EXP_*`) of these attributes, in their order
    /// (`sync::expect::attrs_of` gives conntrackd's).
    pub fn exp(&mut self, kind: u8, seq: u32, attrs: &[(u16, Vec<u8>)]) {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&[VERSION << 4 | kind & 0x0f, 0, 0, 0]);
        self.buf.extend_from_slice(&seq.to_be_bytes());
        for (t, p) in attrs {
            self.attr(*t, p);
        }
        self.finish(start);
    }

    /// A control message: ALIVE, HELLO, ...; with `range`, an ACK, NACK or RESYNC.
    pub fn ctl(&mut self, flags: u8, seq: u32, range: Option<(u32, u32)>) {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&[VERSION << 4 | kind::CTL, flags, 0, 0]);
        self.buf.extend_from_slice(&seq.to_be_bytes());
        if let Some((from, to)) = range {
            self.buf.extend_from_slice(&from.to_be_bytes());
            self.buf.extend_from_slice(&to.to_be_bytes());
        }
        self.finish(start);
    }

    fn attr(&mut self, t: u16, payload: &[u8]) {
        let len = (payload.len() + 4) as u16;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&t.to_be_bytes());
        self.buf.extend_from_slice(payload);
        let pad = align4(payload.len()) - payload.len();
        self.buf.extend(std::iter::repeat_n(0, pad));
    }

    fn finish(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}
