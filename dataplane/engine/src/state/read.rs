//! Reading a state file back: the header first, then every slot decoded and checked, the
//! times rebased onto the reader's clock. Nothing here trusts the file: any bytes give an
//! answer (an error, or entries each of which passed `Entry::check`), never a panic.

use zerocopy::TryFromBytes;

use crate::conntrack::entry::{status, Entry};
use crate::conntrack::expect::Expectation;
use crate::conntrack::Slot;
use crate::wire::proto;

use super::{data_crc, expect, Header, HeaderError, SLOT_SIZE};

/// The longest any entry or expectation can have left: timeouts are whole seconds in a u32
/// (ctnetlink's CTA_TIMEOUT, `conntrack -t`, a sync message's TIMEOUT; the settings stop at a
/// year). A state file that says more is corrupt.
pub const MAX_TIMEOUT_NS: u64 = (u32::MAX as u64 + 1) * 1_000_000_000;

/// How the writer's engine times map onto the reader's: both are tied to the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebase {
    /// Reader's engine time now.
    pub now: u64,
    /// Wall-clock time (ns since the Unix epoch) at the reader's engine time 0.
    pub epoch_unix_ns: u64,
}

/// What one slot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRead {
    /// A live entry, times rebased onto the reader's clock, verdict cache cleared.
    Live(Entry),
    /// An entry whose timeout passed (while no daemon ran, or just before the stop).
    Expired,
    /// Bytes that are no entry the engine could have made.
    Corrupt(&'static str),
}

/// A checked file.
#[derive(Debug)]
pub struct Reader<'a> {
    file: &'a [u8],
    pub header: Header,
}

impl<'a> Reader<'a> {
    /// Check the header (and, for a cleanly stopped file, the data checksum).
    pub fn new(file: &'a [u8]) -> Result<Reader<'a>, HeaderError> {
        let header = Header::read(file)?;
        if let Some(crc) = header.clean {
            if data_crc(file) != crc {
                return Err(HeaderError::DataCrc);
            }
        }
        Ok(Reader { file, header })
    }

    /// Engine time `t` of the writer on the reader's clock (at least 1: 0 means "never").
    fn rebase(&self, t: u64, to: Rebase) -> u64 {
        let wall = i128::from(t) + i128::from(self.header.epoch_unix_ns);
        let mine = wall - i128::from(to.epoch_unix_ns);
        mine.clamp(1, i128::from(u64::MAX)) as u64
    }

    /// The in-use slots of every shard, in file order (free slots are skipped).
    pub fn slots(&self, to: Rebase) -> impl Iterator<Item = SlotRead> + '_ {
        let g = self.header.geometry;
        (0..g.shards as usize).flat_map(move |s| {
            self.file[g.slab(s)]
                .chunks_exact(SLOT_SIZE)
                .filter_map(move |b| self.slot(b, to))
        })
    }

    fn slot(&self, bytes: &[u8], to: Rebase) -> Option<SlotRead> {
        // The status word, read as bytes first: a free slot is skipped whatever else it holds.
        let st = std::mem::offset_of!(Entry, status);
        let status = u16::from_ne_bytes([bytes[st], bytes[st + 1]]);
        if status & status::IN_USE == 0 {
            return None;
        }
        let Ok(Slot(mut e)) = Slot::try_read_from_bytes(bytes) else {
            return Some(SlotRead::Corrupt(
                "a field holds a value of no type (the IP family)",
            ));
        };
        if let Err(why) = e.check() {
            return Some(SlotRead::Corrupt(why));
        }
        e.expires = self.rebase(e.expires, to);
        if e.expires <= to.now {
            return Some(SlotRead::Expired);
        }
        if e.expires - to.now > MAX_TIMEOUT_NS {
            return Some(SlotRead::Corrupt(
                "an expiry further off than any timeout (2^32 s, the kernel's and conntrack's limit)",
            ));
        }
        if matches!(e.key.proto, proto::UDP | proto::UDPLITE) {
            let ts = self.rebase(e.udp_stream_ts(), to);
            e.set_udp_stream_ts(ts);
        }
        e.cache = Default::default();
        Some(SlotRead::Live(e))
    }

