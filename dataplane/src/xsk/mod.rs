//! AF_XDP ports: the runtime's packet IO (DESIGN.md §2-3).
//!
//! One worker owns one [`XskPorts`]: a UMEM (the frame memory the kernel and the worker share)
//! and one AF_XDP socket per port, each bound to queue *i* of its interface. Every socket of
//! the worker uses the same UMEM, so a frame received on port A is transmitted on port B by
//! handing its descriptor to B's TX ring: no copy in user space. (In the kernel's copy mode,
//! which is all veth offers, the kernel still copies between its skbs and the UMEM.) Each
//! (interface, queue) pair has its own fill and completion rings, as the kernel requires of
//! a UMEM shared across devices (`XDP_SHARED_UMEM`, Linux ≥ 5.10).
//!
//! # Frames
//!
//! A frame is always in exactly one place, and [`FrameCounts`] says how many are where:
//! the free list, a port's fill ring (the kernel holds it for receive), the caller's hands
//! (received or allocated, not yet sent or released), or a port's TX ring until its
//! completion comes back. [`XskFrame`] handles are neither `Clone` nor `Copy`, and every
//! operation takes them by value or out of a `Vec`, so a frame cannot be handed to the kernel
//! twice. Losing a handle (dropping it without [`PortIo::release`]) leaks the frame;
//! [`XskPorts::counts`] shows it (`held`).
//!
//! # The loop a worker runs
//!
//! [`XskPorts`] implements the runtime's IO seam, [`PortIo`] (whose in-memory twin is
//! `runtime::mem::MemPorts`):
//!
//! ```text
//! io.fill(p)                          // top the fill ring up from the free list
//! io.recv(p, &mut batch, 64)          // frames from RX, as handles into the UMEM
//! pipeline.process_one(now, &Packet { frame: io.data(&f), in_port })
//! io.send(q, &mut accepted)           // onto the peer port's TX ring (wakes the kernel if asked)
//! io.release(&mut dropped)            // back to the free list
//! io.complete(q)                      // TX completions back to the free list
//! ```
//!
//! # Modes
//!
//! [`PortConfig`] takes the config's `xdp_mode` (`auto|native|skb`) and `zero_copy`
//! (`auto|on|off`); [`XskPorts::mode`] reports what was obtained and, in copy mode, why.
//! dataplane/docs/xsk.md records what veth does.
//!
//! # Unsafe
//!
//! This module is the one place in `dataplane` where `unsafe` is allowed (the workspace
//! denies it; the `expect` below lifts that here only). The FFI calls are in `sys.rs`; the
//! UMEM accesses and ring operations are in `ports.rs`. Each block says why it is sound. (The
//! engine crate's only `unsafe`, its prefetch and huge-page advice, is `engine::hints`.)

#![expect(
    unsafe_code,
    reason = "AF_XDP needs FFI (libxdp/libbpf, socket options) and raw UMEM access; kept in this module"
)]

mod mtu;
mod open;
mod ports;
mod sys;

use std::fmt;
use std::io;

pub use crate::runtime::io::PortIo;
pub use config::ruleset::{PortDetail, PortSpec, XdpMode, ZeroCopy};
pub use mtu::{check_mtu, interface_mtu, max_frame_len, max_mtu, mtu_fits, ETH_HLEN, VLAN_HLEN};
pub use ports::{KernelStats, PortStats, XskFrame, XskPorts};
pub use sys::{detach_xdp, enter_netns, hw_addr};

