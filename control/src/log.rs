//! `statewallctl log`: the lines `log` rules wrote, newest last, each after the time it was
//! written (`[SECONDS.MILLIS]`, as `apply --watch` stamps its lines); with `--follow`, then
//! every new one as it comes, until killed.

use std::path::Path;
use std::time::Duration;

use config::protocol::{Command, LogReply, Outcome, Payload};

use crate::client::Client;

/// One line as printed.
fn render(l: &config::protocol::LogLine) -> String {
    format!(
        "[{}.{:03}] {}",
        l.unix_time.trunc() as u64,
        (l.unix_time.fract() * 1000.0) as u32,
        l.text
    )
}

/// The counts of what was not written, when there is any (to standard error).
fn say_missing(r: &LogReply, before: (u64, u64)) {
    let (suppressed, lost) = (
        r.suppressed.saturating_sub(before.0),
        r.lost.saturating_sub(before.1),
    );
    if suppressed > 0 {
        eprintln!("statewallctl: {suppressed} lines not written (over the log's rate limit)");
    }
    if lost > 0 {
        eprintln!("statewallctl: {lost} packets not logged (the hand-over to the log was full)");
    }
}

/// Print the newest `lines` (all kept without it); with `follow`, keep asking every
/// `interval` for the lines after the last one printed. Whether the daemon answered.
pub fn run(
    socket: &Path,
    json: bool,
    lines: Option<usize>,
    follow: bool,
    interval: Duration,
) -> anyhow::Result<bool> {
    let mut client = Client::connect(socket)?;
    let mut since = None;
    let mut lines = lines;
    let mut before = (0, 0);
    loop {
        let (raw, reply) = client.call(Command::Log { since, lines })?;
        let r = match reply.result {
            Outcome::Ok {
                data: Payload::Log(r),
            } => r,
            Outcome::Ok { .. } => anyhow::bail!("the daemon answered `log` with another reply"),
            Outcome::Error { error } => {
                eprintln!("statewallctl: {} ({})", error.message, error.kind);
                return Ok(false);
            }
        };
        if json {
            println!("{raw}");
        } else {
            for l in &r.lines {
                println!("{}", render(l));
            }
            // The first time: what was missed so far; then what is missed while following.
            say_missing(&r, before);
        }
        if !follow {
            return Ok(true);
        }
        before = (r.suppressed, r.lost);
        since = Some(r.last);
        lines = None;
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_after_its_time() {
        let l = config::protocol::LogLine {
            seq: 1,
            unix_time: 1_765_000_000.25,
            level: 4,
            text: "drop: IN=lan OUT=wan ".into(),
        };
        assert_eq!(render(&l), "[1765000000.250] drop: IN=lan OUT=wan ");
    }
}
