//! `wire::parse` and `wire::l4_checksum_ok` on arbitrary bytes: never panic, and every offset
//! the parser reports lies inside the frame.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run parse`. Frames from `wire::build`
//! written to `corpus/parse/` make good seeds.
#![no_main]

use engine::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(m) = wire::parse(frame) else {
        return;
    };
    let n = frame.len();
    assert!(usize::from(m.l3_offset) <= n);
    if m.is_ip {
        assert!(usize::from(m.l4_offset) + usize::from(m.l4_len) <= n);
        let payload_end = usize::from(m.payload_offset) + usize::from(m.payload_len);
        assert!(payload_end <= n);
        if m.payload_len > 0 {
            assert!(m.payload_offset >= m.l4_offset);
            assert!(payload_end <= usize::from(m.l4_offset) + usize::from(m.l4_len));
        }
        assert_eq!(m.payload(frame).len(), usize::from(m.payload_len));
    }
    let _ = wire::l4_checksum_ok(frame, &m);
});