/// What goes wrong opening AF_XDP ports.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("no interface `{interface}` in this network namespace")]
    NoSuchInterface { interface: String },
    #[error(
        "{what} on `{interface}` was refused ({source}): AF_XDP needs root, or CAP_NET_RAW, \
         CAP_NET_ADMIN and CAP_SYS_ADMIN (libxdp opens its program and maps by id), and room under \
         RLIMIT_MEMLOCK (or CAP_IPC_LOCK) for the UMEM"
    )]
    Privileges {
        interface: String,
        what: &'static str,
        source: io::Error,
    },
    #[error(
        "this kernel has no AF_XDP sockets (socket(AF_XDP): {source}); it needs Linux ≥ 5.10 \
         built with CONFIG_XDP_SOCKETS"
    )]
    NoAfXdp { source: io::Error },
    #[error(
        "`{interface}` already has an XDP program ({program}, {mode} mode): statewall must see \
         every frame first; detach it (`ip link set dev {interface} xdp off`) or use another port"
    )]
    ProgramBusy {
        interface: String,
        program: String,
        mode: String,
    },
    #[error(
        "queue {queue} of `{interface}` is already bound by another AF_XDP socket (another \
         statewall, or another worker given the same queue)"
    )]
    QueueBusy { interface: String, queue: u32 },
    #[error(
        "`{interface}` has {queues} receive queue(s), numbered from 0: there is no queue {queue}"
    )]
    BadQueue {
        interface: String,
        queue: u32,
        queues: u32,
    },
    #[error("`{interface}`: XDP {mode} mode is not available: {reason}")]
    ModeUnavailable {
        interface: String,
        mode: &'static str,
        reason: String,
    },
    #[error("`{interface}`: zero_copy: on, but {reason}; use zero_copy: auto or off")]
    ZeroCopyUnavailable { interface: String, reason: String },
    #[error("`{interface}`: {what}: {source}{}", kernel_says(.detail))]
    Os {
        interface: String,
        what: &'static str,
        source: io::Error,
        /// What libbpf relayed from the kernel, if anything.
        detail: String,
    },
    #[error("AF_XDP configuration: {0}")]
    Config(String),
    /// The port's MTU is more than one UMEM frame holds (no multi-buffer AF_XDP yet).
    #[error(
        "{label}: MTU {mtu} is larger than the {max} bytes of IP packet an AF_XDP frame holds \
         here (a {frame_size}-byte frame less {headroom} of XDP headroom, {eth} of Ethernet \
         header and {vlan} of VLAN tag); set it to {suggest} with \
         `ip link set dev {interface} mtu {suggest}` (jumbo frames are not supported yet)",
        label = mtu::port_label(.port, .interface),
        headroom = ports::XDP_HEADROOM,
        eth = ETH_HLEN,
        vlan = VLAN_HLEN
    )]
    MtuTooLarge {
        /// The ruleset's name for the port.
        port: String,
        interface: String,
        mtu: u32,
        /// The largest MTU that fits ([`max_mtu`]).
        max: u32,
        frame_size: u32,
        /// The MTU to set instead: 1500, or `max` if that is less.
        suggest: u32,
    },
}

fn kernel_says(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" (libbpf: {detail})")
    }
}

/// One port to open: an interface, the queue this worker polls, and the modes asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub interface: String,
    pub queue: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Bind with `XDP_USE_NEED_WAKEUP`: the kernel says when it needs a syscall to make
    /// progress, so a busy loop makes none otherwise. On by default; off only to measure.
    pub need_wakeup: bool,
}

impl PortConfig {
    pub fn new(interface: impl Into<String>, queue: u32) -> Self {
        PortConfig {
            interface: interface.into(),
            queue,
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            need_wakeup: true,
        }
    }

    /// The port a ruleset's `ports:` entry names, for the worker polling `queue`.
    pub fn from_spec(spec: &PortSpec, queue: u32) -> Self {
        match spec {
            PortSpec::Interface(i) => PortConfig::new(i.clone(), queue),
            PortSpec::Detailed(d) => PortConfig {
                xdp_mode: d.xdp_mode,
                zero_copy: d.zero_copy,
                ..PortConfig::new(d.interface.clone(), queue)
            },
        }
    }
}

/// How many queues an interface offers AF_XDP (each socket needs a queue with a receive and
/// a transmit side), and where that number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCount {
    pub queues: u32,
    pub source: QueueSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSource {
    /// The driver's channels (`ethtool -l`, the `ETHTOOL_GCHANNELS` ioctl): combined channels,
    /// plus RX-only channels that have a TX-only twin.
    Channels,
    /// `/sys/class/net/IF/queues/`: the fewer of its `rx-*` and `tx-*` entries (drivers that
    /// report no channels: bridges, bonds, tun, ...).
    Sysfs,
}

impl fmt::Display for QueueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueSource::Channels => "ethtool channels",
            QueueSource::Sysfs => "sysfs queues",
        })
    }
}

