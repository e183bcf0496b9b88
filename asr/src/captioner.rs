use std::sync::Arc;

use whisper_rs::WhisperState;

use crate::model::{Model, Options};
use crate::vad::{EnergyVad, FRAME};
use crate::{AsrError, SAMPLE_RATE, samples_to_ms};

/// A caption ready to show: times are ms since the captioner's first sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// How the captioner cuts the stream into windows.
#[derive(Debug, Clone)]
pub struct CaptionerOptions {
    /// A window is cut here at the latest (at the quietest frame of its last
    /// seconds) when the speaker does not pause.
    pub max_window_ms: u64,
    /// A pause does not end a window shorter than this: short windows give
    /// whisper too little context (on the benchmark lecture tiny.en made
    /// 11 % word errors with 2 s, 9 % with 4 s) and cost an encoder run each.
    pub min_window_ms: u64,
    /// Silence this long is a pause.
    pub pause_ms: u64,
    /// Whisper threads per window (see [`Options::threads`] for why 1).
    pub threads: u32,
    /// Language; `None` for English-only models is the same as "en".
    pub language: Option<String>,
}

impl Default for CaptionerOptions {
    fn default() -> Self {
        CaptionerOptions {
            max_window_ms: 8_000,
            min_window_ms: 4_000,
            pause_ms: 300,
            threads: 1,
            language: Some("en".into()),
        }
    }
}

/// Silence kept before the first speech frame of a window, so whisper hears
/// the onset of the first word.
const LEAD_IN_MS: u64 = 200;
/// Fewer speech frames than this (a cough, a click) is not worth decoding;
/// whisper tends to invent a "Thank you." for such windows.
const MIN_SPEECH_MS: u64 = 200;
/// Extra encoder positions beyond the window's own (50 per second), as
/// whisper.cpp's stream example does: the decoder needs a little room past
/// the end of the audio.
const AUDIO_CTX_MARGIN: usize = 64;
const AUDIO_CTX_FULL: usize = 1500;

/// Streaming captions: push PCM as it arrives, get captions back.
///
/// Pushed audio is buffered and classified in 20 ms frames by an energy VAD.
/// A window ends at the first pause after `min_window_ms`, or at
/// `max_window_ms` at the latest; it is then transcribed (greedy, no
/// temperature fallback, encoder context shortened to the window's length)
/// and its captions returned. With tiny.en on one thread a window takes
/// about 0.3 to 0.5 s (under 1.1 s at worst on a loaded two-core machine),
/// about 0.07 to 0.12 of real time over a lecture. Silence between windows is
/// dropped without running the model.
///
/// `push` blocks for the windows it completes, so run the captioner on its own
/// thread, not on an async executor.
pub struct Captioner {
    model: Arc<Model>,
    opts: CaptionerOptions,
    state: Option<WhisperState>,
    vad: EnergyVad,
    /// Samples not yet transcribed or dropped.
    buf: Vec<f32>,
    /// Index (since the first push) of `buf[0]`.
    buf_start: u64,
    /// Per whole 20 ms frame of `buf`: (speech, rms).
    frames: Vec<(bool, f32)>,
}

impl Captioner {
    pub fn new(model: Arc<Model>) -> Captioner {
        Captioner::with_options(model, CaptionerOptions::default())
    }

    pub fn with_options(model: Arc<Model>, opts: CaptionerOptions) -> Captioner {
        Captioner {
            model,
            opts,
            state: None,
            vad: EnergyVad::new(),
            buf: Vec::new(),
            buf_start: 0,
            frames: Vec::new(),
        }
    }

    /// Feeds 16 kHz mono PCM; returns captions completed by it (a window
    /// ends at a pause or at its maximum length).
    pub fn push(&mut self, pcm: &[f32]) -> Result<Vec<Caption>, AsrError> {
        self.buf.extend_from_slice(pcm);
        while (self.frames.len() + 1) * FRAME <= self.buf.len() {
            let at = self.frames.len() * FRAME;
            let f = self.vad.frame(&self.buf[at..at + FRAME]);
            self.frames.push(f);
        }
        let mut captions = Vec::new();
        loop {
            self.drop_leading_silence();
            let Some(cut) = self.find_cut() else {
                break;
            };
            captions.extend(self.transcribe_front(cut * FRAME)?);
        }
        Ok(captions)
    }

    /// Transcribes what is buffered (end of the stream).
    pub fn flush(&mut self) -> Result<Vec<Caption>, AsrError> {
        self.drop_leading_silence();
        let n = self.buf.len();
        let captions = if n > 0 {
            self.transcribe_front(n)?
        } else {
            Vec::new()
        };
        self.frames.clear();
        Ok(captions)
    }

    fn frames_for(&self, ms: u64) -> usize {
        (ms * u64::from(SAMPLE_RATE) / 1000) as usize / FRAME
    }

