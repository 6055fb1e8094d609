//! The engine over plausible multi-packet traffic on its two ports, with a fixed ruleset: the
//! input is decoded (`arbitrary`) into up to 64 operations on a small universe of hosts,
//! ports and connections, so that handshakes complete and the ESTABLISHED and RELATED paths
//! run. Operations: TCP segments of a few connections in either direction, whose seq/ack are
//! offsets from what the harness's model of each connection has sent so far (the next byte,
//! small steps back or ahead, the window edge, raw 32-bit values), with realistic or raw
//! flags, window scaling and payloads; FTP `227`/`229`/`PORT`/`EPRT` announcements (whole or
//! mangled) on control connections to port 21, each making a data connection to the
//! announced port available to later segments; UDP both ways; ICMP echo, ICMPv6 neighbour
//! solicitations, and ICMP/ICMPv6 errors quoting a recent frame (or a mangled copy); replays
//! of recent frames on any port; the clock moving by milliseconds to days; `expire`/`sweep`.
//!
//! Checked, for every packet: no panic; an accepted packet leaves by the other port and a
//! dropped one by none; the verdict is the ruleset's for the packet's ctstate, port,
//! protocol and destination port (ESTABLISHED and RELATED accepted, INVALID dropped, NEW as
//! the rules say; only the FTP helper may drop an ESTABLISHED packet); the reason is INVALID
//! exactly when the state is; UDP and ICMP echo are never RELATED, ICMP errors are RELATED or
//! INVALID, a RELATED TCP packet belongs to a data connection an announcement named, an
//! ESTABLISHED packet belongs to a flow of which a packet was accepted before; the table
//! never holds more than `conntrack.max` entries, its count matches its live slots, and it
//! is full when it says so. A twin pipeline takes the same frames through the batched
//! `process` and must give the same outcomes. At the end every entry is the flow of an
//! accepted packet and times out within the longest timeout, and ten days later `expire`
//! (first pipeline) and the clock-paced `sweep` (twin) leave both tables empty.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run flows seeds/flows` (copy the seeds to
//! a scratch corpus first to keep new entries out of the tree).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use config::matches::CtState;
use engine::flow::FlowKey;
use engine::packet::{tcp_flags as tf, Addr, IpFamily, PacketMeta};
use engine::pipeline::{Outcome, Packet, Pipeline, Reason, Verdict};
use engine::ruleset::CompiledRuleset;
use engine::wire::{self, build, icmp, proto};
use libfuzzer_sys::fuzz_target;

const RULES: &str = "
helpers: {ftp: {ports: [21]}}
conntrack: {max: 16, expect_max: 2}
forward:
  policy: drop
  rules:
    - {ctstate: [established, related], action: accept}
    - {ctstate: invalid, action: drop}
    - {in_port: lan, proto: tcp, dport: [21, 80], ctstate: new, action: accept}
    - {in_port: lan, proto: udp, action: accept}
    - {proto: icmp, action: accept}
    - {proto: icmpv6, action: accept}
";

const S: u64 = 1_000_000_000;
/// The longest conntrack timeout of the ruleset (`tcp_timeout_established`, 5 days).
const LONGEST_TIMEOUT: u64 = 432_000 * S;
const MAX_OPS: usize = 64;
/// Recent frames kept for ICMP errors to quote and for replays.
const RECENT: usize = 8;

fn rules() -> Arc<CompiledRuleset> {
    static R: OnceLock<Arc<CompiledRuleset>> = OnceLock::new();
    Arc::clone(R.get_or_init(|| {
        let loaded = config::load_str(RULES, "fuzz.yaml").expect("valid rules");
        Arc::new(CompiledRuleset::compile(&loaded.ruleset, 1).expect("compiles"))
    }))
}

// ---- The universe: hosts on each side (port 0 "lan", port 1 "wan"), both families. ----

const LAN: u8 = 0;
const WAN: u8 = 1;

