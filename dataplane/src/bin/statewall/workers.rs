//! `statewall run --workers N|auto`: how many workers to start. Worker i polls queue i of
//! every port, so `auto` starts one worker per queue that every port has: the smallest queue
//! count of the config's ports (the combined channel count, `ethtool -l`; sysfs's queues where
//! the driver reports no channels), and says so when the ports differ.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use dataplane::xsk::{PortConfig, QueueCount};

/// The most workers `statewall run` starts.
pub const MAX: u16 = 256;

/// `--workers`: a number, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Count(u16),
}

impl FromStr for Workers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Workers::Auto);
        }
        match s.parse::<u16>() {
            Ok(n) if (1..=MAX).contains(&n) => Ok(Workers::Count(n)),
            _ => Err(format!(
                "`{s}`: give a number of workers from 1 to {MAX}, or `auto` (one per queue of the ports)"
            )),
        }
    }
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Auto => f.write_str("auto"),
            Workers::Count(n) => write!(f, "{n}"),
        }
    }
}

/// The number of workers to start for `ports` (each with the queue this worker would poll);
/// `auto` counts their queues here and logs what it found.
pub fn resolve(workers: Workers, ports: &[PortConfig]) -> anyhow::Result<usize> {
    match workers {
        Workers::Count(n) => Ok(usize::from(n)),
        Workers::Auto => {
            let mut counts = Vec::with_capacity(ports.len());
            for p in ports {
                let q = dataplane::xsk::queue_count(&p.interface)
                    .context("--workers auto: cannot count the ports' queues")?;
                counts.push((p.interface.as_str(), q));
            }
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            let (n, lines) = plan(&counts, cores);
            // The plan first, then what is wrong with it (queues without a worker, cores
            // shared).
            for (i, l) in lines.iter().enumerate() {
                if i == 0 {
                    dataplane::log_info!("{l}");
                } else {
                    dataplane::log_warn!("{l}");
                }
            }
            Ok(n)
        }
    }
}

/// `auto`'s choice for these ports' queue counts on a machine with `cores` cores: the
/// smallest count (at least 1, at most [`MAX`]), and the lines to log about it.
fn plan(counts: &[(&str, QueueCount)], cores: usize) -> (usize, Vec<String>) {
    let smallest = counts
        .iter()
        .map(|(_, q)| q.queues)
        .min()
        .unwrap_or(1)
        .max(1);
    let n = smallest.min(u32::from(MAX));
    let found = counts
        .iter()
        .map(|(i, q)| format!("{i}: {} ({})", q.queues, q.source))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = vec![format!(
        "--workers auto: {n} worker(s), one per queue of the ports ({found})"
    )];
    let larger: Vec<&str> = counts
        .iter()
        .filter(|(_, q)| q.queues > n)
        .map(|(i, _)| *i)
        .collect();
    if !larger.is_empty() {
        let why = if smallest > n {
            format!("at most {MAX} workers")
        } else {
            "worker i polls queue i of every port, so the port with the fewest queues decides"
                .to_string()
        };
        lines.push(format!(
            "--workers auto: {why}: queues {n} and up of {} get no worker, and what arrives \
             there goes to the kernel's stack, not through statewall; give every port {n} \
             queue(s) (e.g. `ethtool -L {} combined {n}`) or RSS only over the first {n}",
            larger.join(", "),
            larger[0]
        ));
    }
    if n as usize > cores {
        lines.push(format!(
            "--workers auto: {n} workers on {cores} core(s): workers share cores; fewer queues \
             (ethtool -L) or --workers {cores} suit this machine better"
        ));
    }
    (n as usize, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::xsk::QueueSource::{Channels, Sysfs};

    fn q(queues: u32) -> QueueCount {
        QueueCount {
            queues,
            source: Channels,
        }
    }

    #[test]
    fn parse() {
        assert_eq!("auto".parse(), Ok(Workers::Auto));
        assert_eq!("AUTO".parse(), Ok(Workers::Auto));
        assert_eq!("1".parse(), Ok(Workers::Count(1)));
        assert_eq!("256".parse(), Ok(Workers::Count(256)));
        for bad in ["0", "257", "-1", "two", ""] {
            let e = bad.parse::<Workers>().unwrap_err();
            assert_eq!(
                e,
                format!("`{bad}`: give a number of workers from 1 to 256, or `auto` (one per queue of the ports)")
            );
        }
        assert_eq!(Workers::Auto.to_string(), "auto");
        assert_eq!(Workers::Count(4).to_string(), "4");
    }

    #[test]
    fn one_per_queue_when_the_ports_agree() {
        let (n, lines) = plan(&[("eth0", q(4)), ("eth1", q(4))], 8);
        assert_eq!(n, 4);
        assert_eq!(
            lines,
            ["--workers auto: 4 worker(s), one per queue of the ports (eth0: 4 (ethtool channels), eth1: 4 (ethtool channels))"]
        );
    }

    #[test]
    fn the_smallest_when_they_differ_and_says_what_goes_unpolled() {
        let sysfs = QueueCount {
            queues: 2,
            source: Sysfs,
        };
        let (n, lines) = plan(&[("eth0", q(8)), ("br0", sysfs), ("eth2", q(4))], 8);
        assert_eq!(n, 2);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("br0: 2 (sysfs queues)"), "{lines:?}");
        assert!(
            lines[1].starts_with(
                "--workers auto: worker i polls queue i of every port, so the port with the \
                 fewest queues decides: queues 2 and up of eth0, eth2 get no worker"
            ),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("`ethtool -L eth0 combined 2`"),
            "{lines:?}"
        );
    }

    #[test]
    fn capped_and_cores_noted() {
        let (n, lines) = plan(&[("a", q(1000)), ("b", q(1000))], 16);
        assert_eq!(n, 256);
        assert!(
            lines[1].starts_with("--workers auto: at most 256 workers: queues 256 and up of a, b"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("--workers auto: 256 workers on 16 core(s)"),
            "{lines:?}"
        );
        // A port reporting 0 queues still gets one worker (queue 0 always exists).
        assert_eq!(plan(&[("a", q(0))], 4).0, 1);
    }
}
