//! Sub-word tokens to words.
//!
//! Whisper's byte-level BPE marks a word's first token with a leading space;
//! every other token continues the word before it (including punctuation, so
//! "class." stays one word, as faster-whisper reports it). A token may also
//! end in the middle of a UTF-8 character, so bytes are joined before text is
//! made.

use crate::model::Word;

/// One text token of a decoded segment (special tokens already dropped).
#[derive(Debug, Clone)]
pub(crate) struct TokenPiece {
    pub(crate) bytes: Vec<u8>,
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
    pub(crate) p: f32,
}

struct Pending {
    bytes: Vec<u8>,
    start_ms: u64,
    end_ms: u64,
    p_sum: f32,
    n: u32,
}

impl Pending {
    fn finish(self) -> Option<Word> {
        let text = String::from_utf8_lossy(&self.bytes).trim().to_owned();
        if text.is_empty() {
            return None;
        }
        Some(Word {
            start_ms: self.start_ms,
            end_ms: self.end_ms.max(self.start_ms),
            text,
            p: self.p_sum / self.n as f32,
        })
    }
}

/// Joins tokens into words; times are the first token's start and the last
/// token's end.
pub(crate) fn merge_tokens(tokens: &[TokenPiece]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut cur: Option<Pending> = None;
    for t in tokens {
        let starts_word = t.bytes.first().is_some_and(|b| b.is_ascii_whitespace());
        match cur.as_mut() {
            Some(w) if !starts_word => {
                w.bytes.extend_from_slice(&t.bytes);
                w.end_ms = w.end_ms.max(t.end_ms);
                w.p_sum += t.p;
                w.n += 1;
            }
            _ => {
                if let Some(done) = cur.take().and_then(Pending::finish) {
                    words.push(done);
                }
                cur = Some(Pending {
                    bytes: t.bytes.clone(),
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                    p_sum: t.p,
                    n: 1,
                });
            }
        }
    }
    if let Some(done) = cur.and_then(Pending::finish) {
        words.push(done);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &[u8], start_ms: u64, end_ms: u64) -> TokenPiece {
        TokenPiece {
            bytes: s.to_vec(),
            start_ms,
            end_ms,
            p: 0.5,
        }
    }

    fn show(words: &[Word]) -> String {
        words
            .iter()
            .map(|w| format!("{}[{}-{}]", w.text, w.start_ms, w.end_ms))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn sub_words_join_and_punctuation_sticks() {
        let words = merge_tokens(&[
            tok(b" Photos", 100, 300),
            tok(b"ynthesis", 300, 600),
            tok(b" feeds", 650, 900),
            tok(b" plants", 900, 1200),
            tok(b".", 1200, 1250),
        ]);
        assert_eq!(
            show(&words),
            "Photosynthesis[100-600] feeds[650-900] plants.[900-1250]"
        );
    }

    #[test]
    fn first_token_without_space_starts_a_word() {
        let words = merge_tokens(&[tok(b"Hello", 0, 200), tok(b" world", 200, 500)]);
        assert_eq!(show(&words), "Hello[0-200] world[200-500]");
    }

    #[test]
    fn split_utf8_is_joined() {
        // "é" is 0xC3 0xA9, split across two tokens.
        let words = merge_tokens(&[tok(b" caf\xC3", 0, 100), tok(b"\xA9", 100, 200)]);
        assert_eq!(show(&words), "café[0-200]");
    }

    #[test]
    fn blank_tokens_make_no_word() {
        let words = merge_tokens(&[tok(b" ", 0, 10), tok(b" ok", 10, 20)]);
        assert_eq!(show(&words), "ok[10-20]");
    }
}
