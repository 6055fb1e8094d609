//! `statewall`: the gateway binary. Subcommands per DESIGN.md §6.

mod daemon;
mod replay;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "statewall",
    version,
    about = "Userspace stateful firewall dataplane"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway: forward between the config's ports over AF_XDP.
    Run {
        /// The YAML ruleset (re-read on SIGHUP).
        #[arg(long)]
        config: PathBuf,
        /// Worker threads; worker i polls queue i of every port.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
        /// Control socket for statewallctl.
        #[arg(long, default_value = config::protocol::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Let this group (name or gid) use the control socket too: socket 0660 and its
        /// directory 0750 of that group (default: root only).
        #[arg(long, value_name = "GROUP")]
        control_group: Option<String>,
        /// `adaptive` spins, then sleeps when idle; `busy` spins always (a dedicated box).
        #[arg(long, default_value = "adaptive", value_parser = ["adaptive", "busy"])]
        poll: String,
        /// `adaptive`: microseconds an idle worker keeps spinning after its last packet before
        /// it sleeps on the rings (like net.core.busy_poll); more buys latency with CPU time.
        #[arg(long, value_name = "US", default_value_t = dataplane::runtime::DEFAULT_BUSY_POLL_US,
              value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        busy_poll: u64,
        /// Do not pin workers to cores.
        #[arg(long, conflicts_with = "cpus")]
        no_pin: bool,
        /// Pin worker i to the i-th core of this list (e.g. `--cpus 1` keeps core 0 for the
        /// rest of the box); default: worker i on core i.
        #[arg(long, value_delimiter = ',', value_name = "CPU,...")]
        cpus: Vec<usize>,
        /// Serve Prometheus metrics on this address (`PORT` means loopback, or HOST:PORT).
        #[arg(long, value_parser = dataplane::runtime::metrics::parse_addr)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate and lint a ruleset; exit 1 on errors, 0 otherwise (warnings included).
    Check {
        /// The YAML ruleset.
        file: String,
    },
    /// Translate iptables-save / ip6tables-save text or `iptables -A ...` lines to YAML.
    #[command(name = "import-iptables")]
    ImportIptables {
        /// sysctl.conf lines (`net.netfilter.nf_conntrack_udp_timeout = 2`).
        #[arg(long)]
        sysctl: Option<String>,
        /// Helper assignments, one `NAME PROTO PORT` a line (`ftp tcp 21`).
        #[arg(long)]
        helpers: Option<String>,
        /// The rules file; standard input when absent.
        rules: Option<String>,
    },
    /// Run a capture through the engine offline and print one JSON verdict per packet.
    Replay {
        /// The YAML ruleset.
        #[arg(long)]
        config: String,
        /// Input capture, pcap or pcapng.
        #[arg(long)]
        pcap: PathBuf,
        /// Port every packet of a classic pcap arrived on (pcapng names it per interface).
        #[arg(long)]
        ingress: Option<String>,
        /// Write the accepted packets to this pcap file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// After the capture, print the connection table in /proc/net/nf_conntrack format.
        #[arg(long)]
        conntrack: bool,
        /// Split flows over this many conntrack shards, as the daemon's workers do (the
        /// result must be the same for any number).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run {
            config,
            workers,
            control_socket,
            control_group,
            poll,
            busy_poll,
            no_pin,
            cpus,
            metrics,
        } => daemon::run(&daemon::RunOptions {
            config,
            workers: usize::from(workers),
            control_socket,
            control_group,
            poll: if poll == "busy" {
                dataplane::runtime::PollMode::Busy
            } else {
                dataplane::runtime::PollMode::Adaptive
            },
            busy_poll_us: busy_poll,
            pin: !no_pin,
            cpus,
            metrics,
        })
        .map(|()| ExitCode::SUCCESS),
        Cmd::Check { file } => Ok(check(&file)),
        Cmd::ImportIptables {
            sysctl,
            helpers,
            rules,
        } => import(sysctl.as_deref(), helpers.as_deref(), rules.as_deref()),
        Cmd::Replay {
            config,
            pcap,
            ingress,
            out,
            conntrack,
            workers,
        } => replay(
            &config,
            &pcap,
            ingress.as_deref(),
            out.as_deref(),
            conntrack,
            workers,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("statewall: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(file: &str) -> ExitCode {
    match config::load_file(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            let r = &loaded.ruleset;
            println!(
                "{file}: ok: {} raw rules, {} forward rules, {} warning(s)",
                r.raw.rules.len(),
                r.forward.rules.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{file}: {} error(s)", errors.len());
            ExitCode::from(1)
        }
    }
}

fn read_named(path: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

fn import(
    sysctl: Option<&str>,
    helpers: Option<&str>,
    rules: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (name, text) = match rules {
        Some(p) => (p.to_string(), read_named(p)?),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read standard input")?;
            ("<stdin>".to_string(), s)
        }
    };
    let sysctl = sysctl
        .map(|p| read_named(p).map(|t| (p.to_string(), t)))
        .transpose()?;
    let helpers = helpers
        .map(|p| read_named(p).map(|t| (p.to_string(), t)))
        .transpose()?;
    let input = config::iptables::ImportInput {
        rules: (&name, &text),
        sysctl: sysctl.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        helpers: helpers.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
    };
    match config::iptables::import(&input) {
        Ok(ruleset) => {
            print!("{}", config::iptables::to_yaml(&ruleset));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn replay(
    config_path: &str,
    pcap: &std::path::Path,
    ingress: Option<&str>,
    out: Option<&std::path::Path>,
    conntrack: bool,
    workers: u16,
) -> anyhow::Result<ExitCode> {
    let loaded = match config::load_file(config_path) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let opts = replay::ReplayOptions {
        pcap: pcap.to_path_buf(),
        ingress: ingress.map(str::to_string),
        out: out.map(std::path::Path::to_path_buf),
        conntrack,
        workers: usize::from(workers),
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    replay::run(&loaded.ruleset, &opts, &mut w)?;
    Ok(ExitCode::SUCCESS)
}
