//! The stateful TCP mode. The generator is both the client (on the sending port) and the
//! server (on the receiving port) of every connection, so the gateway in between sees real
//! connections: SYN, SYN-ACK, ACK (NEW, then ESTABLISHED), then data both ways, each segment
//! acknowledging what its sender has received, within the windows the handshake announced
//! (window scale 7), as the kernel's `tcp_in_window` checks. With `flowlen` a connection
//! closes (FIN, FIN-ACK, ACK) after that many data segments and its slot opens the next
//! tuple (connection-rate mode, paced by `conn_rate`); at the end the open ones are reset.
//!
//! Neither side keeps a table: the server finds a connection by decoding the tuple index
//! from the packet's addresses and ports (`TupleSpace::index`). A SYN not answered within a
//! second is sent again, three times at most, then the slot gives up and moves on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dataplane::runtime::io::PortIo;
use engine::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use engine::wire;

use super::flows::{Slots, Tuple};
use super::frame::{self, Stamp, TcpHdr, L4};
use super::stats::{Live, RxState, Totals};
use super::worker::{stamp_at, stamp_now, Pacer, Plan, Side};

const WSCALE: u8 = 7;
const WINDOW: u16 = 0xffff;
const RETRY: Duration = Duration::from_secs(1);
const SYN_TRIES: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Idle,
    SynSent { tries: u8 },
    Established,
    Closing,
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    st: St,
    /// Client: next sequence number to send, and the next one expected from the server.
    c_nxt: u32,
    c_rcv: u32,
    /// Server: likewise.
    s_nxt: u32,
    s_rcv: u32,
    /// Which side sends the next data segment.
    to_server: bool,
    data: u32,
    c_seq: u32,
    s_seq: u32,
}

const IDLE: Conn = Conn {
    st: St::Idle,
    c_nxt: 0,
    c_rcv: 0,
    s_nxt: 0,
    s_rcv: 0,
    to_server: true,
    data: 0,
    c_seq: 0,
    s_seq: 0,
};

fn isn(idx: u128, server: bool) -> u32 {
    let x = (idx as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (x as u32) ^ if server { 0x5a5a_5a5a } else { 0 }
}

fn reversed(t: &Tuple) -> Tuple {
    Tuple {
        src: t.dst,
        dst: t.src,
        sport: t.dport,
        dport: t.sport,
    }
}

struct Run<'a> {
    plan: &'a Plan,
    slots: Slots,
    conns: Vec<Conn>,
    /// Slots waiting to open their next tuple, oldest first: taken in turn, so every slot's
    /// generation advances alike and a tuple comes back only after the whole space (a stack
    /// reopened the few hottest slots until their generations wrapped, in a second or two,
    /// onto tuples the gateway still held in TIME_WAIT).
    idle: VecDeque<usize>,
    /// Established slots, for round-robin data, and each slot's place in it.
    estab: Vec<usize>,
    place: Vec<usize>,
    next: usize,
    /// (deadline, slot, generation) for SYN retransmission and FIN give-up.
    timers: VecDeque<(Instant, usize, u32)>,
    /// One received batch, read before it is answered.
    events: Vec<Event>,
    tot: Totals,
    st: RxState,
    epoch: Instant,
    live: &'a Live,
}

const NOWHERE: usize = usize::MAX;

/// A received segment of one of our connections.
#[derive(Debug, Clone, Copy)]
struct Event {
    k: usize,
    /// Its tuple as it travelled.
    pkt: Tuple,
    seq: u32,
    flags: u8,
    plen: u32,
}

