//! The state file: the workers' conntrack slabs and the shared expectations live in one
//! `MAP_SHARED` file mapping (`statewall run --state PATH`), so the table outlives the
//! process. The packet path writes entries as it always did — the memory just happens to be
//! the file's pages — so keeping state restorable costs it nothing, and a `kill -9` loses
//! nothing the workers had written: the kernel keeps the pages of a killed process's shared
//! mapping in the file.
//!
//! At start a new file is made beside the old one (`PATH.new`), the old one is read back
//! with every header field and every slot checked (`engine::state`), each live entry is
//! adopted by the shard that owns it in *this* process (the hash seed and the worker count
//! may differ), expired ones stay behind, and the new file is renamed over the old: a crash
//! during the restore leaves the old file as it was. A file that fails its checks is kept
//! as `PATH.rejected` and the daemon starts empty, saying why. A clean stop writes a CRC of
//! the data into the header; a file from a crash has none, and its slots are checked one by
//! one instead. `--state none` maps anonymous memory with the same layout.
//!
//! The layout (header, slots, expectation records) is the engine's: `engine::state`.

#![expect(
    unsafe_code,
    reason = "the slabs are views into one shared file mapping; kept in this module"
)]

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use memmap2::{Mmap, MmapMut, MmapOptions};

use engine::conntrack::expect::{Expectation, SharedExpectations};
use engine::conntrack::{AdoptError, Slot};
use engine::state::read::{Reader, Rebase, SlotRead};
use engine::state::{self as layout, Geometry, Header, HEADER_SIZE};

/// The default state file (`/run` is emptied at boot: a reboot starts empty, as the kernel's
/// table does).
pub const DEFAULT_STATE: &str = "/run/statewall/state";

/// The mapping, shared by the slabs and the expectation mirror; unmapped when the last goes.
#[derive(Debug)]
struct Map {
    mmap: MmapMut,
    /// `mmap`'s base, taken once: every view is derived from it, none from `mmap` again
    /// while views exist.
    base: NonNull<u8>,
}

// SAFETY: `Map` only owns the mapping; the views that write through `base` are each used by
// one thread at a time (a slab by its worker, the expectation region under the table's lock).
unsafe impl Send for Map {}
// SAFETY: as above: `Map` itself gives no access to the memory through `&self`.
unsafe impl Sync for Map {}

/// One shard's slots in the mapping: what a worker's table keeps its entries in.
#[derive(Debug)]
pub struct ShardSlab {
    ptr: NonNull<Slot>,
    len: usize,
    _map: Arc<Map>,
}

// SAFETY: a slab is the only view of its byte range (`StateFile::new` hands out disjoint
// ranges, once each), and it moves to its worker's thread with the pipeline that owns it.
unsafe impl Send for ShardSlab {}

impl Deref for ShardSlab {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        // SAFETY: `ptr..ptr+len` lies inside the live mapping (kept alive by `_map`), is
        // 64-byte aligned (page-aligned base + HEADER_SIZE + a multiple of 128), every slot
        // was written with a valid `Slot` before this view existed, and no other view
        // overlaps it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for ShardSlab {
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as in `deref`; `&mut self` makes this the only live reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The expectation region: written by the mirror, under the expectation table's lock.
struct ExpectRegion {
    ptr: NonNull<u8>,
    len: usize,
    _map: Arc<Map>,
}

// SAFETY: the region is disjoint from every slab and only the mirror (one closure, called
// under the expectation table's mutex) writes it.
unsafe impl Send for ExpectRegion {}

impl ExpectRegion {
    fn write(&mut self, list: &[Expectation]) {
        // SAFETY: the range lies inside the live mapping, is initialized (zeroed by the
        // mapping, then only written as bytes), and `&mut self` is its only view.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) };
        layout::expect::write(list, bytes);
    }
}

/// What the start made of the old file, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The file read, if there was one and it passed its checks.
    pub from: Option<PathBuf>,
    /// Why an existing file was not read (it is kept aside as `PATH.rejected`).
    pub rejected: Option<String>,
    /// Whether the old file came from a clean stop (else from a crash or `kill -9`).
    pub clean: bool,
    pub restored: usize,
    pub expired: usize,
    pub corrupt: usize,
    /// Entries the new table had no room for (a smaller `max`).
    pub no_room: usize,
    pub duplicates: usize,
    pub expectations: usize,
    /// Time the restore took, from opening the old file to renaming the new one.
    pub took: std::time::Duration,
}

