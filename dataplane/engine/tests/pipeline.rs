//! The engine end to end, in memory: rulesets from YAML, frames from the builders, a fake
//! clock. Each test states what the kernel does for the same packets.

mod common;

use config::matches::CtState;
use engine::conntrack::listing;
use engine::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use engine::pipeline::{Outcome, Pipeline, Reason, Verdict};
use engine::wire::build::{self, Icmp, Tcp, Udp};

use common::{run, LAN, SEC, WAN};

/// The seed's gateway: established both ways first, invalid dropped, NEW to 80 and ICMP echo
/// from the LAN, everything else dropped.
const GATEWAY: &str = r"
ports: {lan: veth-lan, wan: veth-wan}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: [22, 80], ctstate: new, action: accept}
    - {in_port: lan, proto: udp, dport: 53, ctstate: new, action: accept}
    - {in_port: lan, proto: icmp, icmp_type: echo-request, ctstate: new, action: accept}
    - {in_port: lan, proto: tcp, dport: 8080, action: reject, reject_with: tcp-reset}
";

fn pipeline_with(yaml: &str, generation: u32) -> Pipeline {
    let rules = common::compile_yaml(yaml, "test.yaml", generation);
    let cap = rules.max_entries.min(1 << 16);
    Pipeline::new(rules, cap)
}

fn state(o: &Outcome) -> Option<CtState> {
    o.ctstate
}

const C: &str = "10.10.0.2";
const S: &str = "10.10.0.3";

