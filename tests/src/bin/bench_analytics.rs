//! Analytics benchmark, on a real stack (the binaries next to this one).
//!
//! 1. **Live**: one class, `--students` participants each sending chat and
//!    hands (closed loop) to the edge for `--seconds`. Over the same window:
//!    the raw event ingest rate (rows committed to `session_state_events`,
//!    counted by `ingested_at`) and the aggregator's rate (events folded,
//!    `analytics_sessions.events`), then how long after the load stopped
//!    the fold caught up with ingest.
//! 2. **Backlog**: core stopped, the analytics consumer deleted and the
//!    analytics tables emptied, core started: the time until the consumer
//!    has folded every event again. The clock runs from core's start to the
//!    fold reaching the log's end: consumer creation, redelivery of the
//!    hub stream, Postgres reads and writes, acks.
//! 3. **Rebuild**: `core analytics rebuild` (folding from Postgres only),
//!    as the command reports it.
//! 4. **Course dashboard**: `GET /courses/{id}/analytics` for a course of
//!    `--runs` runs × `--course-students` students (attendance, participation
//!    and two polls per run written straight into the analytics tables: the
//!    rows the route reads), sequential requests paced under the per-user
//!    read limit; p50/p99 of the whole HTTP round trip.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p classroom-tests --bin bench-analytics
//! cargo run -p classroom-tests --bin bench-analytics -- --smoke
//! ```
//! The last line printed is the figures as JSON.

use std::time::{Duration, Instant};

