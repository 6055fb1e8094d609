//! [`MemPorts`]: [`PortIo`] over memory, for tests and benches. Not exposed by the binary.
//!
//! A [`MemNet`] stands for the wires: a test injects frames on (port, queue) from any thread
//! and collects what the runtime transmitted, per port, in order. Worker *q* gets
//! `net.ports_for(q)`, which receives from queue *q* of every port. Frames are plain
//! `Vec<u8>`s; the test side takes locks, the runtime's own path does not.

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::Duration;

use super::io::PortIo;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Test plumbing: a panicking test thread must not hide the next assertion behind poison.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One transmitted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The worker (queue) that transmitted it.
    pub queue: usize,
    pub data: Vec<u8>,
}

/// The wires of an in-memory gateway: `ports` ports with `queues` queues each.
#[derive(Debug)]
pub struct MemNet {
    ports: usize,
    queues: usize,
    /// `rx[port * queues + queue]`: frames waiting to be received.
    rx: Vec<Mutex<VecDeque<Vec<u8>>>>,
    tx: Vec<Mutex<Vec<Sent>>>,
    /// The thread of each queue's worker once it waited, to wake on inject.
    waiters: Vec<Mutex<Option<Thread>>>,
    /// Frames a `send` call takes at most (the TX ring's free room).
    tx_room: usize,
}

impl MemNet {
    pub fn new(ports: usize, queues: usize) -> Arc<MemNet> {
        MemNet::with_tx_room(ports, queues, usize::MAX)
    }

    /// A net whose TX rings take at most `tx_room` frames per `send` (to provoke `tx_full`).
    pub fn with_tx_room(ports: usize, queues: usize, tx_room: usize) -> Arc<MemNet> {
        Arc::new(MemNet {
            ports,
            queues,
            rx: (0..ports * queues).map(|_| Mutex::default()).collect(),
            tx: (0..ports).map(|_| Mutex::default()).collect(),
            waiters: (0..queues).map(|_| Mutex::default()).collect(),
            tx_room,
        })
    }

    pub fn ports(&self) -> usize {
        self.ports
    }

    pub fn queues(&self) -> usize {
        self.queues
    }

    /// A frame arrives on `queue` of `port`.
    pub fn inject(&self, port: usize, queue: usize, frame: &[u8]) {
        lock(&self.rx[port * self.queues + queue]).push_back(frame.to_vec());
        if let Some(t) = lock(&self.waiters[queue]).as_ref() {
            t.unpark();
        }
    }

    /// Frames still waiting to be received, all ports and queues.
    pub fn pending(&self) -> usize {
        self.rx.iter().map(|q| lock(q).len()).sum()
    }

    /// What `port` transmitted since the last call, in order.
    pub fn take_sent(&self, port: usize) -> Vec<Sent> {
        std::mem::take(&mut *lock(&self.tx[port]))
    }

    /// Frames transmitted on `port` and not yet taken.
    pub fn sent_count(&self, port: usize) -> usize {
        lock(&self.tx[port]).len()
    }

    /// Worker `queue`'s IO: queue `queue` of every port.
    pub fn ports_for(self: &Arc<Self>, queue: usize) -> MemPorts {
        assert!(queue < self.queues, "queue {queue} of {}", self.queues);
        MemPorts {
            net: Arc::clone(self),
            queue,
            bufs: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// A frame of [`MemPorts`]: an index into its buffers.
#[derive(Debug)]
pub struct MemFrame(usize);

/// One worker's view of a [`MemNet`].
#[derive(Debug)]
pub struct MemPorts {
    net: Arc<MemNet>,
    queue: usize,
    /// Frame buffers; a frame is an index.
    bufs: Vec<Vec<u8>>,
    /// Indices of free buffers.
    free: Vec<usize>,
}

/// Bytes a [`MemPorts`] frame holds (an AF_XDP frame of 4096 bytes less its headroom).
pub const MEM_FRAME_CAPACITY: usize = 3840;

impl MemPorts {
    fn slot(&mut self, data: Vec<u8>) -> MemFrame {
        match self.free.pop() {
            Some(i) => {
                self.bufs[i] = data;
                MemFrame(i)
            }
            None => {
                self.bufs.push(data);
                MemFrame(self.bufs.len() - 1)
            }
        }
    }
}

impl PortIo for MemPorts {
    type Frame = MemFrame;
    type BytesMut<'a> = &'a mut [u8];

    fn port_count(&self) -> usize {
        self.net.ports
    }

    fn recv(&mut self, port: usize, out: &mut Vec<MemFrame>, max: usize) -> usize {
        let net = Arc::clone(&self.net);
        let mut q = lock(&net.rx[port * net.queues + self.queue]);
        let n = max.min(q.len());
        for data in q.drain(..n) {
            let f = self.slot(data);
            out.push(f);
        }
        n
    }

    fn data(&self, frame: &MemFrame) -> &[u8] {
        &self.bufs[frame.0]
    }

    fn alloc(&mut self) -> Option<MemFrame> {
        Some(self.slot(Vec::with_capacity(MEM_FRAME_CAPACITY)))
    }

    fn set_len<'a>(&'a mut self, frame: &'a mut MemFrame, len: usize) -> &'a mut [u8] {
        let b = &mut self.bufs[frame.0];
        b.resize(len.min(MEM_FRAME_CAPACITY), 0);
        b
    }

    fn capacity(&self) -> usize {
        MEM_FRAME_CAPACITY
    }

    fn send(&mut self, port: usize, frames: &mut Vec<MemFrame>) -> usize {
        let n = frames.len().min(self.net.tx_room);
        let net = Arc::clone(&self.net);
        let mut tx = lock(&net.tx[port]);
        for f in frames.drain(..n) {
            let data = std::mem::take(&mut self.bufs[f.0]);
            self.free.push(f.0);
            tx.push(Sent {
                queue: self.queue,
                data,
            });
        }
        n
    }

    fn release(&mut self, frames: &mut Vec<MemFrame>) {
        for f in frames.drain(..) {
            self.bufs[f.0] = Vec::new();
            self.free.push(f.0);
        }
    }

    fn complete(&mut self, _port: usize) -> usize {
        0
    }

    fn fill(&mut self, _port: usize) -> usize {
        0
    }

    /// Parks: the doorbell's ringer unparks the thread as well (`WorkerSlot::wake`).
    fn wait(&mut self, timeout_ms: i32, _bell: BorrowedFd<'_>) -> io::Result<bool> {
        {
            let mut w = lock(&self.net.waiters[self.queue]);
            if w.is_none() {
                *w = Some(thread::current());
            }
        }
        let any = |net: &MemNet, queue: usize| {
            (0..net.ports).any(|p| !lock(&net.rx[p * net.queues + queue]).is_empty())
        };
        if any(&self.net, self.queue) {
            return Ok(true);
        }
        let ms = u64::try_from(timeout_ms).unwrap_or(1000);
        thread::park_timeout(Duration::from_millis(ms));
        Ok(any(&self.net, self.queue))
    }
}
