//! `import-iptables`: iptables-save / ip6tables-save text (and `iptables -A ...` lines) to a
//! [`Ruleset`]. Being written by the import work; the interface below is fixed.

use crate::diag::Diagnostic;
use crate::ruleset::Ruleset;

/// What to import: each input is `(name for messages, text)`.
#[derive(Debug, Clone, Copy)]
pub struct ImportInput<'a> {
    pub rules: (&'a str, &'a str),
    pub sysctl: Option<(&'a str, &'a str)>,
    pub helpers: Option<(&'a str, &'a str)>,
}

/// Translate, or report every line that cannot be translated.
pub fn import(_input: &ImportInput) -> Result<Ruleset, Vec<Diagnostic>> {
    Err(Vec::new())
}

/// The YAML text `statewall check` accepts.
pub fn to_yaml(r: &Ruleset) -> String {
    serde_yaml::to_string(r).unwrap_or_default()
}
