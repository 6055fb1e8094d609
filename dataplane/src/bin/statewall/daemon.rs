//! `statewall run`: the daemon. Opens the config's ports over AF_XDP (worker i polls queue i of
//! every port), starts the runtime's pinned workers and the control socket, and then waits:
//! SIGHUP re-reads the config (a bad one is reported and the running ruleset stays),
//! SIGINT/SIGTERM shut down cleanly (workers joined, sockets closed, XDP programs detached).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use config::ruleset::PortSpec;

use dataplane::log::{self, Level};
use dataplane::runtime::metrics::MetricsServer;
use dataplane::runtime::server::{resolve_group, ControlServer, ServerConfig};
use dataplane::runtime::{PollMode, Runtime, RuntimeConfig};
use dataplane::systemd::Service;
use dataplane::xsk::{PortConfig, UmemConfig, XskPorts};
use dataplane::{log_info, log_warn};

/// Options of `statewall run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// `--workers N|auto` (auto: one per queue of the ports).
    pub workers: crate::workers::Workers,
    pub control_socket: PathBuf,
    /// The state file (`--state`); `None` for `--state none`.
    pub state: Option<PathBuf>,
    /// Members of this group (name or gid) may use the control socket too.
    pub control_group: Option<String>,
    pub poll: PollMode,
    /// Adaptive mode: µs an idle worker spins before it sleeps (`--busy-poll`).
    pub busy_poll_us: u64,
    /// Pin worker i to core i (best effort).
    pub pin: bool,
    /// Worker i's core is `cpus[i]` (`--cpus`); empty: worker i on core i.
    pub cpus: Vec<usize>,
    /// Serve Prometheus metrics here (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
}

/// The ports of worker `queue`, in the ruleset's port order.
fn port_configs(r: &config::Ruleset, queue: u32) -> Vec<PortConfig> {
    r.port_names()
        .iter()
        .map(|name| match r.ports.as_ref().and_then(|p| p.get(name)) {
            Some(spec) => PortConfig::from_spec(spec, queue),
            None => PortConfig::from_spec(&PortSpec::Interface(name.clone()), queue),
        })
        .collect()
}

fn load(path: &Path) -> anyhow::Result<(config::Loaded, String)> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
    match config::load_str(&text, &file) {
        Ok(l) => Ok((l, text)),
        Err(errors) => {
            for e in &errors {
                log::line(Level::Error, &e.to_string());
            }
            bail!("{file}: {} error(s); not starting", errors.len())
        }
    }
}