impl RestoreReport {
    /// One line for the log.
    pub fn line(&self) -> String {
        if let Some(why) = &self.rejected {
            return format!("state: {why}; starting with an empty table");
        }
        let Some(from) = &self.from else {
            return "state: no state file yet; starting with an empty table".into();
        };
        let mut s = format!(
            "state: restored {} connection(s) and {} expectation(s) from {} ({}) in {} ms",
            self.restored,
            self.expectations,
            from.display(),
            if self.clean {
                "clean stop"
            } else {
                "not stopped cleanly: every slot checked"
            },
            self.took.as_millis()
        );
        for (n, what) in [
            (self.expired, "expired while stopped"),
            (self.corrupt, "corrupt, skipped"),
            (self.no_room, "no room in the new table"),
            (self.duplicates, "duplicates"),
        ] {
            if n > 0 {
                let _ = write!(s, "; {n} {what}");
            }
        }
        s
    }
}

/// Why the state file could not be set up (the daemon does not start: an operator asked for
/// state and would silently lose it).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state file {path}: {what}: {err}; give a writable path with --state PATH, or --state none"
    )]
    Io {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    #[error("state: cannot map {bytes} bytes of anonymous memory: {0}", bytes = .1)]
    Anon(std::io::Error, usize),
    #[error("state file {0} is in use by another running statewall (it holds {0}.lock); give each daemon its own --state PATH")]
    InUse(PathBuf),
}

/// The mapped state of a running daemon.
#[derive(Debug)]
pub struct StateFile {
    /// `None` for `--state none`.
    path: Option<PathBuf>,
    map: Option<Arc<Map>>,
    header: Header,
    /// `PATH.lock`, locked while this daemon runs: one daemon per state file.
    _lock: Option<File>,
}

/// What [`StateFile::open`] hands the runtime: one slab per shard, and the old file to
/// restore from once the shards exist.
#[derive(Debug)]
pub struct Opened {
    pub state: StateFile,
    pub slabs: Vec<ShardSlab>,
    pub old: Option<OldFile>,
    pub report: RestoreReport,
    started: Instant,
}

