//! Statewall's contract: the YAML ruleset schema and its validation, the rule-hygiene lint,
//! the iptables importer and the control protocol's messages ([`protocol`]). No sockets, no
//! packets.
//!
//! Loading is `text → serde_yaml → Ruleset → validate()`: type and syntax errors come from
//! serde_yaml with their position; cross-field errors come from [`validate`] with positions
//! looked up in a [`source_map::SourceMap`] of the same text.

pub mod diag;
pub mod iptables;
pub mod lint;
pub mod matches;
pub mod protocol;
pub mod ruleset;
pub mod settings;
pub mod source_map;
pub mod suggest;
pub mod validate;

pub use diag::{Diagnostic, Pos, Severity};
pub use ruleset::Ruleset;
pub use settings::ConntrackSettings;
pub use validate::{load_file, load_str, Loaded};
