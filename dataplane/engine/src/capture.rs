//! Capture files as frames: pcap and pcapng decoded from any byte stream.
//!
//! The engine's offline input (`statewall replay`, the engine benches, the recorded kernel
//! scenarios): each frame with its time, its ingress port and its bytes. pcapng interface
//! names (`if_name`) name the ingress port; a classic pcap records no interfaces, so the
//! caller names one port for all of its packets. Only Ethernet link types are accepted. The
//! bytes are untrusted: a corrupt or truncated file is an error that says where, never a
//! panic (the third-party parser's panics are caught).

use std::io::BufRead;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

/// A capture that cannot be read: the message names the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaptureError(pub String);

macro_rules! bail {
    ($($t:tt)*) => { return Err(CaptureError(format!($($t)*))) };
}

fn err(msg: String) -> CaptureError {
    CaptureError(msg)
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
/// Decode every frame of a pcap or pcapng stream (told apart by its first bytes). `name`
/// names the file in errors; `ingress`, when given, is every packet's port (a classic pcap
/// needs it).
pub fn decode(
    mut input: impl BufRead,
    name: &str,
    ingress: Option<&str>,
) -> Result<Vec<Frame>, CaptureError> {
    let head = input
        .fill_buf()
        .map_err(|e| err(format!("{name}: cannot read: {e}")))?;
    if head.len() < 4 {
        bail!("{name}: too short to be a capture file");
    }
    let pcapng = head[..4] == PCAPNG_MAGIC;
    // The pcap parser is third-party code fed untrusted bytes: a panic in it must become
    // an error, never a crash.
    let result = catch_unwind(AssertUnwindSafe(|| {
        if pcapng {
            read_pcapng(input, name, ingress)
        } else {
            read_pcap(input, name, ingress)
        }
    }));
    result.unwrap_or_else(|_| Err(err(format!("{name}: corrupt capture (the parser gave up)"))))
}

fn read_pcap(
    input: impl BufRead,
    name: &str,
    ingress: Option<&str>,
) -> Result<Vec<Frame>, CaptureError> {
    let mut r = PcapReader::new(input)
        .map_err(|e| err(format!("{name}: not a pcap or pcapng file: {e}")))?;
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
            err(format!(
                "{name}: packet {}: corrupt or truncated capture: {e}",
                frames.len()
            ))
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
    input: impl BufRead,
    name: &str,
    ingress: Option<&str>,
) -> Result<Vec<Frame>, CaptureError> {
    let mut r = PcapNgReader::new(input)
        .map_err(|e| err(format!("{name}: not a valid pcapng file: {e}")))?;
    // Per interface: (port name, ns per timestamp unit).
    let mut ifaces: Vec<(Option<String>, u64)> = Vec::new();
    let mut frames = Vec::new();
    while let Some(block) = r.next_block() {
        let block = block.map_err(|e| {
            err(format!(
                "{name}: block after packet {}: corrupt or truncated capture: {e}",
                frames.len()
            ))
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
                                err(format!("{name}: interface {} has an unsupported timestamp resolution {t:#x}", ifaces.len()))
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
