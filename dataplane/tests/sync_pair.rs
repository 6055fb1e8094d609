//! Two runtimes paired by the sync (runtime::sync) over UDP on loopback, as two gateways on a
//! sync link: connections through the active one reach the backup's external cache with
//! their states, a commit makes them live there (a mid-stream segment the backup dropped
//! before the commit passes after it), a close empties the cache again; with the external
//! cache off entries go straight into the table; a backup started late asks for everything
//! (RESYNC) and gets it; a stranger's datagram and garbage are counted and change nothing;
//! an FTP expectation follows its control connection (`expectation_sync`). Both modes, two
//! workers on each side.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::protocol::{ConntrackFilter, ConntrackOp, SyncOp, SyncStatus};
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::{PollMode, Runtime, RuntimeConfig, RuntimeHandle};
use engine::packet::tcp_flags::{ACK, FIN, PSH, SYN};
use engine::wire::build::Tcp;

const LAN: usize = 0;
const WAN: usize = 1;

fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ruleset(mode: &str, local: (&str, u16), peer: (&str, u16), extra: &str) -> String {
    format!(
        "sync:
  mode: {mode}
  udp: {{local: '{}:{}', peer: '{}:{}'}}
{extra}
forward:
  policy: drop
  rules:
    - {{ctstate: [established, related], action: accept}}
    - {{ctstate: new, in_port: lan, proto: tcp, syn: true, action: accept}}
",
        local.0, local.1, peer.0, peer.1
    )
}

struct Box_ {
    net: Arc<MemNet>,
    rt: Option<Runtime>,
    h: RuntimeHandle,
}

impl Box_ {
    fn start(yaml: &str) -> Box_ {
        let net = MemNet::new(2, 2);
        let cfg = RuntimeConfig {
            pin: false,
            poll: PollMode::Adaptive,
            io_mode: vec!["memory".into()],
            ..RuntimeConfig::default()
        };
        let ios = (0..2).map(|q| net.ports_for(q)).collect();
        let loaded = config::load_str(yaml, "pair.yaml").expect("valid ruleset");
        let rt = Runtime::start(&loaded.ruleset, yaml, "pair.yaml", ios, &cfg).unwrap();
        let h = rt.handle();
        Box_ {
            net,
            rt: Some(rt),
            h,
        }
    }

    /// Send a frame in on `port`; whether it came out of the other port.
    fn pass(&self, port: usize, frame: &[u8]) -> bool {
        let other = 1 - port;
        let before = self.net.sent_count(other);
        let processed =
            |h: &RuntimeHandle| -> u64 { h.counters().iter().map(|c| c.processed).sum() };
        let p0 = processed(&self.h);
        self.net.inject(port, 0, frame);
        wait("the packet to be decided", || processed(&self.h) > p0);
        // Counters are published after the batch's transmit.
        self.net.sent_count(other) > before
    }

    fn sync(&self, op: SyncOp) -> config::protocol::SyncReply {
        self.h.sync(op).unwrap()
    }

    fn status(&self) -> SyncStatus {
        self.sync(SyncOp::Status).status
    }

    fn table(&self) -> Vec<String> {
        let r = self
            .h
            .conntrack(ConntrackOp::List, &ConntrackFilter::default())
            .unwrap();
        r.entries.into_iter().map(|e| e.line).collect()
    }
}

impl Drop for Box_ {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.stop();
        }
    }
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Segments of one TCP connection 10.10.0.2:port → 10.10.0.3:80.
fn seg(port: u16, from_client: bool, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let (c, s) = ((ip("10.10.0.2"), port), (ip("10.10.0.3"), 80));
    let (a, b) = if from_client { (c, s) } else { (s, c) };
    Tcp {
        seq,
        ack,
        ..Tcp::new(a, b, flags)
    }
    .frame()
}

/// Open connection `port` through `gw` (handshake and a request).
fn open(gw: &Box_, port: u16) {
    assert!(gw.pass(LAN, &seg(port, true, SYN, 100, 0)));
    assert!(gw.pass(WAN, &seg(port, false, SYN | ACK, 900, 101)));
    assert!(gw.pass(LAN, &seg(port, true, ACK, 101, 901)));
}

fn pair(mode: &str, a_extra: &str, b_extra: &str) -> (Box_, Box_) {
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let a = Box_::start(&ruleset(
        mode,
        ("127.0.0.1", pa),
        ("127.0.0.2", pb),
        a_extra,
    ));
    let b = Box_::start(&ruleset(
        mode,
        ("127.0.0.2", pb),
        ("127.0.0.1", pa),
        b_extra,
    ));
    (a, b)
}

