//! "Did you mean" suggestions for misspelled names.

/// Edit distance counting insertions, deletions, substitutions and swaps of adjacent
/// letters as one edit each (optimal string alignment), so `sprot` is one edit from `sport`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo: one edit
/// for short names, about a third of the name for longer ones; ties go to the first listed.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    if word.chars().count() < 3 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| {
            *d <= if c.len() <= 4 {
                1
            } else {
                (c.len() / 3).max(2)
            }
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` or an empty string.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match nearest(word, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(nearest("dprt", &["dport", "sport", "proto"]), Some("dport"));
        assert_eq!(nearest("zzzzzz", &["dport", "sport"]), None);
        assert_eq!(
            did_you_mean("tpc", &["tcp", "udp"]),
            " (did you mean `tcp`?)"
        );
        assert_eq!(nearest("sprot", &["proto", "sport"]), Some("sport"));
        assert_eq!(nearest("d", &["a", "lan"]), None);
    }
}
