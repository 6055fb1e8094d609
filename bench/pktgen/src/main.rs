//! `statewall-pktgen`: an AF_XDP packet generator for load-testing a gateway (this kernel has
//! no `pktgen` module, and AF_PACKET senders stop near 1.8 Mpps here). One thread per queue;
//! each sends on queue *i* of `--dev` and receives on queue *i* of `--rx-dev`, the gateway's
//! far side, where it counts packets, loss, reordering and latency from the stamp every
//! payload carries. Knobs are named like the kernel pktgen's (`count`, `rate`, `pkt_size`,
//! `flows`, `flowlen`, ...). `--mode stateful` plays both ends of real TCP connections
//! through the gateway. See `scripts/pktgen.sh` for the common cases against the lab.
#![forbid(unsafe_code)]
#![allow(
    clippy::cast_precision_loss,
    reason = "rates, sizes and percentages of packet counts, far below 2^52"
)]

mod flows;
mod frame;
mod spec;
mod stats;
mod tcp;
mod worker;

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, ValueEnum};
use dataplane::xsk::{self, PortConfig, UmemConfig, XdpMode, XskPorts, ZeroCopy};
use hdrhistogram::Histogram;
use serde::Serialize;

use engine::packet::tcp_flags::SYN;
use flows::TupleSpace;
use frame::{TcpHdr, L2, L4};
use spec::{Dev, IpRange, PktSize, PortRange, Rate};
use stats::{LatencyReport, Live, RxState, Totals};
use worker::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// UDP datagrams.
    Udp,
    /// TCP segments with the ACK flag (no handshake: the gateway sees them as INVALID or,
    /// with tcp_loose, picks them up mid-stream).
    Tcp,
    /// TCP SYNs from rotating source ports: a SYN flood, for stress.
    SynFlood,
    /// ICMP echo requests (ICMPv6 for IPv6 addresses).
    Icmp,
    /// Real TCP connections through the gateway: handshake, data both ways, close.
    Stateful,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "statewall-pktgen",
    about = "AF_XDP packet generator: sends on one port of a gateway, receives on the other",
    after_help = "Example (the lab of scripts/lab.sh, 1 Mpps of 64-byte UDP over 1000 flows for 5 s):\n  \
        statewall-pktgen --dev eth0@sw-client --rx-dev eth0@sw-server --src 10.10.0.2 \\\n    \
        --dst 10.10.0.3 --dport 9 --flows 1000 --rate 1M --duration 5"
)]
struct Args {
    /// Port to send on: IF or IF@NETNS.
    #[arg(long, value_name = "IF[@NETNS]")]
    dev: Dev,
    /// Port to receive on, the gateway's far side (needed for loss, latency and --mode
    /// stateful; without it the generator only sends).
    #[arg(long, value_name = "IF[@NETNS]")]
    rx_dev: Option<Dev>,
    #[arg(long, value_enum, default_value = "udp")]
    mode: Mode,
    /// Packets to send (data segments in stateful mode), SI suffixes allowed; 0: no limit.
    #[arg(long, default_value = "0", value_parser = spec::count)]
    count: u64,
    /// Packets/s (1M, 500kpps), bits/s (1Gbit, frames with FCS), or 0 for as fast as possible.
    #[arg(long, default_value = "0")]
    rate: Rate,
    /// Seconds to send for (at most; --count may end it first). Default: until --count, or
    /// Ctrl-C.
    #[arg(long)]
    duration: Option<f64>,
    /// Frame size without FCS: 60 (a 64-byte frame), a range 60-1514, or imix (7:4:1).
    #[arg(long, alias = "pkt_size", default_value = "60")]
    pkt_size: PktSize,
    /// Source addresses: A, A-B or A/len (IPv4 or IPv6).
    #[arg(long)]
    src: IpRange,
    /// Destination addresses, as --src.
    #[arg(long)]
    dst: IpRange,
    /// Source ports: P or P-Q.
    #[arg(long, default_value = "1024-65535")]
    sport: PortRange,
    /// Destination ports: P or P-Q.
    #[arg(long, default_value = "9")]
    dport: PortRange,
    /// Concurrent flows (connections in stateful mode), spread over the tuples.
    #[arg(long, default_value = "1", value_parser = spec::count)]
    flows: u64,
    /// Packets per flow before it moves to a fresh tuple (stateful: data segments per
    /// connection before it closes); 0: never.
    #[arg(long, default_value = "0", value_parser = spec::count)]
    flowlen: u64,
    /// Stateful: connections opened per second (SI suffixes); 0: all flows at once, and
    /// every closed one reopened at once.
    #[arg(long, default_value = "0")]
    conn_rate: String,
    /// One 802.1Q tag with this VLAN id.
    #[arg(long)]
    vlan: Option<u16>,
    /// Source MAC (default: the sending port's own).
    #[arg(long, value_parser = spec::mac)]
    src_mac: Option<[u8; 6]>,
    /// Destination MAC (default: the receiving port's own).
    #[arg(long, value_parser = spec::mac)]
    dst_mac: Option<[u8; 6]>,
    /// Threads, thread i on queue i of each port.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Pin thread i to the i-th of these cores (e.g. 0 or 0,1).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: XdpModeArg,
    #[arg(long, value_enum, default_value = "auto")]
    zero_copy: ZeroCopyArg,
    /// Frames per ring operation.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Milliseconds to keep receiving after the last packet arrived, at the end.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
    /// Print the final report as JSON (progress lines still go to stderr).
    #[arg(long)]
    json: bool,
    /// No progress line each second.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum XdpModeArg {
    Auto,
    Native,
    Skb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ZeroCopyArg {
    Auto,
    On,
    Off,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: String,
    pkt_size: String,
    flows: u64,
    threads: u32,
    dev: String,
    rx_dev: Option<String>,
    port_modes: Vec<String>,
    seconds: f64,
    sent: u64,
    sent_bytes: u64,
    sent_pps: f64,
    sent_bits_per_sec: f64,
    received: Option<u64>,
    received_pps: Option<f64>,
    lost: Option<u64>,
    loss_pct: Option<f64>,
    reordered: u64,
    latency: Option<LatencyReport>,
    /// Stamps whose latency could not be read (over 4.29 s).
    latency_out_of_range: u64,
    totals: Totals,
}

fn main() {
    clidoc::generate_if_asked(Args::command);
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("statewall-pktgen: {e:#}");
        std::process::exit(1);
    }
}

