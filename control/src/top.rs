//! `statewallctl top`: a live view, refreshed each second, of per-worker packet rates, drops,
//! table occupancy and p99 latency — for watching a load test. Quits on `q` or Ctrl-C.
//!
//! On a terminal the input is switched to non-canonical mode with a one-second read timeout
//! (`stty -icanon -echo min 0 time 10`), so one `read` both waits for the next refresh and
//! catches `q`; the terminal is restored on every way out. Without a terminal (a pipe, a
//! test) it prints a frame per second, `--iterations` times.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use config::protocol::{Command, CoreStats, HistReply, Outcome, Payload, Stats};

use crate::client::Client;

/// Puts the terminal back as it was when dropped.
struct RawTerminal {
    saved: String,
}

fn stty(args: &[&str]) -> Option<String> {
    let out = Proc::new("stty")
        .args(args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let saved = stty(&["-g"])?;
        stty(&["-icanon", "-echo", "min", "0", "time", "10"])?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = stty(&[self.saved.as_str()]);
    }
}

/// One request; the daemon closes connections that stay quiet past its read timeout, so a
/// failed call is retried once on a fresh connection.
fn fetch(client: &mut Client, socket: &Path, cmd: Command) -> anyhow::Result<Payload> {
    let reply = match client.call(cmd.clone()) {
        Ok((_, r)) => r,
        Err(_) => {
            *client = Client::connect(socket)?;
            client.call(cmd)?.1
        }
    };
    match reply.result {
        Outcome::Ok { data } => Ok(data),
        Outcome::Error { error } => anyhow::bail!("statewall refused: {}", error.message),
    }
}

fn row(o: &mut String, name: &str, c: &CoreStats, p99_us: Option<f64>) {
    let p99 = p99_us.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let _ = writeln!(
        o,
        "{name:<7} {:>11.0} {:>12} {:>12} {:>10} {:>10} {:>16} {:>6.1}% {:>10}",
        c.rx_pps,
        c.rx_packets,
        c.tx_packets,
        c.dropped_total,
        c.handoffs_out,
        format!("{}/{}", c.entries, c.capacity),
        c.fill_percent(),
        p99
    );
}

/// One screen.
#[expect(
    clippy::cast_precision_loss,
    reason = "nanoseconds shown as microseconds"
)]
fn frame(s: &Stats, h: Option<&HistReply>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "statewall top: generation {}, {} worker(s), up {:.0} s   (q or Ctrl-C quits)\n",
        s.generation, s.workers, s.uptime_s
    );
    let _ = writeln!(
        o,
        "{:<7} {:>11} {:>12} {:>12} {:>10} {:>10} {:>16} {:>7} {:>10}",
        "worker",
        "rx pps",
        "rx pkts",
        "tx pkts",
        "dropped",
        "handoffs",
        "entries/max",
        "fill",
        "p99 µs"
    );
    let p99 = |w: Option<usize>| {
        h.and_then(|h| {
            let set = match w {
                Some(w) => h.per_core.iter().find(|x| x.worker == Some(w))?,
                None => &h.total,
            };
            (set.forwarded.count > 0).then(|| set.forwarded.p99 as f64 / 1000.0)
        })
    };
    for c in &s.per_core {
        let name = c.worker.map_or_else(|| "?".into(), |w| w.to_string());
        row(&mut o, &name, c, p99(c.worker));
    }
    row(&mut o, "total", &s.total, p99(None));
    let drops: Vec<String> = s
        .total
        .dropped
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        o,
        "\ndrops: {}",
        if drops.is_empty() {
            "none".into()
        } else {
            drops.join(" ")
        }
    );
    let states: Vec<String> = s
        .total
        .ctstate
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(o, "ctstate: {}", states.join(" "));
    let _ = writeln!(
        o,
        "conntrack: {} early drops, {} table_full, {} expectations",
        s.total.early_drops, s.total.table_full, s.total.expectations
    );
    o
}

/// Run the view until `q`, Ctrl-C, or `iterations` frames (0: no limit).
pub fn run(socket: &Path, iterations: u64) -> anyhow::Result<()> {
    let mut client = Client::connect(socket)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let _raw = if tty { RawTerminal::enter() } else { None };
    let mut out = std::io::stdout();
    let mut shown = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Payload::Stats(stats) = fetch(&mut client, socket, Command::Stats { per_core: true })?
        else {
            anyhow::bail!("statewall answered `stats` with something else");
        };
        let hist = match fetch(
            &mut client,
            socket,
            Command::Hist {
                reset: false,
                per_core: true,
            },
        ) {
            Ok(Payload::Hist(h)) => Some(h),
            _ => None,
        };
        let screen = frame(&stats, hist.as_ref());
        if tty {
            // Clear and home, then the frame.
            write!(out, "\x1b[2J\x1b[H{screen}")?;
        } else {
            writeln!(out, "{screen}")?;
        }
        out.flush()?;
        shown += 1;
        if iterations > 0 && shown >= iterations {
            break;
        }
        if tty {
            // Waits up to a second (the terminal's read timeout) for a key.
            let mut key = [0u8; 1];
            if matches!(std::io::stdin().read(&mut key), Ok(1)) && matches!(key[0], b'q' | b'Q') {
                break;
            }
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Ok(())
}
