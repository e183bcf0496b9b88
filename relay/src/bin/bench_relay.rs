//! Relay hop benchmark: one publisher, 1 → N subscribing clients, each its
//! own QUIC connection, all in this process; the relay under test is a child
//! process so its CPU time can be read from /proc.
//!
//! Measures, per subscriber count: publish → receive latency (p50/p99/max),
//! delivered objects/s and Mbit/s, loss, the relay's CPU use, and
//! throughput per relay core (delivered objects / relay CPU seconds).
//!
//! Runs our relay (spawned from the sibling `relay` binary), and optionally
//! the upstream project's `moq-relay-ietf` as a baseline with the same load:
//! `--baseline-bin /path/to/moq-relay-ietf` (spawned here, plain TLS with the
//! same dev certificate) or `--baseline-url moqt://host:port` (already
//! running; add `--baseline-pid` for its CPU time).
//!
//! The clients share the machine with the relay: on a small box they are a
//! large part of the load, so read CPU-per-object next to the latency.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use moq_transport::coding::TrackNamespace;
use moq_transport::serve::{self, Subgroup, TrackReaderMode};
use relay::client::{Connection, Dialer};
use relay::testkit::{RelayProcess, TestPublisher, TokenIssuer, cpu_time};
use url::Url;

#[derive(Debug, Clone, Parser)]
#[command(name = "bench_relay", about = "MoQ relay hop latency and throughput")]
struct Config {
    /// Subscriber counts to step through.
    #[arg(
        long,
        env = "BENCH_SUBSCRIBERS",
        value_delimiter = ',',
        default_value = "1,5,10,25,50"
    )]
    subscribers: Vec<usize>,
    /// Objects per second the publisher sends.
    #[arg(long, env = "BENCH_RATE", default_value_t = 1000)]
    rate: u64,
    /// Object payload size in bytes (an RTP packet's worth).
    #[arg(long, env = "BENCH_SIZE", default_value_t = 1100)]
    size: usize,
    /// Objects per group (a keyframe interval).
    #[arg(long, env = "BENCH_GROUP", default_value_t = 100)]
    group_objects: u64,
    /// Measured seconds per step (after a short warm-up).
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 5.0)]
    seconds: f64,
    /// Our relay binary. Default: `relay` next to this binary.
    #[arg(long, env = "BENCH_RELAY_BIN")]
    relay_bin: Option<PathBuf>,
    /// Skip our relay (baseline only).
    #[arg(long)]
    no_ours: bool,
    /// moq-relay-ietf binary to spawn as the baseline.
    #[arg(long, env = "BENCH_BASELINE_BIN")]
    baseline_bin: Option<PathBuf>,
    /// An already running baseline relay (moqt://host:port).
    #[arg(long, env = "BENCH_BASELINE_URL", conflicts_with = "baseline_bin")]
    baseline_url: Option<Url>,
    /// CA (PEM) for --baseline-url. Default: the bench's own dev CA.
    #[arg(long, env = "BENCH_BASELINE_CA")]
    baseline_ca: Option<PathBuf>,
    /// PID of --baseline-url's process, for CPU accounting.
    #[arg(long, env = "BENCH_BASELINE_PID")]
    baseline_pid: Option<u32>,
    /// Pin each spawned relay (all its threads) to this CPU with `taskset`,
    /// so it gets one core of its own; run the bench itself on the others
    /// (e.g. `taskset -c 1 bench_relay --pin-relay 0`).
    #[arg(long, env = "BENCH_PIN_RELAY")]
    pin_relay: Option<usize>,
}

/// Pins every thread of `pid` to `cpu`.
fn pin(pid: Option<u32>, cpu: Option<usize>) -> anyhow::Result<()> {
    let (Some(pid), Some(cpu)) = (pid, cpu) else {
        return Ok(());
    };
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset")?;
    anyhow::ensure!(status.success(), "taskset failed");
    Ok(())
}

/// One relay under test.
struct Target {
    label: &'static str,
    url: Url,
    dialer: Dialer,
    token: Option<String>,
    pid: Option<u32>,
    _process: Option<RelayProcess>,
}

#[derive(Default)]
struct SubStats {
    latencies_us: Vec<u32>,
    objects: u64,
    bytes: u64,
    out_of_order: u64,
}

struct StepResult {
    subscribers: usize,
    sent: u64,
    delivered: u64,
    bytes: u64,
    out_of_order: u64,
    p50_us: u32,
    p99_us: u32,
    max_us: u32,
    seconds: f64,
    relay_cpu: Option<f64>,
}

fn payload(seq: u64, sent_ns: u64, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size.max(16));
    b.put_u64(seq);
    b.put_u64(sent_ns);
    b.resize(size.max(16), 0xab);
    b.freeze()
}

