//! Synthesized speech for the asr tests and the benchmark: a known English
//! script spoken by espeak-ng (deploy/install.sh installs it and ffmpeg),
//! resampled to 16 kHz mono f32.
//!
//! Shared by `tests/*.rs` (`mod speech;`) and `src/bin/bench-asr.rs`
//! (`#[path]`), so the benchmark measures what the tests assert on.
#![allow(dead_code)] // each includer uses a different part

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail, ensure};

/// A lecture in paragraphs (no digits: spoken numbers are written out in
/// many ways, which would measure the normalizer instead of the model).
/// About 330 words: a little over two minutes at 150 words per minute.
pub const LECTURE: &[&str] = &[
    "Good morning, everyone. Today we are going to talk about photosynthesis, \
     the process that allows green plants to turn sunlight into food. \
     Please open your notebooks and write down the main ideas as we go.",
    "Every leaf is a small factory. Inside its cells there are tiny structures \
     called chloroplasts, and they contain a green pigment named chlorophyll. \
     Chlorophyll absorbs red and blue light very well, but it reflects green light, \
     which is why most leaves look green to our eyes.",
    "The plant needs three ingredients. It takes water from the soil through its roots, \
     it takes carbon dioxide from the air through small openings on the leaves, \
     and it captures energy from the sun. With these ingredients, the chloroplasts \
     build sugar and release oxygen as a waste product.",
    "This oxygen is the same gas that we breathe. In a sense, every breath you take \
     depends on plants and on tiny algae floating in the ocean. \
     Without photosynthesis, animals and people could not survive for very long.",
    "Scientists usually divide the process into two stages. The first stage depends on light \
     and happens in the membranes of the chloroplast. The second stage does not need light directly, \
     and it uses the energy stored during the first stage to fix carbon into sugar.",
    "Now, think about a forest in autumn. When the days become shorter, \
     many trees stop making chlorophyll. The green color fades, and we can finally see \
     the yellow and orange pigments that were hidden in the leaves all summer long.",
    "For next week, I would like you to read the chapter about plant cells \
     and answer the questions at the end. If anything is unclear, \
     send me a message or come to my office after class. Thank you for listening.",
];

/// The whole lecture as one text.
pub fn lecture_text() -> String {
    LECTURE.join(" ")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Speaks `text` with espeak-ng (US English, 150 words per minute) and
/// returns 16 kHz mono samples.
pub fn synthesize(text: &str) -> Result<Vec<f32>> {
    let dir = std::env::temp_dir().join(format!(
        "asr-speech-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    let result = synthesize_in(&dir, text);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn synthesize_in(dir: &std::path::Path, text: &str) -> Result<Vec<f32>> {
    let wav: PathBuf = dir.join("speech.wav");
    let raw: PathBuf = dir.join("speech.f32");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng (install it with deploy/install.sh)")?;
    ensure!(status.success(), "espeak-ng failed: {status}");
    // espeak writes 22050 Hz; ffmpeg's resampler brings it to 16 kHz.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-ar", "16000", "-ac", "1", "-f", "f32le"])
        .arg(&raw)
        .output()
        .context("running ffmpeg (install it with deploy/install.sh)")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let bytes = std::fs::read(&raw)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The lecture, paragraph by paragraph, with a pause of `gap_ms` between
/// paragraphs (a teacher turning a page).
pub fn lecture_audio(gap_ms: u64) -> Result<Vec<f32>> {
    let mut pcm = Vec::new();
    for (i, paragraph) in LECTURE.iter().enumerate() {
        if i > 0 {
            pcm.extend(silence(gap_ms));
        }
        pcm.extend(synthesize(paragraph)?);
    }
    Ok(pcm)
}

/// Near-silence: faint deterministic noise (about -70 dBFS), like a quiet
/// room rather than digital zeros.
pub fn silence(ms: u64) -> Vec<f32> {
    let n = (ms * 16) as usize;
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 0.001
        })
        .collect()
}

/// Index of the first sample louder than a whisper (|s| > 0.01), i.e. where
/// speech really starts in espeak's output.
pub fn onset(pcm: &[f32]) -> usize {
    pcm.iter().position(|s| s.abs() > 0.01).unwrap_or(pcm.len())
}

/// Path of a model; panics with the fix when it is missing, so a test without
/// models fails instead of passing vacuously.
pub fn require_model(name: &str) -> PathBuf {
    let path = asr::model_path(name);
    assert!(
        path.is_file(),
        "model {} is missing: run deploy/asr-models.sh (or set CLASSROOM_MODELS_DIR)",
        path.display()
    );
    path
}
