//! One tracked connection: its original-direction tuple, expiry, status bits, protocol state
//! and the per-direction verdict cache. At most 128 bytes (checked at compile time): two
//! cache lines, against the kernel's ~300-byte `nf_conn`.

use crate::flow::FlowKey;

use super::tcp::TcpConn;

/// Status bits (the kernel's `IPS_*` that we need).
pub mod status {
    /// A packet in the reply direction was seen (`IPS_SEEN_REPLY`).
    pub const SEEN_REPLY: u16 = 1 << 0;
    /// The connection is worth keeping under pressure (`IPS_ASSURED`): never early-dropped.
    pub const ASSURED: u16 = 1 << 1;
    /// Created from an expectation (`IPS_EXPECTED`): its original packets are RELATED until
    /// a reply is seen.
    pub const EXPECTED: u16 = 1 << 2;
    /// The FTP helper watches this connection.
    pub const HELPER_FTP: u16 = 1 << 3;
    /// The slot holds a live entry.
    pub const IN_USE: u16 = 1 << 15;
}

/// Direction of a packet relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    Original = 0,
    Reply = 1,
}

impl Dir {
    #[inline]
    pub fn idx(self) -> usize {
        self as usize
    }

    #[inline]
    pub fn other(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
}

/// A verdict remembered for one direction of a flow, valid while the ruleset generation,
/// the packet's ctstate and its ingress port are the same (packed into 8 bytes).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    zerocopy::TryFromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
#[repr(C)]
pub struct CachedVerdict {
    /// Ruleset generation the verdict came from; 0 = empty (generations start at 1).
    pub generation: u32,
    /// Matched forward rule, or `u16::MAX` for the policy.
    pub rule: u16,
    /// ctstate index (`CtState as u8`) the verdict was computed for.
    pub ctstate: u8,
    /// Ingress port index, and the accept bit in the top bit.
    pub port_accept: u8,
}

impl CachedVerdict {
    pub const POLICY: u16 = u16::MAX;
    const ACCEPT: u8 = 0x80;

    pub fn new(generation: u32, rule: Option<u32>, ctstate: u8, in_port: u8, accept: bool) -> Self {
        CachedVerdict {
            generation,
            rule: rule.map_or(Self::POLICY, |r| r as u16),
            ctstate,
            port_accept: (in_port & 0x7f) | if accept { Self::ACCEPT } else { 0 },
        }
    }

    /// The cached `(rule, accept)` if it is valid for this packet.
    #[inline]
    pub fn get(&self, generation: u32, ctstate: u8, in_port: u8) -> Option<(Option<u32>, bool)> {
        if self.generation == generation
            && self.ctstate == ctstate
            && self.port_accept & 0x7f == in_port & 0x7f
        {
            let rule = (self.rule != Self::POLICY).then_some(u32::from(self.rule));
            Some((rule, self.port_accept & Self::ACCEPT != 0))
        } else {
            None
        }
    }
}

/// A connection entry.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    zerocopy::TryFromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
#[repr(C)]
pub struct Entry {
    /// The original direction's tuple (the first packet's).
    pub key: FlowKey,
    /// Engine time (ns) at which the entry expires.
    pub expires: u64,
    /// TCP state; for other protocols a little per-protocol scratch (see `udp_stream_ts`).
    pub tcp: TcpConn,
    /// The connection mark (`ct->mark`): set by `connmark` and `save_mark` actions, read by
    /// `connmark` matches and `restore_mark`; a RELATED connection starts with its master's.
    pub mark: u32,
    pub cache: [CachedVerdict; 2],
    pub status: u16,
    /// The sync's refresh period (`sync.refresh`) in which the peer was last told about this
    /// entry, modulo 2^16 (`engine::sync::events`); 0 where sync is off. In what was padding,
    /// so the state file's layout is the same.
    pub sync_epoch: u16,
}

const _: () = assert!(std::mem::size_of::<Entry>() <= 128);

impl Entry {
    /// A fresh entry for the original tuple `key`: no status, no protocol state.
    pub fn new(key: FlowKey) -> Entry {
        Entry {
            key,
            ..Entry::default()
        }
    }

    /// An entry handed over from outside (a save file, a sync peer): `key`, expiring at
    /// `expires`, with `status` bits and, for TCP, the connection state `tcp_state`. Nothing
    /// says where the windows are, so each direction's first segment sets its window up and
    /// the checks are liberal, as for a connection picked up mid-stream (conntrackd's peers
    /// track synced entries the same way).
    pub fn handed_over(key: FlowKey, expires: u64, status: u16, tcp_state: Option<u8>) -> Entry {
        use super::tcp::flag;
        let mut e = Entry::new(key);
        e.expires = expires;
        e.status = status;
        if let Some(s) = tcp_state {
            e.tcp.state = s;
            for d in &mut e.tcp.seen {
                d.flags = flag::SACK_PERM | flag::BE_LIBERAL;
            }
        }
        e
    }

    #[inline]
    pub fn has(&self, bit: u16) -> bool {
        self.status & bit != 0
    }

    /// Whether this entry is one the engine could have made (for entries read back from a
    /// state file or a peer): a sound key, known status bits, a real TCP state and scales.
    /// The TCP window values themselves can be anything the tracker may meet.
    pub fn check(&self) -> Result<(), &'static str> {
        use super::tcp::state;
        const KNOWN: u16 = status::SEEN_REPLY
            | status::ASSURED
            | status::EXPECTED
            | status::HELPER_FTP
            | status::IN_USE;
        self.key.check()?;
        if self.status & !KNOWN != 0 {
            return Err("unknown status bits");
        }
        if self.key.proto == crate::wire::proto::TCP {
            let t = &self.tcp;
            if !(state::SYN_SENT..=state::SYN_SENT2).contains(&t.state) {
                return Err("not a TCP connection state");
            }
            if t.seen.iter().any(|d| d.td_scale > 14) || t.last_dir > 1 || t.last_wscale > 14 {
                return Err("a TCP window scale above 14 or a direction above 1");
            }
        }
        Ok(())
    }

    /// Whether this slot holds an entry that is alive at `now`.
    #[inline]
    pub fn is_live(&self, now: u64) -> bool {
        self.has(status::IN_USE) && self.expires > now
    }

    /// Whole seconds until the entry expires, as the listing's timeout column shows them.
    pub fn remaining_secs(&self, now: u64) -> u64 {
        self.expires.saturating_sub(now) / 1_000_000_000
    }

    #[inline]
    pub fn set(&mut self, bit: u16) {
        self.status |= bit;
    }

    /// UDP: time (ns) after which a replied flow counts as a stream. UDP has no TCP state, so
    /// the value lives in the TCP window words of the original direction.
    pub fn udp_stream_ts(&self) -> u64 {
        u64::from(self.tcp.seen[0].td_end) | u64::from(self.tcp.seen[0].td_maxend) << 32
    }

    pub fn set_udp_stream_ts(&mut self, ts: u64) {
        self.tcp.seen[0].td_end = ts as u32;
        self.tcp.seen[0].td_maxend = (ts >> 32) as u32;
    }
}
