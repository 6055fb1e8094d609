//! [`XskPorts`]: one worker's AF_XDP sockets over one shared UMEM, and the ring data path
//! they run ([`PortIo`]: receive, send, fill, complete, wait). Opening them is `open.rs`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use xsk_rs::umem::frame::DataMut;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::sys;
use super::{FrameCounts, Pool, PortIo, PortMode};

/// Ids that tie frames to the set that made them (checked on every use: a frame of another
/// UMEM would name memory this one does not own).
pub(super) static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// How long to wait for a queue that a just-closed socket still holds.
pub(super) const QUEUE_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// Port number of an allocated frame (it arrived on none).
pub(super) const NO_PORT: u16 = u16::MAX;

/// `XDP_PACKET_HEADROOM` (include/uapi/linux/bpf.h): the kernel keeps this much of each
/// frame in front of the packet for XDP programs.
pub(super) const XDP_HEADROOM: u32 = 256;

/// A frame of an [`XskPorts`]: a descriptor into its UMEM, held by the caller.
#[derive(Debug)]
#[must_use = "a frame not sent or released is lost to the worker"]
pub struct XskFrame {
    desc: FrameDesc,
    port: u16,
    owner: u32,
}

impl XskFrame {
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-port counters (user space's view; [`XskPorts::kernel_stats`] has the kernel's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub completed: u64,
    pub filled: u64,
    /// Frames `send` could not place because the TX ring was full.
    pub tx_ring_full: u64,
    /// `sendto` calls made to start transmission (`need_wakeup` set on the TX ring, or
    /// bound without `need_wakeup`).
    pub tx_kicks: u64,
    /// `recvfrom` calls made because the fill ring asked for a wakeup.
    pub rx_kicks: u64,
    /// Times the TX ring's `need_wakeup` flag was found clear when a kick would otherwise
    /// have been made (syscalls saved).
    pub tx_kicks_saved: u64,
    /// Times `recv` found nothing while the fill ring's flag was clear (no syscall needed).
    pub rx_kicks_saved: u64,
}

/// The kernel's per-socket counters (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons than a full ring or an empty fill ring.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full (the worker was too slow).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

pub(super) struct Port {
    pub(super) mode: PortMode,
    pub(super) tx: TxQueue,
    pub(super) rx: RxQueue,
    pub(super) fq: FillQueue,
    pub(super) cq: CompQueue,
    pub(super) fd: i32,
    pub(super) tx_size: u32,
    pub(super) fill_size: u32,
    pub(super) stats: PortStats,
}

/// One worker's AF_XDP ports over one UMEM. See the [module docs](super).
pub struct XskPorts {
    pub(super) id: u32,
    pub(super) ports: Vec<Port>,
    pub(super) pool: Pool<FrameDesc>,
    /// Descriptor scratch for ring transfers (one ring's worth), so nothing allocates.
    pub(super) scratch: Vec<FrameDesc>,
    pub(super) pollfds: Vec<libc::pollfd>,
    pub(super) capacity: usize,
    // Last: the sockets above hold their own handles on it, but dropping it after them
    // keeps the order obvious.
    pub(super) umem: Umem,
}

impl std::fmt::Debug for XskPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("XskPorts")
            .field("id", &self.id)
            .field("ports", &self.modes().collect::<Vec<_>>())
            .field("counts", &self.pool.counts())
            .finish_non_exhaustive()
    }
}

impl XskPorts {
    /// What each port got (attach mode, zero-copy or copy and why).
    pub fn modes(&self) -> impl Iterator<Item = &PortMode> {
        self.ports.iter().map(|p| &p.mode)
    }

    pub fn mode(&self, port: usize) -> &PortMode {
        &self.ports[port].mode
    }

    pub fn stats(&self, port: usize) -> PortStats {
        self.ports[port].stats
    }

