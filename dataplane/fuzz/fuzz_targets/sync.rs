//! `sync::wire::decode` (conntrackd's sync messages) on arbitrary datagrams: never panics,
//! every error is at an offset inside the datagram, and every conntrack message read writes
//! back (`Writer::ct`) as a message that reads as the same entry.
//!
//! Run: `scripts/fuzz.sh sync` (the seeds are datagrams a real conntrackd 1.4.7 sent).
#![no_main]

use engine::sync::wire::{decode, CtAttrs, Message, Writer};
use libfuzzer_sys::fuzz_target;

/// What `Writer::ct` writes of an entry.
fn written(a: &CtAttrs) -> CtAttrs {
    CtAttrs {
        master: None,
        nat: false,
        sctp_dccp: false,
        labels: None,
        // The writer writes the name up to its first NUL.
        helper: a.helper.as_ref().map(|h| h.split('\0').next().unwrap_or("").to_string()),
        ..a.clone()
    }
}

fuzz_target!(|data: &[u8]| {
    for m in decode(data) {
        match m {
            Err(e) => assert!(e.at < data.len().max(1), "{e}"),
            Ok(Message::Ct(h, a)) => {
                let helper_fits = a.helper.as_ref().is_none_or(|h| h.len() + 5 <= 16);
                if !helper_fits {
                    continue;
                }
                let mut w = Writer::default();
                w.ct(h.kind, h.seq, &a);
                let back = decode(&w.buf);
                assert_eq!(back.len(), 1, "{back:?}");
                match &back[0] {
                    Ok(Message::Ct(h2, b)) => {
                        assert_eq!(h2.kind, h.kind);
                        assert_eq!(h2.seq, h.seq);
                        assert_eq!(*b, written(&a));
                    }
                    other => panic!("{a:?} wrote {:?}, read back as {other:?}", w.buf),
                }
            }
            Ok(_) => {}
        }
    }
});