fn port_config(dev: &Dev, queue: u32, a: &Args) -> PortConfig {
    PortConfig {
        xdp_mode: match a.xdp_mode {
            XdpModeArg::Auto => XdpMode::Auto,
            XdpModeArg::Native => XdpMode::Native,
            XdpModeArg::Skb => XdpMode::Skb,
        },
        zero_copy: match a.zero_copy {
            ZeroCopyArg::Auto => ZeroCopy::Auto,
            ZeroCopyArg::On => ZeroCopy::On,
            ZeroCopyArg::Off => ZeroCopy::Off,
        },
        ..PortConfig::new(dev.interface.clone(), queue)
    }
}

/// Open queue `q` of `dev` from this thread (entering its namespace first); its MAC too.
fn open(dev: &Dev, q: u32, a: &Args) -> anyhow::Result<(XskPorts, [u8; 6])> {
    if let Some(ns) = &dev.netns {
        xsk::enter_netns(ns)?;
    }
    let mac = xsk::hw_addr(&dev.interface).with_context(|| format!("{dev}: its MAC address"))?;
    let ports = XskPorts::open(&[port_config(dev, q, a)], &UmemConfig::default())
        .with_context(|| format!("opening {dev} queue {q}"))?;
    Ok((ports, mac))
}

fn share(total: u64, t: u64, threads: u64) -> u64 {
    total / threads + u64::from(t < total % threads)
}

