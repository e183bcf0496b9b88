use std::path::{Path, PathBuf};
use std::time::Instant;

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters, WhisperState,
};

use crate::timeline::{Compacted, Timeline, compact};
use crate::words::{TokenPiece, merge_tokens};
use crate::{AsrError, SAMPLE_RATE, samples_to_ms};

/// One word with its place on the audio's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Mean token probability.
    pub p: f32,
}

/// A transcript segment (roughly a sentence) with its words.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub words: Vec<Word>,
}

/// Decoding choices.
#[derive(Debug, Clone)]
pub struct Options {
    /// Beam size; `None` = greedy.
    pub beam: Option<u32>,
    /// e.g. "en"; `None` = detect.
    pub language: Option<String>,
    /// Compute threads. Default 1: ggml's threads wait for each other by
    /// spinning, so on a box whose cores are busy with anything else (an edge
    /// running live classes, cargo) two threads measured 3 to 8 times slower
    /// than one while burning both cores. Raise it only on an idle machine.
    pub threads: u32,
    /// Shortened encoder context (streaming), `None` = full 30 s.
    pub audio_ctx: Option<u32>,
    /// Decode again at higher temperatures when a window's output looks
    /// wrong (repetitive or improbable). Better text on hard audio, but a
    /// window can then cost several decodes: live captions turn it off to
    /// bound their latency.
    pub temperature_fallback: bool,
    /// Per-word timings. Costs a little; captions do without.
    pub word_timestamps: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            beam: Some(5),
            language: Some("en".into()),
            threads: 1,
            audio_ctx: None,
            temperature_fallback: true,
            word_timestamps: true,
        }
    }
}

/// whisper.cpp skips input shorter than one second (100 mel frames) as "too
/// short"; shorter PCM is padded with silence at the end up to this length,
/// which moves no timestamp.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize * 11 / 10;

/// A loaded model; `Send + Sync`, load once and share.
///
/// The whisper context (weights) is shared and read-only; every transcription
/// works in its own `WhisperState` (mel, KV cache, decoder buffers), so
/// concurrent calls do not contend on anything but the CPU.
pub struct Model {
    ctx: WhisperContext,
    path: PathBuf,
    /// Word times come from DTW alignment of the decoder's cross-attention
    /// (the model's known alignment heads); otherwise from whisper.cpp's
    /// timestamp-token heuristic, which piles a segment's words together.
    dtw: bool,
}

// The whole point of the type: one model shared by a recorder and captioners
// on other threads. whisper-rs asserts both for `WhisperContext`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
};

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("path", &self.path).finish()
    }
}

impl Model {
    pub fn load(path: &Path) -> Result<Model, AsrError> {
        if !path.is_file() {
            return Err(AsrError::ModelMissing(path.to_owned()));
        }
        whisper_rs::install_logging_hooks();
        let started = Instant::now();
        let preset = alignment_preset(path);
        let mut params = WhisperContextParameters::default();
        if let Some(model_preset) = preset.clone() {
            params.dtw_parameters(DtwParameters {
                mode: DtwMode::ModelPreset { model_preset },
                ..DtwParameters::default()
            });
        }
        let ctx = WhisperContext::new_with_params(path, params)
            .map_err(|e| AsrError::Whisper(format!("loading {}: {e}", path.display())))?;
        tracing::info!(
            path = %path.display(),
            n_vocab = ctx.n_vocab(),
            n_text_layer = ctx.model_n_text_layer(),
            multilingual = ctx.is_multilingual(),
            alignment_heads = ?preset,
            load_ms = started.elapsed().as_millis() as u64,
            "asr model loaded"
        );
        Ok(Model {
            ctx,
            path: path.to_owned(),
            dtw: preset.is_some(),
        })
    }

