//! Courses, lessons and lesson runs: the schedule a class starts from.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use protocol::{CourseId, EdgeId, LessonId, LessonRunId, Role, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{IdempotencyKey, JsonBody, PathIds};
use crate::idempotency;
use crate::identity::Auth;

fn title(t: &str) -> ApiResult<String> {
    let t = t.trim();
    let n = t.chars().count();
    if n == 0 || n > 200 {
        return Err(ApiError::bad_request(
            "invalid_title",
            "title must be 1 to 200 characters",
        ));
    }
    Ok(t.to_owned())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCourse {
    /// 1 to 200 characters (trimmed).
    title: String,
}

/// A course as created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Course {
    pub id: CourseId,
    pub title: String,
    pub owner_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// Creates a course; its creator is its first teacher (admins and teachers).
#[utoipa::path(post, path = "/courses", tag = "courses", operation_id = "create_course",
    request_body = NewCourse,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses(
        (status = 201, description = "Created", body = Course),
        (status = 400, description = "Bad body, title or Idempotency-Key", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or teacher", body = ApiErrorBody),
        (status = 409, description = "The key was used with another body, or its first request is still running", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub async fn create_course(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<NewCourse>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let t = title(&body.value.title)?;
    idempotency::run(&app, &auth, key, "POST /courses", &body.raw, || async {
        let id = Uuid::now_v7();
        let mut tx = app.db().begin().await?;
        let (created_at,): (DateTime<Utc>,) = sqlx::query_as(
            "INSERT INTO courses (id, tenant_id, title, owner_id) VALUES ($1, $2, $3, $4) RETURNING created_at",
        )
        .bind(id)
        .bind(auth.tenant_id.as_uuid())
        .bind(&t)
        .bind(auth.user_id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        // the course's creator is its first teacher
        sqlx::query(
            "INSERT INTO course_members (tenant_id, course_id, user_id, role, added_by)
             VALUES ($1, $2, $3, 'teacher', $3)",
        )
        .bind(auth.tenant_id.as_uuid())
        .bind(id)
        .bind(auth.user_id.as_uuid())
        .execute(&mut *tx)
        .await?;
        crate::audit::record_tx(&mut tx, auth.tenant_id, Some(auth.user_id), "course.created", "course", &id.to_string(), json!({"title": t}))
            .await?;
        tx.commit().await?;
        let course = Course { id: id.into(), title: t.clone(), owner_id: auth.user_id, created_at };
        Ok((StatusCode::CREATED, serde_json::to_value(course).map_err(anyhow::Error::new)?))
    })
    .await
}

/// A course in the caller's list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CourseListItem {
    pub id: CourseId,
    pub title: String,
    pub owner_id: UserId,
    pub created_at: DateTime<Utc>,
    /// teacher, assistant or student; null for an admin not on the roster.
    pub my_role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseList {
    pub courses: Vec<CourseListItem>,
}

/// The caller's courses, newest first (an admin: every course of the tenant).
#[utoipa::path(get, path = "/courses", tag = "courses", operation_id = "list_courses",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to 500 courses", body = CourseList),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ))]
pub async fn list_courses(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<CourseList>> {
    // an admin sees the tenant's courses; anyone else the courses they are
    // on the roster of, with their role there
    let rows: Vec<(Uuid, String, Uuid, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT c.id, c.title, c.owner_id, c.created_at, m.role::text
           FROM courses c
           LEFT JOIN course_members m ON m.course_id = c.id AND m.user_id = $2
          WHERE c.tenant_id = $1 AND ($3 OR m.user_id IS NOT NULL)
          ORDER BY c.created_at DESC LIMIT 500",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(auth.role == protocol::Role::Admin)
    .fetch_all(app.db())
    .await?;
    let courses = rows
        .into_iter()
        .map(|(id, title, owner, at, role)| CourseListItem {
            id: id.into(),
            title,
            owner_id: owner.into(),
            created_at: at,
            my_role: role,
        })
        .collect();
    Ok(Json(CourseList { courses }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LessonRef {
    pub id: LessonId,
    pub title: String,
}

/// A course with its lessons.
#[derive(Debug, Serialize, ToSchema)]
pub struct CourseDetail {
    pub id: CourseId,
    pub title: String,
    pub owner_id: UserId,
    pub created_at: DateTime<Utc>,
    /// The caller's role on the roster; null for an admin not on it.
    pub my_role: Option<Role>,
    /// In the order they were created.
    pub lessons: Vec<LessonRef>,
    /// The course is on legal hold: retention removes nothing of it.
    pub legal_hold: bool,
}

/// A course and its lessons (its roster and admins).
#[utoipa::path(get, path = "/courses/{id}", tag = "courses", operation_id = "get_course",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The course")),
    responses(
        (status = 200, description = "The course", body = CourseDetail),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not on the course's roster", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
    ))]
pub async fn get_course(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<CourseDetail>> {
    let id: CourseId = ids.get(0)?;
    let my_role = crate::console::course_role(&app, &auth, id).await?;
    if my_role.is_none() && auth.role != protocol::Role::Admin {
        return Err(ApiError::forbidden(
            "not_enrolled",
            "you are not on this course's roster",
        ));
    }
    let row: Option<(String, Uuid, DateTime<Utc>, bool)> = sqlx::query_as(
        "SELECT title, owner_id, created_at, legal_hold FROM courses WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (title, owner, at, legal_hold) = row.ok_or(ApiError::not_found("course"))?;
    let lessons: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, title FROM lessons WHERE course_id = $1 AND tenant_id = $2 ORDER BY created_at",
    )
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    Ok(Json(CourseDetail {
        id,
        title,
        owner_id: owner.into(),
        created_at: at,
        my_role,
        lessons: lessons
            .into_iter()
            .map(|(id, title)| LessonRef {
                id: id.into(),
                title,
            })
            .collect(),
        legal_hold,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLesson {
    course_id: CourseId,
    /// 1 to 200 characters (trimmed).
    title: String,
}

/// A lesson as created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lesson {
    pub id: LessonId,
    pub course_id: CourseId,
    pub title: String,
}

/// Adds a lesson to a course (admins and the course's teachers).
#[utoipa::path(post, path = "/lessons", tag = "courses", operation_id = "create_lesson",
    request_body = NewLesson,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses(
        (status = 201, description = "Created", body = Lesson),
        (status = 400, description = "Bad body, title or Idempotency-Key", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or a teacher of the course", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
        (status = 409, description = "The key was used with another body, or its first request is still running", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub async fn create_lesson(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<NewLesson>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let t = title(&body.value.title)?;
    let course = body.value.course_id;
    idempotency::run(&app, &auth, key, "POST /lessons", &body.raw, || async {
        crate::console::require_course_teacher(&app, &auth, course).await?;
        let id = Uuid::now_v7();
        let mut tx = app.db().begin().await?;
        sqlx::query(
            "INSERT INTO lessons (id, tenant_id, course_id, title) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(auth.tenant_id.as_uuid())
        .bind(course.as_uuid())
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            "lesson.created",
            "lesson",
            &id.to_string(),
            json!({"course_id": course}),
        )
        .await?;
        tx.commit().await?;
        let lesson = Lesson {
            id: id.into(),
            course_id: course,
            title: t.clone(),
        };
        Ok((
            StatusCode::CREATED,
            serde_json::to_value(lesson).map_err(anyhow::Error::new)?,
        ))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLessonRun {
    lesson_id: LessonId,
    #[serde(default)]
    scheduled_start: Option<DateTime<Utc>>,
    /// Start the class on this edge.
    #[serde(default)]
    #[schema(value_type = Option<EdgeId>)]
    edge_id: Option<String>,
    /// Or on an edge of this region (1 to 64 characters).
    #[serde(default)]
    region: Option<String>,
}

/// A lesson run as created.
#[derive(Debug, Serialize, ToSchema)]
pub struct LessonRun {
    pub id: LessonRunId,
    pub lesson_id: LessonId,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub edge_id: Option<String>,
    pub region: Option<String>,
}

/// Schedules a run of a lesson (admins and the course's teachers).
#[utoipa::path(post, path = "/lesson-runs", tag = "courses", operation_id = "create_lesson_run",
    request_body = NewLessonRun,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses(
        (status = 201, description = "Created", body = LessonRun),
        (status = 400, description = "Bad body, edge id, region or Idempotency-Key", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or a teacher of the course", body = ApiErrorBody),
        (status = 404, description = "No such lesson in the tenant", body = ApiErrorBody),
        (status = 409, description = "The key was used with another body, or its first request is still running", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub async fn create_lesson_run(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<NewLessonRun>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let NewLessonRun {
        lesson_id,
        scheduled_start,
        edge_id,
        region,
    } = body.value;
    if let Some(e) = &edge_id {
        EdgeId::new(e.clone())
            .map_err(|e| ApiError::bad_request("invalid_edge_id", e.to_string()))?;
    }
    if region
        .as_deref()
        .is_some_and(|r| r.is_empty() || r.len() > 64)
    {
        return Err(ApiError::bad_request(
            "invalid_region",
            "region must be 1 to 64 characters",
        ));
    }
    if scheduled_start.is_some_and(|t| !(1970..=9999).contains(&chrono::Datelike::year(&t))) {
        return Err(ApiError::bad_request(
            "invalid_scheduled_start",
            "scheduled_start must fall in the years 1970 to 9999",
        ));
    }
    idempotency::run(&app, &auth, key, "POST /lesson-runs", &body.raw, || async {
        let course: Option<(Uuid,)> = sqlx::query_as("SELECT course_id FROM lessons WHERE id = $1 AND tenant_id = $2")
            .bind(lesson_id.as_uuid())
            .bind(auth.tenant_id.as_uuid())
            .fetch_optional(app.db())
            .await?;
        let (course,) = course.ok_or(ApiError::not_found("lesson"))?;
        crate::console::require_course_teacher(&app, &auth, course.into()).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO lesson_runs (id, tenant_id, lesson_id, scheduled_start, edge_id, region, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(auth.tenant_id.as_uuid())
        .bind(lesson_id.as_uuid())
        .bind(scheduled_start)
        .bind(&edge_id)
        .bind(&region)
        .bind(auth.user_id.as_uuid())
        .execute(app.db())
        .await?;
        let run = LessonRun {
            id: id.into(),
            lesson_id,
            scheduled_start,
            edge_id: edge_id.clone(),
            region: region.clone(),
        };
        Ok((
            StatusCode::CREATED,
            serde_json::to_value(run).map_err(anyhow::Error::new)?,
        ))
    })
    .await
}
