//! The FTP helper's command parser on arbitrary payloads, both directions and families.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run ftp`.
#![no_main]

use engine::conntrack::entry::Dir;
use engine::conntrack::ftp::{search, Found, NlSeq};
use engine::packet::{v4_mapped, IpFamily};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sender = v4_mapped([10, 0, 0, 2]);
    for dir in [Dir::Original, Dir::Reply] {
        for family in [IpFamily::V4, IpFamily::V6] {
            if let Found::Match(a) = search(data, dir, family, sender) {
                assert_ne!(a.port, 0, "a data connection to port 0 is never expected");
            }
        }
    }
    // Line-start tracking: a sequence at or after the newest remembered one is always kept
    // (older ones may be refused, as in the kernel's update_nl_seq).
    // Sequences move in small signed steps (as on a connection), from an arbitrary start.
    let mut nl = NlSeq::default();
    let mut newest: Option<u32> = None;
    let mut seq = 0xffff_f000u32;
    for w in data.chunks(2).take(4096) {
        let mut b = [0u8; 2];
        b[..w.len()].copy_from_slice(w);
        seq = seq
            .wrapping_add(u32::from(u16::from_le_bytes(b)))
            .wrapping_sub(0x4000);
        nl.update(Dir::Original, seq);
        let is_newest = newest.is_none_or(|n| (seq.wrapping_sub(n) as i32) >= 0);
        if is_newest {
            assert!(nl.starts_line(Dir::Original, seq), "newest {seq} forgotten");
            newest = Some(seq);
        }
    }
});
