//! The artifact pipeline's driver: a durable JetStream consumer turns
//! `session.ended` and `recording.finalized` into jobs (rows in
//! `artifact_jobs`), and a worker runs each job's stages in order.
//!
//! Every stage is idempotent: it hashes its inputs and does nothing when an
//! artifact of its version with the same input hash exists (unless the job
//! is forced); its output is keyed by (session, kind, version), so a better
//! model is a new version beside the old. A failing stage puts the job back
//! with exponential backoff; a crash leaves the job leased, and the lease
//! expiring hands it to the next worker. Nothing here can reach a live
//! class: classes run on the edges.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use protocol::{DeckId, Envelope, EventBody, SessionId, TenantId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::derive::{self, Clock, SlideText, Transcript};
use super::transcribe;
use crate::AppState;
use crate::events::store;

/// A running job's lease: a worker that dies leaves it to another after this.
const LEASE: Duration = Duration::from_secs(15 * 60);
/// After this many failed attempts a job stops retrying (until re-run).
const MAX_ATTEMPTS: i32 = 12;
/// How long a job waits for an armed recording to be finalized.
const FINALIZE_WAIT: Duration = Duration::from_secs(10 * 60);

/// Stage names and versions, in the order they run.
pub(crate) const STAGES: &[(&str, i32)] = &[
    ("transcript", TRANSCRIPT_VERSION),
    ("slides", 1),
    ("timeline", 1),
    ("knowledge", 1),
    ("index", 1),
];
pub(crate) const TRANSCRIPT_VERSION: i32 = 2;

pub(crate) fn version_of(kind: &str) -> i32 {
    match kind {
        "transcript" => TRANSCRIPT_VERSION,
        _ => 1,
    }
}

/// Reads the hub stream for the events that start a job.
pub(crate) async fn run_triggers(app: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let trigger = crate::events::triggers::Trigger {
        name: protocol::subjects::ARTIFACTS_CONSUMER,
        types: &["session.ended", "recording.finalized"],
        ack_wait: Duration::from_secs(30),
        retry: Duration::from_secs(2),
    };
    crate::events::triggers::run(&app, trigger, stop, |h| {
        let app = app.clone();
        async move { enqueue(&app, h.tenant_id, h.session_id, h.seq, false).await }
    })
    .await
}

/// Queues (or re-queues) a session's job. A trigger older than what the job
/// has seen changes nothing, so redeliveries are harmless.
pub(crate) async fn enqueue(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    trigger_seq: i64,
    force: bool,
) -> anyhow::Result<()> {
    let exists: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM sessions WHERE id = $1 AND tenant_id = $2")
            .bind(session)
            .bind(tenant)
            .fetch_optional(app.db())
            .await?;
    if exists.is_none() {
        // a start core rolled back: no session, no artifacts
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO artifact_jobs (session_id, tenant_id, trigger_seq, state, force)
         VALUES ($1, $2, $3, 'pending', $4)
         ON CONFLICT (session_id) DO UPDATE
           SET trigger_seq = GREATEST(artifact_jobs.trigger_seq, EXCLUDED.trigger_seq),
               state = 'pending',
               attempts = 0,
               force = artifact_jobs.force OR EXCLUDED.force,
               next_attempt_at = now(),
               updated_at = now()
         WHERE EXCLUDED.trigger_seq > artifact_jobs.trigger_seq OR EXCLUDED.force",
    )
    .bind(session)
    .bind(tenant)
    .bind(trigger_seq)
    .bind(force)
    .execute(app.db())
    .await?;
    Ok(())
}

/// Derives a session's artifacts again (after an erasure changed what its
/// events read as): the stages whose inputs changed run, the transcript and
/// slides are kept. False when the session never had artifacts.
pub(crate) async fn rederive(app: &AppState, session: Uuid) -> anyhow::Result<bool> {
    let r = sqlx::query(
        "UPDATE artifact_jobs SET state = 'pending', attempts = 0, next_attempt_at = now(),
                updated_at = now()
          WHERE session_id = $1",
    )
    .bind(session)
    .execute(app.db())
    .await?;
    Ok(r.rows_affected() == 1)
}

struct Job {
    session_id: Uuid,
    tenant_id: Uuid,
    trigger_seq: i64,
    force: bool,
    attempts: i32,
}

