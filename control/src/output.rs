//! Human-readable renderings of the daemon's replies.

use std::fmt::Write as _;

use config::protocol::{ConntrackOp, CoreStats, HistSet, HistSummary, Payload, Stats, SyncStatus};

/// What to print for a successful reply (ends with a newline, or is empty).
/// `op` is the conntrack operation asked for, which decides how a conntrack reply reads: `list`
/// and `get` print entry lines only (nothing when none match, so the output parses as
/// `/proc/net/nf_conntrack`), `count` the number, `flush` conntrack-tools' "N flow entries
/// have been deleted.".
pub fn payload(p: &Payload, op: Option<ConntrackOp>) -> String {
    let mut o = String::new();
    match p {
        // `statewallctl log` prints its own lines (log.rs); a reply read elsewhere, its
        // lines as they are.
        Payload::Log(l) => {
            for line in &l.lines {
                let _ = writeln!(o, "{}", line.text);
            }
        }
        Payload::Applied(a) => {
            let _ = writeln!(
                o,
                "applied: generation {} (was {}), {} warning{}",
                a.generation,
                a.previous,
                a.warnings.len(),
                if a.warnings.len() == 1 { "" } else { "s" }
            );
        }
        Payload::Checked(c) => {
            let _ = writeln!(
                o,
                "ok: the ruleset is valid, {} warning{}",
                c.warnings.len(),
                if c.warnings.len() == 1 { "" } else { "s" }
            );
        }
        Payload::Show(s) => {
            let _ = writeln!(
                o,
                "generation {} from {} (applied {} s ago)",
                s.generation, s.file, s.age_s
            );
            let pairs: Vec<String> = s
                .pairs
                .iter()
                .map(|[a, b]| format!("{a} <-> {b}"))
                .collect();
            let _ = writeln!(
                o,
                "ports: {}; pairs: {}",
                s.ports.join(", "),
                pairs.join(", ")
            );
            if !s.settings.is_empty() {
                let set: Vec<String> = s.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(o, "conntrack: {}", set.join(" "));
            }
            for st in &s.stages {
                if matches!(st.name.as_str(), "raw" | "mangle" | "mangle_forward")
                    && st.rules.is_empty()
                    && st.policy == "accept"
                {
                    continue;
                }
                let _ = writeln!(
                    o,
                    "\n{} (policy {} {} packets, {} bytes)",
                    st.name, st.policy, st.policy_packets, st.policy_bytes
                );
                let w = st
                    .rules
                    .iter()
                    .map(|r| r.action.len())
                    .max()
                    .unwrap_or(0)
                    .max(8);
                let _ = writeln!(
                    o,
                    "{:>4} {:>10} {:>12}  {:<w$} matches",
                    "#", "pkts", "bytes", "action"
                );
                let mut chain: Option<&str> = None;
                for r in &st.rules {
                    if r.chain.as_deref() != chain {
                        chain = r.chain.as_deref();
                        let _ = writeln!(o, "  chain {}", chain.unwrap_or(""));
                    }
                    let _ = write!(
                        o,
                        "{:>4} {:>10} {:>12}  {:<w$} {}",
                        r.index, r.packets, r.bytes, r.action, r.matches
                    );
                    if let Some(c) = &r.comment {
                        let _ = write!(o, "  # {c}");
                    }
                    o.push('\n');
                }
            }
        }
        Payload::Stats(s) => stats(&mut o, s),
        Payload::Conntrack(c) => match op {
            Some(ConntrackOp::Flush) => {
                let _ = writeln!(o, "{} flow entries have been deleted.", c.flushed);
            }
            Some(ConntrackOp::Count) => {
                let _ = writeln!(o, "{}", c.count);
            }
            Some(ConntrackOp::Save) => {
                for l in &c.lines {
                    let _ = writeln!(o, "{l}");
                }
            }
            Some(ConntrackOp::List | ConntrackOp::Get) | None => {
                for e in &c.entries {
                    let _ = writeln!(o, "{}", e.line);
                }
            }
        },
        Payload::Restored(r) => {
            if r.checked {
                let _ = writeln!(o, "ok: {} entries read, none added (check)", r.parsed);
            } else {
                let _ = write!(
                    o,
                    "restored: {} added, {} already present, {} expired",
                    r.added, r.present, r.expired
                );
                if r.full > 0 {
                    let _ = write!(o, ", {} did not fit (the table is full)", r.full);
                }
                o.push('\n');
            }
        }
        Payload::Hist(h) => {
            let _ = writeln!(
                o,
                "{:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}   (µs)",
                "latency", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            hist_rows(&mut o, &h.total);
            for c in &h.per_core {
                hist_rows(&mut o, c);
            }
            if h.reset {
                let _ = writeln!(o, "(reset)");
            }
        }
        Payload::Setting(s) => {
            let _ = match s.generation {
                Some(g) => writeln!(o, "{} = {} (generation {g})", s.key, s.value),
                None => writeln!(o, "{} = {}", s.key, s.value),
            };
        }
        Payload::Sync(r) => {
            if !r.message.is_empty() {
                let _ = writeln!(o, "{}", r.message);
            }
            sync_status(&mut o, &r.status);
        }
    }
    o
}

/// The sync's counters, grouped as conntrackd's `-s` groups them.
fn sync_status(o: &mut String, s: &SyncStatus) {
    let _ = writeln!(
        o,
        "sync: {} over {}; external cache {} entries, {} expectations{}",
        s.mode,
        s.link,
        s.external_cache,
        s.external_expectations,
        if s.disable_external_cache {
            " (off: entries go into the table at once)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "  messages: sent {} ({} bytes, {} datagrams), received {} ({} bytes, {} datagrams)",
        s.msg_sent, s.bytes_sent, s.datagrams_sent, s.msg_recv, s.bytes_recv, s.datagrams_recv
    );
    let _ = writeln!(
        o,
        "  errors: malformed {}, unauthenticated {}, lost {}, before {}, send errors {}",
        s.malformed, s.unauthenticated, s.lost, s.before, s.send_errors
    );
    let _ = writeln!(
        o,
        "  ftfw: acks sent {} received {}, nacks sent {} received {}, resent {}, resend queue {} (dropped {}), resyncs sent {} received {}",
        s.acks_sent, s.acks_recv, s.nacks_sent, s.nacks_recv, s.resent, s.resend_queue, s.resend_dropped, s.resyncs_sent, s.resyncs_recv
    );
    let _ = writeln!(
        o,
        "  entries: events {} (lost {}); received new {}, update {}, destroy {}, expectation {}; refused {}{}",
        s.events,
        s.events_lost,
        s.recv_new,
        s.recv_update,
        s.recv_destroy,
        s.recv_expect,
        s.refused,
        s.refused_reason
            .as_deref()
            .map(|r| format!(" (last: {r})"))
            .unwrap_or_default()
    );
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanoseconds shown in microseconds"
)]
fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn hist_rows(o: &mut String, h: &HistSet) {
    let who = h.worker.map_or_else(String::new, |w| format!("[{w}]"));
    for (name, s) in [
        ("forwarded", &h.forwarded),
        ("dropped", &h.dropped),
        ("batch", &h.batch),
    ] {
        let HistSummary {
            count,
            p50,
            p90,
            p99,
            p999,
            max,
            ..
        } = s;
        let _ = writeln!(
            o,
            "{:<12} {count:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{name}{who}"),
            us(*p50),
            us(*p90),
            us(*p99),
            us(*p999),
            us(*max)
        );
    }
}

