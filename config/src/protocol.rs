//! The control protocol between `statewallctl` and the daemon (DESIGN.md §6).
//!
//! Newline-delimited JSON over a unix socket. Every message carries the protocol version
//! `"v":1` and the request id it belongs to, so a client can pipeline requests and a reply
//! to garbage still says which protocol it speaks:
//!
//! ```text
//! → {"v":1,"id":7,"cmd":"stats","per_core":true}
//! ← {"v":1,"id":7,"status":"ok","data":{"type":"stats",...}}
//! → {"v":1,"id":8,"cmd":"apply","yaml":"forward: ...","file":"gw.yaml"}
//! ← {"v":1,"id":8,"status":"error","error":{"kind":"invalid_config","message":"...","diagnostics":[{"file":"gw.yaml","line":3,"col":7,...}]}}
//! ```
//!
//! Decoding is two-step ([`decode_request`]): the envelope (`v`, `id`) first, so an unknown
//! version or a malformed body is answered with a structured error that names the request;
//! then the body, whose unknown fields are errors. Both sides use these types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Severity};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request line the daemon reads (a ruleset travels inline; 10k rules of YAML are
/// about 1 MiB).
pub const MAX_REQUEST: usize = 4 << 20;

/// Default control socket (DESIGN.md §6).
pub const DEFAULT_SOCKET: &str = "/run/statewall/control.sock";

/// A request: envelope and body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub id: u64,
    #[serde(flatten)]
    pub body: Command,
}

impl Request {
    pub fn new(id: u64, body: Command) -> Request {
        Request {
            v: VERSION,
            id,
            body,
        }
    }

    /// The request as one line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("requests always serialize")
    }
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Validate, compile and swap in a ruleset; `file` names it in diagnostics.
    Apply {
        yaml: String,
        file: String,
    },
    /// Validate a ruleset without applying it.
    Check {
        yaml: String,
        file: String,
    },
    /// The running ruleset with per-rule counters.
    Show,
    Stats {
        #[serde(default)]
        per_core: bool,
    },
    Conntrack {
        op: ConntrackOp,
        #[serde(default)]
        filter: ConntrackFilter,
    },
    Hist {
        #[serde(default)]
        reset: bool,
        #[serde(default)]
        per_core: bool,
    },
    /// A conntrack setting by sysctl name.
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
    },
    /// Load `conntrack -L -o save` lines into the table (`conntrack -R`): all of `text` is
    /// read first, and nothing is added unless every line is good. `file` names the input
    /// in errors; `first_line` is the number of `text`'s first line in it (a client sends a
    /// large file in pieces); with `check`, the lines are only read, not added (a client
    /// checks every piece before it adds any).
    ConntrackRestore {
        text: String,
        file: String,
        #[serde(default = "first_line", skip_serializing_if = "is_first_line")]
        first_line: usize,
        #[serde(default, skip_serializing_if = "crate::skip::is_false")]
        check: bool,
    },
    /// The lines `log` rules wrote most recently: those after sequence number `since`
    /// (all the daemon keeps without it), at most `lines` of the newest.
    Log {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<usize>,
    },
    /// Connection-state sync with the peer gateway (`conntrackd -s/-c/-f/-R/-B/-n/-t`).
    Sync {
        op: SyncOp,
    },
}

/// What `sync` does; each is the conntrackd option named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOp {
    /// Counters and the external cache's size (`-s`).
    Status,
    /// Turn the external cache into live entries with their timeouts (`-c`).
    Commit,
    /// Empty the external cache (`-f`).
    Flush,
    /// Resync the internal cache with the table (`-R`): the table is the internal cache.
    Resync,
    /// Send every entry to the peer (`-B`).
    Bulk,
    /// Ask the peer for every entry (`-n`).
    Request,
    /// Cut every entry's timeout to `purge_timeout` (`-t`): what traffic does not refresh
    /// soon goes.
    Purge,
}

impl SyncOp {
    pub const ALL: [SyncOp; 7] = [
        SyncOp::Status,
        SyncOp::Commit,
        SyncOp::Flush,
        SyncOp::Resync,
        SyncOp::Bulk,
        SyncOp::Request,
        SyncOp::Purge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncOp::Status => "status",
            SyncOp::Commit => "commit",
            SyncOp::Flush => "flush",
            SyncOp::Resync => "resync",
            SyncOp::Bulk => "bulk",
            SyncOp::Request => "request",
            SyncOp::Purge => "purge",
        }
    }
}

