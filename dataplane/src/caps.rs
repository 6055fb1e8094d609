//! The capabilities `statewall run` needs, checked at start so that a daemon short of one
//! exits naming it instead of failing deep inside libxdp (which, refused half-way, can leave
//! its XDP program attached).
//!
//! Found by running the daemon under `setpriv --bounding-set/--ambient-caps` with each subset
//! of CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON, CAP_IPC_LOCK and CAP_SYS_ADMIN (Linux
//! 6.18, libxdp 1.6 from libxdp-sys 0.2.4, xsk-rs 0.11; `scripts/test-systemd.sh` repeats it):
//!
//! - CAP_NET_RAW: `socket(AF_XDP)` is refused without it (EPERM).
//! - CAP_NET_ADMIN: attaching the XDP program to a port (netlink `IFLA_XDP`) is refused.
//! - CAP_SYS_ADMIN: libxdp finds the program it attached, and that program's `xsks_map`, by
//!   id (`BPF_PROG_GET_FD_BY_ID`, `BPF_MAP_GET_FD_BY_ID`), which the kernel allows only with
//!   CAP_SYS_ADMIN — CAP_BPF is not enough. With it, CAP_BPF and CAP_PERFMON are not needed
//!   (the kernel's `bpf_capable()` and `perfmon_capable()` accept CAP_SYS_ADMIN).
//! - CAP_IPC_LOCK: the UMEM is locked memory, charged against RLIMIT_MEMLOCK unless the
//!   process has CAP_IPC_LOCK; needed only where the limit is below the UMEM's size (the
//!   systemd unit sets `LimitMEMLOCK=infinity` instead).

use rustix::process::{getrlimit, Resource};
use rustix::thread::{capabilities, CapabilitySet};

/// A capability the daemon needs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub name: &'static str,
    pub set: CapabilitySet,
    pub why: &'static str,
}

/// What `statewall run` needs whatever its limits.
pub const ALWAYS: [Need; 3] = [
    Need {
        name: "CAP_NET_ADMIN",
        set: CapabilitySet::NET_ADMIN,
        why: "attaching the XDP program to the ports needs it",
    },
    Need {
        name: "CAP_NET_RAW",
        set: CapabilitySet::NET_RAW,
        why: "AF_XDP sockets need it",
    },
    Need {
        name: "CAP_SYS_ADMIN",
        set: CapabilitySet::SYS_ADMIN,
        why: "libxdp opens its XDP program and maps by id, which the kernel allows only with it",
    },
];

/// What the process holds: its effective capabilities and RLIMIT_MEMLOCK's soft limit
/// (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub effective: CapabilitySet,
    pub memlock: Option<u64>,
}

impl Held {
    /// This process's (`capget(2)`, `getrlimit(2)`); `None` when the kernel would not say.
    pub fn current() -> Option<Held> {
        let caps = capabilities(None).ok()?;
        Some(Held {
            effective: caps.effective,
            memlock: getrlimit(Resource::Memlock).current,
        })
    }
}

/// A capability the process lacks, with what it is needed for here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub name: &'static str,
    pub why: String,
}

const MIB: u64 = 1 << 20;

/// What `held` lacks to run AF_XDP with `umem_bytes` of UMEM in all.
pub fn missing(held: &Held, umem_bytes: u64) -> Vec<Missing> {
    let mut out: Vec<Missing> = ALWAYS
        .iter()
        .filter(|n| !held.effective.contains(n.set))
        .map(|n| Missing {
            name: n.name,
            why: n.why.to_string(),
        })
        .collect();
    if !held.effective.contains(CapabilitySet::IPC_LOCK) {
        if let Some(limit) = held.memlock.filter(|&l| l < umem_bytes) {
            out.push(Missing {
                name: "CAP_IPC_LOCK",
                why: format!(
                    "the UMEM is {} MiB of locked memory and RLIMIT_MEMLOCK allows {} KiB; \
                     or raise the limit: LimitMEMLOCK=infinity in the unit, ulimit -l unlimited",
                    umem_bytes.div_ceil(MIB),
                    limit / 1024
                ),
            });
        }
    }
    out
}

