//! The largest MTU one AF_XDP frame carries, and the start-up check that refuses a port whose
//! MTU is larger.
//!
//! Statewall binds its sockets without `XDP_USE_SG` (multi-buffer AF_XDP), so a received frame
//! must fit one UMEM frame. The kernel puts at most the chunk size less `XDP_PACKET_HEADROOM`
//! and the UMEM's own headroom into it (`xsk_pool_get_rx_frame_size`,
//! include/net/xdp_sock_drv.h) and drops a longer frame, counting it in the socket's
//! `rx_dropped` (`xsk_rcv_check`, net/xdp/xsk.c). Our UMEM headroom is 0 (xsk-rs'
//! `XSK_UMEM__DEFAULT_FRAME_HEADROOM`), so with 4096-byte frames that is 3840 bytes of Ethernet
//! frame. The MTU counts the IP packet only: take off the Ethernet header and one 802.1Q tag (a
//! VLAN-tagged frame whose tag the NIC does not strip still fits), and the largest MTU is 3822.
//! Jumbo frames (MTU 9000) would be dropped one by one at run time; the daemon refuses them at
//! start instead.

use std::io;

use super::ports::XDP_HEADROOM;
use super::{UmemConfig, XskError};

/// `ETH_HLEN` (include/uapi/linux/if_ether.h): destination, source, EtherType.
pub const ETH_HLEN: u32 = 14;
/// `VLAN_HLEN` (include/linux/if_vlan.h): one 802.1Q tag.
pub const VLAN_HLEN: u32 = 4;
/// The MTU the refusal suggests (Ethernet's).
const STANDARD_MTU: u32 = 1500;

/// The longest Ethernet frame (without FCS) the kernel puts in one frame of this UMEM.
pub fn max_frame_len(cfg: &UmemConfig) -> u32 {
    cfg.frame_size.saturating_sub(XDP_HEADROOM)
}

/// The largest interface MTU whose frames, with one VLAN tag, fit one frame of this UMEM.
pub fn max_mtu(cfg: &UmemConfig) -> u32 {
    max_frame_len(cfg).saturating_sub(ETH_HLEN + VLAN_HLEN)
}

/// The interface's MTU, from sysfs (`/sys/class/net/IF/mtu`) as the calling process sees it
/// (`ip netns exec` mounts the namespace's own sysfs).
pub fn interface_mtu(interface: &str) -> io::Result<u32> {
    if interface.is_empty() || interface.contains('/') || interface.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{interface}` is not an interface name"),
        ));
    }
    let path = format!("/sys/class/net/{interface}/mtu");
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: {:?} is not an MTU: {e}", text.trim()),
        )
    })
}

/// Refuse a port whose MTU is more than one frame of this UMEM holds. `port` is the ruleset's
/// name for it, `interface` the device. An interface whose MTU cannot be read is let through:
/// opening it says what is wrong (no such interface, in this namespace).
pub fn check_mtu(port: &str, interface: &str, cfg: &UmemConfig) -> Result<(), XskError> {
    match interface_mtu(interface) {
        Ok(mtu) => mtu_fits(port, interface, mtu, cfg),
        Err(_) => Ok(()),
    }
}

/// The arithmetic of [`check_mtu`], for an MTU already read.
pub fn mtu_fits(port: &str, interface: &str, mtu: u32, cfg: &UmemConfig) -> Result<(), XskError> {
    let max = max_mtu(cfg);
    if mtu <= max {
        return Ok(());
    }
    Err(XskError::MtuTooLarge {
        port: port.to_string(),
        interface: interface.to_string(),
        mtu,
        max,
        frame_size: cfg.frame_size,
        suggest: STANDARD_MTU.min(max),
    })
}

/// `port wan (veth-wan)`, or `port lan` when the port is named after its interface.
pub(super) fn port_label(port: &str, interface: &str) -> String {
    if port == interface {
        format!("port {port}")
    } else {
        format!("port {port} ({interface})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umem(frame_size: u32) -> UmemConfig {
        UmemConfig {
            frame_size,
            ..UmemConfig::default()
        }
    }

    #[test]
    fn frame_and_mtu_limits() {
        // 4096 - 256 (XDP_PACKET_HEADROOM) = 3840 bytes of frame; less 14 + 4: MTU 3822.
        assert_eq!(max_frame_len(&UmemConfig::default()), 3840);
        assert_eq!(max_mtu(&UmemConfig::default()), 3822);
        // 2048-byte frames: 1792 and 1774.
        assert_eq!(max_frame_len(&umem(2048)), 1792);
        assert_eq!(max_mtu(&umem(2048)), 1774);
        // A full-sized frame of the largest MTU, VLAN-tagged, is exactly one frame.
        assert_eq!(
            max_mtu(&UmemConfig::default()) + ETH_HLEN + VLAN_HLEN + XDP_HEADROOM,
            4096
        );
    }

    #[test]
    fn the_boundary_is_inclusive() {
        let c = UmemConfig::default();
        assert!(mtu_fits("wan", "veth-wan", 1500, &c).is_ok());
        assert!(mtu_fits("wan", "veth-wan", 3822, &c).is_ok());
        let e = mtu_fits("wan", "veth-wan", 3823, &c).unwrap_err();
        assert!(
            matches!(
                e,
                XskError::MtuTooLarge {
                    mtu: 3823,
                    max: 3822,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(mtu_fits("wan", "veth-wan", 1775, &umem(2048)).is_err());
        assert!(mtu_fits("wan", "veth-wan", 1774, &umem(2048)).is_ok());
    }

    #[test]
    fn the_refusal_says_what_and_how() {
        let e = mtu_fits("wan", "veth-wan", 9000, &UmemConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "port wan (veth-wan): MTU 9000 is larger than the 3822 bytes of IP packet an AF_XDP \
             frame holds here (a 4096-byte frame less 256 of XDP headroom, 14 of Ethernet header \
             and 4 of VLAN tag); set it to 1500 with `ip link set dev veth-wan mtu 1500` (jumbo \
             frames are not supported yet)"
        );
        let e = mtu_fits("lan", "lan", 9000, &umem(2048)).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "port lan: MTU 9000 is larger than the 1774 bytes of IP packet an AF_XDP frame \
                 holds here (a 2048-byte frame less 256"
            ),
            "{e}"
        );
    }

    #[test]
    fn reads_the_mtu_from_sysfs() {
        // Every Linux namespace has a loopback; its MTU is 65536 by default, far more than a
        // frame holds, but any positive value proves the read.
        let lo = interface_mtu("lo").expect("lo's MTU");
        assert!(lo > 0);
        assert!(interface_mtu("no-such-if-xyz").is_err());
        assert!(interface_mtu("../lo").is_err());
        assert!(interface_mtu("").is_err());
        // A port that does not exist is left for open() to report.
        assert!(check_mtu("x", "no-such-if-xyz", &UmemConfig::default()).is_ok());
        // lo (65536 by default) is refused exactly when its MTU is over the limit.
        let checked = check_mtu("lo", "lo", &UmemConfig::default());
        assert_eq!(checked.is_ok(), lo <= 3822, "lo MTU {lo}: {checked:?}");
    }
}