/// Host `i` (0 or 1) of `side`; `None` for the side's router (the source of some errors).
fn host(v6: bool, side: u8, i: Option<usize>) -> IpAddr {
    const LAN4: [[u8; 4]; 3] = [[10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 1]];
    const WAN4: [[u8; 4]; 3] = [[192, 0, 2, 10], [198, 51, 100, 7], [192, 0, 2, 1]];
    const LAN6: [u16; 3] = [2, 3, 1];
    const WAN6: [u16; 3] = [0x10, 0x7, 1];
    let i = i.map_or(2, |i| i % 2);
    if v6 {
        let (net, low) = if side == LAN {
            ([0xfd00, 0, 0, 0], LAN6[i])
        } else {
            ([0x2001, 0xdb8, u16::from(i == 1), 0], WAN6[i])
        };
        IpAddr::V6(Ipv6Addr::new(net[0], net[1], net[2], net[3], 0, 0, 0, low))
    } else {
        let a = if side == LAN { LAN4[i] } else { WAN4[i] };
        IpAddr::V4(Ipv4Addr::from(a))
    }
}

/// Which side an address lives on (the port its packets arrive on).
fn side_of(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(a) if a.octets()[0] == 10 => LAN,
        IpAddr::V6(a) if a.segments()[0] == 0xfd00 => LAN,
        _ => WAN,
    }
}

fn addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(a) => engine::packet::v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The static TCP connections (each in both families): client side, client host, server
/// host, client port, server port.
const TCP_CONNS: [(u8, usize, usize, u16, u16); 8] = [
    (LAN, 0, 0, 40000, 21),
    (LAN, 1, 1, 40001, 21),
    (LAN, 0, 0, 40002, 80),
    (LAN, 1, 0, 40003, 80),
    (LAN, 0, 1, 40004, 22),
    (WAN, 0, 0, 50000, 80),
    (LAN, 1, 1, 65535, 80),
    (LAN, 1, 0, 1024, 21),
];
const STATIC_CONNS: usize = 2 * TCP_CONNS.len();
/// Data connections announced over FTP.
const DATA_CONNS: usize = 4;
/// The static connections to port 21 from the lan (slot numbers).
const FTP_SLOTS: [usize; 6] = [0, 1, 7, 8, 9, 15];
/// Initial sequence numbers, some just short of a wrap or a sign change.
const ISNS: [u32; 4] = [1000, 0xffff_ffc0, 0x7fff_ffe0, 0xdead_beef];

/// UDP flows (each in both families): lan host, wan host, lan port, wan port.
const UDP_FLOWS: [(usize, usize, u16, u16); 4] = [
    (0, 0, 5353, 53),
    (1, 1, 40000, 123),
    (0, 1, 53, 53),
    (1, 0, 33434, 33434),
];

// ---- Operations. ----

#[derive(Debug, Arbitrary)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
    Rst,
    RstAck,
    Raw(u8),
}

impl Flags {
    fn bits(&self) -> u8 {
        match self {
            Flags::Syn => tf::SYN,
            Flags::SynAck => tf::SYN | tf::ACK,
            Flags::Ack => tf::ACK,
            Flags::PshAck => tf::PSH | tf::ACK,
            Flags::FinAck => tf::FIN | tf::ACK,
            Flags::Rst => tf::RST,
            Flags::RstAck => tf::RST | tf::ACK,
            Flags::Raw(b) => *b,
        }
    }
}

/// The sequence number, from the sender's next one.
#[derive(Debug, Arbitrary)]
enum SeqSel {
    Next,
    Back(u8),
    Ahead(u16),
    /// The right edge of the receiver's last advertised window, plus this.
    WindowEdge(i8),
    Raw(u32),
}

/// The acknowledgement number, from the peer's next sequence number.
#[derive(Debug, Arbitrary)]
enum AckSel {
    Next,
    Back(u8),
    Ahead(u16),
    Zero,
    Raw(u32),
}

#[derive(Debug, Arbitrary)]
enum WinSel {
    Full,
    Zero,
    Raw(u16),
}

#[derive(Debug, Arbitrary)]
enum PayloadSel {
    Empty,
    /// `len` bytes of `fill` (no newline: never a line the FTP helper looks at).
    Bytes {
        len: u8,
        fill: u8,
    },
    /// One of a few text lines, some of them prefixes of FTP commands (partial matches, which
    /// the helper drops), none an announcement.
    Line(u8),
}