/// The one-line error for a non-empty `missing`.
pub fn message(missing: &[Missing]) -> String {
    let list = missing
        .iter()
        .map(|m| format!("{} ({})", m.name, m.why))
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() == 1 {
        format!(
            "missing capability {list}; run as root or grant it (AmbientCapabilities= in the unit)"
        )
    } else {
        format!(
            "missing capabilities {list}; run as root or grant them (AmbientCapabilities= in the unit)"
        )
    }
}

/// Check this process against what AF_XDP with `umem_bytes` of UMEM needs: `Err` with the
/// message naming every missing capability. A kernel that will not say passes (the system
/// calls themselves then say what they refuse).
pub fn check(umem_bytes: u64) -> Result<(), String> {
    let Some(held) = Held::current() else {
        return Ok(());
    };
    let m = missing(&held, umem_bytes);
    if m.is_empty() {
        Ok(())
    } else {
        Err(message(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> CapabilitySet {
        CapabilitySet::NET_ADMIN
            | CapabilitySet::NET_RAW
            | CapabilitySet::SYS_ADMIN
            | CapabilitySet::IPC_LOCK
    }

    fn names(m: &[Missing]) -> Vec<&str> {
        m.iter().map(|m| m.name).collect()
    }

    #[test]
    fn root_lacks_nothing() {
        let held = Held {
            effective: CapabilitySet::all(),
            memlock: Some(8 * MIB),
        };
        assert!(missing(&held, 64 * MIB).is_empty());
    }

    #[test]
    fn each_capability_is_named() {
        for n in ALWAYS {
            let held = Held {
                effective: all() - n.set,
                memlock: None,
            };
            assert_eq!(names(&missing(&held, 64 * MIB)), [n.name]);
        }
        // CAP_BPF and CAP_PERFMON do not stand in for CAP_SYS_ADMIN.
        let held = Held {
            effective: (all() - CapabilitySet::SYS_ADMIN)
                | CapabilitySet::BPF
                | CapabilitySet::PERFMON,
            memlock: None,
        };
        assert_eq!(names(&missing(&held, MIB)), ["CAP_SYS_ADMIN"]);
    }

    #[test]
    fn ipc_lock_only_when_the_limit_is_too_low() {
        let no_lock = all() - CapabilitySet::IPC_LOCK;
        let unlimited = Held {
            effective: no_lock,
            memlock: None,
        };
        assert!(missing(&unlimited, 64 * MIB).is_empty());
        let roomy = Held {
            effective: no_lock,
            memlock: Some(64 * MIB),
        };
        assert!(missing(&roomy, 64 * MIB).is_empty());
        let tight = Held {
            effective: no_lock,
            memlock: Some(8 * MIB),
        };
        let m = missing(&tight, 33 * MIB + 1);
        assert_eq!(names(&m), ["CAP_IPC_LOCK"]);
        assert_eq!(
            m[0].why,
            "the UMEM is 34 MiB of locked memory and RLIMIT_MEMLOCK allows 8192 KiB; or raise \
             the limit: LimitMEMLOCK=infinity in the unit, ulimit -l unlimited"
        );
    }

    #[test]
    fn the_message_names_every_missing_one() {
        let held = Held {
            effective: CapabilitySet::empty(),
            memlock: Some(0),
        };
        let m = missing(&held, MIB);
        assert_eq!(
            names(&m),
            [
                "CAP_NET_ADMIN",
                "CAP_NET_RAW",
                "CAP_SYS_ADMIN",
                "CAP_IPC_LOCK"
            ]
        );
        let text = message(&m);
        assert!(
            text.starts_with("missing capabilities CAP_NET_ADMIN (attaching the XDP program"),
            "{text}"
        );
        assert!(
            text.ends_with("; run as root or grant them (AmbientCapabilities= in the unit)"),
            "{text}"
        );
        let one = message(&m[1..2]);
        assert_eq!(
            one,
            "missing capability CAP_NET_RAW (AF_XDP sockets need it); run as root or grant it \
             (AmbientCapabilities= in the unit)"
        );
    }

    #[test]
    fn this_process_can_be_asked() {
        // capget on ourselves always answers; what it says depends on who runs the tests.
        let held = Held::current().expect("capget(2) answers for this process");
        let m = missing(&held, 0);
        assert_eq!(
            m.is_empty(),
            ALWAYS.iter().all(|n| held.effective.contains(n.set))
        );
    }
}
