//! Long silences cut out before decoding, and the map back to the original
//! timeline.
//!
//! Whisper decodes 30 s windows and misbehaves around long silences inside
//! them: the first timestamp of a window may not exceed 1 s, so speech after
//! a silent stretch gets a start time seconds too early; a sentence after a
//! long pause is sometimes dropped altogether; and silence invites invented
//! text. A class has such pauses (an exercise, a demonstration). So every
//! silent run of [`LONG_SILENCE_MS`] or more is shortened to [`KEEP_MS`] on
//! each side of the speech around it, whisper sees the compacted audio, and
//! its times are mapped back here.
//!
//! The energy VAD errs towards "speech" on a noisy room, in which case
//! nothing is cut and whisper sees the audio as it is.

use std::borrow::Cow;

use crate::SAMPLE_RATE;
use crate::vad::{EnergyVad, FRAME};

pub(crate) const LONG_SILENCE_MS: u64 = 2_000;
pub(crate) const KEEP_MS: u64 = 500;

/// A kept span: `len` samples at `orig_start` in the input, at
/// `compact_start` in the compacted audio.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    compact_start: usize,
    orig_start: usize,
    len: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    /// In order, contiguous in the compacted audio.
    pieces: Vec<Piece>,
}

/// The result of [`compact`].
#[derive(Debug)]
pub(crate) enum Compacted<'a> {
    /// No speech at all: nothing to transcribe.
    Silent,
    Speech(Cow<'a, [f32]>, Timeline),
}

fn ms_to_samples(ms: u64) -> usize {
    (ms * u64::from(SAMPLE_RATE) / 1000) as usize
}

fn samples_to_ms(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(SAMPLE_RATE)
}

pub(crate) fn compact(pcm: &[f32]) -> Compacted<'_> {
    let mut vad = EnergyVad::new();
    let speech: Vec<bool> = pcm.chunks(FRAME).map(|f| vad.frame(f).0).collect();
    if !speech.iter().any(|&s| s) {
        return Compacted::Silent;
    }
    let long = ms_to_samples(LONG_SILENCE_MS) / FRAME;
    let keep = ms_to_samples(KEEP_MS);

    // Cuts (sample ranges), from silent runs of at least `long` frames.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < speech.len() {
        if speech[i] {
            i += 1;
            continue;
        }
        let a = i;
        while i < speech.len() && !speech[i] {
            i += 1;
        }
        let b = i;
        if b - a < long {
            continue;
        }
        let (start, end) = (a * FRAME, (b * FRAME).min(pcm.len()));
        let cut_from = if a == 0 { 0 } else { start + keep };
        let cut_to = if b == speech.len() {
            pcm.len()
        } else {
            end - keep
        };
        if cut_to > cut_from {
            cuts.push((cut_from, cut_to));
        }
    }
    if cuts.is_empty() {
        return Compacted::Speech(Cow::Borrowed(pcm), Timeline::identity(pcm.len()));
    }

    let mut pieces = Vec::new();
    let mut out = Vec::with_capacity(pcm.len());
    let mut from = 0;
    for &(cut_from, cut_to) in cuts.iter().chain(std::iter::once(&(pcm.len(), pcm.len()))) {
        if cut_from > from {
            pieces.push(Piece {
                compact_start: out.len(),
                orig_start: from,
                len: cut_from - from,
            });
            out.extend_from_slice(&pcm[from..cut_from]);
        }
        from = cut_to;
    }
    Compacted::Speech(Cow::Owned(out), Timeline { pieces })
}

impl Timeline {
    pub(crate) fn identity(len: usize) -> Timeline {
        Timeline {
            pieces: vec![Piece {
                compact_start: 0,
                orig_start: 0,
                len,
            }],
        }
    }

    /// Maps a time in the compacted audio to the input's timeline. At a
    /// boundary between two pieces a start belongs to the later piece and an
    /// end to the earlier one, so no word straddles a cut.
    pub(crate) fn to_original_ms(&self, ms: u64, is_end: bool) -> u64 {
        let t = ms_to_samples(ms);
        let piece = self
            .pieces
            .iter()
            .find(|p| {
                let end = p.compact_start + p.len;
                if is_end { t <= end } else { t < end }
            })
            .or(self.pieces.last());
        match piece {
            Some(p) => {
                let within = t.saturating_sub(p.compact_start).min(p.len);
                samples_to_ms(p.orig_start + within)
            }
            None => ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64) -> Vec<f32> {
        (0..ms_to_samples(ms))
            .map(|i| 0.2 * (i as f32 * 0.2).sin())
            .collect()
    }

    fn quiet(ms: u64) -> Vec<f32> {
        vec![0.0; ms_to_samples(ms)]
    }

    #[test]
    fn long_silences_shrink_and_times_map_back() {
        // 3 s silence, 1 s speech, 1 s pause (kept), 1 s speech, 10 s silence,
        // 1 s speech, 4 s silence.
        let pcm: Vec<f32> = [
            quiet(3_000),
            tone(1_000),
            quiet(1_000),
            tone(1_000),
            quiet(10_000),
            tone(1_000),
            quiet(4_000),
        ]
        .concat();
        let Compacted::Speech(out, timeline) = compact(&pcm) else {
            panic!("speech expected");
        };
        // Kept: 0.5 s lead-in, 3 s (speech, pause, speech) + 0.5 s, 0.5 s +
        // 1 s speech + 0.5 s.
        assert_eq!(samples_to_ms(out.len()), 500 + 3_500 + 2_000);
        let map = |ms| timeline.to_original_ms(ms, false);
        assert_eq!(map(0), 2_500);
        assert_eq!(map(500), 3_000); // first speech onset
        assert_eq!(map(2_500), 5_000); // second phrase, after the kept pause
        assert_eq!(map(4_000), 15_500); // start of the third piece
        assert_eq!(map(4_500), 16_000); // third phrase onset
        assert_eq!(timeline.to_original_ms(4_000, true), 6_500); // end of the second piece
        assert_eq!(map(6_000), 17_500);
    }

    #[test]
    fn nothing_to_cut_borrows() {
        let pcm: Vec<f32> = [tone(1_000), quiet(1_500), tone(1_000)].concat();
        let Compacted::Speech(out, timeline) = compact(&pcm) else {
            panic!("speech expected");
        };
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(timeline, Timeline::identity(pcm.len()));
        assert_eq!(timeline.to_original_ms(1_234, false), 1_234);
    }

    #[test]
    fn silence_is_silent() {
        assert!(matches!(compact(&quiet(5_000)), Compacted::Silent));
        assert!(matches!(compact(&[]), Compacted::Silent));
    }
}