/// What a `sync` request did, and the sync's state after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply {
    /// What was done, for a person (empty for `status`).
    pub message: String,
    /// Entries the operation touched (committed, flushed, sent, purged).
    pub entries: u64,
    pub status: SyncStatus,
}

/// The sync's state and counters (conntrackd's `-s` names where it has them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// `notrack` or `ftfw`.
    pub mode: String,
    /// `LOCAL -> PEER` (or the multicast group).
    pub link: String,
    /// Entries received and not committed (`disable_external_cache`: always 0).
    pub external_cache: u64,
    /// FTP expectations received and not committed (`expectation_sync`).
    #[serde(default)]
    pub external_expectations: u64,
    #[serde(default)]
    pub expectation_sync: bool,
    pub disable_external_cache: bool,
    /// Messages and bytes both ways.
    pub msg_sent: u64,
    pub msg_recv: u64,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub datagrams_sent: u64,
    pub datagrams_recv: u64,
    /// Messages refused as malformed, and datagrams from anyone but the peer.
    pub malformed: u64,
    pub unauthenticated: u64,
    /// Messages the receive sequence says were lost, and late ones.
    pub lost: u64,
    pub before: u64,
    pub acks_sent: u64,
    pub acks_recv: u64,
    pub nacks_sent: u64,
    pub nacks_recv: u64,
    /// Messages sent again after a NACK, waiting for an ACK now, dropped from a full queue.
    pub resent: u64,
    pub resend_queue: u64,
    pub resend_dropped: u64,
    pub resyncs_sent: u64,
    pub resyncs_recv: u64,
    /// Entry events the workers handed over, and ones lost to a full ring.
    pub events: u64,
    pub events_lost: u64,
    /// Received entries by message type, and entries the engine cannot hold (NAT, other
    /// helpers, zones...) with the last reason.
    pub recv_new: u64,
    pub recv_update: u64,
    pub recv_destroy: u64,
    pub recv_expect: u64,
    pub refused: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_reason: Option<String>,
    /// Datagrams the socket would not send.
    pub send_errors: u64,
}

