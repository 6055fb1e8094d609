//! Statewall's engine micro-benchmarks. Each subcommand builds its inputs in memory, warms
//! up, and times the engine with `std::time::Instant` (the engine itself never reads the
//! clock; STYLE point 3). Run in release: `cargo run --release --bin statewall-bench -- ...`.
#![forbid(unsafe_code)]

mod classifier;
mod engine;
mod scale;
mod set;
mod sync;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "statewall-bench", about = "Statewall engine micro-benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Rule classifier: ns per lookup as the rule count grows, compile time and memory.
    Classifier(classifier::Args),
    /// A rule's `match_set` (ipset): ns per decision as the set grows to a million members.
    Set(set::Args),
    /// The whole engine: the pipeline and the shard benches, or capture files (`--pcap`).
    Engine(engine::EngineArgs),
    /// `Pipeline` on synthetic established and new-connection traffic.
    Pipeline(engine::Args),
    /// The conntrack shard alone: lookups of established flows and insertions.
    Shard(engine::Args),
    /// The pipeline on several cores at once, one worker per core, flows split between them.
    Scale(scale::ScaleArgs),
    /// The sync thread's work: entries to conntrackd messages and back, per entry and bytes
    /// on the wire.
    Sync(sync::Args),
    /// Write a synthetic TCP capture (handshakes, then established ACKs) to time with
    /// `engine --pcap`, here or in another conntrack implementation.
    GenPcap(engine::GenArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Classifier(args) => classifier::run(&args),
        Cmd::Set(args) => set::run(&args),
        Cmd::Engine(args) => {
            engine::print_header();
            if args.pcap.is_empty() {
                engine::shard(&args.common)?;
                engine::pipeline(&args.common)
            } else {
                engine::pcap(&args)
            }
        }
        Cmd::Pipeline(args) => {
            engine::print_header();
            engine::pipeline(&args)
        }
        Cmd::Shard(args) => {
            engine::print_header();
            engine::shard(&args)
        }
        Cmd::Scale(args) => {
            engine::print_header();
            scale::run(&args)
        }
        Cmd::Sync(args) => sync::run(&args),
        Cmd::GenPcap(args) => engine::gen_pcap(&args),
    }
}
