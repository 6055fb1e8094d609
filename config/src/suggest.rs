//! "Did you mean" suggestions for misspelled names.

/// Edit distance counting insertions, deletions, substitutions and swaps of adjacent
/// letters as one edit each (optimal string alignment), so `sprot` is one edit from `sport`.
pub fn edit_distance(left: &str, right: &str) -> usize {
    let x: Vec<char> = left.chars().collect();
    let y: Vec<char> = right.chars().collect();
    let width = y.len() + 1;
    // dist[i * width + j]: distance between the first i chars of x and the first j of y.
    let mut dist = vec![0usize; (x.len() + 1) * width];
    for i in 0..=x.len() {
        dist[i * width] = i;
    }
    for (j, cell) in dist.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=x.len() {
        for j in 1..=y.len() {
            let cost = usize::from(x[i - 1] != y[j - 1]);
            let mut best = (dist[(i - 1) * width + j] + 1)
                .min(dist[i * width + j - 1] + 1)
                .min(dist[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] {
                best = best.min(dist[(i - 2) * width + j - 2] + 1);
            }
            dist[i * width + j] = best;
        }
    }
    dist[x.len() * width + y.len()]
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
