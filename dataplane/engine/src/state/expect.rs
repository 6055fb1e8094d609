//! The expectation region of the state file: a count, then fixed 96-byte records, each an
//! [`Expectation`] field by field (little-endian). The runtime rewrites the region whenever
//! the shared expectation table changes (an FTP command, a data connection taking one): a
//! handful of writes into the mapping, under the lock the table already takes.

use crate::conntrack::expect::Expectation;
use crate::flow::FlowKey;
use crate::packet::IpFamily;

/// One record's size.
pub const RECORD_SIZE: usize = 96;
/// The count and a reserved word before the records.
const PREFIX: usize = 8;

/// Bytes of a region for `max` records.
pub const fn region_size(max: usize) -> usize {
    PREFIX + max * RECORD_SIZE
}

fn family_byte(f: IpFamily) -> u8 {
    f as u8
}

fn family_of(b: u8) -> Option<IpFamily> {
    match b {
        4 => Some(IpFamily::V4),
        6 => Some(IpFamily::V6),
        _ => None,
    }
}

fn encode(e: &Expectation, r: &mut [u8]) {
    r.fill(0);
    r[0] = family_byte(e.family);
    r[1] = e.proto;
    r[2..4].copy_from_slice(&e.dport.to_le_bytes());
    r[8..16].copy_from_slice(&e.expires.to_le_bytes());
    r[16..32].copy_from_slice(&e.src);
    r[32..48].copy_from_slice(&e.dst);
    let m = &e.master;
    r[48..64].copy_from_slice(&m.src);
    r[64..80].copy_from_slice(&m.dst);
    r[80..82].copy_from_slice(&m.sport.to_le_bytes());
    r[82..84].copy_from_slice(&m.dport.to_le_bytes());
    r[84] = m.proto;
    r[85] = family_byte(m.family);
    r[88..92].copy_from_slice(&e.mark.to_le_bytes());
}

fn decode(r: &[u8]) -> Option<Expectation> {
    let arr16 = |at: usize| -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&r[at..at + 16]);
        a
    };
    let u16_at = |at: usize| u16::from_le_bytes([r[at], r[at + 1]]);
    let mut exp = [0; 8];
    exp.copy_from_slice(&r[8..16]);
    let master = FlowKey::new(
        family_of(r[85])?,
        arr16(48),
        arr16(64),
        r[84],
        u16_at(80),
        u16_at(82),
    );
    master.check().ok()?;
    let e = Expectation {
        family: family_of(r[0])?,
        proto: r[1],
        dport: u16_at(2),
        expires: u64::from_le_bytes(exp),
        src: arr16(16),
        dst: arr16(32),
        master,
        mark: u32::from_le_bytes([r[88], r[89], r[90], r[91]]),
    };
    // The same checks a key gets: the expected tuple as a key with any source port.
    FlowKey::new(e.family, e.src, e.dst, e.proto, 0, e.dport)
        .check()
        .ok()?;
    Some(e)
}

/// Write `list` into `region` (a region of [`region_size`]`(max)` bytes); records beyond
/// the region's room are left out (the table never holds more than `max`).
pub fn write(list: &[Expectation], region: &mut [u8]) {
    let room = region.len().saturating_sub(PREFIX) / RECORD_SIZE;
    let n = list.len().min(room);
    for (e, r) in list[..n]
        .iter()
        .zip(region[PREFIX..].chunks_exact_mut(RECORD_SIZE))
    {
        encode(e, r);
    }
    // The count last. A crash in the middle of this leaves at worst one record half
    // rewritten: it is read back through the same checks as any other (`decode`).
    region[..4].copy_from_slice(&(n as u32).to_le_bytes());
}

/// The records of a region that decode (`Err` counts those that do not); the times are the
/// writer's engine times.
pub fn read(region: &[u8]) -> (Vec<Expectation>, usize) {
    if region.len() < PREFIX {
        return (Vec::new(), 0);
    }
    let room = (region.len() - PREFIX) / RECORD_SIZE;
    let n = (u32::from_le_bytes([region[0], region[1], region[2], region[3]]) as usize).min(room);
    let mut bad = 0;
    let list = region[PREFIX..]
        .chunks_exact(RECORD_SIZE)
        .take(n)
        .filter_map(|r| {
            let e = decode(r);
            bad += usize::from(e.is_none());
            e
        })
        .collect();
    (list, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::v4_mapped;

    fn exp(port: u16) -> Expectation {
        Expectation {
            family: IpFamily::V4,
            src: v4_mapped([10, 0, 0, 3]),
            dst: v4_mapped([10, 0, 0, 2]),
            proto: 6,
            dport: port,
            expires: 123_456_789,
            master: FlowKey::new(
                IpFamily::V4,
                v4_mapped([10, 0, 0, 2]),
                v4_mapped([10, 0, 0, 3]),
                6,
                40000,
                21,
            ),
            mark: 0x1234_5678 ^ u32::from(port),
        }
    }

    #[test]
    fn records_read_back() {
        let mut region = vec![0xaa; region_size(3)];
        let list = [exp(50000), exp(50001)];
        write(&list, &mut region);
        assert_eq!(read(&region), (list.to_vec(), 0));
        write(&list[..1], &mut region);
        assert_eq!(read(&region), (list[..1].to_vec(), 0));
    }

    #[test]
    fn a_bad_record_is_counted_not_read() {
        let mut region = vec![0; region_size(2)];
        write(&[exp(1), exp(2)], &mut region);
        region[PREFIX] = 5; // family 5
        let (list, bad) = read(&region);
        assert_eq!((list, bad), (vec![exp(2)], 1));
        // A count beyond the region is clamped to its room.
        region[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(read(&region).0.len(), 1);
        assert_eq!(read(&region[..3]), (Vec::new(), 0));
    }
}
