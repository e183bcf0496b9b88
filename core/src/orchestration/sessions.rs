//! Sessions: start, end, state, join, leave, permissions, and the class
//! commands core forwards to the session's home edge.
//!
//! Start follows the spec's sequence: validate the caller, place the class
//! on a healthy edge, have that edge append `session.started` (its event log
//! durably took it), then commit the session row. Any failure before the
//! commit rolls everything back and answers 503: nothing is left half-made.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use protocol::api::PermissionsBody;
use protocol::claims::{ISSUER, JOIN_TTL_SECS, JoinClaims, TokenType, join_audience};
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::event::SessionSettings;
use protocol::state::{Participant, SessionState, SessionStatus};
use protocol::view::{SessionView, Viewer};
use protocol::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::events::{ingest, store};
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{IdempotencyKey, JsonBody, PathIds};
use crate::idempotency;
use crate::identity::Auth;
use crate::orchestration::edge_link::EdgeLinkError;
use crate::orchestration::edges;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub lesson_run_id: Uuid,
    pub edge_id: String,
    pub status: String,
    pub title: String,
    pub started_by: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
}

impl SessionRow {
    pub fn edge(&self) -> ApiResult<EdgeId> {
        EdgeId::new(self.edge_id.clone()).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
    }
    pub fn is_live(&self) -> bool {
        self.status == "live"
    }
}

/// The session, if it exists in the caller's tenant; another tenant's
/// session is as absent as one that never existed.
pub async fn load_session(app: &AppState, auth: &Auth, id: SessionId) -> ApiResult<SessionRow> {
    sqlx::query_as(
        "SELECT id, tenant_id, lesson_run_id, edge_id, status::text AS status, title, started_by,
                started_at, ended_at, last_seq
         FROM sessions WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?
    .ok_or(ApiError::not_found("session"))
}

/// The caller's seat in a session, from the participants projection.
pub async fn seat_of(
    app: &AppState,
    auth: &Auth,
    session: SessionId,
) -> ApiResult<Option<ParticipantId>> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM participants WHERE session_id = $1 AND user_id = $2 AND tenant_id = $3",
    )
    .bind(session.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    Ok(row.map(|r| r.0.into()))
}

pub async fn viewer_for(app: &AppState, auth: &Auth, session: SessionId) -> ApiResult<Viewer> {
    if auth.role.is_staff() {
        return Ok(Viewer::Staff);
    }
    let seat = seat_of(app, auth, session).await?;
    Ok(Viewer::Participant {
        // A caller without a seat sees what a seatless participant would:
        // nothing private of anyone.
        participant_id: seat.unwrap_or_else(|| ParticipantId::from_uuid(Uuid::nil())),
        role: auth.role,
    })
}

pub(crate) fn actor_of(auth: &Auth) -> Actor {
    // The edge resolves the caller's seat from its own state by user id, so
    // a join that core has not ingested yet still counts.
    Actor::Person {
        user_id: Some(auth.user_id),
        participant_id: None,
        role: auth.role,
    }
}

fn edge_error(e: EdgeLinkError) -> ApiError {
    tracing::warn!(error = %e, "edge request failed");
    ApiError::unavailable(
        "edge_unreachable",
        format!("the class's edge did not answer: {e}"),
    )
}

/// What a forwarded command did.
pub struct Done {
    pub events: Vec<Envelope>,
    pub seq: Seq,
    pub participant: Option<Participant>,
}

/// Sends one command to the session's home edge and writes what it appended
/// into Postgres right away (the ingest consumer will find it there).
pub async fn forward(
    app: &AppState,
    session: &SessionRow,
    actor: Actor,
    command: Command,
) -> ApiResult<Done> {
    forward_within(app, session, actor, command, None).await
}

/// How long core waits for an end: the edge first finalizes the class's
/// recording (bounded at 30 s there), then appends `session.ended`.
const END_WITHIN: Duration = Duration::from_secs(35);