fn parse(payload: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // moq-transport logs teardown resets at ERROR; quiet by default.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,moq_transport=off".into()),
        )
        .init();
    let config = Config::parse();
    let dir = tempfile_dir()?;
    let (files, _) = relay::dev_ca::ensure(&dir, &[])?;
    let issuer = Arc::new(TokenIssuer::new());
    let core = issuer.serve().await?;

    let mut targets = Vec::new();
    if !config.no_ours {
        let bin = match &config.relay_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("exe dir")?
                .join("relay"),
        };
        let args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--dev-ca-dir".to_owned(),
            dir.display().to_string(),
            "--core-url".to_owned(),
            core.clone(),
        ];
        let process = RelayProcess::spawn(&bin, &args)
            .await
            .with_context(|| format!("starting {}", bin.display()))?;
        // Let the relay fetch the JWKS before the first client arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        pin(process.pid(), config.pin_relay)?;
        targets.push(Target {
            label: "classroom relay",
            url: Url::parse(&format!("moqt://localhost:{}", process.addr.port()))?,
            dialer: Dialer::new(relay::tls::client_config(std::slice::from_ref(
                &files.ca_cert,
            ))?)?,
            token: Some(issuer.token("bench", 3600)),
            pid: process.pid(),
            _process: Some(process),
        });
    }
    if let Some(bin) = &config.baseline_bin {
        let addr = free_udp_port()?;
        let coordinator = dir.join("moq-coordinator.json");
        let args = vec![
            "--bind".to_owned(),
            addr.to_string(),
            "--tls-cert".to_owned(),
            files.cert.display().to_string(),
            "--tls-key".to_owned(),
            files.key.display().to_string(),
            "--coordinator-file".to_owned(),
            coordinator.display().to_string(),
        ];
        let process = RelayProcess::spawn_foreign(bin, &args, addr)
            .await
            .with_context(|| format!("starting {}", bin.display()))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        pin(process.pid(), config.pin_relay)?;
        targets.push(Target {
            label: "moq-relay-ietf 0.8.0",
            url: Url::parse(&format!("moqt://localhost:{}", addr.port()))?,
            dialer: Dialer::new(relay::tls::client_config(std::slice::from_ref(
                &files.ca_cert,
            ))?)?,
            token: None,
            pid: process.pid(),
            _process: Some(process),
        });
    } else if let Some(url) = &config.baseline_url {
        let ca = config.baseline_ca.clone().unwrap_or(files.ca_cert.clone());
        targets.push(Target {
            label: "baseline",
            url: url.clone(),
            dialer: Dialer::new(relay::tls::client_config(&[ca])?)?,
            token: None,
            pid: config.baseline_pid,
            _process: None,
        });
    }

    println!(
        "load: 1 publisher, {} objects/s of {} B ({:.1} Mbit/s offered per subscriber), {} objects/group, {:.1} s per step",
        config.rate,
        config.size,
        config.rate as f64 * config.size as f64 * 8.0 / 1e6,
        config.group_objects,
        config.seconds
    );
    for target in &targets {
        println!("\n== {} ({}) ==", target.label, target.url);
        println!(
            "{:>5} {:>9} {:>9} {:>9} {:>11} {:>9} {:>7} {:>9} {:>14} {:>12}",
            "subs",
            "p50 ms",
            "p99 ms",
            "max ms",
            "objects/s",
            "Mbit/s",
            "loss %",
            "relay CPU",
            "objects/s/core",
            "Mbit/s/core"
        );
        for (step, &n) in config.subscribers.iter().enumerate() {
            match run_step(target, &config, n, step).await {
                Ok(r) => print_row(&r),
                Err(e) => println!("{n:>5} failed: {e:#}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_row(r: &StepResult) {
    let rate = r.delivered as f64 / r.seconds;
    let mbit = r.bytes as f64 * 8.0 / 1e6 / r.seconds;
    let expected = r.sent * r.subscribers as u64;
    let loss = if expected == 0 {
        0.0
    } else {
        100.0 * (expected.saturating_sub(r.delivered)) as f64 / expected as f64
    };
    let (cpu, per_core, mbit_core) = match r.relay_cpu {
        Some(cpu) if cpu > 0.0 => (
            format!("{:.0} %", 100.0 * cpu / r.seconds),
            format!("{:.0}", r.delivered as f64 / cpu),
            format!("{:.0}", r.bytes as f64 * 8.0 / 1e6 / cpu),
        ),
        _ => ("n/a".to_owned(), "n/a".to_owned(), "n/a".to_owned()),
    };
    println!(
        "{:>5} {:>9.2} {:>9.2} {:>9.2} {:>11.0} {:>9.1} {:>7.2} {:>9} {:>14} {:>12}{}",
        r.subscribers,
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0,
        r.max_us as f64 / 1000.0,
        rate,
        mbit,
        loss,
        cpu,
        per_core,
        mbit_core,
        if r.out_of_order > 0 {
            format!("  ({} out of order within a group)", r.out_of_order)
        } else {
            String::new()
        }
    );
}

async fn connect(target: &Target) -> anyhow::Result<Connection> {
    let mut c = target
        .dialer
        .connect(&target.url, target.token.as_deref())
        .await?;
    if target.token.is_some() {
        c.probe().await?;
    }
    Ok(c)
}

async fn run_step(
    target: &Target,
    config: &Config,
    subscribers: usize,
    step: usize,
) -> anyhow::Result<StepResult> {
    let namespace = format!("bench/s{step}/p1");
    let publisher_conn = connect(target).await.context("publisher connect")?;
    let mut publisher = TestPublisher::start(&publisher_conn, &namespace)
        .await
        .context("publish namespace")?;
    let mut track = publisher.track("video").context("track")?;

    let base = Instant::now();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut conns = Vec::new();
    let mut stats = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..subscribers {
        let conn = connect(target).await.context("subscriber connect")?;
        let (writer, reader) =
            serve::Track::new(TrackNamespace::from_utf8_path(&namespace), "video").produce();
        let mut subscriber = conn.subscriber.clone();
        let subscription = subscriber
            .subscribe_open(writer)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
        let s = Arc::new(Mutex::new(SubStats::default()));
        tokio::spawn(receive(reader, s.clone(), base, measuring.clone()));
        stats.push(s);
        handles.push(subscription);
        conns.push(conn);
    }

    // Publish: warm-up, then the measured window, then a short tail so
    // in-flight objects arrive.
    let warmup = Duration::from_millis(500);
    let window = Duration::from_secs_f64(config.seconds);
    let mut seq = 0u64;
    let mut group: Option<serve::SubgroupWriter> = None;
    let mut group_id = 0u64;
    let start = Instant::now();
    let mut sent_measured = 0u64;
    let mut cpu_before = None;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= warmup + window {
            break;
        }
        let in_window = elapsed >= warmup;
        if in_window && !measuring.load(std::sync::atomic::Ordering::Relaxed) {
            cpu_before = target.pid.and_then(cpu_time);
            measuring.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let due = (elapsed.as_secs_f64() * config.rate as f64) as u64;
        while seq < due {
            if seq.is_multiple_of(config.group_objects) {
                if let Some(g) = group.take() {
                    let _ = g.finish();
                }
                group = Some(
                    track
                        .create(Subgroup {
                            group_id,
                            subgroup_id: 0,
                            priority: 1,
                        })
                        .map_err(|e| anyhow::anyhow!("group: {e}"))?,
                );
                group_id += 1;
            }
            let sent_ns = base.elapsed().as_nanos() as u64;
            if let Some(g) = group.as_mut() {
                g.write(payload(seq, sent_ns, config.size))
                    .map_err(|e| anyhow::anyhow!("write: {e}"))?;
            }
            if in_window {
                sent_measured += 1;
            }
            seq += 1;
        }
    }
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let cpu_after = target.pid.and_then(cpu_time);
    let seconds = window.as_secs_f64();
    // In-flight objects sent inside the window may still land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(group);

    let mut all = Vec::new();
    let (mut delivered, mut bytes, mut out_of_order) = (0, 0, 0);
    for s in &stats {
        let s = s.lock().map_err(|_| anyhow::anyhow!("stats lock"))?;
        all.extend_from_slice(&s.latencies_us);
        delivered += s.objects;
        bytes += s.bytes;
        out_of_order += s.out_of_order;
    }
    all.sort_unstable();
    let pick = |q: f64| -> u32 {
        if all.is_empty() {
            0
        } else {
            all[((all.len() - 1) as f64 * q) as usize]
        }
    };
    drop(handles);
    drop(conns);
    drop(publisher_conn);
    Ok(StepResult {
        subscribers,
        sent: sent_measured,
        delivered,
        bytes,
        out_of_order,
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        max_us: all.last().copied().unwrap_or(0),
        seconds,
        relay_cpu: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)).as_secs_f64()),
            _ => None,
        },
    })
}

