//! After the class: the artifact pipeline (spec §7-8) and the routes that
//! serve what it made.
//!
//! - [`pipeline`]: JetStream trigger → jobs → stages (transcript, slides,
//!   timeline, knowledge, index), idempotent and versioned.
//! - [`derive`]: the pure derivations (media clock, markers, chapters,
//!   highlights, summary, WebVTT).
//! - `transcribe`: the recording's audio through Whisper.

pub mod derive;
pub mod pipeline;
mod transcribe;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protocol::SessionId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::error::{ApiError, ApiResult};
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
pub async fn require(app: &AppState, session: SessionId, kind: &str) -> ApiResult<Value> {
    pipeline::artifact(app, session, kind)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "artifacts_pending",
                format!("the {kind} is not ready yet; GET /sessions/{session}/artifacts tells where the pipeline is"),
            )
        })
}

/// `GET /sessions/{id}/artifacts`: the pipeline's state for the session.
pub async fn status(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    let id: SessionId = ids.get(0)?;
    may_read(&app, &auth, id).await?;
    Ok(Json(status_of(&app, id).await?))
}

pub async fn status_of(app: &AppState, id: SessionId) -> ApiResult<Value> {
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
    let job = job.map(|j| {
        json!({
            "state": j.0,
            "trigger_seq": j.1,
            "attempts": j.2,
            "next_attempt_at": j.3,
            "last_error": j.4,
            "updated_at": j.5,
        })
    });
    Ok(json!({
        "session_id": id,
        "state": job.as_ref().map(|j| j["state"].clone()).unwrap_or(json!("not_started")),
        "job": job,
        "stages": stages.iter().map(|s| json!({
            "stage": s.0, "version": s.1, "state": s.2, "attempts": s.3,
            "last_error": s.4, "detail": s.5, "started_at": s.6, "finished_at": s.7,
        })).collect::<Vec<_>>(),
        "artifacts": artifacts.iter().map(|a| json!({
            "kind": a.0, "version": a.1, "created_at": a.2,
        })).collect::<Vec<_>>(),
    }))
}

/// `POST /sessions/{id}/artifacts/rerun` (staff): every stage runs again,
/// even where its inputs did not change (a new model, a fixed bug).
pub async fn rerun(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /sessions/{id}/transcript` (`?format=vtt` for WebVTT).
pub async fn transcript(
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

pub fn transcript_response(body: Value, format: Option<&str>) -> ApiResult<Response> {
    let t: derive::Transcript =
        serde_json::from_value(body).map_err(|e| anyhow::anyhow!("stored transcript: {e}"))?;
    match format {
        None | Some("json") => Ok(Json(json!({
            "model": t.model,
            "duration_ms": t.duration_ms,
            "segments": t.segments,
        }))
        .into_response()),
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

/// One derived artifact of a session, as stored.
async fn derived(app: &AppState, auth: &Auth, ids: &PathIds, kind: &str) -> ApiResult<Json<Value>> {
    let id: SessionId = ids.get(0)?;
    may_read(app, auth, id).await?;
    Ok(Json(require(app, id, kind).await?))
}

/// `GET /sessions/{id}/chapters`
pub async fn chapters(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "chapters").await
}

/// `GET /sessions/{id}/highlights`
pub async fn highlights(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "highlights").await
}

/// `GET /sessions/{id}/summary`
pub async fn summary(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "summary").await
}

/// `GET /sessions/{id}/timeline`: every class event on the media clock.
pub async fn timeline(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Value>> {
    derived(&app, &auth, &ids, "timeline").await
}
