//! Data-subject requests: an admin exports everything the platform holds
//! about one person (GDPR access, FERPA inspection) as a job that writes a
//! machine-readable archive, downloaded through a short-lived signed link.
//!
//! The archive is a ZIP. Its `export.json` (`classroom.subject-export/2`):
//! the account and its roles, enrollments, every class sat in (seat, role,
//! joined and left), every class event the person's seats caused or that
//! names them (chat, questions and upvotes, poll votes, private notes,
//! hands, consent given and withdrawn, media, captions of their voice),
//! those events sorted into sections, what they said in recorded classes
//! (the transcript segments attributed to them), the replays they opened or
//! searched, the audit entries of what they did, and a list of recording
//! clips: each stretch of a recorded class
//! in which the person appears ([`clips`]) is cut out of the class's MP4
//! into `clips/<session>/<n>.mp4` beside it. The archive is stored sealed to
//! the tenant's key.
//!
//! Erasure ([`erase`]) is the second kind of job: it shreds the person's data
//! key and purges every derived copy.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{IdempotencyKey, PathIds, QueryParams};
use crate::http::throttle::ClientAddr;
use crate::idempotency;
use crate::identity::Auth;

pub(crate) mod clips;
pub(crate) mod erase;

/// The archive's format name.
pub(crate) const FORMAT: &str = "classroom.subject-export/2";
/// How long a download link works.
const LINK_TTL_SECS: i64 = 15 * 60;
/// A job running longer than this (its core died) is taken up again.
const LEASE: Duration = Duration::from_secs(10 * 60);
const MAX_ATTEMPTS: i32 = 3;

/// A subject job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubjectJob {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// `export` or `erase`.
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The archive's size and SHA-256, once done.
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    /// A link to the archive, valid 15 minutes, once an export is done
    /// (and until the person is erased).
    pub download_url: Option<String>,
    /// What a finished erasure did.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

type JobRow = (
    Uuid,
    String,
    String,
    Uuid,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<Value>,
);

fn scope(id: Uuid) -> String {
    format!("subject-export:{id}")
}

async fn job_view(app: &AppState, r: JobRow) -> ApiResult<SubjectJob> {
    let (id, kind, state, user_id, created_at, finished_at, error, bytes, sha256, result) = r;
    let download_url = if kind == "export" && state == "done" && bytes.is_some() {
        let exp = Utc::now().timestamp() + LINK_TTL_SECS;
        let key = app.keys().sign_asset(&scope(id), exp)?;
        Some(format!(
            "{}/subjects/jobs/{id}/download?key={key}",
            app.config().public_url.trim_end_matches('/')
        ))
    } else {
        None
    };
    Ok(SubjectJob {
        id,
        kind,
        state,
        user_id,
        created_at,
        finished_at,
        error,
        bytes,
        sha256,
        download_url,
        result,
    })
}

const JOB_COLUMNS: &str =
    "id, kind, state, user_id, created_at, finished_at, error, bytes, sha256, result";

/// Starts an export of everything held about a user of the tenant (admins).
#[utoipa::path(post, path = "/subjects/{user_id}/export", operation_id = "export_subject", tag = "privacy",
    params(
        ("user_id" = Uuid, Path, description = "The person"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key answers the first job again"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued: follow it at `GET /subjects/jobs/{id}`", body = SubjectJob),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such user in the tenant", body = ApiErrorBody),
        (status = 409, description = "The person was erased (`already_erased`), or the `Idempotency-Key` was used for another request, or its first call still runs", body = ApiErrorBody),
        (status = 429, description = "Too many subject requests (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn export(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    ids: PathIds,
) -> ApiResult<Response> {
    auth.require_admin()?;
    let user: Uuid = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Subject)?;
    queue(&app, &auth, key, user, "export").await
}