/// Runs due jobs one at a time until `stop`.
pub(crate) async fn run_worker(app: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    tracing::info!("artifact worker running");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !stop.is_cancelled() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        loop {
            let job = match claim(&app).await {
                Ok(Some(j)) => j,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming an artifact job failed");
                    break;
                }
            };
            let span = tracing::info_span!("artifacts", session_id = %job.session_id, tenant_id = %job.tenant_id, attempt = job.attempts);
            let outcome = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = tracing::Instrument::instrument(run_job(&app, &job), span.clone()) => r,
            };
            let _enter = span.enter();
            if let Err(e) = finish(&app, &job, outcome).await {
                tracing::warn!(error = %e, "recording the job's outcome failed; its lease will expire");
            }
        }
    }
    Ok(())
}

async fn claim(app: &AppState) -> anyhow::Result<Option<Job>> {
    let row: Option<(Uuid, Uuid, i64, bool, i32)> = sqlx::query_as(
        "UPDATE artifact_jobs
            SET state = 'running', attempts = attempts + 1,
                next_attempt_at = now() + make_interval(secs => $1), updated_at = now()
          WHERE session_id = (
                SELECT session_id FROM artifact_jobs
                 WHERE state IN ('pending', 'running') AND next_attempt_at <= now()
                 ORDER BY next_attempt_at
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED)
      RETURNING session_id, tenant_id, trigger_seq, force, attempts",
    )
    .bind(LEASE.as_secs_f64())
    .fetch_optional(app.db())
    .await?;
    Ok(row.map(
        |(session_id, tenant_id, trigger_seq, force, attempts)| Job {
            session_id,
            tenant_id,
            trigger_seq,
            force,
            attempts,
        },
    ))
}

/// Why a job did not finish.
enum Outcome {
    Done,
    /// Not an error: an input is not there yet (the ingest is behind, the
    /// recording is not finalized).
    Wait(Duration, String),
    Failed(String),
}

async fn finish(app: &AppState, job: &Job, outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Done => {
            // a newer trigger (or a re-run) that came in meanwhile runs again
            sqlx::query(
                "UPDATE artifact_jobs
                    SET state = CASE WHEN trigger_seq > $2 THEN 'pending' ELSE 'done' END,
                        force = CASE WHEN trigger_seq > $2 THEN force ELSE false END,
                        attempts = 0, last_error = NULL, next_attempt_at = now(), updated_at = now()
                  WHERE session_id = $1",
            )
            .bind(job.session_id)
            .bind(job.trigger_seq)
            .execute(app.db())
            .await?;
            tracing::info!("artifacts ready");
        }
        Outcome::Wait(after, why) => {
            sqlx::query(
                "UPDATE artifact_jobs
                    SET state = 'pending', attempts = attempts - 1, last_error = $3,
                        next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
                  WHERE session_id = $1",
            )
            .bind(job.session_id)
            .bind(after.as_secs_f64())
            .bind(format!("waiting: {why}"))
            .execute(app.db())
            .await?;
            tracing::debug!(why, "artifact job waits");
        }
        Outcome::Failed(e) => {
            let delay = backoff(app, job.attempts);
            let state = if job.attempts >= MAX_ATTEMPTS {
                "failed"
            } else {
                "pending"
            };
            sqlx::query(
                "UPDATE artifact_jobs
                    SET state = $4, last_error = $3,
                        next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
                  WHERE session_id = $1",
            )
            .bind(job.session_id)
            .bind(delay.as_secs_f64())
            .bind(&e)
            .bind(state)
            .execute(app.db())
            .await?;
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, state, "artifact stage failed");
        }
    }
    Ok(())
}

/// 2 s, 4 s, 8 s... capped by `--artifact-retry-max-ms`.
fn backoff(app: &AppState, attempts: i32) -> Duration {
    let max = Duration::from_millis(app.config().artifact_retry_max_ms.max(100));
    let exp = Duration::from_secs(1u64 << attempts.clamp(1, 16) as u32);
    exp.min(max)
}

/// What every stage sees.
struct Ctx {
    tenant: TenantId,
    session: SessionId,
    events: Vec<Envelope>,
    recording: protocol::recording::Recording,
    duration_ms: u64,
    force: bool,
    /// The class's people who were erased: what is derived from events
    /// (timeline, chapters, highlights, index) is derived again when this
    /// changes.
    erased: Vec<Uuid>,
}

