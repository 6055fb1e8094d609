//! Opening an [`XskPorts`]: checks that need no privileges, the UMEM, one AF_XDP socket per
//! port with the XDP program attached in the best mode the interface allows (and, where it
//! falls back, why), and errors that name the errno's likely cause and its fix.
//!
//! The ring data path the opened ports run is `ports.rs`.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, QueueSize, SocketConfig, UmemConfig as XskUmemConfig, XdpFlags,
};
use xsk_rs::{FrameDesc, Socket, Umem};

use super::ports::{Port, PortStats, NEXT_ID, NO_PORT, QUEUE_RELEASE_WAIT, XDP_HEADROOM};
use super::sys::{self, XDP_ACT_BASIC, XDP_ACT_XSK_ZEROCOPY, XSK_PROG_NAME};
use super::{
    default_frame_count, AttachMode, Pool, PortConfig, PortMode, UmemConfig, XdpMode, XskError,
    XskPorts, ZeroCopy,
};

fn check_ring(what: &str, n: u32) -> Result<QueueSize, XskError> {
    QueueSize::new(n).map_err(|_| XskError::Config(format!("{what} {n} is not a power of two")))
}

impl XskPorts {
    pub fn open(ports: &[PortConfig], cfg: &UmemConfig) -> Result<Self, XskError> {
        static QUIET: Once = Once::new();
        QUIET.call_once(sys::capture_library_logs);

        if ports.is_empty() || ports.len() >= NO_PORT as usize {
            return Err(XskError::Config(format!(
                "{} ports: a worker takes 1 to {}",
                ports.len(),
                NO_PORT - 1
            )));
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i]
                .iter()
                .any(|q| q.interface == p.interface && q.queue == p.queue)
            {
                return Err(XskError::Config(format!(
                    "queue {} of `{}` is given twice",
                    p.queue, p.interface
                )));
            }
        }
        if cfg.frame_size != 2048 && cfg.frame_size != 4096 {
            return Err(XskError::Config(format!(
                "frame size {} (2048 or 4096)",
                cfg.frame_size
            )));
        }
        let (fill, comp) = (
            check_ring("fill ring size", cfg.fill_size)?,
            check_ring("completion ring size", cfg.comp_size)?,
        );
        let (rxs, txs) = (
            check_ring("RX ring size", cfg.rx_size)?,
            check_ring("TX ring size", cfg.tx_size)?,
        );
        // Everything that can be checked without privileges first, so that the error names
        // the real problem.
        for p in ports {
            preflight(p)?;
        }
        sys::probe_af_xdp().map_err(|e| {
            if sys::is_privilege(&e) {
                XskError::Privileges {
                    interface: ports[0].interface.clone(),
                    what: "opening an AF_XDP socket",
                    source: e,
                }
            } else {
                XskError::NoAfXdp { source: e }
            }
        })?;

        let frame_count = if cfg.frame_count == 0 {
            default_frame_count(cfg, ports.len())
        } else {
            cfg.frame_count
        };
        let umem_cfg = XskUmemConfig::builder()
            .frame_size(
                FrameSize::new(cfg.frame_size)
                    .map_err(|e| XskError::Config(format!("frame size: {e}")))?,
            )
            .fill_queue_size(fill)
            .comp_queue_size(comp)
            .build()
            .map_err(|e| XskError::Config(format!("UMEM: {e}")))?;
        let count =
            NonZeroU32::new(frame_count).ok_or_else(|| XskError::Config("0 frames".to_string()))?;
        // `auto` ports whose native attach the kernel refused are opened again in skb mode, on
        // a fresh UMEM: libxdp leaves a failed first socket bound to the UMEM's own descriptor,
        // so the same UMEM cannot try again. Each port falls back at most once.
        let mut plan: Vec<(PortConfig, Option<String>)> =
            ports.iter().map(|p| (p.clone(), None)).collect();
        let (umem, descs, opened) = loop {
            let (umem, descs) = new_umem(umem_cfg, count, &ports[0].interface)?;
            let mut opened = Vec::with_capacity(ports.len());
            let mut refused = None;
            for (i, (p, why)) in plan.iter().enumerate() {
                match open_port(&umem, p, why.clone(), rxs, txs, cfg) {
                    Ok(port) => opened.push(port),
                    Err(Failure::NativeRefused(reason)) => {
                        refused = Some((i, reason));
                        break;
                    }
                    Err(Failure::Fatal(e)) => return Err(e),
                }
            }
            match refused {
                None => break (umem, descs, opened),
                Some((i, reason)) => {
                    drop(opened);
                    plan[i].0.xdp_mode = XdpMode::Skb;
                    plan[i].1 = Some(reason);
                }
            }
        };
        let fill_share = cfg.fill_size;
        let mut free = Vec::with_capacity(descs.len());
        free.extend(descs);
        // One per port, and a last one for the worker's doorbell (set on each wait; poll(2)
        // skips a negative fd).
        let pollfds = opened
            .iter()
            .map(|p| p.fd)
            .chain([-1])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ring_max = cfg.rx_size.max(cfg.tx_size).max(cfg.comp_size) as usize;
        Ok(XskPorts {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pool: Pool::new(free, ports.len(), fill_share),
            ports: opened,
            scratch: vec![FrameDesc::default(); ring_max],
            pollfds,
            capacity: (cfg.frame_size - XDP_HEADROOM) as usize,
            umem,
        })
    }
}

