//! Live classroom benchmark: one class of N participants on one edge, each
//! with its live feed open, sending chat, poll votes and question upvotes.
//! Prints sustained commands/s, command-to-feed latency (send → the event
//! arrives on an observer's live feed) p50/p99, and the edge's memory per
//! participant.
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p classroom-tests --bin bench-classroom -- --participants 200 --seconds 20

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use classroom_tests::feed::Feed;
use classroom_tests::{Stack, StackOptions};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    participants: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Commands per second each participant tries to send.
    #[arg(long, default_value_t = 1.0)]
    per_participant: f64,
    /// Keep the edge's per-participant rate limits on (as in production).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rate_limits: bool,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.participants;
    println!(
        "starting the stack: one class of {n} on one edge (rate limits {})",
        if args.rate_limits { "on" } else { "off" }
    );
    let stack = Stack::start(StackOptions {
        students: n as u32,
        edge_args: vec!["--rate-limits".into(), args.rate_limits.to_string()],
        ..Default::default()
    })
    .await?;
    let mut api = stack.api.clone();
    api.http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1024)
        .build()?;
    let teacher = api.login("teacher@demo.test").await?;
    let session = api.start_class(&teacher).await?;
    let edge_pid = stack.edges[0].proc.pid().unwrap_or(0);
    let rss_before = rss_kib(edge_pid);

    let mut seats = Vec::new();
    for i in 1..=n {
        let tok = api.login(&format!("student{i}@demo.test")).await?;
        seats.push(api.join(&tok, &session.id).await?);
        if i % 20 == 0 {
            eprint!("\r  {i}/{n} joined");
        }
    }
    eprintln!();
    let t_seat = api.join(&teacher, &session.id).await?;
    // everyone's feed open, as in a real class
    let mut feeds = Vec::new();
    for s in &seats {
        feeds.push(Feed::connect(&s.edge_url, &session.id, &s.join_token, None).await?);
    }
    // drain the feeds in the background (a browser reads its feed)
    let mut drains = Vec::new();
    for f in feeds {
        drains.push(tokio::spawn(f.drain()));
    }
    // the observer: the teacher's feed, timestamping every event by seq
    let seen: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut observer =
        Feed::connect(&t_seat.edge_url, &session.id, &t_seat.join_token, None).await?;
    let seen2 = seen.clone();
    let obs = tokio::spawn(async move {
        while let Some(m) = observer.next(Duration::from_secs(60)).await {
            if m["kind"] == "event"
                && let Some(seq) = m["event"]["seq"].as_i64()
            {
                seen2.lock().unwrap().insert(seq, Instant::now());
            }
        }
    });

    // a poll and a few questions to vote on
    let edge = format!("{}/sessions/{}", session.edge_url, session.id);
    let (_, poll) = api
        .post(
            &format!("{edge}/polls"),
            &t_seat.join_token,
            json!({ "question": "Which?", "options": ["a", "b", "c", "d"] }),
        )
        .await?;
    let poll_id = poll["poll_id"].as_str().unwrap_or_default().to_owned();
    let mut questions = Vec::new();
    for s in seats.iter().take(10) {
        let (_, q) = api
            .post(
                &format!("{edge}/questions"),
                &s.join_token,
                json!({ "text": "a question from the floor?" }),
            )
            .await?;
        questions.push(q["question_id"].as_str().unwrap_or_default().to_owned());
    }

    let sent: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let errors: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, s) in seats.iter().cloned().enumerate() {
        let (api, edge, poll_id, questions) = (
            api.clone(),
            edge.clone(),
            poll_id.clone(),
            questions.clone(),
        );
        let (sent, errors) = (sent.clone(), errors.clone());
        let secs = args.seconds;
        let period = Duration::from_secs_f64(1.0 / args.per_participant);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(period.mul_f64(i as f64 / n as f64)).await;
            let mut tick = tokio::time::interval(period);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut k = 0usize;
            while Instant::now() < end {
                tick.tick().await;
                k += 1;
                // mostly chat; one vote; an upvote on each question in turn
                let (path, body) = match k {
                    1 => (
                        format!("{edge}/polls/{poll_id}/vote"),
                        json!({ "option": i % 4 }),
                    ),
                    k if k % 3 == 0 && k / 3 <= questions.len() => (
                        format!("{edge}/questions/{}/upvote", questions[k / 3 - 1]),
                        json!({}),
                    ),
                    _ => (
                        format!("{edge}/chat"),
                        json!({ "text": format!("message {i}.{k}") }),
                    ),
                };
                let start = Instant::now();
                match api
                    .http
                    .post(&path)
                    .bearer_auth(&s.join_token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(v) = r.json::<serde_json::Value>().await
                            && let Some(seq) = v["seq"].as_i64()
                        {
                            sent.lock().unwrap().push((seq, start));
                        }
                    }
                    Ok(r) => {
                        *errors
                            .lock()
                            .unwrap()
                            .entry(r.status().as_u16())
                            .or_default() += 1
                    }
                    Err(_) => *errors.lock().unwrap().entry(0).or_default() += 1,
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(edge_pid);

    let sent = sent.lock().unwrap().clone();
    let seen = seen.lock().unwrap().clone();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(seq, at)| {
            seen.get(seq)
                .map(|got| got.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!();
    println!("== live classroom: {n} participants with live feeds, one edge, {secs:.1}s");
    println!(
        "commands appended          {:>8.0}/s   ({} in total)",
        sent.len() as f64 / secs,
        sent.len()
    );
    println!(
        "command → live feed        p50 {:.2} ms   p99 {:.2} ms   (n={})",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
    println!(
        "refused (status: count)    {:?}   (429 = rate limited, 409 = already voted/upvoted)",
        errors.lock().unwrap()
    );
    println!(
        "edge memory                {:.1} MiB before joins, {:.1} MiB after → {:.1} KiB per participant",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64
    );
    obs.abort();
    for d in drains {
        d.abort();
    }
    let _ = api
        .post(
            &format!("/sessions/{}/end", session.id),
            &teacher,
            json!({}),
        )
        .await;
    stack.shutdown().await;
    Ok(())
}