async fn run_job(app: &AppState, job: &Job) -> Outcome {
    match prepare(app, job).await {
        Ok(Ok(ctx)) => match stages(app, &ctx).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        },
        Ok(Err(wait)) => wait,
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}

async fn prepare(app: &AppState, job: &Job) -> anyhow::Result<Result<Ctx, Outcome>> {
    let row: (i64, Option<DateTime<Utc>>, DateTime<Utc>) =
        sqlx::query_as("SELECT last_seq, ended_at, started_at FROM sessions WHERE id = $1")
            .bind(job.session_id)
            .fetch_one(app.db())
            .await?;
    let (last_seq, ended_at, started_at) = row;
    if last_seq < job.trigger_seq {
        return Ok(Err(Outcome::Wait(
            Duration::from_secs(1),
            format!("events up to {} of {} ingested", last_seq, job.trigger_seq),
        )));
    }
    let tenant = TenantId::from_uuid(job.tenant_id);
    let session = SessionId::from_uuid(job.session_id);
    let events = store::read_all_typed(app.db(), app.vault(), tenant, session).await?;
    let recording = protocol::recording::Recording::from_events(&events);
    if recording.armed && recording.finalized.is_none() {
        let ended_for = ended_at
            .map(|e| (Utc::now() - e).to_std().unwrap_or_default())
            .unwrap_or_default();
        if ended_for < FINALIZE_WAIT {
            return Ok(Err(Outcome::Wait(
                Duration::from_secs(2),
                "the recording is not finalized yet".into(),
            )));
        }
        tracing::warn!("the recording was never finalized; using the segments stored");
    }
    let duration_ms = if recording.armed {
        recording.duration_ms()
    } else {
        ended_at
            .map(|e| (e - started_at).num_milliseconds().max(0) as u64)
            .unwrap_or(0)
    };
    let erased: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT DISTINCT k.user_id FROM participants p
           JOIN subject_keys k ON k.tenant_id = p.tenant_id AND k.user_id = p.user_id
          WHERE p.session_id = $1 AND k.erased_at IS NOT NULL ORDER BY 1",
    )
    .bind(job.session_id)
    .fetch_all(app.db())
    .await?;
    Ok(Ok(Ctx {
        tenant,
        session,
        events,
        recording,
        duration_ms,
        force: job.force,
        erased: erased.into_iter().map(|(u,)| u).collect(),
    }))
}

fn hash_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

async fn stored(app: &AppState, ctx: &Ctx, kind: &str) -> anyhow::Result<Option<(String, Value)>> {
    let mut row: Option<(String, Value)> = sqlx::query_as(
        "SELECT input_hash, body FROM artifacts WHERE session_id = $1 AND kind = $2 AND version = $3",
    )
    .bind(ctx.session.as_uuid())
    .bind(kind)
    .bind(version_of(kind))
    .fetch_optional(app.db())
    .await?;
    if let Some((_, body)) = row.as_mut() {
        open_artifact(app, ctx.tenant.as_uuid(), ctx.session.as_uuid(), kind, body).await?;
    }
    Ok(row)
}

/// A transcript's attributed words are stored sealed: every reader gets
/// them opened (an erased speaker's as the placeholder).
async fn open_artifact(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    kind: &str,
    body: &mut Value,
) -> anyhow::Result<()> {
    if kind == "transcript" {
        app.vault()
            .open_transcript(app.db(), tenant, session, body)
            .await?;
    }
    Ok(())
}

async fn put(
    app: &AppState,
    ctx: &Ctx,
    kind: &str,
    input_hash: &str,
    body: &Value,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO artifacts (session_id, tenant_id, kind, version, input_hash, body)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_id, kind, version)
         DO UPDATE SET input_hash = EXCLUDED.input_hash, body = EXCLUDED.body, created_at = now()",
    )
    .bind(ctx.session.as_uuid())
    .bind(ctx.tenant.as_uuid())
    .bind(kind)
    .bind(version_of(kind))
    .bind(input_hash)
    .bind(body)
    .execute(app.db())
    .await?;
    Ok(())
}

