//! The FTP helper's parser, after Linux's net/netfilter/nf_conntrack_ftp.c: which commands
//! and replies announce a data connection, and the address and port they name.
//!
//! Pure functions over the TCP payload, so they can be fuzzed. The kernel only looks at a
//! segment that starts right after a newline it saw (see [`NlSeq`]), and only at its start:
//! `PORT`/`EPRT` from the client (original direction), `227 `/`229 ` from the server
//! (reply direction). A segment that is a prefix of a pattern, or that matches a pattern but
//! carries no well-formed numbers, is *dropped* by the kernel ("partial matching").

use std::net::Ipv6Addr;

use crate::conntrack::entry::Dir;
use crate::packet::{v4_mapped, Addr, IpFamily};

/// What a command or reply announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// The address in the command (for `229` replies, which name none: the sender's).
    pub addr: Addr,
    pub port: u16,
}

/// Result of searching one segment (`find_pattern`'s 1 / 0 / -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Match(Announce),
    NoMatch,
    /// A truncated or malformed command: the kernel drops the segment.
    Partial,
}

struct Pattern {
    text: &'static [u8],
    skip: Option<u8>,
    term: u8,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Port,
    Eprt,
    Pasv,
    Epsv,
}

/// `search[dir]` of the kernel.
const ORIGINAL: [Pattern; 2] = [
    Pattern {
        text: b"PORT",
        skip: Some(b' '),
        term: b'\r',
        kind: Kind::Port,
    },
    Pattern {
        text: b"EPRT",
        skip: Some(b' '),
        term: b'\r',
        kind: Kind::Eprt,
    },
];
const REPLY: [Pattern; 2] = [
    Pattern {
        text: b"227 ",
        skip: None,
        term: 0,
        kind: Kind::Pasv,
    },
    Pattern {
        text: b"229 ",
        skip: Some(b'('),
        term: b')',
        kind: Kind::Epsv,
    },
];

/// Search a segment's payload sent in `dir` of a control connection whose sender address
/// (this direction's source) is `sender`.
pub fn search(data: &[u8], dir: Dir, family: IpFamily, sender: Addr) -> Found {
    let patterns = match dir {
        Dir::Original => &ORIGINAL,
        Dir::Reply => &REPLY,
    };
    for p in patterns {
        match find_pattern(data, p, family, sender) {
            Found::NoMatch => {}
            other => return other,
        }
    }
    Found::NoMatch
}

fn find_pattern(data: &[u8], p: &Pattern, family: IpFamily, sender: Addr) -> Found {
    let plen = p.text.len();
    if data.len() <= plen {
        // Short packet: a prefix of the pattern is a partial match.
        return if data.eq_ignore_ascii_case(&p.text[..data.len()]) {
            Found::Partial
        } else {
            Found::NoMatch
        };
    }
    if !data[..plen].eq_ignore_ascii_case(p.text) {
        return Found::NoMatch;
    }
    let mut i = plen;
    if let Some(skip) = p.skip {
        // Skip up to and over the `skip` character; running out is partial.
        loop {
            if data[i] == skip {
                break;
            }
            if i == data.len() - 1 {
                return Found::Partial;
            }
            i += 1;
        }
        i += 1;
    }
    let rest = &data[i..];
    let got = match p.kind {
        Kind::Port => try_rfc959(rest, p.term),
        Kind::Pasv => try_rfc1123(rest),
        Kind::Eprt => try_eprt(rest, family),
        Kind::Epsv => try_epsv_response(rest).map(|port| Announce { addr: sender, port }),
    };
    got.map_or(Found::Partial, Found::Match)
}

/// `try_number`: `n` numbers separated by `sep`, ended by `term` (or anything when `term`
/// is 0). Returns the numbers and the length consumed.
fn try_number<const N: usize>(data: &[u8], sep: u8, term: u8) -> Option<([u32; N], usize)> {
    let mut arr = [0u32; N];
    let mut i = 0;
    for (len, &c) in data.iter().enumerate() {
        if i >= N {
            break;
        }
        if c.is_ascii_digit() {
            arr[i] = arr[i].wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
        } else if c == sep {
            i += 1;
        } else {
            // Unexpected character: fine if it ends the last number.
            if (c == term || term == 0) && i == N - 1 {
                return Some((arr, len));
            }
            return None;
        }
    }
    None
}

