//! One generator thread: its queue of the sending port (and of the receiving port, when the
//! generator owns the far side too), the send loop (rate, count, duration), the receive
//! loop, and the drain at the end. The stateful TCP mode (`tcp.rs`) runs on the same ports.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dataplane::runtime::io::PortIo;
use dataplane::xsk::{XskFrame, XskPorts};
use engine::wire;

use super::flows::{Slots, TupleSpace};
use super::frame::{self, Stamp, L2, L4};
use super::spec::PktSize;
use super::stats::{Live, RxState, Totals};

/// What every thread is told to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub l4: L4,
    pub stateful: bool,
    /// Client to server (the sending port's frames) and back.
    pub l2: L2,
    pub l2_back: L2,
    pub space: TupleSpace,
    pub flows: u64,
    pub flowlen: u64,
    pub pkt_size: PktSize,
    /// Shortest frame sent (stateless modes): with a receiving port, the headers plus the
    /// stamp, so every frame can be counted at the far side (0: `pkt_size` as given).
    pub min_len: usize,
    pub threads: usize,
    /// This thread's share of `count` (0: no limit).
    pub count: u64,
    /// This thread's share of the packet rate (`None`: as fast as possible).
    pub pps: Option<f64>,
    /// Stateful: this thread's share of the connection-opening rate.
    pub conn_rate: Option<f64>,
    pub duration: Option<Duration>,
    pub batch: usize,
    /// How long to keep receiving after the last send, for packets still in flight.
    pub settle: Duration,
}

/// One port of a thread: the AF_XDP queue and the frames on their way.
pub struct Side {
    pub io: XskPorts,
    pub out: Vec<XskFrame>,
    pub rx: Vec<XskFrame>,
    /// A frame allocated and then not written (room for one, so nothing allocates).
    spare: Vec<XskFrame>,
}

impl Side {
    pub fn new(mut io: XskPorts, batch: usize) -> Self {
        // The fill ring primed now, before any thread sends: the kernel drops what arrives on
        // an empty fill ring, and the gateway can forward the first burst before this side's
        // first pump would have filled it.
        io.fill(0);
        Side {
            io,
            out: Vec::with_capacity(batch * 4),
            rx: Vec::with_capacity(batch),
            spare: Vec::with_capacity(1),
        }
    }

    /// Reap completions, top up the fill ring, push what waits to TX; the number sent.
    pub fn pump(&mut self, tot: &mut Totals) -> usize {
        self.io.complete(0);
        self.io.fill(0);
        if self.out.is_empty() {
            return 0;
        }
        let before = self.out.len();
        let sent = self.io.send(0, &mut self.out);
        if sent < before {
            tot.tx_ring_full += 1;
        }
        sent
    }

    /// Room for more outgoing frames without growing `out`.
    pub fn room(&self) -> usize {
        self.out.capacity() - self.out.len()
    }

    /// A free frame written by `f` (which returns the length; 0 = nothing written), queued.
    pub fn queue(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Option<usize> {
        if self.room() == 0 {
            return None;
        }
        let mut fr = self.io.alloc()?;
        let cap = self.io.capacity();
        let n = {
            let mut d = self.io.set_len(&mut fr, cap);
            f(&mut d)
        };
        if n == 0 {
            self.spare.push(fr);
            self.io.release(&mut self.spare);
            return None;
        }
        self.io.set_len(&mut fr, n);
        self.out.push(fr);
        Some(n)
    }
}

/// The length of the `n`th stateless frame: its `pkt_size`, raised to `min_len`.
pub fn frame_len(size: PktSize, n: u64, min_len: usize) -> usize {
    (size.nth(n) as usize).max(min_len)
}

/// Nanoseconds since the epoch, as stamps carry them (mod 2^32).
pub fn stamp_now(epoch: Instant) -> u32 {
    stamp_at(epoch, Instant::now())
}

/// `now` as a stamp (one clock read serves a whole loop iteration: at these rates the
/// vDSO clock was a fifth of the generator's time when read for every decision).
pub fn stamp_at(epoch: Instant, now: Instant) -> u32 {
    now.duration_since(epoch).as_nanos() as u32
}

/// Paces a packet stream: how many may go now so that `rate` per second holds on average,
/// bursts capped at one batch.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<f64>,
    start: Instant,
    done: u64,
}

impl Pacer {
    pub fn new(rate: Option<f64>, start: Instant) -> Self {
        Pacer {
            rate,
            start,
            done: 0,
        }
    }

    pub fn allowed(&mut self, batch: usize, now: Instant) -> usize {
        let Some(r) = self.rate else {
            return batch;
        };
        let due = (r * now.duration_since(self.start).as_secs_f64()) as u64;
        if due > self.done + batch as u64 {
            // Behind (the port pushed back): do not burst to catch up.
            self.done = due - batch as u64;
        }
        (due.saturating_sub(self.done) as usize).min(batch)
    }

    pub fn took(&mut self, n: usize) {
        self.done += n as u64;
    }
}