async fn stage_state(
    app: &AppState,
    ctx: &Ctx,
    stage: &str,
    state: &str,
    input_hash: Option<&str>,
    error: Option<&str>,
    detail: Value,
) -> anyhow::Result<()> {
    let version = STAGES
        .iter()
        .find(|(s, _)| *s == stage)
        .map(|s| s.1)
        .unwrap_or(1);
    sqlx::query(
        "INSERT INTO artifact_stages
           (session_id, tenant_id, stage, version, state, attempts, last_error, input_hash, detail, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'running' THEN 1 ELSE 0 END, $6, $7, $8, now(),
                 CASE WHEN $5 = 'running' THEN NULL ELSE now() END)
         ON CONFLICT (session_id, stage, version) DO UPDATE SET
           state = EXCLUDED.state,
           attempts = artifact_stages.attempts + CASE WHEN EXCLUDED.state = 'running' THEN 1 ELSE 0 END,
           last_error = EXCLUDED.last_error,
           input_hash = COALESCE(EXCLUDED.input_hash, artifact_stages.input_hash),
           detail = CASE WHEN EXCLUDED.state = 'running' THEN artifact_stages.detail ELSE EXCLUDED.detail END,
           started_at = CASE WHEN EXCLUDED.state = 'running' THEN now() ELSE artifact_stages.started_at END,
           finished_at = EXCLUDED.finished_at",
    )
    .bind(ctx.session.as_uuid())
    .bind(ctx.tenant.as_uuid())
    .bind(stage)
    .bind(version)
    .bind(state)
    .bind(error)
    .bind(input_hash)
    .bind(detail)
    .execute(app.db())
    .await?;
    Ok(())
}

/// Runs one stage: skipped when its artifact is current, else computed,
/// stored and its state recorded (a failure is recorded, then returned).
async fn stage<F, Fut>(
    app: &AppState,
    ctx: &Ctx,
    name: &str,
    input_hash: String,
    kinds: &[&str],
    run: F,
) -> anyhow::Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Vec<(String, Value)>, Value)>>,
{
    if !ctx.force {
        let mut current = true;
        if kinds.is_empty() {
            let done: Option<(String,)> = sqlx::query_as(
                "SELECT input_hash FROM artifact_stages
                  WHERE session_id = $1 AND stage = $2 AND state = 'done'",
            )
            .bind(ctx.session.as_uuid())
            .bind(name)
            .fetch_optional(app.db())
            .await?;
            current = done.is_some_and(|d| d.0 == input_hash);
        }
        for k in kinds {
            match stored(app, ctx, k).await? {
                Some((h, _)) if h == input_hash => {}
                _ => current = false,
            }
        }
        if current {
            return Ok(false);
        }
    }
    stage_state(
        app,
        ctx,
        name,
        "running",
        Some(&input_hash),
        None,
        json!({}),
    )
    .await?;
    let t0 = Instant::now();
    match run().await {
        Ok((outputs, mut detail)) => {
            for (kind, body) in &outputs {
                put(app, ctx, kind, &input_hash, body).await?;
            }
            if let Value::Object(m) = &mut detail {
                m.insert("elapsed_ms".into(), json!(t0.elapsed().as_millis() as u64));
            }
            stage_state(app, ctx, name, "done", Some(&input_hash), None, detail).await?;
            tracing::info!(
                stage = name,
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "stage done"
            );
            Ok(true)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            stage_state(
                app,
                ctx,
                name,
                "failed",
                Some(&input_hash),
                Some(&msg),
                json!({}),
            )
            .await?;
            Err(e.context(format!("stage {name}")))
        }
    }
}

