//! statewallctl against a real control socket served by a runtime with in-memory ports
//! (two workers): every command, good and bad rulesets, settings, conntrack, abuse of the
//! socket (garbage, oversized and silent clients), 50 clients at once.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::protocol::{ErrorKind, Outcome, Payload, Reply};
use dataplane::runtime::mem::MemNet;
use dataplane::runtime::server::{resolve_group, ControlServer, ServerConfig};
use dataplane::runtime::{PollMode, Runtime, RuntimeConfig, RuntimeHandle};
use engine::packet::tcp_flags::{ACK, PSH, SYN};
use engine::wire::build::{Icmp, Tcp, Udp};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn seed() -> String {
    std::fs::read_to_string(root().join("examples/seed-gateway.yaml")).unwrap()
}

struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    net: Arc<MemNet>,
    handle: RuntimeHandle,
    server: Option<ControlServer>,
    rt: Option<Runtime>,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("swctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A directory the server creates (0700), as /run/statewall.
        let socket = dir.join("run/control.sock");
        let yaml = seed();
        let ruleset = config::load_str(&yaml, "seed.yaml").unwrap().ruleset;
        let net = MemNet::new(2, 2);
        let cfg = RuntimeConfig {
            pin: false,
            poll: PollMode::Adaptive,
            io_mode: vec!["memory (test)".into()],
            ..RuntimeConfig::default()
        };
        let rt = Runtime::start(
            &ruleset,
            &yaml,
            "seed.yaml",
            vec![net.ports_for(0), net.ports_for(1)],
            &cfg,
        )
        .unwrap();
        let handle = rt.handle();
        let server = ControlServer::bind(
            &socket,
            handle.clone(),
            ServerConfig {
                read_timeout: Duration::from_millis(500),
                max_line: 64 * 1024,
                ..ServerConfig::default()
            },
        )
        .unwrap();
        Daemon {
            dir,
            socket,
            net,
            handle,
            server: Some(server),
            rt: Some(rt),
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_statewallctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// statewallctl with `input` on its standard input.
    fn ctl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_statewallctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(o.status.success(), "statewallctl {args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Reply {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.ctl(&a);
        let line = String::from_utf8(o.stdout).unwrap();
        Reply::from_line(line.trim()).unwrap()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// Web connections through the gateway: SYN, SYN/ACK, ACK, data, on both workers' queues.
    fn traffic(&self, flows: u16) {
        let server = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 3));
        let mut n = 0;
        for f in 0..flows {
            let c = (IpAddr::V4(Ipv4Addr::new(10, 10, 0, 2)), 40_000 + f);
            let s = (server, 80);
            let seg = |src, dst, flags, seq, ack| {
                Tcp {
                    seq,
                    ack,
                    ..Tcp::new(src, dst, flags)
                }
                .frame()
            };
            for (port, frame) in [
                (0, seg(c, s, SYN, 100, 0)),
                (1, seg(s, c, SYN | ACK, 900, 101)),
                (0, seg(c, s, ACK, 101, 901)),
                (
                    0,
                    Tcp {
                        seq: 101,
                        ack: 901,
                        ..Tcp::new(c, s, ACK | PSH)
                    }
                    .payload(b"GET /".to_vec())
                    .frame(),
                ),
            ] {
                self.net.inject(port, port, &frame);
                n += 1;
                self.settle(n);
            }
        }
        self.net.inject(
            0,
            0,
            &Udp::new("10.10.0.2:5000", "10.10.0.3:53")
                .payload(b"q".to_vec())
                .frame(),
        );
        self.net.inject(
            0,
            1,
            &Icmp::echo_request("10.10.0.2", "10.10.0.3", 7, 1).frame(),
        );
        self.settle(n + 2);
    }

    /// Wait until `n` packets were received in all.
    fn settle(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .handle
            .counters()
            .iter()
            .map(|c| c.processed)
            .sum::<u64>()
            < n
        {
            assert!(Instant::now() < deadline, "traffic did not settle");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(rt) = self.rt.take() {
            rt.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data(r: &Reply) -> &Payload {
    match &r.result {
        Outcome::Ok { data } => data,
        Outcome::Error { error } => panic!("error reply: {error:?}"),
    }
}

#[test]
fn socket_is_private() {
    let d = Daemon::start("perm");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.socket), 0o600);
    assert_eq!(mode(d.socket.parent().unwrap()), 0o700);
    // A second daemon on the same socket is refused; the first keeps serving.
    let again = ControlServer::bind(&d.socket, d.handle.clone(), ServerConfig::default());
    assert!(again.unwrap_err().to_string().contains("another statewall"));
    d.ok(&["stats"]);
}

/// The accept loop blocks while idle; shutdown wakes it, removes the socket, and returns even
/// when the socket file was taken away behind the daemon's back (nothing left to wake it).
#[test]
fn shutdown_stops_the_idle_accept_loop() {
    let mut d = Daemon::start("shutdown");
    d.ok(&["stats"]);
    d.server.take().unwrap().shutdown();
    assert!(!d.socket.exists(), "the socket file is removed");
    assert!(UnixStream::connect(&d.socket).is_err());
    // A new server on the same path serves again; then its socket file disappears.
    d.server =
        Some(ControlServer::bind(&d.socket, d.handle.clone(), ServerConfig::default()).unwrap());
    d.ok(&["stats"]);
    std::fs::remove_file(&d.socket).unwrap();
    let t = Instant::now();
    d.server.take().unwrap().shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "shutdown hung on an accept loop it could not wake"
    );
}

/// `statewall run --control-group`: the group's members reach the socket, other users do
/// not. Run as root (CI does): the check switches to an unprivileged user with `setpriv`.
#[test]
fn a_control_group_opens_the_socket_to_its_members() {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        eprintln!("SKIPPED: a_control_group_opens_the_socket_to_its_members needs root");
        return;
    }
    // gid 1 (`daemon` on Debian) is the control group; the user is nobody (65534).
    let d = Daemon::start("group");
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = d.dir.join("shared/control.sock");
    let server = ControlServer::bind(
        &socket,
        d.handle.clone(),
        ServerConfig {
            group: Some(1),
            ..ServerConfig::default()
        },
    )
    .unwrap();
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta(&socket).mode() & 0o777, meta(&socket).gid()),
        (0o660, 1)
    );
    let dir = socket.parent().unwrap();
    assert_eq!((meta(dir).mode() & 0o777, meta(dir).gid()), (0o750, 1));
    // nobody may not reach the build's own copy (a checkout under /root, say): use one here.
    let ctl = d.dir.join("statewallctl");
    std::fs::copy(env!("CARGO_BIN_EXE_statewallctl"), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |gid: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups"])
            .arg(&ctl)
            .arg("--socket")
            .arg(&socket)
            .arg("stats")
            .output()
            .expect("setpriv (util-linux)")
    };
    let member = as_nobody("1");
    assert!(member.status.success(), "a member of the group: {member:?}");
    assert!(String::from_utf8_lossy(&member.stdout).contains("total"));
    let other = as_nobody("65534");
    assert!(!other.status.success(), "not a member: {other:?}");
    assert!(
        stderr(&other).contains("cannot connect"),
        "{}",
        stderr(&other)
    );
    // The default socket stays root-only.
    assert_eq!(meta(&d.socket).mode() & 0o777, 0o600);
    server.shutdown();
}

