//! The FTP helper through the whole pipeline: passive and active transfers make their data
//! connection RELATED, as the kernel's nf_conntrack_ftp does; without the helper the data
//! connection is NEW and a seed-style ruleset drops it.

mod common;

use std::net::IpAddr;

use config::matches::CtState;
use engine::packet::tcp_flags::{ACK, PSH, SYN};
use engine::pipeline::{Outcome, Packet, Pipeline, Verdict};

use common::{LAN, WAN};

fn rules(helper: bool, family_v6: bool) -> String {
    let (c, s) = if family_v6 {
        ("fd00:10::2", "fd00:10::3")
    } else {
        ("10.10.0.2", "10.10.0.3")
    };
    format!(
        r"
{}
forward:
  policy: drop
  rules:
    - {{ctstate: established, action: accept}}
    - {{proto: tcp, ctstate: related, action: accept}}
    - {{in_port: lan, src: {c}, dst: {s}, proto: tcp, dport: 21, ctstate: new, action: accept}}
",
        if helper {
            "helpers: {ftp: {ports: [21]}}"
        } else {
            ""
        }
    )
}

fn pipeline(yaml: &str) -> Pipeline {
    Pipeline::new(common::compile_yaml(yaml, "ftp.yaml", 1), 1024)
}

/// One TCP connection's two sides, keeping sequence numbers right.
struct Conn {
    a: (IpAddr, u16),
    b: (IpAddr, u16),
    seq_a: u32,
    seq_b: u32,
    port_a: u8,
}

impl Conn {
    fn new(a: (&str, u16), b: (&str, u16), port_a: u8) -> Conn {
        Conn {
            a: (a.0.parse().unwrap(), a.1),
            b: (b.0.parse().unwrap(), b.1),
            seq_a: 1000,
            seq_b: 50_000,
            port_a,
        }
    }

    fn other(&self) -> u8 {
        1 - self.port_a
    }

    fn a_to_b(&mut self, p: &mut Pipeline, flags: u8, data: &[u8]) -> Outcome {
        let ack = if flags & ACK != 0 { self.seq_b } else { 0 };
        let f = common::tcp_seg(self.a, self.b, flags, self.seq_a, ack)
            .payload(data.to_vec())
            .frame();
        self.seq_a = self
            .seq_a
            .wrapping_add(data.len() as u32 + u32::from(flags & SYN != 0));
        p.process_one(
            0,
            &Packet {
                frame: &f,
                in_port: self.port_a,
            },
        )
    }

    fn b_to_a(&mut self, p: &mut Pipeline, flags: u8, data: &[u8]) -> Outcome {
        let ack = if flags & ACK != 0 { self.seq_a } else { 0 };
        let f = common::tcp_seg(self.b, self.a, flags, self.seq_b, ack)
            .payload(data.to_vec())
            .frame();
        self.seq_b = self
            .seq_b
            .wrapping_add(data.len() as u32 + u32::from(flags & SYN != 0));
        p.process_one(
            0,
            &Packet {
                frame: &f,
                in_port: self.other(),
            },
        )
    }

    fn handshake(&mut self, p: &mut Pipeline) -> [Outcome; 3] {
        [
            self.a_to_b(p, SYN, b""),
            self.b_to_a(p, SYN | ACK, b""),
            self.a_to_b(p, ACK, b""),
        ]
    }
}

fn st(o: &Outcome) -> (Verdict, Option<CtState>) {
    (o.verdict, o.ctstate)
}

/// A control connection logged in: greeting and USER seen (the first segment each way is
/// never searched by the kernel's helper, it only records where lines start).
fn control(p: &mut Pipeline, c: &str, s: &str) -> Conn {
    let mut ctl = Conn::new((c, 40000), (s, 21), LAN);
    for o in ctl.handshake(p) {
        assert_eq!(o.verdict, Verdict::Accept);
    }
    ctl.b_to_a(p, ACK | PSH, b"220 (vsFTPd 3.0.3)\r\n");
    ctl.a_to_b(p, ACK | PSH, b"USER anonymous\r\n");
    ctl.b_to_a(p, ACK | PSH, b"331 Please specify the password.\r\n");
    ctl
}

