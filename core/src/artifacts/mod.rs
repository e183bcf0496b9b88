//! After the class: the artifact pipeline (spec §7-8) and the routes that
//! serve what it made.
//!
//! - [`pipeline`]: JetStream trigger → jobs → stages (transcript, slides,
//!   timeline, knowledge, index), idempotent and versioned.
//! - [`derive`]: the pure derivations (media clock, markers, chapters,
//!   highlights, summary, WebVTT).
//! - `transcribe`: the recording's audio through Whisper.

pub(crate) mod derive;
pub(crate) mod pipeline;
mod transcribe;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protocol::SessionId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{PathIds, QueryParams};
use crate::identity::Auth;
use crate::orchestration::sessions::{load_session, seat_of};

/// Staff of the session's tenant and the people who were in the class.
async fn may_read(app: &AppState, auth: &Auth, session: SessionId) -> ApiResult<()> {
    load_session(app, auth, session).await?;
    if auth.role.is_staff() || seat_of(app, auth, session).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_a_participant",
            "only the class's staff and participants may read its artifacts",
        ))
    }
}

/// The newest version of a session's artifact, or a 409 saying the pipeline
/// has not made it yet.
pub(crate) async fn require(app: &AppState, session: SessionId, kind: &str) -> ApiResult<Value> {
    pipeline::artifact(app, session, kind)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "artifacts_pending",
                format!("the {kind} is not ready yet; GET /sessions/{session}/artifacts tells where the pipeline is"),
            )
        })
}

/// The artifact job of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ArtifactJob {
    /// pending, running, done or failed
    pub state: String,
    /// The event seq that (last) triggered the job.
    pub trigger_seq: i64,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One stage of the pipeline (transcript, slides, timeline, knowledge, index).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ArtifactStage {
    pub stage: String,
    pub version: i32,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// What the stage did (counts, timings, why it was skipped).
    pub detail: Value,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One stored version of an artifact.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ArtifactVersion {
    /// transcript, slides, timeline, chapters, highlights or summary
    pub kind: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
}

/// Where the artifact pipeline is for a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ArtifactStatus {
    pub session_id: Uuid,
    /// The job's state, or `not_started`.
    pub state: String,
    /// Null before the class has ended.
    pub job: Option<ArtifactJob>,
    /// In pipeline order.
    pub stages: Vec<ArtifactStage>,
    pub artifacts: Vec<ArtifactVersion>,
}

/// `GET /sessions/{id}/artifacts`: the pipeline's state for the session.
#[utoipa::path(get, path = "/sessions/{id}/artifacts", operation_id = "artifact_status", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "The pipeline's job, stages and stored artifacts", body = ArtifactStatus),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn status(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<ArtifactStatus>> {
    let id: SessionId = ids.get(0)?;
    may_read(&app, &auth, id).await?;
    Ok(Json(status_of(&app, id).await?))
}

pub(crate) async fn status_of(app: &AppState, id: SessionId) -> ApiResult<ArtifactStatus> {
    type JobRow = (
        String,
        i64,
        i32,
        DateTime<Utc>,
        Option<String>,
        DateTime<Utc>,
    );
    let job: Option<JobRow> = sqlx::query_as(
        "SELECT state, trigger_seq, attempts, next_attempt_at, last_error, updated_at
           FROM artifact_jobs WHERE session_id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    type StageRow = (
        String,
        i32,
        String,
        i32,
        Option<String>,
        Value,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let stages: Vec<StageRow> = sqlx::query_as(
        "SELECT stage, version, state, attempts, last_error, detail, started_at, finished_at
           FROM artifact_stages WHERE session_id = $1",
    )
    .bind(id.as_uuid())
    .fetch_all(app.db())
    .await?;
    let artifacts: Vec<(String, i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT kind, version, created_at FROM artifacts WHERE session_id = $1 ORDER BY kind, version",
    )
    .bind(id.as_uuid())
    .fetch_all(app.db())
    .await?;
    let order = |s: &str| {
        pipeline::STAGES
            .iter()
            .position(|(n, _)| *n == s)
            .unwrap_or(usize::MAX)
    };
    let mut stages = stages;
    stages.sort_by_key(|s| (order(&s.0), s.1));
    let job = job.map(|j| ArtifactJob {
        state: j.0,
        trigger_seq: j.1,
        attempts: j.2,
        next_attempt_at: j.3,
        last_error: j.4,
        updated_at: j.5,
    });
    Ok(ArtifactStatus {
        session_id: id.as_uuid(),
        state: job
            .as_ref()
            .map_or_else(|| "not_started".to_owned(), |j| j.state.clone()),
        job,
        stages: stages
            .into_iter()
            .map(|s| ArtifactStage {
                stage: s.0,
                version: s.1,
                state: s.2,
                attempts: s.3,
                last_error: s.4,
                detail: s.5,
                started_at: s.6,
                finished_at: s.7,
            })
            .collect(),
        artifacts: artifacts
            .into_iter()
            .map(|a| ArtifactVersion {
                kind: a.0,
                version: a.1,
                created_at: a.2,
            })
            .collect(),
    })
}

/// `POST /sessions/{id}/artifacts/rerun` (staff): every stage runs again,
/// even where its inputs did not change (a new model, a fixed bug).
#[utoipa::path(post, path = "/sessions/{id}/artifacts/rerun", operation_id = "rerun_artifacts", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Queued; the pipeline's state", body = ArtifactStatus),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher or admin", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The class is still live", body = ApiErrorBody),
    ))]
