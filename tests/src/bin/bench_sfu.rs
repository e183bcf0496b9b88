//! SFU benchmark: one publisher (VP8 ~1.5 Mbit/s + Opus) and a growing
//! number of subscribers, all str0m clients on loopback. The edge process is
//! pinned to CPU 0 and the load clients to CPU 1, so "one core" means one.
//! For each step it prints frame loss at the subscribers, the edge's CPU,
//! CPU per forwarded stream, forwarded packets/s, and join-to-first-frame
//! p50/p95; then the largest N with < 1 % loss.
//!
//! With `--chat-url https://<ip>:3000 --chat-pid <pid>` it measures str0m's
//! `chat` example the same way in the same run, as the baseline (build it
//! yourself outside this repository; see the note on the issue).
//!
//!     cargo build --release --workspace --bins
//!     cargo run --release -p classroom-tests --bin bench-sfu -- --steps 10,25,50,100,150

use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use classroom_tests::benchutil::{cpu_secs, pct, pin};
use classroom_tests::rtc_client::{self, Client, PublishOptions, Signal};
use classroom_tests::{Stack, StackOptions};

#[derive(Parser)]
struct Args {
    /// Subscriber counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50,100,150")]
    steps: Vec<usize>,
    /// Seconds measured per step.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    #[arg(long, default_value_t = 1_500_000)]
    video_bps: u64,
    /// Also measure str0m's chat example at this URL (HTTPS).
    #[arg(long)]
    chat_url: Option<String>,
    /// The chat example's process id (for its CPU).
    #[arg(long)]
    chat_pid: Option<u32>,
    /// The IP the chat example bound its UDP socket to.
    #[arg(long)]
    chat_ip: Option<IpAddr>,
}

struct Target {
    name: &'static str,
    pid: u32,
    /// Signal for the publisher and for the n-th subscriber.
    publisher: Signal,
    subscriber: Box<dyn Fn(usize) -> Signal>,
    ip: IpAddr,
    /// Counter of packets the server forwarded, when it has one.
    packets_out: Option<Box<dyn Fn() -> futures::future::BoxFuture<'static, Option<u64>>>>,
}

struct StepResult {
    n: usize,
    loss: f64,
    cpu: f64,
    pps: Option<f64>,
    ttff: (f64, f64),
}

