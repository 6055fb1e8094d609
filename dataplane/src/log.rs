//! The daemon's log lines: each one is written at a level, and where systemd's journal reads
//! them, with that level as a syslog priority prefix so that `journalctl -p warning` finds the
//! warnings.
//!
//! | level   | prefix | for |
//! |---------|--------|-----|
//! | error   | `<3>`  | the daemon cannot go on (it exits 1), or a worker died |
//! | warning | `<4>`  | it goes on without something: a reload refused, a core not pinned, a stalled worker |
//! | info    | `<6>`  | what it is doing: ports opened, running, reloaded, stopping |
//! | debug   | `<7>`  | details an operator rarely needs (the watchdog period) |
//!
//! **Format.** [`Format::Plain`] writes the lines as they always were (`statewall: ...`, the
//! texts tests and operators grep), [`Format::Syslog`] puts `<N>` before every line of a
//! message (journald strips it and keeps N as the entry's priority). [`init`] picks syslog
//! when standard error is the journal: systemd sets `JOURNAL_STREAM=DEV:INODE` to the stream
//! it connects to stderr, and that is ours only if `fstat(2)` agrees (a child whose stderr was
//! redirected elsewhere inherits the variable but not the stream) — the check
//! sd-daemon(3) documents.
//!
//! Messages go through `log_error!`, `log_warn!`, `log_info!` and `log_debug!`, which put
//! `statewall: ` before the text; [`line`] writes a text as it is (config diagnostics, which
//! name their file first).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU8, Ordering};

/// A log line's level, numbered as syslog priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Format {
    /// As they are (a terminal, a file).
    Plain = 0,
    /// `<N>` before each line (systemd's journal).
    Syslog = 1,
}

static FORMAT: AtomicU8 = AtomicU8::new(Format::Plain as u8);

/// Pick the format from the environment: syslog when `JOURNAL_STREAM` names our stderr.
pub fn init() {
    let journal = std::env::var("JOURNAL_STREAM").ok();
    set_format(if is_journal(journal.as_deref(), stderr_id()) {
        Format::Syslog
    } else {
        Format::Plain
    });
}

/// Whether `JOURNAL_STREAM` (its value, if set) names the stream `stderr` (device, inode) is.
pub fn is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    match (journal_stream.and_then(parse_journal_stream), stderr) {
        (Some(j), Some(s)) => j == s,
        _ => false,
    }
}

pub fn set_format(f: Format) {
    FORMAT.store(f as u8, Ordering::Relaxed);
}

pub fn format() -> Format {
    if FORMAT.load(Ordering::Relaxed) == Format::Syslog as u8 {
        Format::Syslog
    } else {
        Format::Plain
    }
}

/// `JOURNAL_STREAM`'s `DEV:INODE` (both decimal).
pub fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Device and inode of what standard error is (`fstat(2)`).
fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let m = std::fs::File::from(fd).metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// `text` as it is written in format `f`: each line (a message may hold several) with the
/// level's prefix in syslog format, a newline at the end.
pub fn render(f: Format, level: Level, text: &str) -> String {
    render_at(f, level as u8, text)
}

/// [`render`] at a syslog priority (0-7).
fn render_at(f: Format, priority: u8, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    // `lines` of "" is nothing: an empty message is still one (empty) line.
    let lines: Vec<&str> = if text.is_empty() {
        vec![""]
    } else {
        text.lines().collect()
    };
    for l in lines {
        if f == Format::Syslog {
            out.push('<');
            out.push(char::from(b'0' + priority.min(7)));
            out.push('>');
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Write `text` at `level` to standard error, in one write (lines of concurrent messages do
/// not interleave).
pub fn line(level: Level, text: &str) {
    let s = render(format(), level, text);
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// A line a `log` rule wrote, at its syslog priority (0-7), as it is: the kernel's LOG
/// lines carry no program name either.
pub fn packet_line(priority: u8, text: &str) {
    let s = render_at(format(), priority, text);
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// `statewall: MESSAGE` at level error.
#[macro_export]
macro_rules! log_error {
    ($($t:tt)*) => {
        $crate::log::line($crate::log::Level::Error, &format!("statewall: {}", format_args!($($t)*)))
    };
}

/// `statewall: MESSAGE` at level warning.
#[macro_export]
macro_rules! log_warn {
    ($($t:tt)*) => {
        $crate::log::line($crate::log::Level::Warning, &format!("statewall: {}", format_args!($($t)*)))
    };
}

/// `statewall: MESSAGE` at level info.
#[macro_export]
macro_rules! log_info {
    ($($t:tt)*) => {
        $crate::log::line($crate::log::Level::Info, &format!("statewall: {}", format_args!($($t)*)))
    };
}

/// `statewall: MESSAGE` at level debug.
#[macro_export]
macro_rules! log_debug {
    ($($t:tt)*) => {
        $crate::log::line($crate::log::Level::Debug, &format!("statewall: {}", format_args!($($t)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_unchanged() {
        assert_eq!(
            render(Format::Plain, Level::Warning, "statewall: reload: x"),
            "statewall: reload: x\n"
        );
        assert_eq!(render(Format::Plain, Level::Info, "a\nb"), "a\nb\n");
    }

    #[test]
    fn syslog_prefixes_every_line() {
        assert_eq!(
            render(Format::Syslog, Level::Error, "statewall: cannot"),
            "<3>statewall: cannot\n"
        );
        assert_eq!(
            render(
                Format::Syslog,
                Level::Warning,
                "f.yaml:3:5: error\n  | caret"
            ),
            "<4>f.yaml:3:5: error\n<4>  | caret\n"
        );
        assert_eq!(render(Format::Syslog, Level::Info, "x"), "<6>x\n");
        assert_eq!(render(Format::Syslog, Level::Debug, "x"), "<7>x\n");
        assert_eq!(render(Format::Syslog, Level::Info, ""), "<6>\n");
        assert_eq!(render_at(Format::Syslog, 0, "x"), "<0>x\n");
    }

    #[test]
    fn journal_stream_is_dev_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream("812345"), None);
    }

    #[test]
    fn journal_stream_must_be_our_stderr() {
        assert!(is_journal(Some("8:12345"), Some((8, 12345))));
        // Inherited by a process whose stderr went elsewhere: not the journal.
        assert!(!is_journal(Some("8:12345"), Some((8, 999))));
        assert!(!is_journal(None, Some((8, 12345))));
        assert!(!is_journal(Some("garbage"), Some((8, 12345))));
        assert!(!is_journal(Some("8:12345"), None));
        // This process's own stderr is something fstat can name.
        let id = stderr_id().expect("stderr has a device and an inode");
        let v = format!("{}:{}", id.0, id.1);
        assert!(is_journal(Some(&v), stderr_id()));
    }
}