#[test]
fn passive_data_connection_is_related_once() {
    let mut p = pipeline(&rules(true, false));
    let mut ctl = control(&mut p, "10.10.0.2", "10.10.0.3");
    ctl.a_to_b(&mut p, ACK | PSH, b"PASV\r\n");
    let o = ctl.b_to_a(
        &mut p,
        ACK | PSH,
        b"227 Entering Passive Mode (10,10,0,3,117,48).\r\n",
    );
    assert_eq!(st(&o), (Verdict::Accept, Some(CtState::Established)));
    assert_eq!(p.shard().expectations().len(), 1);

    let mut data = Conn::new(("10.10.0.2", 40001), ("10.10.0.3", 30000), LAN);
    let [syn, synack, ack] = data.handshake(&mut p);
    assert_eq!(st(&syn), (Verdict::Accept, Some(CtState::Related)));
    assert_eq!(st(&synack), (Verdict::Accept, Some(CtState::Established)));
    assert_eq!(st(&ack), (Verdict::Accept, Some(CtState::Established)));
    // Single use: a second connection to the same port is NEW, and not allowed.
    let mut again = Conn::new(("10.10.0.2", 40002), ("10.10.0.3", 30000), LAN);
    assert_eq!(
        st(&again.a_to_b(&mut p, SYN, b"")),
        (Verdict::Drop, Some(CtState::New))
    );
    let listing = engine::conntrack::listing::format_all(p.shard().entries(), 0);
    assert!(
        listing
            .iter()
            .any(|l| l.contains("dport=21 ") && l.contains("helper=ftp")),
        "{listing:?}"
    );
}

#[test]
fn without_the_helper_the_data_connection_is_new_and_dropped() {
    let mut p = pipeline(&rules(false, false));
    let mut ctl = control(&mut p, "10.10.0.2", "10.10.0.3");
    ctl.a_to_b(&mut p, ACK | PSH, b"PASV\r\n");
    ctl.b_to_a(
        &mut p,
        ACK | PSH,
        b"227 Entering Passive Mode (10,10,0,3,117,48).\r\n",
    );
    assert!(p.shard().expectations().is_empty());
    let mut data = Conn::new(("10.10.0.2", 40001), ("10.10.0.3", 30000), LAN);
    assert_eq!(
        st(&data.a_to_b(&mut p, SYN, b"")),
        (Verdict::Drop, Some(CtState::New))
    );
}

#[test]
fn active_port_and_eprt() {
    let mut p = pipeline(&rules(true, false));
    let mut ctl = control(&mut p, "10.10.0.2", "10.10.0.3");
    ctl.a_to_b(&mut p, ACK | PSH, b"PORT 10,10,0,2,195,80\r\n");
    // The server connects back from port 20 to the announced port: RELATED, from the WAN.
    let mut data = Conn::new(("10.10.0.3", 20), ("10.10.0.2", 50000), WAN);
    assert_eq!(
        st(&data.a_to_b(&mut p, SYN, b"")),
        (Verdict::Accept, Some(CtState::Related))
    );
    ctl.b_to_a(&mut p, ACK | PSH, b"200 PORT command successful.\r\n");
    ctl.a_to_b(&mut p, ACK | PSH, b"EPRT |1|10.10.0.2|50001|\r\n");
    let mut data = Conn::new(("10.10.0.3", 20), ("10.10.0.2", 50001), WAN);
    assert_eq!(
        st(&data.a_to_b(&mut p, SYN, b"")),
        (Verdict::Accept, Some(CtState::Related))
    );
}

