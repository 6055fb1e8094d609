//! The JSON of `nft -j list ruleset`: where each object of its `nftables` array starts (for
//! diagnostics; `nft -j` writes one line, so the column is the place), and the few value
//! shapes the translation reads.

use serde_json::Value;

use crate::diag::Pos;

/// The start of each element of the top-level `nftables` array, in order: a small scan of
/// the text that follows strings and nesting only (serde_json reports what is wrong with
/// text that is not JSON).
pub(super) fn element_positions(text: &str) -> Vec<Pos> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut line, mut col) = (1usize, 1usize);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // The top-level key being read and the last key seen at depth 1.
    let mut key = String::new();
    let mut last_key = String::new();
    let mut in_array = false;
    let mut expect_element = false;
    for &b in bytes {
        let here = Pos { line, col };
        if b == b'\n' {
            line += 1;
            col = 1;
        } else if b & 0xc0 != 0x80 {
            col += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if depth == 1 {
                    last_key = std::mem::take(&mut key);
                }
            } else if depth == 1 {
                key.push(char::from(b));
            }
            continue;
        }
        if in_array && expect_element && depth == 2 && !b.is_ascii_whitespace() && b != b']' {
            out.push(here);
            expect_element = false;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 1 {
                    key.clear();
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 2 && b == b'[' && last_key == "nftables" {
                    in_array = true;
                    expect_element = true;
                }
            }
            b'}' | b']' => {
                if depth == 2 && in_array {
                    in_array = false;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == 2 && in_array => expect_element = true,
            _ => {}
        }
    }
    out
}

/// The only key of a one-key object and its value (`{"rule": {...}}`, `{"accept": null}`).
pub(super) fn single(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A string field of an object.
pub(super) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// How a value is written in nft's own syntax, for messages (`tcp dport`, `@allowed`).
pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(show).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Object(_) => {
            if let Some(p) = v.get("payload") {
                return format!(
                    "{} {}",
                    text(p, "protocol").unwrap_or("?"),
                    text(p, "field").unwrap_or("?")
                );
            }
            for k in ["meta", "ct"] {
                if let Some(m) = v.get(k) {
                    return format!("{k} {}", text(m, "key").unwrap_or("?"));
                }
            }
            if let Some((k, inner)) = single(v) {
                return match k {
                    "set" => show(inner),
                    "prefix" => format!(
                        "{}/{}",
                        inner.get("addr").map_or_else(String::new, show),
                        inner.get("len").map_or_else(String::new, show)
                    ),
                    "range" => match inner.as_array().map(Vec::as_slice) {
                        Some([a, b]) => format!("{}-{}", show(a), show(b)),
                        _ => "range".into(),
                    },
                    other => other.to_string(),
                };
            }
            "{...}".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_the_array_elements() {
        let text = "{\"nftables\": [{\"metainfo\": {\"v\": \"a]\\\"\"}}, {\"table\": {}},\n  {\"rule\": {\"expr\": [1, 2]}}]}";
        let p = element_positions(text);
        assert_eq!(
            p,
            [
                Pos { line: 1, col: 15 },
                Pos { line: 1, col: 44 },
                Pos { line: 2, col: 3 }
            ]
        );
    }
}
