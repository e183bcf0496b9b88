//! Artifact pipeline benchmark: a recorded class of N minutes (default 10)
//! in which a publisher lectures (espeak-ng speech as real Opus), with a
//! slide change every minute, a question and a poll; then core's pipeline
//! (transcript with Whisper base + beam 5, slides, timeline, chapters,
//! highlights, summary, search index). It prints the pipeline's wall time
//! from the recording being finalized to every artifact being stored, as a
//! fraction of the class's length, each stage's time, the transcription's
//! real-time factor and the word error rate against the script.
//!
//!     cargo build --release --workspace --bins
//!     ./target/release/bench-pipeline --minutes 10

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use clap::Parser;
use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::{Stack, StackOptions, media_check, pdf, wait_until};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Length of the class in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
}

/// A lecture's sentences; the script cycles through them.
const LECTURE: &[&str] = &[
    "Today we continue our study of how living cells capture and use energy.",
    "Plants take in light through pigments such as chlorophyll in their leaves.",
    "The light reactions split water and release oxygen as a by product.",
    "Energy from those reactions is stored in small carrier molecules.",
    "The Calvin cycle then uses that energy to build sugar from carbon dioxide.",
    "Animals break that sugar down again during cellular respiration.",
    "Respiration happens mostly inside the mitochondria of each cell.",
    "Glycolysis is the first step and it takes place in the cytoplasm.",
    "The citric acid cycle releases carbon dioxide and feeds the electron chain.",
    "Most of the usable energy is made at the very end of that chain.",
    "Without oxygen many cells switch to fermentation instead.",
    "Muscles that work very hard can run short of oxygen for a while.",
    "Yeast turns sugar into alcohol and gas when it ferments.",
    "Let us compare the two processes side by side on the next slide.",
    "Notice that the products of one are the starting materials of the other.",
    "This balance between plants and animals shapes the air we breathe.",
];

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let class_ms = args.minutes * 60_000;
    let stack = Stack::start(StackOptions {
        recording: true,
        artifacts: true,
        ..Default::default()
    })
    .await?;
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await?;
    let titles: Vec<String> = (0..args.minutes.max(1))
        .map(|i| format!("Part {}: {}", i + 1, LECTURE[i as usize % LECTURE.len()]))
        .collect();
    let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let (_, deck) = api
        .post_raw(
            "/decks",
            Some(&teacher),
            "application/pdf",
            pdf::pages(&title_refs),
        )
        .await?;
    let deck_id = deck["id"].as_str().unwrap_or_default().to_owned();

    // the script: a sentence every 8 s
    let mut script: Vec<(u64, String)> = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at + 8_000 <= class_ms - 5_000 {
        script.push((at, LECTURE[i % LECTURE.len()].to_owned()));
        at += 8_000;
        i += 1;
    }
    let pieces: Vec<(u64, &str)> = script.iter().map(|(a, t)| (*a, t.as_str())).collect();
    let dir = tempfile::tempdir()?;
    eprintln!("synthesizing {} sentences of speech…", pieces.len());
    let clip = media_check::speech_clip(dir.path(), &pieces, class_ms - 3_000).await?;

    let session = api.start_class(&teacher).await?;
    let sid = session.id.clone();
    let path = |p: &str| format!("/sessions/{sid}{p}");
    let armed: DateTime<Utc> = wait_until("the recorder", Duration::from_secs(20), || async {
        let evs = api.events(&teacher, &sid).await.ok()?;
        evs.iter()
            .find(|e| e["type"] == "recording.armed")
            .and_then(|e| e["payload"]["started_at"].as_str()?.parse().ok())
    })
    .await?;
    let seat = api.join(&teacher, &sid).await?;
    let publisher = rtc_client::publish(
        &seat.edge_url,
        &sid,
        &seat.join_token,
        PublishOptions {
            video: false,
            audio_clip: Some(std::sync::Arc::new(clip)),
            audio_clip_start: Some(SystemTime::from(armed + chrono::Duration::seconds(2))),
            ..Default::default()
        },
    )
    .await?;
    let student = api.login("student1@demo.test").await?;
    api.join(&student, &sid).await?;
    api.post(&path("/scene"), &teacher, json!({ "scene": "slides" }))
        .await?;
    let started = Instant::now();
    let mut minute = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < Duration::from_millis(class_ms) {
        tick.tick().await;
        let m = started.elapsed().as_secs() / 60;
        if m >= minute {
            api.post(
                &path("/slides"),
                &teacher,
                json!({ "deck_id": deck_id, "index": m }),
            )
            .await?;
            if m == 2 {
                let (_, q) = api
                    .post(
                        &path("/questions"),
                        &student,
                        json!({ "text": "Is fermentation slower?" }),
                    )
                    .await?;
                if let Some(qid) = q["question_id"].as_str() {
                    api.post(
                        &path(&format!("/questions/{qid}/answer")),
                        &teacher,
                        json!({}),
                    )
                    .await?;
                }
            }
            if m == 4 {
                let (_, p) = api
                    .post(
                        &path("/polls"),
                        &teacher,
                        json!({ "question": "Where is respiration?", "options": ["cytoplasm", "mitochondria"] }),
                    )
                    .await?;
                if let Some(pid) = p["poll_id"].as_str() {
                    api.post(
                        &path(&format!("/polls/{pid}/vote")),
                        &student,
                        json!({ "option": 1 }),
                    )
                    .await?;
                    api.post(&path(&format!("/polls/{pid}/close")), &teacher, json!({}))
                        .await?;
                }
            }
            eprintln!("class: {m}/{} min, slide {}", args.minutes, m + 1);
            minute = m + 1;
        }
    }
    let teacher = api.login("teacher@demo.test").await?;
    api.post(&path("/end"), &teacher, json!({})).await?;
    publisher.stop().await;
    eprintln!("class ended; waiting for the pipeline…");
    let t_wait = Instant::now();
    let status = wait_until(
        "the pipeline",
        Duration::from_secs(class_ms / 1000 * 3 + 600),
        || async {
            // access tokens live 15 minutes: log in again for each look
            let teacher = api.login("teacher@demo.test").await.ok()?;
            let (_, v) = api.get(&path("/artifacts"), &teacher).await.ok()?;
            if t_wait.elapsed().as_secs().is_multiple_of(30) {
                eprintln!(
                    "pipeline: {} ({} s)",
                    v["state"],
                    t_wait.elapsed().as_secs()
                );
            }
            (v["state"] == "done").then_some(v)
        },
    )
    .await?;
    let teacher = api.login("teacher@demo.test").await?;
    let evs = api.events(&teacher, &sid).await?;
    let finalized = evs
        .iter()
        .find(|e| e["type"] == "recording.finalized")
        .map(time_of)
        .unwrap_or_default();
    let duration_ms = evs
        .iter()
        .find(|e| e["type"] == "recording.finalized")
        .and_then(|e| e["payload"]["duration_ms"].as_u64())
        .unwrap_or(class_ms);
    let done: DateTime<Utc> = status["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["finished_at"].as_str()?.parse().ok())
        .max()
        .unwrap_or_default();
    let wall_ms = (done - finalized).num_milliseconds().max(0) as f64;
    println!(
        "class length          {:.1} min",
        duration_ms as f64 / 60_000.0
    );
    println!(
        "pipeline wall time    {:.1} s (recording finalized → last artifact stored)",
        wall_ms / 1000.0
    );
    println!("pipeline / class      {:.3}", wall_ms / duration_ms as f64);
    for s in status["stages"].as_array().into_iter().flatten() {
        println!(
            "  stage {:<10} {:>8} ms  {}",
            s["stage"].as_str().unwrap_or_default(),
            s["detail"]["elapsed_ms"].as_u64().unwrap_or(0),
            s["detail"]
        );
    }
    let tr = status["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["stage"] == "transcript")
        .cloned()
        .unwrap_or_default();
    println!(
        "transcription RTF     {:.3} (Whisper base, beam 5, core's --asr-threads, nice 10)",
        tr["detail"]["rtf"].as_f64().unwrap_or(f64::NAN)
    );
    let (_, t) = api.get(&path("/transcript"), &teacher).await?;
    let hyp: Vec<&str> = t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str())
        .collect();
    let reference: Vec<&str> = script.iter().map(|s| s.1.as_str()).collect();
    println!(
        "WER                   {:.1} %",
        asr::wer(&reference.join(" "), &hyp.join(" ")) * 100.0
    );
    Ok(())
}
