//! The runtime's liveness (workers in their loop, heartbeats moving) and what the daemon tells
//! systemd about it, with in-memory ports: `READY=1` once the workers run, `WATCHDOG=1` while
//! they make progress and not once they stop, reload and stop notifications.
//! `scripts/test-systemd.sh` does the same with the real daemon, AF_XDP and a stalled worker.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::runtime::liveness::Progress;
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::{Clock, PollMode, Runtime, RuntimeConfig};
use dataplane::systemd::Service;

const YAML: &str = "forward:\n  policy: accept\n  rules: []\n";

fn start(workers: usize) -> Runtime {
    let net = MemNet::new(2, workers);
    let cfg = RuntimeConfig {
        pin: false,
        poll: PollMode::Adaptive,
        clock: Clock::Manual(Arc::new(AtomicU64::new(1))),
        io_mode: vec!["memory".into()],
        ..RuntimeConfig::default()
    };
    let ruleset = config::load_str(YAML, "test.yaml").unwrap().ruleset;
    let ios = (0..workers).map(|q| net.ports_for(q)).collect();
    Runtime::start(&ruleset, YAML, "test.yaml", ios, &cfg).unwrap()
}

/// Nudge and read until every worker's heartbeat moved, for at most `within`.
fn all_move(l: &dataplane::runtime::liveness::Liveness, within: Duration) -> bool {
    let mut p = Progress::new(l.beats());
    let mut moved = vec![false; l.workers()];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        l.nudge();
        std::thread::sleep(Duration::from_millis(5));
        let stalled = p.stalled(l.beats());
        for (i, m) in moved.iter_mut().enumerate() {
            *m |= !stalled.contains(&i);
        }
        if moved.iter().all(|&m| m) {
            return true;
        }
    }
    false
}

#[test]
fn idle_workers_move_and_stopped_ones_do_not() {
    let rt = start(2);
    let l = rt.liveness();
    assert_eq!(l.wait_running(Duration::from_secs(10)), Ok(()));
    assert!(l.not_running().is_empty());
    // Idle (no frames at all): nudged, each goes round its loop.
    for _ in 0..3 {
        assert!(
            all_move(&l, Duration::from_secs(5)),
            "an idle worker did not move"
        );
    }
    rt.stop();
    assert_eq!(l.not_running(), [0, 1]);
    let mut p = Progress::new(l.beats());
    l.nudge();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(p.stalled(l.beats()), [0, 1], "stopped workers still beat");
}

/// The datagrams that arrive within `within`, each as its `KEY=VALUE` lines.
fn collect(sock: &UnixDatagram, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => return out,
        }
    }
}

fn count(msgs: &[String], line: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == line)).count()
}

/// The one test in this binary that sets the environment (NOTIFY_SOCKET, WATCHDOG_USEC).
#[test]
fn notifies_ready_reload_stop_and_pings_only_while_workers_move() {
    let dir = std::env::temp_dir().join(format!("sw-systemd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);
    std::env::set_var("WATCHDOG_USEC", "200000"); // a ping every 100 ms

    let rt = start(2);
    let sd = Service::start(rt.handle(), rt.liveness()).unwrap();
    assert!(sd.is_active());
    let first = collect(&sock, Duration::from_millis(50));
    let ready = first.first().expect("a first notification");
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(
            "STATUS=generation 1; 2 workers; conntrack 0/262144 entries (0.0%); \
             0 packets in, 0 out\n"
        ),
        "{ready:?}"
    );
    assert!(ready.contains("WATCHDOG=1\n"), "{ready:?}");

    // Running: pings every 100 ms.
    let msgs = collect(&sock, Duration::from_secs(1));
    let pings = count(&msgs, "WATCHDOG=1");
    assert!(pings >= 5, "{pings} pings in 1 s: {msgs:?}");

    sd.reloading("test.yaml");
    sd.reloaded("test.yaml accepted as generation 2".into());
    let msgs = collect(&sock, Duration::from_millis(150));
    let i = msgs
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no RELOADING=1: {msgs:?}"));
    let usec: u64 = msgs[i]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec > 0);
    let after = &msgs[i + 1..];
    let ready = after
        .iter()
        .find(|m| m.starts_with("READY=1\n"))
        .unwrap_or_else(|| panic!("no READY=1 after RELOADING=1: {msgs:?}"));
    assert!(
        ready.contains("; last reload: test.yaml accepted as generation 2\n"),
        "{ready:?}"
    );

    // The workers stop: at most the ping already decided, then none.
    let l = rt.liveness();
    rt.stop();
    assert_eq!(l.not_running(), [0, 1]);
    let msgs = collect(&sock, Duration::from_secs(1));
    let late = msgs
        .iter()
        .skip(1)
        .filter(|m| m.lines().any(|x| x == "WATCHDOG=1"))
        .count();
    assert_eq!(late, 0, "pings while no worker moves: {msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("; workers 0, 1 made no progress")),
        "{msgs:?}"
    );

    sd.stopping("SIGTERM");
    let msgs = collect(&sock, Duration::from_millis(100));
    assert!(
        msgs.iter()
            .any(|m| m == "STOPPING=1\nSTATUS=stopping (SIGTERM)\n"),
        "{msgs:?}"
    );
    sd.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}
