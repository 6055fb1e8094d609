//! `statewall replay`: a capture through the same engine the daemon runs, offline.
//!
//! Packet timestamps are the engine's clock, so timeouts behave as they would have live.
//! pcapng interface names (`if_name`) name each packet's ingress port; a classic pcap takes
//! one port for all packets (`--ingress`). Output: one JSON object per packet (with `"log"`,
//! the lines `log` rules wrote for it, when there are any), then, with `--conntrack`, the
//! table in /proc/net/nf_conntrack format as of the last timestamp.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use engine::capture;
use engine::conntrack::listing;
use engine::pipeline::Outcome;
use engine::ruleset::CompiledRuleset;
use engine::sharded::Sharded;

/// Options of `statewall replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub pcap: PathBuf,
    pub ingress: Option<String>,
    pub out: Option<PathBuf>,
    pub conntrack: bool,
    /// Shards (simulated workers): flows are split by owner as the daemon splits them; the
    /// output must not depend on it.
    pub workers: usize,
}

pub use engine::capture::Frame;

/// Read every frame of a pcap or pcapng file. Corrupt or truncated files are errors.
pub fn read_capture(path: &Path, ingress: Option<&str>) -> anyhow::Result<Vec<Frame>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(capture::decode(
        BufReader::new(f),
        &path.display().to_string(),
        ingress,
    )?)
}

/// One output line: `{"index":N,"port":"lan","verdict":"accept","ctstate":"new","rule":3,"reason":"..."}`,
/// with `"log":["LINE",...]` after `reason` when `log` rules wrote lines for the packet.
pub fn json_line(index: usize, port: &str, o: &Outcome, log: &[String]) -> String {
    let port = serde_json::to_string(port).unwrap_or_else(|_| "\"?\"".into());
    let ctstate = o
        .ctstate
        .map_or_else(|| "null".to_string(), |s| format!("\"{}\"", s.name()));
    let rule = o.rule.map_or_else(|| "null".to_string(), |r| r.to_string());
    let log = if log.is_empty() {
        String::new()
    } else {
        format!(
            ",\"log\":{}",
            serde_json::to_string(log).unwrap_or_else(|_| "[]".into())
        )
    };
    format!(
        "{{\"index\":{index},\"port\":{port},\"verdict\":\"{}\",\"ctstate\":{ctstate},\"rule\":{rule},\"reason\":\"{}\"{log}}}",
        o.verdict.as_str(),
        o.reason.as_str()
    )
}

/// Replay a capture, writing one JSON object per packet to `out`.
pub fn run(
    ruleset: &config::Ruleset,
    opts: &ReplayOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rules = Arc::new(CompiledRuleset::compile(ruleset, 1)?);
    let frames = read_capture(&opts.pcap, opts.ingress.as_deref())?;
    let mut port_ids = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let id = rules.port_index(&f.port).ok_or_else(|| {
            anyhow!(
                "packet {i} arrived on `{}`, which is not a port of the ruleset (ports: {})",
                f.port,
                rules.ports.join(", ")
            )
        })?;
        port_ids.push(id);
    }
    let mut engine = Sharded::new(&rules, opts.workers);
    let mut writer = match &opts.out {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            let header = PcapHeader {
                datalink: DataLink::ETHERNET,
                ts_resolution: pcap_file::TsResolution::NanoSecond,
                ..PcapHeader::default()
            };
            Some(PcapWriter::with_header(BufWriter::new(f), header)?)
        }
        None => None,
    };
    // IP fragments are reassembled first; an accepted datagram leaves as the fragments the
    // kernel bridge would send, written to --out when they leave.
    let mut written: anyhow::Result<()> = Ok(());
    let outcomes = engine.replay_all(
        frames
            .iter()
            .zip(&port_ids)
            .map(|(f, &port)| (f.ts_ns, port, f.data.as_slice())),
        |ts, frame| {
            if let (Some(w), Ok(())) = (writer.as_mut(), &written) {
                written = w
                    .write_packet(&PcapPacket::new(
                        std::time::Duration::from_nanos(ts),
                        frame.len() as u32,
                        frame,
                    ))
                    .map(|_| ())
                    .map_err(Into::into);
            }
        },
    );
    written?;
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); outcomes.len()];
    for (i, r) in engine.take_logged() {
        if let Some(l) = lines.get_mut(i) {
            l.push(rules.log_line(&r));
        }
    }
    for (i, ((f, o), log)) in frames.iter().zip(&outcomes).zip(&lines).enumerate() {
        writeln!(out, "{}", json_line(i, &f.port, o, log))?;
    }
    let now = frames.last().map_or(0, |f| f.ts_ns);
    if opts.conntrack {
        let live = engine
            .pipelines()
            .iter()
            .flat_map(|p| p.shard().entries())
            .filter(|e| e.expires > now);
        for line in listing::format_all(live, now) {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