    /// The live expectations, rebased, and how many records were corrupt.
    pub fn expectations(&self, to: Rebase) -> (Vec<Expectation>, usize) {
        let (list, bad) = expect::read(&self.file[self.header.geometry.expectations()]);
        let live = list
            .into_iter()
            .map(|mut x| {
                x.expires = self.rebase(x.expires, to);
                x
            })
            .filter(|x| x.expires > to.now)
            .collect::<Vec<_>>();
        // An expectation further off than any timeout is corrupt too.
        let n = live.len();
        let live: Vec<Expectation> = live
            .into_iter()
            .filter(|x| x.expires - to.now <= MAX_TIMEOUT_NS)
            .collect();
        let bad = bad + (n - live.len());
        (live, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tcp::state as tcp_state;
    use crate::flow::FlowKey;
    use crate::packet::{v4_mapped, IpFamily};
    use crate::state::{Geometry, HEADER_SIZE};
    use zerocopy::IntoBytes;

    const S: u64 = 1_000_000_000;

    fn key(i: u8, proto: u8) -> FlowKey {
        FlowKey::new(
            IpFamily::V4,
            v4_mapped([10, 0, 0, i]),
            v4_mapped([10, 0, 1, 1]),
            proto,
            1000 + u16::from(i),
            80,
        )
    }

    fn file_with(entries: &[Entry], epoch: u64) -> Vec<u8> {
        let g = Geometry {
            shards: 2,
            slots_per_shard: 4,
            expect_max: 2,
        };
        let mut f = vec![0u8; g.file_len()];
        Header {
            geometry: g,
            epoch_unix_ns: epoch,
            clean: None,
        }
        .write(&mut f);
        for (i, e) in entries.iter().enumerate() {
            let mut e = *e;
            e.status |= status::IN_USE;
            let at = HEADER_SIZE + i * SLOT_SIZE;
            f[at..at + SLOT_SIZE].copy_from_slice(Slot(e).as_bytes());
        }
        f
    }

    #[test]
    fn an_expiry_past_any_timeout_is_corrupt() {
        let mut longest = Entry::new(key(1, 17));
        longest.expires = MAX_TIMEOUT_NS;
        let mut beyond = Entry::new(key(2, 17));
        beyond.expires = MAX_TIMEOUT_NS + 2 * S;
        let f = file_with(&[longest, beyond], 1000 * S);
        let r = Reader::new(&f).unwrap();
        let to = Rebase {
            now: S,
            epoch_unix_ns: 1000 * S,
        };
        let got: Vec<SlotRead> = r.slots(to).collect();
        assert!(matches!(got[0], SlotRead::Live(_)), "{got:?}");
        assert!(
            matches!(got[1], SlotRead::Corrupt(w) if w.contains("2^32 s")),
            "{got:?}"
        );
    }

    #[test]
    fn live_entries_come_back_on_the_readers_clock() {
        let mut tcp = Entry::new(key(1, 6));
        tcp.expires = 100 * S;
        tcp.tcp.state = tcp_state::ESTABLISHED;
        tcp.status = status::SEEN_REPLY | status::ASSURED;
        tcp.cache[0].generation = 7;
        let mut udp = Entry::new(key(2, 17));
        udp.expires = 30 * S;
        udp.set_udp_stream_ts(12 * S);
        let mut old = Entry::new(key(3, 17));
        old.expires = 9 * S;
        // Written by a daemon whose engine time 0 was wall time 1000 s; read by one whose
        // engine time 0 is wall time 1010 s, at its engine time 1 s (wall 1011 s).
        let f = file_with(&[tcp, udp, old], 1000 * S);
        let r = Reader::new(&f).unwrap();
        let to = Rebase {
            now: S,
            epoch_unix_ns: 1010 * S,
        };
        let got: Vec<SlotRead> = r.slots(to).collect();
        let SlotRead::Live(t) = got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            t.expires,
            90 * S,
            "100 s on the old clock is 90 s on the new"
        );
        assert_eq!(
            t.cache,
            [crate::conntrack::entry::CachedVerdict::default(); 2],
            "cached verdicts are another process's"
        );
        assert_eq!(
            t.status,
            status::SEEN_REPLY | status::ASSURED | status::IN_USE
        );
        let SlotRead::Live(u) = got[1] else {
            panic!("{got:?}")
        };
        assert_eq!((u.expires, u.udp_stream_ts()), (20 * S, 2 * S));
        assert_eq!(got[2], SlotRead::Expired, "expired while no daemon ran");
        assert_eq!(got.len(), 3, "free slots are skipped");
    }

    #[test]
    fn corrupt_slots_are_named_and_skipped() {
        let mut tcp = Entry::new(key(1, 6));
        tcp.expires = 100 * S;
        tcp.tcp.state = tcp_state::ESTABLISHED;
        let mut f = file_with(&[tcp, tcp, tcp], 0);
        let fam = HEADER_SIZE + std::mem::offset_of!(Entry, key) + 37;
        f[fam] = 5; // the IP family byte of slot 0
        let st = HEADER_SIZE + SLOT_SIZE + std::mem::offset_of!(Entry, tcp);
        let state = st + std::mem::offset_of!(crate::conntrack::tcp::TcpConn, state);
        f[state] = 200; // slot 1's TCP state
        let to = Rebase {
            now: 1,
            epoch_unix_ns: 0,
        };
        let r = Reader::new(&f).unwrap();
        let got: Vec<SlotRead> = r.slots(to).collect();
        assert!(matches!(got[0], SlotRead::Corrupt(_)), "{got:?}");
        assert_eq!(got[1], SlotRead::Corrupt("not a TCP connection state"));
        assert!(matches!(got[2], SlotRead::Live(_)));
    }

    #[test]
    fn a_clean_file_must_match_its_checksum() {
        let mut e = Entry::new(key(1, 17));
        e.expires = 100 * S;
        let mut f = file_with(&[e], 0);
        let mut h = Header::read(&f).unwrap();
        h.clean = Some(data_crc(&f));
        h.write(&mut f);
        assert!(Reader::new(&f).is_ok());
        let at = HEADER_SIZE + 10;
        f[at] ^= 0x40;
        assert_eq!(Reader::new(&f).unwrap_err(), HeaderError::DataCrc);
    }
}
