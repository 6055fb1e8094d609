//! The system calls the AF_XDP layer makes besides xsk-rs's own: interface lookups, the
//! XDP program query, socket options, poll. Every FFI call of the module outside the ring
//! and UMEM accesses is here (the one seam, as aya's `sys` is).

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::ptr;

use super::{AttachMode, XskError};

/// `enum netdev_xdp_act` (include/uapi/linux/netdev.h): what a driver's XDP can do, as
/// `bpf_xdp_query` reports it (Linux ≥ 6.3; 0 before).
pub(super) const XDP_ACT_BASIC: u64 = 1 << 0;
pub(super) const XDP_ACT_REDIRECT: u64 = 1 << 1;
pub(super) const XDP_ACT_NDO_XMIT: u64 = 1 << 2;
pub(super) const XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;
pub(super) const XDP_ACT_HW_OFFLOAD: u64 = 1 << 4;
pub(super) const XDP_ACT_RX_SG: u64 = 1 << 5;
pub(super) const XDP_ACT_NDO_XMIT_SG: u64 = 1 << 6;

/// The feature flags by name, for messages.
pub(super) fn feature_names(f: u64) -> String {
    let names = [
        (XDP_ACT_BASIC, "basic"),
        (XDP_ACT_REDIRECT, "redirect"),
        (XDP_ACT_NDO_XMIT, "ndo-xmit"),
        (XDP_ACT_XSK_ZEROCOPY, "xsk-zerocopy"),
        (XDP_ACT_HW_OFFLOAD, "hw-offload"),
        (XDP_ACT_RX_SG, "rx-sg"),
        (XDP_ACT_NDO_XMIT_SG, "ndo-xmit-sg"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// The interface's index, `None` when there is no such interface here.
pub(super) fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; if_nametoindex
    // only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The interface's receive queue count (`real_num_rx_queues`, as sysfs lists them).
pub(super) fn rx_queues(name: &str) -> Option<u32> {
    sysfs_queues(name, "rx-")
}

/// The interface's transmit queue count (`real_num_tx_queues`, as sysfs lists them).
pub(super) fn tx_queues(name: &str) -> Option<u32> {
    sysfs_queues(name, "tx-")
}

fn sysfs_queues(name: &str, prefix: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count();
    Some(n as u32)
}

/// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 0x3;

/// `struct ethtool_channels` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `SIOCETHTOOL` on `name`: the kernel reads the command from `data`'s first `u32` and
/// answers into `data`. `false` when the interface or its driver refuses (`EOPNOTSUPP`: lo,
/// bridges, ...).
///
/// # Safety
///
/// `T` must be the `#[repr(C)]` struct the command in its first field reads and writes (the
/// kernel writes that struct's size into `data`).
unsafe fn ethtool<T>(name: &str, data: &mut T) -> bool {
    if name.len() >= libc::IFNAMSIZ {
        return false;
    }
    // SAFETY: socket() has no memory preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    let fd = Fd(fd);
    // SAFETY: a plain C struct for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = ptr::from_mut(data).cast();
    // SAFETY: SIOCETHTOOL reads the NUL-terminated name (shorter than IFNAMSIZ, the rest
    // zeroed) from `ifr` and, by the caller's contract, writes at most size_of::<T>() bytes to
    // `data`, which ifru_data points at and which outlives the call.
    unsafe { libc::ioctl(fd.0, libc::SIOCETHTOOL, ptr::addr_of_mut!(ifr)) >= 0 }
}

/// The interface's queues that have both a receive and a transmit side, by its channels
/// (`ethtool -l`): the combined channels, plus the RX-only channels that have a TX-only twin
/// (veth reports its queues that way). `None` when the driver does not report channels.
pub(super) fn channel_queues(name: &str) -> Option<u32> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: ETHTOOL_GCHANNELS reads and writes a struct ethtool_channels.
    if !unsafe { ethtool(name, &mut ch) } {
        return None;
    }
    Some(ch.combined_count + ch.rx_count.min(ch.tx_count))
}

/// The interface's driver name (`ethtool -i`), `None` when the kernel does not say.
pub(super) fn driver(name: &str) -> Option<String> {
    // SAFETY: a plain C struct for which all-zero bytes are a valid value.
    let mut info: EthtoolDrvinfo = unsafe { mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: ETHTOOL_GDRVINFO reads and writes a struct ethtool_drvinfo.
    if !unsafe { ethtool(name, &mut info) } {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let d = String::from_utf8_lossy(info.driver.get(..end)?).into_owned();
    (!d.is_empty()).then_some(d)
}

/// A file descriptor closed on drop.
struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// What `bpf_xdp_query` says about an interface.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct XdpQuery {
    /// The attached program's id, 0 when none.
    pub prog_id: u32,
    pub mode: Option<AttachMode>,
    /// `XDP_ACT_*` bits; 0 when the kernel does not report features (before 6.3).
    pub features: u64,
}

/// The XDP program attached to an interface, and what its driver can do.
pub(super) fn xdp_query(ifindex: u32) -> io::Result<XdpQuery> {
    // Zeroed whole, padding included: libbpf rejects an opts struct whose bytes past the
    // fields it knows are not zero, and a struct literal leaves padding undefined.
    // SAFETY: bpf_xdp_query_opts is plain integers, for which all-zero bytes are valid.
    let mut opts: libxdp_sys::bpf_xdp_query_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<libxdp_sys::bpf_xdp_query_opts>();
    // SAFETY: `opts` is a properly sized and initialised bpf_xdp_query_opts (sz set, as libbpf
    // requires) that outlives the call; libbpf only writes into it.
    let r = unsafe { libxdp_sys::bpf_xdp_query(ifindex as i32, 0, &raw mut opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    // XDP_ATTACHED_* (include/uapi/linux/if_link.h): 1 DRV, 2 SKB, 3 HW, 4 MULTI.
    let mode = match opts.attach_mode {
        1 => Some(AttachMode::Native),
        2 => Some(AttachMode::Skb),
        3 => Some(AttachMode::Hw),
        4 if opts.drv_prog_id != 0 => Some(AttachMode::Native),
        4 if opts.skb_prog_id != 0 => Some(AttachMode::Skb),
        4 => Some(AttachMode::Hw),
        _ => None,
    };
    Ok(XdpQuery {
        prog_id: opts.prog_id,
        mode,
        features: opts.feature_flags,
    })
}

/// The name of libxdp's AF_XDP redirect program (`xsk_def_prog`), which every statewall
/// socket shares on an interface.
pub(super) const XSK_PROG_NAME: &str = "xsk_def_prog";

/// Names of the XDP programs attached to an interface: the program itself, or the
/// components of a libxdp dispatcher. Empty when none.
pub(super) fn xdp_program_names(ifindex: u32) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: libxdp returns a multiprog handle or an error pointer (checked with
    // libxdp_get_error) or NULL; we close a valid handle exactly once below and use the
    // program pointers (owned by the handle) only before that.
    unsafe {
        let mp = libxdp_sys::xdp_multiprog__get_from_ifindex(ifindex as i32);
        if mp.is_null() || libxdp_sys::libxdp_get_error(mp.cast()) != 0 {
            return out;
        }
        let name_of = |p: *mut libxdp_sys::xdp_program| {
            let n = libxdp_sys::xdp_program__name(p);
            if n.is_null() {
                "(unnamed)".to_string()
            } else {
                CStr::from_ptr(n).to_string_lossy().into_owned()
            }
        };
        if libxdp_sys::xdp_multiprog__is_legacy(mp) {
            let p = libxdp_sys::xdp_multiprog__main_prog(mp);
            if !p.is_null() {
                out.push(name_of(p));
            }
        } else {
            let mut p = libxdp_sys::xdp_multiprog__next_prog(ptr::null(), mp);
            while !p.is_null() {
                out.push(name_of(p));
                p = libxdp_sys::xdp_multiprog__next_prog(p, mp);
            }
        }
        libxdp_sys::xdp_multiprog__close(mp);
    }
    out
}

/// Detach whatever XDP program is attached to `interface` (the cleanup for a program a
/// crashed run left behind). Ok(false) when there was none.
pub fn detach_xdp(interface: &str) -> Result<bool, XskError> {
    let Some(ifindex) = if_index(interface) else {
        return Err(XskError::NoSuchInterface {
            interface: interface.to_string(),
        });
    };
    // SAFETY: as in `xdp_program_names`: the handle is checked, used, and closed once.
    let r = unsafe {
        let mp = libxdp_sys::xdp_multiprog__get_from_ifindex(ifindex as i32);
        if mp.is_null() || libxdp_sys::libxdp_get_error(mp.cast()) != 0 {
            return Ok(false);
        }
        let r = libxdp_sys::xdp_multiprog__detach(mp);
        libxdp_sys::xdp_multiprog__close(mp);
        r
    };
    if r < 0 {
        let e = io::Error::from_raw_os_error(-r);
        return Err(if is_privilege(&e) {
            XskError::Privileges {
                interface: interface.to_string(),
                what: "detaching the XDP program",
                source: e,
            }
        } else {
            XskError::Os {
                interface: interface.to_string(),
                what: "detaching the XDP program",
                source: e,
                detail: take_library_log(),
            }
        });
    }
    Ok(true)
}

/// Move the calling thread into the network namespace `name` (`/run/netns/NAME`, as
/// `ip netns add` makes), so that ports opened from this thread afterwards are that
/// namespace's: a packet generator owns one port in each of the lab's host namespaces. The
/// sockets keep their namespace whatever the thread does next.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a network namespace name (as `ip netns list` shows them)"),
        ));
    }
    let f = std::fs::File::open(format!("/run/netns/{name}")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace `{name}` (/run/netns/{name}): {e}"),
        )
    })?;
    // SAFETY: the descriptor is a valid open namespace file that outlives the call;
    // setns(2) only changes the calling thread's namespace.
    let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("entering network namespace `{name}`: {e} (needs CAP_SYS_ADMIN)"),
        ));
    }
    Ok(())
}

