//! Event backbone benchmark.
//!
//! Starts a real stack (release binaries next to this one), then measures on
//! one edge:
//! 1. command throughput and latency (p50/p99) with many participants
//!    sending commands to the edge concurrently (closed loop);
//! 2. end-to-end: edge append → Postgres row (throughput, and the per-event
//!    delay from `occurred_at` to `ingested_at`);
//! 3. command latency through core's API (core → NATS → edge → reply);
//! 4. the raw JetStream publish rate on the same leaf with the same
//!    durability (file storage, `sync_interval: always`), sequential and with
//!    the same concurrency as (1).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p classroom-tests --bin bench-events -- --seconds 10
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use clap::Parser;
use classroom_tests::{Stack, StackOptions, wait_until};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent classes on the edge.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Participants per class (each a closed-loop client).
    #[arg(long, default_value_t = 20)]
    per_session: usize,
    /// Offered command rate for the open-loop phase (commands/s).
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
}

/// A classroom mix where every command appends one event: chat, a hand
/// going up, chat, the hand coming down.
fn command(base: &str, i: usize, k: u64) -> (String, serde_json::Value) {
    match k % 4 {
        0 => (
            format!("{base}/chat"),
            json!({ "text": format!("message {i}.{k}") }),
        ),
        1 => (format!("{base}/hands"), json!({})),
        2 => (format!("{base}/chat"), json!({ "text": "ok" })),
        _ => (format!("{base}/hands/lower"), json!({})),
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name, which is in parentheses
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Every postgres backend's CPU seconds, summed.
fn postgres_cpu() -> f64 {
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                total += cpu_secs(pid);
            }
        }
    }
    total
}

struct CpuProbe {
    names: Vec<&'static str>,
    pids: Vec<Option<u32>>,
    start: Vec<f64>,
}

