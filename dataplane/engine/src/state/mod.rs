//! The state file's layout: what the bytes of `statewall run --state PATH` mean. The runtime
//! maps the file and lets the workers' tables keep their entries in it (so the table outlives
//! the process with nothing copied on the packet path); this module says where everything
//! is, writes the header, and reads a file back, trusting none of it.
//!
//! ```text
//! 0      header (one page): magic, layout version, header CRC, slot-layout fingerprint,
//!        geometry (shards, slots per shard, expectation records), the wall-clock time of
//!        engine time 0, and for a clean stop the CRC of everything after the header
//! 4096   shard 0's slab: `slots_per_shard` slots of 128 bytes (`conntrack::Slot`, the
//!        in-memory entry, byte for byte), then shard 1's, ...
//! ...    the expectation region: a count, then `expect_max` records (`expect.rs`)
//! ```
//!
//! A file is read back ([`read::Reader`]) only after the header checks out (magic, version,
//! fingerprint, CRC, geometry against the file's length); then every slot is decoded with
//! every field checked (`Slot` from bytes with its enum validated, then `Entry::check`), so
//! a corrupt slot is skipped and counted, never inserted. Engine times in the file are
//! rebased onto the reader's clock through the wall clock: an entry that expired while no
//! daemon ran is gone.

pub mod expect;
pub mod read;

use std::mem::{offset_of, size_of};

use crate::conntrack::entry::{CachedVerdict, Entry};
use crate::conntrack::tcp::{TcpConn, TcpDir};
use crate::conntrack::Slot;
use crate::flow::FlowKey;

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"SWSTATE\0";
/// Bumped whenever the meaning of the bytes changes; a file of another version is refused.
pub const LAYOUT_VERSION: u32 = 2;
/// The header's size: one page, so that the slabs start page-aligned.
pub const HEADER_SIZE: usize = 4096;
/// One slot's size in the file.
pub const SLOT_SIZE: usize = size_of::<Slot>();
/// Header flag: the daemon stopped cleanly and `data_crc` covers the rest of the file.
const FLAG_CLEAN: u32 = 1;

/// A digest of the slot layout (every field's offset and size): a binary whose `Entry`
/// differs reads the file as another layout even if nobody bumped [`LAYOUT_VERSION`].
pub const FINGERPRINT: u64 = fingerprint(&[
    size_of::<Slot>(),
    size_of::<Entry>(),
    offset_of!(Entry, key),
    offset_of!(Entry, expires),
    offset_of!(Entry, tcp),
    offset_of!(Entry, mark),
    offset_of!(Entry, cache),
    offset_of!(Entry, status),
    size_of::<FlowKey>(),
    offset_of!(FlowKey, src),
    offset_of!(FlowKey, dst),
    offset_of!(FlowKey, sport),
    offset_of!(FlowKey, dport),
    offset_of!(FlowKey, proto),
    offset_of!(FlowKey, family),
    size_of::<TcpConn>(),
    offset_of!(TcpConn, seen),
    offset_of!(TcpConn, last_seq),
    offset_of!(TcpConn, last_ack),
    offset_of!(TcpConn, last_end),
    offset_of!(TcpConn, last_win),
    offset_of!(TcpConn, state),
    offset_of!(TcpConn, last_dir),
    offset_of!(TcpConn, last_index),
    offset_of!(TcpConn, retrans),
    offset_of!(TcpConn, last_wscale),
    offset_of!(TcpConn, last_flags),
    size_of::<TcpDir>(),
    offset_of!(TcpDir, td_end),
    offset_of!(TcpDir, td_maxend),
    offset_of!(TcpDir, td_maxwin),
    offset_of!(TcpDir, td_maxack),
    offset_of!(TcpDir, td_scale),
    offset_of!(TcpDir, flags),
    size_of::<CachedVerdict>(),
    expect::RECORD_SIZE,
]);

/// FNV-1a over the numbers (const: the fingerprint is a compile-time constant).
const fn fingerprint(parts: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut v = parts[i] as u64;
        let mut b = 0;
        while b < 8 {
            h ^= v & 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
            v >>= 8;
            b += 1;
        }
        i += 1;
    }
    h
}

/// Where things are in a file of a given geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub shards: u32,
    pub slots_per_shard: u32,
    /// Expectation records the file holds (`expect_max`).
    pub expect_max: u32,
}

