//! Enrollment: a course's roster. Its teachers (and admins) add and remove
//! members; its teachers and assistants read it. The roster decides who may
//! join a class of the course (403 `not_enrolled` otherwise) and who may run
//! one; each live class of the course gets every change through its writer
//! (`roster.changed`), so the edge refuses what core refuses.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::event::EventBody;
use protocol::{Actor, Command, CourseId, EdgeId, Role, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::rate_limit::Kind;
use super::users::{LineError, csv_body};
use super::{course_role_of, require_course_staff, require_course_teacher};
use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::identity::Auth;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Member {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// teacher, assistant or student (of this course)
    pub role: String,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberList {
    pub members: Vec<Member>,
}

const SELECT_MEMBER: &str =
    "SELECT m.user_id, u.email, u.display_name, m.role::text AS role, m.added_at
     FROM course_members m JOIN users u ON u.id = m.user_id AND u.tenant_id = m.tenant_id";

/// The course's roster: teachers first, then assistants, then students.
#[utoipa::path(get, path = "/courses/{id}/members", operation_id = "list_members", tag = "console",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The course")),
    responses(
        (status = 200, description = "The roster", body = MemberList),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not staff of this course", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<MemberList>> {
    let course: CourseId = ids.get(0)?;
    require_course_staff(&app, &auth, course).await?;
    let members: Vec<Member> = sqlx::query_as(&format!(
        "{SELECT_MEMBER} WHERE m.course_id = $1 AND m.tenant_id = $2
         ORDER BY m.role, u.display_name, u.email"
    ))
    .bind(course.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    Ok(Json(MemberList { members }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMember {
    /// The user to enroll (or give `email`).
    #[schema(value_type = Option<String>, format = Uuid)]
    user_id: Option<Uuid>,
    /// The user's email, instead of `user_id`.
    email: Option<String>,
    /// teacher, assistant or student
    role: String,
}

/// Enrolls a user in the course, or changes their role in it (the course's
/// teachers, admins). 201 for a new member, 200 for a change.
#[utoipa::path(post, path = "/courses/{id}/members", operation_id = "add_member", tag = "console", request_body = NewMember,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The course")),
    responses(
        (status = 201, description = "Enrolled", body = Member),
        (status = 200, description = "Already a member; the role is as asked", body = Member),
        (status = 400, description = "Bad role or no user named", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of this course", body = ApiErrorBody),
        (status = 404, description = "No such course or user in the tenant", body = ApiErrorBody),
        (status = 409, description = "Would leave the course without a teacher", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes", body = ApiErrorBody),
    ))]
pub(crate) async fn add(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<NewMember>,
) -> ApiResult<Response> {
    let course: CourseId = ids.get(0)?;
    require_course_teacher(&app, &auth, course).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = body.value;
    let role = course_role_of(&b.role)?;
    let user: Option<(Uuid,)> = match (b.user_id, b.email.as_deref()) {
        (Some(id), None) => {
            sqlx::query_as("SELECT id FROM users WHERE id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(auth.tenant_id.as_uuid())
                .fetch_optional(app.db())
                .await?
        }
        (None, Some(email)) if email.len() <= 320 => {
            sqlx::query_as("SELECT id FROM users WHERE email = $1 AND tenant_id = $2")
                .bind(email.trim().to_lowercase())
                .bind(auth.tenant_id.as_uuid())
                .fetch_optional(app.db())
                .await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_member",
                "name the user by user_id or by email (one of them)",
            ));
        }
    };
    let (user,) = user.ok_or(ApiError::not_found("user"))?;
    let mut tx = app.db().begin().await?;
    let before: Option<(String,)> = sqlx::query_as(
        "SELECT role::text FROM course_members WHERE course_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(course.as_uuid())
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    if before.as_ref().is_some_and(|(r,)| r == "teacher") && role != Role::Teacher {
        last_teacher_guard(&mut tx, course, user).await?;
    }
    sqlx::query(
        "INSERT INTO course_members (tenant_id, course_id, user_id, role, added_by)
         VALUES ($1, $2, $3, $4::course_role, $5)
         ON CONFLICT (course_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(course.as_uuid())
    .bind(user)
    .bind(role.as_str())
    .bind(auth.user_id.as_uuid())
    .execute(&mut *tx)
    .await?;
    let changed = before.as_ref().map(|(r,)| r.as_str()) != Some(role.as_str());
    if changed {
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            if before.is_some() {
                "course.member_changed"
            } else {
                "course.member_added"
            },
            "course",
            &course.to_string(),
            json!({ "user_id": user, "role": role, "from": before.as_ref().map(|b| b.0.clone()) }),
        )
        .await?;
    }
    let member: Member = sqlx::query_as(&format!(
        "{SELECT_MEMBER} WHERE m.course_id = $1 AND m.user_id = $2"
    ))
    .bind(course.as_uuid())
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    let created = before.is_none();
    tx.commit().await?;
    if changed {
        push_change(&app, course, user.into(), Some(role)).await;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(member)).into_response())
}

/// A course keeps at least one teacher: someone must be able to run it.
async fn last_teacher_guard(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    course: CourseId,
    leaving: Uuid,
) -> ApiResult<()> {
    let (others,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM course_members WHERE course_id = $1 AND role = 'teacher' AND user_id <> $2",
    )
    .bind(course.as_uuid())
    .bind(leaving)
    .fetch_one(&mut **tx)
    .await?;
    if others == 0 {
        return Err(ApiError::conflict(
            "last_teacher",
            "a course needs at least one teacher; add another first",
        ));
    }
    Ok(())
}

/// Enrolls many users at once from CSV (the course's teachers, admins): a
/// header `email,role`, then one member a line. Existing members take the
/// role given; unknown emails and bad lines are reported by line.
#[utoipa::path(post, path = "/courses/{id}/members/import", operation_id = "import_members", tag = "console",
    request_body(content = String, content_type = "text/csv",
        description = "A header `email,role`, then one member a line"),
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The course")),
    responses(
        (status = 200, description = "Who was enrolled or changed, and the lines refused", body = RosterReport),
        (status = 400, description = "Not CSV, a wrong header or too many lines", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of this course", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many uploads", body = ApiErrorBody),
    ))]
pub(crate) async fn import(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RosterReport>> {
    let course: CourseId = ids.get(0)?;
    require_course_teacher(&app, &auth, course).await?;
    let body = csv_body(&headers, body)?;
    app.console_limits()
        .take(auth.user_id, Kind::RosterImport)?;
    let (rows, mut errors) = read_roster(&body)?;
    let mut report = RosterReport {
        enrolled: Vec::new(),
        errors: Vec::new(),
    };
    let mut tx = app.db().begin().await?;
    let mut changes = Vec::new();
    for (line, email, role) in rows {
        let user: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "SELECT u.id, m.role::text FROM users u
               LEFT JOIN course_members m ON m.user_id = u.id AND m.course_id = $3
              WHERE u.email = $1 AND u.tenant_id = $2",
        )
        .bind(&email)
        .bind(auth.tenant_id.as_uuid())
        .bind(course.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user, before)) = user else {
            errors.push(LineError {
                line,
                message: format!("no user with the email {email}"),
            });
            continue;
        };
        if before.as_deref() == Some("teacher")
            && role != Role::Teacher
            && let Err(e) = last_teacher_guard(&mut tx, course, user).await
        {
            errors.push(LineError {
                line,
                message: e.to_string(),
            });
            continue;
        }
        sqlx::query(
            "INSERT INTO course_members (tenant_id, course_id, user_id, role, added_by)
             VALUES ($1, $2, $3, $4::course_role, $5)
             ON CONFLICT (course_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(auth.tenant_id.as_uuid())
        .bind(course.as_uuid())
        .bind(user)
        .bind(role.as_str())
        .bind(auth.user_id.as_uuid())
        .execute(&mut *tx)
        .await?;
        if before.as_deref() != Some(role.as_str()) {
            changes.push((UserId::from(user), role));
        }
        report.enrolled.push(EnrolledLine {
            line,
            user_id: user,
            email,
            role: role.as_str().to_owned(),
        });
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "course.roster_imported",
        "course",
        &course.to_string(),
        json!({ "enrolled": report.enrolled.len(), "changed": changes.len(), "errors": errors.len() }),
    )
    .await?;
    tx.commit().await?;
    for (user, role) in changes {
        push_change(&app, course, user, Some(role)).await;
    }
    errors.sort_by_key(|e| e.line);
    report.errors = errors;
    Ok(Json(report))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnrolledLine {
    pub line: usize,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RosterReport {
    /// Members enrolled or whose role is now the one given.
    pub enrolled: Vec<EnrolledLine>,
    pub errors: Vec<LineError>,
}

/// Reads a roster CSV: `email,role` lines after the header.
fn read_roster(bytes: &[u8]) -> ApiResult<(Vec<(usize, String, Role)>, Vec<LineError>)> {
    let records = super::users::csv_records(bytes, &["email", "role"])?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, rec) in records {
        let rec = match rec {
            Ok(r) => r,
            Err(message) => {
                errors.push(LineError { line, message });
                continue;
            }
        };
        let email = rec[0].to_lowercase();
        match course_role_of(&rec[1].to_lowercase()) {
            _ if !email.contains('@') => errors.push(LineError {
                line,
                message: "that is not an email address".into(),
            }),
            _ if !seen.insert(email.clone()) => errors.push(LineError {
                line,
                message: format!("{email} appears earlier in the file"),
            }),
            Ok(role) => rows.push((line, email, role)),
            Err(e) => errors.push(LineError {
                line,
                message: e.to_string(),
            }),
        }
    }
    Ok((rows, errors))
}

/// Takes a user off the course's roster (the course's teachers, admins).
#[utoipa::path(delete, path = "/courses/{id}/members/{user_id}", operation_id = "remove_member", tag = "console",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The course"),
        ("user_id" = String, Path, format = Uuid, description = "The member"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of this course", body = ApiErrorBody),
        (status = 404, description = "No such course, or not a member", body = ApiErrorBody),
        (status = 409, description = "The course's last teacher", body = ApiErrorBody),
        (status = 429, description = "Too many changes", body = ApiErrorBody),
    ))]
pub(crate) async fn remove(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let course: CourseId = ids.get(0)?;
    let user: UserId = ids.get(1)?;
    require_course_teacher(&app, &auth, course).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let mut tx = app.db().begin().await?;
    let before: Option<(String,)> = sqlx::query_as(
        "SELECT role::text FROM course_members WHERE course_id = $1 AND user_id = $2 AND tenant_id = $3 FOR UPDATE",
    )
    .bind(course.as_uuid())
    .bind(user.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let (role,) = before.ok_or(ApiError::not_found("member"))?;
    if role == "teacher" {
        last_teacher_guard(&mut tx, course, user.as_uuid()).await?;
    }
    sqlx::query("DELETE FROM course_members WHERE course_id = $1 AND user_id = $2")
        .bind(course.as_uuid())
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "course.member_removed",
        "course",
        &course.to_string(),
        json!({ "user_id": user, "role": role }),
    )
    .await?;
    tx.commit().await?;
    push_change(&app, course, user, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The roster as the session writer holds it.
pub(crate) async fn roster(app: &AppState, course: CourseId) -> ApiResult<BTreeMap<UserId, Role>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT user_id, role::text FROM course_members WHERE course_id = $1")
            .bind(course.as_uuid())
            .fetch_all(app.db())
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(u, r)| r.parse().ok().map(|r| (u.into(), r)))
        .collect())
}

/// Hands a live class its roster (right after it started).
pub(crate) async fn send_roster(
    app: &AppState,
    edge: &EdgeId,
    session: SessionId,
    course: CourseId,
) -> ApiResult<()> {
    let members = roster(app, course).await?;
    send(app, edge, session, EventBody::RosterSet { members }).await
}

/// Tells every live class of the course about one roster change. Best
/// effort: core checks the roster itself on every join, so a class that
/// missed a change (its edge away) is still guarded; a later start carries
/// the whole roster again.
async fn push_change(app: &AppState, course: CourseId, user: UserId, role: Option<Role>) {
    let live: Result<Vec<(Uuid, String)>, sqlx::Error> = sqlx::query_as(
        "SELECT s.id, s.edge_id FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
          WHERE l.course_id = $1 AND s.status = 'live'",
    )
    .bind(course.as_uuid())
    .fetch_all(app.db())
    .await;
    let live = match live {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, course_id = %course, "could not list live classes for a roster change");
            return;
        }
    };
    for (session, edge) in live {
        let Ok(edge) = EdgeId::new(edge) else {
            continue;
        };
        let body = EventBody::RosterChanged {
            user_id: user,
            role,
        };
        if let Err(e) = send(app, &edge, session.into(), body).await {
            tracing::warn!(error = %e, session_id = %session, edge_id = %edge, "roster change not delivered to a live class");
        }
    }
}

async fn send(
    app: &AppState,
    edge: &EdgeId,
    session: SessionId,
    event: EventBody,
) -> ApiResult<()> {
    let req = EdgeRequest::Command {
        session_id: session,
        actor: Actor::System,
        command: Command::System { event },
    };
    match app.edge_link().request(edge, &req).await {
        Ok(EdgeReply::Done { events, .. }) => {
            if let Err(e) = crate::events::ingest::absorb(app.db(), app.vault(), &events).await {
                tracing::warn!(error = ?e, "writing the roster event now failed; ingest will");
            }
            Ok(())
        }
        Ok(other) => Err(ApiError::Internal(anyhow::anyhow!(
            "the edge refused the roster: {other:?}"
        ))),
        Err(e) => Err(ApiError::unavailable("edge_unreachable", e.to_string())),
    }
}
