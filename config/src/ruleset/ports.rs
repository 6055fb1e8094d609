//! The gateway's ports as a ruleset describes them, with the defaults applied: two ports
//! `lan` and `wan` (interfaces of the same names), forwarded to each other, when the
//! document declares none.

use std::collections::BTreeMap;

use super::Ruleset;

impl Ruleset {
    /// The ports of a ruleset with the default applied: `lan` and `wan` when none are declared.
    pub fn port_names(&self) -> Vec<String> {
        match &self.ports {
            Some(p) => p.keys().cloned().collect(),
            None => vec!["lan".into(), "wan".into()],
        }
    }

    /// Forwarding pairs with the default applied (the two ports, when there are exactly two).
    pub fn port_pairs(&self) -> Vec<[String; 2]> {
        if let Some(p) = &self.pairs {
            return p.clone();
        }
        let names = self.port_names();
        if names.len() == 2 {
            vec![[names[0].clone(), names[1].clone()]]
        } else {
            Vec::new()
        }
    }

    /// Interfaces by port name, with the default applied.
    pub fn port_interfaces(&self) -> BTreeMap<String, String> {
        match &self.ports {
            Some(p) => p
                .iter()
                .map(|(k, v)| (k.clone(), v.interface().to_string()))
                .collect(),
            None => self
                .port_names()
                .into_iter()
                .map(|n| (n.clone(), n))
                .collect(),
        }
    }
}
