//! The external cache: entries the peer sent, held aside (not forwarding) until a commit
//! makes them live, as conntrackd's external cache. An entry holds its timeout as the peer
//! last sent it: the commit gives it that long from the commit on (conntrackd commits the
//! TIMEOUT it received, not aged either). FTP expectations (`expectation_sync`) are held the
//! same way, and committed after the entries, each with its master's mark.

use std::collections::HashMap;

use engine::conntrack::entry::Entry;
use engine::conntrack::expect::Expectation;
use engine::flow::FlowKey;

#[derive(Debug, Default)]
pub(crate) struct ExternalCache {
    /// By original tuple; an entry's `expires` is its timeout (ns), not a time.
    entries: HashMap<FlowKey, Entry>,
    /// By the expected connection's tuple (source port 0); `expires` is the timeout too.
    expectations: HashMap<FlowKey, Expectation>,
}

/// The tuple an expectation is known by: the expected connection, any source port.
pub(crate) fn expected_key(x: &Expectation) -> FlowKey {
    FlowKey::new(x.family, x.src, x.dst, x.proto, 0, x.dport)
}

impl ExternalCache {
    /// A new or updated entry, `timeout_ns` its timeout as sent.
    pub fn put(&mut self, mut e: Entry, timeout_ns: u64) {
        e.expires = timeout_ns;
        self.entries.insert(e.key, e);
    }

    /// A destroyed one; whether it was there.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        self.entries.remove(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A new or updated expectation, its `expires` its timeout.
    pub fn put_expectation(&mut self, x: Expectation) {
        self.expectations.insert(expected_key(&x), x);
    }

    pub fn remove_expectation(&mut self, x: &Expectation) -> bool {
        self.expectations.remove(&expected_key(x)).is_some()
    }

    pub fn expectations(&self) -> usize {
        self.expectations.len()
    }

    /// Empty both: how many entries and expectations were there.
    pub fn clear(&mut self) -> (usize, usize) {
        let n = (self.entries.len(), self.expectations.len());
        self.entries.clear();
        self.expectations.clear();
        n
    }

    /// The expectations as live ones from `now` on, each with its master's mark where the
    /// master is in the cache.
    pub fn committed_expectations(&self, now: u64) -> Vec<Expectation> {
        self.expectations
            .values()
            .map(|x| Expectation {
                expires: now.saturating_add(x.expires),
                mark: self.entries.get(&x.master).map_or(x.mark, |m| m.mark),
                ..*x
            })
            .collect()
    }

    /// The entries as live ones from engine time `now` on (the cache keeps them: conntrackd's
    /// commit does not flush; `sync flush` does).
    pub fn committed(&self, now: u64) -> Vec<Entry> {
        self.entries
            .values()
            .map(|e| {
                let mut live = *e;
                live.expires = now.saturating_add(e.expires);
                live
            })
            .collect()
    }
}