/// Reads every group (each in its own task) and records the latency of the
/// objects sent inside the measured window.
async fn receive(
    reader: serve::TrackReader,
    stats: Arc<Mutex<SubStats>>,
    base: Instant,
    measuring: Arc<std::sync::atomic::AtomicBool>,
) {
    let Ok(TrackReaderMode::Subgroups(mut groups)) = reader.mode().await else {
        return;
    };
    while let Ok(Some(mut group)) = groups.next().await {
        let stats = stats.clone();
        let measuring = measuring.clone();
        tokio::spawn(async move {
            let mut last: Option<u64> = None;
            while let Ok(Some(mut object)) = group.next().await {
                let Ok(payload) = object.read_all().await else {
                    break;
                };
                let now = base.elapsed().as_nanos() as u64;
                let Some((seq, sent)) = parse(&payload) else {
                    continue;
                };
                let in_order = last.is_none_or(|l| seq > l);
                last = Some(seq);
                if !measuring.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                if let Ok(mut s) = stats.lock() {
                    s.latencies_us
                        .push(u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX));
                    s.objects += 1;
                    s.bytes += payload.len() as u64;
                    if !in_order {
                        s.out_of_order += 1;
                    }
                }
            }
        });
    }
}

fn free_udp_port() -> anyhow::Result<SocketAddr> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