    /// The file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transcribes 16 kHz mono f32 PCM of any length; times are ms from the
    /// start of `pcm`.
    ///
    /// Long input (a whole class) is fine: whisper.cpp walks it in 30 s
    /// windows. Silences of 2 s or more are shortened before decoding (see
    /// `timeline.rs`) and times mapped back; audio without any speech gives
    /// no segments. This call takes seconds to minutes; run it off any async
    /// executor.
    pub fn transcribe(&self, pcm: &[f32], opts: &Options) -> Result<Vec<Segment>, AsrError> {
        let (audio, timeline) = match compact(pcm) {
            Compacted::Silent => return Ok(Vec::new()),
            Compacted::Speech(audio, timeline) => (audio, timeline),
        };
        if audio.len() < pcm.len() {
            tracing::debug!(
                audio_ms = samples_to_ms(pcm.len()),
                decoded_ms = samples_to_ms(audio.len()),
                "asr long silences cut"
            );
        }
        let mut state = self.new_state()?;
        let mut segments = self.transcribe_with(&mut state, &audio, opts)?;
        remap(&mut segments, &timeline);
        Ok(segments)
    }

    pub(crate) fn new_state(&self) -> Result<WhisperState, AsrError> {
        Ok(self.ctx.create_state()?)
    }

