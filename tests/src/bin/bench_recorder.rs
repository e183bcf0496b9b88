//! Recorder benchmark: K live classes at once on one edge, each with a
//! teacher publishing a real 720p30 VP8 camera (ffmpeg's moving test
//! pattern, ~1.5 Mbit/s) and Opus, a slide deck beside the camera and a slide
//! change every few seconds. The edge is pinned to CPU 0, this tool and its
//! clients to CPU 1.
//!
//! For each K it measures the edge's CPU twice over the same window: with
//! the recorders running, then with every class's recording kill switch
//! engaged (same media, same SFU work, no composer). The difference per
//! class is the composer + encoder cost of one live 720p30 class, i.e. its
//! real-time factor on one core; 1 / RTF is how many recorded classes one
//! core carries. From the events it also prints the recording's delay:
//! segment closed → in object storage, and studio event → the segment
//! holding it in object storage.
//!
//!     cargo build --release --workspace --bins
//!     ./target/release/bench-recorder --classes 1,2 --seconds 30

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use classroom_tests::benchutil::{cpu_secs, pct, pin};
use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::{Stack, StackOptions, media_check, pdf, wait_until};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Concurrent recorded classes to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    classes: Vec<usize>,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds between slide changes in each class.
    #[arg(long, default_value_t = 3)]
    slide_every: u64,
}

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_default()
}

struct Class {
    sid: String,
    deck: String,
    _client: rtc_client::Client,
}