const LINES: [&[u8]; 8] = [
    b"NOOP\r\n",
    b"220 statewall\r\n",
    b"USER anonymous\r\n",
    b"PASV\r\n",
    b"PO",
    b"227",
    b"150 Opening data connection\r\n",
    b"EPRT",
];

#[derive(Debug, Arbitrary)]
struct Seg {
    conn: u8,
    /// Sent by the server (the connection's reply direction) rather than the client.
    reply: bool,
    flags: Flags,
    seq: SeqSel,
    ack: AckSel,
    win: WinSel,
    /// SYN options: window scale, SACK permitted, MSS.
    wscale: Option<u8>,
    sack_perm: bool,
    payload: PayloadSel,
}

#[derive(Debug, Arbitrary)]
enum FtpKind {
    /// `227 ... (h1,h2,h3,h4,p1,p2)` from the server.
    Pasv,
    /// `229 ... (|||port|)` from the server.
    Epsv,
    /// `PORT h1,h2,h3,h4,p1,p2` from the client.
    Port,
    /// `EPRT |1|a.b.c.d|port|` or `|2|v6|port|` from the client.
    Eprt,
}

#[derive(Debug, Arbitrary)]
enum FtpMangle {
    None,
    /// Name the other host of the sender's side (the helper records nothing).
    OtherHost,
    /// Cut the line to this many bytes.
    Truncate(u8),
    /// Send the announcement at a sequence number that does not start a line.
    Misaligned,
}

#[derive(Debug, Arbitrary)]
struct Ftp {
    conn: u8,
    kind: FtpKind,
    port: u16,
    mangle: FtpMangle,
    /// Which data connection slot the announced connection takes.
    slot: u8,
}

#[derive(Debug, Arbitrary)]
enum ErrKind {
    Unreachable(u8),
    TooBig,
    TimeExceeded,
    ParamProblem,
    Raw { ty: u8, code: u8 },
}

#[derive(Debug, Arbitrary)]
enum Mangle {
    None,
    Truncate(u8),
    Flip {
        at: u16,
        xor: u8,
    },
    /// Sent to another host than the quoted packet's source.
    WrongDst,
}

#[derive(Debug, Arbitrary)]
struct IcmpErr {
    /// Which recent frame to quote (0: the newest).
    frame: u8,
    kind: ErrKind,
    /// From the router of the destination's side instead of the destination.
    router: bool,
    mangle: Mangle,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Millis(u16),
    Secs(u8),
    Minutes(u8),
    Hours(u8),
    Days(u8),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Tcp(Seg),
    Ftp(Ftp),
    Udp {
        flow: u8,
        v6: bool,
        reply: bool,
        len: u8,
    },
    Echo {
        pair: u8,
        v6: bool,
        id: u8,
        seq: u8,
        reply: bool,
    },
    /// An ICMPv6 neighbour solicitation (left untracked).
    Neighbour {
        from_wan: bool,
    },
    IcmpErr(IcmpErr),
    /// A recent frame again, on port `port % 4` relative to its own (0: same, 1: the other,
    /// 2 and 3: ports without a route).
    Replay {
        frame: u8,
        port: u8,
    },
    Advance(Step),
    Expire(u8),
    Sweep(u8),
}

/// At most [`MAX_OPS`] operations, until the input runs out.
#[derive(Debug)]
struct Ops(Vec<Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            ops.push(u.arbitrary()?);
        }
        Ok(Ops(ops))
    }
}

// ---- The harness's model of each TCP connection. ----

#[derive(Debug, Clone, Copy)]
struct Side {
    /// Next sequence number this side sends.
    nxt: u32,
    /// The last acknowledgement and window it sent (`None` before any ACK).
    ack: Option<u32>,
    win: u16,
    /// Window scale it offered on its SYN.
    wscale: Option<u8>,
    /// Whether it sent (and the engine accepted) a segment ending a line.
    lines: bool,
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    /// Client and server endpoints.
    ends: [SocketAddr; 2],
    side: [Side; 2],
}