#[test]
fn control_group_names_and_numbers() {
    assert_eq!(resolve_group("0"), Ok(0));
    assert_eq!(resolve_group("root"), Ok(0));
    let e = resolve_group("no-such-group-here").unwrap_err();
    assert!(
        e.contains("not in /etc/group") && e.contains("groupadd"),
        "{e}"
    );
}

#[test]
fn apply_good_and_bad_rulesets() {
    let d = Daemon::start("apply");
    let strict = d.file(
        "strict.yaml",
        &seed().replace("dport: 80\n", "dport: 443\n"),
    );
    let out = d.ok(&["apply", &strict]);
    assert!(out.contains("generation 2 (was 1)"), "{out}");
    // A typo: refused with file:line:col, the generation stays.
    let bad = d.file("bad.yaml", &seed().replace("policy: drop", "policy: dorp"));
    let o = d.ctl(&["apply", &bad]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(&o);
    let line = seed()
        .lines()
        .position(|l| l.contains("policy: drop"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("{bad}:{line}:")), "{err}");
    assert!(err.contains("running ruleset is unchanged"), "{err}");
    let Payload::Show(s) = data(&d.json(&["show"])).clone() else {
        panic!()
    };
    assert_eq!(s.generation, 2);
    assert!(s.file.ends_with("strict.yaml"));
    // JSON: the diagnostics are structured.
    let r = d.json(&["apply", &bad]);
    let Outcome::Error { error } = &r.result else {
        panic!("{r:?}")
    };
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        (
            error.diagnostics[0].line,
            error.diagnostics[0].file.as_str()
        ),
        (line, bad.as_str())
    );
    // Ports cannot change while running.
    let ports = d.file(
        "ports.yaml",
        &format!("ports: {{lan: eth9, wan: wan}}\n{}", seed()),
    );
    let o = d.ctl(&["apply", &ports]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ports differ"), "{}", stderr(&o));
    // check validates without applying.
    assert!(d.ok(&["check", &strict]).contains("valid"));
    assert_eq!(d.ctl(&["check", &bad]).status.code(), Some(1));
    assert_eq!(d.handle.generation(), 2);
    // A missing file is the client's error.
    assert_eq!(
        d.ctl(&["apply", "/nonexistent.yaml"]).status.code(),
        Some(3)
    );
}

#[test]
fn chains_are_shown_with_the_rule_that_decided_counted() {
    let d = Daemon::start("chains");
    let chained = d.file(
        "chained.yaml",
        "forward:
  policy: drop
  rules:
    - {ctstate: invalid, action: drop}
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, ctstate: new, action: {jump: lan-new}}
  chains:
    lan-new:
      - {proto: tcp, dport: 22, action: accept, comment: ssh}
      - {proto: tcp, dport: 80, action: accept, comment: web}
      - {action: return}
",
    );
    assert!(d.ok(&["apply", &chained]).contains("generation 2"));
    d.traffic(10);
    let Payload::Show(sh) = data(&d.json(&["show"])).clone() else {
        panic!()
    };
    let fwd = sh.stages.iter().find(|s| s.name == "forward").unwrap();
    let rows: Vec<(usize, Option<&str>, &str, u64)> = fwd
        .rules
        .iter()
        .map(|r| (r.index, r.chain.as_deref(), r.action.as_str(), r.packets))
        .collect();
    // The 10 SYNs are counted at the rule that accepted them, not at the jump.
    assert_eq!(
        rows,
        [
            (0, None, "drop", 0),
            (1, None, "accept", 30),
            (2, None, "jump lan-new", 0),
            (3, Some("lan-new"), "accept", 0),
            (4, Some("lan-new"), "accept", 10),
            (5, Some("lan-new"), "return", 0),
        ]
    );
    let human = d.ok(&["show"]);
    let at = human.find("  chain lan-new").expect(&human);
    assert!(human[at..].contains("web"), "{human}");
    assert!(human.contains("jump lan-new"), "{human}");
}