fn first_line() -> usize {
    1
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_first_line(n: &usize) -> bool {
    *n == 1
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConntrackOp {
    /// Entries matching the filter (`conntrack -L`).
    List,
    /// How many match, by protocol and TCP state (`conntrack -C`).
    Count,
    /// Remove the matching entries (`conntrack -F`, or `-D` with a filter).
    Flush,
    /// The entry of one tuple, in either direction (`conntrack -G`).
    Get,
    /// The matching entries as `conntrack -L -o save` lines, which `conntrack -R` loads.
    Save,
}

/// Which entries a conntrack request is about; unset fields match everything. Addresses and
/// ports are the original direction's, as `conntrack -L -s/-d/--sport/--dport` use them;
/// `get` matches the tuple in either direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// Either port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// TCP state as the listing prints it (`ESTABLISHED`, `TIME_WAIT`, ...; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl ConntrackFilter {
    pub fn is_empty(&self) -> bool {
        *self == ConntrackFilter::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// A reply: the envelope and either a payload or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    /// The request's id; `None` when the request was too broken to have one.
    pub id: Option<u64>,
    #[serde(flatten)]
    pub result: Outcome,
}

impl Reply {
    pub fn ok(id: u64, data: Payload) -> Reply {
        Reply {
            v: VERSION,
            id: Some(id),
            result: Outcome::Ok { data },
        }
    }

    pub fn error(id: Option<u64>, error: ErrorReply) -> Reply {
        Reply {
            v: VERSION,
            id,
            result: Outcome::Error { error },
        }
    }

    /// The reply as one line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("replies always serialize")
    }

    /// Parse a reply line; a reply of another version is an error.
    pub fn from_line(line: &str) -> Result<Reply, ProtocolError> {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ProtocolError {
            id: None,
            kind: ErrorKind::BadJson,
            message: format!("the reply is not JSON: {e}"),
        })?;
        let (id, v) = envelope(&value);
        check_version(id, v)?;
        serde_json::from_value(value).map_err(|e| ProtocolError {
            id,
            kind: ErrorKind::BadRequest,
            message: format!("malformed reply: {e}"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "one reply per request, built once and serialized; boxing buys nothing"
)]
pub enum Outcome {
    Ok { data: Payload },
    Error { error: ErrorReply },
}

/// What went wrong, for a person (`message`) and a program (`kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// For `apply` and `check`: the ruleset's errors with file:line:col.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticMsg>,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            kind,
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }
}

impl From<ProtocolError> for ErrorReply {
    fn from(e: ProtocolError) -> Self {
        ErrorReply::new(e.kind, e.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line is not JSON.
    BadJson,
    /// `v` is missing or names a version this build does not speak.
    BadVersion,
    /// JSON, but not a request (unknown command or field, wrong type, no id).
    BadRequest,
    /// The line is longer than [`MAX_REQUEST`].
    TooLarge,
    /// The client sent nothing (or no newline) within the read timeout.
    Timeout,
    /// The ruleset does not validate; `diagnostics` say where.
    InvalidConfig,
    /// `get`/`set` of an unknown setting or a value out of range.
    InvalidSetting,
    /// `conntrack_restore` lines that cannot be read or held; `diagnostics` say where.
    InvalidEntries,
    /// Too many clients at once; try again.
    Busy,
    /// A worker did not answer in time.
    WorkerTimeout,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadJson => "bad_json",
            ErrorKind::BadVersion => "bad_version",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::InvalidSetting => "invalid_setting",
            ErrorKind::InvalidEntries => "invalid_entries",
            ErrorKind::Busy => "busy",
            ErrorKind::WorkerTimeout => "worker_timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that could not be decoded, with the id when the envelope had one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProtocolError {
    pub id: Option<u64>,
    pub kind: ErrorKind,
    pub message: String,
}

impl ProtocolError {
    /// The error reply to send back.
    pub fn reply(&self) -> Reply {
        Reply::error(self.id, self.clone().into())
    }
}

fn envelope(value: &serde_json::Value) -> (Option<u64>, Option<u64>) {
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let v = value.get("v").and_then(serde_json::Value::as_u64);
    (id, v)
}

fn check_version(id: Option<u64>, v: Option<u64>) -> Result<(), ProtocolError> {
    match v {
        Some(v) if v == u64::from(VERSION) => Ok(()),
        Some(v) => Err(ProtocolError {
            id,
            kind: ErrorKind::BadVersion,
            message: format!("protocol version {v} is not supported; this daemon speaks {VERSION}"),
        }),
        None => Err(ProtocolError {
            id,
            kind: ErrorKind::BadVersion,
            message: format!("no protocol version: every message needs \"v\":{VERSION}"),
        }),
    }
}

/// Decode one request line (without its newline).
pub fn decode_request(line: &str) -> Result<Request, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ProtocolError {
        id: None,
        kind: ErrorKind::BadJson,
        message: format!("the request is not JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(ProtocolError {
            id: None,
            kind: ErrorKind::BadRequest,
            message: "a request is a JSON object".into(),
        });
    }
    let (id, v) = envelope(&value);
    check_version(id, v)?;
    let Some(id) = id else {
        return Err(ProtocolError {
            id: None,
            kind: ErrorKind::BadRequest,
            message: "no request id: every request needs \"id\" (an unsigned integer)".into(),
        });
    };
    let mut body = value;
    if let Some(map) = body.as_object_mut() {
        map.remove("v");
        map.remove("id");
    }
    let body: Command = serde_json::from_value(body).map_err(|e| ProtocolError {
        id: Some(id),
        kind: ErrorKind::BadRequest,
        message: format!("not a valid request: {e}"),
    })?;
    Ok(Request {
        v: VERSION,
        id,
        body,
    })
}

/// A diagnostic on the wire (config's [`Diagnostic`] with flat position fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticMsg {
    pub severity: String,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl From<&Diagnostic> for DiagnosticMsg {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticMsg {
            severity: match d.severity {
                Severity::Warning => "warning",
                Severity::Error => "error",
            }
            .into(),
            file: d.file.clone(),
            line: d.pos.line,
            col: d.pos.col,
            message: d.message.clone(),
            hint: d.hint.clone(),
        }
    }
}