fn run(a: &Args) -> anyhow::Result<()> {
    let threads = a.queues.max(1);
    let stateful = a.mode == Mode::Stateful;
    if stateful && a.rx_dev.is_none() {
        bail!(
            "--mode stateful plays both ends of each connection: give the far port with --rx-dev"
        );
    }
    if a.flows == 0 {
        bail!("--flows must be at least 1");
    }
    if a.flows < u64::from(threads) {
        bail!(
            "--flows {} is fewer than --queues {threads}: each thread needs a flow",
            a.flows
        );
    }
    if a.batch == 0 || a.batch > 1024 {
        bail!("--batch {}: 1 to 1024", a.batch);
    }
    let space = TupleSpace::new(a.src, a.dst, a.sport, a.dport).map_err(anyhow::Error::msg)?;
    let flows_needed = if a.flowlen > 0 { a.flows * 2 } else { a.flows };
    if space.len() < u128::from(flows_needed) {
        bail!(
            "only {} distinct tuples in --src/--dst/--sport/--dport for --flows {}{}: widen a range",
            space.len(),
            a.flows,
            if a.flowlen > 0 { " (twice that with --flowlen, to rotate)" } else { "" }
        );
    }
    let l4 = match a.mode {
        Mode::Udp => L4::Udp,
        Mode::Icmp => L4::Icmp,
        Mode::Tcp | Mode::Stateful => L4::Tcp(TcpHdr {
            seq: 1,
            ack: 1,
            flags: engine::packet::tcp_flags::ACK,
            window: 0xffff,
            syn_wscale: None,
        }),
        Mode::SynFlood => L4::Tcp(TcpHdr {
            seq: 1,
            ack: 0,
            flags: SYN,
            window: 0xffff,
            syn_wscale: Some(7),
        }),
    };
    let probe_l2 = L2 {
        src: [0; 6],
        dst: [0; 6],
        vlan: a.vlan,
    };
    let hdr = frame::header_len(&probe_l2, a.src.is_ipv4(), &l4);
    if stateful && (a.pkt_size.min() as usize) < hdr + frame::STAMP_LEN {
        bail!(
            "--pkt-size {}: stateful data segments carry a {}-byte stamp after {hdr} bytes of \
             headers; use at least {}",
            a.pkt_size,
            frame::STAMP_LEN,
            hdr + frame::STAMP_LEN
        );
    }
    // The receive side counts only stamped frames: with a receiving port, frames too short
    // for the stamp are sent long enough to carry it (as the kernel's pktgen makes room for
    // its own header), or each would be reported lost.
    let min_len = if a.rx_dev.is_some() && !stateful {
        hdr + frame::STAMP_LEN
    } else {
        0
    };
    if (a.pkt_size.min() as usize) < min_len {
        eprintln!(
            "statewall-pktgen: frames under {min_len} B are sent at {min_len} B: {hdr} bytes of \
             headers and the {}-byte stamp the receive side counts",
            frame::STAMP_LEN
        );
    }
    let conn_rate = spec::si(&a.conn_rate).map_err(|e| anyhow::anyhow!("--conn-rate {e}"))?;
    let pps = a.rate.pps(a.pkt_size.average());

    // Open the ports, one thread per queue, each in the namespaces it needs.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let go = Arc::new(Barrier::new(threads as usize + 1));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (plan_tx, plan_rx): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::channel::<Option<Arc<Plan>>>())
        .unzip();
    let lives: Vec<Arc<Live>> = (0..threads).map(|_| Arc::new(Live::default())).collect();
    let epoch = Instant::now();
    let mut handles = Vec::new();
    for (t, plan_rx) in plan_rx.into_iter().enumerate() {
        let (dev, rx_dev) = (a.dev.clone(), a.rx_dev.clone());
        let cpu = a.cpus.get(t).copied();
        let ready = ready_tx.clone();
        let (go, stop, live) = (Arc::clone(&go), Arc::clone(&stop), Arc::clone(&lives[t]));
        let a2 = a.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("pktgen-{t}"))
                .spawn(move || {
                    if let Some(c) = cpu {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    // A socket must be closed from its own namespace: libxdp finds the interface
                    // (to update its XDP program's socket map) by index in the caller's namespace.
                    let close = |side: worker::Side, dev: &Dev| {
                        if let Some(ns) = &dev.netns {
                            let _ = xsk::enter_netns(ns);
                        }
                        drop(side);
                    };
                    let (tx_ports, tx_mac) = match open(&dev, t as u32, &a2) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            go.wait();
                            return None;
                        }
                    };
                    let mut tx = worker::Side::new(tx_ports, a2.batch);
                    let mut rx = None;
                    if let Some(d) = &rx_dev {
                        match open(d, t as u32, &a2) {
                            Ok((p, mac)) => rx = Some((worker::Side::new(p, a2.batch), mac)),
                            Err(e) => {
                                close(tx, &dev);
                                let _ = ready.send(Err(e));
                                go.wait();
                                return None;
                            }
                        }
                    }
                    let modes = std::iter::once(tx.io.mode(0).to_string())
                        .chain(rx.as_ref().map(|(s, _)| s.io.mode(0).to_string()))
                        .collect::<Vec<_>>();
                    let _ = ready.send(Ok((t, tx_mac, rx.as_ref().map(|r| r.1), modes)));
                    go.wait();
                    let result = plan_rx.recv().ok().flatten().map(|plan| {
                        worker::run(
                            &plan,
                            t,
                            &mut tx,
                            rx.as_mut().map(|r| &mut r.0),
                            &live,
                            &stop,
                            epoch,
                        )
                    });
                    close(tx, &dev);
                    if let (Some((side, _)), Some(d)) = (rx, &rx_dev) {
                        close(side, d);
                    }
                    result
                })?,
        );
    }
    drop(ready_tx);
    let mut macs = None;
    let mut port_modes = Vec::new();
    let mut failure = None;
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok((t, tx_mac, rx_mac, modes))) => {
                if t == 0 {
                    macs = Some((tx_mac, rx_mac));
                }
                port_modes.extend(modes);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a generator thread ended early")),
        }
    }
    go.wait();
    let plan = match (failure, macs) {
        (None, Some((tx_mac, rx_mac))) => {
            let src_mac = a.src_mac.unwrap_or(tx_mac);
            let Some(dst_mac) = a.dst_mac.or(rx_mac) else {
                for p in &plan_tx {
                    let _ = p.send(None);
                }
                bail!("--dst-mac is needed when there is no --rx-dev to take it from");
            };
            let far_mac = rx_mac.unwrap_or(dst_mac);
            Plan {
                l4,
                stateful,
                l2: L2 {
                    src: src_mac,
                    dst: dst_mac,
                    vlan: a.vlan,
                },
                l2_back: L2 {
                    src: far_mac,
                    dst: src_mac,
                    vlan: a.vlan,
                },
                space,
                flows: a.flows,
                flowlen: a.flowlen,
                pkt_size: a.pkt_size,
                min_len,
                threads: threads as usize,
                count: 0,
                pps: None,
                conn_rate: None,
                duration: a.duration.map(Duration::from_secs_f64),
                batch: a.batch,
                settle: Duration::from_millis(a.settle_ms),
            }
        }
        (failure, _) => {
            for p in &plan_tx {
                let _ = p.send(None);
            }
            for h in handles {
                let _ = h.join();
            }
            return Err(failure.unwrap_or_else(|| anyhow::anyhow!("no generator thread started")));
        }
    };
    let rx_desc = a
        .rx_dev
        .as_ref()
        .map_or_else(|| "(no receive port)".to_string(), |d| format!("-> {d}"));
    eprintln!(
        "statewall-pktgen: {:?} {} B, {} flow(s){}, {threads} thread(s), {} {rx_desc}",
        a.mode,
        a.pkt_size,
        a.flows,
        if a.flowlen > 0 {
            format!(" of {} packets", a.flowlen)
        } else {
            String::new()
        },
        a.dev
    );
    for m in &port_modes {
        eprintln!("  port {m}");
    }
    let start = Instant::now();
    for (t, p) in plan_tx.iter().enumerate() {
        let t64 = t as u64;
        let plan = Plan {
            count: share(a.count, t64, u64::from(threads)),
            pps: pps.map(|r| r / f64::from(threads)),
            conn_rate: (conn_rate > 0.0).then(|| conn_rate / f64::from(threads)),
            ..plan.clone()
        };
        let _ = p.send(Some(Arc::new(plan)));
    }
    // Progress each second until every thread is done.
    let mut last = (0u64, 0u64, Instant::now());
    let mut sec = 0;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last.2.elapsed() < Duration::from_secs(1) {
            continue;
        }
        sec += 1;
        let sum = |f: fn(&Live) -> u64| lives.iter().map(|l| f(l)).sum::<u64>();
        let (s, r) = (
            sum(|l| l.sent.load(Relaxed)),
            sum(|l| l.received.load(Relaxed)),
        );
        let dt = last.2.elapsed().as_secs_f64();
        if !a.quiet {
            let est = sum(|l| l.established.load(Relaxed));
            let mut line = format!(
                "{sec:>4}s  sent {s:>12}  {:>8.3} Mpps",
                (s - last.0) as f64 / dt / 1e6
            );
            if a.rx_dev.is_some() {
                let _ = write!(
                    line,
                    "   received {r:>12}  {:>8.3} Mpps",
                    (r - last.1) as f64 / dt / 1e6
                );
            }
            if stateful {
                let _ = write!(line, "   established {est}");
            }
            eprintln!("{line}");
        }
        last = (s, r, Instant::now());
    }
    let mut totals = Totals::default();
    let mut hist: Option<Histogram<u64>> = None;
    let mut late = 0;
    for h in handles {
        let Ok(Some((tot, st))) = h.join() else {
            bail!("a generator thread failed");
        };
        totals.merge(&tot);
        late += st.late;
        merge_hist(&mut hist, st);
    }
    let seconds = start.elapsed().as_secs_f64() - a.settle_ms as f64 / 1000.0;
    let seconds = seconds.max(1e-9);
    let has_rx = a.rx_dev.is_some();
    let lost = totals.sent.saturating_sub(totals.received);
    let report = Report {
        mode: format!("{:?}", a.mode).to_lowercase(),
        pkt_size: a.pkt_size.to_string(),
        flows: a.flows,
        threads,
        dev: a.dev.to_string(),
        rx_dev: a.rx_dev.as_ref().map(ToString::to_string),
        port_modes,
        seconds,
        sent: totals.sent,
        sent_bytes: totals.sent_bytes,
        sent_pps: totals.sent as f64 / seconds,
        sent_bits_per_sec: (totals.sent_bytes + 4 * totals.sent) as f64 * 8.0 / seconds,
        received: has_rx.then_some(totals.received),
        received_pps: has_rx.then_some(totals.received as f64 / seconds),
        lost: has_rx.then_some(lost),
        loss_pct: has_rx.then(|| pct(lost, totals.sent)),
        reordered: totals.reordered,
        latency: hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(LatencyReport::of),
        latency_out_of_range: late,
        totals: totals.clone(),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report, stateful)?;
    }
    Ok(())
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn merge_hist(into: &mut Option<Histogram<u64>>, st: RxState) {
    match into {
        None => *into = Some(st.latency),
        Some(h) => {
            // Same bounds on every thread: add() cannot fail.
            let _ = h.add(&st.latency);
        }
    }
}

fn print_text(out: &mut impl Write, r: &Report, stateful: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "sent      {} packets, {} bytes in {:.2} s: {:.3} Mpps, {:.3} Gbit/s",
        r.sent,
        r.sent_bytes,
        r.seconds,
        r.sent_pps / 1e6,
        r.sent_bits_per_sec / 1e9
    )?;
    if let (Some(rx), Some(pps), Some(lost), Some(loss)) =
        (r.received, r.received_pps, r.lost, r.loss_pct)
    {
        writeln!(
            out,
            "received  {rx} packets: {:.3} Mpps; lost {lost} ({loss:.3}%), reordered {}",
            pps / 1e6,
            r.reordered
        )?;
    }
    if let Some(l) = &r.latency {
        writeln!(
            out,
            "latency   us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.count
        )?;
    }
    let t = &r.totals;
    if stateful {
        writeln!(
            out,
            "tcp       {} SYNs ({} retransmitted), {} established, {} closed, {} failed handshakes",
            t.syn_sent, t.syn_retransmits, t.established, t.closed, t.failed_handshakes
        )?;
    }
    writeln!(
        out,
        "other     {} flows started, {} frames without a stamp received, TX ring full {} times",
        t.flows_started, t.other_received, t.tx_ring_full
    )
}
