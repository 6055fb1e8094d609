//! `statewall`: the gateway binary. Subcommands per DESIGN.md §6.

mod daemon;
mod replay;
mod workers;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use workers::Workers;

/// The config `run` and `check` use when given none (the package installs a commented one).
const DEFAULT_CONFIG: &str = "/etc/statewall/statewall.yaml";

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
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Worker threads, 1 to 256, or `auto`: one per queue of the ports (their channel
        /// count, as `ethtool -l` shows it; sysfs's queues where the driver reports no
        /// channels). Worker i polls queue i of every port, so when the ports' queue counts
        /// differ, `auto` takes the smallest and logs which queues get no worker.
        #[arg(long, value_name = "N|auto", default_value_t = Workers::Count(1))]
        workers: Workers,
        /// Control socket for statewallctl.
        #[arg(long, default_value = config::protocol::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// The state file: the connection table lives in it while the daemon runs and is
        /// restored from it at start, so connections survive a crash, a restart, an upgrade
        /// or a change of worker count. `none`: the table lives only in the process.
        #[arg(long, value_name = "PATH|none", default_value = dataplane::runtime::state::DEFAULT_STATE)]
        state: PathBuf,
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
        #[arg(default_value = DEFAULT_CONFIG)]
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
    clidoc::generate_if_asked(Cli::command);
    let cli = Cli::parse();
    // Syslog priorities on every line when stderr is systemd's journal (dataplane::log).
    dataplane::log::init();
    if let Err(e) = default_config_present(&cli.cmd) {
        dataplane::log_error!("{e:#}");
        return ExitCode::from(1);
    }
    let result = match cli.cmd {
        Cmd::Run {
            config,
            workers,
            control_socket,
            state,
            control_group,
            poll,
            busy_poll,
            no_pin,
            cpus,
            metrics,
        } => daemon::run(&daemon::RunOptions {
            config,
            workers,
            control_socket,
            state: (state.as_os_str() != "none").then_some(state),
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
            dataplane::log_error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// `run` and `check` fall back on [`DEFAULT_CONFIG`]; when that is the file and it does not
/// exist, say so and how to give another (before `run` reports it as an unreadable file).
fn default_config_present(cmd: &Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run { config, .. } => default_exists(
            config,
            Path::new(DEFAULT_CONFIG),
            "`statewall run --config FILE`",
        ),
        Cmd::Check { file } => default_exists(
            Path::new(file),
            Path::new(DEFAULT_CONFIG),
            "`statewall check FILE`",
        ),
        _ => Ok(()),
    }
}

fn default_exists(path: &Path, default: &Path, how: &str) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Err(e) if path == default && e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{} (the default config) does not exist: give another with {how}",
            default.display()
        ),
        // Any other problem (no permission, a directory) is the read's to report.
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_says_how_to_give_another() {
        let dir = std::env::temp_dir().join(format!("statewall-default-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = dir.join("statewall.yaml");
        let e = default_exists(&default, &default, "--config FILE").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} (the default config) does not exist: give another with --config FILE",
                default.display()
            )
        );
        // Another missing file is the read's error, as before.
        assert!(default_exists(&dir.join("other.yaml"), &default, "x").is_ok());
        std::fs::write(&default, "").unwrap();
        assert!(default_exists(&default, &default, "x").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn run_and_check_default_to_etc() {
        let cli = Cli::try_parse_from(["statewall", "check"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Check { ref file } if file == DEFAULT_CONFIG));
        let cli = Cli::try_parse_from(["statewall", "run", "--workers", "auto"]).unwrap();
        match cli.cmd {
            Cmd::Run {
                config, workers, ..
            } => {
                assert_eq!(config, Path::new(DEFAULT_CONFIG));
                assert_eq!(workers, Workers::Auto);
            }
            _ => panic!("not run"),
        }
        // The forms scripts use keep working.
        let cli = Cli::try_parse_from(["statewall", "run", "--config", "x.yaml", "--workers", "2"])
            .unwrap();
        assert!(
            matches!(cli.cmd, Cmd::Run { ref config, workers: Workers::Count(2), .. } if config == Path::new("x.yaml"))
        );
        let e = Cli::try_parse_from(["statewall", "run", "--workers", "0"])
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("give a number of workers from 1 to 256, or `auto`"),
            "{e}"
        );
    }
}