async fn stages(app: &AppState, ctx: &Ctx) -> anyhow::Result<()> {
    // 1. raw extraction: the transcript, from the recording's audio
    let segs: Vec<String> = ctx
        .recording
        .segments
        .iter()
        .map(|s| format!("{}:{}:{}:{}", s.index, s.start_ms, s.end_ms, s.sha256))
        .collect();
    let model = app.config().asr_model.clone();
    let model_id = transcribe::model_identity(&model);
    let t_hash = hash_of(&[
        b"transcript",
        segs.join(",").as_bytes(),
        model_id.as_bytes(),
        ctx.duration_ms.to_string().as_bytes(),
    ]);
    if ctx.recording.segments.is_empty() {
        let empty = Transcript {
            model: String::new(),
            duration_ms: ctx.duration_ms,
            segments: Vec::new(),
        };
        stage(
            app,
            ctx,
            "transcript",
            t_hash.clone(),
            &["transcript"],
            || async {
                Ok((
                    vec![("transcript".to_owned(), serde_json::to_value(&empty)?)],
                    json!({ "skipped": "no recording" }),
                ))
            },
        )
        .await?;
    } else {
        let objects = app.objects().clone();
        let work = app
            .config()
            .data_dir
            .join("tmp")
            .join(format!("asr-{}", ctx.session));
        let threads = app.config().asr_threads;
        stage(
            app,
            ctx,
            "transcript",
            t_hash.clone(),
            &["transcript"],
            || async move {
                let (pcm, audio_ms) =
                    transcribe::recording_pcm(&objects, &ctx.recording, ctx.duration_ms, &work)
                        .await?;
                let t0 = Instant::now();
                let mut t = transcribe::transcribe(model, pcm, threads).await?;
                let secs = t0.elapsed().as_secs_f64();
                // who spoke: from the raw per-participant tracks
                if let Some((_, manifest)) = &ctx.recording.finalized {
                    let voices = transcribe::voices(&objects, manifest, audio_ms, &work).await;
                    let _ = tokio::fs::remove_dir_all(&work).await;
                    transcribe::attribute(&mut t, &voices?);
                }
                let attributed = t.segments.iter().filter(|s| s.speaker.is_some()).count();
                let rtf = (audio_ms >= 1000).then(|| secs / (audio_ms as f64 / 1000.0));
                let detail = json!({
                    "model": t.model,
                    "audio_ms": audio_ms,
                    "transcribe_ms": (secs * 1000.0) as u64,
                    "rtf": rtf,
                    "words": t.words().count(),
                    "attributed_segments": attributed,
                });
                tracing::info!(
                    audio_ms,
                    rtf = rtf.unwrap_or(0.0),
                    words = t.words().count(),
                    attributed,
                    "transcribed"
                );
                // a speaker's words are stored sealed under their key
                let seats: HashMap<String, Uuid> = ctx
                    .events
                    .iter()
                    .filter_map(|e| match &e.body {
                        EventBody::ParticipantJoined {
                            participant_id,
                            user_id: Some(u),
                            ..
                        } => Some((participant_id.to_string(), u.as_uuid())),
                        _ => None,
                    })
                    .collect();
                let mut value = serde_json::to_value(&t)?;
                app.vault()
                    .seal_transcript(
                        app.db(),
                        ctx.tenant.as_uuid(),
                        ctx.session.as_uuid(),
                        &mut value,
                        &seats,
                    )
                    .await?;
                Ok((vec![("transcript".to_owned(), value)], detail))
            },
        )
        .await?;
    }
    let transcript: Transcript = match stored(app, ctx, "transcript").await? {
        Some((_, v)) => serde_json::from_value(v)?,
        None => anyhow::bail!("the transcript is missing after its stage"),
    };

    // 1b. slide text of every deck shown
    let decks: BTreeSet<DeckId> = ctx
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SlideChanged { deck_id, .. } => Some(*deck_id),
            _ => None,
        })
        .collect();
    let deck_list: Vec<String> = decks.iter().map(|d| d.to_string()).collect();
    let s_hash = hash_of(&[b"slides", deck_list.join(",").as_bytes()]);
    stage(app, ctx, "slides", s_hash.clone(), &["slides"], || async {
        let mut out = Vec::new();
        for d in &decks {
            let pages: Vec<(i32, String)> = sqlx::query_as(
                "SELECT idx, text FROM deck_pages WHERE deck_id = $1 AND tenant_id = $2 ORDER BY idx",
            )
            .bind(d.as_uuid())
            .bind(ctx.tenant.as_uuid())
            .fetch_all(app.db())
            .await?;
            out.push(json!({
                "deck_id": d,
                "pages": pages.iter().map(|(i, t)| json!({
                    "index": i, "text": t, "title": derive::slide_title(t),
                })).collect::<Vec<_>>(),
            }));
        }
        Ok((
            vec![("slides".to_owned(), json!({ "decks": out }))],
            json!({ "decks": decks.len() }),
        ))
    })
    .await?;
    let slides_body = stored(app, ctx, "slides")
        .await?
        .map(|s| s.1)
        .unwrap_or(Value::Null);
    let mut slides = SlideText::new();
    for d in slides_body["decks"].as_array().into_iter().flatten() {
        let Ok(deck) = serde_json::from_value::<DeckId>(d["deck_id"].clone()) else {
            continue;
        };
        for p in d["pages"].as_array().into_iter().flatten() {
            if let (Some(i), Some(t)) = (p["index"].as_u64(), p["text"].as_str()) {
                slides.insert((deck, i as u32), t.to_owned());
            }
        }
    }

    // 2. temporal alignment: events and words on the media clock
    let clock = Clock::from_events(&ctx.events);
    let last_seq = ctx.events.last().map(|e| e.seq.get()).unwrap_or(0);
    let erased: Vec<u8> = ctx.erased.iter().flat_map(|u| *u.as_bytes()).collect();
    let tl_hash = hash_of(&[
        b"timeline",
        last_seq.to_string().as_bytes(),
        t_hash.as_bytes(),
        s_hash.as_bytes(),
        &erased,
    ]);
    let markers = derive::markers(&ctx.events, &clock, &slides);
    stage(
        app,
        ctx,
        "timeline",
        tl_hash.clone(),
        &["timeline"],
        || async {
            let body = json!({
                "duration_ms": ctx.duration_ms,
                "clock": "recording media time, ms",
                "markers": markers,
                "words": transcript.words().count(),
                "gaps": ctx.recording.gaps,
            });
            Ok((
                vec![("timeline".to_owned(), body)],
                json!({ "markers": markers.len() }),
            ))
        },
    )
    .await?;

    // 3. knowledge: chapters, highlights, summary
    let k_hash = hash_of(&[b"knowledge", tl_hash.as_bytes()]);
    stage(
        app,
        ctx,
        "knowledge",
        k_hash.clone(),
        &["chapters", "highlights", "summary"],
        || async {
            let chapters = derive::chapters(&markers, &transcript, &slides, ctx.duration_ms);
            let highlights = derive::highlights(&ctx.events, &clock, ctx.duration_ms);
            let shown: Vec<String> = markers
                .iter()
                .filter(|m| m.kind == "slide.changed")
                .filter_map(|m| {
                    let deck: DeckId = serde_json::from_value(m.detail["deck_id"].clone()).ok()?;
                    slides
                        .get(&(deck, m.detail["index"].as_u64()? as u32))
                        .cloned()
                })
                .collect();
            let summary =
                derive::summary(&transcript, &shown, &chapters, &highlights, ctx.duration_ms);
            let detail = json!({ "chapters": chapters.len(), "highlights": highlights.len() });
            Ok((
                vec![
                    ("chapters".to_owned(), json!({ "chapters": chapters })),
                    ("highlights".to_owned(), json!({ "highlights": highlights })),
                    ("summary".to_owned(), serde_json::to_value(&summary)?),
                ],
                detail,
            ))
        },
    )
    .await?;

    // 4. the search index, for a published replay
    match crate::replays::replay_of(app, ctx.session).await? {
        Some(replay) => {
            let i_hash = hash_of(&[
                b"index",
                k_hash.as_bytes(),
                replay.id.as_bytes(),
                replay.visibility.as_bytes(),
            ]);
            stage(app, ctx, "index", i_hash, &[], || async {
                let docs = crate::replays::index_replay(app, &replay).await?;
                Ok((vec![], json!({ "documents": docs })))
            })
            .await?;
        }
        None => {
            stage_state(
                app,
                ctx,
                "index",
                "skipped",
                None,
                None,
                json!({ "reason": "not published" }),
            )
            .await?;
        }
    }
    Ok(())
}

/// The newest version of an artifact of a session.
pub(crate) async fn artifact(
    app: &AppState,
    session: SessionId,
    kind: &str,
) -> anyhow::Result<Option<Value>> {
    let row: Option<(Uuid, Value)> = sqlx::query_as(
        "SELECT tenant_id, body FROM artifacts WHERE session_id = $1 AND kind = $2 ORDER BY version DESC LIMIT 1",
    )
    .bind(session.as_uuid())
    .bind(kind)
    .fetch_optional(app.db())
    .await?;
    let Some((tenant, mut body)) = row else {
        return Ok(None);
    };
    open_artifact(app, tenant, session.as_uuid(), kind, &mut body).await?;
    Ok(Some(body))
}
