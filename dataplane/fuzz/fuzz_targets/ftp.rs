//! The FTP helper's command parser on arbitrary payloads, both directions and families.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run ftp`.
#![no_main]

use dataplane::conntrack::entry::Dir;
use dataplane::conntrack::ftp::{search, Found, NlSeq};
use dataplane::packet::{v4_mapped, IpFamily};
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
    let mut nl = NlSeq::default();
    for w in data.chunks(4) {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        let seq = u32::from_le_bytes(b);
        nl.update(Dir::Original, seq);
        assert!(nl.starts_line(Dir::Original, seq));
    }
});
