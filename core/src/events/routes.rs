//! `GET /sessions/{id}/events?after=SEQ`: the session's log in `seq` order.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use protocol::view::{Viewer, event_visible_to};
use protocol::{EventBody, SessionId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::events::store;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{PathIds, QueryParams};
use crate::identity::Auth;
use crate::orchestration::sessions::{load_session, viewer_for};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events with a seq above this (0 when absent: from the start).
    #[serde(default)]
    #[param(minimum = 0)]
    after: i64,
    /// 1 to 5000; 1000 when absent.
    #[serde(default)]
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

/// An event as core stores it (for the document: the handler serializes
/// [`store::StoredEvent`], whose fields these are).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct StoredEventDoc {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub seq: i64,
    /// The event type, e.g. `chat.message`.
    #[schema(rename = "type")]
    pub event_type: String,
    /// The event schema version.
    pub v: i16,
    pub occurred_at: DateTime<Utc>,
    /// Who caused it: `{"kind": "person", "user_id"?, "participant_id"?, "role"}`
    /// or `{"kind": "system"}`.
    #[schema(value_type = Object)]
    pub actor: serde_json::Value,
    /// `core` or `edge:<edge id>`.
    pub source: String,
    /// The type's fields.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A page of a session's log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    pub session_id: SessionId,
    /// live or ended
    pub status: String,
    /// The highest seq core holds without a gap.
    pub last_seq: i64,
    /// Pass as `after` for the next page (the last seq read, visible or not).
    pub next_after: i64,
    /// The events the caller may see, in seq order.
    #[schema(value_type = Vec<StoredEventDoc>)]
    pub events: Vec<store::StoredEvent>,
}

/// A session's events in seq order, as far as the caller may see them.
#[utoipa::path(get, path = "/sessions/{id}/events", tag = "sessions", operation_id = "session_events",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session"), EventsQuery),
    responses(
        (status = 200, description = "A page of the log", body = EventPage),
        (status = 400, description = "Bad id or query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    QueryParams(q): QueryParams<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let session: SessionId = ids.get(0)?;
    if q.after < 0 {
        return Err(ApiError::bad_request("invalid_query", "after must be >= 0"));
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be 1 to 5000",
        ));
    }
    let row = load_session(&app, &auth, session).await?;
    let viewer = viewer_for(&app, &auth, session).await?;
    let events = store::read_after(
        app.db(),
        app.vault(),
        auth.tenant_id,
        session,
        q.after,
        limit,
    )
    .await?;
    let next_after = events.last().map(|e| e.seq).unwrap_or(q.after);
    let visible: Vec<store::StoredEvent> = events
        .into_iter()
        .filter(|e| match e.typed() {
            Some(t) => visible_body(&t.body, &viewer),
            // unknown (newer) event types reach staff only
            None => matches!(viewer, Viewer::Staff),
        })
        .collect();
    Ok(Json(EventPage {
        session_id: session,
        status: row.status,
        last_seq: row.last_seq,
        next_after,
        events: visible,
    }))
}

fn visible_body(body: &EventBody, viewer: &Viewer) -> bool {
    event_visible_to(body, viewer)
}
