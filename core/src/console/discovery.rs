//! Finding one's way in: my live and upcoming classes, a course's sessions,
//! and the replay library a user may open. Everything is scoped to the
//! caller's courses; a tenant admin sees the whole tenant.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use protocol::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_limit;
use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::QueryParams;
use crate::identity::Auth;

/// A class that is live now.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct LiveClass {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    pub title: String,
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub course_title: String,
    #[schema(value_type = String, format = Uuid)]
    pub lesson_id: Uuid,
    pub lesson_title: String,
    #[schema(value_type = String, format = Uuid)]
    pub lesson_run_id: Uuid,
    pub edge_id: String,
    pub started_at: DateTime<Utc>,
    /// teacher, assistant, student; admin for an admin who is not on the roster
    pub my_role: String,
}

/// A lesson run scheduled and not started yet.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct UpcomingClass {
    #[schema(value_type = String, format = Uuid)]
    pub lesson_run_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub course_title: String,
    #[schema(value_type = String, format = Uuid)]
    pub lesson_id: Uuid,
    pub lesson_title: String,
    pub scheduled_start: DateTime<Utc>,
    pub my_role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MyClasses {
    pub live: Vec<LiveClass>,
    /// Soonest first; runs scheduled up to two hours ago that have not
    /// started yet are still here.
    pub upcoming: Vec<UpcomingClass>,
}

/// The courses the caller may see, as a SQL condition on `c` (course) with
/// `$1` the tenant and `$2` the user: an admin sees every course of the
/// tenant, anyone else the courses they are on the roster of.
const MY_COURSES: &str = "c.tenant_id = $1 AND ($3 OR EXISTS (
    SELECT 1 FROM course_members m WHERE m.course_id = c.id AND m.user_id = $2))";
const MY_ROLE: &str = "COALESCE((SELECT m.role::text FROM course_members m
    WHERE m.course_id = c.id AND m.user_id = $2), 'admin')";

fn is_admin(auth: &Auth) -> bool {
    auth.role == Role::Admin
}

