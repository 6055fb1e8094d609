//! Simulated multi-worker engine on a fake clock: splitting flows over N shards (owner =
//! symmetric hash % N, ICMP errors to the quoted flow's owner, shared expectations) must give
//! exactly what one shard gives, packet for packet, and the same table.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use engine::conntrack::listing;
use engine::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use engine::pipeline::{Outcome, Packet};
use engine::sharded::Sharded;
use engine::wire::build::{Icmp, Udp};

const RULES: &str = r"
helpers: {ftp: {ports: [21]}}
conntrack: {udp_timeout: 10}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: [21, 80, 443], ctstate: new, action: accept}
    - {in_port: lan, proto: udp, dport: 53, ctstate: new, action: accept}
    - {in_port: lan, proto: icmp, icmp_type: echo-request, action: accept}
";

/// A small deterministic generator (xorshift), so the trace is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn host(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 10, (i >> 8) as u8, i as u8))
}

/// `(time ns, ingress port, frame)`.
type Trace = Vec<(u64, u8, Vec<u8>)>;

fn tcp(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    common::tcp_seg(src, dst, flags, seq, ack)
        .payload(data.to_vec())
        .frame()
}

fn trace(seed: u64, flows: usize) -> Trace {
    let mut r = Rng(seed);
    let mut t: Trace = Vec::new();
    let mut now = 0u64;
    let server = host(0x0203);
    for f in 0..flows {
        now += r.below(50_000_000);
        let client = host(0x0100 + r.below(200));
        let sport = 20_000 + f as u16;
        match r.below(6) {
            0 | 1 => {
                // A TCP connection, maybe refused, maybe with data, maybe closed.
                let dport = [80, 443, 8080][r.below(3) as usize];
                let (c, s) = ((client, sport), (server, dport));
                t.push((now, 0, tcp(c, s, SYN, 100, 0, b"")));
                if r.below(5) == 0 {
                    t.push((now + 1, 1, tcp(s, c, RST | ACK, 0, 101, b"")));
                    continue;
                }
                t.push((now + 1, 1, tcp(s, c, SYN | ACK, 900, 101, b"")));
                t.push((now + 2, 0, tcp(c, s, ACK, 101, 901, b"")));
                t.push((
                    now + 3,
                    0,
                    tcp(c, s, ACK | PSH, 101, 901, b"GET / HTTP/1.1\r\n\r\n"),
                ));
                t.push((now + 4, 1, tcp(s, c, ACK | PSH, 901, 119, &[b'x'; 200])));
                if r.below(2) == 0 {
                    t.push((now + 5, 0, tcp(c, s, FIN | ACK, 119, 1101, b"")));
                    t.push((now + 6, 1, tcp(s, c, FIN | ACK, 1101, 120, b"")));
                    t.push((now + 7, 0, tcp(c, s, ACK, 120, 1102, b"")));
                }
                if r.below(4) == 0 {
                    // Out of window.
                    t.push((now + 8, 0, tcp(c, s, ACK, 5_000_000, 1102, b"zz")));
                }
            }
            2 => {
                let q = Udp::new((client, sport), (server, 53))
                    .payload(b"q".to_vec())
                    .frame();
                t.push((now, 0, q.clone()));
                if r.below(3) > 0 {
                    t.push((
                        now + 1,
                        1,
                        Udp::new((server, 53), (client, sport))
                            .payload(b"a".to_vec())
                            .frame(),
                    ));
                } else {
                    // Port unreachable quoting the query: RELATED, on the query's shard.
                    t.push((
                        now + 1,
                        1,
                        Icmp::port_unreachable(server, client, &q).frame(),
                    ));
                }
                if r.below(2) == 0 {
                    // Again after the timeout may have passed.
                    t.push((now + r.below(20) * 1_000_000_000, 0, q));
                }
            }
            3 => {
                let id = r.below(65535) as u16;
                t.push((now, 0, Icmp::echo_request(client, server, id, 1).frame()));
                t.push((now + 1, 1, Icmp::echo_reply(server, client, id, 1).frame()));
                if r.below(3) == 0 {
                    t.push((
                        now + 2,
                        1,
                        Icmp::echo_reply(server, client, id ^ 0x5555, 1).frame(),
                    ));
                }
            }
            4 => {
                // Passive FTP: control connection, PASV, data connection on another shard.
                let (c, s) = ((client, sport), (server, 21));
                let port = 30_000 + f as u16;
                t.push((now, 0, tcp(c, s, SYN, 10, 0, b"")));
                t.push((now + 1, 1, tcp(s, c, SYN | ACK, 500, 11, b"")));
                t.push((now + 2, 0, tcp(c, s, ACK, 11, 501, b"")));
                let hello = b"220 ready\r\n";
                t.push((now + 3, 1, tcp(s, c, ACK | PSH, 501, 11, hello)));
                let pasv = b"PASV\r\n";
                t.push((now + 4, 0, tcp(c, s, ACK | PSH, 11, 512, pasv)));
                let reply = format!(
                    "227 Entering Passive Mode (10,10,2,3,{},{}).\r\n",
                    port >> 8,
                    port & 0xff
                );
                t.push((now + 5, 1, tcp(s, c, ACK | PSH, 512, 17, reply.as_bytes())));
                let (dc, ds) = ((client, sport + 10_000), (server, port));
                t.push((now + 6, 0, tcp(dc, ds, SYN, 1, 0, b"")));
                t.push((now + 7, 1, tcp(ds, dc, SYN | ACK, 77, 2, b"")));
            }
            _ => {
                // Unsolicited traffic from the WAN, and a stray SYN/ACK.
                t.push((
                    now,
                    1,
                    tcp((server, 80), (client, sport), SYN | ACK, 1, 1, b""),
                ));
                t.push((
                    now + 1,
                    1,
                    Udp::new((server, 9999), (client, sport)).frame(),
                ));
            }
        }
    }
    t.sort_by_key(|(ts, _, _)| *ts);
    t
}