impl fmt::Display for DiagnosticMsg {
    /// `file:line:col: severity: message`, and the hint on its own line, as `statewall check`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.severity, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A successful reply's data; `type` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    Applied(Applied),
    Checked(Checked),
    Show(Show),
    Stats(Stats),
    Conntrack(ConntrackReply),
    Hist(HistReply),
    Setting(Setting),
    Restored(Restored),
    Log(LogReply),
    Sync(SyncReply),
}

/// The lines `log` rules wrote (`statewallctl log`), oldest first, and what was not written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogReply {
    pub lines: Vec<LogLine>,
    /// Sequence number of the newest line written so far (0: none); ask `since` it next.
    pub last: u64,
    /// Lines written to the log since the daemon started.
    pub written: u64,
    /// Lines not written because the log's rate limit was reached.
    pub suppressed: u64,
    /// Packets not logged because the workers' hand-over to the log was full.
    pub lost: u64,
}

/// One line a `log` rule wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Numbered from 1 in the order written.
    pub seq: u64,
    /// When it was written: seconds since the Unix epoch.
    pub unix_time: f64,
    /// Syslog level (0-7).
    pub level: u8,
    /// The line, as the kernel's LOG target writes it.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The generation now running.
    pub generation: u32,
    /// The generation it replaced.
    pub previous: u32,
    pub warnings: Vec<DiagnosticMsg>,
    /// Things the operator should know (a setting that only takes effect at restart).
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub warnings: Vec<DiagnosticMsg>,
}

/// The running ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Show {
    pub generation: u32,
    /// The file name it was applied as.
    pub file: String,
    /// Seconds since the generation was published.
    pub age_s: u64,
    pub ports: Vec<String>,
    pub pairs: Vec<[String; 2]>,
    /// Conntrack settings that differ from the kernel's defaults.
    pub settings: BTreeMap<String, String>,
    pub stages: Vec<StageShow>,
    /// The YAML text as applied.
    pub yaml: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageShow {
    pub name: String,
    pub policy: String,
    pub rules: Vec<RuleShow>,
    /// Packets and bytes the policy decided.
    pub policy_packets: u64,
    pub policy_bytes: u64,
}

/// One rule and what it decided. Counters count the packets whose verdict this rule gave
/// (not every rule a packet matched), since this generation was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleShow {
    /// The rule's number in its stage (the main list, then the chains in name order).
    pub index: usize,
    /// The user-defined chain the rule is in; absent for the stage's main list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `accept`, `drop`, `reject`, `notrack`, `return`, `jump CHAIN`, `goto CHAIN`.
    pub action: String,
    /// The rule's matches as compact JSON.
    pub matches: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// Counters and occupancy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub workers: usize,
    pub generation: u32,
    pub uptime_s: f64,
    /// How each worker's ports are driven (XDP mode, zero-copy), as the IO reports it.
    pub io_mode: Vec<String>,
    pub total: CoreStats,
    /// Empty unless asked for.
    #[serde(default)]
    pub per_core: Vec<CoreStats>,
    /// The sync with the peer gateway, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Box<SyncStatus>>,
}

/// One worker's counters (or their sum, `worker` = `None`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CoreStats {
    pub worker: Option<usize>,
    /// The ruleset generation the worker runs (the lowest, in a total).
    pub generation: u32,
    /// Frames received from this worker's queues.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Received packets per second over the last second.
    pub rx_pps: f64,
    /// Packets this worker's engine decided (its own and those handed to it).
    pub processed: u64,
    pub accepted: u64,
    pub dropped: BTreeMap<String, u64>,
    pub dropped_total: u64,
    /// Packets by ctstate.
    pub ctstate: BTreeMap<String, u64>,
    /// INVALID packets by reason.
    pub invalid: BTreeMap<String, u64>,
    /// IP fragment reassembly: fragments taken, datagrams reassembled, passed on, timed
    /// out, and fragments dropped by reason (`frag_*`). Absent from older daemons.
    #[serde(default)]
    pub fragments: BTreeMap<String, u64>,
    /// Packets handed to another worker, and taken from others.
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    pub cache_hits: u64,
    pub batches: u64,
    /// Conntrack occupancy.
    pub entries: u64,
    pub capacity: u64,
    pub inserted: u64,
    pub expired: u64,
    pub early_drops: u64,
    pub table_full: u64,
    /// Pending expectations (shared by all workers; the same in every row).
    pub expectations: u64,
}