/// The Ethernet address of `interface` in the calling thread's network namespace
/// (`SIOCGIFHWADDR`).
pub fn hw_addr(interface: &str) -> io::Result<[u8; 6]> {
    let mut req: libc::ifreq = zeroed_ifreq();
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{interface}` is not an interface name"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket() has no memory preconditions; the result is checked and closed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = Fd(fd);
    // SAFETY: `req` is a valid, exclusively borrowed ifreq with a NUL-terminated name;
    // SIOCGIFHWADDR writes only into it.
    let r = unsafe { libc::ioctl(fd.0, libc::SIOCGIFHWADDR, &mut req) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("`{interface}`: {e}")));
    }
    // SAFETY: after a successful SIOCGIFHWADDR the kernel has written ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

fn zeroed_ifreq() -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct (arrays and a union of plain structs), for which
    // all-zero bytes are a valid value.
    unsafe { mem::zeroed() }
}

/// Whether the kernel has AF_XDP sockets, and we may open one.
pub(super) fn probe_af_xdp() -> io::Result<()> {
    // SAFETY: socket() has no memory preconditions; the result is checked and closed.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(Fd(fd));
    Ok(())
}

/// Whether an AF_XDP socket is bound in zero-copy mode (`XDP_OPTIONS`, Linux ≥ 5.3).
pub(super) fn is_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut opts = libxdp_sys::xdp_options { flags: 0 };
    let mut len = mem::size_of::<libxdp_sys::xdp_options>() as libc::socklen_t;
    // SAFETY: `opts` and `len` are valid for writes and outlive the call; the kernel writes at
    // most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libxdp_sys::XDP_OPTIONS as i32,
            ptr::addr_of_mut!(opts).cast(),
            &raw mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(opts.flags & libxdp_sys::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Wake the kernel's receive side of a socket (the fill ring's `need_wakeup`):
/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`, as the kernel's AF_XDP sample does.
pub(super) fn kick_rx(fd: RawFd) {
    // SAFETY: a zero-length recvfrom with null buffer and address is valid for AF_XDP
    // sockets; nothing is written.
    unsafe {
        libc::recvfrom(
            fd,
            ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
            ptr::null_mut(),
        );
    }
}

/// poll(2) over `fds` for POLLIN; whether any is readable.
pub(super) fn poll_in(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<bool> {
    for p in fds.iter_mut() {
        p.events = libc::POLLIN;
        p.revents = 0;
    }
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the length given.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

pub(super) fn is_privilege(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// Take over libxdp's and libbpf's stderr logging. libxdp's messages for the failures we
/// report ("XDP mode not supported; try using SKB mode") duplicate ours without the
/// interface name, and `xdp_mode: auto` provokes them on purpose: dropped. libbpf's
/// warnings carry the kernel's own explanation of a refusal ("Kernel error message: ..."):
/// kept per thread for [`take_library_log`], to go into our error; its notes about the
/// sections of libxdp's embedded programs it skips are dropped.
pub(super) fn capture_library_logs() {
    // SAFETY: a NULL libxdp callback is documented to disable printing, and `libbpf_log`
    // has the signature libbpf_print_fn_t names; both calls only store the pointer.
    unsafe {
        libxdp_sys::libxdp_set_print(None);
        #[cfg(target_arch = "x86_64")]
        libbpf_sys::libbpf_set_print(Some(libbpf_log));
        #[cfg(not(target_arch = "x86_64"))]
        libbpf_sys::libbpf_set_print(None);
    }
}

thread_local! {
    static LIBRARY_LOG: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// What libbpf said on this thread since the last call (warnings and errors, `; `-joined).
pub(super) fn take_library_log() -> String {
    LIBRARY_LOG.with(|l| {
        l.try_borrow_mut()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    })
}

#[cfg(target_arch = "x86_64")]
extern "C" {
    fn vsnprintf(
        s: *mut libc::c_char,
        n: libc::size_t,
        format: *const libc::c_char,
        ap: *mut libbpf_sys::__va_list_tag,
    ) -> libc::c_int;
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn libbpf_log(
    level: libbpf_sys::libbpf_print_level,
    fmt: *const libc::c_char,
    ap: *mut libbpf_sys::__va_list_tag,
) -> libc::c_int {
    if level == libbpf_sys::LIBBPF_DEBUG || fmt.is_null() {
        return 0;
    }
    let mut buf = [0 as libc::c_char; 512];
    // SAFETY: libbpf passes a printf format and the va_list of its arguments, which is what
    // vsnprintf consumes; it writes at most buf.len() bytes, NUL-terminated.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    if n <= 0 {
        return 0;
    }
    // SAFETY: vsnprintf NUL-terminated the buffer.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let msg = msg.trim().trim_start_matches("libbpf: ");
    if msg.is_empty() || msg.contains("skipping unrecognized data section") {
        return 0;
    }
    LIBRARY_LOG.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            if l.len() < 1024 {
                if !l.is_empty() {
                    l.push_str("; ");
                }
                l.push_str(msg);
            }
        }
    });
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_lookups() {
        assert_eq!(if_index("lo"), Some(1));
        assert_eq!(if_index("no-such-if-xyz"), None);
        assert_eq!(if_index("bad\0name"), None);
        assert!(rx_queues("lo").is_some_and(|n| n >= 1));
        assert_eq!(rx_queues("no-such-if-xyz"), None);
        assert!(tx_queues("lo").is_some_and(|n| n >= 1));
        // lo has no channels to report (its driver has no get_channels: EOPNOTSUPP).
        assert_eq!(channel_queues("lo"), None);
        assert_eq!(channel_queues("no-such-if-xyz"), None);
        assert_eq!(channel_queues("a-name-that-is-far-too-long"), None);
        assert_eq!(driver("no-such-if-xyz"), None);
        assert_eq!(driver("a-name-that-is-far-too-long"), None);
    }

    #[test]
    fn features_by_name() {
        assert_eq!(feature_names(0), "none");
        assert_eq!(
            feature_names(XDP_ACT_BASIC | XDP_ACT_REDIRECT | XDP_ACT_NDO_XMIT | XDP_ACT_RX_SG),
            "basic, redirect, ndo-xmit, rx-sg"
        );
    }
}
