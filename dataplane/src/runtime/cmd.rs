//! Requests the control thread puts on a worker's command queue, serviced between batches.
//!
//! A worker's conntrack shard is never shared: to list or flush it, the control thread asks
//! the worker, which walks a bounded slice of its table (`SCAN_SLOTS` slots) per request and
//! copies matching entries into a buffer the control thread allocated. The control thread
//! repeats with the returned cursor until the walk is done. A worker therefore never pauses
//! longer than one slice, and the listing is as consistent as `/proc/net/nf_conntrack`'s
//! (entries that come and go during the walk may or may not appear).

use crossbeam::channel::Sender;

use engine::conntrack::entry::Entry;
use engine::conntrack::filter::EntryFilter;
use engine::conntrack::save::Adopted;

use super::stats::Hists;

/// Table slots a worker walks per scan request.
pub const SCAN_SLOTS: usize = 8192;
/// Restored entries a worker takes in per adopt request.
pub const ADOPT_ENTRIES: usize = 1024;

/// What to do with the entries a scan matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanAction {
    /// Copy them into the reply.
    Copy,
    /// Make them expire now (the next lookup or sweep removes them) and count them.
    Expire,
    /// Make them expire by engine time `until` at the latest (`sync purge`), and count them.
    Shorten { until: u64 },
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
    /// Take in restored entries this worker owns (`engine::conntrack::save::adopt`); the
    /// emptied buffer goes back with the counts, to be freed off the worker.
    Adopt {
        entries: Vec<Entry>,
        reply: Sender<AdoptReply>,
    },
    /// Apply what the sync peer sent (sync with the external cache off), in order; the
    /// emptied buffer goes back with the counts.
    Inject {
        ops: Vec<Inject>,
        reply: Sender<InjectReply>,
    },
    /// Take `spare` (empty) as the recording set and send back the one recorded so far.
    SwapHist {
        spare: Box<Hists>,
        reply: Sender<Box<Hists>>,
    },
}

/// One change the sync peer sent.
#[derive(Debug, Clone, Copy)]
pub enum Inject {
    /// A new or updated connection (expiry in engine time).
    Put(Entry),
    /// A destroyed one.
    Remove(engine::flow::FlowKey),
}

/// What became of an `Inject` request's changes.
#[derive(Debug, Default)]
pub struct InjectReply {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    /// Not there to remove, or already expired when put.
    pub absent: u64,
    pub full: u64,
    pub invalid: u64,
    pub ops: Vec<Inject>,
}

/// What became of an `Adopt` request's entries.
#[derive(Debug, Default)]
pub struct AdoptReply {
    pub added: u64,
    pub present: u64,
    pub expired: u64,
    pub full: u64,
    /// Refused as invalid (never for entries the save reader made), with the first reason.
    pub invalid: u64,
    pub invalid_reason: Option<&'static str>,
    pub entries: Vec<Entry>,
}

impl AdoptReply {
    /// Count one entry's outcome.
    pub fn count(&mut self, r: Result<Adopted, &'static str>) {
        match r {
            Ok(Adopted::Added) => self.added += 1,
            Ok(Adopted::Present) => self.present += 1,
            Ok(Adopted::Expired) => self.expired += 1,
            Ok(Adopted::Full) => self.full += 1,
            Err(m) => {
                self.invalid += 1;
                self.invalid_reason.get_or_insert(m);
            }
        }
    }
}