/// The queues of `interface` (in this network namespace): its channel count where the driver
/// reports one, else what sysfs lists.
pub fn queue_count(interface: &str) -> Result<QueueCount, XskError> {
    if sys::if_index(interface).is_none() {
        return Err(XskError::NoSuchInterface {
            interface: interface.to_string(),
        });
    }
    if let Some(queues) = sys::channel_queues(interface).filter(|&n| n > 0) {
        return Ok(QueueCount {
            queues,
            source: QueueSource::Channels,
        });
    }
    match (sys::rx_queues(interface), sys::tx_queues(interface)) {
        (Some(rx), Some(tx)) if rx.min(tx) > 0 => Ok(QueueCount {
            queues: rx.min(tx),
            source: QueueSource::Sysfs,
        }),
        _ => Err(XskError::Config(format!(
            "`{interface}`: cannot count its queues: the driver reports no channels \
             (ethtool -l) and /sys/class/net/{interface}/queues/ is not readable here"
        ))),
    }
}

/// UMEM and ring dimensions for one worker. Ring sizes are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Bytes per frame: 2048 or 4096 (a page; the kernel's and libxdp's default).
    pub frame_size: u32,
    /// Frames in the UMEM; 0: enough for every port's fill and TX rings to be full at once
    /// plus one receive batch per port, so no ring starves another.
    pub frame_count: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        // libxdp's defaults (XSK_RING_{PROD,CONS}__DEFAULT_NUM_DESCS = 2048,
        // XSK_UMEM__DEFAULT_FRAME_SIZE = 4096).
        UmemConfig {
            frame_size: 4096,
            frame_count: 0,
            fill_size: 2048,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
        }
    }
}

impl UmemConfig {
    /// Bytes of locked memory (charged against RLIMIT_MEMLOCK without CAP_IPC_LOCK) the UMEM
    /// of one worker with `ports` ports takes.
    pub fn locked_bytes(&self, ports: usize) -> u64 {
        let frames = if self.frame_count == 0 {
            default_frame_count(self, ports)
        } else {
            self.frame_count
        };
        u64::from(frames) * u64::from(self.frame_size)
    }
}

/// Where the XDP program that feeds a socket runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before any skb exists (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic XDP, after the kernel has built an skb (`XDP_FLAGS_SKB_MODE`).
    Skb,
    /// Offloaded to the NIC.
    Hw,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
            AttachMode::Hw => "hw",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a port actually got, to log and report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMode {
    pub interface: String,
    pub queue: u32,
    /// The driver (`ethtool -i`), when the kernel says.
    pub driver: Option<String>,
    pub attach: AttachMode,
    pub zero_copy: bool,
    /// Why the port is in copy mode (`None` in zero-copy).
    pub copy_reason: Option<String>,
    pub need_wakeup: bool,
    /// Why `xdp_mode: auto` did not get native mode (`None` when it did, or was not asked).
    pub fallback: Option<String>,
    /// The XDP program was already attached (an earlier run's, or another worker's on the
    /// same interface) and was reused.
    pub reused_program: bool,
}

impl fmt::Display for PortMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} queue {}: {} XDP",
            self.interface, self.queue, self.attach
        )?;
        if let Some(d) = &self.driver {
            write!(f, " (driver {d})")?;
        }
        if let Some(why) = &self.fallback {
            write!(f, " [{why}]")?;
        }
        if self.zero_copy {
            f.write_str(", zero-copy")?;
        } else {
            f.write_str(", copy mode")?;
            if let Some(why) = &self.copy_reason {
                write!(f, " ({why})")?;
            }
        }
        if self.need_wakeup {
            f.write_str(", need_wakeup")?;
        }
        if self.reused_program {
            f.write_str(", reused the attached program")?;
        }
        Ok(())
    }
}

/// Where a worker's frames are. `total == free + fill + held + tx` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounts {
    pub total: u32,
    /// On the free list.
    pub free: u32,
    /// In fill rings (the kernel's, for receive), all ports.
    pub fill: u32,
    /// In the caller's hands: received or allocated, not yet sent or released.
    pub held: u32,
    /// Submitted for transmit, completion not yet seen, all ports.
    pub tx: u32,
}

impl FrameCounts {
    pub fn balanced(&self) -> bool {
        self.free + self.fill + self.held + self.tx == self.total
    }
}

