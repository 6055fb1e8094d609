//! Why a packet was dropped or marked INVALID: small `repr(u8)` enums that index per-worker
//! counter arrays on the hot path, and print as the machine-readable `reason` of `replay`.

macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $( $(#[$d:meta])* $v:ident = $s:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $( $(#[$d])* $v ),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            pub const COUNT: usize = Self::ALL.len();
            /// The snake_case name used in output and metrics.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$v => $s ),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons! {
    /// A frame that never reaches connection tracking, as the kernel's IP input path drops
    /// it before netfilter (bad IPv4 header, truncated IP header, bad lengths).
    L3Error {
        /// Shorter than its Ethernet/VLAN/IP header.
        Truncated = "truncated",
        /// IPv4 version/IHL or IPv6 version field wrong.
        BadIpHeader = "bad_ip_header",
        /// IPv4 header checksum does not verify.
        BadIpChecksum = "bad_ip_checksum",
        /// IP total/payload length larger than the frame, or smaller than the header.
        BadIpLength = "bad_ip_length",
    }
}

reasons! {
    /// Why conntrack classified a packet INVALID.
    InvalidReason {
        /// L4 header shorter than its fixed part, or than its own length field.
        Truncated = "truncated",
        /// L4 checksum does not verify (with `checksum: 1`).
        BadChecksum = "bad_checksum",
        /// TCP flag combination the kernel's tcp_valid_flags table rejects.
        TcpBadFlags = "tcp_bad_flags",
        /// TCP data offset below 5 or past the segment.
        TcpBadHeader = "tcp_bad_header",
        /// TCP segment outside the window (tcp_in_window).
        TcpOutOfWindow = "tcp_out_of_window",
        /// TCP packet the state table maps to sIV (e.g. a SYN/ACK with no SYN seen).
        TcpInvalidState = "tcp_invalid_state",
        /// A TCP packet that cannot start a connection (no SYN, tcp_loose 0, or not allowed).
        TcpNoSyn = "tcp_no_syn",
        /// RST with a sequence number outside the window.
        TcpRstOutOfWindow = "tcp_rst_out_of_window",
        /// ICMP error quoting a flow that is not tracked.
        IcmpNoFlow = "icmp_no_flow",
        /// ICMP reply (echo reply, ...) with no request tracked.
        IcmpUnsolicitedReply = "icmp_unsolicited_reply",
        /// ICMP error whose quoted packet is too short to name a flow.
        IcmpBadInner = "icmp_bad_inner",
        /// ICMP type conntrack does not track and that is not an error.
        IcmpUntrackable = "icmp_untrackable",
        /// Non-first IP fragment (not reassembled by this engine).
        Fragment = "fragment",
        /// No L4 header to track (IPv6 "no next header"): the kernel finds no protocol.
        NoL4Header = "no_l4_header",
    }
}

reasons! {
    /// Why the pipeline dropped a packet; indexes per-worker drop counters.
    DropReason {
        /// A rule with action drop or reject matched.
        Rule = "rule",
        /// No rule matched and the stage policy is drop.
        Policy = "policy",
        /// Dropped before conntrack: see [`L3Error`].
        Malformed = "malformed",
        /// A new flow with the table full and nothing to early-drop.
        TableFull = "table_full",
        /// The handoff ring to the owning worker was full.
        HandoffFull = "handoff_full",
        /// The TX ring of the out port was full.
        TxFull = "tx_full",
        /// No port to forward to (a port in no pair).
        NoRoute = "no_route",
        /// A connection helper refused the packet (a partial FTP command).
        Helper = "helper",
    }
}