/// The edge's CPU (in cores) over a window while every class changes slides.
async fn measure(stack: &Stack, teacher: &str, classes: &[Class], args: &Args, pid: u32) -> f64 {
    let start = Instant::now();
    let c0 = cpu_secs(pid);
    let mut index = 0;
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(args.seconds) {
        index = (index + 1) % 3;
        for c in classes {
            let body = json!({ "deck_id": c.deck, "index": index });
            let _ = stack
                .api
                .post(&format!("/sessions/{}/slides", c.sid), teacher, body)
                .await;
        }
        let next = last + Duration::from_secs(args.slide_every);
        tokio::time::sleep_until(next.into()).await;
        last = next;
        eprint!("\r  {:>3}/{} s", start.elapsed().as_secs(), args.seconds);
    }
    eprintln!();
    (cpu_secs(pid) - c0) / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("making a 720p30 VP8 camera clip...");
    let tmp = tempfile::tempdir()?;
    let clip = std::sync::Arc::new(media_check::vp8_clip(tmp.path(), 1280, 720, 30, 10).await?);
    println!("starting the stack (edge pinned to CPU 0, this tool to CPU 1)...");
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await?;
    let pid = stack.edges[0].proc.pid().unwrap_or(0);
    pin(pid, 0);
    pin(std::process::id(), 1);
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await?;
    let pages = pdf::colored_pages(&[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]);
    let (_, deck) = api
        .post_raw("/decks", Some(&teacher), "application/pdf", pages)
        .await?;
    let deck = deck["id"].as_str().unwrap_or_default().to_owned();

    let mut rows = Vec::new();
    for &k in &args.classes {
        println!("\n== {k} recorded class(es) at once");
        let mut classes = Vec::new();
        for _ in 0..k {
            let session = api.start_class(&teacher).await?;
            let sid = session.id.clone();
            let seat = api.join(&teacher, &sid).await?;
            let opts = PublishOptions {
                clip: Some(clip.clone()),
                ..Default::default()
            };
            let client = rtc_client::publish(&seat.edge_url, &sid, &seat.join_token, opts)
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e:?}"))?;
            for (p, body) in [
                ("/slides", json!({ "deck_id": deck, "index": 0 })),
                ("/scene", json!({ "scene": "slides" })),
                ("/layout", json!({ "layout": "side_by_side" })),
            ] {
                api.post(&format!("/sessions/{sid}{p}"), &teacher, body)
                    .await?;
            }
            classes.push(Class {
                sid,
                deck: deck.clone(),
                _client: client,
            });
        }
        for c in &classes {
            wait_until(
                "the class's camera and a first segment",
                Duration::from_secs(60),
                || async {
                    let evs = api.events(&teacher, &c.sid).await.ok()?;
                    let video = evs
                        .iter()
                        .any(|e| e["type"] == "track.published" && e["payload"]["kind"] == "video");
                    let seg = evs.iter().any(|e| e["type"] == "recording.segment");
                    (video && seg).then_some(())
                },
            )
            .await?;
        }
        println!("  recording:");
        let with = measure(&stack, &teacher, &classes, &args, pid).await;
        for c in &classes {
            let body = json!({ "switch": { "kind": "recording" }, "engaged": true });
            api.post(&format!("/sessions/{}/kill-switch", c.sid), &teacher, body)
                .await?;
        }
        // the segment open at the kill switch is closed and stored before
        // the baseline is measured
        for c in &classes {
            wait_until(
                "the open segment stored",
                Duration::from_secs(30),
                || async {
                    let evs = api.events(&teacher, &c.sid).await.ok()?;
                    let armed: DateTime<Utc> = evs
                        .iter()
                        .find(|e| e["type"] == "recording.armed")?["payload"]["started_at"]
                        .as_str()?
                        .parse()
                        .ok()?;
                    let killed = evs
                        .iter()
                        .rfind(|e| e["type"] == "kill_switch.changed")
                        .map(time_of)?;
                    let killed_ms = (killed - armed).num_milliseconds().max(0) as u64;
                    evs.iter()
                        .filter(|e| e["type"] == "recording.segment")
                        .any(|e| e["payload"]["end_ms"].as_u64().unwrap_or(0) + 500 >= killed_ms)
                        .then_some(())
                },
            )
            .await?;
        }
        println!("  same classes, recording kill switch engaged:");
        let without = measure(&stack, &teacher, &classes, &args, pid).await;

        // delays, from the events of the recorded phase
        let mut close_to_store = Vec::new();
        let mut event_to_store = Vec::new();
        for c in &classes {
            let evs = api.events(&teacher, &c.sid).await?;
            let Some(armed) = evs.iter().find(|e| e["type"] == "recording.armed") else {
                continue;
            };
            let armed_at: DateTime<Utc> = armed["payload"]["started_at"]
                .as_str()
                .unwrap_or_default()
                .parse()?;
            let segs: Vec<(u64, DateTime<Utc>)> = evs
                .iter()
                .filter(|e| e["type"] == "recording.segment")
                .map(|e| (e["payload"]["end_ms"].as_u64().unwrap_or(0), time_of(e)))
                .collect();
            for (end_ms, stored) in &segs {
                let closed = armed_at + chrono::Duration::milliseconds(*end_ms as i64);
                close_to_store.push((*stored - closed).num_milliseconds() as f64);
            }
            for e in evs.iter().filter(|e| e["type"] == "slide.changed") {
                let at = time_of(e);
                let media_ms = (at - armed_at).num_milliseconds().max(0) as u64;
                if let Some((_, stored)) = segs.iter().find(|(end, _)| *end > media_ms) {
                    event_to_store.push((*stored - at).num_milliseconds() as f64);
                }
            }
            api.post(&format!("/sessions/{}/end", c.sid), &teacher, json!({}))
                .await?;
        }
        let rtf = (with - without) / k as f64;
        let row = format!(
            "{k} class(es): edge {:.1}% of a core recording, {:.1}% with recording off → composer+encoder {:.1}% of a core per 720p30 class (RTF {:.3}, {:.1} classes/core); segment closed→stored p50 {:.0} ms p99 {:.0} ms; event→stored p50 {:.1} s p99 {:.1} s (6 s segments)",
            with * 100.0,
            without * 100.0,
            rtf * 100.0,
            rtf,
            1.0 / rtf,
            pct(&mut close_to_store, 0.5),
            pct(&mut close_to_store, 0.99),
            pct(&mut event_to_store, 0.5) / 1000.0,
            pct(&mut event_to_store, 0.99) / 1000.0,
        );
        println!("  {row}");
        rows.push(row);
    }
    println!("\n== summary (edge on one core; x264 veryfast zerolatency, 1280x720 30 fps + AAC)");
    for r in &rows {
        println!("{r}");
    }
    stack.shutdown().await;
    Ok(())
}