/// Rules that go on with a mark action are counted as `log` rules are: every packet they
/// marked, though they decide nothing.
#[test]
fn mark_rules_are_counted_though_they_decide_nothing() {
    let d = Daemon::start("marks");
    let marked = d.file(
        "marked.yaml",
        "mangle:
  rules:
    - {in_port: lan, ctstate: new, action: {connmark: 0x1}}
    - {action: restore_mark}
forward:
  policy: drop
  rules:
    - {mark: 0x1, action: accept}
",
    );
    assert!(d.ok(&["apply", &marked]).contains("generation 2"));
    d.traffic(10);
    let Payload::Show(sh) = data(&d.json(&["show"])).clone() else {
        panic!()
    };
    let counts = |name: &str| -> Vec<u64> {
        let st = sh.stages.iter().find(|s| s.name == name).unwrap();
        st.rules.iter().map(|r| r.packets).collect()
    };
    // 10 TCP connections of 4 packets, a DNS query and a ping: each first packet sets the
    // connection's mark, every packet restores it, and forward accepts all of them on it.
    assert_eq!(counts("mangle"), [12, 42]);
    assert_eq!(counts("forward"), [42]);
    assert!(d.ok(&["show"]).contains("mangle (policy accept"));
}

#[test]
fn apply_watch_follows_the_file() {
    let d = Daemon::start("watch");
    let path = d.file("watched.yaml", &seed());
    let mut child = Command::new(env!("CARGO_BIN_EXE_statewallctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["apply", "--watch", "--interval-ms", "50", &path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_gen = |g: u32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.handle.generation() < g {
            assert!(Instant::now() < deadline, "generation {g} not reached");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_gen(2);
    std::fs::write(&path, seed().replace("dport: 80\n", "dport: 8000\n")).unwrap();
    wait_gen(3);
    // A broken edit is refused; the next good one applies.
    std::fs::write(&path, "forward: [").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.handle.generation(), 3);
    std::fs::write(&path, seed()).unwrap();
    wait_gen(4);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn stats_show_hist_and_conntrack() {
    let d = Daemon::start("stats");
    d.traffic(10);
    let Payload::Stats(s) = data(&d.json(&["stats", "--per-core"])).clone() else {
        panic!()
    };
    assert_eq!(s.workers, 2);
    assert_eq!(s.per_core.len(), 2);
    assert_eq!(s.total.rx_packets, 42);
    assert_eq!(s.total.rx_packets, s.total.accepted + s.total.dropped_total);
    assert_eq!(
        s.total.entries, 11,
        "10 TCP, 1 ICMP (UDP 53 is not allowed)"
    );
    assert!(
        s.total.handoffs_out > 0,
        "replies arrive on the other worker's queue"
    );
    let human = d.ok(&["stats", "--per-core"]);
    assert!(
        human.contains("core0") && human.contains("core1") && human.contains("total"),
        "{human}"
    );
    assert!(human.contains("ctstate: established="), "{human}");

    let show = d.ok(&["show"]);
    assert!(show.contains("generation 1 from seed.yaml"), "{show}");
    assert!(show.contains("# web"), "{show}");
    let Payload::Show(sh) = data(&d.json(&["show"])).clone() else {
        panic!()
    };
    let fwd = sh.stages.iter().find(|s| s.name == "forward").unwrap();
    assert_eq!(fwd.rules[2].packets, 10, "rule 2 accepted the 10 SYNs");
    assert_eq!(
        fwd.rules.iter().map(|r| r.packets).sum::<u64>() + fwd.policy_packets,
        42
    );

    let hist = d.ok(&["hist", "--per-core"]);
    assert!(
        hist.contains("forwarded") && hist.contains("p99") && hist.contains("[1]"),
        "{hist}"
    );
    let Payload::Hist(h) = data(&d.json(&["hist", "--reset"])).clone() else {
        panic!()
    };
    assert_eq!(h.total.forwarded.count + h.total.dropped.count, 42);
    assert!(!h.total.forwarded.buckets.is_empty());
    let Payload::Hist(h) = data(&d.json(&["hist"])).clone() else {
        panic!()
    };
    assert_eq!(h.total.forwarded.count, 0, "reset");

    let list = d.ok(&["conntrack", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 11, "{list}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("ipv4     2 ") && l.ends_with("mark=0 use=1")),
        "{list}"
    );
    assert!(
        list.contains("ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000 dport=80"),
        "{list}"
    );
    assert_eq!(d.ok(&["conntrack", "count"]).trim(), "11");
    assert_eq!(d.ok(&["conntrack", "count", "-p", "icmp"]).trim(), "1");
    assert_eq!(
        d.ok(&["conntrack", "list", "--dport", "80", "--sport", "40003"])
            .lines()
            .count(),
        1
    );
    let get = d.ok(&[
        "conntrack",
        "get",
        "-p",
        "tcp",
        "-s",
        "10.10.0.3",
        "-d",
        "10.10.0.2",
        "--sport",
        "80",
        "--dport",
        "40001",
    ]);
    assert!(get.contains("sport=40001 dport=80"), "{get}");
    assert_eq!(
        d.ctl(&["conntrack", "get", "-p", "tcp"]).status.code(),
        Some(1)
    );
    assert_eq!(
        d.ctl(&["conntrack", "list", "--state", "BOGUS"])
            .status
            .code(),
        Some(1)
    );
    assert!(d
        .ok(&["conntrack", "flush", "-p", "icmp"])
        .contains("1 flow entries have been deleted"));
    assert_eq!(d.ok(&["conntrack", "count"]).trim(), "10");
    assert!(d.ok(&["conntrack", "flush"]).contains("10 flow entries"));
    assert_eq!(d.ok(&["conntrack", "count"]).trim(), "0");
    // An empty table: `list` prints no line (its output parses as /proc/net/nf_conntrack),
    // `flush` says it deleted 0, `get` of a missing tuple fails as `conntrack -G` does.
    assert_eq!(d.ok(&["conntrack", "list"]), "");
    assert_eq!(
        d.ok(&["conntrack", "flush"]).trim(),
        "0 flow entries have been deleted."
    );
    let missing = d.ctl(&[
        "conntrack",
        "get",
        "-p",
        "tcp",
        "-s",
        "10.10.0.2",
        "-d",
        "10.10.0.3",
        "--sport",
        "40001",
        "--dport",
        "80",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    assert!(
        stderr(&missing).contains("no conntrack entry"),
        "{}",
        stderr(&missing)
    );
    let Payload::Stats(s) = data(&d.json(&["stats"])).clone() else {
        panic!()
    };
    assert_eq!(s.total.entries, 0);
}

#[test]
fn get_and_set_settings() {
    let d = Daemon::start("settings");
    assert_eq!(d.ok(&["get", "udp_timeout"]).trim(), "udp_timeout = 30");
    let out = d.ok(&["set", "udp_timeout", "10"]);
    assert!(out.contains("udp_timeout = 10 (generation 2)"), "{out}");
    assert_eq!(d.ok(&["get", "udp_timeout"]).trim(), "udp_timeout = 10");
    assert!(d.ok(&["show"]).contains("udp_timeout=10"));
    let o = d.ctl(&["set", "udp_timeout", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("allowed 1 to"), "{}", stderr(&o));
    let o = d.ctl(&["set", "udp_timout", "5"]);
    assert!(
        stderr(&o).contains("did you mean `udp_timeout`"),
        "{}",
        stderr(&o)
    );
    let o = d.ctl(&["set", "max", "1000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("restart"), "{}", stderr(&o));
    assert_eq!(d.handle.generation(), 2);
}

/// Send raw bytes, read one reply line.
fn raw(socket: &Path, bytes: &[u8]) -> Reply {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    Reply::from_line(line.trim()).unwrap()
}

fn kind(r: &Reply) -> ErrorKind {
    match &r.result {
        Outcome::Error { error } => error.kind,
        Outcome::Ok { .. } => panic!("expected an error: {r:?}"),
    }
}

#[test]
fn abuse_gets_structured_errors() {
    let d = Daemon::start("abuse");
    assert_eq!(kind(&raw(&d.socket, b"hello there\n")), ErrorKind::BadJson);
    assert_eq!(
        kind(&raw(&d.socket, b"{\"v\":9,\"id\":4,\"cmd\":\"show\"}\n")),
        ErrorKind::BadVersion
    );
    assert_eq!(
        kind(&raw(&d.socket, b"{\"v\":1,\"id\":4,\"cmd\":\"reboot\"}\n")),
        ErrorKind::BadRequest
    );
    assert_eq!(kind(&raw(&d.socket, b"\xff\xfe\n")), ErrorKind::BadJson);
    let mut big = vec![b'x'; 100 * 1024];
    big.push(b'\n');
    assert_eq!(kind(&raw(&d.socket, &big)), ErrorKind::TooLarge);
    // Silent: nothing, or half a line.
    assert_eq!(kind(&raw(&d.socket, b"")), ErrorKind::Timeout);
    assert_eq!(kind(&raw(&d.socket, b"{\"v\":1,")), ErrorKind::Timeout);
    // After garbage, the same connection still serves a good request.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"garbage\n{\"v\":1,\"id\":77,\"cmd\":\"get\",\"key\":\"tcp_loose\"}\n")
        .unwrap();
    let mut r = BufReader::new(&s);
    let mut l1 = String::new();
    let mut l2 = String::new();
    r.read_line(&mut l1).unwrap();
    r.read_line(&mut l2).unwrap();
    assert_eq!(
        kind(&Reply::from_line(l1.trim()).unwrap()),
        ErrorKind::BadJson
    );
    let ok = Reply::from_line(l2.trim()).unwrap();
    assert_eq!(ok.id, Some(77));
    assert!(matches!(data(&ok), Payload::Setting(s) if s.value == "1"));
    // Workers kept working all along.
    d.traffic(2);
}

#[test]
fn fifty_concurrent_clients() {
    let d = Daemon::start("many");
    // Ten silent clients hold connections open meanwhile.
    let silent: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let children: Vec<_> = (0..50)
        .map(|i| {
            let args: &[&str] = match i % 4 {
                0 => &["--json", "stats", "--per-core"],
                1 => &["--json", "conntrack", "count"],
                2 => &["--json", "hist"],
                _ => &["--json", "get", "udp_timeout"],
            };
            Command::new(env!("CARGO_BIN_EXE_statewallctl"))
                .arg("--socket")
                .arg(&d.socket)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    d.traffic(3);
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        let r = Reply::from_line(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
        assert!(matches!(r.result, Outcome::Ok { .. }), "{r:?}");
    }
    drop(silent);
}

#[test]
fn top_shows_workers_and_totals() {
    let d = Daemon::start("top");
    // Without a terminal, top prints one frame per refresh and stops after --iterations.
    let out = d.ok(&["top", "--iterations", "2"]);
    assert_eq!(
        out.matches("statewall top: generation 1, 2 worker(s)")
            .count(),
        2,
        "{out}"
    );
    for want in [
        "rx pps",
        "entries/max",
        "p99 µs",
        "\ntotal ",
        "\n0 ",
        "\n1 ",
        "drops:",
        "ctstate:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// `top` on a real terminal (tmux): it draws, and `q` quits it, restoring the terminal.
#[test]
fn top_in_tmux_quits_on_q() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed for this test (scripts/install-deps.sh installs it)"
    );
    let d = Daemon::start("toptmux");
    let session = format!("swtop{}", std::process::id());
    let done = d.dir.join("top.exit");
    // The shell creates a redirect's file before `echo` writes to it: write a temporary file and
    // rename it, so `done` appears with its content in one step.
    let cmd = format!(
        "{ctl} --socket {sock} top; echo $? > {done}.tmp && mv {done}.tmp {done}",
        ctl = env!("CARGO_BIN_EXE_statewallctl"),
        sock = d.socket.display(),
        done = done.display()
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    assert!(tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &cmd
    ])
    .status
    .success());
    let capture = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).to_string()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !capture().contains("statewall top: generation 1") {
        assert!(
            std::time::Instant::now() < deadline,
            "top never drew:\n{}",
            capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(capture().contains("total"), "{}", capture());
    tmux(&["send-keys", "-t", &session, "q"]);
    while !done.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "top did not quit on q:\n{}",
            capture()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = std::fs::read_to_string(&done).unwrap();
    tmux(&["kill-session", "-t", &session]);
    assert_eq!(code.trim(), "0");
}

/// Save lines without their timeout (`-t N` ticks between two reads), in order.
fn untimed(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            assert_eq!(&w[..2], ["-A", "-t"], "{l}");
            w.remove(2);
            w.join(" ")
        })
        .collect();
    v.sort();
    v
}

/// The table as `(shard, family, proto, original tuple, state, assured, unreplied)`.
fn table(d: &Daemon) -> Vec<String> {
    let Payload::Conntrack(c) = data(&d.json(&["conntrack", "list"])).clone() else {
        panic!()
    };
    let mut v: Vec<String> = c
        .entries
        .iter()
        .map(|e| {
            format!(
                "{} {:?} {} {:?} {:?} {} {}",
                e.shard, e.family, e.proto, e.original, e.state, e.assured, e.unreplied
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn conntrack_save_and_restore() {
    let d = Daemon::start("save");
    d.traffic(5);
    // To standard output, in conntrack-tools' format; the count on standard error.
    let o = d.ctl(&["conntrack", "save"]);
    assert!(o.status.success(), "{o:?}");
    let saved = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(saved.lines().count(), 6, "5 TCP, 1 ICMP: {saved}");
    assert!(
        stderr(&o).contains("6 flow entries have been saved."),
        "{o:?}"
    );
    assert!(
        saved.contains(" -u SEEN_REPLY,ASSURED -s 10.10.0.2 -d 10.10.0.3 -r 10.10.0.3 -q 10.10.0.2 -p tcp --sport 40000 --dport 80 --reply-port-src 80 --reply-port-dst 40000 --state ESTABLISHED\n"),
        "{saved}"
    );
    assert!(
        saved.contains(" -u UNSET -s 10.10.0.2 -d 10.10.0.3 -r 10.10.0.3 -q 10.10.0.2 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 7\n"),
        "{saved}"
    );
    // To a file: the same lines, readable by the owner only.
    let path = d.dir.join("table.save");
    let file = path.display().to_string();
    d.ok(&["conntrack", "save", &file]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(untimed(&text), untimed(&saved));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Gone and back: each entry in the shard that owns it, as before.
    let before = table(&d);
    d.ok(&["conntrack", "flush"]);
    assert_eq!(d.ok(&["conntrack", "count"]).trim(), "0");
    assert_eq!(
        d.ok(&["conntrack", "restore", &file]),
        "restored: 6 added, 0 already present, 0 expired\n"
    );
    assert_eq!(table(&d), before);
    assert_eq!(untimed(&d.ok(&["conntrack", "save"])), untimed(&saved));
    // Again, from standard input: all there already.
    let o = d.ctl_stdin(&["conntrack", "restore"], &text);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "restored: 0 added, 6 already present, 0 expired\n"
    );

    // The restored connections go on mid-stream: their next segments, both ways, are
    // ESTABLISHED and forwarded, though the entries came without window data.
    let stats = |d: &Daemon| {
        let Payload::Stats(s) = data(&d.json(&["stats"])).clone() else {
            panic!()
        };
        s.total
    };
    let t0 = stats(&d);
    let (c, srv) = ("10.10.0.2:40002", "10.10.0.3:80");
    let data_seg = Tcp {
        seq: 106,
        ack: 901,
        ..Tcp::new(c, srv, ACK | PSH)
    }
    .payload(b"more".to_vec())
    .frame();
    let ack_seg = Tcp {
        seq: 901,
        ack: 110,
        ..Tcp::new(srv, c, ACK)
    }
    .frame();
    d.net.inject(0, 0, &data_seg);
    d.settle(t0.processed + 1);
    d.net.inject(1, 1, &ack_seg);
    d.settle(t0.processed + 2);
    let t1 = stats(&d);
    assert_eq!(t1.accepted - t0.accepted, 2, "{t1:?}");
    assert_eq!(t1.ctstate["established"] - t0.ctstate["established"], 2);
    assert_eq!(t1.invalid, t0.invalid);

    // A Linux box's `conntrack -L -o save` (conntrack-tools 1.4.7, Linux 6.18).
    let kernel = std::fs::read_to_string(
        root().join("dataplane/fuzz/seeds/conntrack_save/kernel-1.4.7.txt"),
    )
    .unwrap();
    let n = kernel.lines().filter(|l| l.starts_with("-A")).count();
    let o = d.ctl_stdin(&["conntrack", "restore", "-"], &kernel);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("restored: {n} added, 0 already present, 0 expired\n")
    );
    let list = d.ok(&["conntrack", "list"]);
    for want in [
        "unknown  50 ",
        "gre      47 ",
        "ipv6     10 tcp      6 ",
        "type=128 code=0 id=9",
        "TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=40006 dport=443",
    ] {
        assert!(list.contains(want), "{want}: {list}");
    }
    // The FTP helper watches a restored control connection, as a new one.
    assert!(
        list.contains("sport=40001 dport=21 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=21 dport=40001 helper=ftp "),
        "{list}"
    );
    let count = d.ok(&["conntrack", "count"]);
    assert_eq!(count.trim(), (6 + n).to_string());

    // Bad lines: every one said with file:line:col, and nothing added.
    let bad = d.file(
        "bad.save",
        "-A -t 30 -u UNSET -s 10.9.0.1 -d 10.0.0.2 -p 50\n\
         -A -t 30 -s 10.9.0.2 -d 10.0.0.2 -g 192.0.2.7 -q 10.9.0.2 -p 50\n\
         # a comment\n\
         conntrack -L\n",
    );
    let o = d.ctl(&["conntrack", "restore", &bad]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{bad}:2:34: `-g`: the entry is destination-NAT'd: its reply source is not the original destination; Statewall does no NAT"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{bad}:4:1: `conntrack` is not a command that adds an entry"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "2 bad lines in {bad}; nothing was restored (invalid_entries)"
        )),
        "{err}"
    );
    assert_eq!(d.ok(&["conntrack", "count"]), count);
    let r = d.json(&["conntrack", "restore", &bad]);
    let Outcome::Error { error } = &r.result else {
        panic!("{r:?}")
    };
    assert_eq!(error.kind, ErrorKind::InvalidEntries);
    assert_eq!(
        error
            .diagnostics
            .iter()
            .map(|d| (d.line, d.col))
            .collect::<Vec<_>>(),
        [(2, 34), (4, 1)]
    );

    // A large input goes in pieces: a bad line near the end stops all of it, then without
    // it every entry is added (and one whose timeout is 0 counts as expired).
    let big_line = |i: usize| {
        format!(
            "-A -t 600 -u SEEN_REPLY -s 10.20.{}.{} -d 10.30.0.1 -r 10.30.0.1 -q 10.20.{}.{} -p udp --sport {} --dport 53 --reply-port-src 53 --reply-port-dst {}\n",
            i / 250,
            i % 250 + 1,
            i / 250,
            i % 250 + 1,
            1024 + i,
            1024 + i
        )
    };
    let mut big: String = (0..3000).map(big_line).collect();
    big.push_str("-A -t 0 -u UNSET -s 10.21.0.1 -d 10.30.0.1 -p 50\n");
    assert!(big.len() > 6 * 32 * 1024, "several pieces");
    let mut broken = big.clone();
    broken.push_str(
        "-A -t 600 -s 10.21.0.2 -d 10.30.0.1 -p udp --sport 1 --dport 53 --reply-port-dst 9\n",
    );
    let o = d.ctl_stdin(&["conntrack", "restore"], &broken);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("<stdin>:3002:82: the reply tuple is not the inverse"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["conntrack", "count"]), count);
    let o = d.ctl_stdin(&["conntrack", "restore"], &big);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "restored: 3000 added, 0 already present, 1 expired\n"
    );
    assert_eq!(
        d.ok(&["conntrack", "count"]).trim(),
        (6 + n + 3000).to_string()
    );

    // JSON: the lines in the reply; filters choose what is saved.
    let Payload::Conntrack(c) =
        data(&d.json(&["conntrack", "save", "-p", "icmp", "-f", "ipv4"])).clone()
    else {
        panic!()
    };
    assert_eq!(c.lines.len(), 3, "{:?}", c.lines);
    // SCTP has no save line (conntrack -R needs its state): left out, and said so.
    let sctp = "-A -t 600 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p sctp --sport 1 --dport 2 --reply-port-src 2 --reply-port-dst 1 --state ESTABLISHED --orig-vtag 10 --reply-vtag 11\n";
    assert!(d
        .ctl_stdin(&["conntrack", "restore"], sctp)
        .status
        .success());
    let o = d.ctl(&["conntrack", "save", "-p", "sctp"]);
    assert!(o.status.success() && o.stdout.is_empty(), "{o:?}");
    assert!(
        stderr(&o).contains("1 SCTP/DCCP entries were left out"),
        "{o:?}"
    );
    // Usage: a file only with save and restore, no filter with restore.
    assert_eq!(d.ctl(&["conntrack", "list", &file]).status.code(), Some(2));
    assert_eq!(
        d.ctl(&["conntrack", "restore", "-p", "tcp", &file])
            .status
            .code(),
        Some(2)
    );
}