impl CoreStats {
    /// Percent of the table in use.
    #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
    pub fn fill_percent(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.entries as f64 * 100.0 / self.capacity as f64
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConntrackReply {
    /// Entries (for `list` and `get`).
    #[serde(default)]
    pub entries: Vec<ConntrackEntry>,
    /// Matching entries (all ops).
    pub count: u64,
    /// For `count`: matching entries by protocol name, and TCP entries by state.
    #[serde(default)]
    pub by_proto: BTreeMap<String, u64>,
    #[serde(default)]
    pub by_state: BTreeMap<String, u64>,
    /// For `flush`: entries removed.
    #[serde(default)]
    pub flushed: u64,
    /// For `save`: the lines, in listing order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// For `save`: matching entries that have no line (SCTP, DCCP: `conntrack -R` needs
    /// protocol state Statewall does not track).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

/// What `conntrack_restore` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// Entries read (lines less blank lines and comments).
    pub parsed: u64,
    /// Added to the table.
    pub added: u64,
    /// Already in the table (left as they are).
    pub present: u64,
    /// Their timeout ran out (`-t 0`, or while being added).
    pub expired: u64,
    /// Not added: their worker's share of the table is full.
    pub full: u64,
    /// Only read (`check`): nothing was added.
    #[serde(default, skip_serializing_if = "crate::skip::is_false")]
    pub checked: bool,
}

/// One tracked connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConntrackEntry {
    /// The worker (shard) that owns it.
    pub shard: usize,
    pub family: Family,
    pub proto: u8,
    /// Seconds until it expires.
    pub timeout: u64,
    /// TCP state, as the listing prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub original: Tuple,
    pub reply: Tuple,
    pub assured: bool,
    pub unreplied: bool,
    /// The connection mark (`ct->mark`).
    #[serde(default)]
    pub mark: u32,
    /// The `/proc/net/nf_conntrack` line.
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ports (TCP, UDP, ...), or for ICMP the id in `sport` and type<<8|code in `dport`.
    pub sport: u16,
    pub dport: u16,
}

/// Latency histograms (nanoseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistReply {
    pub total: HistSet,
    #[serde(default)]
    pub per_core: Vec<HistSet>,
    /// The histograms were cleared after this reading.
    pub reset: bool,
}

