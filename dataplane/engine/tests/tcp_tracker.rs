//! The TCP tracker on real bytes: the web fetch in tests/data/http-gateway.pcapng (recorded
//! through a kernel gateway) fed to a conntrack shard directly, with the state, ASSURED and
//! the window-tracking numbers checked after every segment against values worked out by
//! hand from the kernel's rules.

mod common;

use std::sync::Arc;

use config::matches::CtState;
use engine::conntrack::entry::{status, Dir};
use engine::conntrack::expect::SharedExpectations;
use engine::conntrack::tcp::{flag, state};
use engine::conntrack::{Shard, Sysctls, Track};
use engine::wire;

use common::SEC;

fn capture() -> Vec<Vec<u8>> {
    common::read_capture(&common::repo_path("tests/data/http-gateway.pcapng"))
        .unwrap_or_else(|e| panic!("bundled capture: {e}"))
        .into_iter()
        .map(|f| f.data)
        .collect()
}

struct Tracker {
    shard: Shard,
    id: Option<u32>,
}

impl Tracker {
    fn new() -> Tracker {
        let t = Sysctls::default();
        Tracker {
            shard: Shard::new(64, t, &[], Arc::new(SharedExpectations::new(8))),
            id: None,
        }
    }

    /// Track one frame at `now`, confirming a new entry; returns (ctstate, direction).
    fn feed(&mut self, now: u64, frame: &[u8]) -> (CtState, Dir) {
        let m = wire::parse(frame).expect("parses");
        assert!(
            wire::l4_checksum_ok(frame, &m),
            "the capture's checksums are good"
        );
        match self.shard.track(now, &m, frame, true) {
            Track::New { state } => {
                self.id = self.shard.confirm();
                (state, Dir::Original)
            }
            Track::Tracked { id, dir, state } => {
                assert_eq!(Some(id), self.id);
                (state, dir)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn entry(&self) -> engine::conntrack::entry::Entry {
        *self.shard.entry(self.id.expect("entry"))
    }
}

#[test]
fn web_fetch_through_the_state_table_and_windows() {
    let frames = capture();
    let mut t = Tracker::new();
    // Packet 2: SYN 10.10.0.2:42278 → :80, seq 2275489303, win 64240, wscale 10.
    assert_eq!(t.feed(SEC, &frames[2]), (CtState::New, Dir::Original));
    let e = t.entry();
    assert_eq!(e.tcp.state, state::SYN_SENT);
    assert_eq!(
        { e.tcp.seen[0].td_end },
        2_275_489_304,
        "seq + 1 for the SYN"
    );
    assert_eq!({ e.tcp.seen[0].td_maxend }, 2_275_489_304);
    assert_eq!({ e.tcp.seen[0].td_maxwin }, 64_240);
    assert_eq!({ e.tcp.seen[0].td_scale }, 10);
    assert_ne!(e.tcp.seen[0].flags & flag::WINDOW_SCALE, 0);
    assert_eq!(e.expires, SEC + 120 * SEC, "tcp_timeout_syn_sent");

    // Packet 3: SYN/ACK seq 4943181 ack 2275489304 win 65160 wscale 10.
    assert_eq!(
        t.feed(SEC + 1, &frames[3]),
        (CtState::Established, Dir::Reply)
    );
    let e = t.entry();
    assert_eq!(e.tcp.state, state::SYN_RECV);
    assert!(e.has(status::SEEN_REPLY) && !e.has(status::ASSURED));
    assert_eq!({ e.tcp.seen[1].td_end }, 4_943_182);
    assert_eq!({ e.tcp.seen[1].td_scale }, 10, "both sides offered scaling");
    // The receiver's right edge: ack + window (a SYN's window is never scaled).
    assert_eq!({ e.tcp.seen[0].td_maxend }, 2_275_489_304 + 65_160);
    assert_eq!(e.expires, SEC + 1 + 60 * SEC, "tcp_timeout_syn_recv");

    // Packet 4: ACK win 63 (<< 10 = 64512): ESTABLISHED and ASSURED.
    assert_eq!(
        t.feed(SEC + 2, &frames[4]),
        (CtState::Established, Dir::Original)
    );
    let e = t.entry();
    assert_eq!(e.tcp.state, state::ESTABLISHED);
    assert!(e.has(status::ASSURED));
    assert_eq!({ e.tcp.seen[1].td_maxend }, 4_943_182 + 63 * 1024);
    assert_eq!(
        e.expires,
        SEC + 2 + 432_000 * SEC,
        "tcp_timeout_established"
    );

    // Packet 5: 73 bytes of request: unacknowledged data shortens the timeout.
    t.feed(SEC + 3, &frames[5]);
    let e = t.entry();
    assert_eq!({ e.tcp.seen[0].td_end }, 2_275_489_304 + 73);
    assert_ne!(e.tcp.seen[0].flags & flag::DATA_UNACKNOWLEDGED, 0);
    assert_eq!(e.expires, SEC + 3 + 300 * SEC, "tcp_timeout_unacknowledged");

    // Packets 6-10: the server acks, answers (185 + 48 bytes), the client acks.
    for (i, f) in frames.iter().enumerate().take(11).skip(6) {
        assert_eq!(
            t.feed(SEC + 4 + i as u64, f).0,
            CtState::Established,
            "packet {i}"
        );
    }
    let e = t.entry();
    assert_eq!({ e.tcp.seen[1].td_end }, 4_943_182 + 185 + 48);
    assert_eq!(
        e.tcp.seen[0].flags & flag::DATA_UNACKNOWLEDGED,
        0,
        "all acked"
    );
    assert_eq!(e.tcp.state, state::ESTABLISHED);

    // Packet 11: the client's FIN: FIN_WAIT, and the close was initiated from the original side.
    t.feed(SEC + 20, &frames[11]);
    let e = t.entry();
    assert_eq!(e.tcp.state, state::FIN_WAIT);
    assert_ne!(e.tcp.seen[0].flags & flag::CLOSE_INIT, 0);
    assert_eq!(e.expires, SEC + 20 + 120 * SEC, "tcp_timeout_fin_wait");

    // Packet 12: the server's FIN/ACK: LAST_ACK.
    assert_eq!(t.feed(SEC + 21, &frames[12]).1, Dir::Reply);
    assert_eq!(t.entry().tcp.state, state::LAST_ACK);
    assert_eq!(
        t.entry().expires,
        SEC + 21 + 30 * SEC,
        "tcp_timeout_last_ack"
    );

    // Packet 13: the last ACK: TIME_WAIT for two minutes.
    t.feed(SEC + 22, &frames[13]);
    assert_eq!(t.entry().tcp.state, state::TIME_WAIT);
    assert_eq!(
        t.entry().expires,
        SEC + 22 + 120 * SEC,
        "tcp_timeout_time_wait"
    );

    // A replay of the same SYN on TIME_WAIT after the close re-opens the connection anew.
    assert_eq!(t.feed(SEC + 30, &frames[2]).0, CtState::New);
    assert_eq!(t.entry().tcp.state, state::SYN_SENT);
}

#[test]
fn segments_out_of_order_or_outside_the_window_are_invalid() {
    let frames = capture();
    let mut t = Tracker::new();
    for (i, f) in frames.iter().enumerate().take(5).skip(2) {
        t.feed(SEC + i as u64, f);
    }
    // The server's 185-byte answer before the request was ever sent: it ACKs data the
    // client has not sent (ack 2275489377 > td_end 2275489304): INVALID, state untouched.
    let m = wire::parse(&frames[8]).unwrap();
    let before = t.entry();
    assert_eq!(
        t.shard.track(SEC + 10, &m, &frames[8], true),
        Track::Invalid(engine::reason::InvalidReason::TcpOutOfWindow)
    );
    assert_eq!(t.entry().tcp, before.tcp);
}