fn failover(mode: &str) {
    let (a, b) = pair(mode, "", "");
    for port in 40000..40010 {
        open(&a, port);
    }
    wait("the backup's cache to hold ten established entries", || {
        let s = b.status();
        s.external_cache == 10 && s.recv_update >= 20
    });
    // Not committed: nothing forwards on the backup, a mid-stream segment is not NEW-on-SYN.
    assert!(b.table().is_empty());
    let mid = seg(40003, true, ACK | PSH, 101, 901);
    assert!(!b.pass(LAN, &mid));
    let r = b.sync(SyncOp::Commit);
    assert_eq!(r.entries, 10, "{}", r.message);
    let table = b.table();
    assert_eq!(table.len(), 10);
    assert!(
        table
            .iter()
            .all(|l| l.contains("ESTABLISHED") && l.contains("[ASSURED]")),
        "{table:#?}"
    );
    // The backup took over: the connection goes on both ways.
    assert!(b.pass(LAN, &mid));
    assert!(b.pass(WAN, &seg(40003, false, ACK, 901, 101)));
    // A connection closed on the active one leaves the backup's cache (TIME_WAIT, then
    // destroyed when it expires; a flush of the active table destroys them all at once).
    assert!(a.pass(LAN, &seg(40001, true, FIN | ACK, 101, 901)));
    let flushed =
        a.h.conntrack(ConntrackOp::Flush, &ConntrackFilter::default())
            .unwrap();
    assert_eq!(flushed.flushed, 10);
    wait("the destroys to empty the backup's cache", || {
        b.status().external_cache == 0
    });
    let (sa, sb) = (a.status(), b.status());
    assert_eq!(
        sa.malformed + sb.malformed + sa.unauthenticated + sb.unauthenticated,
        0
    );
    assert_eq!(sa.events_lost + sb.events_lost, 0);
    assert_eq!(sb.recv_destroy, 10);
    assert!(sb.refused == 0, "{:?}", sb.refused_reason);
    // The same counters in `stats` and on the metrics endpoint.
    let st = b.h.stats(false).sync.expect("stats carry the sync");
    assert_eq!(st.recv_destroy, 10);
    let m = dataplane::runtime::metrics::render(&b.h);
    assert!(m.contains("statewall_sync_recv_entries_total "), "{m}");
    assert!(m.contains("statewall_sync_external_cache 0"), "{m}");
}

#[test]
fn ftfw_failover_commit_and_close() {
    failover("ftfw");
}

#[test]
fn notrack_failover_commit_and_close() {
    failover("notrack");
}

#[test]
fn with_the_external_cache_off_entries_go_into_the_table() {
    let (a, b) = pair("ftfw", "", "  disable_external_cache: true");
    for port in 41000..41005 {
        open(&a, port);
    }
    wait("five entries in the backup's table", || {
        b.table().len() == 5
    });
    assert_eq!(b.status().external_cache, 0);
    // The backup's own traffic on an injected entry is tracked there; a destroy removes it.
    assert!(b.pass(WAN, &seg(41002, false, ACK, 901, 101)));
    a.h.conntrack(ConntrackOp::Flush, &ConntrackFilter::default())
        .unwrap();
    wait("the backup's table to empty", || b.table().is_empty());
}

#[test]
fn a_late_backup_requests_everything_and_purge_shortens_timeouts() {
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let a = Box_::start(&ruleset("ftfw", ("127.0.0.1", pa), ("127.0.0.2", pb), ""));
    for port in 42000..42004 {
        open(&a, port);
    }
    // The backup was not there: what a sent is lost.
    let b = Box_::start(&ruleset("ftfw", ("127.0.0.2", pb), ("127.0.0.1", pa), ""));
    assert_eq!(b.status().external_cache, 0);
    b.sync(SyncOp::Request);
    wait("the resync to fill the backup's cache", || {
        b.status().external_cache == 4
    });
    assert_eq!(a.status().resyncs_recv, 1);
    // `bulk` sends them again (4 entries), `flush` empties the cache.
    assert_eq!(a.sync(SyncOp::Bulk).entries, 4);
    assert_eq!(b.sync(SyncOp::Flush).entries, 4);
    assert_eq!(b.status().external_cache, 0);
    // purge: every timeout is at most purge_timeout (15 s) now.
    assert_eq!(a.sync(SyncOp::Purge).entries, 4);
    let r =
        a.h.conntrack(ConntrackOp::List, &ConntrackFilter::default())
            .unwrap();
    assert!(r.entries.iter().all(|e| e.timeout <= 15), "{:?}", r.entries);
}

