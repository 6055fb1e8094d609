//! The control server: the control protocol (`config::protocol`) on a unix socket.
//!
//! One accept thread; one thread per client, at most `max_clients` at once (more get a
//! `busy` error). A client thread reads one request line at a time, at most `max_line`
//! bytes (longer: a `too_large` error, then the connection is closed, since the rest of the
//! line cannot be told from the next request), and waits at most `read_timeout` for it (a
//! silent client gets a `timeout` error and is closed). Garbage gets a structured error and
//! the connection stays usable. Requests run on the client's thread against the
//! [`RuntimeHandle`], which never blocks a worker: a slow client only ever slows itself.
//!
//! The socket's directory is created 0700 and the socket made 0600 (root only); a socket
//! file left by a crashed daemon is replaced, a live one is an error.

use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, BufRead, BufReader, ErrorKind as IoErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use config::protocol::{decode_request, ErrorKind, ErrorReply, Reply, MAX_REQUEST};

use super::handle::RuntimeHandle;
use super::join_within;

/// Limits of the control server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request line.
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_clients: usize,
    pub max_line: usize,
    /// A group whose members may use the socket too (`statewall run --control-group`): the
    /// socket becomes 0660 and its directory 0750, both of this gid. `None`: root only
    /// (0600 and 0700).
    pub group: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_clients: 128,
            max_line: MAX_REQUEST,
            group: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}: another statewall is listening on this control socket")]
    InUse { path: String },
    #[error("{path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        path: path.display().to_string(),
        what,
        source,
    }
}

/// A running control server; dropping it stops accepting and removes the socket.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// After an `accept` error (out of descriptors, say), how long the loop waits to retry.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);
/// How long `shutdown` waits for the accept loop to see its wake-up connection.
const STOP_WAIT: Duration = Duration::from_secs(2);

impl ControlServer {
    /// Listen on `path` and serve `handle`.
    pub fn bind(
        path: &Path,
        handle: RuntimeHandle,
        cfg: ServerConfig,
    ) -> Result<ControlServer, ServerError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let mut created_dir = false;
        if let Some(dir) = dir {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err(dir, "cannot create the socket's directory"))?;
                created_dir = true;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse {
                    path: path.display().to_string(),
                });
            }
            fs::remove_file(path).map_err(io_err(path, "cannot remove the stale socket"))?;
        }
        let listener = UnixListener::bind(path).map_err(io_err(path, "cannot listen"))?;
        fs::set_permissions(path, Permissions::from_mode(0o600))
            .map_err(io_err(path, "cannot make the socket 0600"))?;
        if let Some(gid) = cfg.group {
            share_with_group(path, dir, created_dir, gid)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("sw-control".into())
            .spawn(move || accept_loop(&listener, &handle, &cfg, &stop2))
            .map_err(io_err(path, "cannot start the control thread"))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting, remove the socket. Clients being served finish their request.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    /// The accept loop blocks in `accept` (no polling while idle): set the flag, then wake
    /// it with a connection of our own. Should that not reach it (the socket file was removed
    /// or replaced behind our back), the thread is left blocked rather than the caller.
    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let woke = UnixStream::connect(&self.path);
            let joined = join_within(t, STOP_WAIT);
            drop(woke);
            if joined {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Open the socket to `gid`: the socket 0660 of that group, and its directory 0750 of that
/// group when it is ours (created now, or an earlier run's: owned by whoever owns the new
/// socket, mode 0700 or 0750). Another directory (`/tmp`, say) is left as it is.
fn share_with_group(
    path: &Path,
    dir: Option<&Path>,
    created_dir: bool,
    gid: u32,
) -> Result<(), ServerError> {
    std::os::unix::fs::chown(path, None, Some(gid))
        .map_err(io_err(path, "cannot give the socket to the control group"))?;
    fs::set_permissions(path, Permissions::from_mode(0o660))
        .map_err(io_err(path, "cannot make the socket 0660"))?;
    let Some(dir) = dir else { return Ok(()) };
    let ours = created_dir
        || match (fs::metadata(dir), fs::metadata(path)) {
            (Ok(d), Ok(s)) => d.uid() == s.uid() && matches!(d.mode() & 0o7777, 0o700 | 0o750),
            _ => false,
        };
    if ours {
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io_err(
            dir,
            "cannot give the socket's directory to the control group",
        ))?;
        fs::set_permissions(dir, Permissions::from_mode(0o750))
            .map_err(io_err(dir, "cannot make the socket's directory 0750"))?;
    }
    Ok(())
}

/// A group name (from /etc/group) or a numeric gid, as `--control-group` takes it.
pub fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let table = fs::read_to_string("/etc/group").map_err(|e| {
        format!("group `{group}`: cannot read /etc/group ({e}); give a numeric gid")
    })?;
    table
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            Some((name, gid))
        })
        .find(|(name, _)| *name == group)
        .map(|(_, gid)| gid)
        .ok_or_else(|| {
            format!("group `{group}` is not in /etc/group; create it (groupadd {group}) or give a numeric gid")
        })
}

