//! `statewall run --metrics ADDR`: the runtime's counters, occupancy and latency histograms
//! in the Prometheus text exposition format (version 0.0.4), on `GET /metrics`.
//!
//! A small blocking HTTP server on its own thread; it reads the same snapshots as the control
//! socket (no lock on any worker). `ADDR` is `HOST:PORT`, or a bare port on loopback.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use config::protocol::{CoreStats, HistSummary};

use super::handle::RuntimeHandle;

/// Parse `--metrics`: `9100` means `127.0.0.1:9100`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("--metrics {s}: not an address; write a port (loopback) or HOST:PORT, e.g. 127.0.0.1:9100")
    })
}

fn core_rows(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    rows: &[CoreStats],
    f: impl Fn(&CoreStats) -> u64,
) {
    let _ = writeln!(
        out,
        "# HELP statewall_{name} {help}\n# TYPE statewall_{name} {kind}"
    );
    for c in rows {
        let _ = writeln!(
            out,
            "statewall_{name}{{worker=\"{}\"}} {}",
            c.worker.unwrap_or(0),
            f(c)
        );
    }
}

fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    rows: &[CoreStats],
    f: impl Fn(&CoreStats) -> &std::collections::BTreeMap<String, u64>,
) {
    let _ = writeln!(
        out,
        "# HELP statewall_{name} {help}\n# TYPE statewall_{name} counter"
    );
    for c in rows {
        for (k, v) in f(c) {
            let _ = writeln!(
                out,
                "statewall_{name}{{worker=\"{}\",{label}=\"{k}\"}} {v}",
                c.worker.unwrap_or(0)
            );
        }
    }
}

fn summary(out: &mut String, kind: &str, h: &HistSummary) {
    for (q, v) in [
        ("0.5", h.p50),
        ("0.9", h.p90),
        ("0.99", h.p99),
        ("0.999", h.p999),
        ("1", h.max),
    ] {
        let _ = writeln!(
            out,
            "statewall_latency_ns{{kind=\"{kind}\",quantile=\"{q}\"}} {v}"
        );
    }
    let _ = writeln!(
        out,
        "statewall_latency_ns_count{{kind=\"{kind}\"}} {}",
        h.count
    );
}

/// The exposition text for the runtime's current state.
pub fn render(handle: &RuntimeHandle) -> String {
    let stats = handle.stats(true);
    let rows = if stats.per_core.is_empty() {
        vec![stats.total.clone()]
    } else {
        stats.per_core.clone()
    };
    let mut out = String::with_capacity(8192);
    let _ = writeln!(
        out,
        "# HELP statewall_ruleset_generation Generation of the running ruleset.\n# TYPE statewall_ruleset_generation gauge\nstatewall_ruleset_generation {}",
        stats.generation
    );
    let _ = writeln!(out, "# HELP statewall_workers Worker threads.\n# TYPE statewall_workers gauge\nstatewall_workers {}", stats.workers);
    core_rows(
        &mut out,
        "rx_packets_total",
        "Frames received.",
        "counter",
        &rows,
        |c| c.rx_packets,
    );
    core_rows(
        &mut out,
        "rx_bytes_total",
        "Bytes received.",
        "counter",
        &rows,
        |c| c.rx_bytes,
    );
    core_rows(
        &mut out,
        "tx_packets_total",
        "Frames transmitted.",
        "counter",
        &rows,
        |c| c.tx_packets,
    );
    core_rows(
        &mut out,
        "tx_bytes_total",
        "Bytes transmitted.",
        "counter",
        &rows,
        |c| c.tx_bytes,
    );
    core_rows(
        &mut out,
        "accepted_total",
        "Packets accepted.",
        "counter",
        &rows,
        |c| c.accepted,
    );
    labelled(
        &mut out,
        "dropped_total",
        "Packets dropped, by reason.",
        "reason",
        &rows,
        |c| &c.dropped,
    );
    labelled(
        &mut out,
        "ctstate_packets_total",
        "Packets by conntrack state.",
        "state",
        &rows,
        |c| &c.ctstate,
    );
    labelled(
        &mut out,
        "invalid_total",
        "INVALID packets by reason.",
        "reason",
        &rows,
        |c| &c.invalid,
    );
    labelled(
        &mut out,
        "fragments_total",
        "IP fragment reassembly: fragments taken, datagrams reassembled, passed on, timed out, dropped by reason.",
        "what",
        &rows,
        |c| &c.fragments,
    );
    core_rows(
        &mut out,
        "handoffs_out_total",
        "Packets handed to the owning worker.",
        "counter",
        &rows,
        |c| c.handoffs_out,
    );
    core_rows(
        &mut out,
        "handoffs_in_total",
        "Packets taken from other workers.",
        "counter",
        &rows,
        |c| c.handoffs_in,
    );
    core_rows(
        &mut out,
        "verdict_cache_hits_total",
        "Verdicts served from the per-flow cache.",
        "counter",
        &rows,
        |c| c.cache_hits,
    );
    core_rows(
        &mut out,
        "conntrack_entries",
        "Live connection entries.",
        "gauge",
        &rows,
        |c| c.entries,
    );
    core_rows(
        &mut out,
        "conntrack_max",
        "Entry capacity.",
        "gauge",
        &rows,
        |c| c.capacity,
    );
    core_rows(
        &mut out,
        "conntrack_inserted_total",
        "Entries confirmed.",
        "counter",
        &rows,
        |c| c.inserted,
    );
    core_rows(
        &mut out,
        "conntrack_expired_total",
        "Entries expired.",
        "counter",
        &rows,
        |c| c.expired,
    );
    core_rows(
        &mut out,
        "conntrack_early_drops_total",
        "Entries evicted for a new flow.",
        "counter",
        &rows,
        |c| c.early_drops,
    );
    core_rows(
        &mut out,
        "conntrack_table_full_total",
        "New flows dropped with the table full.",
        "counter",
        &rows,
        |c| c.table_full,
    );
    let _ = writeln!(
        out,
        "# HELP statewall_expectations Pending expectations (FTP data).\n# TYPE statewall_expectations gauge\nstatewall_expectations {}",
        stats.total.expectations
    );
    if let Some(sy) = &stats.sync {
        sync_metrics(&mut out, sy);
    }
    if let Ok(h) = handle.hist(false, false) {
        let _ = writeln!(
            out,
            "# HELP statewall_latency_ns Receive to verdict (forwarded, dropped) and per-batch time.\n# TYPE statewall_latency_ns summary"
        );
        summary(&mut out, "forwarded", &h.total.forwarded);
        summary(&mut out, "dropped", &h.total.dropped);
        summary(&mut out, "batch", &h.total.batch);
    }
    out
}