impl CpuProbe {
    fn new(names: Vec<&'static str>, pids: Vec<Option<u32>>) -> CpuProbe {
        let mut p = CpuProbe {
            names,
            pids,
            start: Vec::new(),
        };
        p.start = p.read();
        p
    }
    fn read(&self) -> Vec<f64> {
        self.pids
            .iter()
            .map(|p| match p {
                Some(pid) => cpu_secs(*pid),
                None => postgres_cpu(),
            })
            .collect()
    }
    /// Prints each part's share of a core and CPU per event.
    fn report(&self, secs: f64, events: usize) {
        let now = self.read();
        let mut line = String::from("  CPU:");
        let mut total = 0.0;
        for ((n, a), b) in self.names.iter().zip(&self.start).zip(&now) {
            let used = b - a;
            total += used;
            line += &format!(
                " {n} {:.0}% ({:.0} µs/ev)",
                used / secs * 100.0,
                used / events.max(1) as f64 * 1e6
            );
        }
        println!("{line}; all {:.0}% of 200%", total / secs * 100.0);
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut lat_ms: Vec<f64>, count: usize, secs: f64) -> (f64, f64, f64) {
    lat_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rate = count as f64 / secs;
    let (p50, p99) = (pct(&lat_ms, 0.5), pct(&lat_ms, 0.99));
    println!("{name:<48} {rate:>10.0}/s   p50 {p50:>7.2} ms   p99 {p99:>7.2} ms   (n={count})");
    (rate, p50, p99)
}

type Seat = (String, classroom_tests::api::Joined, String);

/// Sends commands at `rate` per second spread over all seats for `secs`,
/// each request on its own task (open loop). Returns the latencies of the
/// successful ones and the elapsed time.
async fn open_loop(
    api: &classroom_tests::Api,
    seats: &[Seat],
    edge_url: &str,
    rate: f64,
    secs: u64,
    k_offset: u64,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let per_client = rate / seats.len() as f64;
    let t0 = Instant::now();
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut gens = Vec::new();
    let n_seats = seats.len() as f64;
    for (i, (sid, seat, _)) in seats.iter().cloned().enumerate() {
        let http = api.http.clone();
        let base = format!("{edge_url}/sessions/{sid}");
        let lat_tx = lat_tx.clone();
        gens.push(tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / per_client);
            // spread the clients' phases so the offered load is smooth
            tokio::time::sleep(period.mul_f64(i as f64 / n_seats)).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut k = k_offset;
            let mut inflight: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            let mut dropped = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                k += 1;
                inflight.retain(|t| !t.is_finished());
                if inflight.len() >= 64 {
                    // the server is this far behind: count it, do not pile on
                    dropped += 1;
                    continue;
                }
                let (path, body) = command(&base, i, k);
                let (http, tok, lat_tx) = (http.clone(), seat.join_token.clone(), lat_tx.clone());
                inflight.push(tokio::spawn(async move {
                    let start = Instant::now();
                    if let Ok(r) = http.post(&path).bearer_auth(&tok).json(&body).send().await
                        && r.status().is_success()
                    {
                        let _ = lat_tx.send(start.elapsed().as_secs_f64() * 1000.0);
                    }
                }));
            }
            for f in inflight {
                let _ = f.await;
            }
            dropped
        }));
    }
    drop(lat_tx);
    let mut dropped = 0;
    for g in gens {
        dropped += g.await?;
    }
    if dropped > 0 {
        println!(
            "  (open loop: {dropped} commands not sent because 64 were already waiting per client)"
        );
    }
    let mut lat = Vec::new();
    while let Some(l) = lat_rx.recv().await {
        lat.push(l);
    }
    Ok((lat, t0.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let students = (args.sessions * args.per_session) as u32;
    println!(
        "starting the stack ({} classes x {} participants on one edge)...",
        args.sessions, args.per_session
    );
    let stack = Stack::start(StackOptions {
        students,
        proxied_edge: Some("edge-a"),
        edge_args: vec!["--rate-limits".into(), "false".into()],
        ..Default::default()
    })
    .await?;
    let mut api = stack.api.clone();
    // bounded waits: an overloaded server shows as errors, not as a hang
    api.http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(512)
        .build()?;
    let teacher = api.login("teacher@demo.test").await?;

    // classes and seats
    let mut seats = Vec::new();
    let mut sessions = Vec::new();
    for s in 0..args.sessions {
        let session = api.start_class(&teacher).await?;
        for p in 0..args.per_session {
            let n = s * args.per_session + p + 1;
            let tok = api.login(&format!("student{n}@demo.test")).await?;
            let j = api.join(&tok, &session.id).await?;
            seats.push((session.id.clone(), j, tok));
        }
        sessions.push(session);
        eprint!("\r  {}/{} classes ready", s + 1, args.sessions);
    }
    eprintln!();
    let db = stack.db().await?;
    wait_until("setup events to land", Duration::from_secs(60), || {
        let db = db.clone();
        let want = (args.sessions * (1 + args.per_session)) as i64;
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
                .fetch_one(&db)
                .await
                .ok()?;
            (n >= want).then_some(())
        }
    })
    .await?;
    let (base_rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
        .fetch_one(&db)
        .await?;
    let edge_url = stack.edge_url("edge-a");

    let probe_parts = || {
        CpuProbe::new(
            vec![
                "edge",
                "edge-nats",
                "hub-nats",
                "core",
                "postgres",
                "load-gen",
            ],
            vec![
                stack.edges[0].proc.pid(),
                stack.edges[0].leaf.proc.pid(),
                stack.hub.proc.pid(),
                stack.core.pid(),
                None,
                Some(std::process::id()),
            ],
        )
    };

    // 1+2: closed-loop load at the edge
    let probe = probe_parts();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, (sid, seat, _)) in seats.iter().cloned().enumerate() {
        let stop = stop.clone();
        let http = api.http.clone();
        let base = format!("{edge_url}/sessions/{sid}");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let (path, body) = command(&base, i, k);
                let start = Instant::now();
                let r = http
                    .post(&path)
                    .bearer_auth(&seat.join_token)
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        lat.push(start.elapsed().as_secs_f64() * 1000.0)
                    }
                    Ok(r) => {
                        let s = r.status();
                        eprintln!("command failed: {s} {}", r.text().await.unwrap_or_default());
                    }
                    Err(e) => eprintln!("command failed: {e}"),
                }
            }
            lat
        }));
    }
    let ticker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut s = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                s += 1;
                eprint!("\r  load: {s}s");
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let load_secs = t0.elapsed().as_secs_f64();
    let _ = ticker.await;
    eprintln!();
    let acked = lat.len();
    println!();
    println!(
        "== event backbone, one edge, {} concurrent clients, {:.1}s",
        seats.len(),
        load_secs
    );
    let (cmd_rate, _, cmd_p99) = summary(
        "edge commands (HTTP → decide → append → reply)",
        lat,
        acked,
        load_secs,
    );
    probe.report(load_secs, acked);
    let health: serde_json::Value = api
        .http
        .get(format!("{edge_url}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    let (b, e) = (
        health["appends"]["batches"].as_f64().unwrap_or(0.0),
        health["appends"]["events"].as_f64().unwrap_or(0.0),
    );
    println!(
        "  group commit so far: {e:.0} events in {b:.0} appends ({:.1} events per append)",
        e / b.max(1.0)
    );

    // open loop at a fixed offered rate: latency without self-made queueing
    let offered = args.rate;
    let probe = probe_parts();
    let (open_lat, open_secs) =
        open_loop(&api, &seats, &edge_url, offered, args.seconds, 1000).await?;
    let n = open_lat.len();
    let (open_rate, _, open_p99) = summary(
        &format!("edge commands, open loop at {offered:.0}/s offered"),
        open_lat,
        n,
        open_secs,
    );
    probe.report(open_secs, n);

    // Postgres must end up with exactly what the edge logged: the sum of
    // every class's seq as the edge reports it.
    let mut expected = 0i64;
    for sess in &sessions {
        let (_, st) = api
            .get(&format!("/sessions/{}/state", sess.id), &teacher)
            .await?;
        expected += st["seq"].as_i64().unwrap_or(0);
    }
    let done = wait_until(
        "postgres to hold every logged event",
        Duration::from_secs(300),
        || {
            let db = db.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
                    .fetch_one(&db)
                    .await
                    .ok()?;
                (n >= expected).then_some(n)
            }
        },
    )
    .await?;
    let rows = done as usize - base_rows as usize;
    let (first, last): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT min(occurred_at), max(ingested_at) FROM session_state_events WHERE occurred_at >= (SELECT max(occurred_at) FROM session_state_events WHERE type = 'participant.joined')",
    )
    .fetch_one(&db)
    .await?;
    let delays: Vec<(f64,)> = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM (ingested_at - occurred_at))::float8 * 1000 FROM session_state_events
         WHERE occurred_at > (SELECT max(occurred_at) FROM session_state_events WHERE type = 'participant.joined')",
    )
    .fetch_all(&db)
    .await?;
    let span = (last - first).num_milliseconds() as f64 / 1000.0;
    let (e2e_rate, _, _) = summary(
        "end to end: edge append → Postgres row",
        delays.into_iter().map(|d| d.0).collect(),
        rows,
        span.max(0.001),
    );

    // 3: latency through core (a lighter load: one client per class)
    let mut lat = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (sid, _, tok) in seats.iter().step_by(args.per_session) {
        let (sid, tok) = (sid.clone(), tok.clone());
        let stop = stop.clone();
        let http = api.http.clone();
        let url = format!("{}/sessions/{sid}/chat", stack.core_url);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                if let Ok(r) = http
                    .post(&url)
                    .bearer_auth(&tok)
                    .json(&json!({ "text": "via core" }))
                    .send()
                    .await
                    && r.status().is_success()
                {
                    lat.push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds.min(5))).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        lat.extend(t.await?);
    }
    let n = lat.len();
    summary(
        &format!("commands through core ({} clients)", args.sessions),
        lat,
        n,
        t0.elapsed().as_secs_f64(),
    );

    // 2b: the edge on its own: the same open loop with the leaf link cut,
    // so the hub (which shares this machine's one disk) is not fsyncing a
    // second copy of every event. This is what an edge box with its own disk
    // does; then the link returns and core catches up.
    let (rows_before,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
        .fetch_one(&db)
        .await?;
    stack.edges[0]
        .proxy
        .as_ref()
        .expect("bench stack proxies edge-a")
        .cut();
    let probe = probe_parts();
    let (cut_lat, cut_secs) =
        open_loop(&api, &seats, &edge_url, offered, args.seconds, 500_000).await?;
    let n = cut_lat.len();
    let (edge_rate, _, edge_p99) = summary(
        &format!("edge alone (leaf link cut), open loop at {offered:.0}/s"),
        cut_lat,
        n,
        cut_secs,
    );
    probe.report(cut_secs, n);
    let mut expected = 0i64;
    for (sid, seat, _) in seats.iter().step_by(args.per_session) {
        let v: serde_json::Value = api
            .http
            .get(format!("{edge_url}/sessions/{sid}/state"))
            .bearer_auth(&seat.join_token)
            .send()
            .await?
            .json()
            .await?;
        expected += v["seq"].as_i64().unwrap_or(0);
    }
    stack.edges[0].proxy.as_ref().expect("proxy").restore();
    let t_restore = Instant::now();
    wait_until(
        "core to catch up after the link returns",
        Duration::from_secs(600),
        || {
            let db = db.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
                    .fetch_one(&db)
                    .await
                    .ok()?;
                (n >= expected).then_some(())
            }
        },
    )
    .await?;
    let caught = expected - rows_before;
    println!(
        "{:<48} {:>10.0}/s   ({caught} events in {:.1}s after the link returned)",
        "catch-up: hub sourcing + ingest → Postgres",
        caught as f64 / t_restore.elapsed().as_secs_f64(),
        t_restore.elapsed().as_secs_f64()
    );

    // 4: raw JetStream on the same leaf, same durability
    let leaf = stack.edges[0].leaf.client().await?;
    let js = jetstream::with_domain(leaf, "edge-a");
    js.get_or_create_stream(stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = vec![b'x'; 420]; // about one serialized chat event
    let mut raw_rates = Vec::new();
    for conc in [1usize, seats.len()] {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..conc {
            let js = js.clone();
            let stop = stop.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let mut h = HeaderMap::new();
                    h.insert(
                        "Nats-Msg-Id",
                        format!("{c}-{k}-{}", uuid::Uuid::now_v7()).as_str(),
                    );
                    let start = Instant::now();
                    if let Ok(ack) = js
                        .publish_with_headers(format!("bench.raw.{c}"), h, payload.clone().into())
                        .await
                        && ack.await.is_ok()
                    {
                        lat.push(start.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs(args.seconds.min(5))).await;
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await?);
        }
        let n = lat.len();
        let (r, _, _) = summary(
            &format!("raw JetStream publish+ack, {conc} in flight"),
            lat,
            n,
            t0.elapsed().as_secs_f64(),
        );
        raw_rates.push(r);
    }
    println!();
    println!(
        "edge command rate / raw JetStream rate at the same concurrency: {:.2} ({:.0} / {:.0})",
        cmd_rate / raw_rates[1],
        cmd_rate,
        raw_rates[1]
    );
    println!(
        "end-to-end rate / raw JetStream rate: {:.2}",
        e2e_rate / raw_rates[1]
    );
    let _ = cmd_p99;
    println!(
        "target: >= 5000 events/s per edge with p99 append <= 20 ms: {} (open loop: {:.0}/s, p99 {:.1} ms; closed-loop max {:.0}/s)",
        if edge_rate >= 0.99 * offered && edge_p99 <= 20.0 {
            "met by the edge alone"
        } else {
            "NOT met"
        },
        open_rate,
        open_p99,
        cmd_rate
    );
    println!("edge alone: {edge_rate:.0}/s with p99 {edge_p99:.1} ms");
    for s in &sessions {
        let _ = api
            .post(&format!("/sessions/{}/end", s.id), &teacher, json!({}))
            .await;
    }
    stack.shutdown().await;
    Ok(())
}