impl Conn {
    fn new(client: SocketAddr, server: SocketAddr, isn: [u32; 2]) -> Conn {
        let side = |nxt| Side {
            nxt,
            ack: None,
            win: 65535,
            wscale: None,
            lines: false,
        };
        Conn {
            ends: [client, server],
            side: [side(isn[0]), side(isn[1])],
        }
    }
}

fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// The ruleset's verdict for a packet the conntrack state of which is `st`.
fn rules_accept(st: CtState, m: &PacketMeta, in_port: u8) -> bool {
    match st {
        CtState::Established | CtState::Related => true,
        CtState::Invalid => false,
        CtState::New | CtState::Untracked => {
            icmp::is_icmp(m.family, m.proto)
                || (in_port == LAN
                    && (m.proto == proto::UDP
                        || (m.proto == proto::TCP && matches!(m.dport, 21 | 80))))
        }
    }
}

struct Harness {
    p: Pipeline,
    /// The twin, fed the same frames through the batched path.
    twin: Pipeline,
    capacity: usize,
    now: u64,
    conns: [Option<Conn>; STATIC_CONNS + DATA_CONNS],
    /// Flows (original keys) of which a packet was accepted.
    accepted: Vec<FlowKey>,
    /// Data connections announced: family, source, destination, destination port.
    announced: Vec<(IpFamily, Addr, Addr, u16)>,
    recent: Vec<(Vec<u8>, u8)>,
    /// This operation's frames and outcomes, for the twin.
    batch: Vec<(Vec<u8>, u8)>,
    outcomes: Vec<Outcome>,
}

