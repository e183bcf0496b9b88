//! Replay viewing: the replay page's progress beacons, recorded raw (kept
//! for the tenant's `beacon_days`) and added up per second and per viewer.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use axum::extract::State;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;

/// A replay page's progress beacon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Progress {
    /// Media time the watched stretch starts at (ms).
    pub from_ms: i64,
    /// Media time it ends at (ms): after `from_ms`, at most 60 s later.
    pub to_ms: i64,
}

/// The longest stretch one beacon may report.
pub(crate) const MAX_BEACON_MS: i64 = 60_000;

impl Progress {
    pub(crate) fn check(&self) -> ApiResult<()> {
        if self.from_ms < 0
            || self.to_ms <= self.from_ms
            || self.to_ms - self.from_ms > MAX_BEACON_MS
            || self.to_ms > 48 * 3600 * 1000
        {
            return Err(ApiError::bad_request(
                "invalid_progress",
                "from_ms and to_ms: 0 <= from_ms < to_ms <= from_ms + 60000",
            ));
        }
        Ok(())
    }
}

/// Records a watched stretch of a replay: the raw beacon, the per-second
/// views, the viewer's total, and its xAPI statement, in one transaction.
pub(crate) async fn record_progress(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    user: Uuid,
    p: &Progress,
) -> ApiResult<()> {
    let mut tx = app.db().begin().await?;
    let (beacon,): (i64,) = sqlx::query_as(
        "INSERT INTO replay_beacons (tenant_id, session_id, user_id, from_ms, to_ms)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant)
    .bind(session)
    .bind(user)
    .bind(p.from_ms)
    .bind(p.to_ms)
    .fetch_one(&mut *tx)
    .await?;
    let first = (p.from_ms / 1000) as i32;
    let last = ((p.to_ms - 1) / 1000) as i32;
    sqlx::query(
        "INSERT INTO analytics_replay_seconds (session_id, second, views)
         SELECT $1, s, 1 FROM generate_series($2::int, $3::int) s
         ON CONFLICT (session_id, second) DO UPDATE SET views = analytics_replay_seconds.views + 1",
    )
    .bind(session)
    .bind(first)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO analytics_replay_viewers (session_id, tenant_id, user_id, watched_ms, last_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (session_id, user_id) DO UPDATE SET
           watched_ms = analytics_replay_viewers.watched_ms + EXCLUDED.watched_ms, last_at = now()",
    )
    .bind(session)
    .bind(tenant)
    .bind(user)
    .bind(p.to_ms - p.from_ms)
    .execute(&mut *tx)
    .await?;
    let home = super::xapi::home_page(&app.config().public_url);
    super::xapi::queue_watched(
        &mut tx, &home, tenant, session, user, beacon, p.from_ms, p.to_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /replays/{id}/progress`: the replay page says which stretch of the
/// media the viewer watched (every few seconds while playing).
#[utoipa::path(post, path = "/replays/{id}/progress", operation_id = "replay_progress", tag = "analytics",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The replay")),
    request_body = Progress,
    responses(
        (status = 204, description = "Counted"),
        (status = 400, description = "Invalid replay id, or a stretch that is empty, backwards or longer than 60 s (`invalid_progress`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "An enrolled-only replay of a course the caller is not on", body = ApiErrorBody),
        (status = 404, description = "No such replay in the tenant", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many beacons (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn progress(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: crate::http::extract::JsonBody<Progress>,
) -> ApiResult<axum::http::StatusCode> {
    let id: Uuid = ids.get(0)?;
    body.value.check()?;
    app.console_limits()
        .take(auth.user_id, crate::console::rate_limit::Kind::Beacon)?;
    let r = crate::replays::replay_by_id(&app, id)
        .await?
        .ok_or(ApiError::not_found("replay"))?;
    crate::replays::may_open(&app, &auth, &r).await?;
    record_progress(
        &app,
        r.tenant_id,
        r.session_id,
        auth.user_id.as_uuid(),
        &body.value,
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
