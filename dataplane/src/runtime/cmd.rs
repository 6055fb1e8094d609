//! Requests the control thread puts on a worker's command queue, serviced between batches.
//!
//! A worker's conntrack shard is never shared: to list or flush it, the control thread asks
//! the worker, which walks a bounded slice of its table (`SCAN_SLOTS` slots) per request and
//! copies matching entries into a buffer the control thread allocated. The control thread
//! repeats with the returned cursor until the walk is done. A worker therefore never pauses
//! longer than one slice, and the listing is as consistent as `/proc/net/nf_conntrack`'s
//! (entries that come and go during the walk may or may not appear).

use std::net::IpAddr;

use crossbeam::channel::Sender;

use config::protocol::{ConntrackFilter, Family};

use engine::conntrack::entry::{status, Entry};
use engine::conntrack::tcp::state;
use engine::packet::{v4_mapped, Addr, IpFamily};

use super::stats::Hists;

/// Table slots a worker walks per scan request.
pub const SCAN_SLOTS: usize = 8192;

/// What to do with the entries a scan matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanAction {
    /// Copy them into the reply.
    Copy,
    /// Make them expire now (the next lookup or sweep removes them) and count them.
    Expire,
}

#[derive(Debug)]
pub struct ScanReply {
    /// Where to continue; `None` when the walk reached the end of the table.
    pub next: Option<usize>,
    pub matched: u64,
    pub entries: Vec<Entry>,
}

#[derive(Debug)]
pub enum WorkerCmd {
    Scan {
        from: usize,
        filter: EntryFilter,
        action: ScanAction,
        /// Capacity `SCAN_SLOTS`: the worker fills it without allocating.
        buf: Vec<Entry>,
        reply: Sender<ScanReply>,
    },
    /// Remove every entry and expectation now.
    FlushAll { reply: Sender<u64> },
    /// Run the expiry sweep over `slots` slots (reaps entries a filtered flush expired).
    Sweep { slots: usize, reply: Sender<usize> },
    /// Take `spare` (empty) as the recording set and send back the one recorded so far.
    SwapHist {
        spare: Box<Hists>,
        reply: Sender<Box<Hists>>,
    },
}

/// A conntrack filter in engine terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryFilter {
    pub family: Option<IpFamily>,
    pub proto: Option<u8>,
    pub src: Option<Addr>,
    pub dst: Option<Addr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub port: Option<u16>,
    pub tcp_state: Option<u8>,
    /// Match the tuple in either direction (`conntrack -G`).
    pub either_direction: bool,
}

fn addr(ip: IpAddr) -> (IpFamily, Addr) {
    match ip {
        IpAddr::V4(a) => (IpFamily::V4, v4_mapped(a.octets())),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (IpFamily::V4, v4_mapped(v4.octets())),
            None => (IpFamily::V6, a.octets()),
        },
    }
}

impl EntryFilter {
    /// The engine form of a protocol filter; an unknown TCP state name is an error naming
    /// the known ones.
    pub fn from_request(
        f: &ConntrackFilter,
        either_direction: bool,
    ) -> Result<EntryFilter, String> {
        let mut family = f.family.map(|x| match x {
            Family::Ipv4 => IpFamily::V4,
            Family::Ipv6 => IpFamily::V6,
        });
        let mut ip = |a: Option<IpAddr>| -> Result<Option<Addr>, String> {
            let Some(a) = a else { return Ok(None) };
            let (fam, bytes) = addr(a);
            if family.is_some_and(|x| x != fam) {
                return Err(format!("address {a} is not of the family asked for"));
            }
            family = Some(fam);
            Ok(Some(bytes))
        };
        let src = ip(f.src)?;
        let dst = ip(f.dst)?;
        let tcp_state = match &f.state {
            None => None,
            Some(s) => {
                let up = s.to_ascii_uppercase();
                let i = state::NAMES.iter().position(|n| *n == up).ok_or_else(|| {
                    format!(
                        "unknown TCP state `{s}`; states are {}",
                        state::NAMES[1..].join(", ")
                    )
                })?;
                Some(i as u8)
            }
        };
        Ok(EntryFilter {
            family,
            proto: f.proto,
            src,
            dst,
            sport: f.sport,
            dport: f.dport,
            port: f.port,
            tcp_state,
            either_direction,
        })
    }

    fn matches_key(&self, k: &engine::flow::FlowKey) -> bool {
        self.family.is_none_or(|f| f == k.family)
            && self.proto.is_none_or(|p| p == k.proto)
            && self.src.is_none_or(|a| a == k.src)
            && self.dst.is_none_or(|a| a == k.dst)
            && self.sport.is_none_or(|p| p == k.sport)
            && self.dport.is_none_or(|p| p == k.dport)
            && self.port.is_none_or(|p| p == k.sport || p == k.dport)
    }

    /// Whether a live entry matches.
    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(s) = self.tcp_state {
            if e.key.proto != 6 || e.tcp.state != s {
                return false;
            }
        }
        self.matches_key(&e.key) || (self.either_direction && self.matches_key(&e.key.reverse()))
    }
}

/// Whether slot `e` holds an entry that is alive at `now`.
#[inline]
pub fn live(e: &Entry, now: u64) -> bool {
    e.has(status::IN_USE) && e.expires > now
}