/// Queues a job of `kind` about `user` (an account of the caller's tenant;
/// not yet erased), audited as `subject.<kind>_requested`; a retry with the
/// same `Idempotency-Key` answers the first job again.
pub(crate) async fn queue(
    app: &AppState,
    auth: &Auth,
    key: Option<String>,
    user: Uuid,
    kind: &'static str,
) -> ApiResult<Response> {
    let route = format!("POST /subjects/{user}/{kind}");
    idempotency::run(app, auth, key, &route, b"", || async {
        let mut tx = app.db().begin().await?;
        let known: Option<(Option<DateTime<Utc>>,)> =
            sqlx::query_as("SELECT erased_at FROM users WHERE id = $1 AND tenant_id = $2")
                .bind(user)
                .bind(auth.tenant_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        let (erased_at,) = known.ok_or(ApiError::not_found("user"))?;
        if erased_at.is_some() {
            return Err(ApiError::conflict(
                "already_erased",
                "this person was erased; nothing is held about them any more",
            ));
        }
        let id = Uuid::now_v7();
        let row: JobRow = sqlx::query_as(&format!(
            "INSERT INTO subject_jobs (id, tenant_id, user_id, kind, requested_by)
             VALUES ($1, $2, $3, $4, $5) RETURNING {JOB_COLUMNS}"
        ))
        .bind(id)
        .bind(auth.tenant_id.as_uuid())
        .bind(user)
        .bind(kind)
        .bind(auth.user_id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            &format!("subject.{kind}_requested"),
            "user",
            &user.to_string(),
            json!({ "job_id": id }),
        )
        .await?;
        tx.commit().await?;
        app.subject_jobs_wake();
        let job = job_view(app, row).await?;
        Ok((
            StatusCode::ACCEPTED,
            serde_json::to_value(job).map_err(anyhow::Error::from)?,
        ))
    })
    .await
}

/// A subject job of the tenant (admins); a link to the archive once done.
#[utoipa::path(get, path = "/subjects/jobs/{id}", operation_id = "get_subject_job", tag = "privacy",
    params(("id" = Uuid, Path, description = "The job")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = SubjectJob),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such job in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn job(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<SubjectJob>> {
    auth.require_admin()?;
    let id: Uuid = ids.get(0)?;
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM subject_jobs WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let row = row.ok_or(ApiError::not_found("job"))?;
    Ok(Json(job_view(&app, row).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    /// The signed key from the job's `download_url`.
    key: String,
}

/// The archive of a finished export, through the signed link (no account:
/// the link is the credential, for 15 minutes). Every download is audited.
#[utoipa::path(get, path = "/subjects/jobs/{id}/download", operation_id = "download_subject_export", tag = "privacy",
    params(("id" = Uuid, Path, description = "The job"), DownloadQuery),
    responses(
        (status = 200, description = "The archive (a ZIP of `export.json` and the person's recording clips, as an attachment)", content_type = "application/zip"),
        (status = 400, description = "The id is not a UUID (`invalid_id`), or no key", body = ApiErrorBody),
        (status = 401, description = "A bad or expired key (`invalid_key`)", body = ApiErrorBody),
        (status = 404, description = "No such finished export", body = ApiErrorBody),
        (status = 429, description = "Too many requests from this address to the routes that need no account; see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn download(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    ids: PathIds,
    QueryParams(q): QueryParams<DownloadQuery>,
) -> ApiResult<Response> {
    app.throttles().public(from)?;
    let id: Uuid = ids.get(0)?;
    if q.key.len() > 2048 || !app.keys().verify_asset(&q.key, &scope(id)) {
        return Err(ApiError::unauthorized(
            "invalid_key",
            "the download link is invalid or has expired",
        ));
    }
    let row: Option<(Uuid, Uuid, Option<String>)> = sqlx::query_as(
        "SELECT tenant_id, user_id, object_key FROM subject_jobs WHERE id = $1 AND state = 'done'",
    )
    .bind(id)
    .fetch_optional(app.db())
    .await?;
    let (tenant, user, Some(key)) = row.ok_or(ApiError::not_found("export"))? else {
        return Err(ApiError::not_found("export"));
    };
    // streamed out of the store: an archive with clips can be large
    let got = app
        .objects()
        .get(&object_store::path::Path::from(key.as_str()))
        .await
        .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
    let size = got.meta.size;
    let mut tx = app.db().begin().await?;
    crate::audit::record_tx(
        &mut tx,
        tenant.into(),
        None,
        "subject.export_downloaded",
        "user",
        &user.to_string(),
        json!({ "job_id": id, "bytes": size }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"export-{user}.zip\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        axum::body::Body::from_stream(got.into_stream()),
    )
        .into_response())
}

/// Runs queued jobs until `stop`: woken by new jobs, and every few seconds
/// for jobs whose core died mid-way.
pub(crate) async fn run_worker(app: AppState, stop: CancellationToken) {
    loop {
        match claim(&app).await {
            Ok(Some((id, tenant, user, attempts, kind))) => {
                let span = tracing::info_span!("subject_job", job_id = %id, kind = %kind, attempt = attempts);
                let result = async {
                    if kind == "erase" {
                        erase::run(&app, id, tenant, user).await.map(Done::Erased)
                    } else {
                        build_and_store(&app, id, tenant, user)
                            .await
                            .map(|(key, bytes, sha)| Done::Exported { key, bytes, sha })
                    }
                }
                .instrument(span)
                .await;
                if let Err(e) = finish(&app, id, attempts, result).await {
                    tracing::warn!(job_id = %id, error = %e, "recording a subject job's end");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming subject jobs"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = app.subject_jobs_woken() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// What a job made.
enum Done {
    Exported {
        key: String,
        bytes: i64,
        sha: String,
    },
    Erased(Value),
}

async fn claim(app: &AppState) -> Result<Option<(Uuid, Uuid, Uuid, i32, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE subject_jobs SET state = 'running', started_at = now(), attempts = attempts + 1
          WHERE id = (SELECT id FROM subject_jobs
                       WHERE state = 'queued'
                          OR (state = 'running' AND started_at < now() - make_interval(secs => $1))
                       ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)
          RETURNING id, tenant_id, user_id, attempts, kind",
    )
    .bind(LEASE.as_secs_f64())
    .fetch_optional(app.db())
    .await
}

async fn finish(
    app: &AppState,
    id: Uuid,
    attempts: i32,
    result: anyhow::Result<Done>,
) -> Result<(), sqlx::Error> {
    match result {
        Ok(Done::Erased(summary)) => {
            tracing::info!(job_id = %id, "subject erased");
            sqlx::query(
                "UPDATE subject_jobs SET state = 'done', finished_at = now(), error = NULL,
                        result = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(summary)
            .execute(app.db())
            .await?;
        }
        Ok(Done::Exported { key, bytes, sha }) => {
            tracing::info!(job_id = %id, bytes, "subject export written");
            sqlx::query(
                "UPDATE subject_jobs SET state = 'done', finished_at = now(), error = NULL,
                        object_key = $2, bytes = $3, sha256 = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(key)
            .bind(bytes)
            .bind(sha)
            .execute(app.db())
            .await?;
        }
        Err(e) => {
            let state = if attempts >= MAX_ATTEMPTS {
                "failed"
            } else {
                "queued"
            };
            tracing::warn!(job_id = %id, attempts, state, error = %e, "subject job failed");
            sqlx::query(
                "UPDATE subject_jobs SET state = $2, error = $3,
                        finished_at = CASE WHEN $2 = 'failed' THEN now() END WHERE id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(e.to_string())
            .execute(app.db())
            .await?;
        }
    }
    Ok(())
}

/// Writes the archive into object storage: (key, bytes, sha256). The
/// archive is a ZIP: `export.json` and the recording clips the person
/// appears in, under `clips/`.
async fn build_and_store(
    app: &AppState,
    id: Uuid,
    tenant: Uuid,
    user: Uuid,
) -> anyhow::Result<(String, i64, String)> {
    let mut archive = archive(app, tenant, user).await?;
    let work = app
        .config()
        .data_dir
        .join("tmp")
        .join(format!("export-{id}"));
    let _ = tokio::fs::remove_dir_all(&work).await;
    tokio::fs::create_dir_all(&work).await?;
    let result = async {
        let clips = clips_of(app, tenant, user, &work).await?;
        archive["recordings"] = json!({
            "clips": clips.iter().map(|c| &c.info).collect::<Vec<_>>(),
            "clock": "recording media time, ms; a clip starts at the keyframe at or before from_ms",
        });
        let zip_path = work.join("export.zip");
        let json = serde_json::to_vec_pretty(&archive)?;
        let files: Vec<(String, std::path::PathBuf)> = clips
            .iter()
            .map(|c| (c.name.clone(), c.path.clone()))
            .collect();
        let out = zip_path.clone();
        tokio::task::spawn_blocking(move || write_zip(&out, &json, &files)).await??;
        let bytes = tokio::fs::read(&zip_path).await?;
        anyhow::Ok(bytes)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    let bytes = result?;
    // under exports/<tenant>/: sealed to the tenant's key in the store
    let key = format!("exports/{tenant}/{id}.zip");
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let size = bytes.len() as i64;
    app.objects()
        .put(&object_store::path::Path::from(key.as_str()), bytes.into())
        .await?;
    Ok((key, size, sha))
}

fn write_zip(
    out: &std::path::Path,
    json: &[u8],
    clips: &[(String, std::path::PathBuf)],
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(out)?);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("export.json", deflated)?;
    zip.write_all(json)?;
    // video does not compress: stored as it is
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, path) in clips {
        zip.start_file(name.as_str(), stored)?;
        std::io::copy(&mut std::fs::File::open(path)?, &mut zip)?;
    }
    zip.finish()?.sync_all()?;
    Ok(())
}

/// A clip cut for the archive.
struct Clip {
    /// Its name in the archive.
    name: String,
    path: std::path::PathBuf,
    info: Value,
}

/// How long an export waits for a finalized recording to be joined into
/// one file before it fails (and is retried).
const JOIN_WAIT: Duration = Duration::from_secs(120);

/// The clips of every recorded class the person appears in.
async fn clips_of(
    app: &AppState,
    tenant: Uuid,
    user: Uuid,
    work: &std::path::Path,
) -> anyhow::Result<Vec<Clip>> {
    use protocol::{ParticipantId, SessionId, TenantId};
    let seats: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT session_id, id FROM participants WHERE user_id = $1 AND tenant_id = $2
          ORDER BY joined_at",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(app.db())
    .await?;
    let mut by_session: BTreeMap<Uuid, std::collections::HashSet<ParticipantId>> = BTreeMap::new();
    for (session, seat) in seats {
        by_session
            .entry(session)
            .or_default()
            .insert(ParticipantId::from_uuid(seat));
    }
    let tenant_id = TenantId::from_uuid(tenant);
    let mut out = Vec::new();
    for (session, seats) in by_session {
        let sid = SessionId::from_uuid(session);
        let events =
            crate::events::store::read_all_typed(app.db(), app.vault(), tenant_id, sid).await?;
        let rec = protocol::recording::Recording::from_events(&events);
        if rec.finalized.is_none() || rec.segments.is_empty() {
            continue;
        }
        let stretches = clips::appearances(&events, &seats, rec.duration_ms());
        if stretches.is_empty() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + JOIN_WAIT;
        while !crate::recordings::is_joined(app, tenant_id, sid).await {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the recording of class {session} is not joined into one file yet"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mp4 = work.join(format!("{session}.mp4"));
        crate::recordings::download_joined(app, tenant_id, sid, &mp4).await?;
        for (n, s) in stretches.iter().enumerate() {
            let name = format!("clips/{session}/{n:03}.mp4");
            let path = work.join(format!("{session}-{n:03}.mp4"));
            clips::cut(&mp4, *s, &path).await?;
            let data = tokio::fs::read(&path).await?;
            out.push(Clip {
                info: json!({
                    "session_id": session, "file": name,
                    "from_ms": s.from_ms, "to_ms": s.to_ms,
                    "bytes": data.len(), "sha256": hex::encode(sha2::Sha256::digest(&data)),
                }),
                name,
                path,
            });
        }
        let _ = tokio::fs::remove_file(&mp4).await;
        tracing::info!(session_id = %session, clips = stretches.len(), "clips cut for an export");
    }
    Ok(out)
}

/// The event types sorted into the archive's sections.
const SECTIONS: &[(&str, &[&str])] = &[
    ("chat", &["chat.message", "chat.deleted"]),
    ("questions", &["question.asked", "question.upvoted"]),
    ("poll_votes", &["poll.voted"]),
    ("notes", &["note.saved"]),
    ("hands", &["hand.raised", "hand.lowered"]),
    ("consent", &["consent.changed"]),
    ("attendance", &["participant.joined", "participant.left"]),
    ("captions", &["caption.segment"]),
];

/// Everything held about `user` of `tenant`.
pub(crate) async fn archive(app: &AppState, tenant: Uuid, user: Uuid) -> anyhow::Result<Value> {
    let (db, vault) = (app.db(), app.vault());
    let account: Option<(String, String, bool, bool, DateTime<Utc>)> = sqlx::query_as(
        "SELECT email, display_name, disabled, minor, created_at FROM users WHERE id = $1 AND tenant_id = $2",
    )
    .bind(user)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    let (email, display_name, disabled, minor, created_at) =
        account.ok_or_else(|| anyhow::anyhow!("the user is gone"))?;
    let roles: Vec<(String,)> = sqlx::query_as(
        "SELECT role::text FROM role_bindings WHERE user_id = $1 AND tenant_id = $2 ORDER BY 1",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let enrollments: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT c.id, c.title, m.role::text FROM course_members m
           JOIN courses c ON c.id = m.course_id
          WHERE m.user_id = $1 AND c.tenant_id = $2 ORDER BY c.title",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let seats: Vec<(
        Uuid,
        Uuid,
        String,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    )> = sqlx::query_as(
        "SELECT p.id, p.session_id, s.title, p.role, p.joined_at, p.left_at
               FROM participants p JOIN sessions s ON s.id = p.session_id
              WHERE p.user_id = $1 AND p.tenant_id = $2 ORDER BY p.joined_at",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let seat_ids: Vec<String> = seats.iter().map(|s| s.0.to_string()).collect();
    let events: Vec<(Uuid, Uuid, i64, String, DateTime<Utc>, Value)> = sqlx::query_as(
        "SELECT event_id, session_id, seq, type, occurred_at, payload FROM session_state_events
          WHERE tenant_id = $1
            AND (payload->>'participant_id' = ANY($2)
                 OR actor->>'participant_id' = ANY($2)
                 OR actor->>'user_id' = $3
                 OR payload->>'user_id' = $3
                 OR payload->>'speaker' = ANY($2))
          ORDER BY session_id, seq",
    )
    .bind(tenant)
    .bind(&seat_ids)
    .bind(user.to_string())
    .fetch_all(db)
    .await?;
    let views: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT replay_id, via, action, at FROM replay_access_log
          WHERE user_id = $1 AND tenant_id = $2 ORDER BY at",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let actions: Vec<(DateTime<Utc>, String, String, String)> = sqlx::query_as(
        "SELECT at, action, target_type, target_id FROM audit_log
          WHERE actor_id = $1 AND tenant_id = $2 ORDER BY chain_seq",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(db)
    .await?;

    // what they said in recorded classes: the transcript segments
    // attributed to their seats (opened: sealed under their key at rest)
    let sessions: std::collections::BTreeSet<Uuid> = seats.iter().map(|s| s.1).collect();
    let mut spoken = Vec::new();
    for session in sessions {
        let sid = protocol::SessionId::from_uuid(session);
        let Some(body) = crate::artifacts::pipeline::artifact(app, sid, "transcript").await? else {
            continue;
        };
        for seg in body["segments"].as_array().into_iter().flatten() {
            if seg["speaker"]
                .as_str()
                .is_some_and(|s| seat_ids.iter().any(|x| x == s))
            {
                spoken.push(json!({
                    "session_id": session, "start_ms": seg["start_ms"], "end_ms": seg["end_ms"],
                    "text": seg["text"], "clock": "recording media time, ms",
                }));
            }
        }
    }

    let mut opened = Vec::with_capacity(events.len());
    for (event_id, session_id, seq, ty, at, mut payload) in events {
        vault
            .open_payload(db, tenant, event_id, &ty, &mut payload)
            .await?;
        opened.push(json!({ "session_id": session_id, "seq": seq, "type": ty, "occurred_at": at, "payload": payload }));
    }
    let events = opened;
    let mut sections: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for (name, types) in SECTIONS {
        sections.insert(
            name,
            events
                .iter()
                .filter(|e| e["type"].as_str().is_some_and(|t| types.contains(&t)))
                .collect(),
        );
    }
    Ok(json!({
        "format": FORMAT,
        "generated_at": Utc::now(),
        "user": {
            "id": user, "email": email, "display_name": display_name,
            "disabled": disabled, "minor": minor, "created_at": created_at,
            "roles": roles.into_iter().map(|(r,)| r).collect::<Vec<_>>(),
        },
        "enrollments": enrollments.into_iter().map(|(id, title, role)| json!({ "course_id": id, "course_title": title, "role": role })).collect::<Vec<_>>(),
        "classes": seats.iter().map(|(pid, sid, title, role, joined, left)| json!({
            "session_id": sid, "title": title, "participant_id": pid, "role": role,
            "joined_at": joined, "left_at": left,
        })).collect::<Vec<_>>(),
        "sections": sections,
        "spoken": spoken,
        "events": events,
        "replay_access": views.into_iter().map(|(r, via, action, at)| json!({ "replay_id": r, "via": via, "action": action, "at": at })).collect::<Vec<_>>(),
        "audit": actions.into_iter().map(|(at, action, tt, tid)| json!({ "at": at, "action": action, "target_type": tt, "target_id": tid })).collect::<Vec<_>>(),
        "recordings": { "clips": [] },
    }))
}
