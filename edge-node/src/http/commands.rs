//! Class commands straight from campus clients, with the join token: the
//! same routes and bodies as core's API, so a class goes on when core is
//! unreachable.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Path, Request, State};
use axum::http::{StatusCode, header};
use protocol::api::{ApiErrorBody, InputError, PermissionsBody, answer, build};
use protocol::control::EdgeReply;
use protocol::view::{SessionView, Viewer};
use protocol::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::EdgeState;
use crate::http::auth::Joined;
use crate::http::error::EdgeError;

/// A JSON body with api.md errors (400 bad JSON, 413 too large).
pub(crate) struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = EdgeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                EdgeError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body too large",
                )
            } else {
                EdgeError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        if !raw.is_empty() && !json {
            return Err(EdgeError::bad_request(
                "unsupported_content_type",
                "send the body as application/json",
            ));
        }
        let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &raw
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| EdgeError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
    }
}

fn session_id(raw: &str) -> Result<SessionId, EdgeError> {
    raw.parse()
        .map_err(|_| EdgeError::bad_request("invalid_id", "the session id is not a UUID"))
}

/// Runs one command through the session's writer on behalf of the token holder.
pub(crate) async fn run(
    state: &EdgeState,
    who: &Joined,
    session: SessionId,
    command: Command,
) -> Result<(Vec<Envelope>, Seq), EdgeError> {
    who.require_session(session)?;
    let handle = state.registry.get(session).await.ok_or_else(|| {
        EdgeError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "the session is not live on this edge",
        )
    })?;
    let reply = handle
        .command(who.actor(), command)
        .await
        .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))?;
    match reply {
        EdgeReply::Done { events, seq, .. } => Ok((events, seq)),
        EdgeReply::Rejected { rejection } => Err(rejection.into()),
        EdgeReply::Failed { code, message } => Err(EdgeError::unavailable(&code, message)),
        EdgeReply::State { .. } => Err(EdgeError::unavailable("unexpected", "unexpected reply")),
    }
}

type Res = Result<Json<Value>, EdgeError>;

#[utoipa::path(get, path = "/sessions/{id}/state", tag = "sessions", operation_id = "edge_session_state",
    summary = "The session's state as the caller may see it (a live class hosted here)",
    params(("id" = Uuid, Path, description = "The session")),
    security(("join_token" = [])),
    responses(
        (status = 200, description = "The state now", body = SessionView),
        (status = 400, description = "The session id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "The join token is for another session (`wrong_session`)", body = ApiErrorBody),
        (status = 404, description = "The session is not live on this edge (`session_not_found`)", body = ApiErrorBody),
        (status = 503, description = "The session's writer stopped, or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn state(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
) -> Res {
    let sid = session_id(&sid)?;
    who.require_session(sid)?;
    let h = st.registry.get(sid).await.ok_or_else(|| {
        EdgeError::new(StatusCode::NOT_FOUND, "session_not_found", "not live here")
    })?;
    let s = h
        .state()
        .await
        .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))?;
    let viewer = match who.0.role {
        Role::Public => Viewer::Public,
        _ => Viewer::Participant {
            participant_id: who.0.sub,
            role: who.0.role,
        },
    };
    Ok(Json(
        serde_json::to_value(s.view(&viewer)).unwrap_or(Value::Null),
    ))
}

/// Every class command route (the shared table in `protocol::api`; its
/// OpenAPI description is `protocol::api::openapi::class_routes`).
/// A request that builds no command, as the api.md error both ends give.
fn input_error(e: InputError) -> EdgeError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    EdgeError::new(status, e.code(), e.message())
}

pub(crate) async fn class_command(
    State(st): State<EdgeState>,
    who: Joined,
    route: MatchedPath,
    Path(params): Path<Vec<(String, String)>>,
    Body(json): Body<Value>,
) -> Res {
    let sid = session_id(params.first().map(|p| p.1.as_str()).unwrap_or(""))?;
    let rest: Vec<&str> = params.iter().skip(1).map(|p| p.1.as_str()).collect();
    let mut built = build(route.as_str(), &rest, &json, Uuid::now_v7()).map_err(input_error)?;
    if let Some(deck) = built.deck() {
        let pages = st.registry.deck_pages(who.0.tid, deck).ok_or_else(|| {
            EdgeError::new(
                StatusCode::NOT_FOUND,
                "deck_not_found",
                "this edge does not know that deck",
            )
        })?;
        built = built.with_page_count(pages);
    }
    let (evs, seq) = run(&st, &who, sid, built.command).await?;
    Ok(Json(answer(built.created, &evs, seq)))
}

/// What a permission change answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PermissionsAnswer {
    pub participant_id: ParticipantId,
    /// The participant's permissions now (null if the session has just ended).
    pub permissions: Option<BTreeSet<Permission>>,
    /// The last event appended (the log's position when nothing changed).
    pub seq: Seq,
}

#[utoipa::path(post, path = "/sessions/{id}/permissions", tag = "sessions",
    operation_id = "edge_session_permissions",
    summary = "Grant or revoke a participant's permissions (needs `manage_permissions`)",
    params(("id" = Uuid, Path, description = "The session")),
    request_body(content = PermissionsBody, content_type = "application/json"),
    security(("join_token" = [])),
    responses(
        (status = 200, description = "Changed", body = PermissionsAnswer),
        (status = 400, description = "Not JSON, not of the schema (`invalid_body`), the session id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A permission the caller lacks (`missing_permission`), or a token for another session (`wrong_session`)", body = ApiErrorBody),
        (status = 404, description = "The session is not live here, or no such participant", body = ApiErrorBody),
        (status = 409, description = "Conflicts with the session's state", body = ApiErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ApiErrorBody),
        (status = 429, description = "Too many commands (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "The event log or the session's writer is unavailable, or the token keys are not loaded yet; nothing was changed", body = ApiErrorBody),
    ))]
pub(crate) async fn permissions(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<PermissionsBody>,
) -> Result<Json<PermissionsAnswer>, EdgeError> {
    let PermissionsBody {
        participant_id,
        grant,
        revoke,
    } = b;
    let sid = session_id(&sid)?;
    let (evs, seq) = run(
        &st,
        &who,
        sid,
        Command::ChangePermissions {
            participant_id,
            grant,
            revoke,
        },
    )
    .await?;
    let perms = match st.registry.get(sid).await {
        Some(h) => h
            .state()
            .await
            .ok()
            .and_then(|s| s.participant(participant_id).map(|p| p.permissions.clone())),
        None => None,
    };
    // fields in sorted order, as the answer always had them
    Ok(Json(PermissionsAnswer {
        participant_id,
        permissions: perms,
        seq: evs.last().map(|e| e.seq).unwrap_or(seq),
    }))
}

#[utoipa::path(post, path = "/sessions/{id}/leave", tag = "sessions", operation_id = "edge_session_leave",
    summary = "Leave the class (the token holder's own seat; no body)",
    params(("id" = Uuid, Path, description = "The session")),
    security(("join_token" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "The session id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A token for another session (`wrong_session`), or no seat in the class", body = ApiErrorBody),
        (status = 404, description = "The session is not live here", body = ApiErrorBody),
        (status = 409, description = "Conflicts with the session's state", body = ApiErrorBody),
        (status = 429, description = "Too many commands (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "The event log or the session's writer is unavailable, or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn leave(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
) -> Result<StatusCode, EdgeError> {
    let me = who.0.sub;
    run(&st, &who, session_id(&sid)?, protocol::api::leave(me)).await?;
    Ok(StatusCode::NO_CONTENT)
}
