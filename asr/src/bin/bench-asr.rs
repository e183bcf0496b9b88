//! Speech-to-text benchmark: real-time factor (processing time / audio
//! length) and word error rate on a synthesized two-minute lecture, for the
//! recordings path (base, beam 5 and greedy) and the live-captions path
//! (tiny.en through the streaming `Captioner`).
//!
//!     cargo run --release -p asr --bin bench-asr
//!
//! Needs the models (deploy/asr-models.sh), espeak-ng and ffmpeg.

#[path = "../../tests/speech/mod.rs"]
mod speech;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use asr::{Captioner, Model, Options, SAMPLE_RATE};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "RTF and WER of the asr crate on a synthesized lecture")]
struct Config {
    /// Whisper threads.
    #[arg(long, env = "BENCH_ASR_THREADS", default_value_t = 1)]
    threads: u32,
    /// Pause between the lecture's paragraphs, ms.
    #[arg(long, env = "BENCH_ASR_GAP_MS", default_value_t = 700)]
    gap_ms: u64,
    /// Run only these: base-beam5, base-greedy, tiny-stream (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Captioner: shortest window a pause may end, ms.
    #[arg(long, env = "BENCH_ASR_MIN_WINDOW_MS", default_value_t = asr::CaptionerOptions::default().min_window_ms)]
    min_window_ms: u64,
    /// Captioner: longest window, ms.
    #[arg(long, env = "BENCH_ASR_MAX_WINDOW_MS", default_value_t = asr::CaptionerOptions::default().max_window_ms)]
    max_window_ms: u64,
    /// Captioner: silence that counts as a pause, ms.
    #[arg(long, env = "BENCH_ASR_PAUSE_MS", default_value_t = asr::CaptionerOptions::default().pause_ms)]
    pause_ms: u64,
    /// Seconds between progress lines.
    #[arg(long, env = "BENCH_ASR_PROGRESS_S", default_value_t = 10)]
    progress_s: u64,
}

struct Row {
    name: &'static str,
    took: Duration,
    /// CPU time of the whole process over the run (all threads): on a
    /// shared machine wall time also counts other people's work.
    cpu: Duration,
    wer: f64,
    extra: String,
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() -> Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    println!("synthesizing the lecture (espeak-ng)…");
    let pcm = speech::lecture_audio(config.gap_ms).context("synthesizing the lecture")?;
    let reference = speech::lecture_text();
    let audio = Duration::from_secs_f64(pcm.len() as f64 / f64::from(SAMPLE_RATE));
    println!(
        "lecture: {:.1} s of audio, {} words; {} thread(s); load average {}",
        audio.as_secs_f64(),
        reference.split_whitespace().count(),
        config.threads,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let wanted = |key: &str| config.only.is_empty() || config.only.iter().any(|o| o == key);
    let mut rows = Vec::new();
    let runs: Vec<_> = [
        ("base-beam5", "base, beam 5", Some(5)),
        ("base-greedy", "base, greedy", None),
    ]
    .into_iter()
    .filter(|(key, _, _)| wanted(key))
    .collect();
    let base = if runs.is_empty() {
        None
    } else {
        Some(Arc::new(load(asr::BASE_MODEL)?))
    };
    for (_, name, beam) in runs {
        let Some(base) = base.as_ref() else { break };
        let opts = Options {
            beam,
            threads: config.threads,
            ..Options::default()
        };
        println!("{name}: transcribing…");
        let started = Instant::now();
        let cpu_before = cpu_time();
        let segments = with_ticker(name, config.progress_s, || base.transcribe(&pcm, &opts))?;
        let took = started.elapsed();
        let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        let words: usize = segments.iter().map(|s| s.words.len()).sum();
        let row = Row {
            name,
            took,
            cpu: cpu_time() - cpu_before,
            wer: asr::wer(&reference, &text.join(" ")),
            extra: format!("{} segments, {words} words", segments.len()),
        };
        print_row(&row, audio);
        rows.push(row);
    }
    drop(base);

    if wanted("tiny-stream") {
        rows.push(bench_streaming(&config, &pcm, &reference, audio)?);
    }

    println!();
    println!("| engine | RTF (wall) | RTF (CPU) | WER | notes |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.3} | {:.3} | {:.1} % | {} |",
            r.name,
            r.took.as_secs_f64() / audio.as_secs_f64(),
            r.cpu.as_secs_f64() / audio.as_secs_f64(),
            r.wer * 100.0,
            r.extra
        );
    }
    Ok(())
}

fn bench_streaming(config: &Config, pcm: &[f32], reference: &str, audio: Duration) -> Result<Row> {
    let tiny = Arc::new(load(asr::TINY_EN_MODEL)?);
    let name = "tiny.en, streaming";
    println!("{name}: pushing 100 ms chunks…");
    let mut captioner = Captioner::with_options(
        tiny,
        asr::CaptionerOptions {
            threads: config.threads,
            min_window_ms: config.min_window_ms,
            max_window_ms: config.max_window_ms,
            pause_ms: config.pause_ms,
            ..Default::default()
        },
    );
    let mut captions = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut windows = 0u32;
    let started = Instant::now();
    let cpu_before = cpu_time();
    let mut next_progress = Duration::from_secs(config.progress_s);
    for (i, chunk) in pcm.chunks(SAMPLE_RATE as usize / 10).enumerate() {
        let t = Instant::now();
        let out = captioner.push(chunk)?;
        let took = t.elapsed();
        if !out.is_empty() {
            windows += 1;
            slowest = slowest.max(took);
        }
        captions.extend(out);
        // Progress every `progress_s` seconds of audio pushed (the stream
        // runs several times faster than real time).
        let pushed = Duration::from_millis((i as u64 + 1) * 100);
        if pushed >= next_progress {
            println!(
                "  {name}: {:.0} s of audio pushed, {} captions, {:.1} s elapsed",
                pushed.as_secs_f64(),
                captions.len(),
                started.elapsed().as_secs_f64()
            );
            next_progress += Duration::from_secs(config.progress_s);
        }
    }
    captions.extend(captioner.flush()?);
    let took = started.elapsed();
    let text: Vec<&str> = captions.iter().map(|c| c.text.as_str()).collect();
    let row = Row {
        name,
        took,
        cpu: cpu_time() - cpu_before,
        wer: asr::wer(reference, &text.join(" ")),
        extra: format!(
            "{} captions, {windows} windows before flush, slowest push {} ms",
            captions.len(),
            slowest.as_millis()
        ),
    };
    print_row(&row, audio);
    Ok(row)
}

fn load(name: &str) -> Result<Model> {
    let path = asr::model_path(name);
    let started = Instant::now();
    let model = Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    println!(
        "loaded {} in {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    Ok(model)
}

fn print_row(r: &Row, audio: Duration) {
    println!(
        "{}: {:.1} s ({:.1} s CPU) for {:.1} s of audio, RTF {:.3}, WER {:.1} % ({})",
        r.name,
        r.took.as_secs_f64(),
        r.cpu.as_secs_f64(),
        audio.as_secs_f64(),
        r.took.as_secs_f64() / audio.as_secs_f64(),
        r.wer * 100.0,
        r.extra
    );
}

/// Runs `f`, printing a progress line every `every_s` seconds until it
/// returns (one whisper call gives no progress of its own here).
fn with_ticker<T>(name: &str, every_s: u64, f: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            let mut next = Duration::from_secs(every_s);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if started.elapsed() >= next {
                    println!(
                        "  {name}: still transcribing, {:.0} s elapsed",
                        started.elapsed().as_secs_f64()
                    );
                    next += Duration::from_secs(every_s);
                }
            }
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        out
    })
}
