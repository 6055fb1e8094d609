//! Statewall's contract: the YAML ruleset schema and its validation, the rule-hygiene lint,
//! the iptables importer and the control protocol's messages ([`protocol`]). No sockets, no
//! packets.
//!
//! Loading ([`load`]) is `text → serde_yaml → Ruleset → validate() → lint()`: type and syntax
//! errors come from serde_yaml with their position; cross-field errors come from [`validate`]
//! with positions looked up in a [`source_map::SourceMap`] of the same text; warnings come
//! from [`lint`].
//!
//! The modules, leaves first:
//!
//! | module | what it holds |
//! |--------|---------------|
//! | [`diag`] | [`Diagnostic`]: a message with file:line:col, severity and hint |
//! | [`suggest`] | "did you mean" for misspelled names |
//! | [`proto`] | IP protocol numbers and names ([`proto::Proto`]), shared with the engine |
//! | [`settings`] | [`ConntrackSettings`], the kernel's conntrack sysctls and its IP fragment reassembly ones |
//! | [`matches`](mod@matches) | leaf values of a rule's matches as written in YAML (addresses, ports, states, ICMP types, TCP flags) and [`matches::Match`], the list-with-negation shape |
//! | [`packet_matches`] | matches on each packet's own fields: length, TTL, hop limit, source MAC, packet type |
//! | [`sets`] | address sets (ipset's hash:ip, hash:net) and a rule's `match_set` |
//! | [`recent`] | a rule's `recent` match (`-m recent`): named lists of recently seen addresses |
//! | [`hashlimit`] | a rule's rate limit per address (`-m hashlimit`) |
//! | [`mark`] | packet and connection marks: `mark`/`connmark` matches, the `mark`, `connmark`, `save_mark` and `restore_mark` actions |
//! | [`limit`] | a rule's rate limit (`-m limit`): rate and burst |
//! | [`log`](mod@log) | what a `log` rule writes (`-j LOG`): prefix, level, extras |
//! | [`ruleset`] | the document ([`Ruleset`], stages, rules, ports) and its queries: ports with defaults applied, a rule's IP family |
//! | [`source_map`] | where each YAML node starts, for diagnostics about fields and rules |
//! | [`chains`] | user-defined chains: unknown targets, loops, depth; unreachable-chain warnings |
//! | [`validate`] | errors no single field can know |
//! | [`lint`] | rule-hygiene warnings (S5) |
//! | [`load`] | parse → validate → lint: [`load_str`], [`load_file`], [`Loaded`] |
//! | [`iptables`] | `import-iptables`: iptables-save text and command lines to a [`Ruleset`] |
//! | [`nft`] | `import-nft`: `nft -j list ruleset` JSON to a [`Ruleset`] |
//! | [`protocol`] | the control protocol's messages between `statewallctl` and the daemon |

pub mod chains;
pub mod diag;
pub mod hashlimit;
mod interfaces;
pub mod iptables;
pub mod limit;
pub mod lint;
pub mod load;
pub mod log;
pub mod mark;
pub mod matches;
pub mod nft;
pub mod packet_matches;
pub mod proto;
pub mod protocol;
pub mod recent;
pub mod ruleset;
pub mod sets;
pub mod settings;
mod skip;
pub mod source_map;
pub mod suggest;
pub mod sync;
pub mod validate;

pub use diag::{Diagnostic, Pos, Severity};
pub use load::{load_file, load_str, Loaded};
pub use ruleset::Ruleset;
pub use settings::ConntrackSettings;