impl Harness {
    fn new() -> Harness {
        let rules = rules();
        let capacity = rules.max_entries;
        let mut conns = [None; STATIC_CONNS + DATA_CONNS];
        for (i, c) in conns.iter_mut().take(STATIC_CONNS).enumerate() {
            let (side, ch, sh, sport, dport) = TCP_CONNS[i % TCP_CONNS.len()];
            let v6 = i >= TCP_CONNS.len();
            let client = SocketAddr::new(host(v6, side, Some(ch)), sport);
            let server = SocketAddr::new(host(v6, 1 - side, Some(sh)), dport);
            *c = Some(Conn::new(client, server, [ISNS[i % 4], ISNS[(i + 1) % 4]]));
        }
        Harness {
            p: Pipeline::new(Arc::clone(&rules), capacity),
            twin: Pipeline::new(rules, capacity),
            capacity,
            now: 1000 * S,
            conns,
            accepted: Vec::new(),
            announced: Vec::new(),
            recent: Vec::new(),
            batch: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// One frame through the pipeline, checked.
    fn send(&mut self, frame: Vec<u8>, in_port: u8) -> Outcome {
        let o = self.p.process_one(
            self.now,
            &Packet {
                frame: &frame,
                in_port,
            },
        );
        self.check(&frame, in_port, &o);
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push((frame.clone(), in_port));
        self.batch.push((frame, in_port));
        self.outcomes.push(o);
        o
    }

    fn check(&mut self, frame: &[u8], in_port: u8, o: &Outcome) {
        let shard = self.p.shard();
        assert!(shard.len() <= self.capacity, "{} entries", shard.len());
        assert_eq!(shard.len(), shard.entries().count(), "live count");
        match o.verdict {
            Verdict::Accept => {
                assert!(in_port < 2, "accepted from port {in_port}: {o:?}");
                assert_eq!(o.out_port, Some(1 - in_port), "{o:?}");
            }
            Verdict::Drop => assert_eq!(o.out_port, None, "{o:?}"),
        }
        assert_eq!(
            matches!(o.reason, Reason::Invalid(_)),
            o.ctstate == Some(CtState::Invalid),
            "{o:?}"
        );
        if o.reason == Reason::TableFull {
            assert_eq!(shard.len(), self.capacity, "table full below capacity");
        }
        let Ok(m) = wire::parse(frame) else {
            assert!(
                o.verdict == Verdict::Drop && matches!(o.reason, Reason::Malformed(_)),
                "{o:?}"
            );
            return;
        };
        let Some(st) = o.ctstate else {
            // Never reached conntrack: no route, or the table is full.
            assert!(
                matches!(o.reason, Reason::NoRoute | Reason::TableFull),
                "{o:?}"
            );
            assert_eq!(o.verdict, Verdict::Drop);
            return;
        };
        assert!(in_port < 2, "tracked from port {in_port}: {o:?}");
        if o.reason == Reason::HelperDrop {
            assert!(st == CtState::Established && m.proto == proto::TCP, "{o:?}");
        } else {
            assert_eq!(
                o.verdict == Verdict::Accept,
                rules_accept(st, &m, in_port),
                "verdict against the ruleset: {o:?} {m:?}"
            );
        }
        let is_icmp = icmp::is_icmp(m.family, m.proto);
        if is_icmp && icmp::is_error(m.family, m.icmp.ty) && m.l4_invalid.is_none() {
            assert!(matches!(st, CtState::Related | CtState::Invalid), "{o:?}");
        }
        let key = FlowKey::from_meta(&m);
        if st == CtState::Related && !is_icmp {
            assert_eq!(
                m.proto,
                proto::TCP,
                "only TCP data connections are expected: {o:?}"
            );
            let k = key.expect("a TCP key");
            assert!(
                self.announced
                    .iter()
                    .any(|&(fam, src, dst, port)| fam == k.family
                        && src == k.src
                        && dst == k.dst
                        && port == k.dport),
                "RELATED without an announcement: {k:?}"
            );
        }
        if st == CtState::Related && is_icmp {
            assert!(
                icmp::is_error(m.family, m.icmp.ty),
                "an ICMP query is never RELATED: {o:?}"
            );
        }
        if let Some(k) = key {
            if st == CtState::Established {
                assert!(
                    self.accepted.iter().any(|a| *a == k || a.is_reverse_of(&k)),
                    "ESTABLISHED on a flow never accepted: {k:?}"
                );
            }
            if o.verdict == Verdict::Accept && !self.accepted.contains(&k) {
                self.accepted.push(k);
            }
        }
    }

    /// The twin processes this operation's frames as one batch.
    fn flush_twin(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let packets: Vec<Packet> = self
            .batch
            .iter()
            .map(|(frame, in_port)| Packet {
                frame,
                in_port: *in_port,
            })
            .collect();
        let mut out = vec![Outcome::default(); packets.len()];
        self.twin.process(self.now, &packets, &mut out);
        assert_eq!(out, self.outcomes, "batched and one-by-one outcomes differ");
        assert_eq!(self.twin.shard().len(), self.p.shard().len());
        self.batch.clear();
        self.outcomes.clear();
    }

    fn conn_index(&self, sel: u8) -> usize {
        let i = usize::from(sel) % (STATIC_CONNS + DATA_CONNS);
        if self.conns[i].is_some() {
            i
        } else {
            i % STATIC_CONNS
        }
    }

    /// A segment of connection `c` from side `from` (0 client, 1 server).
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        c: usize,
        from: usize,
        flags: u8,
        seq: &SeqSel,
        ack: &AckSel,
        win: u16,
        wscale: Option<u8>,
        sack_perm: bool,
        payload: &[u8],
    ) -> Outcome {
        let conn = self.conns[c].as_mut().expect("a connection");
        let (me, peer) = (conn.side[from], conn.side[1 - from]);
        let scale = match (me.wscale, peer.wscale) {
            (Some(_), Some(p)) => u32::from(p.min(14)),
            _ => 0,
        };
        let seq = match *seq {
            SeqSel::Next => me.nxt,
            SeqSel::Back(n) => me.nxt.wrapping_sub(u32::from(n)),
            SeqSel::Ahead(n) => me.nxt.wrapping_add(u32::from(n)),
            SeqSel::WindowEdge(d) => peer
                .ack
                .unwrap_or(me.nxt)
                .wrapping_add(u32::from(peer.win) << scale)
                .wrapping_add_signed(i32::from(d)),
            SeqSel::Raw(s) => s,
        };
        let ack = match *ack {
            AckSel::Next => peer.nxt,
            AckSel::Back(n) => peer.nxt.wrapping_sub(u32::from(n)),
            AckSel::Ahead(n) => peer.nxt.wrapping_add(u32::from(n)),
            AckSel::Zero => 0,
            AckSel::Raw(a) => a,
        };
        let syn = flags & tf::SYN != 0;
        let mut t = build::Tcp::new(conn.ends[from], conn.ends[1 - from], flags);
        t.seq = seq;
        t.ack = ack;
        t.window = win;
        if syn {
            t.mss = Some(1460);
            t.wscale = wscale;
            t.sack_perm = sack_perm;
        }
        t.payload = payload.to_vec();
        // The sender's view: what it sent is sent, whatever the firewall makes of it.
        let end = seq
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(flags & tf::FIN != 0));
        let s = &mut conn.side[from];
        if syn {
            s.nxt = end;
            s.wscale = wscale;
        } else if after(end, s.nxt) && end.wrapping_sub(s.nxt) < 1 << 20 {
            s.nxt = end;
        }
        if flags & tf::ACK != 0 {
            s.ack = Some(ack);
            s.win = win;
        }
        let in_port = side_of(conn.ends[from].ip());
        let o = self.send(t.frame(), in_port);
        if o.verdict == Verdict::Accept && payload.last() == Some(&b'\n') {
            if let Some(conn) = self.conns[c].as_mut() {
                conn.side[from].lines = true;
            }
        }
        o
    }

