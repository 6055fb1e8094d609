//! A worker's doorbell: what wakes it from its wait on the rings when something other than a
//! frame needs it (a packet handed over by another worker, a control command, a new ruleset,
//! shutdown).
//!
//! A sleeping worker waits in `poll(2)` on its AF_XDP sockets, which a thread unpark cannot
//! interrupt; the doorbell is one more descriptor in that `poll`, readable once rung. It is a
//! non-blocking datagram socket pair: ringing sends one byte (a full socket means it is already
//! rung), the worker drains it after waking. With it, a sleeping worker needs no short timeout
//! to notice handoffs, and an idle gateway wakes a few times a second instead of a thousand.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct Doorbell {
    ring: UnixDatagram,
    wait: UnixDatagram,
    /// Set after each ring's byte is sent: `drain` reads the socket only then, so a wake-up
    /// by a frame or the timeout costs no extra system call.
    rung: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        let (ring, wait) = UnixDatagram::pair()?;
        ring.set_nonblocking(true)?;
        wait.set_nonblocking(true)?;
        Ok(Doorbell {
            ring,
            wait,
            rung: AtomicBool::new(false),
        })
    }

    /// Wake the worker if it waits, or make its next wait return at once.
    pub fn ring(&self) {
        // WouldBlock: the socket is full of earlier rings, which will wake it just the same.
        let _ = self.ring.send(&[1]);
        // After the send: a drain that sees the flag finds the byte (or a later one).
        self.rung.store(true, Ordering::SeqCst);
    }

    /// What to add to the `poll` set: readable while rung.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wait.as_fd()
    }

    /// Take back the rings (after a wait): the next wait sleeps again. Whether it was rung.
    /// A byte sent but not yet flagged stays until the next drain, whose wait it ends at
    /// once: one spurious wake-up, never a lost ring.
    pub fn drain(&self) -> bool {
        if !self.rung.swap(false, Ordering::SeqCst) {
            return false;
        }
        let mut buf = [0u8; 64];
        while self.wait.recv(&mut buf).is_ok() {}
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_drained_once() {
        let b = Doorbell::new().unwrap();
        assert!(!b.drain(), "a new doorbell is quiet");
        b.ring();
        b.ring();
        assert!(b.drain());
        assert!(!b.drain(), "drained: quiet again");
    }

    #[test]
    fn ringing_a_full_doorbell_is_harmless() {
        let b = Doorbell::new().unwrap();
        for _ in 0..100_000 {
            b.ring();
        }
        assert!(b.drain());
        assert!(!b.drain());
    }
}