/// The errno behind an xsk-rs error.
fn source_io(e: &(dyn std::error::Error + 'static)) -> io::Error {
    match e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => io.raw_os_error().map_or_else(
            || io::Error::other(io.to_string()),
            io::Error::from_raw_os_error,
        ),
        None => io::Error::other(e.to_string()),
    }
}

fn new_umem(
    c: XskUmemConfig,
    count: NonZeroU32,
    interface: &str,
) -> Result<(Umem, Vec<FrameDesc>), XskError> {
    Umem::new(c, count, false).map_err(|e| {
        let source = source_io(&e);
        if sys::is_privilege(&source) {
            XskError::Privileges {
                interface: interface.to_string(),
                what: "registering the UMEM",
                source,
            }
        } else {
            XskError::Os {
                interface: interface.to_string(),
                what: "registering the UMEM (ENOBUFS/ENOMEM: raise RLIMIT_MEMLOCK or lower frame_count)",
                source,
                detail: sys::take_library_log(),
            }
        }
    })
}

/// Why a port did not open.
enum Failure {
    /// `xdp_mode: auto` and the kernel refused native mode, for this reason: try skb.
    NativeRefused(String),
    Fatal(XskError),
}

impl From<XskError> for Failure {
    fn from(e: XskError) -> Self {
        Failure::Fatal(e)
    }
}

/// Checks that need no privileges: the interface, the queue, a foreign XDP program.
fn preflight(p: &PortConfig) -> Result<(), XskError> {
    let name = &p.interface;
    let Some(ifindex) = sys::if_index(name) else {
        return Err(XskError::NoSuchInterface {
            interface: name.clone(),
        });
    };
    if let Some(queues) = sys::rx_queues(name) {
        if p.queue >= queues {
            return Err(XskError::BadQueue {
                interface: name.clone(),
                queue: p.queue,
                queues,
            });
        }
    }
    let names = sys::xdp_program_names(ifindex);
    if let Some(other) = names.iter().find(|n| *n != XSK_PROG_NAME) {
        let mode = sys::xdp_query(ifindex)
            .ok()
            .and_then(|q| q.mode)
            .map_or("unknown", AttachMode::as_str);
        return Err(XskError::ProgramBusy {
            interface: name.clone(),
            program: other.clone(),
            mode: mode.to_string(),
        });
    }
    Ok(())
}

fn mode_name(m: AttachMode) -> &'static str {
    m.as_str()
}

