//! AF_XDP ports on a real lab (root only; CI runs as root).
//!
//! Each test builds its own lab: network namespaces `swx-PID-T-c` (client, 10.77.T.2/24,
//! fd00:77:T::2/64) and `swx-PID-T-s` (server, .3), each joined by a veth pair to this
//! namespace, where the gateway ends `swxPIDTa` and `swxPIDTb` are bound with AF_XDP on one
//! UMEM. A thread forwards every frame from one to the other (bump-in-the-wire, no engine)
//! while ping, ping -6 and an HTTP download (python3 http.server, curl) run between client and
//! server. A guard removes the namespaces and interfaces even when a test fails.
//!
//! Run `cargo test -p statewall-dataplane --test xsk_lab -- --nocapture` to see the modes
//! each port obtained and the ring counters.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::runtime::doorbell::Doorbell;
use dataplane::xsk::{
    AttachMode, PortConfig, PortIo, UmemConfig, XdpMode, XskError, XskPorts, ZeroCopy,
};

fn is_root() -> bool {
    // The effective uid, second field of /proc/self/status's `Uid:` line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!(
                "SKIPPED: {} needs root (network namespaces, AF_XDP); CI runs it as root",
                module_path!()
            );
            return;
        }
    };
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Run, and fail the test with its output unless it succeeds.
fn must(cmd: &str, args: &[&str]) -> Output {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {}: {}\n{}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Run in a namespace; fail the test unless it succeeds.
fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    must("ip", &a)
}

fn in_ns_try(ns: &str, args: &[&str]) -> Output {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    run("ip", &a)
}

