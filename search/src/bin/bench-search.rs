//! bench-search: replay search on tantivy (this crate) against PostgreSQL
//! full-text search, on a deterministic synthetic corpus of lecture
//! transcripts (500 hours by default: ~225k segments, ~4.5 M words).
//!
//! Builds both indexes (tantivy on disk through `Index::replace_replay`, one
//! commit per replay as core does; PostgreSQL by COPY, then a GIN index on a
//! generated `to_tsvector('english', text)` column), then asks both the same
//! query mix after a warm-up, one query at a time, and prints build times,
//! sizes and latency per engine and query class.
//!
//!     cargo run --release -p search --bin bench-search -- --hours 500 --queries 1000

// The bench's own modules live beside it, in bench-search/.
#[path = "bench-search/corpus.rs"]
mod corpus;
#[path = "bench-search/latency.rs"]
mod latency;
#[path = "bench-search/postgres.rs"]
mod postgres;
#[path = "bench-search/query_mix.rs"]
mod query_mix;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use classroom_search::{ALL_WORDS_BONUS, Index, Query};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::latency::{Counted, Samples, ms};
use crate::query_mix::{BenchQuery, CLASSES, Class};

#[derive(Parser, Debug)]
#[command(about = "Replay search: tantivy against PostgreSQL full-text search")]
struct Config {
    /// Hours of lecture transcripts to generate.
    #[arg(long, env = "BENCH_HOURS", default_value_t = 500.0)]
    hours: f64,
    /// Measured queries per engine (spread evenly over the query classes).
    #[arg(long, env = "BENCH_QUERIES", default_value_t = 1000)]
    queries: usize,
    /// Warm-up queries per engine, not measured.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 200)]
    warmup: usize,
    /// Seed of the corpus and of the queries.
    #[arg(long, env = "BENCH_SEED", default_value_t = 42)]
    seed: u64,
    /// PostgreSQL server; the bench creates and drops its own database there.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Only tantivy.
    #[arg(long, env = "BENCH_SKIP_POSTGRES")]
    skip_postgres: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    println!("bench-search: {config:?}");

    let started = Instant::now();
    let vocabulary = corpus::Vocabulary::load();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let corpus = corpus::generate(&vocabulary, config.hours, &mut rng, |c, hours| {
        println!(
            "  corpus: {hours:.0} h, {} replays, {} segments, {} words",
            c.replays.len(),
            c.segments,
            c.words
        );
    });
    println!(
        "corpus: {} h in {:.1} s: {} tenants, {} courses, {} teachers, {} replays, {} segments, {} words ({:.1} per segment), vocabulary of {} distinct words, subjects {}",
        config.hours,
        started.elapsed().as_secs_f64(),
        corpus.tenants.len(),
        corpus.courses,
        corpus.teachers,
        corpus.replays.len(),
        corpus.segments,
        corpus.words,
        corpus.words as f64 / corpus.segments.max(1) as f64,
        vocabulary.distinct_words(),
        vocabulary
            .subjects
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );

    // The queries come from their own stream: changing --queries does not
    // change the corpus, nor --hours the warm-up's share of the stream.
    let mut query_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed);
    let warmup = query_mix::generate(&vocabulary, &corpus, config.warmup, &mut query_rng);
    let queries = query_mix::generate(&vocabulary, &corpus, config.queries, &mut query_rng);

    // tantivy
    let dir = tempfile::tempdir().context("temp dir")?;
    let index_dir = dir.path().join("search-index");
    let (tantivy_build, tantivy_settle) = build_tantivy(&corpus, &index_dir)?;
    let tantivy_bytes = dir_size(&index_dir)?;
    let bulk_dir = dir.path().join("search-index-bulk");
    let (bulk_build, bulk_bytes) = build_tantivy_bulk(&corpus, &bulk_dir)?;
    std::fs::remove_dir_all(&bulk_dir)?;
    let opened = Instant::now();
    let index = Index::open(&index_dir)?;
    println!(
        "tantivy: reopened in {:.0} ms, {} documents",
        opened.elapsed().as_secs_f64() * 1000.0,
        index.doc_count()
    );
    run(&warmup, |q| search_tantivy(&index, q))?;
    let tantivy = run(&queries, |q| search_tantivy(&index, q))?;
    println!("tantivy: {} queries done", queries.len());

    // PostgreSQL
    let mut pg = None;
    if !config.skip_postgres {
        let name = format!("bench_search_{}", std::process::id());
        let mut scratch = postgres::Scratch::create(&config.database_url, &name).await?;
        println!("postgres: scratch database {name}");
        // Whatever happens, the scratch database goes.
        let outcome = async {
            let load = scratch.load(&corpus).await?;
            for q in &warmup {
                scratch.search(q).await?;
            }
            let mut samples: BTreeMap<Class, Samples> = BTreeMap::new();
            for q in &queries {
                let t = Instant::now();
                let hits = scratch.search(q).await?;
                samples.entry(q.class).or_default().push(t.elapsed(), hits);
            }
            println!("postgres: {} queries done", queries.len());
            anyhow::Ok((load, samples))
        }
        .await;
        scratch.drop_database().await?;
        println!("postgres: scratch database dropped");
        pg = Some(outcome?);
    }

    println!();
    println!(
        "corpus: {:.0} h, {} segments, {} words, {} tenants, {} replays",
        config.hours,
        corpus.segments,
        corpus.words,
        corpus.tenants.len(),
        corpus.replays.len()
    );
    println!(
        "tantivy build: {:.1} s ({} replace_replay calls, one commit each), merges settled {:.1} s later; size on disk {}",
        tantivy_build.as_secs_f64(),
        corpus.replays.len(),
        tantivy_settle.as_secs_f64(),
        mib(tantivy_bytes as i64),
    );
    println!(
        "tantivy bulk build: {:.1} s (one replace_replays call, one commit, merges included); size on disk {}",
        bulk_build.as_secs_f64(),
        mib(bulk_bytes as i64),
    );
    if let Some((load, _)) = &pg {
        println!(
            "postgres build: {:.1} s (COPY with tsvector {:.1} s + GIN {:.1} s + btree and ANALYZE {:.1} s); size {} (table {} + GIN {} + btree {})",
            (load.copy + load.gin + load.btree).as_secs_f64(),
            load.copy.as_secs_f64(),
            load.gin.as_secs_f64(),
            load.btree.as_secs_f64(),
            mib(load.total_bytes),
            mib(load.table_bytes),
            mib(load.gin_bytes),
            mib(load.btree_bytes),
        );
    }
    println!();
    println!(
        "{:<22} {:>4} | {:>11} {:>8} {:>8} {:>6} {:>5} {:>5} | {:>8} {:>8} {:>8} {:>6} {:>5}",
        "latency, ms",
        "n",
        "tantivy p50",
        "p99",
        "mean",
        "found",
        "hits",
        "every",
        "pg p50",
        "p99",
        "mean",
        "found",
        "hits"
    );
    let mut all_tantivy = Samples::default();
    let mut all_pg = Samples::default();
    for class in CLASSES {
        let t = tantivy.get(&class);
        let p = pg.as_ref().and_then(|(_, s)| s.get(&class));
        if let Some(t) = t {
            all_tantivy.extend(t);
        }
        // PostgreSQL has no typo tolerance: its typo row shows what it finds,
        // but it stays out of the overall line.
        if let Some(p) = p.filter(|_| class != Class::Typo) {
            all_pg.extend(p);
        }
        print_row(class.name(), t, p);
    }
    let pg_all = pg.as_ref().map(|_| &all_pg);
    print_row("all (pg: without typo)", Some(&all_tantivy), pg_all);
    println!();
    println!(
        "found: share of queries with at least one hit; hits: mean hits returned (limit 20); \
         every: of which hold every word (tantivy ranks those first, counting typo matches, \
         then fills up with some of the words; PostgreSQL's websearch_to_tsquery returns only those)."
    );
    Ok(())
}