/// `forward` with a wait of its own (`None`: the edge link's).
async fn forward_within(
    app: &AppState,
    session: &SessionRow,
    actor: Actor,
    command: Command,
    within: Option<Duration>,
) -> ApiResult<Done> {
    if !session.is_live() {
        return Err(ApiError::conflict("session_ended", "the session has ended"));
    }
    let edge = session.edge()?;
    let req = EdgeRequest::Command {
        session_id: session.id.into(),
        actor,
        command,
    };
    let reply = match within {
        Some(t) => app.edge_link().request_within(&edge, &req, t).await,
        None => app.edge_link().request(&edge, &req).await,
    };
    match reply.map_err(edge_error)? {
        EdgeReply::Done {
            events,
            seq,
            participant,
        } => {
            if let Err(e) = ingest::absorb(app.db(), app.vault(), &events).await {
                // The events are durable on the edge and will arrive through
                // the hub stream; only read-your-writes is delayed.
                tracing::warn!(error = ?e, "writing forwarded events now failed; ingest will");
            }
            Ok(Done {
                events,
                seq,
                participant,
            })
        }
        EdgeReply::Rejected { rejection } => Err(rejection.into()),
        EdgeReply::Failed { code, message } => Err(edge_failure(&code, message)),
        EdgeReply::State { .. } => Err(ApiError::Internal(anyhow::anyhow!(
            "edge answered a command with a state"
        ))),
    }
}

fn edge_failure(code: &str, message: String) -> ApiError {
    match code {
        "event_log_unavailable" => ApiError::unavailable("event_log_unavailable", message),
        "session_ended" => ApiError::conflict("session_ended", message),
        "rate_limited" => ApiError::RateLimited {
            retry_after_secs: 1,
        },
        _ => ApiError::unavailable("edge_failed", format!("{code}: {message}")),
    }
}

/// An edge a client connects to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EdgeRef {
    pub id: EdgeId,
    /// Empty when core has not heard of the edge.
    pub url: String,
}

// ---- start ------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    lesson_run_id: LessonRunId,
}

/// A class just started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedSession {
    pub id: SessionId,
    /// Always `live`.
    pub status: SessionStatus,
    /// `course title: lesson title`
    pub title: String,
    pub lesson_run_id: LessonRunId,
    /// The class's home edge.
    pub edge: EdgeRef,
    /// Always 1 (`session.started`).
    pub seq: Seq,
    pub started_at: DateTime<Utc>,
}

/// Starts a lesson run's class on a healthy edge (admins and the course's
/// teachers).
#[utoipa::path(post, path = "/sessions/start", tag = "sessions", operation_id = "start_session",
    request_body = StartBody,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses(
        (status = 201, description = "Live", body = StartedSession),
        (status = 400, description = "Bad body or Idempotency-Key", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or a teacher of the course", body = ApiErrorBody),
        (status = 404, description = "No such lesson run in the tenant", body = ApiErrorBody),
        (status = 409, description = "The run is already live, or the key was used with another body or is still running", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 503, description = "No healthy edge can take the class, it could not start it, or the session could not be recorded; nothing was started", body = ApiErrorBody),
    ))]
pub async fn start(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<StartBody>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let run_id = body.value.lesson_run_id;
    idempotency::run(&app, &auth, key, "POST /sessions/start", &body.raw, || {
        start_inner(&app, auth, run_id)
    })
    .await
}

