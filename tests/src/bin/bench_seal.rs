//! What sealing recordings to their tenant costs: the same objects written
//! and read through a plain local-directory store and through the same
//! store wrapped in `hosting::sealed::SealedStore`, in one run, in
//! alternating rounds so neither side gets a warmer disk or cache.
//!
//! Objects are the size of a 6-second recording segment at the recorder's
//! 2.5 Mbit/s (about 1.9 MB). The clock of a write covers sealing and the
//! store's write (a file, not fsynced); of a read, the store's read and
//! opening. This process's CPU time (user + system) over each phase is
//! reported per MB. Range reads are 64 KiB at random offsets, as a player
//! seeking through a recording asks for them, timed one by one.
//!
//!     cargo run --release -p classroom-tests --bin bench-seal
//!     cargo run -p classroom-tests --bin bench-seal -- --smoke

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use classroom_tests::benchutil::pct;
use hosting::sealed::{KeyRing, Opener, Recipient, SealedStore};
use object_store::ObjectStore;
use object_store::path::Path;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Objects written and read per side.
    #[arg(long, default_value_t = 200)]
    objects: usize,
    /// Bytes per object (a 6 s segment at 2.5 Mbit/s).
    #[arg(long, default_value_t = 1_875_000)]
    bytes: usize,
    /// Random 64 KiB range reads per side.
    #[arg(long, default_value_t = 2_000)]
    ranges: usize,
    /// A few objects, for CI: checks the benchmark runs and prints its line.
    #[arg(long)]
    smoke: bool,
}

/// One tenant's key pair: the whole key ring of this benchmark.
#[derive(Debug)]
struct Ring(Arc<Opener>);

#[async_trait::async_trait]
impl KeyRing for Ring {
    async fn recipient(&self, _: &str) -> Result<Recipient, String> {
        Ok(self.0.recipient())
    }
    async fn opener(&self, _: &str, _: [u8; 16]) -> Result<Arc<Opener>, String> {
        Ok(self.0.clone())
    }
}

/// CPU seconds (user + system) of this process, to the microsecond (the
/// store's file work runs on other threads of it).
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

#[derive(Default)]
struct Side {
    write_s: f64,
    read_s: f64,
    write_cpu: f64,
    read_cpu: f64,
    ranges_ms: Vec<f64>,
    stored_bytes: u64,
}

fn data(n: usize, seed: u64) -> Vec<u8> {
    // incompressible-looking bytes, like encoded video
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes, reads and range-reads the same objects through `plain` and
/// through `sealed` (over `raw`), alternating sides object by object.
async fn measure(
    args: &Args,
    payloads: &[Vec<u8>],
    plain: Arc<dyn ObjectStore>,
    raw: Arc<dyn ObjectStore>,
    sealed: Arc<dyn ObjectStore>,
) -> anyhow::Result<[Side; 2]> {
    let sides: [(&str, Arc<dyn ObjectStore>); 2] = [("plain", plain), ("sealed", sealed)];
    let mut results = [Side::default(), Side::default()];
    let key = |i: usize| Path::from(format!("recordings/tenant/session/seg{i:05}.mp4"));
    for i in 0..args.objects {
        for (n, (_, store)) in sides.iter().enumerate() {
            let body = payloads[i % payloads.len()].clone();
            let c0 = cpu_secs();
            let t0 = Instant::now();
            store.put(&key(i), body.into()).await?;
            results[n].write_s += t0.elapsed().as_secs_f64();
            results[n].write_cpu += cpu_secs() - c0;
        }
    }
    for i in 0..args.objects {
        for (n, (_, store)) in sides.iter().enumerate() {
            let c0 = cpu_secs();
            let t0 = Instant::now();
            let got = store.get(&key(i)).await?.bytes().await?;
            results[n].read_s += t0.elapsed().as_secs_f64();
            results[n].read_cpu += cpu_secs() - c0;
            anyhow::ensure!(
                got.as_ref() == payloads[i % payloads.len()].as_slice(),
                "{}: object {i} did not read back",
                sides[n].0
            );
        }
    }
    for i in 0..args.objects {
        results[0].stored_bytes += sides[0].1.head(&key(i)).await?.size;
        results[1].stored_bytes += raw.head(&key(i)).await?.size;
    }
    let mut x = 0x9e3779b97f4a7c15u64;
    for _ in 0..args.ranges {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) % args.objects;
        let at = ((x >> 20) as usize) % (args.bytes - 65_536);
        let want = &payloads[i % payloads.len()][at..at + 65_536];
        for (n, (_, store)) in sides.iter().enumerate() {
            let t0 = Instant::now();
            let got = store
                .get_range(&key(i), at as u64..(at + 65_536) as u64)
                .await?;
            results[n]
                .ranges_ms
                .push(t0.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                got.as_ref() == want,
                "{}: a range did not read back",
                sides[n].0
            );
        }
    }
    Ok(results)
}

