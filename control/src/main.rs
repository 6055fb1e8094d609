//! statewallctl: the operator's tool (DESIGN.md §6). It talks only to the daemon's control
//! socket (`config::protocol`, newline-delimited JSON): human-readable output by default,
//! the daemon's reply verbatim with `--json`.
//!
//! Exit status: 0 done; 1 the daemon refused (invalid ruleset, bad setting, ...); 2 usage;
//! 3 the daemon could not be reached or answered garbage.
#![forbid(unsafe_code)]

mod client;
mod log;
mod output;
mod save;
mod top;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use config::protocol::{
    Command, ConntrackFilter, ConntrackOp, Family, Outcome, Payload, Reply, SyncOp, DEFAULT_SOCKET,
};

use client::Client;

#[derive(Parser)]
#[command(
    name = "statewallctl",
    version,
    about = "Control a running statewall: push rulesets, read stats, conntrack and latency"
)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON reply as it is.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate, compile and swap in a ruleset (the running one stays on any error).
    Apply {
        /// Stay running and re-apply whenever the file changes.
        #[arg(long)]
        watch: bool,
        /// How often --watch looks at the file, in milliseconds.
        #[arg(long, default_value_t = 500, hide = true)]
        interval_ms: u64,
        file: PathBuf,
    },
    /// Validate a ruleset against the running daemon without applying it.
    Check { file: PathBuf },
    /// The running ruleset with per-rule packet and byte counters.
    Show,
    /// Per-worker counters, drops by reason, table occupancy.
    Stats {
        #[arg(long)]
        per_core: bool,
    },
    /// The connection table: list, count, flush, get; save and restore it as the lines of
    /// `conntrack -L -o save` (what `conntrack -R` loads).
    Conntrack {
        #[arg(value_enum)]
        op: CtOp,
        /// save: write the lines to FILE (standard output without it); restore: read them
        /// from FILE (standard input without it, or with `-`). Nothing is restored unless
        /// every line is good.
        file: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Latency histograms: receive → verdict, forwarded and dropped, and per batch.
    Hist {
        /// Clear the histograms after reading them.
        #[arg(long)]
        reset: bool,
        #[arg(long)]
        per_core: bool,
    },
    /// Read a conntrack setting by its sysctl name (udp_timeout, tcp_loose, ...).
    Get { key: String },
    /// Change a conntrack setting live.
    Set { key: String, value: String },
    /// The lines `log` rules wrote (the newest the daemon keeps), each after the time it
    /// was written.
    Log {
        /// Only the newest N lines.
        #[arg(short = 'n', long)]
        lines: Option<usize>,
        /// Then print new lines as they are written, until killed.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How often --follow asks, in milliseconds.
        #[arg(long, default_value_t = 500, hide = true)]
        interval_ms: u64,
    },
    /// Connection-state sync with the peer gateway, as conntrackd's options: status (-s),
    /// commit the external cache (-c), flush it (-f), resync (-R), send every entry to the
    /// peer (-B), request the peer's (-n), purge: shorten every timeout (-t).
    Sync {
        #[arg(value_parser = sync_op_parser())]
        op: SyncOp,
    },
    /// A live view, each second: per-worker pps, drops, occupancy, p99 latency (q quits).
    Top {
        /// Stop after this many refreshes (0: until q or Ctrl-C).
        #[arg(long, default_value_t = 0)]
        iterations: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CtOp {
    List,
    Count,
    Flush,
    Get,
    Save,
    Restore,
}

#[derive(Args)]
struct FilterArgs {
    /// Protocol: tcp, udp, icmp, icmpv6 or a number.
    #[arg(short = 'p', long, value_parser = parse_proto)]
    proto: Option<u8>,
    /// Original source address.
    #[arg(short = 's', long)]
    src: Option<IpAddr>,
    /// Original destination address.
    #[arg(short = 'd', long)]
    dst: Option<IpAddr>,
    #[arg(long)]
    sport: Option<u16>,
    #[arg(long)]
    dport: Option<u16>,
    /// Either port.
    #[arg(long)]
    port: Option<u16>,
    /// TCP state (ESTABLISHED, TIME_WAIT, ...).
    #[arg(long)]
    state: Option<String>,
    #[arg(short = 'f', long, value_enum)]
    family: Option<FamilyArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FamilyArg {
    Ipv4,
    Ipv6,
}

/// `sync`'s operations, by the protocol's names (`SyncOp::as_str`).
fn sync_op_parser() -> impl clap::builder::TypedValueParser<Value = SyncOp> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(SyncOp::ALL.map(SyncOp::as_str)).map(|s| {
        SyncOp::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .expect("one of the possible values")
    })
}

fn parse_proto(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "ipv6-icmp" => Ok(58),
        "udplite" => Ok(136),
        "sctp" => Ok(132),
        other => other
            .parse()
            .map_err(|_| format!("`{s}`: use tcp, udp, icmp, icmpv6 or a protocol number")),
    }
}

impl FilterArgs {
    fn filter(&self) -> ConntrackFilter {
        ConntrackFilter {
            family: self.family.map(|f| match f {
                FamilyArg::Ipv4 => Family::Ipv4,
                FamilyArg::Ipv6 => Family::Ipv6,
            }),
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            port: self.port,
            state: self.state.clone(),
        }
    }
}

/// A finished command: what to print and how to exit.
enum Done {
    Ok,
    Refused,
}

fn main() -> ExitCode {
    clidoc::generate_if_asked(Cli::command);
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Refused) => ExitCode::from(1),
        Err(e) => {
            eprintln!("statewallctl: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn run(cli: &Cli) -> anyhow::Result<Done> {
    let cmd = match &cli.cmd {
        Cmd::Apply {
            watch: true,
            interval_ms,
            file,
        } => return watch(cli, file, Duration::from_millis(*interval_ms)),
        Cmd::Top { iterations } => return top::run(&cli.socket, *iterations).map(|()| Done::Ok),
        Cmd::Log {
            lines,
            follow,
            interval_ms,
        } => {
            let interval = Duration::from_millis(*interval_ms);
            let ok = log::run(&cli.socket, cli.json, *lines, *follow, interval)?;
            return Ok(if ok { Done::Ok } else { Done::Refused });
        }
        Cmd::Apply { file, .. } => Command::Apply {
            yaml: read_file(file)?,
            file: file.display().to_string(),
        },
        Cmd::Check { file } => Command::Check {
            yaml: read_file(file)?,
            file: file.display().to_string(),
        },
        Cmd::Show => Command::Show,
        Cmd::Stats { per_core } => Command::Stats {
            per_core: *per_core,
        },
        Cmd::Conntrack { op, file, filter } => {
            let op = match op {
                CtOp::List => ConntrackOp::List,
                CtOp::Count => ConntrackOp::Count,
                CtOp::Flush => ConntrackOp::Flush,
                CtOp::Get => ConntrackOp::Get,
                CtOp::Save => {
                    let ok = save::save(&cli.socket, cli.json, filter.filter(), file.as_deref())?;
                    return Ok(if ok { Done::Ok } else { Done::Refused });
                }
                CtOp::Restore => {
                    if !filter.filter().is_empty() {
                        Cli::command()
                            .error(
                                clap::error::ErrorKind::ArgumentConflict,
                                "conntrack restore takes no filter options: it loads every line",
                            )
                            .exit();
                    }
                    let ok = save::restore(&cli.socket, cli.json, file.as_deref())?;
                    return Ok(if ok { Done::Ok } else { Done::Refused });
                }
            };
            if file.is_some() {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "a FILE goes only with conntrack save and conntrack restore",
                    )
                    .exit();
            }
            Command::Conntrack {
                op,
                filter: filter.filter(),
            }
        }
        Cmd::Hist { reset, per_core } => Command::Hist {
            reset: *reset,
            per_core: *per_core,
        },
        Cmd::Get { key } => Command::Get { key: key.clone() },
        Cmd::Set { key, value } => Command::Set {
            key: key.clone(),
            value: value.clone(),
        },
        Cmd::Sync { op } => Command::Sync { op: *op },
    };
    let op = match &cmd {
        Command::Conntrack { op, .. } => Some(*op),
        _ => None,
    };
    let mut client = Client::connect(&cli.socket)?;
    let (line, reply) = client.call(cmd)?;
    let done = report(cli, &line, &reply, op, "");
    // As `conntrack -G`: a tuple that matches nothing is a failure.
    if let (
        Some(ConntrackOp::Get),
        Outcome::Ok {
            data: Payload::Conntrack(c),
        },
    ) = (op, &reply.result)
    {
        if c.entries.is_empty() {
            eprintln!("statewallctl: no conntrack entry for that tuple");
            return Ok(Done::Refused);
        }
    }
    Ok(done)
}

/// Print a reply; whether the daemon did what was asked. `op`: the conntrack operation
/// asked for, if any; `stamp` starts the outcome's first line on whichever stream it goes to
/// (`apply --watch` logs the time there; not with `--json`).
fn report(cli: &Cli, line: &str, reply: &Reply, op: Option<ConntrackOp>, stamp: &str) -> Done {
    if cli.json {
        // The reply as it came: no stamp, so every line stays JSON.
        println!("{line}");
        return match reply.result {
            Outcome::Ok { .. } => Done::Ok,
            Outcome::Error { .. } => Done::Refused,
        };
    }
    match &reply.result {
        Outcome::Ok { data } => {
            print!("{stamp}{}", output::payload(data, op));
            if let Payload::Applied(a) = data {
                for w in &a.warnings {
                    eprintln!("{w}");
                }
                for n in &a.notes {
                    eprintln!("note: {n}");
                }
            }
            if let Payload::Checked(c) = data {
                for w in &c.warnings {
                    eprintln!("{w}");
                }
            }
            Done::Ok
        }
        Outcome::Error { error } => {
            eprint!("{stamp}");
            for d in &error.diagnostics {
                eprintln!("{d}");
            }
            eprintln!("statewallctl: {} ({})", error.message, error.kind);
            Done::Refused
        }
    }
}

/// `apply --watch`: apply now and after every change of the file, until killed. Each
/// outcome is logged with the time; a refused version leaves the last good one running.
fn watch(cli: &Cli, file: &Path, interval: Duration) -> anyhow::Result<Done> {
    let mut last: Option<(Option<SystemTime>, String)> = None;
    loop {
        let text = std::fs::read_to_string(file);
        let mtime = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        match text {
            Err(e) => {
                if last.is_some() {
                    eprintln!(
                        "{}: cannot read {}: {e}; still watching",
                        stamp(),
                        file.display()
                    );
                    last = None;
                }
            }
            Ok(text) => {
                let changed = last.as_ref().is_none_or(|(m, t)| *m != mtime || *t != text);
                if changed {
                    let cmd = Command::Apply {
                        yaml: text.clone(),
                        file: file.display().to_string(),
                    };
                    match Client::connect(&cli.socket).and_then(|mut c| c.call(cmd)) {
                        Ok((line, reply)) => {
                            report(cli, &line, &reply, None, &format!("{}: ", stamp()));
                            last = Some((mtime, text));
                        }
                        Err(e) => eprintln!("{}: {e:#}; will retry", stamp()),
                    }
                }
            }
        }
        std::thread::sleep(interval);
    }
}

fn stamp() -> String {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("[{}.{:03}]", t.as_secs(), t.subsec_millis())
}