/// An old state file that passed its header checks, mapped read-only.
#[derive(Debug)]
pub struct OldFile {
    path: PathBuf,
    map: Mmap,
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |err| StateError::Io {
        path: path.to_path_buf(),
        what,
        err,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Wall-clock ns since the Unix epoch.
fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl StateFile {
    /// Map a fresh state of `geometry` (at `path`, or anonymous), and find the old file at
    /// `path` if there is one. `now` is engine time now: the file records the wall-clock
    /// time of engine time 0, so the next process can carry the timeouts on.
    pub fn open(path: Option<&Path>, geometry: Geometry, now: u64) -> Result<Opened, StateError> {
        Self::open_at(path, geometry, now, unix_ns())
    }

    /// [`Self::open`] with the wall clock read by the caller (tests move it on).
    fn open_at(
        path: Option<&Path>,
        geometry: Geometry,
        now: u64,
        wall_ns: u64,
    ) -> Result<Opened, StateError> {
        let started = Instant::now();
        let epoch_unix_ns = wall_ns.saturating_sub(now);
        let header = Header {
            geometry,
            epoch_unix_ns,
            clean: None,
        };
        let len = geometry.file_len();
        let mut report = RestoreReport::default();
        let mut old = None;
        let mut lock = None;
        let mmap = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io(dir, "cannot create its directory"))?;
                }
                let lock_path = with_suffix(path, ".lock");
                let l = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&lock_path)
                    .map_err(io(&lock_path, "cannot create"))?;
                match l.try_lock() {
                    Ok(()) => lock = Some(l),
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(StateError::InUse(path.to_path_buf()))
                    }
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(io(&lock_path, "cannot lock")(e))
                    }
                }
                old = Self::find_old(path, &mut report)?;
                let tmp = with_suffix(path, ".new");
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io(&tmp, "cannot create"))?;
                file.set_len(len as u64)
                    .map_err(io(&tmp, "cannot size it (is the file system full?)"))?;
                // SAFETY: the file is ours (just created, mode 0600, under a root-only
                // directory); nothing else truncates it while mapped.
                unsafe { MmapMut::map_mut(&file) }.map_err(io(&tmp, "cannot map"))?
            }
            None => MmapOptions::new()
                .len(len)
                .map_anon()
                .map_err(|e| StateError::Anon(e, len))?,
        };
        let _ = mmap.advise(memmap2::Advice::HugePage);
        let mut mmap = mmap;
        header.write(&mut mmap[..HEADER_SIZE]);
        let base = NonNull::new(mmap.as_mut_ptr()).expect("a mapping is never at address 0");
        let map = Arc::new(Map { mmap, base });
        let slabs = (0..geometry.shards as usize)
            .map(|s| {
                let range = geometry.slab(s);
                let n = range.len() / layout::SLOT_SIZE;
                // SAFETY: `range` lies inside the mapping (`file_len` covers every slab).
                let start = unsafe { map.base.as_ptr().add(range.start) };
                assert!(
                    start.align_offset(std::mem::align_of::<Slot>()) == 0,
                    "slabs start page-aligned plus a multiple of 128 bytes"
                );
                #[expect(
                    clippy::cast_ptr_alignment,
                    reason = "checked just above: the mapping is page-aligned and so is every slab"
                )]
                let first = start.cast::<Slot>();
                for i in 0..n {
                    // SAFETY: slot `i` of this range is inside the mapping and 64-byte
                    // aligned; writing makes it a valid `Slot` before any view exists (the
                    // mapping's zero bytes are not one: the IP family has no 0).
                    unsafe { first.add(i).write(Slot::default()) };
                }
                ShardSlab {
                    ptr: NonNull::new(first).expect("inside a mapping"),
                    len: n,
                    _map: Arc::clone(&map),
                }
            })
            .collect();
        Ok(Opened {
            state: StateFile {
                path: path.map(Path::to_path_buf),
                map: Some(map),
                header,
                _lock: lock,
            },
            slabs,
            old,
            report,
            started,
        })
    }

    /// The old file at `path`, if it exists and its header checks out; a file that fails
    /// is renamed to `PATH.rejected` and the reason goes into `report`.
    fn find_old(path: &Path, report: &mut RestoreReport) -> Result<Option<OldFile>, StateError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path, "cannot open")(e)),
        };
        let reject = |why: String, report: &mut RestoreReport| {
            let aside = with_suffix(path, ".rejected");
            let kept = match std::fs::rename(path, &aside) {
                Ok(()) => format!("kept as {}", aside.display()),
                Err(e) => format!("could not keep it aside: {e}"),
            };
            report.rejected = Some(format!("state file {} {why} ({kept})", path.display()));
        };
        let len = file.metadata().map_err(io(path, "cannot stat"))?.len();
        if len == 0 {
            reject("is empty: truncated".into(), report);
            return Ok(None);
        }
        // SAFETY: read-only mapping of a file only statewall writes; it is read through
        // `Reader`, which checks every byte it uses.
        let map = unsafe { Mmap::map(&file) }.map_err(io(path, "cannot map"))?;
        let checked = Reader::new(&map).map(|_| ());
        match checked {
            Ok(()) => Ok(Some(OldFile {
                path: path.to_path_buf(),
                map,
            })),
            Err(e) => {
                drop(map);
                reject(format!("cannot be used: {e}"), report);
                Ok(None)
            }
        }
    }

    /// The wall-clock time of engine time 0 of this run.
    pub fn epoch_unix_ns(&self) -> u64 {
        self.header.epoch_unix_ns
    }

    /// Copy the expectation table into the file after every change from now on.
    pub fn mirror_expectations(&self, expect: &SharedExpectations) {
        let Some(map) = &self.map else { return };
        let range = self.header.geometry.expectations();
        let mut region = ExpectRegion {
            // SAFETY: `range` lies inside the mapping (`file_len` ends with it).
            ptr: NonNull::new(unsafe { map.base.as_ptr().add(range.start) })
                .expect("inside a mapping"),
            len: range.len(),
            _map: Arc::clone(map),
        };
        expect.set_mirror(Box::new(move |list| region.write(list)));
    }

    /// Make the new file the state file (after the restore).
    fn commit(&self) -> Result<(), StateError> {
        if let Some(path) = &self.path {
            let tmp = with_suffix(path, ".new");
            std::fs::rename(&tmp, path).map_err(io(path, "cannot rename the new file over"))?;
        }
        Ok(())
    }

    /// A clean stop: once every slab is gone (the workers have stopped), take the CRC of the
    /// data and mark the header clean. The next start then checks the whole file against it.
    /// Returns whether it could (a slab still alive means a worker did not stop).
    pub fn close_clean(&mut self, expect: &SharedExpectations) -> bool {
        // The mirror holds a reference to the mapping: drop it first.
        expect.clear_mirror();
        let Some(map) = self.map.take() else {
            return true;
        };
        let Ok(mut map) = Arc::try_unwrap(map) else {
            return false;
        };
        if self.path.is_none() {
            return true;
        }
        let crc = layout::data_crc(&map.mmap);
        Header {
            clean: Some(crc),
            ..self.header
        }
        .write(&mut map.mmap[..HEADER_SIZE]);
        map.mmap.flush().is_ok()
    }
}