/// One worker's (or all workers') histograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistSet {
    pub worker: Option<usize>,
    /// Receive descriptor seen → verdict and TX queued, forwarded packets.
    pub forwarded: HistSummary,
    /// The same for dropped packets.
    pub dropped: HistSummary,
    /// Time to process one batch.
    pub batch: HistSummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistSummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// `(value, count)` per recorded bucket, to draw the distribution.
    #[serde(default)]
    pub buckets: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// For `set`: the generation that carries the new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Command) {
        let r = Request::new(42, c);
        let line = r.to_line();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(r#"{"v":1,"id":42,"cmd":"#), "{line}");
        assert_eq!(decode_request(&line).unwrap(), r, "{line}");
    }

    #[test]
    fn requests_round_trip() {
        round_trip(Command::Apply {
            yaml: "forward:\n  policy: drop\n".into(),
            file: "gw.yaml".into(),
        });
        round_trip(Command::Check {
            yaml: String::new(),
            file: "x".into(),
        });
        round_trip(Command::Show);
        round_trip(Command::Log {
            since: Some(7),
            lines: None,
        });
        round_trip(Command::Stats { per_core: true });
        round_trip(Command::Conntrack {
            op: ConntrackOp::List,
            filter: ConntrackFilter {
                proto: Some(6),
                src: Some("10.0.0.2".parse().unwrap()),
                dport: Some(80),
                state: Some("ESTABLISHED".into()),
                family: Some(Family::Ipv4),
                ..ConntrackFilter::default()
            },
        });
        round_trip(Command::Conntrack {
            op: ConntrackOp::Flush,
            filter: ConntrackFilter::default(),
        });
        round_trip(Command::Hist {
            reset: true,
            per_core: false,
        });
        round_trip(Command::Get {
            key: "udp_timeout".into(),
        });
        round_trip(Command::Set {
            key: "udp_timeout".into(),
            value: "10".into(),
        });
        round_trip(Command::Conntrack {
            op: ConntrackOp::Save,
            filter: ConntrackFilter::default(),
        });
        round_trip(Command::ConntrackRestore {
            text: "-A -t 30 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -p 50\n".into(),
            file: "kernel.save".into(),
            first_line: 1,
            check: false,
        });
        round_trip(Command::ConntrackRestore {
            text: String::new(),
            file: "<stdin>".into(),
            first_line: 4001,
            check: true,
        });
    }

    #[test]
    fn defaults_may_be_left_out() {
        let r = decode_request(r#"{"v":1,"id":1,"cmd":"stats"}"#).unwrap();
        assert_eq!(r.body, Command::Stats { per_core: false });
        let r = decode_request(r#"{"id":2,"cmd":"conntrack","op":"count","v":1}"#).unwrap();
        assert_eq!(
            r.body,
            Command::Conntrack {
                op: ConntrackOp::Count,
                filter: ConntrackFilter::default()
            }
        );
        let r = decode_request(r#"{"v":1,"id":3,"cmd":"conntrack","op":"save"}"#).unwrap();
        assert_eq!(
            r.body,
            Command::Conntrack {
                op: ConntrackOp::Save,
                filter: ConntrackFilter::default()
            }
        );
        let line = r#"{"v":1,"id":4,"cmd":"conntrack_restore","text":"x","file":"f"}"#;
        let r = decode_request(line).unwrap();
        assert_eq!(
            r.body,
            Command::ConntrackRestore {
                text: "x".into(),
                file: "f".into(),
                first_line: 1,
                check: false
            }
        );
        // Defaults are left out on the wire too.
        assert_eq!(r.to_line(), line);
        let e =
            decode_request(r#"{"v":1,"id":5,"cmd":"conntrack_restore","file":"f"}"#).unwrap_err();
        assert!(e.message.contains("text"), "{}", e.message);
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::ok(
                3,
                Payload::Applied(Applied {
                    generation: 2,
                    previous: 1,
                    warnings: vec![],
                    notes: vec!["n".into()],
                }),
            ),
            Reply::ok(
                4,
                Payload::Stats(Stats {
                    workers: 2,
                    generation: 1,
                    uptime_s: 1.5,
                    io_mode: vec!["mem".into()],
                    total: CoreStats::default(),
                    per_core: vec![CoreStats {
                        worker: Some(0),
                        ..CoreStats::default()
                    }],
                    sync: Some(Box::new(SyncStatus {
                        mode: "ftfw".into(),
                        msg_sent: 3,
                        refused_reason: Some("zone 3".into()),
                        ..SyncStatus::default()
                    })),
                }),
            ),
            Reply::ok(
                40,
                Payload::Sync(SyncReply {
                    message: "sent 3 entries".into(),
                    entries: 3,
                    status: SyncStatus::default(),
                }),
            ),
            Reply::ok(
                5,
                Payload::Conntrack(ConntrackReply {
                    entries: vec![ConntrackEntry {
                        shard: 1,
                        family: Family::Ipv6,
                        proto: 17,
                        timeout: 29,
                        state: None,
                        original: Tuple {
                            src: "fd00::2".parse().unwrap(),
                            dst: "fd00::3".parse().unwrap(),
                            sport: 5000,
                            dport: 53,
                        },
                        reply: Tuple {
                            src: "fd00::3".parse().unwrap(),
                            dst: "fd00::2".parse().unwrap(),
                            sport: 53,
                            dport: 5000,
                        },
                        assured: false,
                        unreplied: true,
                        mark: 0,
                        line: "ipv6 ...".into(),
                    }],
                    count: 1,
                    ..ConntrackReply::default()
                }),
            ),
            Reply::error(
                Some(6),
                ErrorReply {
                    kind: ErrorKind::InvalidConfig,
                    message: "1 error".into(),
                    diagnostics: vec![DiagnosticMsg {
                        severity: "error".into(),
                        file: "gw.yaml".into(),
                        line: 3,
                        col: 7,
                        message: "unknown port".into(),
                        hint: Some("ports are lan, wan".into()),
                    }],
                },
            ),
            Reply::error(None, ErrorReply::new(ErrorKind::BadJson, "x")),
            Reply::ok(
                7,
                Payload::Conntrack(ConntrackReply {
                    lines: vec![
                        "-A -t 29 -u UNSET -s 10.0.0.1 -d 10.0.0.2 -r 10.0.0.2 -q 10.0.0.1 -p 50"
                            .into(),
                    ],
                    count: 2,
                    skipped: 1,
                    ..ConntrackReply::default()
                }),
            ),
            Reply::ok(
                8,
                Payload::Restored(Restored {
                    parsed: 5,
                    added: 2,
                    present: 1,
                    expired: 1,
                    full: 1,
                    checked: false,
                }),
            ),
            Reply::ok(
                9,
                Payload::Restored(Restored {
                    parsed: 5,
                    checked: true,
                    ..Restored::default()
                }),
            ),
            Reply::error(
                Some(10),
                ErrorReply {
                    kind: ErrorKind::InvalidEntries,
                    message: "1 bad line in kernel.save; nothing was restored".into(),
                    diagnostics: vec![DiagnosticMsg {
                        severity: "error".into(),
                        file: "kernel.save".into(),
                        line: 12,
                        col: 40,
                        message: "the entry is source-NAT'd".into(),
                        hint: Some("leave it out".into()),
                    }],
                },
            ),
        ];
        for r in replies {
            let line = r.to_line();
            assert!(line.starts_with(r#"{"v":1,"#), "{line}");
            assert_eq!(Reply::from_line(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn conntrack_replies_without_save_fields_read() {
        let line = r#"{"v":1,"id":2,"status":"ok","data":{"type":"conntrack","entries":[],"count":0,"by_proto":{},"by_state":{},"flushed":0}}"#;
        let r = Reply::from_line(line).unwrap();
        let Outcome::Ok {
            data: Payload::Conntrack(c),
        } = r.result
        else {
            panic!("{r:?}")
        };
        assert!(c.lines.is_empty() && c.skipped == 0);
        // And a list reply stays as it was on the wire.
        assert_eq!(Reply::ok(2, Payload::Conntrack(c)).to_line(), line);
    }

    #[test]
    fn garbage_and_other_versions_are_structured_errors() {
        let e = decode_request("hello").unwrap_err();
        assert_eq!((e.id, e.kind), (None, ErrorKind::BadJson));
        let e = decode_request("[1,2]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = decode_request(r#"{"v":2,"id":9,"cmd":"show"}"#).unwrap_err();
        assert_eq!((e.id, e.kind), (Some(9), ErrorKind::BadVersion));
        assert!(e.message.contains("version 2"), "{}", e.message);
        let e = decode_request(r#"{"id":9,"cmd":"show"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadVersion);
        let e = decode_request(r#"{"v":1,"cmd":"show"}"#).unwrap_err();
        assert_eq!((e.id, e.kind), (None, ErrorKind::BadRequest));
        let e = decode_request(r#"{"v":1,"id":3,"cmd":"reboot"}"#).unwrap_err();
        assert_eq!((e.id, e.kind), (Some(3), ErrorKind::BadRequest));
        assert!(e.message.contains("reboot"), "{}", e.message);
        let e = decode_request(r#"{"v":1,"id":3,"cmd":"stats","verbose":true}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert!(e.message.contains("verbose"), "{}", e.message);
        let e =
            decode_request(r#"{"v":1,"id":3,"cmd":"conntrack","op":"list","filter":{"prot":6}}"#)
                .unwrap_err();
        assert!(e.message.contains("prot"), "{}", e.message);
        // The error reply names the request and parses as a reply.
        let r = e.reply();
        let back = Reply::from_line(&r.to_line()).unwrap();
        assert_eq!(back.id, Some(3));
        assert!(matches!(back.result, Outcome::Error { .. }));
        // A reply from a future daemon is refused by the client.
        let e = Reply::from_line(r#"{"v":7,"id":1,"status":"ok"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadVersion);
    }

    #[test]
    fn diagnostics_print_like_check() {
        let d =
            Diagnostic::error("gw.yaml", crate::Pos { line: 4, col: 9 }, "bad").with_hint("fix it");
        let m = DiagnosticMsg::from(&d);
        assert_eq!(m.to_string(), d.to_string());
    }
}
