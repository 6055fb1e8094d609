//! `log` rules (iptables' `-j LOG`): what the packet path records and how a line is written.
//!
//! On the packet path a `log` rule that matches copies what its line needs into a
//! [`LogRecord`] of the pipeline's [`LogRing`]: fixed-size, allocated once, no lock, no
//! syscall; when the ring is full the record is counted as lost. The runtime drains the
//! ring after each batch and hands the records to a thread that writes them
//! ([`format::line`], the kernel's format) away from the packet path.

pub mod format;

use config::log::{LogOptions, MAX_PREFIX};

use crate::packet::{IpFamily, PacketMeta};
use crate::pipeline::StageId;

/// Frame bytes kept per record: Ethernet with two VLAN tags (22), an IPv4 header with
/// options (60) or IPv6 with extension headers, and a TCP header with options (60).
pub const SNAP: usize = 192;
/// Records a pipeline holds between two drains (a batch logs at most this many lines).
pub const RING: usize = 256;

/// Flags of [`LogRecord::extras`].
pub mod extras {
    pub const TCP_SEQUENCE: u8 = 1;
    pub const TCP_OPTIONS: u8 = 2;
    pub const IP_OPTIONS: u8 = 4;
}

/// One logged packet: the rule's options and the start of the frame.
#[derive(Clone, Copy)]
pub struct LogRecord {
    /// Engine time (ns) of the batch.
    pub time: u64,
    /// Stage and rule that logged.
    pub stage: StageId,
    pub rule: u32,
    /// The packet's mark when it was logged (`MARK=`, when not 0).
    pub mark: u32,
    pub in_port: u8,
    pub out_port: Option<u8>,
    /// Syslog level (0-7).
    pub level: u8,
    /// [`extras`] flags.
    pub extras: u8,
    prefix_len: u8,
    prefix: [u8; MAX_PREFIX],
    /// The frame's length on the wire.
    pub wire_len: u32,
    pub family: IpFamily,
    pub l3_offset: u16,
    pub l4_offset: u16,
    pub proto: u8,
    snap_len: u16,
    snap: [u8; SNAP],
}

impl std::fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("LogRecord")
            .field("time", &self.time)
            .field("stage", &self.stage)
            .field("rule", &self.rule)
            .field("prefix", &String::from_utf8_lossy(self.prefix()))
            .field("wire_len", &self.wire_len)
            .finish_non_exhaustive()
    }
}

impl LogRecord {
    const EMPTY: LogRecord = LogRecord {
        time: 0,
        stage: StageId::None,
        rule: 0,
        mark: 0,
        in_port: 0,
        out_port: None,
        level: 4,
        extras: 0,
        prefix_len: 0,
        prefix: [0; MAX_PREFIX],
        wire_len: 0,
        family: IpFamily::V4,
        l3_offset: 0,
        l4_offset: 0,
        proto: 0,
        snap_len: 0,
        snap: [0; SNAP],
    };

    /// The rule's prefix (validated: printable, at most [`MAX_PREFIX`] bytes).
    pub fn prefix(&self) -> &[u8] {
        self.prefix
            .get(..usize::from(self.prefix_len))
            .unwrap_or_default()
    }

    /// The frame's first bytes (at most [`SNAP`]).
    pub fn snap(&self) -> &[u8] {
        self.snap
            .get(..usize::from(self.snap_len))
            .unwrap_or_default()
    }
}

/// Where a packet is logged: the stage, the ports, the time.
#[derive(Debug, Clone, Copy)]
pub struct LogPlace {
    pub time: u64,
    pub stage: StageId,
    pub in_port: u8,
    pub out_port: Option<u8>,
}

/// A pipeline's records since the last drain.
pub struct LogRing {
    records: Box<[LogRecord]>,
    len: usize,
    /// Records lost to a full ring since the pipeline started.
    pub lost: u64,
    /// Records written since the pipeline started.
    pub logged: u64,
}

impl std::fmt::Debug for LogRing {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("LogRing")
            .field("len", &self.len)
            .field("lost", &self.lost)
            .field("logged", &self.logged)
            .finish_non_exhaustive()
    }
}

impl Default for LogRing {
    fn default() -> Self {
        LogRing {
            records: vec![LogRecord::EMPTY; RING].into_boxed_slice(),
            len: 0,
            lost: 0,
            logged: 0,
        }
    }
}

impl LogRing {
    /// Record that rule `rule` (with `opts`) logged the packet `m` of `frame`.
    #[inline]
    pub fn record(
        &mut self,
        at: LogPlace,
        rule: u32,
        opts: &LogOptions,
        m: &PacketMeta,
        frame: &[u8],
        mark: u32,
    ) {
        let Some(r) = self.records.get_mut(self.len) else {
            self.lost += 1;
            return;
        };
        self.len += 1;
        self.logged += 1;
        r.time = at.time;
        r.stage = at.stage;
        r.rule = rule;
        r.mark = mark;
        r.in_port = at.in_port;
        // Only FORWARD's stages know where the packet goes: raw and mangle are
        // PREROUTING's, where the kernel logs `OUT=` empty.
        r.out_port = at
            .out_port
            .filter(|_| matches!(at.stage, StageId::MangleForward | StageId::Forward));
        r.level = opts.level.number();
        r.extras = [
            (opts.tcp_sequence, extras::TCP_SEQUENCE),
            (opts.tcp_options, extras::TCP_OPTIONS),
            (opts.ip_options, extras::IP_OPTIONS),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit);
        let prefix = opts.prefix.as_deref().unwrap_or_default().as_bytes();
        let n = prefix.len().min(MAX_PREFIX);
        r.prefix_len = n as u8;
        r.prefix[..n].copy_from_slice(&prefix[..n]);
        r.wire_len = frame.len() as u32;
        r.family = m.family;
        r.l3_offset = m.l3_offset;
        r.l4_offset = m.l4_offset;
        r.proto = m.proto;
        let n = frame.len().min(SNAP);
        r.snap_len = n as u16;
        r.snap[..n].copy_from_slice(&frame[..n]);
    }

    /// The records since the last drain, oldest first; the ring is empty afterwards.
    pub fn drain(&mut self) -> impl Iterator<Item = &LogRecord> {
        let n = std::mem::take(&mut self.len);
        self.records[..n].iter()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
