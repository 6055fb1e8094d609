//! `--metrics`: the Prometheus endpoint over a running (in-memory) runtime, scraped over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use dataplane::runtime::mem::MemNet;
use dataplane::runtime::metrics::{parse_addr, MetricsServer};
use dataplane::runtime::{Runtime, RuntimeConfig};
use engine::packet::tcp_flags::SYN;
use engine::wire::build::Tcp;

const RULES: &str = "
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {proto: tcp, dport: 80, ctstate: new, action: accept}
";

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn metrics_are_scraped_over_http() {
    assert_eq!(parse_addr("9100").unwrap().to_string(), "127.0.0.1:9100");
    assert!(parse_addr("nope").unwrap_err().contains("HOST:PORT"));

    let ruleset = config::load_str(RULES, "m.yaml").unwrap().ruleset;
    let net = MemNet::new(2, 1);
    let cfg = RuntimeConfig {
        pin: false,
        io_mode: vec!["memory".into()],
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(&ruleset, RULES, "m.yaml", vec![net.ports_for(0)], &cfg).unwrap();
    let syn = Tcp::new("10.0.0.2:40000", "10.0.0.3:80", SYN).frame();
    let other = Tcp::new("10.0.0.2:40001", "10.0.0.3:22", SYN).frame();
    net.inject(0, 0, &syn);
    net.inject(0, 0, &other);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.handle().stats(false).total.processed < 2 {
        assert!(Instant::now() < deadline, "packets not processed");
        std::thread::sleep(Duration::from_millis(5));
    }

    let m = MetricsServer::bind(parse_addr("127.0.0.1:0").unwrap(), rt.handle()).unwrap();
    let body = get(m.addr, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    for line in [
        "statewall_ruleset_generation 1",
        "statewall_rx_packets_total{worker=\"0\"} 2",
        "statewall_accepted_total{worker=\"0\"} 1",
        "statewall_dropped_total{worker=\"0\",reason=\"policy\"} 1",
        "statewall_ctstate_packets_total{worker=\"0\",state=\"new\"} 2",
        "statewall_conntrack_entries{worker=\"0\"} 1",
        "# TYPE statewall_latency_ns summary",
    ] {
        assert!(body.contains(line), "missing `{line}` in:\n{body}");
    }
    assert!(get(m.addr, "/nope").starts_with("HTTP/1.1 404"));
    m.shutdown();
    rt.stop();
}
