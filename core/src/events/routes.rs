//! `GET /sessions/{id}/events?after=SEQ`: the session's log in `seq` order.

use axum::Json;
use axum::extract::State;
use protocol::view::{Viewer, event_visible_to};
use protocol::{EventBody, SessionId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::events::store;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{PathIds, QueryParams};
use crate::identity::Auth;
use crate::orchestration::sessions::{load_session, viewer_for};

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    QueryParams(q): QueryParams<EventsQuery>,
) -> ApiResult<Json<Value>> {
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
    let events = store::read_after(app.db(), auth.tenant_id, session, q.after, limit).await?;
    let next_after = events.last().map(|e| e.seq).unwrap_or(q.after);
    let visible: Vec<&store::StoredEvent> = events
        .iter()
        .filter(|e| match e.typed() {
            Some(t) => visible_body(&t.body, &viewer),
            // unknown (newer) event types reach staff only
            None => matches!(viewer, Viewer::Staff),
        })
        .collect();
    Ok(Json(json!({
        "session_id": session,
        "status": row.status,
        "last_seq": row.last_seq,
        "next_after": next_after,
        "events": visible,
    })))
}

fn visible_body(body: &EventBody, viewer: &Viewer) -> bool {
    event_visible_to(body, viewer)
}