async fn start_inner(
    app: &AppState,
    auth: Auth,
    run_id: LessonRunId,
) -> ApiResult<(StatusCode, Value)> {
    type RunRow = (
        Uuid,
        Uuid,
        String,
        String,
        Option<String>,
        Option<String>,
        Value,
    );
    let run: Option<RunRow> = sqlx::query_as(
        "SELECT l.id, c.id, l.title, c.title, r.edge_id, r.region, t.settings
         FROM lesson_runs r
         JOIN lessons l ON l.id = r.lesson_id AND l.tenant_id = r.tenant_id
         JOIN courses c ON c.id = l.course_id AND c.tenant_id = r.tenant_id
         JOIN tenants t ON t.id = r.tenant_id
         WHERE r.id = $1 AND r.tenant_id = $2",
    )
    .bind(run_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (lesson_id, course_id, lesson_title, course_title, edge_pref, region, tenant_settings) =
        run.ok_or(ApiError::not_found("lesson_run"))?;
    // a teacher runs the classes of the courses they teach; admins any
    crate::console::require_course_teacher(app, &auth, course_id.into()).await?;
    let live: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM sessions WHERE lesson_run_id = $1 AND status = 'live'")
            .bind(run_id.as_uuid())
            .fetch_optional(app.db())
            .await?;
    if let Some((id,)) = live {
        return Err(ApiError::conflict(
            "session_already_live",
            format!("this lesson run is already live as session {id}"),
        ));
    }
    let mut settings: SessionSettings = serde_json::from_value(tenant_settings).unwrap_or_default();
    // the edge seals the class's recording to the tenant's key
    settings.recording_key = Some(protocol::event::RecordingKey {
        x25519: app
            .recording_keys()
            .current(auth.tenant_id.as_uuid())
            .await?
            .to_hex(),
    });
    let placed = edges::place(app, auth.tenant_id, edge_pref.as_deref(), region.as_deref()).await?;
    let session_id = SessionId::from_uuid(Uuid::now_v7());
    let title = format!("{course_title}: {lesson_title}");
    let span = tracing::info_span!("session_start", tenant_id = %auth.tenant_id, session_id = %session_id, edge_id = %placed.id);
    let _enter = span.enter();

    let mut tx = app.db().begin().await?;
    let now = Utc::now();
    let inserted = sqlx::query(
        "INSERT INTO sessions (id, tenant_id, lesson_run_id, edge_id, status, title, started_by, started_at)
         VALUES ($1, $2, $3, $4, 'live', $5, $6, $7)",
    )
    .bind(session_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .bind(run_id.as_uuid())
    .bind(placed.id.as_str())
    .bind(&title)
    .bind(auth.user_id.as_uuid())
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            return Err(ApiError::conflict(
                "session_already_live",
                "this lesson run was started concurrently",
            ));
        }
        return Err(e.into());
    }

    let req = EdgeRequest::Start {
        session_id,
        tenant_id: auth.tenant_id,
        lesson_run_id: run_id,
        course_id: course_id.into(),
        lesson_id: lesson_id.into(),
        title: title.clone(),
        started_by: auth.user_id,
        settings,
        decks: crate::classroom::decks::for_start(app, auth.tenant_id, course_id).await?,
    };
    let outcome = app.edge_link().request(&placed.id, &req).await;
    let started = match outcome {
        Ok(EdgeReply::Done { events, .. }) => events.into_iter().find(|e| e.seq == Seq::FIRST),
        Ok(EdgeReply::Failed { code, message }) => {
            drop(tx);
            abort_on_edge(app, &placed.id, session_id).await;
            let code: &'static str = if code == "event_log_unavailable" {
                "event_log_unavailable"
            } else {
                "edge_unavailable"
            };
            return Err(ApiError::unavailable(
                code,
                format!("the edge could not start the class: {message}"),
            ));
        }
        Ok(other) => {
            drop(tx);
            abort_on_edge(app, &placed.id, session_id).await;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "unexpected start reply: {other:?}"
            )));
        }
        Err(e) => {
            drop(tx);
            abort_on_edge(app, &placed.id, session_id).await;
            return Err(ApiError::unavailable(
                "edge_unavailable",
                format!("the class's edge could not be reached: {e}"),
            ));
        }
    };
    let Some(started) = started else {
        drop(tx);
        abort_on_edge(app, &placed.id, session_id).await;
        return Err(ApiError::unavailable(
            "event_log_unavailable",
            "the edge did not log session.started",
        ));
    };
    let stored = store::StoredEvent::from_envelope(&started).map_err(|e| anyhow::anyhow!(e))?;
    let commit = async {
        store::insert(&mut tx, &stored).await?;
        sqlx::query("UPDATE sessions SET last_seq = 1 WHERE id = $1 AND last_seq < 1")
            .bind(session_id.as_uuid())
            .execute(&mut *tx)
            .await?;
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            "session.started",
            "session",
            &session_id.to_string(),
            json!({"edge_id": placed.id, "lesson_run_id": run_id}),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = commit {
        abort_on_edge(app, &placed.id, session_id).await;
        return Err(ApiError::unavailable(
            "database_unavailable",
            format!("the session could not be recorded: {e}"),
        ));
    }
    tracing::info!("session started");
    // The writer learns the roster before anyone can join through core; if
    // the edge misses it, core's own check still guards every join.
    if let Err(e) =
        crate::console::members::send_roster(app, &placed.id, session_id, course_id.into()).await
    {
        tracing::warn!(error = %e, "the class started without its roster on the edge");
    }
    // destinations attached to the run beforehand: pushed from the start
    crate::destinations::runs::carry_into(app, run_id.as_uuid(), session_id).await;
    let answer = StartedSession {
        id: session_id,
        status: SessionStatus::Live,
        title,
        lesson_run_id: run_id,
        edge: EdgeRef {
            id: placed.id,
            url: placed.url,
        },
        seq: Seq::FIRST,
        started_at: started.occurred_at,
    };
    Ok((
        StatusCode::CREATED,
        serde_json::to_value(answer).map_err(anyhow::Error::new)?,
    ))
}

