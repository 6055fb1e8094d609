//! Expectations: connections a helper announced (FTP data), which start RELATED.
//!
//! Like the kernel's, an expectation names the data connection's addresses, protocol and
//! destination port, with any source port; it is single-use, lives `FTP_EXPECT_TIMEOUT`, and
//! a master has at most one at a time (the FTP helper's `max_expected = 1`). The table is
//! small and fixed-size: it is only consulted on a conntrack miss while it is non-empty.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

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
    /// The control connection's mark when it announced it: the data connection's first
    /// (the kernel reads the master's mark when the data connection arrives; the two differ
    /// only if a rule changed the control connection's mark in between).
    pub mark: u32,
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

    /// Take (consume) the live expectation matching a new connection's first packet. An
    /// expectation outlives its master only until it times out (the kernel removes it with
    /// the master; the master may live in another shard here).
    pub fn take(&mut self, k: &FlowKey, now: u64) -> Option<Expectation> {
        self.list.retain(|x| x.expires > now);
        let i = self.list.iter().position(|x| x.matches(k))?;
        Some(self.list.swap_remove(i))
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }
}

/// The expectations of all shards of one engine. A data connection hashes elsewhere than its
/// control connection, so expectations cannot live in a shard: they live here, behind a lock
/// that the packet path takes only on a conntrack miss while the table is non-empty (an
/// atomic count says so without locking), and when the FTP helper announces a connection.
pub struct SharedExpectations {
    count: AtomicUsize,
    inner: Mutex<Inner>,
}

/// Called with the whole list after every change, under the table's lock: the daemon copies
/// it into its state file (`crate::state::expect`), so expectations outlive the process.
pub type Mirror = Box<dyn FnMut(&[Expectation]) + Send>;

struct Inner {
    list: Expectations,
    mirror: Option<Mirror>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("list", &self.list)
            .field("mirror", &self.mirror.is_some())
            .finish()
    }
}

impl std::fmt::Debug for SharedExpectations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedExpectations")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl SharedExpectations {
    pub fn new(max: usize) -> SharedExpectations {
        SharedExpectations {
            count: AtomicUsize::new(0),
            inner: Mutex::new(Inner {
                list: Expectations::new(max),
                mirror: None,
            }),
        }
    }

    /// Copy the list out through `mirror` after every change from now on (and once now).
    pub fn set_mirror(&self, mirror: Mirror) {
        self.with(
            |()| true,
            |x| {
                x.mirror = Some(mirror);
            },
        );
    }

    /// Stop mirroring (a clean stop, before the state file is closed).
    pub fn clear_mirror(&self) {
        self.with(
            |()| false,
            |x| {
                x.mirror = None;
            },
        );
    }

    /// Whether no expectation is pending (no lock taken).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Run `f` under the lock; `changed(result)` says whether the list may have changed,
    /// and then the mirror sees it.
    fn with<R>(&self, changed: impl FnOnce(&R) -> bool, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding the lock cannot leave the list inconsistent (every
        // operation is a single Vec edit), so a poisoned lock is still usable.
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let r = f(&mut g);
        self.count.store(g.list.len(), Ordering::Release);
        if changed(&r) {
            let Inner { list, mirror } = &mut *g;
            if let Some(m) = mirror {
                m(&list.list);
            }
        }
        r
    }

    pub fn add(&self, e: Expectation, now: u64) -> Result<(), ExpectTableFull> {
        self.with(Result::is_ok, |x| x.list.add(e, now))
    }

    pub fn take(&self, k: &FlowKey, now: u64) -> Option<Expectation> {
        if self.is_empty() {
            return None;
        }
        self.with(Option::is_some, |x| x.list.take(k, now))
    }

    pub fn clear(&self) {
        self.with(|()| true, |x| x.list.clear());
    }

    /// A copy of the pending expectations (for listings).
    pub fn snapshot(&self) -> Vec<Expectation> {
        self.with(|_| false, |x| x.list.iter().copied().collect())
    }
}