/// `--cpus`: one core per worker, each one this machine has.
fn check_cpus(cpus: &[usize], workers: usize) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    if cpus.len() < workers {
        anyhow::bail!(
            "--cpus names {} core(s) for {workers} workers: give one per worker (e.g. --cpus {})",
            cpus.len(),
            (0..workers)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let have = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if let Some(bad) = cpus.iter().find(|&&c| c >= have) {
        anyhow::bail!(
            "--cpus: there is no core {bad} (cores 0 to {} here)",
            have - 1
        );
    }
    Ok(())
}

/// Run until SIGINT/SIGTERM.
pub fn run(opts: &RunOptions) -> anyhow::Result<()> {
    let (loaded, yaml) = load(&opts.config)?;
    for w in &loaded.warnings {
        log::line(Level::Warning, &w.to_string());
    }
    let workers = crate::workers::resolve(opts.workers, &port_configs(&loaded.ruleset, 0))?;
    check_cpus(&opts.cpus, workers)?;
    let group = match &opts.control_group {
        Some(g) => Some(resolve_group(g).map_err(|e| anyhow::anyhow!("--control-group: {e}"))?),
        None => None,
    };
    // A frame must fit one UMEM frame (no multi-buffer AF_XDP): refuse jumbo MTUs up front.
    for (name, p) in loaded
        .ruleset
        .port_names()
        .iter()
        .zip(port_configs(&loaded.ruleset, 0))
    {
        dataplane::xsk::check_mtu(name, &p.interface, &UmemConfig::default())?;
    }
    // Before anything is opened: a daemon short of a capability says which (dataplane::caps).
    let umem = UmemConfig::default().locked_bytes(loaded.ruleset.port_names().len());
    dataplane::caps::check(umem.saturating_mul(workers as u64)).map_err(anyhow::Error::msg)?;
    let mut ios = Vec::with_capacity(workers);
    let mut io_mode = Vec::new();
    for w in 0..workers {
        let ports = port_configs(&loaded.ruleset, w as u32);
        let xsk = XskPorts::open(&ports, &UmemConfig::default()).with_context(|| {
            format!(
                "worker {w}: cannot open AF_XDP on queue {w} of {}",
                ports
                    .iter()
                    .map(|p| p.interface.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        for (p, m) in ports.iter().zip(xsk.modes()) {
            // `m` names the interface and queue itself.
            let line = format!("worker {w}, port {}: {m}", p.interface);
            log_info!("{line}");
            io_mode.push(line);
        }
        ios.push(xsk);
    }
    let cfg = RuntimeConfig {
        poll: opts.poll,
        busy_poll_ns: opts.busy_poll_us.saturating_mul(1000),
        pin: opts.pin,
        cores: (!opts.cpus.is_empty()).then(|| opts.cpus.clone()),
        io_mode,
        state: opts.state.clone(),
        ..RuntimeConfig::default()
    };
    let file = opts.config.display().to_string();
    let rt = Runtime::start(&loaded.ruleset, &yaml, &file, ios, &cfg)?;
    // A state file that was refused is worth a warning: the table starts empty.
    if rt.restored().rejected.is_some() {
        log_warn!("{}", rt.restored().line());
    } else {
        log_info!("{}", rt.restored().line());
    }
    let handle = rt.handle();
    let server = ControlServer::bind(
        &opts.control_socket,
        rt.handle(),
        ServerConfig {
            group,
            ..ServerConfig::default()
        },
    )
    .with_context(|| format!("control socket {}", opts.control_socket.display()))?;
    let metrics = match opts.metrics {
        Some(addr) => {
            let m = MetricsServer::bind(addr, rt.handle())
                .with_context(|| format!("--metrics {addr}: cannot listen"))?;
            log_info!("metrics on http://{}/metrics", m.addr);
            Some(m)
        }
        None => None,
    };
    log_info!(
        "running {file} (generation {}) on {workers} worker(s); control socket {}",
        handle.generation(),
        opts.control_socket.display()
    );

    // Block until a signal (no polling while idle): SIGHUP reloads, SIGINT/SIGTERM stop,
    // and the one that stopped the daemon is logged on the way out. The handlers are in
    // place before systemd hears READY=1 (a reload it sends next must not kill us).
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot handle signals")?;
    // Under systemd (Type=notify): READY=1 once every worker runs, then status and watchdog.
    let sd = Service::start(rt.handle(), rt.liveness()).map_err(anyhow::Error::msg)?;
    let mut sig = SIGTERM;
    for s in signals.forever() {
        if s == SIGHUP {
            sd.reloading(&file);
            sd.reloaded(reload(&handle, &opts.config));
        } else {
            sig = s;
            break;
        }
    }
    log_info!("{} received; stopping", signal_name(sig));
    sd.stopping(&signal_name(sig));
    sd.shutdown();
    if let Some(m) = metrics {
        m.shutdown();
    }
    server.shutdown();
    rt.stop();
    log_info!("stopped");
    Ok(())
}

/// `SIGTERM`, `SIGINT`, or the number of another signal.
fn signal_name(sig: i32) -> String {
    match sig {
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        signal_hook::consts::SIGINT => "SIGINT".into(),
        _ => format!("signal {sig}"),
    }
}

/// SIGHUP: re-read the config file and swap it in, or say why not and keep the running one.
/// What became of it, in a few words (systemd's `STATUS=`).
fn reload(handle: &dataplane::runtime::handle::RuntimeHandle, path: &Path) -> String {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let g = handle.generation();
            log_warn!("reload: cannot read {file}: {e}; keeping generation {g}");
            return format!("cannot read {file}: {e}; kept generation {g}");
        }
    };
    match handle.apply(&text, &file) {
        Ok(a) => {
            for w in &a.warnings {
                log::line(Level::Warning, &w.to_string());
            }
            for n in &a.notes {
                log_info!("reload: {n}");
            }
            log_info!(
                "reload: {file} is generation {} (was {})",
                a.generation,
                a.previous
            );
            format!("{file} accepted as generation {}", a.generation)
        }
        Err(e) => {
            for d in &e.diagnostics {
                log::line(Level::Warning, &d.to_string());
            }
            let g = handle.generation();
            log_warn!(
                "reload: {file} rejected ({}); keeping generation {g}",
                e.message
            );
            format!("{file} rejected ({}); kept generation {g}", e.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_one_per_worker_and_real() {
        assert!(check_cpus(&[], 4).is_ok());
        assert!(check_cpus(&[0], 1).is_ok());
        let e = check_cpus(&[0], 2).unwrap_err().to_string();
        assert_eq!(
            e,
            "--cpus names 1 core(s) for 2 workers: give one per worker (e.g. --cpus 0,1)"
        );
        let e = check_cpus(&[100_000], 1).unwrap_err().to_string();
        assert!(
            e.starts_with("--cpus: there is no core 100000 (cores 0 to "),
            "{e}"
        );
    }
}