impl Opened {
    /// Adopt the old file's live entries into the shards (`adopt(owner_hash, entry)` puts
    /// one into the shard that owns it) and its expectations into `expect`, then make the
    /// new file the state file. `now`: engine time now.
    pub fn restore(
        mut self,
        now: u64,
        expect: &SharedExpectations,
        mut adopt: impl FnMut(engine::conntrack::entry::Entry) -> Result<u32, AdoptError>,
    ) -> Result<(StateFile, RestoreReport), StateError> {
        let mut report = std::mem::take(&mut self.report);
        if let Some(old) = self.old.take() {
            // Checked in `find_old`: only a file that changed since could fail here.
            match Reader::new(&old.map) {
                Ok(r) => {
                    report.from = Some(old.path.clone());
                    report.clean = r.header.clean.is_some();
                    let to = Rebase {
                        now,
                        epoch_unix_ns: self.state.epoch_unix_ns(),
                    };
                    for s in r.slots(to) {
                        match s {
                            SlotRead::Live(e) => match adopt(e) {
                                Ok(_) => report.restored += 1,
                                Err(AdoptError::Full) => report.no_room += 1,
                                Err(AdoptError::Duplicate) => report.duplicates += 1,
                                Err(AdoptError::Invalid(_)) => report.corrupt += 1,
                            },
                            SlotRead::Expired => report.expired += 1,
                            SlotRead::Corrupt(_) => report.corrupt += 1,
                        }
                    }
                    let (list, bad) = r.expectations(to);
                    report.corrupt += bad;
                    for x in list {
                        if expect.add(x, now).is_ok() {
                            report.expectations += 1;
                        }
                    }
                }
                Err(e) => {
                    report.rejected = Some(format!(
                        "state file {} changed while it was read: {e}",
                        old.path.display()
                    ));
                }
            }
        }
        self.state.mirror_expectations(expect);
        self.state.commit()?;
        report.took = self.started.elapsed();
        Ok((self.state, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::conntrack::entry::Entry;
    use engine::conntrack::{Shard, Sysctls};
    use engine::flow::{owner, FlowKey};
    use engine::packet::{v4_mapped, IpFamily};

    const S: u64 = 1_000_000_000;

    fn geometry(shards: u32) -> Geometry {
        Geometry {
            shards,
            slots_per_shard: 64,
            expect_max: 4,
        }
    }

    fn key(i: u8) -> FlowKey {
        FlowKey::new(
            IpFamily::V4,
            v4_mapped([10, 0, 0, i]),
            v4_mapped([10, 0, 1, 1]),
            17,
            1000,
            53,
        )
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "statewall-state-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Run one "process": open, restore into fresh shards, add entries for `add`, stop
    /// (cleanly, or as a crash leaves the file). Returns what the restore said and the keys
    /// the shards held.
    fn run(
        path: &Path,
        shards: u32,
        now: u64,
        add: &[FlowKey],
        clean: bool,
    ) -> (RestoreReport, Vec<FlowKey>) {
        run_at(path, shards, now, unix_ns(), add, clean)
    }

    fn run_at(
        path: &Path,
        shards: u32,
        now: u64,
        wall_ns: u64,
        add: &[FlowKey],
        clean: bool,
    ) -> (RestoreReport, Vec<FlowKey>) {
        let mut opened = StateFile::open_at(Some(path), geometry(shards), now, wall_ns).unwrap();
        let expect = Arc::new(SharedExpectations::new(4));
        let mut shards: Vec<Shard<ShardSlab>> = std::mem::take(&mut opened.slabs)
            .into_iter()
            .map(|s| Shard::with_slab(s, Sysctls::default(), &[], Arc::clone(&expect)))
            .collect();
        let n = shards.len();
        let (mut state, report) = opened
            .restore(now, &expect, |e| {
                shards[owner(e.key.symmetric_hash(), n)].adopt(e)
            })
            .unwrap();
        for k in add {
            let mut e = Entry::new(*k);
            e.expires = now + 30 * S;
            shards[owner(k.symmetric_hash(), n)].adopt(e).unwrap();
        }
        let mut keys: Vec<FlowKey> = shards
            .iter()
            .flat_map(|s| s.entries().map(|e| e.key))
            .collect();
        keys.sort_by_key(|k| k.src);
        drop(shards);
        if clean {
            assert!(state.close_clean(&expect));
        }
        (report, keys)
    }

    #[test]
    fn entries_outlive_the_process_and_a_worker_count_change() {
        let d = dir();
        let path = d.join("state");
        let (r, _) = run(&path, 2, S, &[key(1), key(2), key(3)], false);
        assert_eq!(r.from, None);
        // A crash (no clean stop), then a start with three workers, 10 s later on a clock
        // that starts anew: every slot checked, every entry in its new owner's shard.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (r, keys) = run(&path, 3, S, &[key(4)], true);
        assert_eq!((r.restored, r.clean, r.corrupt), (3, false, 0), "{r:?}");
        assert_eq!(keys, vec![key(1), key(2), key(3), key(4)]);
        // A clean stop: the next start checks the whole file's CRC.
        let (r, keys) = run(&path, 1, S, &[], true);
        assert_eq!((r.restored, r.clean), (4, true), "{}", r.line());
        assert_eq!(keys.len(), 4);
        assert!(!with_suffix(&path, ".new").exists());
        // One daemon per state file.
        let held = StateFile::open(Some(&path), geometry(1), S).unwrap();
        let e = StateFile::open(Some(&path), geometry(1), S).unwrap_err();
        assert!(
            e.to_string()
                .contains("in use by another running statewall"),
            "{e}"
        );
        drop(held);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn entries_that_expired_while_stopped_are_gone() {
        let d = dir();
        let path = d.join("state");
        let wall = unix_ns();
        run_at(&path, 1, S, wall, &[key(1), key(2)], true);
        // 30 s of timeout. 20 s later (wall clock), whatever the new engine clock says: alive,
        // with about 10 s left.
        let (r, _) = run_at(&path, 1, 5 * S, wall + 20 * S, &[], true);
        assert_eq!((r.restored, r.expired), (2, 0), "{r:?}");
        // 40 s after the first: gone.
        let (r, keys) = run_at(&path, 1, 7 * S, wall + 40 * S, &[], true);
        assert_eq!((r.restored, r.expired), (0, 2), "{r:?}");
        assert!(keys.is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_file_is_refused_kept_aside_and_named() {
        let d = dir();
        let path = d.join("state");
        run(&path, 1, S, &[key(1)], true);
        // One bit of the data flipped after a clean stop.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_SIZE + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (r, keys) = run(&path, 1, S, &[], true);
        let why = r.rejected.clone().unwrap();
        assert!(why.contains("contents do not match the checksum"), "{why}");
        assert!(
            r.line().ends_with("starting with an empty table"),
            "{}",
            r.line()
        );
        assert!(keys.is_empty());
        assert!(with_suffix(&path, ".rejected").exists());
        // Truncated, and another layout version: the same.
        std::fs::write(&path, &bytes[..5000]).unwrap();
        let (r, _) = run(&path, 1, S, &[], true);
        assert!(r.rejected.unwrap().contains("truncated"));
        let mut other = std::fs::read(&path).unwrap();
        other[8] = 3;
        std::fs::write(&path, &other).unwrap();
        let (r, _) = run(&path, 1, S, &[], true);
        let why = r.rejected.unwrap();
        assert!(
            why.contains("layout version 3, this statewall reads version 2"),
            "{why}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_crashed_file_with_a_corrupt_slot_restores_the_rest() {
        let d = dir();
        let path = d.join("state");
        run(&path, 1, S, &[key(1), key(2)], false);
        let mut bytes = std::fs::read(&path).unwrap();
        // Slot 0's IP family byte (offset 37 of the key): no such family.
        bytes[HEADER_SIZE + 37] = 9;
        std::fs::write(&path, &bytes).unwrap();
        let (r, keys) = run(&path, 1, S, &[], true);
        assert_eq!((r.restored, r.corrupt), (1, 1), "{r:?}");
        assert_eq!(keys.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