fn c2s(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Tcp {
    common::tcp_seg(
        (C.parse().unwrap(), sport),
        (S.parse().unwrap(), dport),
        flags,
        seq,
        ack,
    )
}

fn s2c(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Tcp {
    common::tcp_seg(
        (S.parse().unwrap(), sport),
        (C.parse().unwrap(), dport),
        flags,
        seq,
        ack,
    )
}

#[test]
fn tcp_handshake_data_and_close() {
    let mut p = pipeline_with(GATEWAY, 1);
    let syn = run(&mut p, 0, LAN, &c2s(40000, 80, SYN, 1000, 0).frame());
    assert_eq!(
        (syn.verdict, state(&syn), syn.rule),
        (Verdict::Accept, Some(CtState::New), Some(2))
    );
    let synack = run(
        &mut p,
        SEC,
        WAN,
        &s2c(80, 40000, SYN | ACK, 5000, 1001).frame(),
    );
    assert_eq!(
        (synack.verdict, state(&synack), synack.rule),
        (Verdict::Accept, Some(CtState::Established), Some(0))
    );
    let ack = run(
        &mut p,
        2 * SEC,
        LAN,
        &c2s(40000, 80, ACK, 1001, 5001).frame(),
    );
    assert_eq!(state(&ack), Some(CtState::Established));
    let data = run(
        &mut p,
        3 * SEC,
        LAN,
        &c2s(40000, 80, ACK | PSH, 1001, 5001)
            .payload(b"GET / HTTP/1.0\r\n\r\n".to_vec())
            .frame(),
    );
    assert_eq!(
        (data.verdict, state(&data)),
        (Verdict::Accept, Some(CtState::Established))
    );
    let reply = run(
        &mut p,
        4 * SEC,
        WAN,
        &s2c(80, 40000, ACK | PSH, 5001, 1019)
            .payload(vec![b'x'; 100])
            .frame(),
    );
    assert_eq!(state(&reply), Some(CtState::Established));
    assert!(
        reply.cached || data.cached,
        "established traffic is answered from the verdict cache"
    );
    // Data outstanding unacknowledged: the shorter timeout (300 s) applies.
    let lines = listing::format_all(p.shard().entries(), 4 * SEC);
    assert!(lines[0].contains(" 300 ESTABLISHED "), "{}", lines[0]);
    run(
        &mut p,
        4 * SEC,
        LAN,
        &c2s(40000, 80, ACK, 1019, 5101).frame(),
    );
    let lines = listing::format_all(p.shard().entries(), 4 * SEC);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("ipv4     2 tcp      6 432000 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000 dport=80 src=10.10.0.3 dst=10.10.0.2 sport=80 dport=40000 [ASSURED]"), "{}", lines[0]);

    // Close: FIN from the client, ACK, FIN from the server, last ACK.
    run(
        &mut p,
        5 * SEC,
        LAN,
        &c2s(40000, 80, FIN | ACK, 1019, 5101).frame(),
    );
    run(
        &mut p,
        5 * SEC,
        WAN,
        &s2c(80, 40000, ACK, 5101, 1020).frame(),
    );
    run(
        &mut p,
        5 * SEC,
        WAN,
        &s2c(80, 40000, FIN | ACK, 5101, 1020).frame(),
    );
    let last = run(
        &mut p,
        5 * SEC,
        LAN,
        &c2s(40000, 80, ACK, 1020, 5102).frame(),
    );
    assert_eq!(state(&last), Some(CtState::Established));
    let lines = listing::format_all(p.shard().entries(), 5 * SEC);
    assert!(lines[0].contains(" 120 TIME_WAIT "), "{}", lines[0]);
}

#[test]
fn dropped_new_packet_leaves_no_state() {
    let mut p = pipeline_with(GATEWAY, 1);
    let syn = run(&mut p, 0, LAN, &c2s(40001, 8080, SYN, 1, 0).frame());
    assert_eq!(
        (syn.verdict, state(&syn), syn.rule),
        (Verdict::Drop, Some(CtState::New), Some(5))
    );
    assert_eq!(p.shard().len(), 0);
    // The server could not have answered, but if a SYN/ACK comes it is INVALID.
    let synack = run(&mut p, 1, WAN, &s2c(8080, 40001, SYN | ACK, 9, 2).frame());
    assert_eq!(
        (synack.verdict, state(&synack), synack.reason),
        (
            Verdict::Drop,
            Some(CtState::Invalid),
            Reason::Invalid(engine::reason::InvalidReason::TcpInvalidState)
        )
    );
    // A SYN from the WAN side matches no NEW rule: policy drop, no state.
    let in_syn = run(&mut p, 2, WAN, &s2c(5555, 22, SYN, 1, 0).frame());
    assert_eq!(
        (in_syn.verdict, in_syn.rule, in_syn.reason),
        (Verdict::Drop, None, Reason::Policy)
    );
    assert_eq!(p.shard().len(), 0);
}

#[test]
fn rst_as_only_reply_deletes_the_entry() {
    let mut p = pipeline_with(GATEWAY, 1);
    run(&mut p, 0, LAN, &c2s(40002, 22, SYN, 100, 0).frame());
    assert_eq!(p.shard().len(), 1);
    let rst = run(&mut p, 1, WAN, &s2c(22, 40002, RST | ACK, 0, 101).frame());
    assert_eq!(
        (rst.verdict, state(&rst)),
        (Verdict::Accept, Some(CtState::Established))
    );
    assert_eq!(
        p.shard().len(),
        0,
        "connection refused: the kernel deletes the entry"
    );
}

#[test]
fn out_of_window_segment_is_invalid() {
    let mut p = pipeline_with(GATEWAY, 1);
    run(
        &mut p,
        0,
        LAN,
        &Tcp {
            window: 1000,
            ..c2s(40003, 80, SYN, 1000, 0)
        }
        .frame(),
    );
    run(
        &mut p,
        1,
        WAN,
        &Tcp {
            window: 1000,
            ..s2c(80, 40003, SYN | ACK, 5000, 1001)
        }
        .frame(),
    );
    run(
        &mut p,
        2,
        LAN,
        &Tcp {
            window: 1000,
            ..c2s(40003, 80, ACK, 1001, 5001)
        }
        .frame(),
    );
    // Data far beyond the receiver's window.
    let o = run(
        &mut p,
        3,
        LAN,
        &Tcp {
            window: 1000,
            ..c2s(40003, 80, ACK, 900_000, 5001)
        }
        .payload(vec![0; 10])
        .frame(),
    );
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str()),
        (Verdict::Drop, Some(CtState::Invalid), "tcp_out_of_window")
    );
    // ACKing data never sent.
    let o = run(
        &mut p,
        4,
        WAN,
        &Tcp {
            window: 1000,
            ..s2c(80, 40003, ACK, 5001, 700_000)
        }
        .frame(),
    );
    assert_eq!(o.reason.as_str(), "tcp_out_of_window");
}

#[test]
fn tcp_loose_picks_up_or_refuses_mid_stream() {
    let mut p = pipeline_with(GATEWAY, 1);
    let o = run(&mut p, 0, LAN, &c2s(40004, 80, ACK, 77, 88).frame());
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::New)),
        "loose=1: picked up as NEW"
    );
    let strict = format!("conntrack: {{tcp_loose: 0}}\n{GATEWAY}");
    let mut p = pipeline_with(&strict, 1);
    let o = run(&mut p, 0, LAN, &c2s(40004, 80, ACK, 77, 88).frame());
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str()),
        (Verdict::Drop, Some(CtState::Invalid), "tcp_no_syn")
    );
}

