//! Statewall's engine, sans IO: frames and a clock in, verdicts out.
//!
//! [`pipeline::Pipeline`] is one worker's engine: `wire` parses frames into
//! [`packet::PacketMeta`]; `flow` keys them; `conntrack` tracks them in a shard (its listing
//! and entry filters included); `classifier` matches the compiled ruleset ([`ruleset`]);
//! `reject` builds the answers of a `reject` rule. [`sharded::Sharded`] runs several
//! pipelines as the daemon's workers split flows, on one thread. `capture` decodes pcap and
//! pcapng bytes into frames for offline runs.
//!
//! Nothing here opens a socket or a file, reads a clock or starts a thread: the runtime crate
//! (`statewall-dataplane`) does that around it. The only `unsafe` is in [`hints`] (a prefetch
//! and an madvise, both advice that never changes a result).

pub mod capture;
pub mod classifier;
pub mod conntrack;
pub mod defrag;
pub mod flow;
pub mod hashlimit;
pub mod hints;
pub mod ipset;
pub mod limit;
pub mod log;
pub mod mark;
pub mod packet;
pub mod packet_match;
pub mod passes;
pub mod pipeline;
pub mod reason;
pub mod recent;
pub mod reject;
pub mod ruleset;
pub mod sharded;
pub mod state;
pub mod sync;
pub mod wire;