/// The stateless modes (UDP, TCP with fixed flags such as a SYN flood, ICMP echo): send from
/// `tx`, receive and check stamps on `rx`.
pub fn stateless(
    plan: &Plan,
    t: usize,
    tx: &mut Side,
    mut rx: Option<&mut Side>,
    live: &Live,
    stop: &AtomicBool,
    epoch: Instant,
) -> (Totals, RxState) {
    let mut tot = Totals::default();
    let mut st = RxState::new(plan.flows as usize);
    let mut slots = Slots::new(
        plan.flows,
        plan.flowlen,
        plan.space.len(),
        t as u64,
        plan.threads as u64,
    );
    let mut seq = vec![0u32; slots.len()];
    let start = Instant::now();
    let mut pacer = Pacer::new(plan.pps, start);
    let mut n = 0u64;
    let mut last_rx = Instant::now();
    let mut queued_bytes: Vec<usize> = Vec::with_capacity(plan.batch * 4);
    loop {
        let now = Instant::now();
        let sending = !stop.load(Relaxed)
            && (plan.count == 0 || tot.sent < plan.count)
            && plan.duration.is_none_or(|d| now.duration_since(start) < d);
        if sending {
            let mut want = pacer.allowed(plan.batch, now);
            if plan.count > 0 {
                want = want.min((plan.count - tot.sent) as usize);
            }
            want = want.min(tx.room());
            let ts = stamp_at(epoch, now);
            for _ in 0..want {
                let (k, idx) = slots.next_packet();
                let tuple = plan.space.nth(idx);
                let s = Stamp {
                    slot: slots.global(k) as u32,
                    seq: seq[k],
                    ts,
                };
                let len = frame_len(plan.pkt_size, n, plan.min_len);
                let Some(bytes) =
                    tx.queue(|b| frame::write(b, &plan.l2, &tuple, &plan.l4, len, Some(&s)))
                else {
                    break;
                };
                seq[k] = seq[k].wrapping_add(1);
                n += 1;
                queued_bytes.push(bytes);
                pacer.took(1);
            }
        } else if tx.out.is_empty() && now.saturating_duration_since(last_rx) >= plan.settle {
            break;
        }
        let sent = tx.pump(&mut tot);
        if sent > 0 {
            let b: usize = queued_bytes.drain(..sent).sum();
            tot.sent += sent as u64;
            tot.sent_bytes += b as u64;
            Live::add(&live.sent, sent as u64);
            Live::add(&live.sent_bytes, b as u64);
        }
        // Whatever comes back on the sending port (resets, ICMP errors, the host's own).
        if receive(tx, &mut tot, &mut st, live, epoch, plan.batch) > 0 {
            last_rx = now;
        }
        if let Some(r) = rx.as_mut() {
            r.pump(&mut tot);
            if receive(r, &mut tot, &mut st, live, epoch, plan.batch) > 0 {
                last_rx = now;
            }
        }
        if !sending && tx.out.is_empty() && now.saturating_duration_since(last_rx) < plan.settle {
            // Draining: do not spin a core the gateway may need.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    tot.flows_started = slots.started;
    tot.reordered = st.reordered;
    (tot, st)
}

/// Receive one batch on `side`: stamped frames are counted and timed, the rest counted as
/// other. The number of frames received.
pub fn receive(
    side: &mut Side,
    tot: &mut Totals,
    st: &mut RxState,
    live: &Live,
    epoch: Instant,
    batch: usize,
) -> usize {
    let got = side.io.recv(0, &mut side.rx, batch);
    if got == 0 {
        return 0;
    }
    let now = stamp_now(epoch);
    let (mut n, mut bytes) = (0u64, 0u64);
    for f in &side.rx {
        let data = side.io.data(f);
        match wire::parse(data)
            .ok()
            .and_then(|m| m.is_ip.then(|| Stamp::read(m.payload(data))).flatten())
        {
            Some(s) => {
                st.record(&s, now);
                n += 1;
                bytes += data.len() as u64;
            }
            None => tot.other_received += 1,
        }
    }
    side.io.release(&mut side.rx);
    tot.received += n;
    tot.received_bytes += bytes;
    Live::add(&live.received, n);
    Live::add(&live.received_bytes, bytes);
    got
}

/// Run thread `t`: the stateless or the stateful loop.
pub fn run(
    plan: &Plan,
    t: usize,
    tx: &mut Side,
    rx: Option<&mut Side>,
    live: &Live,
    stop: &AtomicBool,
    epoch: Instant,
) -> (Totals, RxState) {
    match rx {
        // main() refuses the stateful mode without a receiving port.
        Some(rx) if plan.stateful => super::tcp::run(plan, t, tx, rx, live, stop, epoch),
        rx => stateless(plan, t, tx, rx, live, stop, epoch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::packet::tcp_flags::{ACK, SYN};

    use super::super::flows::Tuple;
    use super::super::frame::{header_len, TcpHdr, STAMP_LEN};

    /// With a receiving port every frame must carry the stamp, or the far side counts it
    /// lost: IPv6 UDP/ICMP (62 bytes of headers), SYNs (62) and TCP ACKs (54) at the default
    /// 60 bytes, with or without a VLAN tag, IMIX's 60-byte frames included.
    #[test]
    fn frames_raised_to_carry_the_stamp() {
        let mut buf = [0u8; 2048];
        let stamp = Stamp {
            slot: 1,
            seq: 2,
            ts: 3,
        };
        let ack = TcpHdr {
            seq: 1,
            ack: 1,
            flags: ACK,
            window: 0xffff,
            syn_wscale: None,
        };
        let syn = TcpHdr {
            flags: SYN,
            ack: 0,
            syn_wscale: Some(7),
            ..ack
        };
        for (src, dst) in [("10.10.0.2", "10.10.0.3"), ("fd00:10::2", "fd00:10::3")] {
            let t = Tuple {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                sport: 1024,
                dport: 9,
            };
            for vlan in [None, Some(7)] {
                let l2 = L2 {
                    src: [2, 0, 0, 0, 0, 2],
                    dst: [2, 0, 0, 0, 0, 3],
                    vlan,
                };
                for l4 in [L4::Udp, L4::Icmp, L4::Tcp(ack), L4::Tcp(syn)] {
                    let hdr = header_len(&l2, t.src.is_ipv4(), &l4);
                    for size in ["60".parse().unwrap(), PktSize::Imix] {
                        for n in 0..12 {
                            let len = frame_len(size, n, hdr + STAMP_LEN);
                            assert!(len >= usize::from(size.nth(n)));
                            let w = frame::write(&mut buf, &l2, &t, &l4, len, Some(&stamp));
                            assert_eq!(w, len);
                            let m = wire::parse(&buf[..w]).unwrap();
                            assert_eq!(
                                Stamp::read(m.payload(&buf[..w])),
                                Some(stamp),
                                "{l4:?} {src} {size}"
                            );
                        }
                    }
                    // Without a receiving port the size is what was asked for.
                    assert_eq!(frame_len("60".parse().unwrap(), 0, 0), 60);
                }
            }
        }
    }

    /// Frames that arrive before the first `pump` are received: `Side::new` fills the fill
    /// ring (the first SYN burst of a stateful run was dropped at the far port otherwise).
    /// Root only (a veth pair in a namespace of its own); skipped otherwise.
    #[test]
    fn receives_before_the_first_pump() {
        use dataplane::xsk::{self, PortConfig, UmemConfig};
        use std::process::Command;

        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if !root {
            eprintln!("SKIPPED: receives_before_the_first_pump needs root (netns, AF_XDP)");
            return;
        }
        let ns = format!("swpgu{}", std::process::id());
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().expect("ip");
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        };
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = Command::new("ip")
                    .args(["netns", "delete", &self.0])
                    .status();
            }
        }
        ip(&["netns", "add", &ns]);
        let _gone = Gone(ns.clone());
        // No IPv6 on the pair: its host stack would send its own frames (MLD, router
        // solicitations) across it, and only the test's 8 may arrive.
        ip(&[
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ip(&[
            "-n", &ns, "link", "add", "pga", "type", "veth", "peer", "name", "pgb",
        ]);
        ip(&["-n", &ns, "link", "set", "pga", "up"]);
        ip(&["-n", &ns, "link", "set", "pgb", "up"]);
        let got = std::thread::spawn(move || {
            xsk::enter_netns(&ns).unwrap();
            let open = |ifc: &str| {
                xsk::XskPorts::open(
                    &[PortConfig::new(ifc.to_string(), 0)],
                    &UmemConfig::default(),
                )
                .unwrap()
            };
            let mut rx = Side::new(open("pga"), 64);
            let mut tx = Side::new(open("pgb"), 64);
            let t = Tuple {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                sport: 1,
                dport: 9,
            };
            let l2 = L2 {
                src: [2, 0, 0, 0, 0, 1],
                dst: [2, 0, 0, 0, 0, 2],
                vlan: None,
            };
            let s = Stamp {
                slot: 0,
                seq: 0,
                ts: 0,
            };
            for _ in 0..8 {
                tx.queue(|b| frame::write(b, &l2, &t, &L4::Udp, 60, Some(&s)))
                    .unwrap();
            }
            assert_eq!(tx.io.send(0, &mut tx.out), 8);
            // Receive on `pga` without ever filling it again.
            let mut got = 0;
            let until = Instant::now() + Duration::from_secs(2);
            while got < 8 && Instant::now() < until {
                tx.io.complete(0);
                got += rx.io.recv(0, &mut rx.rx, 64);
                rx.io.release(&mut rx.rx);
                std::thread::sleep(Duration::from_millis(1));
            }
            got
        })
        .join()
        .unwrap();
        assert_eq!(
            got, 8,
            "frames sent before the receiver's first pump were lost"
        );
    }
}