impl Geometry {
    /// Byte range of shard `s`'s slab.
    pub fn slab(&self, s: usize) -> std::ops::Range<usize> {
        let len = self.slots_per_shard as usize * SLOT_SIZE;
        let start = HEADER_SIZE + s * len;
        start..start + len
    }

    /// Byte range of the expectation region.
    pub fn expectations(&self) -> std::ops::Range<usize> {
        let start = HEADER_SIZE + self.shards as usize * self.slots_per_shard as usize * SLOT_SIZE;
        start..start + expect::region_size(self.expect_max as usize)
    }

    /// The file's whole length.
    pub fn file_len(&self) -> usize {
        self.expectations().end
    }
}

/// The header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub geometry: Geometry,
    /// Wall-clock time (ns since the Unix epoch) at which the writer's engine time was 0:
    /// engine times in the file plus this are wall-clock times.
    pub epoch_unix_ns: u64,
    /// `Some(crc)` when the writer stopped cleanly: the CRC-32 of every byte after the header.
    pub clean: Option<u32>,
}

// Header byte offsets.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_CRC: usize = 12;
const OFF_FINGERPRINT: usize = 16;
const OFF_SHARDS: usize = 24;
const OFF_SLOTS: usize = 28;
const OFF_EXPECT: usize = 32;
const OFF_FLAGS: usize = 36;
const OFF_EPOCH: usize = 40;
const OFF_DATA_CRC: usize = 48;
/// Bytes of the header the CRC covers (the rest of the page is zero).
const HEADER_USED: usize = 56;