fn report(name: &str, args: &Args, results: &mut [Side; 2]) -> serde_json::Value {
    let mb = (args.objects * args.bytes) as f64 / 1e6;
    let mut out = serde_json::Map::new();
    for (side, r) in ["plain", "sealed"].iter().zip(results.iter_mut()) {
        let line = json!({
            "write_mb_s": mb / r.write_s,
            "read_mb_s": mb / r.read_s,
            "write_cpu_ms_per_mb": r.write_cpu * 1000.0 / mb,
            "read_cpu_ms_per_mb": r.read_cpu * 1000.0 / mb,
            "range_p50_ms": pct(&mut r.ranges_ms, 0.5),
            "range_p99_ms": pct(&mut r.ranges_ms, 0.99),
            "stored_bytes": r.stored_bytes,
        });
        let f = |k: &str| line[k].as_f64().unwrap_or_default();
        println!(
            "{name:>6} {side:>6}: write {:.0} MB/s ({:.2} ms CPU/MB), read {:.0} MB/s ({:.2} ms CPU/MB), 64 KiB range p50 {:.3} ms p99 {:.3} ms",
            f("write_mb_s"),
            f("write_cpu_ms_per_mb"),
            f("read_mb_s"),
            f("read_cpu_ms_per_mb"),
            f("range_p50_ms"),
            f("range_p99_ms"),
        );
        out.insert((*side).to_owned(), line);
    }
    serde_json::Value::Object(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.objects = 4;
        args.ranges = 20;
    }
    let payloads: Vec<Vec<u8>> = (0..4).map(|i| data(args.bytes, i)).collect();
    let ring = Arc::new(Ring(Arc::new(Opener::generate()?)));

    // the crypto alone, in memory: seal and open one object, repeatedly
    let opener = Opener::generate()?;
    let to = opener.recipient();
    let rounds = args.objects.min(50);
    let t0 = Instant::now();
    let mut sealed_one = Vec::new();
    for i in 0..rounds {
        sealed_one =
            hosting::sealed::seal(&to, "recordings/t/s/x.mp4", &payloads[i % payloads.len()])?;
    }
    let seal_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..rounds {
        let back = hosting::sealed::open(&opener, "recordings/t/s/x.mp4", &sealed_one)?;
        anyhow::ensure!(
            back.len() == args.bytes,
            "the in-memory object did not open"
        );
    }
    let open_s = t0.elapsed().as_secs_f64();
    let crypto_mb = (rounds * args.bytes) as f64 / 1e6;
    println!(
        "crypto alone (in memory): seal {:.0} MB/s, open {:.0} MB/s",
        crypto_mb / seal_s,
        crypto_mb / open_s
    );

    // a local directory (the one-box store), then an in-memory store (the
    // wrapper's cost without a disk)
    let dir = tempfile::tempdir()?;
    let open_dir = |name: &str| {
        hosting::objects::open(&hosting::objects::Location::Dir(dir.path().join(name)))
    };
    let raw = open_dir("sealed")?;
    let mut on_disk = measure(
        &args,
        &payloads,
        open_dir("plain")?,
        raw.clone(),
        Arc::new(SealedStore::new(raw, ring.clone())),
    )
    .await?;
    let raw: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut in_memory = measure(
        &args,
        &payloads,
        Arc::new(object_store::memory::InMemory::new()),
        raw.clone(),
        Arc::new(SealedStore::new(raw, ring)),
    )
    .await?;
    let overhead = on_disk[1].stored_bytes as f64 / on_disk[0].stored_bytes as f64 - 1.0;
    let disk = report("dir", &args, &mut on_disk);
    let memory = report("memory", &args, &mut in_memory);
    println!("sealing stores {:.3} % more bytes", overhead * 100.0);
    println!(
        "{}",
        json!({
            "objects": args.objects, "object_bytes": args.bytes,
            "seal_mb_s": crypto_mb / seal_s, "open_mb_s": crypto_mb / open_s,
            "dir": disk, "memory": memory, "size_overhead": overhead,
        })
    );
    Ok(())
}
