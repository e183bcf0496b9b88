//! What a user may type in the search box, read leniently.
//!
//! - `word word`: words; documents with all of them rank first, then those
//!   with some of them.
//! - `"exact phrase"`: the words in this order, next to each other.
//! - `-word`, `-"a phrase"`: leave out documents containing it.
//!
//! There is no syntax error: an unclosed quote makes the rest plain words,
//! a lone `-` or `+` is ignored, other punctuation only separates words (the
//! analyzer drops it). tantivy's own query parser was the rejected
//! alternative: it errors on input like `f(x` or `c++`, and it lets `field:`
//! prefixes reach fields the user should not address.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// A whitespace-separated word, as typed (it may still hold punctuation
    /// that the analyzer splits on, "well-known" or "newton's").
    Word(String),
    /// The inside of a quoted phrase, as typed.
    Phrase(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Parsed {
    pub(crate) include: Vec<Part>,
    pub(crate) exclude: Vec<Part>,
}

pub(crate) fn parse(input: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut negated = false;
        if chars[i] == '-' || chars[i] == '+' {
            negated = chars[i] == '-';
            i += 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                // "x - y": a dash on its own is not an operator.
                continue;
            }
        }
        let part = if chars[i] == '"' {
            match chars[i + 1..].iter().position(|&c| c == '"') {
                Some(len) => {
                    let phrase: String = chars[i + 1..i + 1 + len].iter().collect();
                    i += len + 2;
                    Part::Phrase(phrase)
                }
                None => {
                    // Unclosed quote: the rest is plain words.
                    let rest: String = chars[i + 1..].iter().collect();
                    i = chars.len();
                    let target = if negated {
                        &mut parsed.exclude
                    } else {
                        &mut parsed.include
                    };
                    target.extend(rest.split_whitespace().map(|w| Part::Word(w.to_string())));
                    continue;
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '"' {
                i += 1;
            }
            Part::Word(chars[start..i].iter().collect())
        };
        if negated {
            parsed.exclude.push(part);
        } else {
            parsed.include.push(part);
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let parsed = parse(input);
        let show = |parts: &[Part]| {
            parts
                .iter()
                .map(|p| match p {
                    Part::Word(w) => w.clone(),
                    Part::Phrase(p) => format!("\"{p}\""),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let got = format!("+[{}] -[{}]", show(&parsed.include), show(&parsed.exclude));
        assert_eq!(got, expect, "input: {input:?}");
    }

    #[test]
    fn reads_words_phrases_and_exclusions() {
        check("derivative chain rule", "+[derivative chain rule] -[]");
        check(
            "\"chain rule\" derivative",
            "+[\"chain rule\" derivative] -[]",
        );
        check("energy -kinetic", "+[energy] -[kinetic]");
        check(
            "energy -\"kinetic energy\"",
            "+[energy] -[\"kinetic energy\"]",
        );
        check("+energy", "+[energy] -[]");
        check("x - y", "+[x y] -[]");
        check("a\"b c\"d", "+[a \"b c\" d] -[]");
        check("", "+[] -[]");
    }

    #[test]
    fn unclosed_quote_becomes_words() {
        check("\"chain rule", "+[chain rule] -[]");
        check("calculus \"chain rule", "+[calculus chain rule] -[]");
        check("f(x \"", "+[f(x] -[]");
    }
}