    fn tcp(&mut self, s: &Seg) {
        let c = self.conn_index(s.conn);
        let payload: Vec<u8> = match s.payload {
            PayloadSel::Empty => Vec::new(),
            PayloadSel::Bytes { len, fill } => {
                vec![if fill == b'\n' { b'.' } else { fill }; usize::from(len)]
            }
            PayloadSel::Line(i) => LINES[usize::from(i) % LINES.len()].to_vec(),
        };
        let win = match s.win {
            WinSel::Full => 65535,
            WinSel::Zero => 0,
            WinSel::Raw(w) => w,
        };
        self.segment(
            c,
            usize::from(s.reply),
            s.flags.bits(),
            &s.seq,
            &s.ack,
            win,
            s.wscale,
            s.sack_perm,
            &payload,
        );
    }

    fn ftp(&mut self, op: &Ftp) {
        let c = FTP_SLOTS[usize::from(op.conn) % FTP_SLOTS.len()];
        let conn = self.conns[c].expect("a control connection");
        let from = usize::from(matches!(op.kind, FtpKind::Pasv | FtpKind::Epsv));
        let (client, server) = (conn.ends[0], conn.ends[1]);
        let v6 = client.is_ipv6();
        if !conn.side[from].lines {
            // The helper parses only segments that start a line: a banner or a login first.
            let line: &[u8] = if from == 1 {
                b"220 statewall\r\n"
            } else {
                b"USER anonymous\r\n"
            };
            self.segment(
                c,
                from,
                tf::PSH | tf::ACK,
                &SeqSel::Next,
                &AckSel::Next,
                65535,
                None,
                false,
                line,
            );
        }
        // The address named: the sender's own, or the other host of its side.
        let sender = conn.ends[from].ip();
        let named = if matches!(op.mangle, FtpMangle::OtherHost) {
            let side = side_of(sender);
            let a = host(v6, side, Some(0));
            if a == sender {
                host(v6, side, Some(1))
            } else {
                a
            }
        } else {
            sender
        };
        let v4 = match named {
            IpAddr::V4(a) => a.octets(),
            // A v6 control connection announcing with a v4-only command: names no v6 host.
            IpAddr::V6(a) => {
                let s = a.octets();
                [s[12], s[13], s[14], s[15]]
            }
        };
        let (p1, p2) = (op.port >> 8, op.port & 0xff);
        let [a, b, cc, d] = v4;
        let mut text = match op.kind {
            FtpKind::Pasv => {
                format!("227 Entering Passive Mode ({a},{b},{cc},{d},{p1},{p2})\r\n")
            }
            FtpKind::Epsv => {
                format!("229 Entering Extended Passive Mode (|||{}|)\r\n", op.port)
            }
            FtpKind::Port => format!("PORT {a},{b},{cc},{d},{p1},{p2}\r\n"),
            FtpKind::Eprt => match named {
                IpAddr::V4(n) => format!("EPRT |1|{n}|{}|\r\n", op.port),
                IpAddr::V6(n) => format!("EPRT |2|{n}|{}|\r\n", op.port),
            },
        }
        .into_bytes();
        if let FtpMangle::Truncate(n) = op.mangle {
            text.truncate(usize::from(n));
        }
        let seq = if matches!(op.mangle, FtpMangle::Misaligned) {
            SeqSel::Ahead(1)
        } else {
            SeqSel::Next
        };
        // The data connection goes from the side that did not announce to the named host.
        let data_dst = SocketAddr::new(named, op.port);
        let ds = usize::from(op.slot) % DATA_CONNS;
        let data_src = if from == 1 {
            SocketAddr::new(client.ip(), 50000 + ds as u16)
        } else {
            SocketAddr::new(server.ip(), 20)
        };
        let fam = if v6 { IpFamily::V6 } else { IpFamily::V4 };
        if self.announced.len() < MAX_OPS {
            self.announced
                .push((fam, addr(data_src.ip()), addr(data_dst.ip()), op.port));
        }
        self.segment(
            c,
            from,
            tf::PSH | tf::ACK,
            &seq,
            &AckSel::Next,
            65535,
            None,
            false,
            &text,
        );
        let isn = ISNS[ds];
        self.conns[STATIC_CONNS + ds] = Some(Conn::new(
            data_src,
            data_dst,
            [isn.wrapping_mul(3), isn.wrapping_add(77)],
        ));
    }

