//! The `sync:` section: connection-state sync with a peer gateway over conntrackd's protocol
//! (Statewall or conntrackd 1.4.7 on the other side). Keys follow conntrackd.conf's `Sync`
//! section, in snake case (`ResendQueueSize` is `resend_queue_size`).
//!
//! ```yaml
//! sync:
//!   mode: ftfw                  # or notrack
//!   udp:
//!     local: 10.99.0.1:3780     # bind address:port on the sync link
//!     peer: 10.99.0.2:3780      # the other box
//!   # or: multicast: {group: 225.0.0.50, port: 3780, interface: 10.99.0.1}
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// How messages are delivered (conntrackd's `Sync { Mode ... }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Best effort: no sequence tracking, an ALIVE a second, RESYNC requests honoured.
    Notrack,
    /// conntrackd's default: sequence numbers, ACKs, NACKs for gaps, a resend queue.
    Ftfw,
}

/// The sync link: unicast UDP to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpLink {
    /// The address and port to bind on the sync link (conntrackd's `IPv4_address`, `Port`).
    #[serde(deserialize_with = "socket_addr")]
    pub local: SocketAddr,
    /// The peer's address and port (conntrackd's `IPv4_Destination_Address`).
    #[serde(deserialize_with = "socket_addr")]
    pub peer: SocketAddr,
}

/// The sync link: an IPv4 multicast group (conntrackd's `Multicast` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastLink {
    /// The group (conntrackd's `IPv4_address`, e.g. 225.0.0.50).
    pub group: Ipv4Addr,
    pub port: u16,
    /// This box's address on the sync link (conntrackd's `IPv4_interface`): where the group
    /// is joined and sent from.
    pub interface: Ipv4Addr,
}

/// The `sync:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    pub mode: SyncMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast: Option<MulticastLink>,
    /// FTFW: acknowledge after this many messages at most (conntrackd's `ACKWindowSize`).
    #[serde(default = "SyncConfig::default_ack_window_size")]
    pub ack_window_size: u32,
    /// FTFW: messages kept for resending until acknowledged (`ResendQueueSize`).
    #[serde(default = "SyncConfig::default_resend_queue_size")]
    pub resend_queue_size: u32,
    /// Seconds: an active connection's refreshed timeout is sent again at most this often
    /// (0: only state changes are sent, as conntrackd sends them).
    #[serde(default = "SyncConfig::default_refresh")]
    pub refresh: u32,
    /// Received entries go into the table at once instead of the external cache
    /// (conntrackd's `DisableExternalCache`).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub disable_external_cache: bool,
    /// Seconds `statewallctl sync purge` leaves each entry at most (`PurgeTimeout`).
    #[serde(default = "SyncConfig::default_purge_timeout")]
    pub purge_timeout: u32,
    /// Sync the FTP helper's expectations too (conntrackd's `ExpectationSync`; both sides
    /// must say so: a conntrackd without it does not take them).
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub expectation_sync: bool,
    /// Events each worker can hand to the sync thread between two of its rounds; more are
    /// dropped and counted.
    #[serde(default = "SyncConfig::default_event_ring")]
    pub event_ring: u32,
}

impl SyncConfig {
    /// conntrackd's default `ACKWindowSize`.
    pub fn default_ack_window_size() -> u32 {
        300
    }
    /// conntrackd's default `ResendQueueSize`.
    pub fn default_resend_queue_size() -> u32 {
        131_072
    }
    pub fn default_refresh() -> u32 {
        60
    }
    /// conntrackd's default `PurgeTimeout`.
    pub fn default_purge_timeout() -> u32 {
        15
    }
    pub fn default_event_ring() -> u32 {
        65_536
    }