impl Run<'_> {
    fn tcp(seq: u32, ack: u32, flags: u8) -> L4 {
        L4::Tcp(TcpHdr {
            seq,
            ack,
            flags,
            window: WINDOW,
            syn_wscale: (flags & SYN != 0).then_some(WSCALE),
        })
    }

    /// Queue a control segment (no payload, no stamp) on the client or server side.
    fn control(&self, side: &mut Side, t: &Tuple, server: bool, l4: L4) -> bool {
        self.send(side, t, server, l4, 0, None).is_some()
    }

    /// Queue a segment on the client (`side` = tx) or server side; the frame's length.
    fn send(
        &self,
        side: &mut Side,
        t: &Tuple,
        server: bool,
        l4: L4,
        len: usize,
        s: Option<&Stamp>,
    ) -> Option<usize> {
        let l2 = if server {
            &self.plan.l2_back
        } else {
            &self.plan.l2
        };
        side.queue(|b| frame::write(b, l2, t, &l4, len, s))
    }

    fn open(&mut self, k: usize, client: &mut Side, now: Instant) -> bool {
        let idx = self.slots.tuple_index(k);
        let t = self.plan.space.nth(idx);
        let c_isn = isn(idx, false);
        let tries = match self.conns[k].st {
            St::SynSent { tries } => tries + 1,
            _ => 1,
        };
        if !self.control(client, &t, false, Self::tcp(c_isn, 0, SYN)) {
            return false;
        }
        let c = &mut self.conns[k];
        // The stamps' sequence numbers run on across the slot's connections.
        *c = Conn {
            st: St::SynSent { tries },
            c_nxt: c_isn.wrapping_add(1),
            c_seq: c.c_seq,
            s_seq: c.s_seq,
            ..IDLE
        };
        self.tot.syn_sent += 1;
        if tries > 1 {
            self.tot.syn_retransmits += 1;
        }
        self.timers
            .push_back((now + RETRY, k, self.slots.generation(k)));
        true
    }

    fn set_established(&mut self, k: usize) {
        self.conns[k].st = St::Established;
        self.place[k] = self.estab.len();
        self.estab.push(k);
        self.tot.established += 1;
        Live::add(&self.live.established, 1);
    }

    fn leave_established(&mut self, k: usize) {
        let p = self.place[k];
        if p == NOWHERE {
            return;
        }
        self.estab.swap_remove(p);
        if let Some(&moved) = self.estab.get(p) {
            self.place[moved] = p;
        }
        self.place[k] = NOWHERE;
    }

    /// The idle slot to open next, the one idle longest.
    fn next_idle(&mut self) -> Option<usize> {
        self.idle.pop_front()
    }

    /// The slot is done with its tuple: next one, back to the idle list.
    fn recycle(&mut self, k: usize) {
        self.leave_established(k);
        let c = &mut self.conns[k];
        *c = Conn {
            c_seq: c.c_seq,
            s_seq: c.s_seq,
            ..IDLE
        };
        self.slots.rotate(k);
        self.idle.push_back(k);
    }

    /// One data segment on the next established connection, the direction alternating.
    fn data(&mut self, client: &mut Side, server: &mut Side, n: u64, now: Instant) -> bool {
        if self.estab.is_empty() {
            return false;
        }
        if self.next >= self.estab.len() {
            self.next = 0;
        }
        let k = self.estab[self.next];
        self.next += 1;
        let idx = self.slots.tuple_index(k);
        let t = self.plan.space.nth(idx);
        let len = self.plan.pkt_size.nth(n) as usize;
        let v4 = t.src.is_ipv4();
        let c = self.conns[k];
        let ts = stamp_at(self.epoch, now);
        let global = self.slots.global(k) as u32;
        let (ok, payload) = if c.to_server {
            let l4 = Self::tcp(c.c_nxt, c.c_rcv, ACK | PSH);
            let pay = len.saturating_sub(frame::header_len(&self.plan.l2, v4, &l4));
            let s = Stamp {
                slot: global,
                seq: c.c_seq,
                ts,
            };
            (self.send(client, &t, false, l4, len, Some(&s)), pay)
        } else {
            let l4 = Self::tcp(c.s_nxt, c.s_rcv, ACK | PSH);
            let pay = len.saturating_sub(frame::header_len(&self.plan.l2_back, v4, &l4));
            let s = Stamp {
                slot: global + self.plan.flows as u32,
                seq: c.s_seq,
                ts,
            };
            (
                self.send(server, &reversed(&t), true, l4, len, Some(&s)),
                pay,
            )
        };
        let Some(bytes) = ok else {
            return false;
        };
        self.tot.sent_bytes += bytes as u64;
        Live::add(&self.live.sent, 1);
        Live::add(&self.live.sent_bytes, bytes as u64);
        let c = &mut self.conns[k];
        if c.to_server {
            c.c_nxt = c.c_nxt.wrapping_add(payload as u32);
            c.c_seq = c.c_seq.wrapping_add(1);
        } else {
            c.s_nxt = c.s_nxt.wrapping_add(payload as u32);
            c.s_seq = c.s_seq.wrapping_add(1);
        }
        c.to_server = !c.to_server;
        c.data += 1;
        if self.plan.flowlen > 0 && u64::from(c.data) >= self.plan.flowlen {
            let (seq, ack) = (c.c_nxt, c.c_rcv);
            if self.control(client, &t, false, Self::tcp(seq, ack, FIN | ACK)) {
                let c = &mut self.conns[k];
                c.c_nxt = c.c_nxt.wrapping_add(1);
                c.st = St::Closing;
                self.leave_established(k);
                self.timers
                    .push_back((now + RETRY, k, self.slots.generation(k)));
            }
        }
        true
    }

    /// Frames received on the server side (`at_server`) or the client side; answers go
    /// out the same side.
    fn receive(&mut self, side: &mut Side, at_server: bool) {
        let max = self.plan.batch.min(side.room());
        let got = side.io.recv(0, &mut side.rx, max);
        if got == 0 {
            return;
        }
        let now_ts = stamp_now(self.epoch);
        // Read every frame first (their bytes are borrowed from the port), answer after.
        self.events.clear();
        for i in 0..side.rx.len() {
            let data = side.io.data(&side.rx[i]);
            let Ok(m) = wire::parse(data) else {
                self.tot.other_received += 1;
                continue;
            };
            if !m.is_ip || m.proto != frame::PROTO_TCP {
                self.tot.other_received += 1;
                continue;
            }
            let pkt = Tuple {
                src: m.src_ip(),
                dst: m.dst_ip(),
                sport: m.sport,
                dport: m.dport,
            };
            let client_view = if at_server { pkt } else { reversed(&pkt) };
            let found = self
                .plan
                .space
                .index(&client_view)
                .and_then(|idx| self.slots.locate(idx));
            let Some((k, _)) = found.filter(|&(k, g)| g == self.slots.generation(k)) else {
                self.tot.other_received += 1;
                continue;
            };
            let stamp = Stamp::read(m.payload(data));
            if let Some(s) = &stamp {
                self.st.record(s, now_ts);
                self.tot.received += 1;
                self.tot.received_bytes += data.len() as u64;
                Live::add(&self.live.received, 1);
                Live::add(&self.live.received_bytes, data.len() as u64);
            } else {
                self.tot.other_received += 1;
            }
            self.events.push(Event {
                k,
                pkt,
                seq: m.tcp.seq,
                flags: m.tcp.flags,
                plen: u32::from(m.payload_len),
            });
        }
        side.io.release(&mut side.rx);
        let reply = side;
        for i in 0..self.events.len() {
            let Event {
                k,
                pkt,
                seq,
                flags,
                plen,
            } = self.events[i];
            let end = seq.wrapping_add(plen);
            let c = self.conns[k];
            if at_server {
                if flags & (SYN | ACK) == SYN {
                    let s_isn = isn(self.slots.tuple_index(k), true);
                    let l4 = Self::tcp(s_isn, seq.wrapping_add(1), SYN | ACK);
                    if self.control(reply, &reversed(&pkt), true, l4) {
                        let c = &mut self.conns[k];
                        c.s_nxt = s_isn.wrapping_add(1);
                        c.s_rcv = seq.wrapping_add(1);
                    }
                } else if flags & FIN != 0 {
                    let l4 = Self::tcp(c.s_nxt, end.wrapping_add(1), FIN | ACK);
                    if self.control(reply, &reversed(&pkt), true, l4) {
                        let c = &mut self.conns[k];
                        c.s_nxt = c.s_nxt.wrapping_add(1);
                        c.s_rcv = end.wrapping_add(1);
                    }
                } else if plen > 0 && seq_after(end, c.s_rcv) {
                    self.conns[k].s_rcv = end;
                }
            } else if flags & (SYN | ACK) == SYN | ACK {
                if matches!(c.st, St::SynSent { .. }) {
                    let c_rcv = seq.wrapping_add(1);
                    let l4 = Self::tcp(c.c_nxt, c_rcv, ACK);
                    if self.control(reply, &reversed(&pkt), false, l4) {
                        self.conns[k].c_rcv = c_rcv;
                        self.set_established(k);
                    }
                }
            } else if flags & FIN != 0 {
                if c.st == St::Closing {
                    let l4 = Self::tcp(c.c_nxt, end.wrapping_add(1), ACK);
                    if self.control(reply, &reversed(&pkt), false, l4) {
                        self.tot.closed += 1;
                        self.recycle(k);
                    }
                }
            } else if flags & RST != 0 {
                if c.st != St::Idle {
                    self.tot.failed_handshakes += u64::from(matches!(c.st, St::SynSent { .. }));
                    self.recycle(k);
                }
            } else if plen > 0 && seq_after(end, c.c_rcv) {
                self.conns[k].c_rcv = end;
            }
        }
    }

    /// Retransmit SYNs that got no answer, give up on closes that got none.
    fn timers(&mut self, client: &mut Side, now: Instant) {
        while let Some(&(at, k, gen)) = self.timers.front() {
            if at > now || client.room() == 0 {
                break;
            }
            self.timers.pop_front();
            if gen != self.slots.generation(k) {
                continue;
            }
            match self.conns[k].st {
                St::SynSent { tries } if tries < SYN_TRIES => {
                    self.open(k, client, now);
                }
                St::SynSent { .. } => {
                    self.tot.failed_handshakes += 1;
                    self.recycle(k);
                }
                St::Closing => self.recycle(k),
                St::Idle | St::Established => {}
            }
        }
    }

    /// Reset every open connection (the end of a run).
    fn reset_all(&mut self, client: &mut Side) {
        for k in 0..self.conns.len() {
            let c = self.conns[k];
            if c.st == St::Idle {
                continue;
            }
            let t = self.plan.space.nth(self.slots.tuple_index(k));
            while client.room() == 0 {
                client.pump(&mut self.tot);
            }
            if self.control(client, &t, false, Self::tcp(c.c_nxt, c.c_rcv, RST | ACK)) {
                self.conns[k] = IDLE;
            }
        }
        self.estab.clear();
    }
}

