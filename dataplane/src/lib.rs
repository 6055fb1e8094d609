//! Statewall's runtime: the engine ([`engine`], a crate of its own) put to work.
//!
//! `xsk` opens AF_XDP ports and moves frames through their rings; `runtime` runs pinned
//! workers (one [`engine::pipeline::Pipeline`] each), hands packets to their flow's owner,
//! publishes rulesets and serves the control socket and metrics. The `statewall` binary
//! (`src/bin/statewall/`: `run`, `check`, `replay`, `import-iptables`) is built on them; it
//! alone uses `anyhow`.

pub mod caps;
pub mod log;
pub mod runtime;
pub mod systemd;
pub mod xsk;
