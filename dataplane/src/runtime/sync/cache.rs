//! The external cache: entries the peer sent, held aside (not forwarding) until a commit
//! makes them live, as conntrackd's external cache. An entry holds its timeout as the peer
//! last sent it: the commit gives it that long from the commit on (conntrackd commits the
//! TIMEOUT it received, not aged either).

use std::collections::HashMap;

use engine::conntrack::entry::Entry;
use engine::flow::FlowKey;

#[derive(Debug, Default)]
pub(crate) struct ExternalCache {
    /// By original tuple; an entry's `expires` is its timeout (ns), not a time.
    entries: HashMap<FlowKey, Entry>,
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

    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
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