/// A client and a server namespace, each wired by a veth pair to a gateway end here.
struct Lab {
    client: String,
    server: String,
    /// Gateway ends: toward the client, toward the server.
    a: String,
    b: String,
    net: u8,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: char, net: u8) -> Lab {
        let pid = std::process::id() % 1_000_000;
        let dir = std::env::temp_dir().join(format!("swx-{pid}-{tag}"));
        let lab = Lab {
            client: format!("swx-{pid}-{tag}-c"),
            server: format!("swx-{pid}-{tag}-s"),
            a: format!("swx{pid}{tag}a"),
            b: format!("swx{pid}{tag}b"),
            net,
            dir,
            children: Vec::new(),
        };
        // The guard exists from here on: a failure below still cleans up.
        let _ = std::fs::create_dir_all(&lab.dir);
        for (ns, end, host) in [(&lab.client, &lab.a, 2), (&lab.server, &lab.b, 3)] {
            must("ip", &["netns", "add", ns]);
            must(
                "ip",
                &[
                    "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            );
            // The gateway end is a wire, not a host: no IPv6 of its own (it would send
            // router and neighbour solicitations into the lab).
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
            must("ip", &["link", "set", end, "up"]);
            let v4 = format!("10.77.{net}.{host}/24");
            let v6 = format!("fd00:77:{net}::{host}/64");
            in_ns(ns, &["ip", "link", "set", "lo", "up"]);
            in_ns(ns, &["ip", "addr", "add", &v4, "dev", "eth0"]);
            in_ns(
                ns,
                &["ip", "-6", "addr", "add", &v6, "dev", "eth0", "nodad"],
            );
            in_ns(ns, &["ip", "link", "set", "eth0", "up"]);
            // veth hands its peer packets with the transport checksum left for "hardware"
            // (CHECKSUM_PARTIAL) and, with TSO, 64 KiB segments; XDP sees those bytes as they
            // are, so a frame forwarded through AF_XDP would carry a wrong checksum (or not
            // fit a frame). Real NICs put complete frames on the wire; veth hosts must make
            // their own: checksumming off (which turns TSO off with it).
            in_ns(ns, &["ethtool", "-K", "eth0", "tx", "off"]);
        }
        lab
    }

    fn ip(&self, host: u8) -> String {
        format!("10.77.{}.{host}", self.net)
    }

    fn ip6(&self, host: u8) -> String {
        format!("fd00:77:{}::{host}", self.net)
    }

    /// python3 http.server in the server namespace, serving `dir` on port 8000.
    fn http_server(&mut self) {
        let py = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server,
                py,
                "-m",
                "http.server",
                "8000",
            ])
            .args(["--bind", "::", "--directory"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        self.children.push(child);
        // Listening?
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = in_ns_try(&self.server, &["ss", "-Htln", "sport = :8000"]);
            if !o.stdout.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "http.server did not start");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace deletes its veth end, and with it the peer here; the explicit
        // deletes cover a namespace whose creation failed half way.
        for ns in [&self.client, &self.server] {
            let _ = run("ip", &["netns", "del", ns]);
        }
        for end in [&self.a, &self.b] {
            let _ = run("ip", &["link", "del", end]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The forwarding loop: what arrives on one port leaves on the other.
fn forward_once(io: &mut XskPorts, batch: &mut Vec<<XskPorts as PortIo>::Frame>) -> usize {
    let mut moved = 0;
    for port in 0..io.port_count() {
        io.complete(port);
        io.fill(port);
        io.recv(port, batch, 64);
        moved += io.send(port ^ 1, batch);
        // What did not fit on the TX ring is dropped, as a gateway under overload would.
        io.release(batch);
    }
    moved
}

struct Forwarder {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<XskPorts>>,
}

impl Forwarder {
    fn start(mut io: XskPorts) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut batch = Vec::with_capacity(64);
            let bell = Doorbell::new().expect("doorbell");
            while !s.load(Ordering::Relaxed) {
                let moved = forward_once(&mut io, &mut batch);
                if moved == 0 && io.counts().tx == 0 {
                    io.wait(10, bell.fd()).expect("poll");
                }
            }
            // Let the last completions come back.
            let deadline = Instant::now() + Duration::from_secs(1);
            while io.counts().tx > 0 && Instant::now() < deadline {
                for port in 0..io.port_count() {
                    io.complete(port);
                }
            }
            io
        });
        Forwarder {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> XskPorts {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .unwrap()
            .join()
            .expect("forwarder panicked")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open(lab: &Lab, xdp_mode: XdpMode, zero_copy: ZeroCopy, need_wakeup: bool) -> XskPorts {
    let ports: Vec<PortConfig> = [&lab.a, &lab.b]
        .into_iter()
        .map(|i| PortConfig {
            xdp_mode,
            zero_copy,
            need_wakeup,
            ..PortConfig::new(i.clone(), 0)
        })
        .collect();
    // Small rings: the test also wants the rings to wrap many times.
    let cfg = UmemConfig {
        fill_size: 256,
        comp_size: 256,
        rx_size: 256,
        tx_size: 256,
        ..UmemConfig::default()
    };
    match XskPorts::open(&ports, &cfg) {
        Ok(io) => io,
        Err(e) => panic!("opening {} and {}: {e}", lab.a, lab.b),
    }
}

/// ping, ping -6 and a 4 MB HTTP download through the forwarder; the ports' books after.
fn traffic_through(lab: &mut Lab, io: XskPorts) -> XskPorts {
    for m in io.modes() {
        eprintln!("  {m}");
    }
    let fwd = Forwarder::start(io);
    let server = lab.ip(3);
    let server6 = lab.ip6(3);
    let client = lab.client.clone();
    in_ns(
        &client,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", &server],
    );
    in_ns(
        &client,
        &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &server6],
    );

    let data: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::File::create(lab.dir.join("blob"))
        .and_then(|mut f| f.write_all(&data))
        .expect("writing the test file");
    lab.http_server();
    for url in [
        format!("http://{server}:8000/blob"),
        format!("http://[{server6}]:8000/blob"),
    ] {
        let out = lab.dir.join("got");
        let out_s = out.to_str().unwrap().to_string();
        in_ns(
            &client,
            &[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "30",
                "-o",
                &out_s,
                &url,
            ],
        );
        let got = std::fs::read(&out).expect("downloaded file");
        assert!(got == data, "{url}: {} bytes, differing", got.len());
        let _ = std::fs::remove_file(&out);
    }
    let io = fwd.finish();
    let c = io.counts();
    eprintln!("  frames: {c:?}");
    for port in 0..io.port_count() {
        let s = io.stats(port);
        let k = io.kernel_stats(port).expect("XDP_STATISTICS");
        eprintln!("  port {port}: {s:?}\n          kernel {k:?}");
        assert!(s.rx_frames > 1000 && s.tx_frames > 1000, "{s:?}");
        assert_eq!((k.rx_invalid_descs, k.tx_invalid_descs), (0, 0), "{k:?}");
    }
    assert!(c.balanced(), "{c:?}");
    assert_eq!(c.held, 0, "{c:?}");
    assert_eq!(c.tx, 0, "every transmitted frame completed: {c:?}");
    assert_eq!(c.free + c.fill, c.total, "{c:?}");
    io
}

/// The programs attached to an interface, as `ip link` shows them.
fn xdp_attached(dev: &str) -> bool {
    let o = run("ip", &["-d", "link", "show", "dev", dev]);
    String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
}

#[test]
fn auto_mode_on_veth_is_native_copy_and_forwards() {
    require_root!();
    let mut lab = Lab::new('n', 1);
    let io = open(&lab, XdpMode::Auto, ZeroCopy::Auto, true);
    for m in io.modes() {
        assert_eq!(m.attach, AttachMode::Native, "{m}");
        assert!(!m.zero_copy, "veth has no zero-copy: {m}");
        let why = m.copy_reason.as_deref().unwrap_or_default();
        assert!(why.contains("veth"), "{m}");
        assert_eq!(m.driver.as_deref(), Some("veth"));
    }
    let io = traffic_through(&mut lab, io);
    let a = lab.a.clone();
    assert!(xdp_attached(&a));
    drop(io);
    // The last socket closed detaches libxdp's program.
    assert!(!xdp_attached(&a), "XDP program left on {a}");
}

/// A worker sleeping on its rings (AF_XDP `poll`) wakes when its doorbell rings: how a
/// handoff, a command or shutdown reaches an idle worker without a short timeout.
#[test]
fn doorbell_wakes_a_wait_on_the_rings() {
    require_root!();
    let lab = Lab::new('d', 7);
    let mut io = open(&lab, XdpMode::Auto, ZeroCopy::Auto, true);
    let bell = Arc::new(Doorbell::new().expect("doorbell"));
    // Let the hosts' own start-up frames (neighbour discovery) pass: wait for a quiet spell.
    let mut batch = Vec::with_capacity(64);
    let quiet_by = Instant::now() + Duration::from_secs(10);
    while io.wait(300, bell.fd()).expect("poll") && Instant::now() < quiet_by {
        for port in 0..io.port_count() {
            io.fill(port);
            io.recv(port, &mut batch, 64);
            io.release(&mut batch);
        }
    }
    for round in 0..3 {
        let ringer = {
            let bell = Arc::clone(&bell);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(100));
                bell.ring();
            })
        };
        let t = Instant::now();
        io.wait(120_000, bell.fd()).expect("poll");
        let took = t.elapsed();
        ringer.join().unwrap();
        assert!(
            took < Duration::from_mins(1),
            "round {round}: the rung doorbell did not end a 120 s wait ({took:?})"
        );
        assert!(bell.drain(), "round {round}: the ring is there to drain");
    }
}

#[test]
fn skb_mode_forwards() {
    require_root!();
    let mut lab = Lab::new('g', 2);
    let io = open(&lab, XdpMode::Skb, ZeroCopy::Auto, true);
    for m in io.modes() {
        assert_eq!(m.attach, AttachMode::Skb, "{m}");
        assert!(!m.zero_copy);
        assert!(
            m.copy_reason.as_deref().unwrap_or_default().contains("skb"),
            "{m}"
        );
    }
    traffic_through(&mut lab, io);
}

#[test]
fn without_need_wakeup_forwards() {
    require_root!();
    let mut lab = Lab::new('w', 3);
    let io = open(&lab, XdpMode::Native, ZeroCopy::Off, false);
    for m in io.modes() {
        assert!(!m.need_wakeup && !m.zero_copy, "{m}");
        assert_eq!(m.copy_reason.as_deref(), Some("zero_copy: off"));
    }
    let io = traffic_through(&mut lab, io);
    // Without the flag every send is a syscall.
    let s = io.stats(0);
    assert_eq!(s.tx_kicks_saved, 0, "{s:?}");
}

#[test]
fn errors_name_the_problem() {
    require_root!();
    let lab = Lab::new('e', 4);
    let cfg = UmemConfig::default();
    let one = |p: PortConfig| XskPorts::open(&[p], &cfg);

    // veth has no zero-copy: asking for it is an error that says so.
    let e = one(PortConfig {
        zero_copy: ZeroCopy::On,
        ..PortConfig::new(lab.a.clone(), 0)
    })
    .unwrap_err();
    assert!(matches!(e, XskError::ZeroCopyUnavailable { .. }), "{e}");
    assert!(e.to_string().contains("driver veth"), "{e}");
    eprintln!("  {e}");

    // A veth has one queue unless made with more.
    let e = one(PortConfig::new(lab.a.clone(), 1)).unwrap_err();
    assert!(
        matches!(
            e,
            XskError::BadQueue {
                queue: 1,
                queues: 1,
                ..
            }
        ),
        "{e}"
    );

    let e = one(PortConfig::new("swx-no-such", 0)).unwrap_err();
    assert!(matches!(e, XskError::NoSuchInterface { .. }), "{e}");

    // The same queue from two UMEMs (two workers given one queue).
    let first = one(PortConfig::new(lab.a.clone(), 0)).expect("first socket");
    let e = one(PortConfig::new(lab.a.clone(), 0)).unwrap_err();
    assert!(matches!(e, XskError::QueueBusy { queue: 0, .. }), "{e}");
    eprintln!("  {e}");
    // A second worker's socket on another interface reuses nothing and works.
    let other = one(PortConfig::new(lab.b.clone(), 0)).expect("socket on the other port");
    drop((first, other));

    // A jumbo MTU on the client's end: what native XDP on veth makes of it.
    in_ns(&lab.client, &["ip", "link", "set", "eth0", "mtu", "9000"]);
    // native: refused, and the kernel's reason is in the error.
    let e = one(PortConfig {
        xdp_mode: XdpMode::Native,
        ..PortConfig::new(lab.a.clone(), 0)
    })
    .unwrap_err();
    assert!(matches!(e, XskError::ModeUnavailable { .. }), "{e}");
    assert!(e.to_string().contains("Peer MTU is too large"), "{e}");
    eprintln!("  peer MTU 9000, native: {e}");
    // auto: falls back to skb mode, and says why.
    let io = one(PortConfig::new(lab.a.clone(), 0)).expect("auto falls back");
    let m = io.mode(0);
    eprintln!("  peer MTU 9000, auto: {m}");
    assert_eq!(m.attach, AttachMode::Skb, "{m}");
    assert!(
        m.fallback
            .as_deref()
            .unwrap_or_default()
            .contains("Peer MTU is too large"),
        "{m}"
    );
    drop(io);
    in_ns(&lab.client, &["ip", "link", "set", "eth0", "mtu", "1500"]);

    // Another XDP program on the interface (built with clang when there is one).
    if let Some(obj) = xdp_pass_object(&lab.dir) {
        let obj = obj.to_str().unwrap().to_string();
        must(
            "ip",
            &[
                "link",
                "set",
                "dev",
                &lab.a,
                "xdpgeneric",
                "obj",
                &obj,
                "sec",
                "xdp",
            ],
        );
        let e = one(PortConfig::new(lab.a.clone(), 0)).unwrap_err();
        match &e {
            XskError::ProgramBusy { program, mode, .. } => {
                assert_eq!(
                    (program.as_str(), mode.as_str()),
                    ("xdp_pass_prog", "skb"),
                    "{e}"
                );
            }
            _ => panic!("expected ProgramBusy, got {e}"),
        }
        eprintln!("  {e}");
        assert!(dataplane::xsk::detach_xdp(&lab.a).expect("detach"));
        assert!(!xdp_attached(&lab.a));
        one(PortConfig::new(lab.a.clone(), 0)).expect("free again");
    } else {
        eprintln!("  (no clang: the foreign-program check was not run)");
    }
}

/// A minimal XDP program (XDP_PASS) compiled with clang, or None without clang.
fn xdp_pass_object(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("pass.c");
    let obj = dir.join("pass.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int xdp_pass_prog(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .ok()?;
    let o = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .ok()?;
    o.status.success().then_some(obj)
}

#[test]
fn unprivileged_open_is_refused() {
    require_root!();
    let lab = Lab::new('p', 5);
    // This test binary again, as nobody without capabilities, running the probe below.
    let exe = std::env::current_exe().unwrap();
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&exe)
        .args(["--exact", "privileges_probe", "--ignored", "--nocapture"])
        .env("SWX_PROBE_IFACE", &lab.a)
        .output();
    let Ok(o) = o else {
        eprintln!("SKIPPED: no setpriv");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if text.contains("Permission denied") && !text.contains("probe:") {
        eprintln!("SKIPPED: nobody cannot run {} ({text})", exe.display());
        return;
    }
    assert!(o.status.success(), "{text}");
    assert!(text.contains("probe: privileges"), "{text}");
}

/// Run by `unprivileged_open_is_refused` as an unprivileged user.
#[test]
#[ignore = "run by unprivileged_open_is_refused as nobody"]
fn privileges_probe() {
    let Ok(iface) = std::env::var("SWX_PROBE_IFACE") else {
        return;
    };
    match XskPorts::open(&[PortConfig::new(iface, 0)], &UmemConfig::default()) {
        Err(e @ XskError::Privileges { .. }) => println!("probe: privileges: {e}"),
        other => panic!("expected a privileges error, got {other:?}"),
    }
}

/// A run killed with SIGKILL leaves libxdp's program attached (its socket is gone, its
/// reference count is not): the next run reuses it, and `detach_xdp` removes it.
#[test]
fn stale_program_from_a_killed_run() {
    require_root!();
    let lab = Lab::new('k', 6);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .args(["--exact", "hold_port", "--ignored", "--nocapture"])
        .env("SWX_HOLD_IFACE", &lab.a)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child");
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains("holding") && Instant::now() < deadline {
        use std::io::Read as _;
        let n = out.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("holding"), "child: {seen}");
    let _ = child.kill(); // SIGKILL: no destructor runs
    let _ = child.wait();
    assert!(xdp_attached(&lab.a), "the killed run's program stays");

    let cfg = UmemConfig::default();
    // It is in native mode: asking for skb says so.
    let e = XskPorts::open(
        &[PortConfig {
            xdp_mode: XdpMode::Skb,
            ..PortConfig::new(lab.a.clone(), 0)
        }],
        &cfg,
    )
    .unwrap_err();
    assert!(matches!(e, XskError::ModeUnavailable { .. }), "{e}");
    eprintln!("  {e}");
    // auto reuses it.
    let io = XskPorts::open(&[PortConfig::new(lab.a.clone(), 0)], &cfg).expect("reuse");
    let m = io.mode(0).clone();
    eprintln!("  {m}");
    assert!(m.reused_program && m.attach == AttachMode::Native, "{m}");
    drop(io);
    // The dead run's reference keeps it attached after our socket closes, too.
    let stays = xdp_attached(&lab.a);
    eprintln!(
        "  after our close the stale program is {}",
        if stays { "still attached" } else { "gone" }
    );
    assert!(dataplane::xsk::detach_xdp(&lab.a).expect("detach") == stays);
    assert!(!xdp_attached(&lab.a));
}

/// `--workers auto` counts queues: veth reports channels (RX and TX apart: the fewer counts),
/// a bridge reports none (sysfs then), a missing interface is named.
#[test]
fn queue_counts() {
    require_root!();
    let pid = std::process::id() % 1_000_000;
    let (a, b, br) = (
        format!("swq{pid}a"),
        format!("swq{pid}b"),
        format!("swq{pid}br"),
    );
    struct Links(Vec<String>);
    impl Drop for Links {
        fn drop(&mut self) {
            for l in &self.0 {
                let _ = run("ip", &["link", "del", l]);
            }
        }
    }
    let _links = Links(vec![a.clone(), br.clone()]);
    must(
        "ip",
        &[
            "link",
            "add",
            &a,
            "numtxqueues",
            "2",
            "numrxqueues",
            "3",
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "numtxqueues",
            "4",
            "numrxqueues",
            "4",
        ],
    );
    must("ip", &["link", "add", &br, "type", "bridge"]);
    let count = |i: &str| dataplane::xsk::queue_count(i).map(|q| (q.queues, q.source));
    use dataplane::xsk::QueueSource::{Channels, Sysfs};
    assert_eq!(count(&a).unwrap(), (2, Channels));
    assert_eq!(count(&b).unwrap(), (4, Channels));
    assert_eq!(count(&br).unwrap(), (1, Sysfs));
    let e = count(&format!("swq{pid}none")).unwrap_err();
    assert!(matches!(e, XskError::NoSuchInterface { .. }), "{e}");
}

/// Run by `stale_program_from_a_killed_run`: open a port and wait to be killed.
#[test]
#[ignore = "run by stale_program_from_a_killed_run"]
fn hold_port() {
    let Ok(iface) = std::env::var("SWX_HOLD_IFACE") else {
        return;
    };
    let cfg = UmemConfig::default();
    let _io = XskPorts::open(&[PortConfig::new(iface, 0)], &cfg).expect("open");
    println!("holding");
    thread::sleep(Duration::from_secs(30));
}
