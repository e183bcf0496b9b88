//! Mesh benchmark: what the relay hop adds. One publisher (VP8 ~1.5 Mbit/s,
//! synthetic frames stamped with their send time) on `edge-a`; N students
//! watch on `edge-a` (the local path: publisher → SFU → student) and N on
//! `edge-b` (publisher → edge-a SFU → relay → edge-b SFU → student), all str0m
//! clients in this process on loopback. Prints frame latency p50/p99 for
//! both paths and their difference, the relay hop with the far edge's SFU.
//!
//!     cargo build --release --workspace --bins
//!     ./target/release/bench-mesh --students 5 --seconds 20

use std::time::Duration;

use clap::Parser;
use classroom_tests::benchutil::pct;
use classroom_tests::rtc_client::{self, Client, PublishOptions};
use classroom_tests::{Stack, StackOptions, wait_until};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Students on each edge.
    #[arg(long, default_value_t = 5)]
    students: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 1_500_000)]
    video_bps: u64,
}

fn latencies(clients: &[Client], skip: &[usize]) -> Vec<f64> {
    clients
        .iter()
        .zip(skip)
        .flat_map(|(c, s)| c.snapshot().latencies_ms.into_iter().skip(*s))
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("starting core, edge-a, edge-b and the relay...");
    let stack = Stack::start(StackOptions {
        edges: vec!["edge-a", "edge-b"],
        relay: true,
        students: (args.students * 2) as u32,
        ..Default::default()
    })
    .await?;
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await?;
    let run = api
        .lesson_run(&teacher, json!({ "edge_id": "edge-a" }))
        .await?;
    let session = api.start(&teacher, &run).await?;
    let sid = session.id.clone();
    let t = api.join(&teacher, &sid).await?;
    let opts = PublishOptions {
        video_bps: args.video_bps,
        audio: false,
        ..Default::default()
    };
    let _publisher = rtc_client::publish(&t.edge_url, &sid, &t.join_token, opts)
        .await
        .map_err(|e| anyhow::anyhow!("publish: {e:?}"))?;
    let mut local = Vec::new();
    let mut far = Vec::new();
    for i in 0..args.students * 2 {
        let tok = api.login(&format!("student{}@demo.test", i + 1)).await?;
        let edge = if i % 2 == 0 { "edge-a" } else { "edge-b" };
        let seat = api
            .join_with(&tok, &sid, json!({ "edge_id": edge }))
            .await?;
        let c = rtc_client::subscribe(&seat.edge_url, &sid, &seat.join_token)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe: {e:?}"))?;
        if i % 2 == 0 {
            local.push(c)
        } else {
            far.push(c)
        }
    }
    for c in local.iter().chain(&far) {
        wait_until("every student's video", Duration::from_secs(30), || async {
            (c.snapshot().latencies_ms.len() >= 30).then_some(())
        })
        .await?;
    }
    // measure from here on
    let skip_local: Vec<usize> = local
        .iter()
        .map(|c| c.snapshot().latencies_ms.len())
        .collect();
    let skip_far: Vec<usize> = far
        .iter()
        .map(|c| c.snapshot().latencies_ms.len())
        .collect();
    // the measurement window, with a status line each second
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for s in 0..args.seconds {
        tick.tick().await;
        eprint!("\r  {:>3}/{} s", s + 1, args.seconds);
    }
    eprintln!();
    let mut l = latencies(&local, &skip_local);
    let mut f = latencies(&far, &skip_far);
    let (l50, l99, f50, f99) = (
        pct(&mut l, 0.5),
        pct(&mut l, 0.99),
        pct(&mut f, 0.5),
        pct(&mut f, 0.99),
    );
    println!(
        "\n== frame latency, publisher → student (VP8 {} kbit/s, {} students per edge, {} s)",
        args.video_bps / 1000,
        args.students,
        args.seconds
    );
    println!(
        "local  (edge-a SFU)                       : p50 {l50:.2} ms  p99 {l99:.2} ms  ({} frames)",
        l.len()
    );
    println!(
        "far    (edge-a SFU → relay → edge-b SFU)  : p50 {f50:.2} ms  p99 {f99:.2} ms  ({} frames)",
        f.len()
    );
    println!(
        "the relay hop adds                        : p50 {:.2} ms  p99 {:.2} ms",
        f50 - l50,
        f99 - l99
    );
    stack.shutdown().await;
    Ok(())
}