#[test]
fn bad_flags_and_checksums() {
    let mut p = pipeline_with(GATEWAY, 1);
    let o = run(&mut p, 0, LAN, &c2s(40005, 80, SYN | FIN, 1, 0).frame());
    assert_eq!(o.reason.as_str(), "tcp_bad_flags");
    let mut f = c2s(40005, 80, SYN, 1, 0).frame();
    let n = f.len();
    f[n - 1] ^= 0xff; // last byte of the TCP header (window/urgent area): checksum breaks
    let o = run(&mut p, 0, LAN, &f);
    assert_eq!(
        (state(&o), o.reason.as_str()),
        (Some(CtState::Invalid), "bad_checksum")
    );
    // With checksum: 0 the same segment is tracked.
    let mut p = pipeline_with(&format!("conntrack: {{checksum: 0}}\n{GATEWAY}"), 1);
    let o = run(&mut p, 0, LAN, &f);
    assert_eq!(state(&o), Some(CtState::New));
    // A bad IPv4 header checksum never reaches conntrack.
    let mut f = c2s(40006, 80, SYN, 1, 0).frame();
    f[14 + 10] ^= 0x55;
    let o = run(&mut p, 0, LAN, &f);
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str()),
        (Verdict::Drop, None, "bad_ip_checksum")
    );
}

#[test]
fn udp_unreplied_replied_stream_and_timeouts() {
    let mut p = pipeline_with(GATEWAY, 1);
    let q = Udp::new("10.10.0.2:5000", "10.10.0.3:53")
        .payload(b"q".to_vec())
        .frame();
    let a = Udp::new("10.10.0.3:53", "10.10.0.2:5000")
        .payload(b"a".to_vec())
        .frame();
    assert_eq!(state(&run(&mut p, 0, LAN, &q)), Some(CtState::New));
    assert_eq!(
        state(&run(&mut p, SEC, WAN, &a)),
        Some(CtState::Established)
    );
    let e = *p.shard().entries().next().unwrap();
    assert_eq!(
        e.expires,
        SEC + 30 * SEC,
        "first reply: still the unreplied timeout"
    );
    // Past the unreplied timeout with no traffic: gone, the next query is NEW again.
    assert_eq!(state(&run(&mut p, 32 * SEC, LAN, &q)), Some(CtState::New));
    assert_eq!(
        state(&run(&mut p, 33 * SEC, WAN, &a)),
        Some(CtState::Established)
    );
    // Still active after 2 s: a stream, ASSURED, udp_timeout_stream.
    assert_eq!(
        state(&run(&mut p, 36 * SEC, LAN, &q)),
        Some(CtState::Established)
    );
    let lines = listing::format_all(p.shard().entries(), 36 * SEC);
    assert!(
        lines[0].starts_with("ipv4     2 udp      17 120 src=10.10.0.2"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("[ASSURED]"), "{}", lines[0]);
}

#[test]
fn icmp_echo_errors_and_unsolicited_replies() {
    let mut p = pipeline_with(GATEWAY, 1);
    let req = Icmp::echo_request(C, S, 7, 1).frame();
    let rep = Icmp::echo_reply(S, C, 7, 1).frame();
    assert_eq!(state(&run(&mut p, 0, LAN, &req)), Some(CtState::New));
    let o = run(&mut p, 1, WAN, &rep);
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::Established))
    );
    // An echo reply nobody asked for.
    let o = run(&mut p, 2, WAN, &Icmp::echo_reply(S, C, 99, 1).frame());
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str()),
        (
            Verdict::Drop,
            Some(CtState::Invalid),
            "icmp_unsolicited_reply"
        )
    );
    // Port unreachable about a tracked UDP flow: RELATED; about nothing: INVALID.
    let q = Udp::new("10.10.0.2:5001", "10.10.0.3:53").frame();
    run(&mut p, 3, LAN, &q);
    let unreach = Icmp::port_unreachable(S, C, &q).frame();
    let o = run(&mut p, 4, WAN, &unreach);
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::Related))
    );
    let other = Udp::new("10.10.0.2:6000", "10.10.0.3:53").frame();
    let o = run(
        &mut p,
        5,
        WAN,
        &Icmp::port_unreachable(S, C, &other).frame(),
    );
    assert_eq!(
        (state(&o), o.reason.as_str()),
        (Some(CtState::Invalid), "icmp_no_flow")
    );
    // The error does not count as the flow's reply: the next query is still NEW.
    assert_eq!(state(&run(&mut p, 6, LAN, &q)), Some(CtState::New));
}

