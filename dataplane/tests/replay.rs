//! `statewall replay` as a user runs it: the binary, capture files on disk, JSON lines out.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use engine::packet::tcp_flags::{ACK, SYN};
use engine::wire::build::{Tcp, Udp};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

const SEC: u64 = 1_000_000_000;

const RULES: &str = r"
ports: {lan: veth-lan, wan: veth-wan}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: 80, ctstate: new, action: accept}
    - {in_port: lan, proto: udp, dport: 53, ctstate: new, action: accept}
";

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sw-replay-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }

    fn write(&self, f: &str, text: &str) -> PathBuf {
        let p = self.path(f);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pcapng with one interface per port name, nanosecond timestamps.
fn write_pcapng(path: &Path, ports: &[&str], frames: &[(u64, usize, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapNgWriter::new(f).unwrap();
    for p in ports {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned((*p).to_string())),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(idb).unwrap();
    }
    for (ts, iface, data) in frames {
        let epb = EnhancedPacketBlock {
            interface_id: *iface as u32,
            timestamp: Duration::from_nanos(*ts),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        w.write_pcapng_block(epb).unwrap();
    }
}

fn statewall(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statewall"))
        .args(args)
        .output()
        .unwrap()
}

fn replay(config: &Path, pcap: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--pcap".as_ref(),
        pcap.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    statewall(&args)
}

fn lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn handshake() -> Vec<(u64, usize, Vec<u8>)> {
    vec![
        (
            SEC,
            0,
            Tcp {
                seq: 100,
                ..Tcp::new("10.10.0.2:40000", "10.10.0.3:80", SYN)
            }
            .frame(),
        ),
        (
            SEC + 1000,
            1,
            Tcp {
                seq: 900,
                ack: 101,
                ..Tcp::new("10.10.0.3:80", "10.10.0.2:40000", SYN | ACK)
            }
            .frame(),
        ),
        (
            SEC + 2000,
            0,
            Tcp {
                seq: 101,
                ack: 901,
                ..Tcp::new("10.10.0.2:40000", "10.10.0.3:80", ACK)
            }
            .frame(),
        ),
        (
            SEC + 3000,
            0,
            Tcp {
                seq: 7,
                ..Tcp::new("10.10.0.2:40001", "10.10.0.3:8080", SYN)
            }
            .frame(),
        ),
    ]
}

#[test]
fn pcapng_interface_names_give_ports_and_states_follow_the_kernel() {
    let s = Scratch::new("states");
    let cfg = s.write("rules.yaml", RULES);
    let cap = s.path("hs.pcapng");
    write_pcapng(&cap, &["lan", "wan"], &handshake());
    let out = replay(&cfg, &cap, &[]);
    let v = lines(&out);
    assert_eq!(v.len(), 4);
    assert_eq!(
        v[0],
        serde_json::json!({"index":0,"port":"lan","verdict":"accept","ctstate":"new","rule":2,"reason":"rule"})
    );
    assert_eq!(v[1]["port"], "wan");
    assert_eq!(v[1]["ctstate"], "established");
    assert_eq!(v[2]["ctstate"], "established");
    assert_eq!(v[3]["verdict"], "drop");
    assert_eq!(v[3]["rule"], serde_json::Value::Null);
    assert_eq!(v[3]["reason"], "policy");
    // The exact key order of the contract.
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        first,
        r#"{"index":0,"port":"lan","verdict":"accept","ctstate":"new","rule":2,"reason":"rule"}"#
    );
}

#[test]
fn conntrack_listing_and_accepted_packets_out() {
    let s = Scratch::new("listing");
    let cfg = s.write("rules.yaml", RULES);
    let cap = s.path("hs.pcapng");
    let out_pcap = s.path("accepted.pcap");
    write_pcapng(&cap, &["lan", "wan"], &handshake());
    let out = replay(
        &cfg,
        &cap,
        &["--conntrack", "--out", out_pcap.to_str().unwrap()],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(table.len(), 1, "{text}");
    assert!(
        table[0].starts_with("ipv4     2 tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000 dport=80 src=10.10.0.3 dst=10.10.0.2 sport=80 dport=40000 [ASSURED]"),
        "{}",
        table[0]
    );
    let mut r = PcapReader::new(std::fs::File::open(&out_pcap).unwrap()).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        p.unwrap();
        n += 1;
    }
    assert_eq!(n, 3, "the dropped SYN to 8080 is not written");
}

#[test]
fn packet_timestamps_drive_timeouts() {
    let s = Scratch::new("clock");
    let cfg = s.write(
        "rules.yaml",
        &format!("conntrack: {{udp_timeout: 5}}\n{RULES}"),
    );
    let q = Udp::new("10.10.0.2:5000", "10.10.0.3:53").frame();
    let a = Udp::new("10.10.0.3:53", "10.10.0.2:5000").frame();
    let cap = s.path("udp.pcapng");
    write_pcapng(
        &cap,
        &["lan", "wan"],
        &[
            (0, 0, q.clone()),
            (SEC, 1, a.clone()),
            (SEC + SEC / 2, 0, q.clone()),
            (9 * SEC, 0, q.clone()),
            (20 * SEC, 1, a),
        ],
    );
    let v = lines(&replay(&cfg, &cap, &[]));
    let states: Vec<&str> = v.iter().map(|x| x["ctstate"].as_str().unwrap()).collect();
    // The reply at 1 s; the query at 1.5 s is within udp_timeout and within the first 2 s
    // (no stream yet); 5 s later the entry is gone, so the query at 9 s is NEW; the late
    // answer at 20 s finds nothing and starts a flow from the WAN side, which no rule allows.
    assert_eq!(states, ["new", "established", "established", "new", "new"]);
    assert_eq!(v[4]["verdict"], "drop");
}

#[test]
fn classic_pcap_needs_ingress() {
    let s = Scratch::new("classic");
    let cfg = s.write("rules.yaml", RULES);
    let cap = s.path("one.pcap");
    {
        let f = std::fs::File::create(&cap).unwrap();
        let mut w = PcapWriter::with_header(
            f,
            PcapHeader {
                datalink: DataLink::ETHERNET,
                ..PcapHeader::default()
            },
        )
        .unwrap();
        let frame = Udp::new("10.10.0.2:5000", "10.10.0.3:53").frame();
        w.write_packet(&PcapPacket::new(
            Duration::from_secs(1),
            frame.len() as u32,
            &frame,
        ))
        .unwrap();
    }
    let out = replay(&cfg, &cap, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ingress"), "{err}");
    let v = lines(&replay(&cfg, &cap, &["--ingress", "lan"]));
    assert_eq!(v[0]["ctstate"], "new");
    let out = replay(&cfg, &cap, &["--ingress", "dmz"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`dmz`") && err.contains("lan, wan"),
        "{err}"
    );
}

#[test]
fn corrupt_or_truncated_captures_are_errors_not_crashes() {
    let s = Scratch::new("corrupt");
    let cfg = s.write("rules.yaml", RULES);
    let good = s.path("good.pcapng");
    write_pcapng(&good, &["lan", "wan"], &handshake());
    let bytes = std::fs::read(&good).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "garbage",
            b"this is not a capture at all, just text".to_vec(),
        ),
        ("truncated", bytes[..bytes.len() - 7].to_vec()),
        ("cut-header", bytes[..30].to_vec()),
    ];
    let mut flipped = bytes.clone();
    flipped[8] ^= 0xff; // the section header's byte-order magic
    cases.push(("flipped", flipped));
    for (name, data) in cases {
        let p = s.path(&format!("{name}.pcapng"));
        std::fs::write(&p, data).unwrap();
        let out = replay(&cfg, &p, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.starts_with("statewall: "), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn bad_config_is_reported_with_position() {
    let s = Scratch::new("badcfg");
    let cfg = s.write(
        "rules.yaml",
        "forward:\n  rules:\n    - {action: accept, dport: 80}\n",
    );
    let cap = s.path("hs.pcapng");
    write_pcapng(&cap, &["lan", "wan"], &handshake());
    let out = replay(&cfg, &cap, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.yaml:3:") && err.contains("`dport` needs a protocol"),
        "{err}"
    );
}