fn run(trace: &Trace, workers: usize) -> (Vec<Outcome>, Vec<String>) {
    let rules = common::compile_yaml(RULES, "shards.yaml", 1);
    let mut e = Sharded::new(&rules, workers);
    let out = common::replay(
        &mut e,
        trace
            .iter()
            .map(|(ts, port, frame)| (*ts, *port, frame.as_slice())),
    );
    let now = trace.last().map_or(0, |x| x.0);
    let entries = e
        .pipelines()
        .iter()
        .flat_map(|p| p.shard().entries())
        .filter(|x| x.expires > now);
    (out, listing::format_all(entries, now))
}

#[test]
fn any_number_of_shards_decides_like_one() {
    for seed in [1, 7, 42] {
        let t = trace(seed, 400);
        let (one, table) = run(&t, 1);
        // The trace exercises every state.
        let states: std::collections::BTreeSet<_> = one.iter().filter_map(|o| o.ctstate).collect();
        assert_eq!(
            states.len(),
            4,
            "new, established, related, invalid: {states:?}"
        );
        for n in [2, 3, 4, 8] {
            let (many, table_n) = run(&t, n);
            for (i, (a, b)) in one.iter().zip(&many).enumerate() {
                assert_eq!(
                    (a.verdict, a.ctstate, a.rule, a.reason),
                    (b.verdict, b.ctstate, b.rule, b.reason),
                    "seed {seed}, {n} shards, packet {i}"
                );
            }
            assert_eq!(table, table_n, "seed {seed}, {n} shards");
        }
    }
}

#[test]
fn flows_really_spread_over_shards() {
    let t = trace(3, 300);
    let rules = common::compile_yaml(RULES, "shards.yaml", 1);
    let mut e = Sharded::new(&rules, 4);
    for (ts, port, frame) in &t {
        e.process_one(
            *ts,
            &Packet {
                frame,
                in_port: *port,
            },
        );
    }
    let sizes: Vec<usize> = e.pipelines().iter().map(|p| p.shard().len()).collect();
    assert!(
        sizes.iter().all(|&n| n > 0),
        "every shard holds flows: {sizes:?}"
    );
}
