//! Destinations attached before a class starts: to its lesson run. The
//! start carries them into the session and sends them to the class's edge
//! with its first seconds, so a scheduled lecture goes out as it begins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use protocol::SessionId;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AttachBody, Holder, attach_to, detach_from, send_targets};
use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::identity::Auth;

/// A destination a lesson run's class will stream to.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct RunDestination {
    pub destination_id: Uuid,
    pub name: String,
    pub kind: String,
    pub audience: String,
    pub attached_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDestinationList {
    pub destinations: Vec<RunDestination>,
}

/// The run, if it is the caller's tenant's and the caller teaches its
/// course (or is an admin).
async fn require_run_teacher(app: &AppState, auth: &Auth, run: Uuid) -> ApiResult<()> {
    auth.require_staff()?;
    let course: Option<(Uuid,)> = sqlx::query_as(
        "SELECT l.course_id FROM lesson_runs r
           JOIN lessons l ON l.id = r.lesson_id AND l.tenant_id = r.tenant_id
          WHERE r.id = $1 AND r.tenant_id = $2",
    )
    .bind(run)
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (course,) = course.ok_or(ApiError::not_found("lesson_run"))?;
    crate::console::require_course_teacher(app, auth, course.into()).await
}

async fn run_list(app: &AppState, auth: &Auth, run: Uuid) -> ApiResult<RunDestinationList> {
    let destinations = sqlx::query_as(
        "SELECT d.id AS destination_id, d.name, d.kind, d.audience, rd.attached_at
           FROM lesson_run_destinations rd
           JOIN destinations d ON d.id = rd.destination_id AND d.deleted_at IS NULL
          WHERE rd.lesson_run_id = $1 AND rd.tenant_id = $2
          ORDER BY rd.attached_at, d.id",
    )
    .bind(run)
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    Ok(RunDestinationList { destinations })
}

/// Streams a lesson run's class to a destination from its start (the
/// course's teachers, admins; audited).
#[utoipa::path(post, path = "/lesson-runs/{id}/destinations", operation_id = "attach_run_destination", tag = "multistream",
    request_body = AttachBody,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The lesson run")),
    responses(
        (status = 201, description = "Attached; the class streams to it once started", body = RunDestinationList),
        (status = 400, description = "Bad id or body", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such lesson run or destination in the tenant", body = ApiErrorBody),
        (status = 409, description = "Attached already (`already_attached`), or the most a class may have (`too_many_destinations`)", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn attach(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<AttachBody>,
) -> ApiResult<(StatusCode, Json<RunDestinationList>)> {
    let run: Uuid = ids.get(0)?;
    require_run_teacher(&app, &auth, run).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let dest = body.value.destination_id;
    attach_to(&app, &auth, Holder::Run(run), dest).await?;
    Ok((StatusCode::CREATED, Json(run_list(&app, &auth, run).await?)))
}

/// The destinations a lesson run's class will stream to.
#[utoipa::path(get, path = "/lesson-runs/{id}/destinations", operation_id = "run_destinations", tag = "multistream",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The lesson run")),
    responses(
        (status = 200, description = "In the order attached", body = RunDestinationList),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such lesson run in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<RunDestinationList>> {
    let run: Uuid = ids.get(0)?;
    require_run_teacher(&app, &auth, run).await?;
    Ok(Json(run_list(&app, &auth, run).await?))
}

/// Stops a lesson run's class from streaming to a destination when it
/// starts (the course's teachers, admins; audited). A live class is
/// changed through its session.
#[utoipa::path(delete, path = "/lesson-runs/{id}/destinations/{destination_id}", operation_id = "detach_run_destination", tag = "multistream",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The lesson run"),
        ("destination_id" = String, Path, format = Uuid, description = "The destination"),
    ),
    responses(
        (status = 204, description = "Detached"),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such lesson run, or the destination is not attached", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn detach(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let run: Uuid = ids.get(0)?;
    let dest: Uuid = ids.get(1)?;
    require_run_teacher(&app, &auth, run).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    detach_from(&app, &auth, Holder::Run(run), dest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// At a class's start: its lesson run's destinations become the session's
/// and go to its edge. The class has started either way; a failure here is
/// logged and the teacher attaches again.
pub(crate) async fn carry_into(app: &AppState, run: Uuid, session: SessionId) {
    let carried = sqlx::query(
        "INSERT INTO session_destinations (session_id, destination_id, tenant_id, attached_by, attached_at)
         SELECT $2, rd.destination_id, rd.tenant_id, rd.attached_by, now()
           FROM lesson_run_destinations rd
           JOIN destinations d ON d.id = rd.destination_id AND d.deleted_at IS NULL
          WHERE rd.lesson_run_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(run)
    .bind(session.as_uuid())
    .execute(app.db())
    .await;
    match carried {
        Ok(r) if r.rows_affected() == 0 => {}
        Ok(r) => {
            tracing::info!(session_id = %session, destinations = r.rows_affected(), "streaming from the start");
            if let Err(e) = send_targets(app, session).await {
                tracing::warn!(session_id = %session, error = ?e, "the class started without its destinations on the edge");
            }
        }
        Err(e) => {
            tracing::warn!(session_id = %session, error = %e, "the lesson run's destinations were not carried into the class")
        }
    }
}