fn stats(o: &mut String, s: &Stats) {
    let _ = writeln!(
        o,
        "workers {}, ruleset generation {}, up {:.0} s",
        s.workers, s.generation, s.uptime_s
    );
    for m in &s.io_mode {
        let _ = writeln!(o, "io: {m}");
    }
    let _ = writeln!(
        o,
        "{:<6} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10} {:>10} {:>20}",
        "",
        "rx pkts",
        "rx bytes",
        "tx pkts",
        "tx bytes",
        "rx pps",
        "dropped",
        "hand out",
        "hand in",
        "entries/max"
    );
    let row = |o: &mut String, name: String, c: &CoreStats| {
        let _ = writeln!(
            o,
            "{name:<6} {:>12} {:>14} {:>12} {:>14} {:>10.0} {:>10} {:>10} {:>10} {:>20}",
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.rx_pps,
            c.dropped_total,
            c.handoffs_out,
            c.handoffs_in,
            format!("{}/{} {:.1}%", c.entries, c.capacity, c.fill_percent())
        );
    };
    for c in &s.per_core {
        row(o, format!("core{}", c.worker.unwrap_or(0)), c);
    }
    row(o, "total".into(), &s.total);
    let t = &s.total;
    let nonzero = |m: &std::collections::BTreeMap<String, u64>| -> String {
        let v: Vec<String> = m
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(" ")
        }
    };
    let _ = writeln!(o, "drops: {}", nonzero(&t.dropped));
    let _ = writeln!(o, "ctstate: {}", nonzero(&t.ctstate));
    let _ = writeln!(o, "invalid: {}", nonzero(&t.invalid));
    let _ = writeln!(o, "fragments: {}", nonzero(&t.fragments));
    let _ = writeln!(
        o,
        "conntrack: {} entries of {}, {} inserted, {} expired, {} early drops, {} table_full, {} expectations; cache hits {}",
        t.entries, t.capacity, t.inserted, t.expired, t.early_drops, t.table_full, t.expectations, t.cache_hits
    );
    if let Some(sy) = &s.sync {
        sync_status(o, sy);
    }
}