/// Best effort: tell the edge to drop a session core could not record.
async fn abort_on_edge(app: &AppState, edge: &EdgeId, session: SessionId) {
    let req = EdgeRequest::Abort {
        session_id: session,
    };
    match app
        .edge_link()
        .request_within(edge, &req, Duration::from_secs(2))
        .await
    {
        Ok(_) => tracing::info!(session_id = %session, "aborted start on the edge"),
        Err(e) => {
            tracing::warn!(session_id = %session, error = %e, "could not abort start on the edge; its events will be dropped by ingest")
        }
    }
}

// ---- end --------------------------------------------------------------

/// A class just ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndedSession {
    pub id: SessionId,
    /// Always `ended`.
    pub status: SessionStatus,
    pub ended_at: DateTime<Utc>,
    /// The seq of the last event (`session.ended`).
    pub seq: Seq,
}

/// Ends a live class (who holds `end_session` in it: its staff).
#[utoipa::path(post, path = "/sessions/{id}/end", tag = "sessions", operation_id = "end_session",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Ended", body = EndedSession),
        (status = 400, description = "Bad id, or the edge refused the command as invalid", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "The caller lacks the permission (`missing_permission`)", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The session has already ended", body = ApiErrorBody),
        (status = 429, description = "The edge is rate limiting the caller", body = ApiErrorBody),
        (status = 503, description = "The class's edge or its event log is unavailable", body = ApiErrorBody),
    ))]
pub async fn end(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<EndedSession>> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    if !row.is_live() {
        return Err(ApiError::conflict(
            "session_ended",
            "the session has already ended",
        ));
    }
    let done = forward_within(&app, &row, actor_of(&auth), Command::End, Some(END_WITHIN)).await?;
    let ended_at = done
        .events
        .iter()
        .find(|e| e.event_type() == "session.ended")
        .map(|e| e.occurred_at)
        .unwrap_or_else(Utc::now);
    sqlx::query(
        "UPDATE sessions SET status = 'ended', ended_at = $2 WHERE id = $1 AND status = 'live'",
    )
    .bind(id.as_uuid())
    .bind(ended_at)
    .execute(app.db())
    .await?;
    let mut tx = app.db().begin().await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "session.ended",
        "session",
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(EndedSession {
        id,
        status: SessionStatus::Ended,
        ended_at,
        seq: done.seq,
    }))
}

// ---- state ------------------------------------------------------------

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// `edge` (the default: the live edge's state, else core's copy) or
    /// `core`: fold core's own copy of the log even while the class is live
    /// (to audit that it matches the edge's).
    #[serde(default)]
    #[param(pattern = "^(edge|core)$")]
    source: Option<String>,
}

/// The session's state as the caller may see it, with its home edge.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStateAnswer {
    #[serde(flatten)]
    pub view: SessionView,
    /// The home edge.
    pub edge: EdgeRef,
    /// `edge` (asked of the live edge) or `core` (folded from core's copy).
    pub state_source: String,
}

/// The session's state, seen as the caller may see it.
#[utoipa::path(get, path = "/sessions/{id}/state", tag = "sessions", operation_id = "session_state",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session"), StateQuery),
    responses(
        (status = 200, description = "The state", body = SessionStateAnswer),
        (status = 400, description = "Bad id or query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub async fn state(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    crate::http::extract::QueryParams(q): crate::http::extract::QueryParams<StateQuery>,
) -> ApiResult<Json<SessionStateAnswer>> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    let viewer = viewer_for(&app, &auth, id).await?;
    let (state, source) = match q.source.as_deref() {
        None | Some("edge") => current_state(&app, &auth, &row).await?,
        Some("core") => {
            let events =
                store::read_all_typed(app.db(), app.vault(), auth.tenant_id, row.id.into()).await?;
            (
                fold(&events).map_err(|e| anyhow::anyhow!("folding session log: {e}"))?,
                "core",
            )
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "source is edge or core",
            ));
        }
    };
    let view = state.view(&viewer);
    let edge = row.edge()?;
    let url = edges::url_of(&app, &edge).await?;
    Ok(Json(SessionStateAnswer {
        view,
        edge: EdgeRef { id: edge, url },
        state_source: source.to_owned(),
    }))
}