/// Open one socket on the shared UMEM. `fallback`: why an earlier try made this port skb.
fn open_port(
    umem: &Umem,
    p: &PortConfig,
    mut fallback: Option<String>,
    rxs: QueueSize,
    txs: QueueSize,
    cfg: &UmemConfig,
) -> Result<Port, Failure> {
    let name = &p.interface;
    let ifindex = sys::if_index(name).ok_or_else(|| XskError::NoSuchInterface {
        interface: name.clone(),
    })?;
    let before = sys::xdp_query(ifindex).unwrap_or_default();
    let features = before.features;
    let driver = sys::driver(name);
    let drv = driver.as_deref().unwrap_or("(unknown)");
    let reused = before.prog_id != 0;

    let mode = match (p.xdp_mode, before.mode) {
        // libxdp reuses an attached program whatever mode we ask for: ask for its mode.
        (XdpMode::Auto, Some(m)) => m,
        (XdpMode::Native, Some(AttachMode::Skb)) | (XdpMode::Skb, Some(AttachMode::Native)) => {
            let had = before.mode.map_or("another", mode_name);
            return Err(XskError::ModeUnavailable {
                interface: name.clone(),
                mode: if p.xdp_mode == XdpMode::Native {
                    "native"
                } else {
                    "skb"
                },
                reason: format!(
                    "statewall's program is already attached in {had} mode (a crashed run, or \
                     another worker asking for {had}); detach it with \
                     `ip link set dev {name} xdp off`"
                ),
            }
            .into());
        }
        (XdpMode::Native, _) => AttachMode::Native,
        (XdpMode::Skb, _) => AttachMode::Skb,
        // Zero-copy needs native mode: no fallback to skb.
        (XdpMode::Auto, None) if p.zero_copy == ZeroCopy::On => AttachMode::Native,
        (XdpMode::Auto, None) if features != 0 && features & XDP_ACT_BASIC == 0 => {
            fallback = Some(format!("driver {drv} has no native XDP"));
            AttachMode::Skb
        }
        (XdpMode::Auto, None) => AttachMode::Native,
    };
    let may_fall_back = p.xdp_mode == XdpMode::Auto
        && mode == AttachMode::Native
        && before.mode.is_none()
        && p.zero_copy != ZeroCopy::On;

    let iface: Interface = name
        .parse()
        .map_err(|_| XskError::Config(format!("interface name {name:?} contains NUL")))?;
    // Zero-copy: refuse what cannot work before asking the kernel, to say why.
    let zc_reason = zero_copy_blocker(mode, features, drv);
    let mut bind = match p.zero_copy {
        ZeroCopy::On => {
            if let Some(reason) = zc_reason {
                return Err(XskError::ZeroCopyUnavailable {
                    interface: name.clone(),
                    reason,
                }
                .into());
            }
            BindFlags::XDP_ZEROCOPY
        }
        ZeroCopy::Off => BindFlags::XDP_COPY,
        // Generic XDP cannot feed a zero-copy socket: say so rather than let the kernel
        // pick. Native: the kernel tries zero-copy and falls back to copy by itself.
        ZeroCopy::Auto if mode == AttachMode::Skb => BindFlags::XDP_COPY,
        ZeroCopy::Auto => BindFlags::empty(),
    };
    if p.need_wakeup {
        bind |= BindFlags::XDP_USE_NEED_WAKEUP;
    }
    let xdp = match mode {
        AttachMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
        AttachMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
        AttachMode::Hw => XdpFlags::XDP_FLAGS_HW_MODE,
    };
    let sc = SocketConfig::builder()
        .rx_queue_size(rxs)
        .tx_queue_size(txs)
        .xdp_flags(xdp)
        .bind_flags(bind)
        .build();
    // A socket closed a moment ago still holds its queue: the kernel releases the binding
    // from a work queue after the close returns. Retry EBUSY for a while.
    let busy_until = Instant::now() + QUEUE_RELEASE_WAIT;
    let created = loop {
        let _ = sys::take_library_log();
        // SAFETY: xsk-rs requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD only when this UMEM is
        // already bound to the same (interface, queue); `XskPorts::open` refuses a pair
        // given twice and makes a fresh UMEM for each try, and each UMEM belongs to one
        // XskPorts, so this is the pair's first socket on it.
        let r = unsafe { Socket::new(sc, umem, &iface, p.queue) };
        match &r {
            Err(e)
                if source_io(e).raw_os_error() == Some(libc::EBUSY)
                    && Instant::now() < busy_until =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            _ => break r,
        }
    };
    let (tx, rx, fq, cq) = match created {
        Ok((tx, rx, Some((fq, cq)))) => (tx, rx, fq, cq),
        Ok(_) => {
            return Err(XskError::Config(format!(
                "`{name}` queue {}: no fill and completion rings for a first socket",
                p.queue
            ))
            .into())
        }
        Err(e) => {
            let source = source_io(&e);
            let said = sys::take_library_log();
            let err = socket_error(p, mode, &source, drv, &said);
            let fatal = matches!(
                err,
                XskError::Privileges { .. }
                    | XskError::QueueBusy { .. }
                    | XskError::ProgramBusy { .. }
                    | XskError::NoSuchInterface { .. }
                    | XskError::NoAfXdp { .. }
            );
            if may_fall_back && !fatal {
                return Err(Failure::NativeRefused(if said.is_empty() {
                    format!("native XDP refused: {source}")
                } else {
                    format!("native XDP refused: {source}: {said}")
                }));
            }
            return Err(err.into());
        }
    };
    let fd = rx.fd().as_raw_fd();
    let got = sys::xdp_query(ifindex)
        .ok()
        .and_then(|q| q.mode)
        .unwrap_or(mode);
    let zero_copy = sys::is_zero_copy(fd).unwrap_or(false);
    let copy_reason = (!zero_copy).then(|| match p.zero_copy {
        ZeroCopy::Off => "zero_copy: off".to_string(),
        _ => zero_copy_blocker(got, features, drv)
            .unwrap_or_else(|| format!("driver {drv} refused zero-copy on queue {}", p.queue)),
    });
    Ok(Port {
        mode: PortMode {
            interface: name.clone(),
            queue: p.queue,
            driver: driver.clone(),
            attach: got,
            zero_copy,
            copy_reason,
            need_wakeup: p.need_wakeup,
            fallback,
            reused_program: reused,
        },
        tx,
        rx,
        fq,
        cq,
        fd,
        tx_size: cfg.tx_size,
        fill_size: cfg.fill_size,
        stats: PortStats::default(),
    })
}