async fn measure(t: &Target, args: &Args) -> anyhow::Result<Vec<StepResult>> {
    let publisher = rtc_client::publish_via(
        &t.publisher,
        t.ip,
        PublishOptions {
            video_bps: args.video_bps,
            gop: 120,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("publisher: {e}"))?;
    classroom_tests::wait_until("the publisher sending", Duration::from_secs(15), || async {
        let s = publisher.snapshot();
        (s.connected && s.frames_sent >= 30).then_some(())
    })
    .await?;
    let mut subs: Vec<Client> = Vec::new();
    let mut ttff_all: Vec<f64> = Vec::new();
    let mut results = Vec::new();
    for &n in &args.steps {
        // add subscribers, a few at a time
        let mut joins = Vec::new();
        while subs.len() < n {
            let i = subs.len();
            let c = rtc_client::subscribe_via(&(t.subscriber)(i), t.ip)
                .await
                .map_err(|e| anyhow::anyhow!("subscriber {i}: {e}"))?;
            joins.push(subs.len());
            subs.push(c);
            if subs.len().is_multiple_of(10) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // every new subscriber decodes its first frame (or we give up on it)
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && joins
                .iter()
                .any(|&i| subs[i].snapshot().first_keyframe.is_none())
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for &i in &joins {
            // join to the first frame a decoder can show: the first keyframe
            if let Some(first) = subs[i].snapshot().first_keyframe {
                ttff_all.push(first.duration_since(subs[i].started).as_secs_f64() * 1000.0);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // measure
        let sent0 = publisher.snapshot().frames_sent;
        let got0: Vec<u64> = subs.iter().map(|s| s.snapshot().video_frames()).collect();
        let cpu0 = cpu_secs(t.pid);
        let gen0 = cpu_secs(std::process::id());
        let pkt0 = match &t.packets_out {
            Some(f) => f().await,
            None => None,
        };
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let secs = t0.elapsed().as_secs_f64();
        let sent = publisher.snapshot().frames_sent - sent0;
        let cpu = (cpu_secs(t.pid) - cpu0) / secs * 100.0;
        let gen_cpu = (cpu_secs(std::process::id()) - gen0) / secs * 100.0;
        let pkt1 = match &t.packets_out {
            Some(f) => f().await,
            None => None,
        };
        // frames still in flight at the window's end count as received
        tokio::time::sleep(Duration::from_millis(300)).await;
        let losses: Vec<f64> = subs
            .iter()
            .zip(&got0)
            .map(|(s, g0)| {
                let got = s.snapshot().video_frames().saturating_sub(*g0);
                (1.0 - got as f64 / sent.max(1) as f64).max(0.0)
            })
            .collect();
        let loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        let worst = losses.iter().cloned().fold(0.0, f64::max);
        let pps = match (pkt0, pkt1) {
            (Some(a), Some(b)) => Some((b - a) as f64 / secs),
            _ => None,
        };
        let mut tt = ttff_all.clone();
        let ttff = (pct(&mut tt, 0.5), pct(&mut tt, 0.95));
        println!(
            "{:<6} N={n:<4} frame loss {:>6.2} % (worst {:>6.2} %)  CPU {:>5.1} %  per stream {:>5.2} %  {}  first frame p50 {:>6.0} ms p95 {:>6.0} ms  (load clients' core {:>3.0} %)",
            t.name,
            loss * 100.0,
            worst * 100.0,
            cpu,
            cpu / n as f64,
            pps.map(|p| format!("{p:>8.0} pkt/s"))
                .unwrap_or_else(|| "        - pkt/s".into()),
            ttff.0,
            ttff.1,
            gen_cpu
        );
        results.push(StepResult {
            n,
            loss,
            cpu,
            pps,
            ttff,
        });
        if loss >= 0.05 || cpu > 98.0 {
            break;
        }
    }
    for s in subs {
        s.vanish();
    }
    publisher.vanish();
    Ok(results)
}

fn summary(name: &str, r: &[StepResult]) {
    let ok: Vec<&StepResult> = r.iter().filter(|s| s.loss < 0.01).collect();
    match ok.last() {
        Some(best) => {
            let per_stream = best.cpu / best.n as f64;
            let pps_core = best.pps.map(|p| p / (best.cpu / 100.0).max(0.01));
            println!(
                "{name}: largest N with < 1 % loss: {} (of those tried); CPU per forwarded stream {:.2} % of a core; {}; first frame p50 {:.0} ms p95 {:.0} ms",
                best.n,
                per_stream,
                pps_core
                    .map(|p| format!("{p:.0} forwarded packets/s per core"))
                    .unwrap_or_else(|| "forwarded packets/s unknown".into()),
                best.ttff.0,
                best.ttff.1
            );
        }
        None => println!("{name}: no step stayed under 1 % loss"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let max = args.steps.iter().copied().max().unwrap_or(10);
    println!("starting the stack (edge pinned to CPU 0, load clients to CPU 1)...");
    let stack = Stack::start(StackOptions {
        students: max as u32 + 1,
        ..Default::default()
    })
    .await?;
    let edge_pid = stack.edges[0].proc.pid().unwrap_or(0);
    pin(edge_pid, 0);
    pin(std::process::id(), 1);
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await?;
    let session = api.start_class(&teacher).await?;
    let t = api.join(&teacher, &session.id).await?;
    let mut seats = Vec::new();
    for i in 1..=max {
        let tok = api.login(&format!("student{i}@demo.test")).await?;
        seats.push(api.join(&tok, &session.id).await?);
        if i % 25 == 0 {
            eprint!("\r  {i}/{max} seats");
        }
    }
    eprintln!();
    let edge_url = t.edge_url.clone();
    let sid = session.id.clone();
    let seats2 = seats.clone();
    let (eu, su) = (edge_url.clone(), sid.clone());
    let health = edge_url.clone();
    let ours = Target {
        name: "edge",
        pid: edge_pid,
        publisher: Signal::Edge {
            url: edge_url.clone(),
            session: sid.clone(),
            token: t.join_token.clone(),
        },
        subscriber: Box::new(move |i| Signal::Edge {
            url: eu.clone(),
            session: su.clone(),
            token: seats2[i].join_token.clone(),
        }),
        ip: IpAddr::from([127, 0, 0, 1]),
        packets_out: Some(Box::new(move || {
            let url = format!("{health}/healthz");
            Box::pin(async move {
                let v: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
                v["media"]["packets_out"].as_u64()
            })
        })),
    };
    println!();
    println!(
        "== SFU: one publisher (VP8 {} kbit/s + Opus), N subscribers, one core",
        args.video_bps / 1000
    );
    let r = measure(&ours, &args).await?;
    let chat = match (&args.chat_url, args.chat_pid) {
        (Some(url), Some(pid)) => {
            pin(pid, 0);
            let u2 = url.clone();
            let target = Target {
                name: "chat",
                pid,
                publisher: Signal::Chat { url: url.clone() },
                subscriber: Box::new(move |_| Signal::Chat { url: u2.clone() }),
                ip: args.chat_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                packets_out: None,
            };
            Some(measure(&target, &args).await?)
        }
        _ => None,
    };
    println!();
    summary("edge", &r);
    if let Some(c) = chat {
        summary("str0m chat example (baseline)", &c);
    }
    stack.shutdown().await;
    Ok(())
}