    pub fn kernel_stats(&self, port: usize) -> io::Result<KernelStats> {
        let s = self.ports[port].rx.fd().xdp_statistics()?;
        Ok(KernelStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }

    #[inline]
    fn check(&self, f: &XskFrame) {
        assert_eq!(
            f.owner, self.id,
            "a frame of another XskPorts (each worker's frames belong to its own UMEM)"
        );
    }

    /// Wake the kernel to transmit what is on `port`'s TX ring, if it asks to be woken
    /// (always, when bound without `need_wakeup`).
    fn kick_tx(p: &mut Port) {
        if !p.mode.need_wakeup || p.tx.needs_wakeup() {
            // Errors other than "try again" (ENOBUFS, EAGAIN, EBUSY, ENETDOWN, which xsk-rs
            // swallows) would mean a broken socket; the completion ring then stays short and
            // counts().tx shows it.
            let _ = p.tx.wakeup();
            p.stats.tx_kicks += 1;
        } else {
            p.stats.tx_kicks_saved += 1;
        }
    }
}

impl PortIo for XskPorts {
    type Frame = XskFrame;
    type BytesMut<'a> = DataMut<'a>;

    fn port_count(&self) -> usize {
        self.ports.len()
    }

    fn recv(&mut self, port: usize, out: &mut Vec<XskFrame>, max: usize) -> usize {
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        let n = max.min(self.scratch.len());
        let Some(scratch) = self.scratch.get_mut(..n) else {
            return 0;
        };
        // SAFETY: this socket was created from self.umem, so the RX ring names frames of it;
        // the kernel hands each over once, and the handles made below are the only ones.
        let got = unsafe { p.rx.consume(scratch) };
        if got == 0 {
            // The kernel may be waiting for a syscall to refill from the fill ring
            // (zero-copy drivers with need_wakeup); in copy mode it never asks.
            if p.mode.need_wakeup && p.fq.needs_wakeup() {
                sys::kick_rx(p.fd);
                p.stats.rx_kicks += 1;
            } else {
                p.stats.rx_kicks_saved += 1;
            }
            return 0;
        }
        p.stats.rx_frames += got as u64;
        let fill = &mut self.pool.fill[port];
        debug_assert!(*fill as usize >= got);
        *fill = fill.saturating_sub(got as u32);
        self.pool.held += got as u32;
        let (id, port) = (self.id, port as u16);
        out.extend(scratch.iter().take(got).map(|&desc| XskFrame {
            desc,
            port,
            owner: id,
        }));
        got
    }

    #[inline]
    fn data(&self, frame: &XskFrame) -> &[u8] {
        self.check(frame);
        // SAFETY: the descriptor names a frame of self.umem (owner checked) that the caller
        // holds: it is in no ring, so the kernel neither reads nor writes it until the handle
        // is given back (send/release take it by value, under `&mut self`, which ends this
        // borrow first).
        unsafe { self.umem.data(&frame.desc) }.contents()
    }

    fn alloc(&mut self) -> Option<XskFrame> {
        let desc = self.pool.free.pop()?;
        self.pool.held += 1;
        let mut f = XskFrame {
            desc,
            port: NO_PORT,
            owner: self.id,
        };
        self.set_len(&mut f, 0);
        Some(f)
    }

