//! Sysctls and TCP knobs in engine units (nanoseconds), derived from the sysctl-named
//! settings of the config.

use config::ConntrackSettings;

use super::tcp::state;

const NS: u64 = 1_000_000_000;

/// The conntrack sysctls the packet path reads, precomputed from [`ConntrackSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sysctls {
    /// By TCP state (`tcp::state::*`), as the kernel's `timeouts[]` array.
    pub tcp: [u64; 10],
    pub tcp_max_retrans_timeout: u64,
    pub tcp_unack_timeout: u64,
    pub udp: u64,
    pub udp_stream: u64,
    pub icmp: u64,
    pub icmpv6: u64,
    pub generic: u64,
    pub tcp_max_retrans: u8,
    pub tcp_loose: bool,
    pub tcp_be_liberal: bool,
    pub tcp_ignore_invalid_rst: bool,
    pub checksum: bool,
}

impl Sysctls {
    pub fn from_settings(s: &ConntrackSettings) -> Self {
        let t = |secs: u32| u64::from(secs) * NS;
        let mut tcp = [0; 10];
        // timeouts[NONE] is unused by states; the kernel sets it to SYN_SENT's.
        tcp[state::NONE as usize] = t(s.tcp_timeout_syn_sent);
        tcp[state::SYN_SENT as usize] = t(s.tcp_timeout_syn_sent);
        tcp[state::SYN_RECV as usize] = t(s.tcp_timeout_syn_recv);
        tcp[state::ESTABLISHED as usize] = t(s.tcp_timeout_established);
        tcp[state::FIN_WAIT as usize] = t(s.tcp_timeout_fin_wait);
        tcp[state::CLOSE_WAIT as usize] = t(s.tcp_timeout_close_wait);
        tcp[state::LAST_ACK as usize] = t(s.tcp_timeout_last_ack);
        tcp[state::TIME_WAIT as usize] = t(s.tcp_timeout_time_wait);
        tcp[state::CLOSE as usize] = t(s.tcp_timeout_close);
        // SYN_SENT2 has no sysctl; the kernel's value is 2 minutes.
        tcp[state::SYN_SENT2 as usize] = 120 * NS;
        Sysctls {
            tcp,
            tcp_max_retrans_timeout: t(s.tcp_timeout_max_retrans),
            tcp_unack_timeout: t(s.tcp_timeout_unacknowledged),
            udp: t(s.udp_timeout),
            udp_stream: t(s.udp_timeout_stream),
            icmp: t(s.icmp_timeout),
            icmpv6: t(s.icmpv6_timeout),
            generic: t(s.generic_timeout),
            tcp_max_retrans: s.tcp_max_retrans.min(255) as u8,
            tcp_loose: s.tcp_loose.0,
            tcp_be_liberal: s.tcp_be_liberal.0,
            tcp_ignore_invalid_rst: s.tcp_ignore_invalid_rst.0,
            checksum: s.checksum.0,
        }
    }
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls::from_settings(&ConntrackSettings::default())
    }
}