/// The session's state: from its edge while live (the writer is the
/// freshest), else folded from Postgres.
pub async fn current_state(
    app: &AppState,
    auth: &Auth,
    row: &SessionRow,
) -> ApiResult<(SessionState, &'static str)> {
    if row.is_live() {
        let edge = row.edge()?;
        let req = EdgeRequest::State {
            session_id: row.id.into(),
        };
        match app
            .edge_link()
            .request_within(&edge, &req, Duration::from_secs(2))
            .await
        {
            Ok(EdgeReply::State { state }) => return Ok((*state, "edge")),
            Ok(other) => {
                tracing::warn!(reply = ?other, "edge has no state for a live session; folding core's copy")
            }
            Err(e) => {
                tracing::warn!(error = %e, "edge unreachable; folding core's copy of the log")
            }
        }
    }
    let events =
        store::read_all_typed(app.db(), app.vault(), auth.tenant_id, row.id.into()).await?;
    let state = fold(&events).map_err(|e| anyhow::anyhow!("folding session log: {e}"))?;
    Ok((state, "core"))
}

// ---- join / leave / permissions -----------------------------------------

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// Join through this edge (e.g. the student's campus).
    #[serde(default)]
    #[schema(value_type = Option<EdgeId>)]
    edge_id: Option<String>,
    /// Or through the nearest healthy edge of this region (the class's
    /// home edge when the region has none); at most 64 characters.
    #[serde(default)]
    region: Option<String>,
}

/// A seat in the class and the token to take it on the edge.
#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    pub session_id: SessionId,
    /// The caller's seat; the same on a rejoin.
    pub participant_id: ParticipantId,
    pub role: Role,
    pub permissions: BTreeSet<Permission>,
    /// The edge to connect to.
    pub edge: EdgeRef,
    pub home_edge_id: EdgeId,
    /// For the edge's WebSocket.
    pub join_token: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub seq: Seq,
}

/// Joins a live class (its roster and admins); an empty body joins through
/// the class's home edge.
#[utoipa::path(post, path = "/sessions/{id}/join", tag = "sessions", operation_id = "join_session",
    request_body(content = JoinBody, description = "Where to join through; an empty body (or none) is `{}`"),
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Bad id, body, edge id or region, or the edge refused the command as invalid", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not on the course's roster, or refused by the class (e.g. removed, locked room)", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The session has ended, or the class refused the join", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "The edge is rate limiting the caller", body = ApiErrorBody),
        (status = 503, description = "The chosen or home edge, or its event log, is unavailable", body = ApiErrorBody),
    ))]