/// `try_rfc959`: `h1,h2,h3,h4,p1,p2`.
fn try_rfc959(data: &[u8], term: u8) -> Option<Announce> {
    let (a, len) = try_number::<6>(data, b',', term)?;
    if len == 0 {
        return None;
    }
    // The kernel keeps the low byte of each address number and 16 bits of the port.
    let ip = [a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8];
    let port = ((a[4] << 8) | a[5]) as u16;
    Some(Announce {
        addr: v4_mapped(ip),
        port,
    })
}

/// `try_rfc1123`: the 227 reply's numbers start at its first digit, parentheses or not.
fn try_rfc1123(data: &[u8]) -> Option<Announce> {
    let start = data.iter().position(u8::is_ascii_digit)?;
    try_rfc959(&data[start..], 0)
}

/// `get_port`: digits up to `delim`; returns the port (non-zero).
fn get_port(data: &[u8], start: usize, delim: u8) -> Option<u16> {
    let mut port: u16 = 0;
    for &c in data.get(start..)? {
        if c == delim {
            return (port != 0).then_some(port);
        }
        if !c.is_ascii_digit() {
            return None;
        }
        port = port.wrapping_mul(10).wrapping_add(u16::from(c - b'0'));
    }
    None
}

fn valid_delim(d: u8) -> bool {
    !d.is_ascii_digit() && (33..=126).contains(&d)
}

/// `try_eprt`: `|1|132.235.1.2|6275|` or `|2|3ffe::1|6275|`.
fn try_eprt(data: &[u8], family: IpFamily) -> Option<Announce> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[2] != delim {
        return None;
    }
    let (addr, len) = match (family, data[1]) {
        (IpFamily::V4, b'1') => {
            let (a, len) = try_number::<4>(&data[3..], b'.', delim)?;
            (
                v4_mapped([a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8]),
                len,
            )
        }
        (IpFamily::V6, b'2') => {
            let rest = &data[3..];
            let len = rest.iter().position(|&c| c == delim)?;
            let text = std::str::from_utf8(&rest[..len]).ok()?;
            let a: Ipv6Addr = text.parse().ok()?;
            (a.octets(), len)
        }
        _ => return None,
    };
    if len == 0 {
        return None;
    }
    let port = get_port(data, 3 + len + 1, delim)?;
    Some(Announce { addr, port })
}

/// `try_epsv_response`: `|||6446|`.
fn try_epsv_response(data: &[u8]) -> Option<u16> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[1] != delim || data[2] != delim {
        return None;
    }
    get_port(data, 3, delim)
}

/// Sequence numbers just after a newline, per direction (`seq_aft_nl`): the helper only
/// parses a segment that starts at one of them. The kernel remembers two per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NlSeq {
    seq: [[u32; 2]; 2],
    num: [u8; 2],
    /// `NF_CT_FTP_SEQ_PICKUP`, per direction: the connection was taken in from outside (a
    /// restart, a restore), its line history is unknown, so the next segment in this
    /// direction counts as the start of a line, once.
    pickup: [bool; 2],
}

impl NlSeq {
    /// The line state of a connection taken in from outside: both directions pick up.
    pub fn picking_up() -> NlSeq {
        NlSeq {
            pickup: [true; 2],
            ..NlSeq::default()
        }
    }

    /// `find_nl_seq`.
    pub fn starts_line(&self, dir: Dir, seq: u32) -> bool {
        let d = dir.idx();
        self.seq[d][..usize::from(self.num[d])].contains(&seq)
    }

    /// Whether the helper parses a segment at `seq`: it starts a line, or this direction is
    /// picking up (which it then stops doing), as the kernel's help() with
    /// `NF_CT_FTP_SEQ_PICKUP`.
    pub fn parses(&mut self, dir: Dir, seq: u32) -> bool {
        if self.starts_line(dir, seq) {
            return true;
        }
        std::mem::take(&mut self.pickup[dir.idx()])
    }