/// Why a socket in `mode` cannot be zero-copy, when that is known before trying.
fn zero_copy_blocker(mode: AttachMode, features: u64, drv: &str) -> Option<String> {
    if mode == AttachMode::Skb {
        return Some(
            "generic (skb) XDP runs after the kernel has built an skb, so frames are copied"
                .to_string(),
        );
    }
    if features != 0 && features & XDP_ACT_XSK_ZEROCOPY == 0 {
        return Some(format!(
            "driver {drv} does not offer AF_XDP zero-copy (its XDP features: {})",
            sys::feature_names(features)
        ));
    }
    None
}

/// The error for a failed socket creation (bind, or the XDP program's attach).
fn socket_error(
    p: &PortConfig,
    mode: AttachMode,
    e: &io::Error,
    drv: &str,
    said: &str,
) -> XskError {
    let interface = p.interface.clone();
    let errno = e.raw_os_error().unwrap_or(0);
    let copy = || io::Error::from_raw_os_error(errno);
    let with_said = |r: String| {
        if said.is_empty() {
            r
        } else {
            format!("{r} ({said})")
        }
    };
    match errno {
        libc::EPERM | libc::EACCES => XskError::Privileges {
            interface,
            what: "binding the AF_XDP socket and attaching its XDP program",
            source: copy(),
        },
        libc::EAFNOSUPPORT => XskError::NoAfXdp { source: copy() },
        libc::ENODEV | libc::ENXIO => XskError::NoSuchInterface { interface },
        // bind(): another socket holds this queue (the XDP program was checked beforehand).
        libc::EBUSY => XskError::QueueBusy {
            interface,
            queue: p.queue,
        },
        // The attach raced with another program, or one in the other mode.
        libc::EEXIST => {
            let program = sys::if_index(&p.interface)
                .map(sys::xdp_program_names)
                .and_then(|n| n.into_iter().next())
                .unwrap_or_else(|| "unknown".to_string());
            XskError::ProgramBusy {
                interface,
                program,
                mode: "another".to_string(),
            }
        }
        libc::EOPNOTSUPP if p.zero_copy == ZeroCopy::On => XskError::ZeroCopyUnavailable {
            interface,
            reason: with_said(format!("driver {drv} refused a zero-copy bind")),
        },
        libc::EOPNOTSUPP | libc::ERANGE | libc::ENOSPC => XskError::ModeUnavailable {
            interface,
            mode: mode_name(mode),
            reason: with_said(match errno {
                libc::ERANGE => {
                    format!("driver {drv} refused: the MTU is too large for {mode} XDP")
                }
                libc::ENOSPC => format!(
                    "driver {drv} refused: not enough queues (veth: its RX queues must be at \
                     least its peer's TX queues)"
                ),
                _ => format!("driver {drv} does not support it"),
            }),
        },
        libc::EINVAL => XskError::Os {
            interface,
            what: "bind (EINVAL: a queue the device does not have, or flags it refuses)",
            source: copy(),
            detail: said.to_string(),
        },
        _ => XskError::Os {
            interface,
            what: "creating the AF_XDP socket",
            source: copy(),
            detail: said.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_before_privileges() {
        let cfg = UmemConfig::default();
        let e = XskPorts::open(&[PortConfig::new("no-such-if-xyz", 0)], &cfg).unwrap_err();
        assert!(matches!(e, XskError::NoSuchInterface { .. }), "{e}");
        let e = XskPorts::open(&[PortConfig::new("lo", 4096)], &cfg).unwrap_err();
        assert!(matches!(e, XskError::BadQueue { queue: 4096, .. }), "{e}");
        let e = XskPorts::open(&[PortConfig::new("lo", 0), PortConfig::new("lo", 0)], &cfg)
            .unwrap_err();
        assert!(matches!(e, XskError::Config(_)), "{e}");
        let e = XskPorts::open(&[], &cfg).unwrap_err();
        assert!(matches!(e, XskError::Config(_)), "{e}");
        let bad = UmemConfig {
            rx_size: 1000,
            ..cfg
        };
        let e = XskPorts::open(&[PortConfig::new("lo", 0)], &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AF_XDP configuration: RX ring size 1000 is not a power of two"
        );
    }

    #[test]
    fn socket_errors_by_errno() {
        let p = PortConfig::new("veth0", 2);
        let e = |errno| {
            socket_error(
                &p,
                AttachMode::Native,
                &io::Error::from_raw_os_error(errno),
                "veth",
                "",
            )
        };
        assert!(matches!(e(libc::EPERM), XskError::Privileges { .. }));
        assert!(matches!(e(libc::EAFNOSUPPORT), XskError::NoAfXdp { .. }));
        assert!(matches!(
            e(libc::EBUSY),
            XskError::QueueBusy { queue: 2, .. }
        ));
        assert!(matches!(e(libc::ENODEV), XskError::NoSuchInterface { .. }));
        let m = e(libc::ERANGE);
        assert!(
            m.to_string().contains("MTU is too large for native XDP"),
            "{m}"
        );
        let zc = PortConfig {
            zero_copy: ZeroCopy::On,
            ..p.clone()
        };
        let z = socket_error(
            &zc,
            AttachMode::Native,
            &io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            "veth",
            "Kernel error message: no zero-copy here",
        );
        assert!(matches!(z, XskError::ZeroCopyUnavailable { .. }), "{z}");
        assert!(
            z.to_string()
                .ends_with("refused a zero-copy bind (Kernel error message: no zero-copy here); use zero_copy: auto or off"),
            "{z}"
        );
    }

    #[test]
    fn zero_copy_reasons() {
        assert!(zero_copy_blocker(AttachMode::Skb, 0, "veth")
            .unwrap()
            .contains("generic (skb) XDP"));
        let veth = sys::XDP_ACT_BASIC | sys::XDP_ACT_REDIRECT | sys::XDP_ACT_NDO_XMIT;
        assert_eq!(
            zero_copy_blocker(AttachMode::Native, veth, "veth").unwrap(),
            "driver veth does not offer AF_XDP zero-copy (its XDP features: basic, redirect, ndo-xmit)"
        );
        assert_eq!(
            zero_copy_blocker(AttachMode::Native, veth | XDP_ACT_XSK_ZEROCOPY, "ice"),
            None
        );
        // Unknown features (kernel before 6.3): let the kernel decide.
        assert_eq!(zero_copy_blocker(AttachMode::Native, 0, "x"), None);
    }
}