    /// Problems the types do not catch: (key below `sync`, what, how to fix).
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut p = Vec::new();
        match (&self.udp, &self.multicast) {
            (None, None) => p.push((
                "mode",
                "no link".into(),
                "add `udp: {local: ADDR:PORT, peer: ADDR:PORT}` or `multicast: {group, port, interface}`".into(),
            )),
            (Some(_), Some(_)) => p.push((
                "multicast",
                "both a udp and a multicast link".into(),
                "keep one of them".into(),
            )),
            _ => {}
        }
        if let Some(u) = &self.udp {
            if u.local.is_ipv4() != u.peer.is_ipv4() {
                p.push((
                    "udp.peer",
                    format!(
                        "the peer {} and the local address {} are of different IP families",
                        u.peer, u.local
                    ),
                    "give both as IPv4 or both as IPv6 addresses".into(),
                ));
            }
            if u.peer.ip().is_unspecified() || u.peer.port() == 0 {
                p.push((
                    "udp.peer",
                    format!("{} is not an address a datagram can go to", u.peer),
                    "give the peer's address on the sync link and its port, e.g. 10.99.0.2:3780"
                        .into(),
                ));
            }
        }
        if let Some(m) = &self.multicast {
            if !m.group.is_multicast() {
                p.push((
                    "multicast.group",
                    format!("{} is not a multicast group", m.group),
                    "use an address in 224.0.0.0/4, e.g. conntrackd's 225.0.0.50".into(),
                ));
            }
            if m.port == 0 {
                p.push((
                    "multicast.port",
                    "port 0".into(),
                    "use conntrackd's 3780".into(),
                ));
            }
        }
        if self.ack_window_size == 0 {
            p.push((
                "ack_window_size",
                "an ACK window of 0 messages".into(),
                "use at least 1 (conntrackd's default is 300)".into(),
            ));
        }
        if self.resend_queue_size == 0 {
            p.push((
                "resend_queue_size",
                "a resend queue of 0 messages".into(),
                "use at least 1 (conntrackd's default is 131072)".into(),
            ));
        }
        if self.event_ring == 0 {
            p.push((
                "event_ring",
                "an event ring of 0 events".into(),
                "use at least 1 (the default is 65536)".into(),
            ));
        }
        p
    }

    /// The address the socket binds: the unicast local address, or the multicast port on
    /// any address (the group is joined on `interface`).
    pub fn bind_addr(&self) -> SocketAddr {
        match (&self.udp, &self.multicast) {
            (Some(u), _) => u.local,
            (None, Some(m)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), m.port),
            (None, None) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3780),
        }
    }

    /// Where messages go: the peer, or the group.
    pub fn send_addr(&self) -> SocketAddr {
        match (&self.udp, &self.multicast) {
            (Some(u), _) => u.peer,
            (None, Some(m)) => SocketAddr::new(IpAddr::V4(m.group), m.port),
            (None, None) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3780),
        }
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        de::Error::custom(format!(
            "`{s}` is not ADDRESS:PORT (write 10.99.0.1:3780, or [fd00::1]:3780 for IPv6)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<SyncConfig, String> {
        serde_yaml::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_s_shape_reads_with_conntrackd_s_defaults() {
        let c = parse("mode: ftfw\nudp: {local: 10.99.0.1:3780, peer: 10.99.0.2:3780}\n").unwrap();
        assert_eq!(c.mode, SyncMode::Ftfw);
        assert_eq!(
            (c.ack_window_size, c.resend_queue_size, c.purge_timeout),
            (300, 131_072, 15)
        );
        assert!(c.problems().is_empty());
        assert_eq!(c.send_addr().to_string(), "10.99.0.2:3780");
    }

    #[test]
    fn mistakes_say_how_to_fix_them() {
        let e = parse("mode: ftfw\nudp: {local: 10.99.0.1, peer: 10.99.0.2:3780}\n").unwrap_err();
        assert!(e.contains("is not ADDRESS:PORT"), "{e}");
        let e = parse("mode: fast\n").unwrap_err();
        assert!(e.contains("notrack") && e.contains("ftfw"), "{e}");
        let c = parse("mode: notrack\n").unwrap();
        assert!(c.problems()[0].1.contains("no link"));
        let c = parse(
            "mode: notrack\nmulticast: {group: 10.0.0.1, port: 3780, interface: 10.99.0.1}\n",
        )
        .unwrap();
        assert!(c.problems()[0].1.contains("not a multicast group"));
        let c = parse("mode: notrack\nudp: {local: '[::1]:3780', peer: 10.99.0.2:3780}\n").unwrap();
        assert!(c.problems()[0].1.contains("different IP families"));
    }
}
