//! The sync (issue 14), two costs:
//!
//! - `statewall-bench sync`: the sync thread's work on one core: entries to messages
//!   (`sync::entry::attrs_of`, `sync::peer::Peer::send_ct` in FTFW, datagrams closed at 1472
//!   bytes), entries per second and bytes per entry on the wire; and the receiving side
//!   (`Peer::receive`, `entry_of`) on those datagrams.
//! - `pipeline --sync` / `engine --sync`: what the workers pay: each shard records its
//!   events and the worker hands them to a ring after every batch ([`Handover`]), as the
//!   daemon does; a thread on the other core empties the ring, as the sync thread does (its
//!   work is not the worker's, and callgrind's `--toggle-collect` of the loop does not count
//!   it).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::ensure;
use crossbeam::queue::ArrayQueue;
use engine::conntrack::entry::{status, Entry};
use engine::conntrack::tcp::state;
use engine::flow::FlowKey;
use engine::packet::{v4_mapped, IpFamily};
use engine::pipeline::Pipeline;
use engine::sync::entry::{attrs_of, entry_of};
use engine::sync::events::Event;
use engine::sync::peer::{Mode, Peer, PeerConfig, Received};
use engine::sync::wire::kind;

use crate::engine::median;

/// A shard's event log (the daemon's `EVENT_LOG`).
const LOG: usize = 4096;

/// The workers' side of the sync: a ring the pipeline's events go onto after each batch, and
/// a thread on another core taking them off.
pub struct Handover {
    ring: Arc<ArrayQueue<Event>>,
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    consumer: Option<JoinHandle<()>>,
    pub lost: u64,
}

impl Handover {
    /// Turn on `p`'s events (refresh 60 s, as the daemon's default) with a ring of `ring`
    /// events, and start the consumer unless `!consume` (then the ring must hold the run).
    pub fn start(p: &mut Pipeline, ring: usize, consume: bool) -> Handover {
        p.shard_mut().enable_events(LOG, 60_000_000_000);
        let ring = Arc::new(ArrayQueue::new(ring.max(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let consumer = consume.then(|| {
            let (ring, stop, taken) = (Arc::clone(&ring), Arc::clone(&stop), Arc::clone(&taken));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut n = 0;
                    while let Some(ev) = ring.pop() {
                        black_box(ev);
                        n += 1;
                    }
                    taken.fetch_add(n, Ordering::Relaxed);
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        });
        Handover {
            ring,
            stop,
            taken,
            consumer,
            lost: 0,
        }
    }

    /// What the worker does after a batch (runtime/worker.rs `hand_over_sync`).
    #[inline]
    pub fn hand_over(&mut self, p: &mut Pipeline) {
        let Some(log) = p.shard_mut().events_mut() else {
            return;
        };
        for ev in log.drain() {
            if self.ring.push(ev).is_err() {
                self.lost += 1;
            }
        }
    }

    /// Stop the consumer and say how many events were handed over and lost.
    pub fn report(self, p: &mut Pipeline) {
        let (taken, lost) = self.finish(p);
        println!("sync: {taken} events handed over, {lost} lost");
    }

    /// Stop the consumer: events taken off the ring, and lost (a full ring or log).
    fn finish(mut self, p: &mut Pipeline) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.consumer.take() {
            let _ = t.join();
        }
        let log_lost = p.shard_mut().events_mut().map_or(0, |l| l.lost);
        (
            self.taken.load(Ordering::Relaxed) + self.ring.len() as u64,
            self.lost + log_lost,
        )
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Entries per round.
    #[arg(long, default_value_t = 200_000)]
    pub entries: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// Entries as a gateway's table holds them: TCP (established, assured; one in 8 with a
/// mark), UDP, ICMP echoes.
fn entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let c = Ipv4Addr::from(0x0a40_0000 + i as u32).octets();
            let s = Ipv4Addr::from(0xcb00_7100 + (i as u32 % 251)).octets();
            let (p, sport, dport) = match i % 8 {
                0..=5 => (6, 1024 + (i % 60000) as u16, 443),
                6 => (17, 1024 + (i % 60000) as u16, 53),
                _ => (1, i as u16, 8 << 8),
            };
            let key = FlowKey::new(IpFamily::V4, v4_mapped(c), v4_mapped(s), p, sport, dport);
            let tcp_state = (p == 6).then_some(state::ESTABLISHED);
            let mut e = Entry::handed_over(
                key,
                432_000_000_000_000,
                status::SEEN_REPLY | status::ASSURED,
                tcp_state,
            );
            e.mark = if i % 8 == 0 { 0x10 } else { 0 };
            e
        })
        .collect()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "rates and averages for display; counts far below 2^52"
)]
pub fn run(a: &Args) -> anyhow::Result<()> {
    let es = entries(a.entries);
    let cfg = PeerConfig {
        mode: Mode::Ftfw,
        ack_window: 300,
        resend_queue: 131_072,
        mtu: 1472,
    };
    let (mut send_ns, mut recv_ns) = (Vec::new(), Vec::new());
    let (mut bytes, mut datagrams) = (0, 0);
    for _ in 0..a.rounds {
        let mut tx = Peer::new(cfg, 1, 0);
        let t = Instant::now();
        let mut out = Vec::new();
        for e in &es {
            if let Some(attrs) = attrs_of(e, 1) {
                tx.send_ct(kind::CT_UPD, e.key, &attrs, 1);
            }
            // The sync thread sends as it goes: datagrams do not pile up.
            while let Some(d) = tx.poll_transmit() {
                out.push(d);
            }
        }
        tx.flush();
        while let Some(d) = tx.poll_transmit() {
            out.push(d);
        }
        send_ns.push(t.elapsed().as_nanos() as f64 / a.entries as f64);
        bytes = tx.stats.bytes_sent;
        datagrams = tx.stats.datagrams_sent;
        // The other side: read, and make entries.
        let mut rx = Peer::new(cfg, 7, 0);
        let mut got = Vec::with_capacity(64);
        let mut made = 0usize;
        let t = Instant::now();
        for d in &out {
            rx.receive(d, 1, &mut got);
            for r in got.drain(..) {
                if let Received::Ct(_, attrs) = r {
                    made += usize::from(entry_of(&attrs, 1).is_ok());
                }
            }
        }
        recv_ns.push(t.elapsed().as_nanos() as f64 / a.entries as f64);
        ensure!(
            made == a.entries,
            "{made} of {} entries read back",
            a.entries
        );
        ensure!(rx.stats.malformed == 0, "malformed messages");
    }
    let (s, r) = (median(send_ns), median(recv_ns));
    println!(
        "sync send   {:>8} entries  {:>7.0} ns/entry ({:.0}–{:.0})  {:>6.2} M entries/s  {:.1} bytes/entry  {} datagrams",
        a.entries,
        s.0,
        s.1,
        s.2,
        1e3 / s.0,
        bytes as f64 / a.entries as f64,
        datagrams
    );
    println!(
        "sync receive{:>8} entries  {:>7.0} ns/entry ({:.0}–{:.0})  {:>6.2} M entries/s",
        a.entries,
        r.0,
        r.1,
        r.2,
        1e3 / r.0
    );
    Ok(())
}