fn build_tantivy(corpus: &corpus::Corpus, dir: &Path) -> anyhow::Result<(Duration, Duration)> {
    let index = Index::open(dir)?;
    let started = Instant::now();
    for (i, replay) in corpus.replays.iter().enumerate() {
        index.replace_replay(replay.replay_id, &replay.docs)?;
        if (i + 1) % 50 == 0 {
            println!(
                "  tantivy: indexed {} of {} replays ({:.0} s)",
                i + 1,
                corpus.replays.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let build = started.elapsed();
    println!("tantivy: indexed in {:.1} s", build.as_secs_f64());
    let settling = Instant::now();
    index.close()?;
    Ok((build, settling.elapsed()))
}

/// The same corpus in one `replace_replays` call (one commit): a reindex.
fn build_tantivy_bulk(corpus: &corpus::Corpus, dir: &Path) -> anyhow::Result<(Duration, u64)> {
    let index = Index::open(dir)?;
    let started = Instant::now();
    index.replace_replays(
        corpus
            .replays
            .iter()
            .map(|r| (r.replay_id, r.docs.as_slice())),
    )?;
    index.close()?;
    let took = started.elapsed();
    println!(
        "tantivy: bulk indexed (one commit) in {:.1} s",
        took.as_secs_f64()
    );
    Ok((took, dir_size(dir)?))
}

fn search_tantivy(index: &Index, q: &BenchQuery) -> anyhow::Result<Counted> {
    let hits = index.search(&Query {
        tenant_id: q.tenant_id,
        text: q.text.clone(),
        replay_id: q.replay_id,
        limit: 20,
        ..Query::default()
    })?;
    // Only queries of several words get the bonus; one word or one phrase
    // is all there is to hold.
    let every = match q.class {
        Class::TwoWords | Class::ThreeWords | Class::InReplay => {
            hits.iter().filter(|h| h.score >= ALL_WORDS_BONUS).count()
        }
        Class::Common | Class::Rare | Class::Phrase | Class::Typo => hits.len(),
    };
    Ok(Counted {
        hits: hits.len(),
        every,
    })
}

fn run(
    queries: &[BenchQuery],
    mut search: impl FnMut(&BenchQuery) -> anyhow::Result<Counted>,
) -> anyhow::Result<BTreeMap<Class, Samples>> {
    let mut samples: BTreeMap<Class, Samples> = BTreeMap::new();
    for q in queries {
        let t = Instant::now();
        let hits = search(q).with_context(|| format!("query {:?}", q.text))?;
        samples.entry(q.class).or_default().push(t.elapsed(), hits);
    }
    Ok(samples)
}

fn print_row(name: &str, t: Option<&Samples>, p: Option<&Samples>) {
    let dash = || format!("{:>8} {:>8} {:>8} {:>6} {:>5}", "-", "-", "-", "-", "-");
    let cols = |s: &latency::Summary| {
        format!(
            "{:>8} {:>8} {:>8} {:>5.0}% {:>5.1}",
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            s.found * 100.0,
            s.mean_hits
        )
    };
    let (n, tc) = match t.and_then(Samples::summary) {
        Some(s) => (s.n, format!("{} {:>5.1}", cols(&s), s.mean_every)),
        None => (0, format!("{} {:>5}", dash(), "-")),
    };
    let pc = p.and_then(Samples::summary).map_or_else(dash, |s| cols(&s));
    println!("{name:<22} {n:>4} |    {tc} | {pc}");
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
