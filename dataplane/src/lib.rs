//! Statewall's engine and runtime.
//!
//! The engine is sans-IO: bytes and a clock in, verdicts out ([`pipeline::Pipeline`]).
//! `wire` parses frames into [`packet::PacketMeta`]; `flow` keys them; `conntrack` tracks
//! them in shards; `classifier` matches the compiled ruleset ([`ruleset`]); `replay` runs
//! captures through the pipeline offline.

pub mod classifier;
pub mod conntrack;
pub mod daemon;
pub mod flow;
pub mod packet;
pub mod pipeline;
pub mod reason;
pub mod reject;
pub mod replay;
pub mod ruleset;
pub mod runtime;
pub mod sharded;
pub mod wire;
pub mod xsk;
