//! Statewall's runtime: the engine ([`engine`], a crate of its own) put to work.
//!
//! `xsk` opens AF_XDP ports and moves frames through their rings; `runtime` runs pinned
//! workers (one [`engine::pipeline::Pipeline`] each), hands packets to their flow's owner,
//! publishes rulesets and serves the control socket and metrics; `daemon` is `statewall run`;
//! `replay` runs a capture file through the engine offline.

pub mod daemon;
pub mod replay;
pub mod runtime;
pub mod xsk;
