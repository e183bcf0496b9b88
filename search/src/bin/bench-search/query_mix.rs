//! The queries both engines answer. Each query is asked in the name of a
//! random replay's tenant and mostly about that replay's subject, as a user
//! searching their own classes would.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use crate::corpus::{Corpus, Vocabulary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// One frequent word of the shared vocabulary ("question", "example").
    Common,
    /// One word from the tail of a subject's list.
    Rare,
    /// Two subject words.
    TwoWords,
    /// Two subject words and a shared one.
    ThreeWords,
    /// Two or three consecutive words of a real segment, quoted.
    Phrase,
    /// Two subject words within one replay (the player's search box).
    InReplay,
    /// A subject word with one typo (PostgreSQL has no fuzzy matching).
    Typo,
}

pub(crate) const CLASSES: [Class; 7] = [
    Class::Common,
    Class::Rare,
    Class::TwoWords,
    Class::ThreeWords,
    Class::Phrase,
    Class::InReplay,
    Class::Typo,
];

impl Class {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Common => "common term",
            Class::Rare => "rare term",
            Class::TwoWords => "two words",
            Class::ThreeWords => "three words",
            Class::Phrase => "phrase",
            Class::InReplay => "two words, one replay",
            Class::Typo => "typo'd term",
        }
    }
}

pub(crate) struct BenchQuery {
    pub(crate) class: Class,
    pub(crate) tenant_id: Uuid,
    pub(crate) replay_id: Option<Uuid>,
    pub(crate) text: String,
}

/// Function words both engines drop or never require; a "common term"
/// query of "would" would measure nothing.
const SKIP: &[&str] = &[
    "about", "above", "after", "again", "against", "before", "being", "below", "between", "could",
    "doing", "during", "further", "other", "should", "their", "there", "these", "those", "through",
    "under", "until", "where", "which", "while", "would", "because", "without", "since", "though",
    "whether",
];

pub(crate) fn generate(
    vocabulary: &Vocabulary,
    corpus: &Corpus,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<BenchQuery> {
    let common: Vec<&str> = vocabulary.shared[30..vocabulary.general_len]
        .iter()
        .map(String::as_str)
        .filter(|w| w.len() >= 5 && w.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|w| !SKIP.contains(w))
        .take(80)
        .collect();
    let academic = &vocabulary.shared[vocabulary.general_len..];
    (0..n)
        .map(|i| {
            let class = CLASSES[i % CLASSES.len()];
            let replay = &corpus.replays[rng.gen_range(0..corpus.replays.len())];
            let subject = &vocabulary.subjects[replay.subject].words;
            // Frequent subject words: the first 60 (Zipf head).
            let head = &subject[..subject.len().min(60)];
            let text = match class {
                Class::Common => common[rng.gen_range(0..common.len())].to_string(),
                Class::Rare => pick(&subject[subject.len() / 2..], rng),
                Class::TwoWords | Class::InReplay => distinct(head, 2, rng).join(" "),
                Class::ThreeWords => {
                    let mut words = distinct(head, 2, rng);
                    words.push(pick(&academic[..200], rng));
                    words.join(" ")
                }
                Class::Phrase => phrase(replay, rng),
                Class::Typo => {
                    let long: Vec<String> = head
                        .iter()
                        .filter(|w| w.len() >= 6 && w.chars().all(|c| c.is_ascii_lowercase()))
                        .cloned()
                        .collect();
                    typo(&pick(if long.is_empty() { head } else { &long }, rng), rng)
                }
            };
            BenchQuery {
                class,
                tenant_id: corpus.tenants[replay.tenant],
                replay_id: (class == Class::InReplay).then_some(replay.replay_id),
                text,
            }
        })
        .collect()
}

fn pick(words: &[String], rng: &mut ChaCha8Rng) -> String {
    words[rng.gen_range(0..words.len())].clone()
}

fn distinct(words: &[String], n: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    while out.len() < n.min(words.len()) {
        let w = &words[rng.gen_range(0..words.len())];
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

fn phrase(replay: &crate::corpus::Replay, rng: &mut ChaCha8Rng) -> String {
    let doc = &replay.docs[rng.gen_range(0..replay.docs.len())];
    let words: Vec<String> = doc
        .text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let len = rng.gen_range(2..=3).min(words.len());
    let start = rng.gen_range(0..=words.len() - len);
    format!("\"{}\"", words[start..start + len].join(" "))
}

/// One edit: a deletion, a transposition or a substitution, never of the
/// first letter (people rarely get that one wrong).
fn typo(word: &str, rng: &mut ChaCha8Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 3 {
        return word.to_string();
    }
    let at = rng.gen_range(1..chars.len() - 1);
    match rng.gen_range(0..3) {
        0 => {
            chars.remove(at);
        }
        1 => chars.swap(at, at + 1),
        _ => {
            let letters: Vec<char> = ('a'..='z').filter(|&c| c != chars[at]).collect();
            chars[at] = letters[rng.gen_range(0..letters.len())];
        }
    }
    chars.into_iter().collect()
}