    fn set_len<'a>(&'a mut self, frame: &'a mut XskFrame, len: usize) -> DataMut<'a> {
        let mut d = self.data_mut(frame);
        d.cursor().set_pos(len);
        d
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn send(&mut self, port: usize, frames: &mut Vec<XskFrame>) -> usize {
        let id = self.id;
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        let want = frames.len().min(self.scratch.len());
        if want == 0 {
            return 0;
        }
        let room = (p.tx.nb_free(want as u32) as usize).min(want);
        if room < frames.len() {
            p.stats.tx_ring_full += (frames.len() - room) as u64;
        }
        if room == 0 {
            // The kernel may be sitting on a full ring waiting for a kick.
            Self::kick_tx(p);
            return 0;
        }
        for (s, f) in self.scratch.iter_mut().zip(frames.iter()).take(room) {
            assert_eq!(f.owner, id, "a frame of another XskPorts");
            *s = f.desc;
        }
        // SAFETY: each descriptor is a frame of self.umem (owner checked) held by the caller,
        // so in no other ring; the handles are removed from `frames` below, so none can be
        // used again until the completion ring returns the frame.
        let sent = unsafe { p.tx.produce(self.scratch.get(..room).unwrap_or_default()) };
        frames.drain(..sent);
        p.stats.tx_frames += sent as u64;
        self.pool.held -= sent as u32;
        self.pool.tx[port] += sent as u32;
        if sent > 0 {
            Self::kick_tx(p);
        }
        sent
    }

    fn release(&mut self, frames: &mut Vec<XskFrame>) {
        for f in frames.drain(..) {
            assert_eq!(f.owner, self.id, "a frame of another XskPorts");
            self.pool.free.push(f.desc);
            self.pool.held -= 1;
        }
    }

    fn complete(&mut self, port: usize) -> usize {
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        // SAFETY: the completion ring of a socket of self.umem returns descriptors of frames
        // we put on its TX ring; the kernel is done with each, and it goes to the free list.
        let got = unsafe { p.cq.consume(&mut self.scratch) };
        self.pool
            .free
            .extend(self.scratch.iter().take(got).copied());
        p.stats.completed += got as u64;
        let tx = &mut self.pool.tx[port];
        debug_assert!(*tx as usize >= got);
        *tx = tx.saturating_sub(got as u32);
        // Copy mode transmits a bounded batch per sendto (32 frames, TX_BATCH_SIZE in
        // net/xdp/xsk.c): kick again while descriptors wait on the ring.
        if *tx > 0 && p.tx.nb_free_exact() < p.tx_size {
            Self::kick_tx(p);
        }
        got
    }

    fn fill(&mut self, port: usize) -> usize {
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        let room = p.fq.nb_free(p.fill_size);
        let n = self.pool.fill_quota(port, room);
        if n == 0 {
            return 0;
        }
        let start = self.pool.free.len() - n;
        // SAFETY: free-list frames belong to self.umem and are in no ring, with no handle
        // outstanding; the ones produced are removed from the free list below.
        let got = unsafe {
            p.fq.produce(self.pool.free.get(start..).unwrap_or_default())
        };
        // produce() places all of them or none.
        if got == n {
            self.pool.free.truncate(start);
            self.pool.fill[port] += got as u32;
            p.stats.filled += got as u64;
        }
        got
    }

    fn wait(&mut self, timeout_ms: i32, bell: BorrowedFd<'_>) -> io::Result<bool> {
        // Descriptors still on a TX ring (copy mode sends 32 a kick, `complete` kicks again):
        // a wait for POLLIN would leave them there, so keep the worker going.
        for (p, &tx) in self.ports.iter_mut().zip(&self.pool.tx) {
            if tx > 0 && p.tx.nb_free_exact() < p.tx_size {
                return Ok(true);
            }
        }
        if let Some(last) = self.pollfds.last_mut() {
            last.fd = bell.as_raw_fd();
        }
        sys::poll_in(&mut self.pollfds, timeout_ms)
    }
}

/// What the runtime's [`PortIo`] does not need.
impl XskPorts {
    /// The port a frame arrived on (`None` for an allocated frame).
    pub fn rx_port(&self, frame: &XskFrame) -> Option<usize> {
        (frame.port != NO_PORT).then_some(frame.port as usize)
    }

    /// The frame's bytes, to rewrite in place.
    pub fn data_mut<'a>(&'a mut self, frame: &'a mut XskFrame) -> DataMut<'a> {
        self.check(frame);
        // SAFETY: as in `data`; `&mut` on both the set and the handle makes this the only
        // access to the frame's bytes.
        unsafe { self.umem.data_mut(&mut frame.desc) }
    }

    /// Where the frames are (the books always balance; `held` is what the caller has).
    pub fn counts(&self) -> FrameCounts {
        self.pool.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn ports_and_frames_move_to_a_worker_thread() {
        assert_send::<XskPorts>();
        assert_send::<XskFrame>();
    }
}
