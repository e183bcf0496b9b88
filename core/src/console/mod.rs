//! The console API: users, enrollment, discovery, tenant settings and the
//! audit log. What the admin console and the class pages are built on.
//!
//! Course access is decided here once (`course_role`, `require_course_teacher`)
//! and used by every route that touches a course: a tenant admin may do
//! anything in the tenant; everyone else acts through their place on the
//! course's roster (`course_members`).

pub(crate) mod audit_log;
pub(crate) mod discovery;
pub(crate) mod members;
pub(crate) mod rate_limit;
pub(crate) mod settings;
pub(crate) mod users;

use protocol::{CourseId, Role};
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::identity::Auth;

/// The roles a course member can have.
pub(crate) const COURSE_ROLES: [Role; 3] = [Role::Teacher, Role::Assistant, Role::Student];

/// Parses a course role (`teacher`, `assistant`, `student`).
pub(crate) fn course_role_of(s: &str) -> ApiResult<Role> {
    match s.parse::<Role>() {
        Ok(r) if COURSE_ROLES.contains(&r) => Ok(r),
        _ => Err(ApiError::bad_request(
            "invalid_role",
            "a course role is teacher, assistant or student",
        )),
    }
}

/// The caller's role in a course of their tenant (`None`: not a member).
/// A course of another tenant, or none, is 404.
pub(crate) async fn course_role(
    app: &AppState,
    auth: &Auth,
    course: CourseId,
) -> ApiResult<Option<Role>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT m.role::text FROM courses c
           LEFT JOIN course_members m ON m.course_id = c.id AND m.user_id = $3
          WHERE c.id = $1 AND c.tenant_id = $2",
    )
    .bind(course.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (role,) = row.ok_or(ApiError::not_found("course"))?;
    Ok(role.and_then(|r| r.parse().ok()))
}

/// Admins, and the course's teachers, manage a course (its lessons, its
/// roster, its classes).
pub(crate) async fn require_course_teacher(
    app: &AppState,
    auth: &Auth,
    course: CourseId,
) -> ApiResult<()> {
    let role = course_role(app, auth, course).await?;
    if auth.role == Role::Admin || role == Some(Role::Teacher) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_course_teacher",
            "only the course's teachers (or an admin) may do this",
        ))
    }
}

/// Admins, and the course's teachers and assistants, see its roster.
pub(crate) async fn require_course_staff(
    app: &AppState,
    auth: &Auth,
    course: CourseId,
) -> ApiResult<()> {
    let role = course_role(app, auth, course).await?;
    if auth.role == Role::Admin || matches!(role, Some(Role::Teacher | Role::Assistant)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_course_staff",
            "only the course's teachers and assistants (or an admin) may see this",
        ))
    }
}

/// The course a session belongs to.
pub(crate) async fn course_of_session(app: &AppState, session: Uuid) -> ApiResult<CourseId> {
    let (course,): (Uuid,) = sqlx::query_as(
        "SELECT l.course_id FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
          WHERE s.id = $1",
    )
    .bind(session)
    .fetch_one(app.db())
    .await?;
    Ok(course.into())
}

/// A page size from `?limit=`: 1 to `max`, `default` when absent.
pub(crate) fn page_limit(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {max}"),
        )),
    }
}
