//! `Captioner` on real speech with the real tiny.en model, fed like a live
//! microphone (100 ms chunks).

mod speech;

use std::sync::Arc;

use asr::{Caption, Captioner, Model, SAMPLE_RATE};

#[test]
fn captions_stream_while_the_lecture_plays() {
    let path = speech::require_model(asr::TINY_EN_MODEL);
    let model = Arc::new(Model::load(&path).expect("loading ggml-tiny.en.bin"));
    let pcm = speech::lecture_audio(700).expect("synthesizing the lecture");
    let audio_ms = pcm.len() as u64 * 1000 / u64::from(SAMPLE_RATE);

    let mut captioner = Captioner::new(model);
    let mut live: Vec<(u64, Caption)> = Vec::new(); // (pushed ms when returned, caption)
    let chunk = SAMPLE_RATE as usize / 10;
    let mut slowest_push = std::time::Duration::ZERO;
    for (i, c) in pcm.chunks(chunk).enumerate() {
        let started = std::time::Instant::now();
        let out = captioner.push(c).unwrap();
        slowest_push = slowest_push.max(started.elapsed());
        let pushed_ms = (i as u64 + 1) * 100;
        live.extend(out.into_iter().map(|cap| (pushed_ms, cap)));
    }
    let before_flush = live.len();
    let flushed = captioner.flush().unwrap();
    let captions: Vec<Caption> = live.iter().map(|(_, c)| c.clone()).chain(flushed).collect();

    for (pushed_ms, c) in &live {
        eprintln!(
            "[{pushed_ms:>6} ms] {:>6}-{:<6} {}",
            c.start_ms, c.end_ms, c.text
        );
    }
    let text = captions
        .iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let wer = asr::wer(&speech::lecture_text(), &text);
    eprintln!(
        "tiny.en captions: {} ({} before flush), WER {:.1} %, slowest push {} ms",
        captions.len(),
        before_flush,
        wer * 100.0,
        slowest_push.as_millis()
    );

    // Live: most of the lecture is captioned while it plays, each caption
    // soon after its speech ends (a pause, or the 8 s window limit).
    assert!(
        before_flush * 2 >= captions.len() && before_flush >= 5,
        "only {before_flush} of {} captions came out before flush",
        captions.len()
    );
    for (pushed_ms, c) in &live {
        assert!(
            *pushed_ms <= c.end_ms + 9_000,
            "caption ending at {} ms only returned at {pushed_ms} ms",
            c.end_ms
        );
    }
    assert!(
        wer <= 0.30,
        "caption WER {:.1} % > 30 %: {text}",
        wer * 100.0
    );

    let mut last_end = 0;
    for c in &captions {
        assert!(
            c.start_ms >= last_end && c.start_ms <= c.end_ms && c.end_ms <= audio_ms,
            "caption times out of order or outside the {audio_ms} ms audio: {captions:#?}"
        );
        last_end = c.end_ms;
    }
}

#[test]
fn silence_makes_no_captions() {
    let path = speech::require_model(asr::TINY_EN_MODEL);
    let model = Arc::new(Model::load(&path).expect("loading ggml-tiny.en.bin"));
    let mut captioner = Captioner::new(model);
    let quiet = speech::silence(20_000);
    let mut out = Vec::new();
    for c in quiet.chunks(1_600) {
        out.extend(captioner.push(c).unwrap());
    }
    out.extend(captioner.flush().unwrap());
    assert!(out.is_empty(), "captions for silence: {out:?}");
}
