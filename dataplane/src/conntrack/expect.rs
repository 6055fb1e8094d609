//! Expectations: connections a helper announced (FTP data), which start RELATED.
//!
//! Like the kernel's, an expectation names the data connection's addresses, protocol and
//! destination port, with any source port; it is single-use, lives `FTP_EXPECT_TIMEOUT`, and
//! a master has at most one at a time (the FTP helper's `max_expected = 1`). The table is
//! small and fixed-size: it is only consulted on a conntrack miss while it is non-empty.

use crate::flow::FlowKey;
use crate::packet::{Addr, IpFamily};

/// nf_conntrack_ftp's expect policy: 5 minutes.
pub const FTP_EXPECT_TIMEOUT_NS: u64 = 300 * 1_000_000_000;

/// One expected connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    pub family: IpFamily,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub dport: u16,
    pub expires: u64,
    /// The control connection (its original tuple) that announced it.
    pub master: FlowKey,
}

impl Expectation {
    fn matches(&self, k: &FlowKey) -> bool {
        self.family == k.family
            && self.proto == k.proto
            && self.dport == k.dport
            && self.src == k.src
            && self.dst == k.dst
    }
}

/// Why an expectation could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectTableFull;

/// The pending expectations of a shard.
#[derive(Debug)]
pub struct Expectations {
    list: Vec<Expectation>,
    max: usize,
}

impl Expectations {
    /// A table for `max` expectations (`expect_max`), allocated now.
    pub fn new(max: usize) -> Expectations {
        Expectations {
            list: Vec::with_capacity(max),
            max,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Expectation> {
        self.list.iter()
    }

    /// Add an expectation, replacing any other of the same master.
    pub fn add(&mut self, e: Expectation, now: u64) -> Result<(), ExpectTableFull> {
        self.list
            .retain(|x| x.master != e.master && x.expires > now);
        if self.list.len() >= self.max {
            return Err(ExpectTableFull);
        }
        self.list.push(e);
        Ok(())
    }

    /// Take (consume) the live expectation matching a new connection's first packet.
    /// `master_alive` says whether the announcing connection still exists.
    pub fn take(
        &mut self,
        k: &FlowKey,
        now: u64,
        master_alive: impl Fn(&FlowKey) -> bool,
    ) -> Option<Expectation> {
        self.list.retain(|x| x.expires > now);
        let i = self.list.iter().position(|x| x.matches(k))?;
        let e = self.list.swap_remove(i);
        master_alive(&e.master).then_some(e)
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }
}
