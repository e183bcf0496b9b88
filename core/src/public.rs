//! Public viewing: a link the class's staff hand out (when the tenant allows
//! public viewing) lets anyone without an account watch the program
//! through the edge nearest them. A public viewer gets a join token with
//! the `public` role and no seat: no identity is recorded for them, they
//! see no one else's, and they cannot chat or act. Edges count them in
//! their heartbeats; `GET /sessions/{id}/audience` adds the counts up.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use protocol::claims::{ISSUER, JOIN_TTL_SECS, JoinClaims, TokenType, join_audience};
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::http::throttle::ClientAddr;
use crate::identity::Auth;
use crate::orchestration::edges;
use crate::orchestration::sessions::{EdgeRef, current_state, load_session};

/// How long a public link opens the class.
const LINK_TTL_SECS: i64 = 12 * 60 * 60;

/// Public viewers per edge, as each edge last reported them.
#[derive(Default)]
pub struct AudienceBoard {
    by_edge: HashMap<EdgeId, (Instant, BTreeMap<SessionId, u32>)>,
}

impl AudienceBoard {
    pub fn report(&mut self, edge: &EdgeId, viewers: BTreeMap<SessionId, u32>) {
        self.by_edge.insert(edge.clone(), (Instant::now(), viewers));
    }

    /// Public viewers of a session on edges heard from within `fresh`.
    pub fn of(&self, session: SessionId, fresh: Duration) -> (u32, BTreeMap<String, u32>) {
        let mut by_edge = BTreeMap::new();
        let mut total = 0;
        for (edge, (at, viewers)) in &self.by_edge {
            if at.elapsed() > fresh {
                continue;
            }
            if let Some(n) = viewers.get(&session).copied().filter(|n| *n > 0) {
                total += n;
                by_edge.insert(edge.to_string(), n);
            }
        }
        (total, by_edge)
    }
}

fn scope(session: SessionId) -> String {
    format!("public/{session}")
}

/// A public link to a live class.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PublicLink {
    /// The watch page with the key.
    pub url: String,
    /// For `POST /public/sessions/{id}/watch`.
    pub key: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// No class of a course with a minor on its roster is shown to the public
/// (parental-consent rules): 409 `minors_enrolled`.
async fn refuse_minors(app: &AppState, session: SessionId) -> ApiResult<()> {
    let (minors,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
           JOIN course_members m ON m.course_id = l.course_id
           JOIN users u ON u.id = m.user_id AND u.tenant_id = s.tenant_id
          WHERE s.id = $1 AND u.minor",
    )
    .bind(session.as_uuid())
    .fetch_one(app.db())
    .await?;
    if minors > 0 {
        return Err(ApiError::conflict(
            "minors_enrolled",
            "a minor is on this course's roster: its classes are not shown to the public",
        ));
    }
    Ok(())
}

/// `POST /sessions/{id}/public-link`: the class's staff get a link anyone
/// may watch with, if the tenant allows public viewing.
#[utoipa::path(post, path = "/sessions/{id}/public-link", tag = "public", operation_id = "create_public_link",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "A link valid for 12 hours", body = PublicLink),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or teacher, or public viewing is off for the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The session has ended, or a minor is on the course's roster (`minors_enrolled`)", body = ApiErrorBody),
    ))]
pub(crate) async fn link(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<PublicLink>> {
    auth.require_staff()?;
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    if !row.is_live() {
        return Err(ApiError::conflict("session_ended", "the session has ended"));
    }
    let (state, _) = current_state(&app, &auth, &row).await?;
    if !state.settings.public_viewing {
        return Err(ApiError::forbidden(
            "public_viewing_off",
            "public viewing is not allowed for this class (tenant setting public_viewing)",
        ));
    }
    refuse_minors(&app, id).await?;
    let expires = Utc::now().timestamp() + LINK_TTL_SECS;
    let key = app.keys().sign_asset(&scope(id), expires)?;
    let url = format!(
        "{}/#/watch/{id}?key={key}",
        app.config().public_url.trim_end_matches('/')
    );
    let mut tx = app.db().begin().await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "session.public_link",
        "session",
        &id.to_string(),
        json!({ "expires_at": expires }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PublicLink {
        url,
        key,
        expires_at: expires,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchBody {
    /// The public link's key.
    key: String,
    /// The viewer's region: they watch through its nearest edge (at most 64
    /// characters).
    #[serde(default)]
    region: Option<String>,
}

/// A public viewer's admission: a `public` join token for an edge.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Watching {
    pub session_id: SessionId,
    /// Always `public`.
    pub role: Role,
    /// The edge to connect to.
    pub edge: EdgeRef,
    pub home_edge_id: EdgeId,
    pub join_token: String,
}

/// `POST /public/sessions/{id}/watch` (no account): a public link's key
/// buys a short `public` join token for the nearest edge.
#[utoipa::path(post, path = "/public/sessions/{id}/watch", tag = "public", operation_id = "watch_public_session",
    request_body = WatchBody,
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Admitted", body = Watching),
        (status = 400, description = "Bad id, body or region", body = ApiErrorBody),
        (status = 401, description = "The key is not valid for the session or has expired", body = ApiErrorBody),
        (status = 403, description = "Public viewing is off for the class", body = ApiErrorBody),
        (status = 404, description = "No such session", body = ApiErrorBody),
        (status = 409, description = "The session has ended, or a minor is on the course's roster (`minors_enrolled`)", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many requests from this address to the routes that need no account; see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "The class's edge cannot be reached", body = ApiErrorBody),
    ))]