fn accept_loop(
    listener: &UnixListener,
    handle: &RuntimeHandle,
    cfg: &ServerConfig,
    stop: &AtomicBool,
) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            // The wake-up connection of `stop_now` (or a client that came with it).
            Ok(_) if stop.load(Ordering::SeqCst) => break,
            Ok((stream, _)) => {
                if active.fetch_add(1, Ordering::SeqCst) >= cfg.max_clients {
                    active.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.set_write_timeout(Some(cfg.write_timeout));
                    let _ = send(
                        &stream,
                        &Reply::error(
                            None,
                            ErrorReply::new(
                                ErrorKind::Busy,
                                format!(
                                    "{} clients are connected already; try again",
                                    cfg.max_clients
                                ),
                            ),
                        ),
                    );
                    continue;
                }
                let (h, c, a) = (handle.clone(), cfg.clone(), Arc::clone(&active));
                let spawned = thread::Builder::new()
                    .name("sw-control-client".into())
                    .spawn(move || {
                        serve_client(&stream, &h, &c);
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == IoErrorKind::Interrupted => {}
            Err(e) => {
                crate::log_warn!("control socket: accept: {e}");
                thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

fn send(mut stream: &UnixStream, r: &Reply) -> io::Result<()> {
    let mut line = r.to_line();
    line.push('\n');
    stream.write_all(line.as_bytes())
}

/// Why a line could not be read.
enum LineError {
    TooLarge,
    Timeout,
    Io,
}

/// Read one line (without its newline) of at most `max` bytes into `buf`; `Ok(false)` at a
/// clean end of stream.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> Result<bool, LineError> {
    buf.clear();
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                return Err(LineError::Timeout)
            }
            Err(_) => return Err(LineError::Io),
        };
        if chunk.is_empty() {
            // End of stream: a last line without newline still counts.
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = if done {
            &chunk[..take - 1]
        } else {
            &chunk[..take]
        };
        if buf.len() + body.len() > max {
            return Err(LineError::TooLarge);
        }
        buf.extend_from_slice(body);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

fn serve_client(stream: &UnixStream, handle: &RuntimeHandle, cfg: &ServerConfig) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(cfg.read_timeout)).is_err()
        || stream.set_write_timeout(Some(cfg.write_timeout)).is_err()
    {
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut reader, &mut buf, cfg.max_line) {
            Ok(false) | Err(LineError::Io) => return,
            Err(LineError::TooLarge) => {
                let _ = send(
                    stream,
                    &Reply::error(
                        None,
                        ErrorReply::new(
                            ErrorKind::TooLarge,
                            format!("request longer than {} bytes; closing", cfg.max_line),
                        ),
                    ),
                );
                return;
            }
            Err(LineError::Timeout) => {
                let _ = send(
                    stream,
                    &Reply::error(
                        None,
                        ErrorReply::new(
                            ErrorKind::Timeout,
                            format!("no complete request within {:?}; closing", cfg.read_timeout),
                        ),
                    ),
                );
                return;
            }
            Ok(true) => {}
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match std::str::from_utf8(&buf) {
            Err(_) => Reply::error(
                None,
                ErrorReply::new(ErrorKind::BadJson, "the request is not UTF-8 text"),
            ),
            Ok(line) => match decode_request(line) {
                Err(e) => e.reply(),
                Ok(req) => match handle.execute(&req.body) {
                    Ok(data) => Reply::ok(req.id, data),
                    Err(e) => Reply::error(Some(req.id), e),
                },
            },
        };
        if send(stream, &reply).is_err() {
            return;
        }
    }
}
