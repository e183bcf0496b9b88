//! `GET /students/{id}/analytics`: a student across their courses.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::routes::*;
use crate::AppState;
use crate::console::course_role;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;
use protocol::{CourseId, Role};

/// A student's answer to a poll.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MyAnswer {
    pub question: String,
    pub option: i32,
    pub answer: String,
    pub correct: Option<bool>,
}

/// A student in one class.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StudentClass {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    pub title: String,
    pub started_at: DateTime<Utc>,
    pub attended: bool,
    pub figures: Option<StudentInClass>,
    /// Their poll answers (absent for attendance only).
    pub answers: Vec<MyAnswer>,
    /// Minutes of the class's replay they watched.
    pub replay_minutes: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StudentCourse {
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub title: String,
    pub attended_runs: i64,
    pub runs: i64,
    pub attendance_rate: f64,
    pub classes: Vec<StudentClass>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StudentAnalytics {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub display_name: String,
    /// A minor: attendance only.
    pub minor: bool,
    pub courses: Vec<StudentCourse>,
}

/// A student's figures across their courses: the student themself, the
/// staff of the student's courses (those courses), admins.
#[utoipa::path(get, path = "/students/{id}/analytics", operation_id = "student_analytics", tag = "analytics",
    params(("id" = Uuid, Path, description = "The student's user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Per course, per class: attendance, participation, poll answers and replay viewing; `Accept: text/csv` gives one line per class", body = StudentAnalytics,
            content((StudentAnalytics = "application/json"), (String = "text/csv"))),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Another student, or a student of none of the caller's courses (`not_your_student`)", body = ApiErrorBody),
        (status = 404, description = "No such user in the tenant", body = ApiErrorBody),
        (status = 429, description = "Too many reads (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn student(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user: Uuid = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Analytics)?;
    let tenant = auth.tenant_id.as_uuid();
    let who: Option<(String, bool)> = sqlx::query_as(
        "SELECT display_name, minor FROM users WHERE id = $1 AND tenant_id = $2 AND erased_at IS NULL",
    )
    .bind(user)
    .bind(tenant)
    .fetch_optional(app.db())
    .await?;
    let (display_name, minor) = who.ok_or(ApiError::not_found("user"))?;
    // the courses the student is in (roster or attendance)
    let courses: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT c.id, c.title FROM courses c WHERE c.tenant_id = $2 AND (
            EXISTS (SELECT 1 FROM course_members m WHERE m.course_id = c.id AND m.user_id = $1 AND m.role = 'student')
         OR EXISTS (SELECT 1 FROM analytics_attendance a WHERE a.course_id = c.id AND a.user_id = $1))
         ORDER BY c.title, c.id",
    )
    .bind(user)
    .bind(tenant)
    .fetch_all(app.db())
    .await?;
    let visible: Vec<(Uuid, String)> = if auth.user_id.as_uuid() == user || auth.role == Role::Admin
    {
        courses
    } else {
        let mut v = Vec::new();
        for (c, t) in courses {
            let role = course_role(&app, &auth, CourseId::from_uuid(c)).await?;
            if matches!(role, Some(Role::Teacher | Role::Assistant)) {
                v.push((c, t));
            }
        }
        if v.is_empty() {
            return Err(ApiError::forbidden(
                "not_your_student",
                "only the student, their courses' staff and admins see a student's figures",
            ));
        }
        v
    };
    let now = Utc::now();
    let mut out = StudentAnalytics {
        user_id: user,
        display_name,
        minor,
        courses: Vec::new(),
    };
    for (cid, title) in visible {
        let runs: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT a.session_id, s.title, a.started_at FROM analytics_sessions a
               JOIN sessions s ON s.id = a.session_id
              WHERE a.course_id = $1 ORDER BY a.started_at, a.session_id",
        )
        .bind(cid)
        .fetch_all(app.db())
        .await?;
        let rows: Vec<AttendanceRow> = sqlx::query_as(&format!(
            "{ATTENDANCE} WHERE a.course_id = $1 AND a.user_id = $2"
        ))
        .bind(cid)
        .bind(user)
        .fetch_all(app.db())
        .await?;
        let answers: Vec<(Uuid, String, serde_json::Value, i32, Option<bool>)> = sqlx::query_as(
            "SELECT a.session_id, p.question, p.options, a.option, a.correct
               FROM analytics_poll_answers a
               JOIN analytics_polls p ON p.session_id = a.session_id AND p.poll_id = a.poll_id
               JOIN analytics_sessions s ON s.session_id = a.session_id
              WHERE s.course_id = $1 AND a.user_id = $2 ORDER BY p.opened_seq",
        )
        .bind(cid)
        .bind(user)
        .fetch_all(app.db())
        .await?;
        let watched: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT v.session_id, v.watched_ms FROM analytics_replay_viewers v
               JOIN analytics_sessions s ON s.session_id = v.session_id
              WHERE s.course_id = $1 AND v.user_id = $2",
        )
        .bind(cid)
        .bind(user)
        .fetch_all(app.db())
        .await?;
        let mut classes = Vec::new();
        for (sid, title, started_at) in &runs {
            let figures = rows.iter().find(|r| r.session_id == *sid).map(|r| {
                let mut s = r.student(now);
                s.attendance_only |= minor;
                if s.attendance_only {
                    s.participation = None;
                }
                s
            });
            let attendance_only = figures.as_ref().is_none_or(|f| f.attendance_only);
            classes.push(StudentClass {
                session_id: *sid,
                title: title.clone(),
                started_at: *started_at,
                attended: figures.is_some(),
                answers: if attendance_only {
                    Vec::new()
                } else {
                    answers
                        .iter()
                        .filter(|a| a.0 == *sid)
                        .map(|(_, q, opts, option, correct)| MyAnswer {
                            question: q.clone(),
                            option: *option,
                            answer: opts
                                .get(*option as usize)
                                .and_then(|o| o.as_str())
                                .unwrap_or_default()
                                .to_owned(),
                            correct: *correct,
                        })
                        .collect()
                },
                replay_minutes: round1(
                    watched
                        .iter()
                        .filter(|w| w.0 == *sid)
                        .map(|w| w.1)
                        .sum::<i64>() as f64
                        / 60_000.0,
                ),
                figures,
            });
        }
        let attended_runs = classes.iter().filter(|c| c.attended).count() as i64;
        out.courses.push(StudentCourse {
            course_id: cid,
            title,
            attended_runs,
            runs: runs.len() as i64,
            attendance_rate: round3(ratio(attended_runs, runs.len() as i64)),
            classes,
        });
    }
    if wants_csv(&headers) {
        let mut rows = vec![csv_header(&[
            "course_id",
            "course",
            "session_id",
            "class",
            "started_at",
            "attended",
            "minutes_present",
            "late",
            "left_early",
            "replay_minutes",
        ])];
        for c in &out.courses {
            for k in &c.classes {
                let f = k.figures.as_ref();
                let mut r = vec![
                    c.course_id.to_string(),
                    c.title.clone(),
                    k.session_id.to_string(),
                    k.title.clone(),
                    k.started_at.to_rfc3339(),
                    k.attended.to_string(),
                    f.map(|f| f.minutes_present.to_string()).unwrap_or_default(),
                    f.map(|f| f.late.to_string()).unwrap_or_default(),
                    f.map(|f| f.left_early.to_string()).unwrap_or_default(),
                    k.replay_minutes.to_string(),
                ];
                r.extend(participation_cells(
                    f.and_then(|f| f.participation.as_ref()),
                ));
                rows.push(r);
            }
        }
        return csv_response(&format!("student-{user}"), rows);
    }
    Ok(Json(out).into_response())
}
