//! `statewall replay`: a capture through the same engine the daemon runs, offline.
//!
//! Packet timestamps are the engine's clock, so timeouts behave as they would have live.
//! pcapng interface names (`if_name`) name each packet's ingress port; a classic pcap takes
//! one port for all packets (`--ingress`). Output: one JSON object per packet, then, with
//! `--conntrack`, the table in /proc/net/nf_conntrack format as of the last timestamp.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use crate::conntrack::listing;
use crate::pipeline::{Outcome, Packet, Verdict};
use crate::ruleset::CompiledRuleset;
use crate::sharded::Sharded;

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

/// One captured frame: its time (ns since the epoch), ingress port name and bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts_ns: u64,
    pub port: String,
    pub data: Vec<u8>,
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Read every frame of a pcap or pcapng file. Corrupt or truncated files are errors.
pub fn read_capture(path: &Path, ingress: Option<&str>) -> anyhow::Result<Vec<Frame>> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .with_context(|| format!("{}: too short to be a capture file", path.display()))?;
    drop(f);
    let file = BufReader::new(File::open(path)?);
    let name = path.display().to_string();
    // The pcap parser is third-party code fed untrusted bytes: a panic in it must become
    // an error, never a crash.
    let result = catch_unwind(AssertUnwindSafe(|| {
        if magic == PCAPNG_MAGIC {
            read_pcapng(file, &name, ingress)
        } else {
            read_pcap(file, &name, ingress)
        }
    }));
    result.unwrap_or_else(|_| Err(anyhow!("{name}: corrupt capture (the parser gave up)")))
}

fn read_pcap(
    file: BufReader<File>,
    name: &str,
    ingress: Option<&str>,
) -> anyhow::Result<Vec<Frame>> {
    let mut r =
        PcapReader::new(file).map_err(|e| anyhow!("{name}: not a pcap or pcapng file: {e}"))?;
    let Some(port) = ingress else {
        bail!("{name} is a classic pcap, which does not record interfaces: give the ingress port with --ingress PORT (or use pcapng with interface names)");
    };
    if r.header().datalink != DataLink::ETHERNET {
        bail!(
            "{name}: link type {:?} is not supported; capture on an Ethernet interface",
            r.header().datalink
        );
    }
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| {
            anyhow!(
                "{name}: packet {}: corrupt or truncated capture: {e}",
                frames.len()
            )
        })?;
        frames.push(Frame {
            ts_ns: u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX),
            port: port.to_string(),
            data: p.data.into_owned(),
        });
    }
    Ok(frames)
}

/// Nanoseconds per timestamp unit for an `if_tsresol` value (default 6: microseconds).
fn ns_per_unit(tsresol: u8) -> Option<u64> {
    if tsresol & 0x80 != 0 {
        // Negative powers of two: only exact when the unit is at least 1 ns.
        let p = u32::from(tsresol & 0x7f);
        return (p <= 30).then(|| 1_000_000_000 >> p).filter(|&n| n > 0);
    }
    match tsresol {
        0..=9 => Some(10u64.pow(9 - u32::from(tsresol))),
        _ => None,
    }
}

fn read_pcapng(
    file: BufReader<File>,
    name: &str,
    ingress: Option<&str>,
) -> anyhow::Result<Vec<Frame>> {
    let mut r =
        PcapNgReader::new(file).map_err(|e| anyhow!("{name}: not a valid pcapng file: {e}"))?;
    // Per interface: (port name, ns per timestamp unit).
    let mut ifaces: Vec<(Option<String>, u64)> = Vec::new();
    let mut frames = Vec::new();
    while let Some(block) = r.next_block() {
        let block = block.map_err(|e| {
            anyhow!(
                "{name}: block after packet {}: corrupt or truncated capture: {e}",
                frames.len()
            )
        })?;
        match block {
            Block::SectionHeader(_) => ifaces.clear(),
            Block::InterfaceDescription(idb) => {
                if idb.linktype != DataLink::ETHERNET {
                    bail!(
                        "{name}: interface {} has link type {:?}; only Ethernet is supported",
                        ifaces.len(),
                        idb.linktype
                    );
                }
                let mut port = None;
                let mut unit = 1_000;
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfName(n) => port = Some(n.to_string()),
                        InterfaceDescriptionOption::IfTsResol(t) => {
                            unit = ns_per_unit(*t).ok_or_else(|| {
                                anyhow!("{name}: interface {} has an unsupported timestamp resolution {t:#x}", ifaces.len())
                            })?;
                        }
                        _ => {}
                    }
                }
                ifaces.push((port, unit));
            }
            Block::EnhancedPacket(epb) => {
                let Some((port, unit)) = ifaces.get(epb.interface_id as usize) else {
                    bail!(
                        "{name}: packet {} names interface {}, which the file does not describe",
                        frames.len(),
                        epb.interface_id
                    );
                };
                let port = match (ingress, port) {
                    (Some(p), _) => p.to_string(),
                    (None, Some(p)) => p.clone(),
                    (None, None) => bail!(
                        "{name}: interface {} has no name (if_name); give the ingress port with --ingress PORT",
                        epb.interface_id
                    ),
                };
                // pcap-file reports the raw timestamp count as nanoseconds; scale it by the
                // interface's unit.
                let raw = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                frames.push(Frame {
                    ts_ns: raw.saturating_mul(*unit),
                    port,
                    data: epb.data.into_owned(),
                });
            }
            Block::SimplePacket(_) => bail!(
                "{name}: simple packet blocks carry no interface or time; re-save the capture with enhanced packet blocks"
            ),
            _ => {}
        }
    }
    Ok(frames)
}

/// One output line: `{"index":N,"port":"lan","verdict":"accept","ctstate":"new","rule":3,"reason":"..."}`.
pub fn json_line(index: usize, port: &str, o: &Outcome) -> String {
    let port = serde_json::to_string(port).unwrap_or_else(|_| "\"?\"".into());
    let ctstate = o
        .ctstate
        .map_or_else(|| "null".to_string(), |s| format!("\"{}\"", s.name()));
    let rule = o.rule.map_or_else(|| "null".to_string(), |r| r.to_string());
    format!(
        "{{\"index\":{index},\"port\":{port},\"verdict\":\"{}\",\"ctstate\":{ctstate},\"rule\":{rule},\"reason\":\"{}\"}}",
        o.verdict.as_str(),
        o.reason.as_str()
    )
}

/// Entries examined per packet by the expiry sweep during replay.
const SWEEP_BUDGET: usize = 16;

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
    let mut now = 0;
    for (i, (f, &port)) in frames.iter().zip(&port_ids).enumerate() {
        now = f.ts_ns;
        engine.expire(now, SWEEP_BUDGET);
        let o = engine.process_one(
            now,
            &Packet {
                frame: &f.data,
                in_port: port,
            },
        );
        writeln!(out, "{}", json_line(i, &f.port, &o))?;
        if o.verdict == Verdict::Accept {
            if let Some(w) = writer.as_mut() {
                w.write_packet(&PcapPacket::new(
                    std::time::Duration::from_nanos(f.ts_ns),
                    f.data.len() as u32,
                    &f.data,
                ))?;
            }
        }
    }
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