pub(crate) async fn watch(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    ids: PathIds,
    body: JsonBody<WatchBody>,
) -> ApiResult<Json<Watching>> {
    app.throttles().public(from)?;
    let id: SessionId = ids.get(0)?;
    let body = body.value;
    if body.key.len() > 2048 || !app.keys().verify_asset(&body.key, &scope(id)) {
        return Err(ApiError::unauthorized(
            "invalid_link",
            "this public link is not valid for the class or has expired",
        ));
    }
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT tenant_id, edge_id, status::text FROM sessions WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(app.db())
            .await?;
    let (tenant, home, status) = row.ok_or(ApiError::not_found("session"))?;
    if status != "live" {
        return Err(ApiError::conflict("session_ended", "the session has ended"));
    }
    // a minor may have joined the roster since the link was made
    refuse_minors(&app, id).await?;
    let home = EdgeId::new(home).map_err(|e| anyhow::anyhow!(e))?;
    // the class must still allow it (asked of its writer, the home edge)
    match app
        .edge_link()
        .request_within(
            &home,
            &EdgeRequest::State { session_id: id },
            Duration::from_secs(2),
        )
        .await
    {
        Ok(EdgeReply::State { state }) if state.settings.public_viewing => {}
        Ok(EdgeReply::State { .. }) => {
            return Err(ApiError::forbidden(
                "public_viewing_off",
                "public viewing is not allowed for this class",
            ));
        }
        _ => {
            return Err(ApiError::unavailable(
                "edge_unavailable",
                "the class's edge cannot be reached",
            ));
        }
    }
    let viewer = edges::viewer_edge(
        &app,
        TenantId::from_uuid(tenant),
        &home,
        None,
        body.region.as_deref(),
    )
    .await?;
    let (edge, url) = (viewer.id, viewer.url);
    let now = Utc::now();
    let claims = JoinClaims {
        iss: ISSUER.to_owned(),
        aud: join_audience(&edge),
        sub: ParticipantId::from_uuid(Uuid::now_v7()),
        tid: TenantId::from_uuid(tenant),
        sid: id,
        uid: None,
        role: Role::Public,
        edge: edge.clone(),
        home: (edge != home).then(|| home.clone()),
        perms: Default::default(),
        iat: now.timestamp(),
        exp: now.timestamp() + JOIN_TTL_SECS,
        jti: Uuid::now_v7().to_string(),
        typ: TokenType::Join,
    };
    let token = app.keys().sign_join(&claims)?;
    tracing::info!(session_id = %id, edge_id = %edge, "public viewer admitted");
    Ok(Json(Watching {
        session_id: id,
        role: Role::Public,
        edge: EdgeRef { id: edge, url },
        home_edge_id: home,
        join_token: token,
    }))
}

/// Public viewers of a session now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Audience {
    pub session_id: SessionId,
    pub public_viewers: u32,
    /// Viewers per edge id (edges with none are left out).
    pub by_edge: BTreeMap<String, u32>,
}

/// `GET /sessions/{id}/audience`: how many public viewers watch now, in
/// all and per edge (staff).
#[utoipa::path(get, path = "/sessions/{id}/audience", tag = "public", operation_id = "session_audience",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "The public audience", body = Audience),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or teacher", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn audience(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Audience>> {
    auth.require_staff()?;
    let id: SessionId = ids.get(0)?;
    load_session(&app, &auth, id).await?;
    let fresh = Duration::from_millis(app.config().edge_stale_ms.max(1000) * 2);
    let (total, by_edge) = app.audience().of(id, fresh);
    Ok(Json(Audience {
        session_id: id,
        public_viewers: total,
        by_edge,
    }))
}
