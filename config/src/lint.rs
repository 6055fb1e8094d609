//! Rule hygiene warnings (the seed's advice, S5). Filled in by the lint work.

use crate::diag::Diagnostic;
use crate::ruleset::Ruleset;
use crate::source_map::SourceMap;

/// Warnings for a valid ruleset, each at the rule it is about.
pub fn lint(_r: &Ruleset, _source: &SourceMap, _file: &str) -> Vec<Diagnostic> {
    Vec::new()
}