    fn udp(&mut self, flow: u8, v6: bool, reply: bool, len: u8) {
        let (lh, wh, lp, wp) = UDP_FLOWS[usize::from(flow) % UDP_FLOWS.len()];
        let lan = SocketAddr::new(host(v6, LAN, Some(lh)), lp);
        let wan = SocketAddr::new(host(v6, WAN, Some(wh)), wp);
        let (src, dst, port) = if reply {
            (wan, lan, WAN)
        } else {
            (lan, wan, LAN)
        };
        let frame = build::Udp::new(src, dst)
            .payload(vec![b'q'; usize::from(len % 64)])
            .frame();
        self.send(frame, port);
    }

    fn echo(&mut self, pair: u8, v6: bool, id: u8, seq: u8, reply: bool) {
        // The pinger is on the lan for even pairs, on the wan for odd ones.
        let pside = pair & 1;
        let pinger = host(v6, pside, Some(usize::from(pair >> 1)));
        let target = host(v6, 1 - pside, Some(usize::from(pair >> 2)));
        let id = u16::from(id % 4) + 1;
        let frame = if reply {
            build::Icmp::echo_reply(target, pinger, id, u16::from(seq)).frame()
        } else {
            build::Icmp::echo_request(pinger, target, id, u16::from(seq)).frame()
        };
        let port = side_of(if reply { target } else { pinger });
        self.send(frame, port);
    }

    fn neighbour(&mut self, from_wan: bool) {
        let side = u8::from(from_wan);
        let src = host(true, side, Some(0));
        let target = host(true, 1 - side, Some(1));
        let mut ns = build::Icmp::new(src, target, 135, 0);
        ns.body = addr(target).to_vec();
        self.send(ns.frame(), side);
    }

    fn recent_frame(&self, i: u8) -> Option<(Vec<u8>, u8)> {
        let n = self.recent.len();
        (n > 0).then(|| self.recent[n - 1 - usize::from(i) % n].clone())
    }