/// How many frames a pool of ports needs for every fill and TX ring to be full at once,
/// plus one receive batch per port.
fn default_frame_count(c: &UmemConfig, ports: usize) -> u32 {
    (c.fill_size + c.tx_size + 64) * ports.max(1) as u32
}

/// The free list and the per-port frame counts.
#[derive(Debug)]
struct Pool<F> {
    free: Vec<F>,
    total: u32,
    fill: Vec<u32>,
    tx: Vec<u32>,
    held: u32,
    /// Each port's fill-ring share: the frames it may hold for receive.
    fill_share: u32,
}

impl<F> Pool<F> {
    fn new(frames: Vec<F>, ports: usize, fill_share: u32) -> Self {
        Pool {
            total: frames.len() as u32,
            free: frames,
            fill: vec![0; ports],
            tx: vec![0; ports],
            held: 0,
            fill_share,
        }
    }

    fn counts(&self) -> FrameCounts {
        FrameCounts {
            total: self.total,
            free: self.free.len() as u32,
            fill: self.fill.iter().sum(),
            held: self.held,
            tx: self.tx.iter().sum(),
        }
    }

    /// How many free frames `port`'s fill ring should get now, given `room` free slots.
    fn fill_quota(&self, port: usize, room: u32) -> usize {
        let want = self.fill_share.saturating_sub(self.fill[port]);
        want.min(room).min(self.free.len() as u32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_config_from_the_ruleset() {
        let p = PortConfig::from_spec(&PortSpec::Interface("veth-lan".into()), 1);
        assert_eq!(p, PortConfig::new("veth-lan", 1));
        assert_eq!(
            (p.xdp_mode, p.zero_copy, p.need_wakeup),
            (XdpMode::Auto, ZeroCopy::Auto, true)
        );
        let d = PortSpec::Detailed(PortDetail {
            interface: "eth1".into(),
            xdp_mode: XdpMode::Skb,
            zero_copy: ZeroCopy::Off,
        });
        let p = PortConfig::from_spec(&d, 0);
        assert_eq!(
            (p.interface.as_str(), p.xdp_mode, p.zero_copy),
            ("eth1", XdpMode::Skb, ZeroCopy::Off)
        );
    }

    #[test]
    fn mode_report_says_why_copy() {
        let m = PortMode {
            interface: "veth0".into(),
            queue: 0,
            driver: Some("veth".into()),
            attach: AttachMode::Native,
            zero_copy: false,
            copy_reason: Some("driver veth does not offer AF_XDP zero-copy".into()),
            need_wakeup: true,
            fallback: None,
            reused_program: false,
        };
        assert_eq!(
            m.to_string(),
            "veth0 queue 0: native XDP (driver veth), copy mode (driver veth does not offer AF_XDP zero-copy), need_wakeup"
        );
    }

    #[test]
    fn fill_rings_share_the_pool() {
        // 24 frames, fill rings of 16: the first port's ring takes 16, the second 8.
        let mut pool = Pool::new((0..24u32).collect(), 2, 16);
        assert_eq!(pool.fill_quota(0, 2048), 16);
        pool.free.truncate(8);
        pool.fill[0] = 16;
        assert_eq!(pool.fill_quota(0, 2048), 0);
        assert_eq!(pool.fill_quota(1, 2048), 8);
        // The ring's free room limits too.
        assert_eq!(pool.fill_quota(1, 3), 3);
        let c = pool.counts();
        assert_eq!((c.total, c.free, c.fill, c.held, c.tx), (24, 8, 16, 0, 0));
        assert!(c.balanced());
        pool.held = 1;
        assert!(!pool.counts().balanced());
    }

    #[test]
    fn default_frames_fill_every_ring() {
        let c = UmemConfig::default();
        assert_eq!(default_frame_count(&c, 2), 2 * (2048 + 2048 + 64));
    }

    #[test]
    fn errors_read_well() {
        let e = XskError::BadQueue {
            interface: "veth0".into(),
            queue: 3,
            queues: 1,
        };
        assert_eq!(
            e.to_string(),
            "`veth0` has 1 receive queue(s), numbered from 0: there is no queue 3"
        );
        let e = XskError::ProgramBusy {
            interface: "eth0".into(),
            program: "xdp_pass".into(),
            mode: "skb".into(),
        };
        assert!(
            e.to_string().contains("ip link set dev eth0 xdp off"),
            "{e}"
        );
    }
}
