//! The one IO seam of the runtime (STYLE.md 4): a worker's ports, each polled on the
//! worker's queue, over one pool of frames.
//!
//! [`PortIo`] has the shape of the AF_XDP rings: frames are received from a port into the
//! caller's hands as opaque handles, read in place, and either moved onto a port's TX ring
//! ([`PortIo::send`]) or given back ([`PortIo::release`]); completions and the fill ring are
//! topped up between batches. Two types implement it: the AF_XDP ports
//! ([`crate::xsk::XskPorts`], the daemon's) and [`super::mem::MemPorts`] (frames in memory,
//! for tests and benches); `statewall-pktgen` drives the same trait.

use std::io;
use std::ops::DerefMut;
use std::os::fd::BorrowedFd;

/// One worker's packet IO: `port_count()` ports, the worker's queue of each.
///
/// Nothing here may allocate once the caller's `Vec`s have capacity, and nothing may block
/// except [`PortIo::wait`]. Implementations are moved into the worker's thread.
pub trait PortIo: Send + 'static {
    /// A received or allocated frame: a handle into the frame memory, owned by the caller.
    /// Frames are not `Clone`: a frame is sent or released exactly once.
    type Frame: Send;

    /// A frame's bytes, writable.
    type BytesMut<'a>: DerefMut<Target = [u8]>
    where
        Self: 'a;

    fn port_count(&self) -> usize;

    /// Append up to `max` frames received on `port` to `out`; the number appended.
    fn recv(&mut self, port: usize, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// A frame's bytes, from its Ethernet header.
    fn data(&self, frame: &Self::Frame) -> &[u8];

    /// A free frame to write a packet into (a packet handed over by another worker), length
    /// 0; `None` when every frame is in use.
    fn alloc(&mut self) -> Option<Self::Frame>;

    /// Set a frame's length (capped at `capacity()`) and return its bytes.
    fn set_len<'a>(&'a mut self, frame: &'a mut Self::Frame, len: usize) -> Self::BytesMut<'a>;

    /// Bytes a frame can hold.
    fn capacity(&self) -> usize;

    /// Move frames from the front of `frames` onto `port`'s TX ring, as many as fit; the rest
    /// stay in `frames`. The number taken.
    fn send(&mut self, port: usize, frames: &mut Vec<Self::Frame>) -> usize;

    /// Give frames back to the pool; empties `frames`.
    fn release(&mut self, frames: &mut Vec<Self::Frame>);

    /// Reap `port`'s TX completions (and kick the kernel if TX is pending); the number reaped.
    fn complete(&mut self, port: usize) -> usize;

    /// Top up `port`'s fill ring from the pool; the number moved.
    fn fill(&mut self, port: usize) -> usize;

    /// Block up to `timeout_ms` until some port may have frames or `bell` (the worker's
    /// doorbell) is readable; whether something is. Used only by an idle worker in adaptive
    /// poll mode; returning early is always allowed.
    fn wait(&mut self, timeout_ms: i32, bell: BorrowedFd<'_>) -> io::Result<bool>;
}