    fn icmp_err(&mut self, e: &IcmpErr) {
        let Some((quoted, qport)) = self.recent_frame(e.frame) else {
            return;
        };
        let Ok(q) = wire::parse(&quoted) else { return };
        if !q.is_ip {
            return;
        }
        let (qsrc, qdst) = (q.src_ip(), q.dst_ip());
        let v6 = qsrc.is_ipv6();
        let side = side_of(qdst);
        let src = if e.router { host(v6, side, None) } else { qdst };
        let dst = if matches!(e.mangle, Mangle::WrongDst) {
            let s = side_of(qsrc);
            let a = host(v6, s, Some(0));
            if a == qsrc {
                host(v6, s, Some(1))
            } else {
                a
            }
        } else {
            qsrc
        };
        let (ty, code) = match (&e.kind, v6) {
            (ErrKind::Unreachable(c), false) => (3, c % 16),
            (ErrKind::Unreachable(c), true) => (1, c % 8),
            (ErrKind::TooBig, false) => (3, 4),
            (ErrKind::TooBig, true) => (2, 0),
            (ErrKind::TimeExceeded, false) => (11, 0),
            (ErrKind::TimeExceeded, true) => (3, 0),
            (ErrKind::ParamProblem, false) => (12, 0),
            (ErrKind::ParamProblem, true) => (4, 0),
            (ErrKind::Raw { ty, code }, _) => (*ty, *code),
        };
        let mut err = build::Icmp::error(src, dst, ty, code, &quoted);
        match e.mangle {
            Mangle::Truncate(n) => err.body.truncate(usize::from(n)),
            Mangle::Flip { at, xor } if !err.body.is_empty() => {
                let i = usize::from(at) % err.body.len();
                err.body[i] ^= if xor == 0 { 0xff } else { xor };
            }
            _ => {}
        }
        // From the side the quoted packet went to (the port it left by).
        let port = if qport < 2 { 1 - qport } else { side };
        self.send(err.frame(), port);
    }

    fn replay(&mut self, i: u8, port: u8) {
        let Some((frame, p)) = self.recent_frame(i) else {
            return;
        };
        let port = match port % 4 {
            0 => p,
            1 => 1 - p.min(1),
            2 => 2,
            _ => 200,
        };
        self.send(frame, port);
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Tcp(s) => self.tcp(s),
            Op::Ftp(f) => self.ftp(f),
            Op::Udp {
                flow,
                v6,
                reply,
                len,
            } => self.udp(*flow, *v6, *reply, *len),
            Op::Echo {
                pair,
                v6,
                id,
                seq,
                reply,
            } => self.echo(*pair, *v6, *id, *seq, *reply),
            Op::Neighbour { from_wan } => self.neighbour(*from_wan),
            Op::IcmpErr(e) => self.icmp_err(e),
            Op::Replay { frame, port } => self.replay(*frame, *port),
            Op::Advance(step) => {
                self.now += match *step {
                    Step::Millis(n) => u64::from(n) * S / 1000,
                    Step::Secs(n) => u64::from(n) * S,
                    Step::Minutes(n) => u64::from(n) * 60 * S,
                    Step::Hours(n) => u64::from(n) * 3600 * S,
                    Step::Days(n) => u64::from(n % 8) * 86_400 * S,
                };
            }
            Op::Expire(budget) => {
                let n = self.p.expire(self.now, usize::from(*budget));
                let m = self.twin.expire(self.now, usize::from(*budget));
                assert_eq!(n, m, "expire");
            }
            Op::Sweep(max) => {
                self.p.sweep(self.now, usize::from(*max));
                self.twin.sweep(self.now, usize::from(*max));
            }
        }
        self.flush_twin();
    }

    fn finish(&mut self) {
        for e in self.p.shard().entries() {
            assert!(
                self.accepted.contains(&e.key),
                "an entry for a flow never accepted: {:?}",
                e.key
            );
            assert!(
                e.expires <= self.now + LONGEST_TIMEOUT,
                "an entry outlives the longest timeout: {e:?}"
            );
        }
        self.now += 10 * 86_400 * S;
        self.p.expire(self.now, self.capacity);
        assert!(
            self.p.shard().is_empty(),
            "{} entries left",
            self.p.shard().len()
        );
        // The clock-paced sweep covers the whole table within a period.
        self.twin.sweep(self.now, usize::MAX);
        self.twin.sweep(self.now + 2 * S, usize::MAX);
        assert!(
            self.twin.shard().is_empty(),
            "{} entries left after the sweep",
            self.twin.shard().len()
        );
    }
}

fuzz_target!(|ops: Ops| {
    let mut h = Harness::new();
    for op in &ops.0 {
        h.run(op);
    }
    h.finish();
});
