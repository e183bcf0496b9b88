//! Multistream benchmark, on a real stack (the binaries next to this one)
//! and a real RTMP server (nginx-rtmp on loopback, recording what it gets).
//!
//! One recorded class (a teacher's and a student's camera) is pushed to 0,
//! 1, 2 and 4 private destinations, then to the same 4 plus one public
//! destination. For each step, once every destination is live, the edge
//! process's CPU (user + system, from /proc, in cores) is measured over the
//! same window as the bytes the RTMP server wrote for each stream, so a
//! push that stalled shows as a low received rate rather than as cheap.
//!
//! Figures: the class's program alone (composition, the one encode, the
//! recording); the extra CPU per private destination at 1, 2 and 4 (the
//! encode is shared: a destination only muxes and sends); the public
//! program's extra cost (a second composition and encode); how many
//! destinations one edge core could push beside the class's encode.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p classroom-tests --bin bench-multistream
//! cargo run -p classroom-tests --bin bench-multistream -- --smoke
//! ```
//! The last line printed is the figures as JSON.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use classroom_tests::benchutil::cpu_secs;
use classroom_tests::rtmp::RtmpServer;
use classroom_tests::{Stack, StackOptions, free_port, media_check, rtc_client, wait_until};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Seconds measured per step.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds, not minutes: small figures, for CI to see it runs.
    #[arg(long)]
    smoke: bool,
}

struct Step {
    name: String,
    destinations: usize,
    cpu_cores: f64,
    received_kbps: Vec<f64>,
}

fn size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    classroom_tests::init_tracing();
    let args = Args::parse();
    let seconds = if args.smoke { 3 } else { args.seconds };
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await?;
    let api = &stack.api;
    let dir = tempfile::tempdir()?;
    let rtmp = RtmpServer::start(dir.path(), free_port()).await?;
    let admin = api.login("admin@demo.test").await?;
    let teacher = api.login("teacher@demo.test").await?;
    let student = api.login("student1@demo.test").await?;
    let class = api.start_class(&teacher).await?;
    let sid = class.id.clone();
    let t_seat = api.join(&teacher, &sid).await?;
    let s_seat = api.join(&student, &sid).await?;
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": s_seat.participant_id, "grant": ["present", "speak"] }),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "grant: {v}");
    let clip = std::sync::Arc::new(media_check::vp8_clip(dir.path(), 640, 360, 30, 4).await?);
    let mut publishers = Vec::new();
    for seat in [&t_seat, &s_seat] {
        publishers.push(
            rtc_client::publish(
                &seat.edge_url,
                &sid,
                &seat.join_token,
                rtc_client::PublishOptions {
                    clip: Some(clip.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("publish: {e:?}"))?,
        );
    }
    let pid = stack.edges[0]
        .proc
        .pid()
        .ok_or_else(|| anyhow::anyhow!("no edge pid"))?;
    let url = format!("rtmp://127.0.0.1:{}/live", rtmp.port);

    let mut attached: Vec<(String, String)> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let plan: &[(&str, usize, usize)] = &[
        ("program only", 0, 0),
        ("1 private", 1, 0),
        ("2 private", 2, 0),
        ("4 private", 4, 0),
        ("4 private + 1 public", 4, 1),
    ];
    for &(name, private, public) in plan {
        while attached.len() < private + public {
            let n = attached.len();
            let audience = if n < private { "private" } else { "public" };
            let key = format!("bench-{n}");
            let (s, v) = api
                .post(
                    "/destinations",
                    &admin,
                    json!({"name": key, "kind": "rtmp", "url": url, "stream_key": key, "audience": audience}),
                )
                .await?;
            anyhow::ensure!(s.is_success(), "create: {v}");
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let (s, v) = api
                .post(
                    &format!("/sessions/{sid}/destinations"),
                    &teacher,
                    json!({"destination_id": id}),
                )
                .await?;
            anyhow::ensure!(s.is_success(), "attach: {v}");
            attached.push((id, key));
        }
        if !attached.is_empty() {
            wait_until(
                "every destination live",
                Duration::from_secs(60),
                || async {
                    let (_, v) = api
                        .get(&format!("/sessions/{sid}/destinations"), &teacher)
                        .await
                        .ok()?;
                    let all = v["destinations"].as_array()?;
                    all.iter().all(|d| d["state"] == "live").then_some(())
                },
            )
            .await?;
        }
        // settle: a push's first seconds carry its connection and keyframe wait
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..2 {
            tick.tick().await;
        }
        let files: Vec<Vec<PathBuf>> = attached.iter().map(|(_, k)| rtmp.recordings(k)).collect();
        let bytes0: Vec<u64> = files.iter().map(|f| size(f)).collect();
        let c0 = cpu_secs(pid);
        let start = Instant::now();
        for i in 0..seconds {
            tick.tick().await;
            eprint!("\r  {name}: {:>3}/{seconds} s", i + 1);
        }
        let cpu = (cpu_secs(pid) - c0) / start.elapsed().as_secs_f64();
        let elapsed = start.elapsed().as_secs_f64();
        let received: Vec<f64> = attached
            .iter()
            .zip(bytes0)
            .map(|((_, k), b0)| {
                (size(&rtmp.recordings(k)) as f64 - b0 as f64) * 8.0 / elapsed / 1000.0
            })
            .collect();
        eprintln!("\r  {name}: edge {cpu:.3} cores, received kbit/s {received:.0?}");
        steps.push(Step {
            name: name.to_string(),
            destinations: attached.len(),
            cpu_cores: cpu,
            received_kbps: received,
        });
    }
    for p in publishers {
        p.stop().await;
    }
    let _ = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await;

    let base = steps[0].cpu_cores;
    let per_private: Value = steps[1..4]
        .iter()
        .map(|s| {
            (
                s.destinations.to_string(),
                json!((s.cpu_cores - base) / s.destinations as f64),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let per_dest_at_4 = (steps[3].cpu_cores - base) / 4.0;
    let public_extra = steps[4].cpu_cores - steps[3].cpu_cores;
    let report = json!({
        "seconds": seconds,
        "steps": steps.iter().map(|s| json!({
            "name": s.name,
            "destinations": s.destinations,
            "edge_cpu_cores": s.cpu_cores,
            "received_kbps": s.received_kbps,
        })).collect::<Vec<_>>(),
        "program_cpu_cores": base,
        "cpu_per_private_destination": per_private,
        "public_program_extra_cpu_cores": public_extra,
        // pushes one edge core could carry beside the class's encode
        "destinations_per_core": if per_dest_at_4 > 0.0 { json!(1.0 / per_dest_at_4) } else { Value::Null },
        "min_received_kbps": steps.iter().flat_map(|s| s.received_kbps.iter().copied()).fold(f64::INFINITY, f64::min),
    });
    println!("{report}");
    Ok(())
}