/// My live and upcoming classes.
#[utoipa::path(get, path = "/me/classes", operation_id = "my_classes", tag = "console",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live classes and scheduled ones", body = MyClasses),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ))]
pub(crate) async fn my_classes(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<MyClasses>> {
    let live: Vec<LiveClass> = sqlx::query_as(&format!(
        "SELECT s.id AS session_id, s.title, c.id AS course_id, c.title AS course_title,
                l.id AS lesson_id, l.title AS lesson_title, r.id AS lesson_run_id, s.edge_id,
                s.started_at, {MY_ROLE} AS my_role
           FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
           JOIN courses c ON c.id = l.course_id
          WHERE s.status = 'live' AND {MY_COURSES}
          ORDER BY s.started_at DESC LIMIT 100"
    ))
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(is_admin(&auth))
    .fetch_all(app.db())
    .await?;
    let upcoming: Vec<UpcomingClass> = sqlx::query_as(&format!(
        "SELECT r.id AS lesson_run_id, c.id AS course_id, c.title AS course_title,
                l.id AS lesson_id, l.title AS lesson_title, r.scheduled_start, {MY_ROLE} AS my_role
           FROM lesson_runs r
           JOIN lessons l ON l.id = r.lesson_id
           JOIN courses c ON c.id = l.course_id
          WHERE r.scheduled_start >= $4 AND {MY_COURSES}
            AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.lesson_run_id = r.id)
          ORDER BY r.scheduled_start LIMIT 100"
    ))
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(is_admin(&auth))
    .bind(Utc::now() - Duration::hours(2))
    .fetch_all(app.db())
    .await?;
    Ok(Json(MyClasses { live, upcoming }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionQuery {
    /// live or ended
    status: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    course_id: Option<Uuid>,
    /// 1 to 200; 50 when absent.
    limit: Option<i64>,
    /// A session id from `next_before`: the page starts after it (newest first).
    #[param(value_type = Option<String>, format = Uuid)]
    before: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct SessionSummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub title: String,
    /// live or ended
    pub status: String,
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub lesson_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub lesson_run_id: Uuid,
    pub edge_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub started_by: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The highest event seq core holds.
    pub last_seq: i64,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub replay_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_before: Option<Uuid>,
}

/// Sessions of the caller's courses (an admin: the tenant's), newest first.
#[utoipa::path(get, path = "/sessions", operation_id = "list_sessions", tag = "console", params(SessionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "Bad query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ))]
pub(crate) async fn sessions(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<SessionQuery>,
) -> ApiResult<Json<SessionPage>> {
    let limit = page_limit(q.limit, 50, 200)?;
    if let Some(s) = q
        .status
        .as_deref()
        .filter(|s| !["live", "ended"].contains(s))
    {
        return Err(ApiError::bad_request(
            "invalid_status",
            format!("status is live or ended, not {s:?}"),
        ));
    }
    let mut rows: Vec<SessionSummary> = sqlx::query_as(&format!(
        "SELECT s.id, s.title, s.status::text AS status, c.id AS course_id, l.id AS lesson_id,
                r.id AS lesson_run_id, s.edge_id, s.started_by, s.started_at, s.ended_at,
                s.last_seq, rp.id AS replay_id
           FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
           JOIN courses c ON c.id = l.course_id
           LEFT JOIN replays rp ON rp.session_id = s.id
          WHERE s.tenant_id = $1 AND {MY_COURSES}
            AND ($4::text IS NULL OR s.status::text = $4)
            AND ($5::uuid IS NULL OR c.id = $5)
            AND ($6::uuid IS NULL OR s.id < $6)
          ORDER BY s.id DESC LIMIT $7"
    ))
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(is_admin(&auth))
    .bind(q.status)
    .bind(q.course_id)
    .bind(q.before)
    .bind(limit + 1)
    .fetch_all(app.db())
    .await?;
    // ids are UUIDv7: their order is their start order
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|s| s.id)
    } else {
        None
    };
    Ok(Json(SessionPage {
        sessions: rows,
        next_before,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReplayQuery {
    #[param(value_type = Option<String>, format = Uuid)]
    course_id: Option<Uuid>,
    /// 1 to 200; 50 when absent.
    limit: Option<i64>,
    /// A replay's session id from `next_before`: the page starts after it.
    #[param(value_type = Option<String>, format = Uuid)]
    before: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct ReplaySummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    pub title: String,
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub course_title: String,
    /// enrolled, tenant or public
    pub visibility: String,
    pub published_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayPage {
    pub replays: Vec<ReplaySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_before: Option<Uuid>,
}

/// The replay library: every replay the caller may open, newest class first.
#[utoipa::path(get, path = "/replays", operation_id = "list_replays", tag = "console", params(ReplayQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of replays", body = ReplayPage),
        (status = 400, description = "Bad query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ))]
pub(crate) async fn replays(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<ReplayQuery>,
) -> ApiResult<Json<ReplayPage>> {
    let limit = page_limit(q.limit, 50, 200)?;
    // the same rule as opening one (`replays::may_open`): admins; tenant and
    // public replays; the course's roster; anyone who sat in its classes
    let mut rows: Vec<ReplaySummary> = sqlx::query_as(
        "SELECT rp.id, s.id AS session_id, s.title, c.id AS course_id, c.title AS course_title,
                rp.visibility, rp.published_at, s.started_at, s.ended_at
           FROM replays rp
           JOIN sessions s ON s.id = rp.session_id
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
           JOIN courses c ON c.id = l.course_id
          WHERE rp.tenant_id = $1
            AND ($3 OR rp.visibility IN ('tenant', 'public')
                 OR EXISTS (SELECT 1 FROM course_members m WHERE m.course_id = c.id AND m.user_id = $2)
                 OR EXISTS (SELECT 1 FROM participants p
                              JOIN sessions s2 ON s2.id = p.session_id
                              JOIN lesson_runs r2 ON r2.id = s2.lesson_run_id
                              JOIN lessons l2 ON l2.id = r2.lesson_id
                             WHERE p.user_id = $2 AND l2.course_id = c.id))
            AND ($4::uuid IS NULL OR c.id = $4)
            AND ($5::uuid IS NULL OR s.id < $5)
          ORDER BY s.id DESC LIMIT $6",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(is_admin(&auth))
    .bind(q.course_id)
    .bind(q.before)
    .bind(limit + 1)
    .fetch_all(app.db())
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.session_id)
    } else {
        None
    };
    Ok(Json(ReplayPage {
        replays: rows,
        next_before,
    }))
}