#[test]
fn strangers_and_garbage_are_counted_and_change_nothing() {
    let (a, b) = pair("ftfw", "", "");
    // Where b listens: a's peer address, from the link line `udp LOCAL -> PEER`.
    let link = a.status().link;
    let b_addr = link.rsplit("-> ").next().unwrap().to_string();
    // From 127.0.0.3 (not the peer): dropped unread.
    let stranger = UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger
        .send_to(&[0x10, 0, 0, 8, 0, 0, 0, 1], &b_addr)
        .unwrap();
    wait("the stranger to be counted", || {
        b.status().unauthenticated == 1
    });
    // From the peer's address (another port): garbage, a CT_NEW with an unknown attribute.
    let liar = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    liar.send_to(&[0x10, 0, 0, 40, 0, 0, 0, 1, 0xff], &b_addr)
        .unwrap();
    liar.send_to(
        &[0x10, 0, 0, 16, 0, 0, 0, 2, 0, 8, 0, 99, 0, 0, 0, 0],
        &b_addr,
    )
    .unwrap();
    wait("the garbage to be counted", || b.status().malformed == 2);
    assert_eq!(b.status().external_cache, 0);
    // The sync goes on.
    open(&a, 43000);
    wait("the entry to arrive", || b.status().external_cache == 1);
}

/// A segment of 10.10.0.2:40021 ↔ 10.10.0.3:21 with these numbers and data.
fn ftp_seg(from_client: bool, flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    let (c, s) = ((ip("10.10.0.2"), 40021), (ip("10.10.0.3"), 21));
    let (a, b) = if from_client { (c, s) } else { (s, c) };
    Tcp {
        seq,
        ack,
        ..Tcp::new(a, b, flags)
    }
    .payload(data.to_vec())
    .frame()
}

#[test]
fn an_ftp_expectation_follows_its_control_connection() {
    let extra = "  expectation_sync: true\nhelpers:\n  ftp: {ports: [21]}";
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let rules = |local, peer| ruleset("ftfw", local, peer, extra);
    let a = Box_::start(&rules(("127.0.0.1", pa), ("127.0.0.2", pb)));
    let b = Box_::start(&rules(("127.0.0.2", pb), ("127.0.0.1", pa)));
    // The control connection through a: the banner, USER (the helper parses from the second
    // line of each direction on, as the kernel's), then PORT 10,10,0,2,195,80 (50000).
    assert!(a.pass(LAN, &ftp_seg(true, SYN, 100, 0, b"")));
    assert!(a.pass(WAN, &ftp_seg(false, SYN | ACK, 900, 101, b"")));
    assert!(a.pass(LAN, &ftp_seg(true, ACK, 101, 901, b"")));
    let banner = b"220 ready\r\n";
    assert!(a.pass(WAN, &ftp_seg(false, ACK | PSH, 901, 101, banner)));
    let user = b"USER anonymous\r\n";
    assert!(a.pass(LAN, &ftp_seg(true, ACK | PSH, 101, 912, user)));
    let port = b"PORT 10,10,0,2,195,80\r\n";
    assert!(a.pass(LAN, &ftp_seg(true, ACK | PSH, 117, 912, port)));
    wait("the expectation in b's cache", || {
        b.status().external_expectations == 1
    });
    // Committed on b: the server's data connection to 50000 is RELATED there, and accepted.
    let r = b.sync(SyncOp::Commit);
    assert!(r.message.contains("1 expectations"), "{}", r.message);
    let data_syn = Tcp {
        seq: 7000,
        ..Tcp::new((ip("10.10.0.3"), 20), (ip("10.10.0.2"), 50000), SYN)
    }
    .frame();
    assert!(
        b.pass(WAN, &data_syn),
        "the data connection is RELATED on b"
    );
    // The data connection took the expectation on b; on a it is still pending, and a flush
    // there (which takes the expectations with the entries) is an EXP_DEL: b's cache lets
    // it go.
    a.h.conntrack(ConntrackOp::Flush, &ConntrackFilter::default())
        .unwrap();
    wait("the expectation to leave b's cache", || {
        b.status().external_expectations == 0
    });
    let sa = a.status();
    assert_eq!(sa.malformed + b.status().malformed, 0);
    assert_eq!(b.status().refused, 0, "{:?}", b.status().refused_reason);
}