/// `a` is after `b` in sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

pub fn run(
    plan: &Plan,
    t: usize,
    client: &mut Side,
    server: &mut Side,
    live: &Live,
    stop: &AtomicBool,
    epoch: Instant,
) -> (Totals, RxState) {
    let slots = Slots::new(
        plan.flows,
        plan.flowlen,
        plan.space.len(),
        t as u64,
        plan.threads as u64,
    );
    let n = slots.len();
    let mut r = Run {
        plan,
        conns: vec![IDLE; n],
        idle: (0..n).collect(),
        estab: Vec::with_capacity(n),
        place: vec![NOWHERE; n],
        next: 0,
        timers: VecDeque::with_capacity(2 * n + 1),
        events: Vec::with_capacity(plan.batch),
        tot: Totals::default(),
        st: RxState::new(2 * plan.flows as usize),
        epoch,
        live,
        slots,
    };
    let start = Instant::now();
    let mut pacer = Pacer::new(plan.pps, start);
    let mut opener = Pacer::new(plan.conn_rate, start);
    let mut data_sent = 0u64;
    let mut last_rx = Instant::now();
    let mut ending = false;
    loop {
        let now = Instant::now();
        let sending = !stop.load(Relaxed)
            && (plan.count == 0 || data_sent < plan.count)
            && plan.duration.is_none_or(|d| now.duration_since(start) < d);
        if sending {
            r.timers(client, now);
            let opens = opener.allowed(plan.batch, now).min(r.idle.len());
            for _ in 0..opens {
                let Some(k) = r.next_idle() else { break };
                if !r.open(k, client, now) {
                    r.idle.push_front(k);
                    break;
                }
                opener.took(1);
            }
            let mut want = pacer.allowed(plan.batch, now);
            if plan.count > 0 {
                want = want.min((plan.count - data_sent) as usize);
            }
            for _ in 0..want {
                if client.room() == 0 || server.room() == 0 {
                    break;
                }
                if !r.data(client, server, data_sent, now) {
                    break;
                }
                data_sent += 1;
                pacer.took(1);
            }
        } else if !ending {
            ending = true;
            r.reset_all(client);
            last_rx = now;
        } else if client.out.is_empty()
            && server.out.is_empty()
            && now.saturating_duration_since(last_rx) >= plan.settle
        {
            break;
        }
        client.pump(&mut r.tot);
        server.pump(&mut r.tot);
        let got = r.st.latency.len() + r.tot.other_received;
        r.receive(server, true);
        r.receive(client, false);
        if r.st.latency.len() + r.tot.other_received != got {
            last_rx = now;
        }
        if ending && now.saturating_duration_since(last_rx) < plan.settle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    r.tot.sent = data_sent;
    r.tot.flows_started = r.slots.started;
    r.tot.reordered = r.st.reordered;
    (r.tot, r.st)
}

#[cfg(test)]
mod tests {
    use super::super::flows::TupleSpace;
    use super::super::frame::L2;
    use super::super::spec::PktSize;
    use super::*;

    /// Connections that close before the next one opens (the connection-rate mode): every
    /// open must take a fresh tuple until the space is used up, not the slot just closed
    /// again (whose generation would wrap onto tuples the gateway still holds in TIME_WAIT).
    #[test]
    fn reopened_slots_take_fresh_tuples() {
        let space = TupleSpace::new(
            "10.10.0.2".parse().unwrap(),
            "10.10.0.3".parse().unwrap(),
            "1000-1999".parse().unwrap(),
            "80".parse().unwrap(),
        )
        .unwrap();
        let l2 = L2 {
            src: [2, 0, 0, 0, 0, 2],
            dst: [2, 0, 0, 0, 0, 3],
            vlan: None,
        };
        let plan = Plan {
            l4: L4::Udp,
            stateful: true,
            l2,
            l2_back: l2,
            space,
            flows: 10,
            flowlen: 10,
            pkt_size: PktSize::Fixed(70),
            min_len: 0,
            threads: 1,
            count: 0,
            pps: None,
            conn_rate: Some(1000.0),
            duration: None,
            batch: 64,
            settle: Duration::ZERO,
        };
        let live = Live::default();
        let n = 10;
        let mut r = Run {
            plan: &plan,
            slots: Slots::new(10, 10, space.len(), 0, 1),
            conns: vec![IDLE; n],
            idle: (0..n).collect(),
            estab: Vec::new(),
            place: vec![NOWHERE; n],
            next: 0,
            timers: VecDeque::new(),
            events: Vec::new(),
            tot: Totals::default(),
            st: RxState::new(2 * n),
            epoch: Instant::now(),
            live: &live,
        };
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let k = r.next_idle().unwrap();
            let idx = r.slots.tuple_index(k);
            assert!(seen.insert(idx), "open {i} reuses tuple {idx}");
            r.recycle(k);
        }
        assert_eq!(seen.len(), 1000, "the whole space, each tuple once");
    }
}
