//! Statewall's engine micro-benchmarks. Each subcommand builds its inputs in memory, warms
//! up, and times the engine with `std::time::Instant` (the engine itself never reads the
//! clock; STYLE point 3). Run in release: `cargo run --release -p statewall-bench -- ...`.
#![forbid(unsafe_code)]

mod classifier;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Classifier(args) => classifier::run(&args),
    }
}