    /// [`Model::transcribe`] in a caller-owned state (the captioner keeps one
    /// instead of allocating buffers for every window).
    pub(crate) fn transcribe_with(
        &self,
        state: &mut WhisperState,
        pcm: &[f32],
        opts: &Options,
    ) -> Result<Vec<Segment>, AsrError> {
        if pcm.is_empty() {
            return Ok(Vec::new());
        }
        let padded;
        let input = if pcm.len() < MIN_SAMPLES {
            let mut p = Vec::with_capacity(MIN_SAMPLES);
            p.extend_from_slice(pcm);
            p.resize(MIN_SAMPLES, 0.0);
            padded = p;
            &padded[..]
        } else {
            pcm
        };
        let audio_ms = samples_to_ms(pcm.len());

        let strategy = match opts.beam {
            Some(beam) => SamplingStrategy::BeamSearch {
                beam_size: beam.max(1) as i32,
                patience: -1.0,
            },
            None => SamplingStrategy::Greedy { best_of: 5 },
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_language(opts.language.as_deref());
        params.set_translate(false);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_token_timestamps(opts.word_timestamps);
        // Non-speech tokens ("(music)", "[laughter]", "♪") are no use in a
        // transcript a student searches.
        params.set_suppress_nst(true);
        if let Some(ctx) = opts.audio_ctx {
            params.set_audio_ctx(ctx as i32);
        }
        if !opts.temperature_fallback {
            params.set_temperature_inc(0.0);
        }

        let started = Instant::now();
        state.full(params, input)?;
        let segments = self.collect(state, audio_ms, opts.word_timestamps)?;
        let took = started.elapsed();
        tracing::debug!(
            audio_ms,
            took_ms = took.as_millis() as u64,
            rtf = took.as_secs_f64() * 1000.0 / audio_ms.max(1) as f64,
            segments = segments.len(),
            beam = opts.beam,
            "asr transcribed"
        );
        Ok(segments)
    }

    /// Reads the decoded segments out of `state`: drops special tokens
    /// (start/end markers, timestamps, language), joins sub-word tokens into
    /// words, converts whisper's 10 ms ticks to ms and clamps everything to
    /// the real (unpadded) audio.
    fn collect(
        &self,
        state: &WhisperState,
        audio_ms: u64,
        word_timestamps: bool,
    ) -> Result<Vec<Segment>, AsrError> {
        let eot = self.ctx.token_eot();
        let tick_ms = |t: i64| (t.max(0) as u64 * 10).min(audio_ms);
        let mut out = Vec::new();
        for seg in state.as_iter() {
            let seg_start = tick_ms(seg.start_timestamp());
            let seg_end = tick_ms(seg.end_timestamp()).max(seg_start);
            let mut pieces: Vec<TokenPiece> = Vec::new();
            for i in 0..seg.n_tokens() {
                let Some(token) = seg.get_token(i) else {
                    continue;
                };
                let data = token.token_data();
                // Every special token (end of text and everything after it
                // in the vocabulary: start markers, languages, timestamps)
                // has an id at or above end-of-text.
                if data.id >= eot {
                    continue;
                }
                let (start_ms, end_ms) = if self.dtw {
                    // DTW gives one instant per token, where it begins (a
                    // little after the sound's onset); a token lasts until
                    // the next one begins (set below).
                    let t = tick_ms(data.t_dtw).clamp(seg_start, seg_end);
                    (t, t)
                } else {
                    (tick_ms(data.t0), tick_ms(data.t1))
                };
                if self.dtw
                    && let Some(prev) = pieces.last_mut()
                {
                    prev.end_ms = start_ms.max(prev.start_ms);
                }
                pieces.push(TokenPiece {
                    bytes: token.to_bytes()?.to_vec(),
                    start_ms,
                    end_ms,
                    p: data.p,
                });
            }
            if self.dtw
                && let Some(last) = pieces.last_mut()
            {
                last.end_ms = seg_end.max(last.start_ms);
            }
            let text_bytes: Vec<u8> = pieces.iter().flat_map(|p| p.bytes.clone()).collect();
            let text = String::from_utf8_lossy(&text_bytes).trim().to_owned();
            if text.is_empty() {
                continue;
            }
            // Without token timestamps t0/t1 are not computed: no words then.
            let words = if word_timestamps {
                merge_tokens(&pieces)
            } else {
                Vec::new()
            };
            out.push(Segment {
                start_ms: seg_start,
                end_ms: seg_end,
                text,
                words,
            });
        }
        Ok(out)
    }
}

/// Maps segment and word times from the compacted audio back to the input.
fn remap(segments: &mut [Segment], timeline: &Timeline) {
    for seg in segments {
        seg.start_ms = timeline.to_original_ms(seg.start_ms, false);
        seg.end_ms = timeline.to_original_ms(seg.end_ms, true).max(seg.start_ms);
        for w in &mut seg.words {
            w.start_ms = timeline.to_original_ms(w.start_ms, false);
            w.end_ms = timeline.to_original_ms(w.end_ms, true).max(w.start_ms);
        }
        // A segment's own timestamps are coarser than its words' (DTW):
        // keep the words inside it.
        if let (Some(first), Some(last)) = (seg.words.first(), seg.words.last()) {
            seg.start_ms = seg.start_ms.min(first.start_ms);
            seg.end_ms = seg.end_ms.max(last.end_ms);
        }
    }
}

/// The alignment heads whisper.cpp knows for this model, from the ggml
/// header (vocabulary size tells English-only from multilingual, text
/// layers and width the size). `None` (no DTW) for anything else, e.g. the
/// large models, whose versions the header does not tell apart.
fn alignment_preset(path: &Path) -> Option<DtwModelPreset> {
    use std::io::Read;
    let mut header = [0u8; 44];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .ok()?;
    let field = |i: usize| {
        i32::from_le_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ])
    };
    const GGML_MAGIC: i32 = 0x6767_6d6c;
    if field(0) != GGML_MAGIC {
        return None;
    }
    let english_only = field(1) == 51_864;
    let (text_state, text_layers) = (field(7), field(9));
    match (text_layers, text_state, english_only) {
        (4, 384, true) => Some(DtwModelPreset::TinyEn),
        (4, 384, false) => Some(DtwModelPreset::Tiny),
        (6, 512, true) => Some(DtwModelPreset::BaseEn),
        (6, 512, false) => Some(DtwModelPreset::Base),
        (12, 768, true) => Some(DtwModelPreset::SmallEn),
        (12, 768, false) => Some(DtwModelPreset::Small),
        (24, 1024, true) => Some(DtwModelPreset::MediumEn),
        (24, 1024, false) => Some(DtwModelPreset::Medium),
        _ => None,
    }
}