use clap::Parser;
use classroom_tests::{Stack, StackOptions, wait_until};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seconds of live load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Participants sending commands in the live class.
    #[arg(long, default_value_t = 40)]
    students: usize,
    /// Runs of the benchmarked course.
    #[arg(long, default_value_t = 100)]
    runs: i64,
    /// Students of the benchmarked course.
    #[arg(long, default_value_t = 200)]
    course_students: i64,
    /// Requests to the course route.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Seconds, not minutes: small figures, for CI to see it runs.
    #[arg(long)]
    smoke: bool,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn scalar(db: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(db)
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.seconds = 2;
        args.students = 8;
        args.runs = 10;
        args.course_students = 20;
        args.requests = 10;
    }
    let stack = Stack::start(StackOptions {
        students: args.students.max(args.course_students as usize) as u32,
        ..Default::default()
    })
    .await?;
    let mut stack = stack;
    let api = stack.api.clone();
    let db = stack.db().await?;
    let teacher = api.login("teacher@demo.test").await?;

    // 1. live
    let session = api.start_class(&teacher).await?;
    let mut seats = Vec::new();
    for n in 1..=args.students {
        let tok = api.login(&format!("student{n}@demo.test")).await?;
        seats.push(api.join(&tok, &session.id).await?);
    }
    let base = format!("{}/sessions/{}", session.edge_url, session.id);
    let t0 = chrono::Utc::now();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        let http = api.http.clone();
        let tok = seat.join_token.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut top = 0i64;
            let mut k = 0u64;
            while Instant::now() < end {
                k += 1;
                // every command appends one event: chat, hand up, chat, hand down
                let (path, body) = match k % 4 {
                    1 => (format!("{base}/hands"), json!({})),
                    3 => (format!("{base}/hands/lower"), json!({})),
                    _ => (
                        format!("{base}/chat"),
                        json!({ "text": format!("m {i}.{k}") }),
                    ),
                };
                if let Ok(r) = http.post(&path).bearer_auth(&tok).json(&body).send().await
                    && r.status().is_success()
                {
                    sent += 1;
                    // the log's position after the command
                    if let Ok(v) = r.json::<serde_json::Value>().await {
                        top = top.max(v["seq"].as_i64().unwrap_or(0));
                    }
                }
            }
            (sent, top)
        }));
    }
    let (mut accepted, mut top_seq) = (0, 0);
    for t in tasks {
        let (sent, top) = t.await?;
        accepted += sent;
        top_seq = top_seq.max(top);
    }
    let window = start.elapsed().as_secs_f64();
    let t1 = t0 + chrono::Duration::milliseconds((window * 1000.0) as i64);
    let sid: uuid::Uuid = session.id.parse()?;
    // everything acknowledged is committed, then folded
    let committed_all = wait_until("ingest caught up", Duration::from_secs(120), || {
        let db = db.clone();
        async move {
            let last: i64 = sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = $1")
                .bind(sid)
                .fetch_one(&db)
                .await
                .ok()?;
            (last >= top_seq).then_some(last)
        }
    })
    .await?;
    let stopped = Instant::now();
    wait_until("the fold caught up", Duration::from_secs(120), || {
        let db = db.clone();
        async move {
            let folded: i64 =
                sqlx::query_scalar("SELECT last_seq FROM analytics_sessions WHERE session_id = $1")
                    .bind(sid)
                    .fetch_one(&db)
                    .await
                    .ok()?;
            let last: i64 = sqlx::query_scalar("SELECT last_seq FROM sessions WHERE id = $1")
                .bind(sid)
                .fetch_one(&db)
                .await
                .ok()?;
            (folded >= last).then_some(())
        }
    })
    .await?;
    let catch_up_ms = stopped.elapsed().as_secs_f64() * 1000.0;
    let ingested_in_window: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM session_state_events WHERE session_id = $1 AND ingested_at >= $2 AND ingested_at < $3",
    )
    .bind(sid)
    .bind(t0)
    .bind(t1)
    .fetch_one(&db)
    .await?;
    let ingest_rate = ingested_in_window as f64 / window;
    let accepted_rate = accepted as f64 / window;
    println!(
        "live: {accepted} commands accepted in {window:.1} s ({accepted_rate:.0}/s); \
         ingested in the same window {ingested_in_window} ({ingest_rate:.0} events/s); \
         fold caught up {catch_up_ms:.0} ms after ingest ({committed_all} events)"
    );

    // 2. backlog: the consumer made anew, the tables empty
    let events_total = scalar(&db, "SELECT count(*)::bigint FROM session_state_events").await;
    stack.kill_core().await;
    stack
        .delete_hub_consumer(protocol::subjects::ANALYTICS_CONSUMER)
        .await?;
    sqlx::query("DELETE FROM analytics_sessions")
        .execute(&db)
        .await?;
    let restarted = Instant::now();
    stack.restart_core().await?;
    wait_until("the backlog folded", Duration::from_secs(300), || {
        let db = db.clone();
        async move {
            let n = scalar(&db, "SELECT sum(events)::bigint FROM analytics_sessions").await;
            (n >= events_total).then_some(())
        }
    })
    .await?;
    let backlog_secs = restarted.elapsed().as_secs_f64();
    let backlog_rate = events_total as f64 / backlog_secs;
    // the fold reads the log from Postgres; the consumer's messages only say
    // which classes moved: acknowledging all of them is the rest of the work
    stack
        .hub_consumer_drained(
            protocol::subjects::ANALYTICS_CONSUMER,
            Duration::from_secs(300),
        )
        .await?;
    let drained_secs = restarted.elapsed().as_secs_f64();
    println!(
        "backlog: {events_total} events folded in {backlog_secs:.2} s from core's start \
         ({backlog_rate:.0} events/s); every message acknowledged after {drained_secs:.2} s \
         ({:.0} messages/s)",
        events_total as f64 / drained_secs
    );

    // 3. rebuild
    let out = stack
        .core_command(&["analytics".into(), "rebuild".into()])
        .await?;
    let rebuilt: serde_json::Value = serde_json::from_str(out.trim())?;
    let rebuild_rate =
        rebuilt["events"].as_f64().unwrap_or(0.0) / rebuilt["seconds"].as_f64().unwrap_or(f64::NAN);
    println!("rebuild: {rebuilt} ({rebuild_rate:.0} events/s, process start excluded)");

    // 4. the course dashboard of runs × students
    let (s, c) = api
        .post("/courses", &teacher, json!({ "title": "Bench course" }))
        .await?;
    anyhow::ensure!(s.is_success(), "course: {s} {c}");
    let course: uuid::Uuid = c["id"].as_str().unwrap_or_default().parse()?;
    let (s, l) = api
        .post(
            "/lessons",
            &teacher,
            json!({ "course_id": course, "title": "Bench lesson" }),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "lesson: {s} {l}");
    let lesson: uuid::Uuid = l["id"].as_str().unwrap_or_default().parse()?;
    let filled = Instant::now();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO course_members (tenant_id, course_id, user_id, role)
         SELECT u.tenant_id, $1, u.id, 'student' FROM users u
          WHERE u.email LIKE 'student%@demo.test'
          ORDER BY u.email LIMIT $2",
    )
    .bind(course)
    .bind(args.course_students)
    .execute(&mut *tx)
    .await?;
    // runs a day apart, each with its session and fold
    sqlx::query(
        "WITH t AS (SELECT tenant_id, started_by FROM sessions WHERE id = $4),
         runs AS (
           INSERT INTO lesson_runs (id, tenant_id, lesson_id, created_by)
           SELECT gen_random_uuid(), t.tenant_id, $1, t.started_by FROM t, generate_series(1, $2)
           RETURNING id, tenant_id, created_by),
         numbered AS (SELECT *, row_number() OVER (ORDER BY id) AS n FROM runs),
         s AS (
           INSERT INTO sessions (id, tenant_id, lesson_run_id, edge_id, status, title, started_by,
                                 started_at, ended_at, last_seq)
           SELECT gen_random_uuid(), tenant_id, id, 'edge-a', 'ended', 'Bench lesson ' || n, created_by,
                  now() - make_interval(days => ($2 - n)::int) - interval '1 hour',
                  now() - make_interval(days => ($2 - n)::int), 0
             FROM numbered
           RETURNING id, tenant_id, started_at, ended_at, lesson_run_id)
         INSERT INTO analytics_sessions (session_id, tenant_id, course_id, lesson_id, lesson_run_id,
                                         started_at, ended_at, last_seq, events, state)
         SELECT id, tenant_id, $3, $1, lesson_run_id, started_at, ended_at, 0, 0, '{}' FROM s",
    )
    .bind(lesson)
    .bind(args.runs)
    .bind(course)
    .bind(sid)
    .execute(&mut *tx)
    .await?;
    // each student comes to 90 % of the runs, a few late, with some
    // participation; two polls per run, each answered by those present
    sqlx::query(
        "INSERT INTO analytics_attendance
           (session_id, tenant_id, course_id, user_id, role, first_join, last_leave, present_ms,
            open_since, joins, attendance_only, chat, questions, upvotes, poll_answers,
            poll_correct, hands, speaking_ms, mic_ms)
         SELECT a.session_id, a.tenant_id, a.course_id, m.user_id, 'student',
                a.started_at + make_interval(mins => (hashtext(m.user_id::text || a.session_id::text) & 7)),
                a.ended_at, 3000000, NULL, 1, false,
                (hashtext(a.session_id::text || m.user_id::text) & 3), 1, 0, 2, 1, 1, 4000, 60000
           FROM analytics_sessions a JOIN course_members m ON m.course_id = a.course_id
          WHERE a.course_id = $1 AND (hashtext(m.user_id::text || a.session_id::text) % 10) <> 0",
    )
    .bind(course)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO analytics_polls (session_id, poll_id, opened_seq, opened_at, question, options,
                                      correct_option, answers, correct)
         SELECT a.session_id, gen_random_uuid(), k, a.started_at, 'Question ' || k, '[\"a\",\"b\"]',
                1, 180, 120
           FROM analytics_sessions a, generate_series(1, 2) k WHERE a.course_id = $1",
    )
    .bind(course)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(&db).await?;
    let rows = scalar(
        &db,
        &format!("SELECT count(*)::bigint FROM analytics_attendance WHERE course_id = '{course}'"),
    )
    .await;
    println!(
        "course: {} runs × {} students, {rows} attendance rows written in {:.1} s",
        args.runs,
        args.course_students,
        filled.elapsed().as_secs_f64()
    );
    let path = format!("/courses/{course}/analytics");
    let mut lat = Vec::new();
    let mut refused = 0;
    // paced under the per-user limit (10 a second): this measures the
    // route, not the limiter; a slow answer delays the next tick, never
    // bunches requests up
    let mut pace = tokio::time::interval(Duration::from_millis(110));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..args.requests {
        pace.tick().await;
        let t = Instant::now();
        let (s, v) = api.get(&path, &teacher).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if s.is_success() {
            anyhow::ensure!(
                v["runs"].as_array().map(Vec::len) == Some(args.runs as usize),
                "the dashboard has every run"
            );
            lat.push(ms);
        } else {
            refused += 1;
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
    println!(
        "GET /courses/{{id}}/analytics ({} runs × {} students): p50 {p50:.1} ms, p99 {p99:.1} ms (n={}, refused {refused})",
        args.runs,
        args.course_students,
        lat.len()
    );
    let report = json!({
        "live": {
            "seconds": window, "commands_accepted": accepted, "commands_per_s": accepted_rate,
            "ingest_events_per_s": ingest_rate, "fold_catch_up_ms": catch_up_ms,
        },
        "backlog": {
            "events": events_total, "seconds": backlog_secs, "events_per_s": backlog_rate,
            "drained_seconds": drained_secs, "messages_per_s": events_total as f64 / drained_secs,
        },
        "rebuild": { "events": rebuilt["events"], "seconds": rebuilt["seconds"], "events_per_s": rebuild_rate },
        "course": {
            "runs": args.runs, "students": args.course_students, "rows": rows,
            "requests": lat.len(), "refused": refused, "p50_ms": p50, "p99_ms": p99,
        },
    });
    stack.shutdown().await;
    println!("{report}");
    Ok(())
}
