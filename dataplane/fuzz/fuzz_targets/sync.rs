//! `sync::wire::decode` (conntrackd's sync messages) on arbitrary datagrams: never panics,
//! every error is at an offset inside the datagram, and every conntrack message read writes
//! back (`Writer::ct`) as a message that reads as the same entry. Then the sync thread's path:
//! the datagram (split in two at its first byte's value, as two datagrams) into a NOTRACK and
//! an FTFW `sync::peer::Peer`, each entry it hands out through `sync::entry::entry_of`: no
//! panic, counters that add up, a resend queue within its bound.
//!
//! Run: `scripts/fuzz.sh sync` (the seeds are datagrams a real conntrackd 1.4.7 sent).
#![no_main]

use engine::sync::entry::entry_of;
use engine::sync::peer::{Mode, Peer, PeerConfig, Received};
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
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    for mode in [Mode::Notrack, Mode::Ftfw] {
        let cfg = PeerConfig {
            mode,
            ack_window: 3,
            resend_queue: 8,
            mtu: 1472,
        };
        let mut p = Peer::new(cfg, u32::MAX - 1, 0);
        let mut got = Vec::new();
        for (i, d) in [&data[..cut], &data[cut..]].into_iter().enumerate() {
            p.receive(d, i as u64 * 2_000_000_000, &mut got);
            p.tick(i as u64 * 2_000_000_000);
        }
        for r in &got {
            if let Received::Ct(_, a) = r {
                let _ = entry_of(a, 1);
            }
        }
        assert!(p.resend_queue_len() <= 8);
        assert!(got.len() as u64 <= p.stats.msg_recv, "{:?}", p.stats);
        p.flush();
        while let Some(d) = p.poll_transmit() {
            assert!(d.len() <= 1472 && decode(&d).iter().all(Result::is_ok), "{d:?}");
        }
    }
});