pub async fn join(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<JoinBody>,
) -> ApiResult<Json<Joined>> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    if !row.is_live() {
        return Err(ApiError::conflict("session_ended", "the session has ended"));
    }
    // Only the course's roster joins (admins too); the role in the class is
    // the role on the roster. The edge's writer checks the same roster.
    let course = crate::console::course_of_session(&app, row.id).await?;
    let role = match crate::console::course_role(&app, &auth, course).await? {
        _ if auth.role == Role::Admin => Role::Admin,
        Some(r) => r,
        None => {
            return Err(ApiError::forbidden(
                "not_enrolled",
                "you are not enrolled in this class's course",
            ));
        }
    };
    let home = row.edge()?;
    let viewer = edges::viewer_edge(
        &app,
        auth.tenant_id,
        &home,
        body.value.edge_id.as_deref(),
        body.value.region.as_deref(),
    )
    .await?;
    let (edge, edge_url) = (viewer.id, viewer.url);
    let (display_name,): (String,) =
        sqlx::query_as("SELECT display_name FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(auth.user_id.as_uuid())
            .bind(auth.tenant_id.as_uuid())
            .fetch_optional(app.db())
            .await?
            .ok_or(ApiError::not_found("user"))?;
    // A user keeps one seat per session: a rejoin reuses it.
    let pid = seat_of(&app, &auth, id)
        .await?
        .unwrap_or_else(|| ParticipantId::from_uuid(Uuid::now_v7()));
    let actor = Actor::Person {
        user_id: Some(auth.user_id),
        participant_id: Some(pid),
        role,
    };
    let cmd = Command::Join {
        participant_id: pid,
        user_id: Some(auth.user_id),
        role,
        display_name,
        edge_id: edge.clone(),
    };
    let done = forward(&app, &row, actor, cmd).await?;
    let participant = done.participant.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "edge answered a join without the participant"
        ))
    })?;
    let now = Utc::now();
    let claims = JoinClaims {
        iss: ISSUER.to_owned(),
        aud: join_audience(&edge),
        sub: participant.participant_id,
        tid: auth.tenant_id,
        sid: id,
        uid: Some(auth.user_id),
        role: participant.role,
        edge: edge.clone(),
        home: (edge != home).then(|| home.clone()),
        perms: participant.permissions.clone(),
        iat: now.timestamp(),
        exp: now.timestamp() + JOIN_TTL_SECS,
        jti: Uuid::now_v7().to_string(),
        typ: TokenType::Join,
    };
    let token = app.keys().sign_join(&claims)?;
    Ok(Json(Joined {
        session_id: id,
        participant_id: participant.participant_id,
        role: participant.role,
        permissions: participant.permissions,
        edge: EdgeRef {
            id: edge,
            url: edge_url,
        },
        home_edge_id: home,
        join_token: token,
        expires_at: DateTime::<Utc>::from_timestamp(claims.exp, 0),
        seq: done.seq,
    }))
}

/// Leaves the class (the seat is kept for a rejoin); nothing to do once it
/// has ended.
#[utoipa::path(post, path = "/sessions/{id}/leave", tag = "sessions", operation_id = "leave_session",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "Bad id, or the edge refused the command as invalid", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Refused by the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant, or the class has no such seat", body = ApiErrorBody),
        (status = 409, description = "The caller has not joined, or the session ended meanwhile", body = ApiErrorBody),
        (status = 429, description = "The edge is rate limiting the caller", body = ApiErrorBody),
        (status = 503, description = "The class's edge or its event log is unavailable", body = ApiErrorBody),
    ))]
pub async fn leave(State(app): State<AppState>, auth: Auth, ids: PathIds) -> ApiResult<StatusCode> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    let Some(pid) = seat_of(&app, &auth, id).await? else {
        return Err(ApiError::conflict(
            "not_joined",
            "you have not joined this session",
        ));
    };
    if !row.is_live() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let actor = Actor::Person {
        user_id: Some(auth.user_id),
        participant_id: Some(pid),
        role: auth.role,
    };
    forward(
        &app,
        &row,
        actor,
        Command::Leave {
            participant_id: pid,
            reason: event::LeaveReason::Left,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A participant's permissions after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionsChanged {
    pub participant_id: ParticipantId,
    pub permissions: BTreeSet<Permission>,
    pub seq: Seq,
}

/// Grants and revokes a participant's permissions (who holds
/// `manage_permissions` in the class).
#[utoipa::path(post, path = "/sessions/{id}/permissions", tag = "sessions", operation_id = "change_permissions",
    request_body = PermissionsBody,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "The participant's permissions now", body = PermissionsChanged),
        (status = 400, description = "Bad id or body, or the edge refused the command as invalid", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "The caller lacks the permission (`missing_permission`)", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant, or no such participant", body = ApiErrorBody),
        (status = 409, description = "The session has ended", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "The edge is rate limiting the caller", body = ApiErrorBody),
        (status = 503, description = "The class's edge or its event log is unavailable", body = ApiErrorBody),
    ))]
pub async fn permissions(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<PermissionsBody>,
) -> ApiResult<Json<PermissionsChanged>> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    let PermissionsBody {
        participant_id,
        grant,
        revoke,
    } = body.value;
    let done = forward(
        &app,
        &row,
        actor_of(&auth),
        Command::ChangePermissions {
            participant_id,
            grant,
            revoke,
        },
    )
    .await?;
    let p = done.participant.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("edge answered without the participant"))
    })?;
    Ok(Json(PermissionsChanged {
        participant_id: p.participant_id,
        permissions: p.permissions,
        seq: done.seq,
    }))
}
