//! Helpers shared by the engine's integration tests (`mod common;` in each test file): paths
//! into the repository, rulesets from YAML, captures, TCP segments and the replay loop of
//! `statewall replay`. Not every test file uses every helper.

#![allow(
    dead_code,
    reason = "each test file compiles its own copy and uses only some of the helpers"
)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::capture::{self, Frame};
use engine::pipeline::{Outcome, Packet, Pipeline};
use engine::ruleset::CompiledRuleset;
use engine::sharded::Sharded;
use engine::wire::build::Tcp;

/// One second on the engine's clock (nanoseconds).
pub const SEC: u64 = 1_000_000_000;
/// Port indices of a ruleset whose ports are `lan` then `wan` (also the default ports).
pub const LAN: u8 = 0;
pub const WAN: u8 = 1;

/// The workspace root (the directory holding tests/, examples/, scripts/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path relative to the workspace root.
pub fn repo_path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// Diagnostics one per line, for a failure message.
pub fn diagnostics(errors: &[config::Diagnostic]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Load (parse, validate) a YAML ruleset and compile it; panics with the diagnostics.
pub fn compile_yaml(yaml: &str, file: &str, generation: u32) -> Arc<CompiledRuleset> {
    let loaded = config::load_str(yaml, file).unwrap_or_else(|e| panic!("{}", diagnostics(&e)));
    Arc::new(CompiledRuleset::compile(&loaded.ruleset, generation).unwrap())
}

/// Every frame of a pcap or pcapng file, as `statewall replay` reads it (pcapng interface
/// names are the ingress ports).
pub fn read_capture(path: &Path) -> Result<Vec<Frame>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    capture::decode(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        None,
    )
    .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// One frame through `p` at `now` (ns), arrived on `port`.
pub fn run(p: &mut Pipeline, now: u64, port: u8, frame: &[u8]) -> Outcome {
    p.process_one(
        now,
        &Packet {
            frame,
            in_port: port,
        },
    )
}

/// A TCP segment from `src` to `dst` with these flags and numbers (add `.payload(..)`,
/// then `.frame()`).
pub fn tcp_seg(src: (IpAddr, u16), dst: (IpAddr, u16), flags: u8, seq: u32, ack: u32) -> Tcp {
    Tcp {
        seq,
        ack,
        ..Tcp::new(src, dst, flags)
    }
}

/// Run `(time ns, ingress port, frame)` packets through `engine` as `statewall replay` does:
/// the timestamps are the clock, the expiry sweep runs before each packet, IP fragments are
/// reassembled first (`Sharded::replay_all`).
pub fn replay<'a>(
    engine: &mut Sharded,
    packets: impl IntoIterator<Item = (u64, u8, &'a [u8])>,
) -> Vec<Outcome> {
    engine.replay_all(packets, |_, _| {})
}