#[test]
fn a_port_naming_another_host_is_not_recorded() {
    let mut p = pipeline(&rules(true, false));
    let mut ctl = control(&mut p, "10.10.0.2", "10.10.0.3");
    let o = ctl.a_to_b(&mut p, ACK | PSH, b"PORT 192,168,1,9,195,80\r\n");
    assert_eq!(o.verdict, Verdict::Accept);
    assert!(p.shard().expectations().is_empty());
}

#[test]
fn split_or_malformed_commands_create_nothing_and_are_dropped() {
    let mut p = pipeline(&rules(true, false));
    let mut ctl = control(&mut p, "10.10.0.2", "10.10.0.3");
    let o = ctl.a_to_b(&mut p, ACK | PSH, b"PORT 10,10,0,2,19");
    assert_eq!(
        (o.verdict, o.reason.as_str()),
        (Verdict::Drop, "helper_drop")
    );
    assert!(p.shard().expectations().is_empty());
    // A segment that does not start a line is not parsed at all.
    let o = ctl.a_to_b(&mut p, ACK | PSH, b"5,80\r\n");
    assert_eq!(o.verdict, Verdict::Accept);
    assert!(p.shard().expectations().is_empty());
}

#[test]
fn ipv6_epsv() {
    let mut p = pipeline(&rules(true, true));
    let mut ctl = control(&mut p, "fd00:10::2", "fd00:10::3");
    ctl.a_to_b(&mut p, ACK | PSH, b"EPSV\r\n");
    ctl.b_to_a(
        &mut p,
        ACK | PSH,
        b"229 Entering Extended Passive Mode (|||6446|)\r\n",
    );
    let mut data = Conn::new(("fd00:10::2", 40001), ("fd00:10::3", 6446), LAN);
    assert_eq!(
        st(&data.a_to_b(&mut p, SYN, b"")),
        (Verdict::Accept, Some(CtState::Related))
    );
}

/// A control connection taken into a new table (a restart's state file, a restore): the
/// helper has no line history, so it picks up at the next segment of each direction, as the
/// kernel's helper does for injected entries (`NF_CT_FTP_SEQ_PICKUP`); the PASV that follows
/// opens a RELATED data connection. Without the pickup the first reply would not be searched.
#[test]
fn an_adopted_control_connection_picks_up_its_lines() {
    let yaml = rules(true, false);
    let mut old = pipeline(&yaml);
    let mut ctl = control(&mut old, "10.10.0.2", "10.10.0.3");
    let entries: Vec<_> = old.shard().entries().copied().collect();
    assert_eq!(entries.len(), 1);

    let mut new = pipeline(&yaml);
    for e in entries {
        new.shard_mut().adopt(e).unwrap();
    }
    assert_eq!(
        new.shard_mut()
            .adopt(old.shard().entries().next().copied().unwrap()),
        Err(engine::conntrack::AdoptError::Duplicate)
    );
    ctl.a_to_b(&mut new, ACK | PSH, b"PASV\r\n");
    let o = ctl.b_to_a(
        &mut new,
        ACK | PSH,
        b"227 Entering Passive Mode (10,10,0,3,117,48).\r\n",
    );
    assert_eq!(st(&o), (Verdict::Accept, Some(CtState::Established)));
    assert_eq!(
        new.shard().expectations().len(),
        1,
        "the reply was searched"
    );
    let mut data = Conn::new(("10.10.0.2", 40001), ("10.10.0.3", 30000), LAN);
    assert_eq!(
        st(&data.a_to_b(&mut new, SYN, b"")),
        (Verdict::Accept, Some(CtState::Related))
    );
    // A bad entry is refused, not inserted.
    let mut bad = new.shard().entries().next().copied().unwrap();
    bad.tcp.state = 42;
    assert!(matches!(
        pipeline(&yaml).shard_mut().adopt(bad),
        Err(engine::conntrack::AdoptError::Invalid(_))
    ));
}
