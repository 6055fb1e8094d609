//! `statewall replay`: a capture through the engine, offline. Being written.

use std::path::PathBuf;

/// Options of `statewall replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub pcap: PathBuf,
    pub ingress: Option<String>,
    pub out: Option<PathBuf>,
    pub conntrack: bool,
}

/// Replay a capture, writing one JSON object per packet to `out`.
pub fn run(
    _ruleset: &config::Ruleset,
    _opts: &ReplayOptions,
    _out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    anyhow::bail!("replay is not built yet")
}
