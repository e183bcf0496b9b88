//! `Model::transcribe` on real speech with the real base model: accuracy on a
//! lecture and word timing after silence.

mod speech;

use std::sync::{Arc, OnceLock};

use asr::{AsrError, Model, Options, SAMPLE_RATE, Segment};

fn base() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = speech::require_model(asr::BASE_MODEL);
            Arc::new(Model::load(&path).expect("loading ggml-base.bin"))
        })
        .clone()
}

/// Base, beam 5, English. One thread: the tests share two cores with each
/// other and with cargo, and ggml's spinning thread barriers slow down badly
/// when its threads do not get a core each.
fn opts() -> Options {
    Options {
        threads: 1,
        ..Options::default()
    }
}

fn ms(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(SAMPLE_RATE)
}

fn joined(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn lecture_with_base_beam5_has_low_wer() {
    let model = base();
    let pcm = speech::lecture_audio(700).expect("synthesizing the lecture");
    let audio_ms = ms(pcm.len());
    let started = std::time::Instant::now();
    let segments = model.transcribe(&pcm, &opts()).unwrap();
    let took = started.elapsed();

    let hypothesis = joined(&segments);
    let wer = asr::wer(&speech::lecture_text(), &hypothesis);
    eprintln!(
        "base beam 5: WER {:.1} % over {} s of audio, RTF {:.3}\n{hypothesis}",
        wer * 100.0,
        audio_ms / 1000,
        took.as_secs_f64() * 1000.0 / audio_ms as f64
    );
    assert!(wer <= 0.15, "WER {:.1} % > 15 %: {hypothesis}", wer * 100.0);

    // Timeline sanity: segments and words in order, inside the audio.
    let mut last_start = 0;
    for s in &segments {
        assert!(
            s.start_ms >= last_start,
            "segments out of order: {segments:#?}"
        );
        assert!(
            s.start_ms <= s.end_ms && s.end_ms <= audio_ms,
            "bad segment {s:?}"
        );
        assert!(!s.words.is_empty(), "segment without words: {s:?}");
        last_start = s.start_ms;
        for w in &s.words {
            assert!(
                w.start_ms <= w.end_ms && w.end_ms <= audio_ms,
                "bad word {w:?}"
            );
            assert!(
                !w.text.contains("<|") && !w.text.contains("[_"),
                "special token {w:?}"
            );
        }
    }
    // Past the first 30 s window, timestamps continue (not restart at 0).
    assert!(
        segments.last().unwrap().end_ms > audio_ms - 10_000,
        "last segment ends at {} ms of {audio_ms}",
        segments.last().unwrap().end_ms
    );
}

/// Speech starting after `silence_ms` of quiet, optionally after another
/// phrase: the first word's start must be within a second of the truth.
fn check_onset(before: Option<&str>, silence_ms: u64, phrase: &str, first_word: &str) {
    let model = base();
    let mut pcm = match before {
        Some(text) => speech::synthesize(text).unwrap(),
        None => Vec::new(),
    };
    pcm.extend(speech::silence(silence_ms));
    let spoken = speech::synthesize(phrase).unwrap();
    let truth_ms = ms(pcm.len() + speech::onset(&spoken));
    pcm.extend(spoken);
    pcm.extend(speech::silence(1_000));

    let segments = model.transcribe(&pcm, &opts()).unwrap();
    let skip = before.map_or(0, |t| t.split_whitespace().count());
    let words: Vec<_> = segments.iter().flat_map(|s| s.words.iter()).collect();
    let found = words
        .iter()
        .skip(skip.saturating_sub(2))
        .find(|w| asr::wer(first_word, &w.text) == 0.0)
        .unwrap_or_else(|| panic!("no word {first_word:?} in {:?}", joined(&segments)));
    let error_ms = found.start_ms as i64 - truth_ms as i64;
    eprintln!(
        "{first_word:?} starts at {} ms, truth {truth_ms} ms (error {error_ms} ms)",
        found.start_ms
    );
    assert!(
        error_ms.abs() <= 1_000,
        "{first_word:?} at {} ms, speech starts at {truth_ms} ms: {segments:#?}",
        found.start_ms
    );
}

#[test]
fn word_after_silence_between_phrases_is_timed() {
    check_onset(
        Some("Let us begin with a short question about the water cycle."),
        6_500,
        "Evaporation lifts water from the oceans into the sky.",
        "Evaporation",
    );
}

#[test]
fn word_after_leading_silence_is_timed() {
    check_onset(
        None,
        4_000,
        "Condensation turns the vapor into clouds and rain.",
        "Condensation",
    );
}

#[test]
fn short_and_empty_input() {
    let model = base();
    assert!(model.transcribe(&[], &opts()).unwrap().is_empty());
    // Under a second: padded, not rejected.
    let pcm = speech::synthesize("Hello.").unwrap();
    assert!(pcm.len() < SAMPLE_RATE as usize);
    let segments = model.transcribe(&pcm, &opts()).unwrap();
    assert_eq!(asr::wer("hello", &joined(&segments)), 0.0, "{segments:?}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let path = std::path::Path::new("/nonexistent/ggml-missing.bin");
    let err = Model::load(path).unwrap_err();
    assert!(matches!(err, AsrError::ModelMissing(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/ggml-missing.bin") && msg.contains("deploy/asr-models.sh"),
        "{msg}"
    );
}
