//! The sync link's socket: UDP, unicast to one peer or an IPv4 multicast group, on an
//! ordinary socket of the sync interface (never through AF_XDP). Receiving waits at most a
//! few milliseconds (the sync thread has timers and rings to serve); sending blocks while
//! the socket's buffer is full, which paces a bulk send to what the link takes.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use config::sync::SyncConfig;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;

/// Largest datagram read.
pub const RECV_MAX: usize = 65_536;

#[derive(Debug)]
pub(crate) struct Link {
    sock: UdpSocket,
    dest: SocketAddr,
    /// Unicast: only the peer's datagrams are taken.
    peer: Option<IpAddr>,
    /// Multicast: our own address (our datagrams, should the group loop them back).
    me: Option<IpAddr>,
    /// What `status` shows: `LOCAL -> PEER`.
    pub name: String,
}

/// Why a datagram was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// From an address other than the peer's.
    Stranger,
}

impl Link {
    pub fn open(cfg: &SyncConfig) -> io::Result<Link> {
        let sock = UdpSocket::bind(cfg.bind_addr()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot bind the sync socket to {}: {e} (is the address on the sync link's interface, the port free?)",
                    cfg.bind_addr()
                ),
            )
        })?;
        let dest = cfg.send_addr();
        let (peer, me, name) = match (&cfg.udp, &cfg.multicast) {
            (Some(u), _) => (
                Some(u.peer.ip()),
                None,
                format!("udp {} -> {}", u.local, u.peer),
            ),
            (None, Some(m)) => {
                sock.join_multicast_v4(&m.group, &m.interface)?;
                rustix::net::sockopt::set_ip_multicast_if(sock.as_fd(), &m.interface)?;
                sock.set_multicast_loop_v4(false)?;
                (
                    None,
                    Some(IpAddr::V4(m.interface)),
                    format!("multicast {}:{} on {}", m.group, m.port, m.interface),
                )
            }
            (None, None) => return Err(io::Error::other("sync has no link")),
        };
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Link {
            sock,
            dest,
            peer,
            me,
            name,
        })
    }

    /// Wait up to `wait` for a datagram to read.
    pub fn wait(&self, wait: Duration) -> bool {
        let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
        let t = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        });
        matches!(poll(&mut fds, Some(&t)), Ok(n) if n > 0)
    }

    /// The next datagram waiting, without waiting: its length, or why it is not taken
    /// (read and dropped); `None` when there is none.
    pub fn recv(&self, buf: &mut [u8]) -> Option<Result<usize, Refused>> {
        let Ok((n, _, from)) =
            rustix::net::recvfrom(&self.sock, &mut *buf, rustix::net::RecvFlags::DONTWAIT)
        else {
            return None;
        };
        let from_ip = from
            .and_then(|a| SocketAddr::try_from(a).ok())
            .map(|a| a.ip());
        let stranger = match (self.peer, self.me) {
            (Some(p), _) => from_ip != Some(p),
            (None, Some(me)) => from_ip == Some(me),
            (None, None) => false,
        };
        Some(if stranger {
            Err(Refused::Stranger)
        } else {
            Ok(n.min(buf.len()))
        })
    }

    pub fn send(&self, d: &[u8]) -> io::Result<()> {
        self.sock.send_to(d, self.dest).map(|_| ())
    }
}