    /// `update_nl_seq`: remember `nl_seq` (the sequence after a segment ending in `\n`).
    pub fn update(&mut self, dir: Dir, nl_seq: u32) {
        let d = dir.idx();
        let n = usize::from(self.num[d]);
        if self.seq[d][..n].contains(&nl_seq) {
            return;
        }
        if n < 2 {
            self.seq[d][n] = nl_seq;
            self.num[d] += 1;
        } else {
            let oldest = usize::from((self.seq[d][0].wrapping_sub(self.seq[d][1]) as i32) >= 0);
            if (nl_seq.wrapping_sub(self.seq[d][oldest]) as i32) > 0 {
                self.seq[d][oldest] = nl_seq;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 10, 0, 2];
    const SERVER: Addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 10, 0, 3];

    fn m(addr: Addr, port: u16) -> Found {
        Found::Match(Announce { addr, port })
    }

    #[test]
    fn port_and_pasv() {
        assert_eq!(
            search(
                b"PORT 10,10,0,2,195,80\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            m(CLIENT, 50000)
        );
        assert_eq!(
            search(
                b"port 10,10,0,2,0,21\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            m(CLIENT, 21)
        );
        assert_eq!(
            search(
                b"227 Entering Passive Mode (10,10,0,3,117,48).\r\n",
                Dir::Reply,
                IpFamily::V4,
                SERVER
            ),
            m(SERVER, 30000)
        );
        // No parentheses (RFC 1123): the numbers start at the first digit.
        assert_eq!(
            search(b"227 =10,10,0,3,0,99\r\n", Dir::Reply, IpFamily::V4, SERVER),
            m(SERVER, 99)
        );
        // A reply pattern in the original direction is not looked for.
        assert_eq!(
            search(
                b"227 (10,10,0,3,1,1)\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            Found::NoMatch
        );
        assert_eq!(
            search(b"USER anonymous\r\n", Dir::Original, IpFamily::V4, CLIENT),
            Found::NoMatch
        );
    }

    #[test]
    fn eprt_and_epsv() {
        assert_eq!(
            search(
                b"EPRT |1|10.10.0.2|50001|\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            m(CLIENT, 50001)
        );
        let v6: Addr = "fd00:10::2".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(
            search(
                b"EPRT |2|fd00:10::2|4000|\r\n",
                Dir::Original,
                IpFamily::V6,
                v6
            ),
            m(v6, 4000)
        );
        // The family digit must match the connection's family.
        assert_eq!(
            search(
                b"EPRT |2|fd00:10::2|4000|\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            Found::Partial
        );
        assert_eq!(
            search(
                b"229 Entering Extended Passive Mode (|||6446|)\r\n",
                Dir::Reply,
                IpFamily::V4,
                SERVER
            ),
            m(SERVER, 6446)
        );
    }

    #[test]
    fn partial_and_malformed_commands() {
        // A segment that is only the start of a pattern.
        assert_eq!(
            search(b"POR", Dir::Original, IpFamily::V4, CLIENT),
            Found::Partial
        );
        assert_eq!(
            search(b"227", Dir::Reply, IpFamily::V4, SERVER),
            Found::Partial
        );
        // A command split before its numbers end.
        assert_eq!(
            search(b"PORT 10,10,0,2,19", Dir::Original, IpFamily::V4, CLIENT),
            Found::Partial
        );
        // Too few numbers, bad characters, zero port.
        assert_eq!(
            search(b"PORT 10,10,0,2\r\n", Dir::Original, IpFamily::V4, CLIENT),
            Found::Partial
        );
        assert_eq!(
            search(
                b"PORT 10,x,0,2,1,1\r\n",
                Dir::Original,
                IpFamily::V4,
                CLIENT
            ),
            Found::Partial
        );
        assert_eq!(
            search(b"229 (|||0|)\r\n", Dir::Reply, IpFamily::V4, SERVER),
            Found::Partial
        );
        assert_eq!(
            search(b"229 no parenthesis\r\n", Dir::Reply, IpFamily::V4, SERVER),
            Found::Partial
        );
        assert_eq!(
            search(b"", Dir::Reply, IpFamily::V4, SERVER),
            Found::Partial
        );
    }

    #[test]
    fn newline_sequences() {
        let mut nl = NlSeq::default();
        assert!(!nl.starts_line(Dir::Original, 100));
        nl.update(Dir::Original, 100);
        nl.update(Dir::Original, 150);
        assert!(nl.starts_line(Dir::Original, 100) && nl.starts_line(Dir::Original, 150));
        assert!(!nl.starts_line(Dir::Reply, 100));
        // A third replaces the oldest.
        nl.update(Dir::Original, 200);
        assert!(!nl.starts_line(Dir::Original, 100));
        assert!(nl.starts_line(Dir::Original, 150) && nl.starts_line(Dir::Original, 200));
    }
}