#[test]
fn non_ip_frames_pass_and_ipv6_neighbour_discovery_is_untracked() {
    let mut p = pipeline_with(GATEWAY, 1);
    let arp = build::arp_request("10.10.0.2".parse().unwrap(), "10.10.0.3".parse().unwrap());
    let o = run(&mut p, 0, LAN, &arp);
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str(), o.out_port),
        (Verdict::Accept, None, "non_ip", Some(WAN))
    );
    let ns = Icmp::new("fd00:10::2", "ff02::1:ff00:3", 135, 0).frame();
    let o = run(&mut p, 0, LAN, &ns);
    assert_eq!(state(&o), Some(CtState::Untracked));
}

#[test]
fn raw_notrack_marks_untracked() {
    let yaml = r"
raw:
  rules: [{proto: udp, dport: 514, action: notrack}]
forward:
  policy: drop
  rules:
    - {ctstate: untracked, action: accept}
";
    let mut p = pipeline_with(yaml, 1);
    let o = run(
        &mut p,
        0,
        LAN,
        &Udp::new("10.10.0.2:514", "10.10.0.3:514").frame(),
    );
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::Untracked))
    );
    assert_eq!(p.shard().len(), 0);
    let o = run(
        &mut p,
        0,
        LAN,
        &Udp::new("10.10.0.2:515", "10.10.0.3:515").frame(),
    );
    assert_eq!((o.verdict, state(&o)), (Verdict::Drop, Some(CtState::New)));
}

#[test]
fn reload_keeps_established_flows_and_ignores_stale_cache() {
    let mut p = pipeline_with(GATEWAY, 1);
    run(&mut p, 0, LAN, &c2s(40010, 80, SYN, 1000, 0).frame());
    run(
        &mut p,
        1,
        WAN,
        &s2c(80, 40010, SYN | ACK, 5000, 1001).frame(),
    );
    let o = run(&mut p, 2, LAN, &c2s(40010, 80, ACK, 1001, 5001).frame());
    assert_eq!(o.verdict, Verdict::Accept);
    // A ruleset without the NEW allow for port 80, and that drops established port-22 only.
    let strict = r"
ports: {lan: veth-lan, wan: veth-wan}
forward:
  policy: drop
  rules:
    - {proto: tcp, dport: 22, ctstate: established, action: drop}
    - {ctstate: [established, related], action: accept}
";
    p.set_rules(common::compile_yaml(strict, "strict.yaml", 2));
    let o = run(
        &mut p,
        3,
        LAN,
        &c2s(40010, 80, ACK | PSH, 1001, 5001)
            .payload(b"x".to_vec())
            .frame(),
    );
    assert_eq!(
        (o.verdict, state(&o), o.rule, o.cached),
        (Verdict::Accept, Some(CtState::Established), Some(1), false)
    );
    let o = run(&mut p, 4, LAN, &c2s(40011, 80, SYN, 1, 0).frame());
    assert_eq!(o.verdict, Verdict::Drop, "no NEW allowed any more");
}

#[test]
fn table_full_early_drops_unassured_then_drops_new_flows() {
    let yaml = format!("conntrack: {{max: 4}}\n{GATEWAY}");
    let mut p = pipeline_with(&yaml, 1);
    // Four unanswered UDP flows fill the table; a fifth evicts one of them.
    for i in 0..5u16 {
        let o = run(
            &mut p,
            0,
            LAN,
            &Udp::new(
                ("10.10.0.2".parse::<std::net::IpAddr>().unwrap(), 1000 + i),
                "10.10.0.3:53",
            )
            .frame(),
        );
        assert_eq!(o.verdict, Verdict::Accept, "flow {i}");
    }
    assert_eq!(p.shard().len(), 4);
    assert_eq!(p.shard().stats.early_drops, 1);
    // Make all four ASSURED TCP connections: nothing may be evicted then.
    let mut p = pipeline_with(&yaml, 1);
    for i in 0..4u16 {
        let port = 41000 + i;
        run(&mut p, 0, LAN, &c2s(port, 80, SYN, 1000, 0).frame());
        run(
            &mut p,
            0,
            WAN,
            &s2c(80, port, SYN | ACK, 5000, 1001).frame(),
        );
        run(&mut p, 0, LAN, &c2s(port, 80, ACK, 1001, 5001).frame());
    }
    let o = run(&mut p, 1, LAN, &c2s(42000, 80, SYN, 1, 0).frame());
    assert_eq!(
        (o.verdict, state(&o), o.reason.as_str()),
        (Verdict::Drop, None, "table_full")
    );
    assert_eq!(p.shard().stats.table_full, 1);
    // Established flows keep working while new ones are refused.
    let o = run(
        &mut p,
        2,
        LAN,
        &c2s(41000, 80, ACK | PSH, 1001, 5001)
            .payload(b"y".to_vec())
            .frame(),
    );
    assert_eq!(o.verdict, Verdict::Accept);
}