pub(crate) async fn rerun(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<ArtifactStatus>> {
    auth.require_staff()?;
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    if row.is_live() {
        return Err(ApiError::conflict(
            "session_live",
            "artifacts are made after the class ends",
        ));
    }
    pipeline::enqueue(&app, row.tenant_id, row.id, row.last_seq, true).await?;
    let mut tx = app.db().begin().await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "artifacts.rerun",
        "session",
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(status_of(&app, id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TranscriptQuery {
    /// json (the default) or vtt (WebVTT captions)
    #[serde(default)]
    format: Option<String>,
}

/// `GET /sessions/{id}/transcript` (`?format=vtt` for WebVTT).
#[utoipa::path(get, path = "/sessions/{id}/transcript", operation_id = "session_transcript", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session"), TranscriptQuery),
    responses(
        (status = 200, description = "The transcript: JSON, or WebVTT with `format=vtt`", content(
            (derive::Transcript = "application/json"),
            (String = "text/vtt"),
        )),
        (status = 400, description = "Invalid session id, unknown query parameter or format", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made the transcript yet", body = ApiErrorBody),
    ))]
pub(crate) async fn transcript(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    QueryParams(q): QueryParams<TranscriptQuery>,
) -> ApiResult<Response> {
    let id: SessionId = ids.get(0)?;
    may_read(&app, &auth, id).await?;
    let body = require(&app, id, "transcript").await?;
    transcript_response(body, q.format.as_deref())
}

pub(crate) fn transcript_response(body: Value, format: Option<&str>) -> ApiResult<Response> {
    let t: derive::Transcript =
        serde_json::from_value(body).map_err(|e| anyhow::anyhow!("stored transcript: {e}"))?;
    match format {
        // the same keys as the stored transcript: model, duration_ms, segments
        None | Some("json") => Ok(Json(t).into_response()),
        Some("vtt") => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vtt; charset=utf-8"),
            )],
            t.to_vtt(),
        )
            .into_response()),
        Some(_) => Err(ApiError::bad_request(
            "invalid_format",
            "format is json or vtt",
        )),
    }
}

/// The chapters artifact, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChaptersBody {
    pub chapters: Vec<derive::Chapter>,
}

/// The highlights artifact, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HighlightsBody {
    pub highlights: Vec<derive::Highlight>,
}

/// A stretch of the recording with no media.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TimelineGap {
    pub from_ms: u64,
    pub to_ms: u64,
    pub reason: String,
}

/// The timeline artifact, as stored: every class event on the media clock.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Timeline {
    pub duration_ms: u64,
    /// Always `recording media time, ms`.
    pub clock: String,
    pub markers: Vec<derive::Marker>,
    /// How many words the transcript has.
    pub words: u64,
    pub gaps: Vec<TimelineGap>,
}

/// One derived artifact of a session, as stored.
async fn derived(app: &AppState, auth: &Auth, ids: &PathIds, kind: &str) -> ApiResult<Json<Value>> {
    let id: SessionId = ids.get(0)?;
    may_read(app, auth, id).await?;
    Ok(Json(require(app, id, kind).await?))
}

/// `GET /sessions/{id}/chapters`
#[utoipa::path(get, path = "/sessions/{id}/chapters", operation_id = "session_chapters", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "The class's chapters", body = ChaptersBody),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made them yet", body = ApiErrorBody),
    ))]
pub(crate) async fn chapters(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "chapters").await
}

/// `GET /sessions/{id}/highlights`
#[utoipa::path(get, path = "/sessions/{id}/highlights", operation_id = "session_highlights", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Questions, polls, calls to action and lively moments", body = HighlightsBody),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made them yet", body = ApiErrorBody),
    ))]
pub(crate) async fn highlights(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "highlights").await
}

/// `GET /sessions/{id}/summary`
#[utoipa::path(get, path = "/sessions/{id}/summary", operation_id = "session_summary", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Key terms, outline and counts", body = derive::Summary),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made it yet", body = ApiErrorBody),
    ))]
pub(crate) async fn summary(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "summary").await
}

/// `GET /sessions/{id}/timeline`: every class event on the media clock.
#[utoipa::path(get, path = "/sessions/{id}/timeline", operation_id = "session_timeline", tag = "artifacts",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Every class event on the media clock", body = Timeline),
        (status = 400, description = "Invalid session id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made it yet", body = ApiErrorBody),
    ))]
pub(crate) async fn timeline(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "timeline").await
}