    /// Drops silence at the front of the buffer, keeping a short lead-in
    /// before the first speech frame.
    fn drop_leading_silence(&mut self) {
        let keep = self.frames_for(LEAD_IN_MS);
        let first_speech = self.frames.iter().position(|f| f.0);
        let drop = match first_speech {
            Some(i) => i.saturating_sub(keep),
            None => self.frames.len().saturating_sub(keep),
        };
        if drop > 0 {
            self.advance(drop * FRAME);
        }
    }

    /// Where the next window ends (in frames from the buffer's start), if it
    /// has ended yet.
    fn find_cut(&self) -> Option<usize> {
        let min = self.frames_for(self.opts.min_window_ms).max(1);
        let max = self.frames_for(self.opts.max_window_ms).max(min + 1);
        let pause = self.frames_for(self.opts.pause_ms).max(1);

        // The first pause: `pause` silent frames in a row, ending a window of
        // at least `min` frames; cut in the middle of the pause (the rest of
        // it is dropped as the next window's leading silence).
        let mut run = 0;
        for (i, f) in self.frames.iter().enumerate().take(max) {
            run = if f.0 { 0 } else { run + 1 };
            if run >= pause {
                let cut = i + 1 - pause / 2;
                if cut >= min {
                    return Some(cut);
                }
            }
        }
        if self.frames.len() < max {
            return None;
        }
        // No pause: cut in the window's last 3 s where it is quietest over
        // 100 ms (a gap between words more likely than not; a single quiet
        // frame is as often a stop consonant inside a word).
        let from = max.saturating_sub(self.frames_for(3_000)).max(min);
        let loudness = |i: usize| -> f32 {
            let lo = i.saturating_sub(2);
            let hi = (i + 3).min(self.frames.len());
            self.frames[lo..hi].iter().map(|f| f.1).sum()
        };
        let quietest = (from..max)
            .min_by(|&a, &b| loudness(a).total_cmp(&loudness(b)))
            .unwrap_or(max);
        Some(quietest.max(1))
    }

    fn advance(&mut self, samples: usize) {
        let samples = samples.min(self.buf.len());
        self.buf.drain(..samples);
        let frames = samples / FRAME;
        self.frames.drain(..frames.min(self.frames.len()));
        self.buf_start += samples as u64;
    }

    /// Transcribes the first `samples` of the buffer as one window and drops
    /// them.
    fn transcribe_front(&mut self, samples: usize) -> Result<Vec<Caption>, AsrError> {
        let samples = samples.min(self.buf.len());
        let window_frames = samples / FRAME;
        let speech = self.frames[..window_frames.min(self.frames.len())]
            .iter()
            .filter(|f| f.0)
            .count();
        let window_start_ms = samples_to_ms(self.buf_start as usize);
        let window_ms = samples_to_ms(samples);
        let mut captions = Vec::new();
        if speech >= self.frames_for(MIN_SPEECH_MS) {
            let opts = Options {
                beam: None,
                language: self.opts.language.clone(),
                threads: self.opts.threads,
                audio_ctx: Some(audio_ctx_for(samples) as u32),
                temperature_fallback: false,
                word_timestamps: false,
            };
            let state = match self.state.as_mut() {
                Some(s) => s,
                None => self.state.insert(self.model.new_state()?),
            };
            let segments = self
                .model
                .transcribe_with(state, &self.buf[..samples], &opts)?;
            for seg in segments {
                if is_non_speech(&seg.text) {
                    continue;
                }
                captions.push(Caption {
                    start_ms: window_start_ms + seg.start_ms.min(window_ms),
                    end_ms: window_start_ms + seg.end_ms.clamp(seg.start_ms, window_ms),
                    text: seg.text,
                });
            }
            tracing::debug!(
                window_start_ms,
                window_ms,
                speech_ms = speech as u64 * 20,
                captions = captions.len(),
                "asr caption window"
            );
        }
        self.advance(samples);
        Ok(captions)
    }
}

/// Encoder positions for a window of `samples` (one per 20 ms, plus margin).
fn audio_ctx_for(samples: usize) -> usize {
    let min_samples = SAMPLE_RATE as usize * 11 / 10;
    (samples.max(min_samples) / FRAME + AUDIO_CTX_MARGIN).min(AUDIO_CTX_FULL)
}

/// Whisper's markers for audio without words ("[BLANK_AUDIO]", "(silence)",
/// "[Music]"): a caption of only bracketed text says nothing.
fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || ((t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_window_length() {
        // 8 s: 400 positions + margin, as measured in docs (≈464).
        assert_eq!(audio_ctx_for(8 * 16_000), 464);
        assert_eq!(audio_ctx_for(100), 55 + 64);
        assert_eq!(audio_ctx_for(60 * 16_000), 1500);
    }

    #[test]
    fn bracketed_markers_are_not_captions() {
        assert!(is_non_speech(" [BLANK_AUDIO]"));
        assert!(is_non_speech("(wind blowing)"));
        assert!(!is_non_speech("Plants need light."));
    }
}
