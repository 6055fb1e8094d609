//! The tables of `hashlimit` matches (iptables' `-m hashlimit`, the kernel's xt_hashlimit):
//! per key (addresses and ports, as the table's mode says) a token bucket, kept as GCRA's
//! theoretical arrival time as `limit.rs` keeps a rule's.
//!
//! A table belongs to a name and a family and is shared by every rule naming it; as the
//! kernel's, it takes its settings (rate, burst, mode, masks, expiry, size) from the first
//! rule that made it, and keeps them, with its keys, across ruleset reloads while a rule
//! names it ([`Tables::carry`]). A key idle for `expire` milliseconds starts over with a
//! full bucket. A table holds at most `max` keys: one more first forgets the expired ones
//! (the kernel's garbage collection, here when it is needed), and with none expired the
//! packet is dropped, as the kernel drops it.
//!
//! Each table sits behind a mutex (the kernel locks its table too), taken only by packets
//! that reach a `hashlimit` rule. Its capacity is reserved when it is made: no allocation
//! on the packet path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use ahash::RandomState;

use config::hashlimit::{HashLimit, HashMode};
use config::ruleset::Family;

use crate::packet::{IpFamily, PacketMeta};

/// What the match says of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Match,
    NoMatch,
    /// The table is full: the kernel drops the packet (hotdrop).
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: u128,
    dst: u128,
    sport: u16,
    dport: u16,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// GCRA's theoretical arrival time (engine ns).
    tat: u64,
    /// The last packet's time, for expiry.
    seen: u64,
}

#[derive(Debug)]
struct Config {
    interval: u64,
    tolerance: u64,
    above: bool,
    mode: Vec<HashMode>,
    srcmask: u8,
    dstmask: u8,
    expire: u64,
    max: usize,
}

#[derive(Debug)]
pub struct Table {
    cfg: Config,
    keys: Mutex<HashMap<Key, Bucket, RandomState>>,
}

fn bits(family: IpFamily, a: &[u8; 16]) -> u128 {
    match family {
        IpFamily::V4 => u128::from(u32::from_be_bytes([a[12], a[13], a[14], a[15]])),
        IpFamily::V6 => u128::from_be_bytes(*a),
    }
}

fn masked(v: u128, family: IpFamily, prefix: u8) -> u128 {
    let width = match family {
        IpFamily::V4 => 32u32,
        IpFamily::V6 => 128,
    };
    let host = width - u32::from(prefix).min(width);
    if host >= 128 {
        0
    } else {
        v & !((1u128 << host) - 1)
    }
}

impl Table {
    fn new(h: &HashLimit, family: Family) -> Table {
        let (rate, above) = h.rate().unwrap_or((
            config::limit::Rate {
                count: 1,
                per_secs: 1,
            },
            false,
        ));
        let interval = rate.interval_ns().max(1);
        let width = if family == Family::Ipv4 { 32 } else { 128 };
        let max = h.max as usize;
        Table {
            cfg: Config {
                interval,
                tolerance: interval.saturating_mul(u64::from(h.burst.max(1) - 1)),
                above,
                mode: h.mode.clone(),
                srcmask: h.srcmask.unwrap_or(width),
                dstmask: h.dstmask.unwrap_or(width),
                expire: u64::from(h.expire) * 1_000_000,
                max,
            },
            keys: Mutex::new(HashMap::with_capacity_and_hasher(
                max,
                RandomState::with_seeds(0x6a5, 0x11_3173, 0x7ab1e, 0x0005_eed0),
            )),
        }
    }

    fn key(&self, m: &PacketMeta) -> Key {
        let has = |x| self.cfg.mode.contains(&x);
        Key {
            src: if has(HashMode::Srcip) {
                masked(bits(m.family, &m.src), m.family, self.cfg.srcmask)
            } else {
                0
            },
            dst: if has(HashMode::Dstip) {
                masked(bits(m.family, &m.dst), m.family, self.cfg.dstmask)
            } else {
                0
            },
            sport: if has(HashMode::Srcport) { m.sport } else { 0 },
            dport: if has(HashMode::Dstport) { m.dport } else { 0 },
        }
    }

    /// The answer for packet `m` at `now`, taking a token when it is within the rate.
    pub fn check(&self, m: &PacketMeta, now: u64) -> Answer {
        let k = self.key(m);
        let cfg = &self.cfg;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !keys.contains_key(&k) && keys.len() >= cfg.max {
            keys.retain(|_, b| now.saturating_sub(b.seen) <= cfg.expire);
            if keys.len() >= cfg.max {
                return Answer::Drop;
            }
        }
        let b = keys.entry(k).or_insert(Bucket { tat: 0, seen: now });
        if now.saturating_sub(b.seen) > cfg.expire {
            b.tat = 0; // forgotten: a full bucket again
        }
        b.seen = now;
        let start = b.tat.max(now);
        let within = start - now <= cfg.tolerance;
        if within {
            b.tat = start.saturating_add(cfg.interval);
        }
        if within == cfg.above {
            Answer::NoMatch
        } else {
            Answer::Match
        }
    }
}

/// Every table of a ruleset, by name and family.
#[derive(Debug, Default)]
pub struct Tables(BTreeMap<(String, bool), Arc<Table>>);

impl Tables {
    /// The tables of `previous`, to be reused by the rules that still name them.
    pub fn carry(previous: Option<&Tables>) -> Tables {
        Tables(previous.map(|p| p.0.clone()).unwrap_or_default())
    }

    /// A rule's table, found or made (a rule of no single family uses IPv4's).
    pub fn get(&mut self, h: &HashLimit, family: Option<Family>) -> Arc<Table> {
        let family = family.unwrap_or(Family::Ipv4);
        Arc::clone(
            self.0
                .entry((h.name.clone(), family == Family::Ipv6))
                .or_insert_with(|| Arc::new(Table::new(h, family))),
        )
    }

    /// Forget the tables no rule names any more.
    pub fn keep_only(&mut self, used: &[(String, bool)]) {
        self.0.retain(|k, _| used.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(src: &str) -> PacketMeta {
        let frame = crate::wire::build::Udp::new(format!("{src}:1000").as_str(), "10.9.9.9:53")
            .payload(*b"q")
            .frame();
        crate::wire::parse(&frame).unwrap()
    }

    #[test]
    fn a_bucket_per_source_and_a_bounded_table() {
        let h: HashLimit = HashLimit {
            name: "t".into(),
            upto: Some("1/second".parse().unwrap()),
            above: None,
            burst: 2,
            mode: vec![HashMode::Srcip],
            srcmask: None,
            dstmask: None,
            expire: 3000,
            max: 2,
        };
        let t = Table::new(&h, Family::Ipv4);
        let s = 1_000_000_000u64;
        let (a, b, c) = (pkt("10.0.0.1"), pkt("10.0.0.2"), pkt("10.0.0.3"));
        // Two at once from a, then the third is over its rate; b has its own bucket.
        assert_eq!(t.check(&a, s), Answer::Match);
        assert_eq!(t.check(&a, s), Answer::Match);
        assert_eq!(t.check(&a, s), Answer::NoMatch);
        assert_eq!(t.check(&b, s), Answer::Match);
        // A third key in a full table with nothing expired: dropped.
        assert_eq!(t.check(&c, s), Answer::Drop);
        // One second later a has a token again; four seconds idle and c finds room.
        assert_eq!(t.check(&a, 2 * s), Answer::Match);
        assert_eq!(t.check(&c, 6 * s), Answer::Match);
    }
}