/// The sync with the peer gateway: counters (`statewall_sync_*_total`) and gauges.
fn sync_metrics(out: &mut String, s: &config::protocol::SyncStatus) {
    let counters: [(&str, &str, u64); 20] = [
        ("msg_sent", "Sync messages sent.", s.msg_sent),
        ("msg_recv", "Sync messages received and taken.", s.msg_recv),
        ("bytes_sent", "Sync bytes sent.", s.bytes_sent),
        ("bytes_recv", "Sync bytes received.", s.bytes_recv),
        (
            "malformed",
            "Sync messages refused as malformed.",
            s.malformed,
        ),
        (
            "unauthenticated",
            "Sync datagrams from anyone but the peer, dropped.",
            s.unauthenticated,
        ),
        (
            "lost",
            "Sync messages the receive sequence says were lost.",
            s.lost,
        ),
        (
            "before",
            "Sync messages older than expected, dropped (FTFW).",
            s.before,
        ),
        ("acks_sent", "FTFW ACKs sent.", s.acks_sent),
        ("acks_recv", "FTFW ACKs received.", s.acks_recv),
        ("nacks_sent", "FTFW NACKs sent (a gap).", s.nacks_sent),
        ("nacks_recv", "FTFW NACKs received.", s.nacks_recv),
        ("resent", "Sync messages sent again after a NACK.", s.resent),
        (
            "resend_dropped",
            "Messages dropped from a full resend queue.",
            s.resend_dropped,
        ),
        (
            "resyncs_recv",
            "RESYNC requests from the peer.",
            s.resyncs_recv,
        ),
        (
            "events",
            "Entry events the workers handed to the sync.",
            s.events,
        ),
        (
            "events_lost",
            "Entry events lost to a full ring.",
            s.events_lost,
        ),
        (
            "refused",
            "Entries from the peer the engine cannot hold.",
            s.refused,
        ),
        (
            "recv_entries",
            "Entry messages received (new, update, destroy).",
            s.recv_new + s.recv_update + s.recv_destroy,
        ),
        (
            "send_errors",
            "Sync datagrams the socket would not send.",
            s.send_errors,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP statewall_sync_{name}_total {help}\n# TYPE statewall_sync_{name}_total counter\nstatewall_sync_{name}_total {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP statewall_sync_external_cache Entries received from the peer and not committed.\n# TYPE statewall_sync_external_cache gauge\nstatewall_sync_external_cache {}",
        s.external_cache
    );
    let _ = writeln!(
        out,
        "# HELP statewall_sync_resend_queue FTFW messages waiting for an acknowledgement.\n# TYPE statewall_sync_resend_queue gauge\nstatewall_sync_resend_queue {}",
        s.resend_queue
    );
}

/// The metrics endpoint, serving until [`MetricsServer::shutdown`].
#[derive(Debug)]
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

fn serve(mut conn: TcpStream, handle: &RuntimeHandle) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    {
        let mut r = BufReader::new((&conn).take_limit());
        if r.read_line(&mut line).is_err() {
            return;
        }
        // Drain the headers (bounded by the limit and the timeout).
        let mut h = String::new();
        while r.read_line(&mut h).is_ok_and(|n| n > 2) {
            h.clear();
        }
    }
    let (status, body) = match line.split_whitespace().take(2).collect::<Vec<_>>()[..] {
        ["GET", "/metrics" | "/"] => ("200 OK", render(handle)),
        ["GET", _] => ("404 Not Found", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Bound reading of a request: 8 KiB is plenty for a GET.
trait TakeLimit {
    fn take_limit(self) -> std::io::Take<Self>
    where
        Self: Sized;
}

impl<R: std::io::Read> TakeLimit for R {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(8192)
    }
}

impl MetricsServer {
    /// Listen on `addr` and serve `handle`'s metrics.
    pub fn bind(addr: SocketAddr, handle: RuntimeHandle) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("statewall-metrics".into())
            .spawn(move || {
                // Blocks in `accept` while idle; `shutdown` wakes it with a connection.
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok(_) if flag.load(Ordering::SeqCst) => break,
                        Ok((conn, _)) => serve(conn, &handle),
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// Stop serving: set the flag and wake the accept loop with a connection of our own
    /// (waiting at most 2 s for it; a loop that cannot be reached is left blocked rather
    /// than the caller).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let mut to = self.addr;
            if to.ip().is_unspecified() {
                to.set_ip(match to {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let woke = TcpStream::connect_timeout(&to, Duration::from_secs(1));
            super::join_within(t, Duration::from_secs(2));
            drop(woke);
        }
    }
}
