//! Where each node of a YAML document starts, by path (`forward.rules.3.dport`).
//!
//! serde_yaml gives positions only for errors it raises itself; checks that span fields
//! (validation, lint) look their positions up here. Built from yaml-rust2's marked events.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::diag::Pos;
use crate::ruleset::Rule;

/// Positions of the nodes of one YAML document.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    /// Path → (position of the key or sequence item, position of the value).
    nodes: HashMap<String, (Pos, Pos)>,
}

enum Frame {
    /// In a mapping: `Some(key)` once the key was read and its value is awaited.
    Map {
        path: String,
        key: Option<(String, Pos)>,
        /// No key read yet: the first key's position becomes the mapping's own, since the
        /// parser marks a block mapping at its first `:` rather than at its first key.
        first: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    nodes: HashMap<String, (Pos, Pos)>,
}

fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl Builder {
    /// A node starts at `at`: work out its path and record it. Returns the path, or `None`
    /// when the node is a mapping key.
    fn node(&mut self, at: Pos, key_text: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.nodes.insert(String::new(), (at, at));
                Some(String::new())
            }
            Some(Frame::Seq { path, next }) => {
                let p = join(path, &next.to_string());
                *next += 1;
                self.nodes.insert(p.clone(), (at, at));
                Some(p)
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                None => {
                    // This node is a key; complex keys get a placeholder name.
                    *key = Some((key_text.unwrap_or("?").to_string(), at));
                    if std::mem::take(first) {
                        if let Some((k, v)) = self.nodes.get_mut(path.as_str()) {
                            *k = (*k).min(at);
                            *v = (*v).min(at);
                        }
                    }
                    None
                }
                Some((k, kpos)) => {
                    let p = join(path, &k);
                    self.nodes.insert(p.clone(), (kpos, at));
                    Some(p)
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(mark);
        match ev {
            Event::Scalar(text, ..) => {
                self.node(at, Some(&text));
            }
            Event::Alias(_) => {
                self.node(at, None);
            }
            Event::MappingStart(..) => {
                let path = self.node(at, None).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node(at, None).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl SourceMap {
    /// Index a document. Text that does not parse yields an empty map (serde_yaml reports
    /// the syntax error with its own position).
    pub fn parse(text: &str) -> SourceMap {
        let mut b = Builder {
            stack: Vec::new(),
            nodes: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return SourceMap::default();
        }
        SourceMap { nodes: b.nodes }
    }

    /// Say that the node at `path` (a rule's, as [`crate::ruleset::Stage::rule_path`] gives
    /// it) came from `pos` of a file that is not this YAML: what an importer translated, so
    /// that validating its output points at the line it came from.
    pub fn insert(&mut self, path: String, pos: Pos) {
        self.nodes.insert(path, (pos, pos));
    }

    /// Position of the key (or sequence item) at `path`.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).map(|(k, _)| *k)
    }

    /// Position of the value at `path`.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).map(|(_, v)| *v)
    }

    /// Position of the key at `path`, else of the nearest enclosing node, else 1:1.
    pub fn locate(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.key(p) {
                return pos;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return self.key("").unwrap_or(Pos { line: 1, col: 1 }),
            }
        }
    }

    /// Where a map node starts: its first key. yaml-rust2 marks a block mapping's start
    /// after its first key, so take the earliest of the node's mark and its keys' marks
    /// (`keys`: the keys the node may have).
    pub fn node_start(&self, path: &str, keys: &[&str]) -> Pos {
        keys.iter()
            .filter_map(|k| self.key(&format!("{path}.{k}")))
            .chain(self.key(path))
            .min()
            .unwrap_or_else(|| self.locate(path))
    }

    /// Where a rule starts, for diagnostics about the whole rule; `path` as
    /// [`crate::ruleset::Stage::rule_path`] gives it (`forward.rules.3`).
    pub fn rule_start(&self, path: &str) -> Pos {
        self.node_start(path, Rule::KEYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_positions() {
        let text = "forward:\n  policy: drop\n  rules:\n    - action: accept\n      dport: [22, 80]\n    - {action: drop, src: 10.0.0.0/8}\n";
        let m = SourceMap::parse(text);
        assert_eq!(m.key("forward.policy"), Some(Pos { line: 2, col: 3 }));
        assert_eq!(m.value("forward.policy"), Some(Pos { line: 2, col: 11 }));
        assert_eq!(m.key("forward.rules.0"), Some(Pos { line: 4, col: 7 }));
        assert_eq!(
            m.key("forward.rules.0.dport"),
            Some(Pos { line: 5, col: 7 })
        );
        assert_eq!(
            m.value("forward.rules.0.dport.1"),
            Some(Pos { line: 5, col: 19 })
        );
        assert_eq!(m.key("forward.rules.1.src"), Some(Pos { line: 6, col: 22 }));
        assert_eq!(m.locate("forward.rules.1.nothing"), Pos { line: 6, col: 7 });
    }
}