#[test]
fn ipv6_tcp_and_icmpv6_echo() {
    let mut p = pipeline_with(
        r"
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {proto: tcp, dport: 80, ctstate: new, action: accept}
    - {proto: icmpv6, icmpv6_type: echo-request, action: accept}
",
        1,
    );
    let syn = Tcp::new("[fd00:10::2]:40000", "[fd00:10::3]:80", SYN).frame();
    assert_eq!(state(&run(&mut p, 0, LAN, &syn)), Some(CtState::New));
    let sa = Tcp {
        seq: 9,
        ack: 1,
        ..Tcp::new("[fd00:10::3]:80", "[fd00:10::2]:40000", SYN | ACK)
    }
    .frame();
    let o = run(&mut p, 1, WAN, &sa);
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::Established))
    );
    let lines = listing::format_all(p.shard().entries(), 1);
    assert!(
        lines[0].starts_with(
            "ipv6     10 tcp      6 60 SYN_RECV src=fd00:0010:0000:0000:0000:0000:0000:0002"
        ),
        "{}",
        lines[0]
    );
    let o = run(
        &mut p,
        2,
        LAN,
        &Icmp::echo_request("fd00:10::2", "fd00:10::3", 1, 1).frame(),
    );
    assert_eq!(state(&o), Some(CtState::New));
    let o = run(
        &mut p,
        3,
        WAN,
        &Icmp::echo_reply("fd00:10::3", "fd00:10::2", 1, 1).frame(),
    );
    assert_eq!(
        (o.verdict, state(&o)),
        (Verdict::Accept, Some(CtState::Established))
    );
}

/// Rules that test TCP flags without a ctstate (the usual anti-scan rules) leave the verdict
/// cache on for the flags none of them accepts: an established flow's ACKs are answered from
/// the cache, while a packet whose flags such a rule does accept is classified every time,
/// before and after cached ones.
#[test]
fn tcp_flag_rules_keep_the_cache_for_other_flags() {
    const YAML: &str = r"
ports: {lan: veth-lan, wan: veth-wan}
forward:
  policy: drop
  rules:
    - {proto: tcp, tcp_flags: {mask: all, comp: none}, action: drop}
    - {proto: tcp, tcp_flags: {mask: [syn, fin], comp: [syn, fin]}, action: drop}
    - {proto: tcp, tcp_flags: {mask: [psh, urg], comp: [psh, urg]}, action: drop}
    - {ctstate: [established, related], action: accept}
    - {in_port: lan, proto: tcp, dport: 80, ctstate: new, action: accept}
";
    let mut p = pipeline_with(YAML, 1);
    let syn = run(&mut p, 0, LAN, &c2s(40000, 80, SYN, 1000, 0).frame());
    assert_eq!((syn.verdict, syn.rule), (Verdict::Accept, Some(4)));
    let synack = run(
        &mut p,
        1,
        WAN,
        &s2c(80, 40000, SYN | ACK, 5000, 1001).frame(),
    );
    assert_eq!((synack.verdict, synack.rule), (Verdict::Accept, Some(3)));
    let mut t = 2;
    let mut send = |p: &mut Pipeline, flags: u8| {
        t += 1;
        run(p, t, LAN, &c2s(40000, 80, flags, 1001, 5001).frame())
    };
    let first = send(&mut p, ACK);
    assert_eq!(
        (first.verdict, state(&first), first.rule, first.cached),
        (Verdict::Accept, Some(CtState::Established), Some(3), false)
    );
    for flags in [ACK, ACK | PSH, ACK] {
        let o = send(&mut p, flags);
        assert_eq!(
            (o.verdict, o.rule, o.cached),
            (Verdict::Accept, Some(3), true),
            "flags {flags:#x}: no flag rule accepts them, the cached verdict holds"
        );
    }
    for _ in 0..2 {
        let o = send(&mut p, ACK | PSH | URG);
        assert_eq!(
            (o.verdict, o.rule, o.cached),
            (Verdict::Drop, Some(2), false),
            "PSH+URG: the flag rule is checked on every such packet"
        );
        let o = send(&mut p, ACK);
        assert_eq!(
            (o.verdict, o.rule, o.cached),
            (Verdict::Accept, Some(3), true),
            "the drop was not cached over the accept"
        );
    }
    let p2 = p.counters.cache_hits;
    assert_eq!(p2, 5, "{:?}", p.counters);
}
