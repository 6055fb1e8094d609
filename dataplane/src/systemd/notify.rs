//! `sd_notify(3)` without libsystemd: one datagram of `KEY=VALUE` lines to the unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace), and the
//! watchdog period from `$WATCHDOG_USEC` (for this process only if `$WATCHDOG_PID`, when
//! set, is ours).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file.
    Path(PathBuf),
    /// A name in the abstract namespace (`@name`; the `@` stands for the leading NUL).
    Abstract(Vec<u8>),
}

/// Parse `$NOTIFY_SOCKET`.
pub fn parse_target(v: &str) -> Result<Target, String> {
    if let Some(name) = v.strip_prefix('@') {
        if name.is_empty() {
            return Err("NOTIFY_SOCKET=@ names no abstract socket".to_string());
        }
        Ok(Target::Abstract(name.as_bytes().to_vec()))
    } else if v.starts_with('/') {
        Ok(Target::Path(PathBuf::from(v)))
    } else {
        Err(format!(
            "NOTIFY_SOCKET={v}: only unix sockets (an absolute path or @name) are supported"
        ))
    }
}

/// The watchdog period systemd asked for: `$WATCHDOG_USEC` (`usec`), unless `$WATCHDOG_PID`
/// (`pid`) is set to another process than `me`. `None` when there is no (valid) one.
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    let us: u64 = usec?.trim().parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

/// One notification: `KEY=VALUE` lines. Values are single lines (a newline in one would start
/// a new assignment), so newlines in them become spaces.
pub fn message(fields: &[(&str, &str)]) -> String {
    let mut m = String::new();
    for (k, v) in fields {
        m.push_str(k);
        m.push('=');
        m.extend(v.chars().map(|c| if c == '\n' { ' ' } else { c }));
        m.push('\n');
    }
    m
}

/// CLOCK_MONOTONIC in microseconds (`MONOTONIC_USEC=` of a reload).
pub fn monotonic_usec() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
}

/// A socket to the service manager.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    pub fn new(target: &Target) -> io::Result<Notifier> {
        let addr = match target {
            Target::Path(p) => SocketAddr::from_pathname(p)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier { sock, addr })
    }

    /// From `$NOTIFY_SOCKET`: `None` when unset (not run by systemd, or not `Type=notify`).
    pub fn from_env() -> Option<Result<Notifier, String>> {
        let v = std::env::var_os("NOTIFY_SOCKET")?;
        let v = v.to_string_lossy();
        Some(
            parse_target(&v)
                .and_then(|t| Notifier::new(&t).map_err(|e| format!("NOTIFY_SOCKET={v}: {e}"))),
        )
    }

    /// Send one notification.
    pub fn send(&self, fields: &[(&str, &str)]) -> io::Result<()> {
        let m = message(fields);
        self.sock.send_to_addr(m.as_bytes(), &self.addr).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Ok(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target("@/org/freedesktop/systemd1/notify/123"),
            Ok(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            ))
        );
        assert!(parse_target("@").is_err());
        assert!(parse_target("vsock:2:1234")
            .unwrap_err()
            .contains("only unix sockets"));
        assert!(parse_target("relative/path").is_err());
    }

    #[test]
    fn messages_are_lines_of_assignments() {
        assert_eq!(
            message(&[("READY", "1"), ("STATUS", "generation 1; 2 workers")]),
            "READY=1\nSTATUS=generation 1; 2 workers\n"
        );
        assert_eq!(message(&[("STATUS", "a\nb")]), "STATUS=a b\n");
        assert_eq!(message(&[]), "");
    }

    #[test]
    fn watchdog_only_for_us() {
        let s = Some("2000000");
        assert_eq!(watchdog_period(s, None, 42), Some(Duration::from_secs(2)));
        assert_eq!(
            watchdog_period(s, Some("42"), 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_period(s, Some("43"), 42), None);
        assert_eq!(watchdog_period(s, Some("x"), 42), None);
        assert_eq!(watchdog_period(None, None, 42), None);
        assert_eq!(watchdog_period(Some("0"), None, 42), None);
        assert_eq!(watchdog_period(Some("-5"), None, 42), None);
    }

    #[test]
    fn monotonic_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_usec();
        assert!(b >= a + 2000, "{a} then {b}");
    }

    fn roundtrip(listener: &UnixDatagram, target: &Target) {
        let n = Notifier::new(target).unwrap();
        n.send(&[("READY", "1"), ("STATUS", "up")]).unwrap();
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up\n");
    }

    #[test]
    fn sends_to_a_socket_file() {
        let dir = std::env::temp_dir().join(format!("sw-notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        roundtrip(&listener, &parse_target(path.to_str().unwrap()).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("statewall-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        roundtrip(&listener, &parse_target(&format!("@{name}")).unwrap());
    }

    #[test]
    fn nobody_listening_is_an_error_not_a_hang() {
        let t = Target::Abstract(format!("statewall-nobody-{}", std::process::id()).into_bytes());
        let n = Notifier::new(&t).unwrap();
        assert!(n.send(&[("READY", "1")]).is_err());
    }
}