/// Why a file cannot be read back. Each says what is wrong; the daemon adds what it does
/// about it (starts with an empty table, keeps the file aside).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("it is {0} bytes long, shorter than a state file's header ({HEADER_SIZE} bytes): truncated, or not a state file")]
    Short(usize),
    #[error(
        "it does not start with the state file's magic (`SWSTATE`): not a statewall state file"
    )]
    Magic,
    #[error("it has layout version {found}, this statewall reads version {LAYOUT_VERSION} (written by another statewall release)")]
    Version { found: u32 },
    #[error("its entries have another memory layout (fingerprint {found:#018x}, this statewall's is {FINGERPRINT:#018x}): written by another statewall build")]
    Fingerprint { found: u64 },
    #[error("its header checksum does not match: the header is corrupt")]
    HeaderCrc,
    #[error("its header gives an impossible geometry ({0})")]
    Geometry(&'static str),
    #[error("it is {found} bytes long, its header says {want}: truncated or extended")]
    Length { found: usize, want: usize },
    #[error("it was stopped cleanly but its contents do not match the checksum taken then: the file is corrupt")]
    DataCrc,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Write the header of a file being run (not clean) into `page` (at least
    /// [`HEADER_SIZE`] bytes).
    pub fn write(&self, page: &mut [u8]) {
        let page = &mut page[..HEADER_SIZE];
        page.fill(0);
        page[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        page[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        page[OFF_FINGERPRINT..OFF_FINGERPRINT + 8].copy_from_slice(&FINGERPRINT.to_le_bytes());
        let g = &self.geometry;
        page[OFF_SHARDS..OFF_SHARDS + 4].copy_from_slice(&g.shards.to_le_bytes());
        page[OFF_SLOTS..OFF_SLOTS + 4].copy_from_slice(&g.slots_per_shard.to_le_bytes());
        page[OFF_EXPECT..OFF_EXPECT + 4].copy_from_slice(&g.expect_max.to_le_bytes());
        let (flags, data_crc) = match self.clean {
            Some(c) => (FLAG_CLEAN, c),
            None => (0, 0),
        };
        page[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        page[OFF_EPOCH..OFF_EPOCH + 8].copy_from_slice(&self.epoch_unix_ns.to_le_bytes());
        page[OFF_DATA_CRC..OFF_DATA_CRC + 4].copy_from_slice(&data_crc.to_le_bytes());
        let crc = crc32fast::hash(&page[..HEADER_USED]);
        page[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decode and check the header of a whole file (`file` is all of it: the length is
    /// checked against the geometry). The data checksum is checked by [`read::Reader`].
    pub fn read(file: &[u8]) -> Result<Header, HeaderError> {
        if file.len() < HEADER_SIZE {
            return Err(HeaderError::Short(file.len()));
        }
        if file[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = u32_at(file, OFF_VERSION);
        if version != LAYOUT_VERSION {
            return Err(HeaderError::Version { found: version });
        }
        let mut used = [0u8; HEADER_USED];
        used.copy_from_slice(&file[..HEADER_USED]);
        used[OFF_CRC..OFF_CRC + 4].fill(0);
        if crc32fast::hash(&used) != u32_at(file, OFF_CRC) {
            return Err(HeaderError::HeaderCrc);
        }
        let fingerprint = u64_at(file, OFF_FINGERPRINT);
        if fingerprint != FINGERPRINT {
            return Err(HeaderError::Fingerprint { found: fingerprint });
        }
        let geometry = Geometry {
            shards: u32_at(file, OFF_SHARDS),
            slots_per_shard: u32_at(file, OFF_SLOTS),
            expect_max: u32_at(file, OFF_EXPECT),
        };
        if geometry.shards == 0 || geometry.shards > 4096 {
            return Err(HeaderError::Geometry("shards must be 1 to 4096"));
        }
        if geometry.slots_per_shard == 0 || geometry.slots_per_shard >= u32::MAX / 2 {
            return Err(HeaderError::Geometry("slots per shard out of range"));
        }
        if geometry.expect_max > 1 << 20 {
            return Err(HeaderError::Geometry("more than 2^20 expectation records"));
        }
        let want = (geometry.shards as u128 * geometry.slots_per_shard as u128)
            .checked_mul(SLOT_SIZE as u128)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_add(HEADER_SIZE))
            .and_then(|n| n.checked_add(expect::region_size(geometry.expect_max as usize)))
            .ok_or(HeaderError::Geometry(
                "larger than this machine can address",
            ))?;
        if file.len() != want {
            return Err(HeaderError::Length {
                found: file.len(),
                want,
            });
        }
        let flags = u32_at(file, OFF_FLAGS);
        Ok(Header {
            geometry,
            epoch_unix_ns: u64_at(file, OFF_EPOCH),
            clean: (flags & FLAG_CLEAN != 0).then(|| u32_at(file, OFF_DATA_CRC)),
        })
    }
}

/// The CRC-32 of everything after the header (for a clean stop's header).
pub fn data_crc(file: &[u8]) -> u32 {
    crc32fast::hash(&file[HEADER_SIZE..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            geometry: Geometry {
                shards: 2,
                slots_per_shard: 3,
                expect_max: 4,
            },
            epoch_unix_ns: 1_700_000_000_000_000_000,
            clean: None,
        }
    }

    fn file(h: &Header) -> Vec<u8> {
        let mut f = vec![0u8; h.geometry.file_len()];
        h.write(&mut f);
        f
    }

    #[test]
    fn a_header_reads_back() {
        let h = header();
        let f = file(&h);
        assert_eq!(Header::read(&f), Ok(h));
        let clean = Header {
            clean: Some(0xdead_beef),
            ..h
        };
        assert_eq!(Header::read(&file(&clean)), Ok(clean));
        assert_eq!(
            h.geometry.slab(1),
            HEADER_SIZE + 3 * 128..HEADER_SIZE + 6 * 128
        );
    }

    #[test]
    fn every_damage_is_named() {
        let h = header();
        let good = file(&h);
        assert_eq!(Header::read(&good[..100]), Err(HeaderError::Short(100)));
        let mut f = good.clone();
        f[0] = b'X';
        assert_eq!(Header::read(&f), Err(HeaderError::Magic));
        let mut f = good.clone();
        f[OFF_VERSION] = 9;
        assert_eq!(Header::read(&f), Err(HeaderError::Version { found: 9 }));
        let mut f = good.clone();
        f[OFF_EPOCH] ^= 1;
        assert_eq!(Header::read(&f), Err(HeaderError::HeaderCrc));
        let f = &good[..good.len() - 1];
        assert!(matches!(Header::read(f), Err(HeaderError::Length { .. })));
        let mut f = good.clone();
        f.push(0);
        assert!(matches!(Header::read(&f), Err(HeaderError::Length { .. })));
    }

    #[test]
    fn any_bytes_give_an_answer_not_a_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in [0, 7, 56, 4095, 4096, 4097, 5000] {
            let mut f = vec![0u8; len];
            for b in &mut f {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if len >= 8 {
                f[..8].copy_from_slice(&MAGIC);
            }
            let _ = Header::read(&f);
        }
    }
}
