/// Word error rate of `hypothesis` against `reference` (case, punctuation
/// and spacing ignored): (substitutions + deletions + insertions) / words.
///
/// Words are runs of letters and digits, lowercased; apostrophes vanish
/// ("don't" = "dont") and any other punctuation separates words
/// ("well-known" = "well known"). An empty reference gives 0 for an empty
/// hypothesis and 1 otherwise.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalized_words(reference);
    let h = normalized_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

fn normalized_words(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            cleaned.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            // dropped: "don't" and "dont" are the same word
        } else {
            cleaned.push(' ');
        }
    }
    cleaned.split_whitespace().map(str::to_owned).collect()
}

/// Levenshtein distance over words, one row at a time.
fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, wa) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(wa != wb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::wer;

    fn check(reference: &str, hypothesis: &str, expect: f64) {
        let got = wer(reference, hypothesis);
        assert!(
            (got - expect).abs() < 1e-9,
            "wer({reference:?}, {hypothesis:?}) = {got}, expected {expect}"
        );
    }

    #[test]
    fn identical_up_to_case_and_punctuation() {
        check("Hello, world!", "hello world", 0.0);
        check("Don't stop.", "dont stop", 0.0);
        check("a well-known fact", "A well known fact.", 0.0);
        check("  spaced\tout\n", "spaced out", 0.0);
    }

    #[test]
    fn substitution_deletion_insertion() {
        check("the cat sat", "the bat sat", 1.0 / 3.0);
        check("the cat sat", "the sat", 1.0 / 3.0);
        check("the cat sat", "the cat sat down", 1.0 / 3.0);
        check("one two three four", "", 1.0);
        check("a b", "c d e f", 2.0);
    }

    #[test]
    fn empty_reference() {
        check("", "", 0.0);
        check("...", "", 0.0);
        check("", "noise", 1.0);
    }
}
