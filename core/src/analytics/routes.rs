//! The analytics routes: a class, a course across its lesson runs, a
//! student across their courses; JSON, or CSV with `Accept: text/csv`.
//!
//! Who sees what: a class's and a course's figures are for the course's
//! staff (teachers, assistants) and admins, who may see its students; a
//! student's figures are for the student, the staff of the student's
//! courses (those courses only) and admins. A minor's participation and
//! poll answers are never shown (attendance only), nor those of someone
//! who declined recording.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protocol::SessionId;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::console::{course_of_session, require_course_staff};
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;

/// Joining later than this after the start is late; leaving earlier than
/// this before the end is leaving early.
pub(crate) const GRACE_MS: i64 = 5 * 60_000;

/// What a student did in a class (absent for a minor or someone who
/// declined recording: attendance only).
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub(crate) struct Participation {
    pub chat: i32,
    pub questions: i32,
    pub upvotes: i32,
    pub poll_answers: i32,
    pub poll_correct: i32,
    pub hands: i32,
    /// Speech attributed to them (captions with a known speaker).
    pub speaking_seconds: f64,
    /// Time with their microphone on (from media events).
    pub mic_seconds: f64,
}

impl Participation {
    /// Chat, questions, upvotes, poll answers and hands, summed.
    pub(super) fn interactions(&self) -> i32 {
        self.chat + self.questions + self.upvotes + self.poll_answers + self.hands
    }
}

/// A student in a class.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StudentInClass {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub display_name: String,
    pub first_join: DateTime<Utc>,
    /// Their last leave (or the class's end); absent while in the class.
    pub last_leave: Option<DateTime<Utc>>,
    pub minutes_present: f64,
    pub joins: i32,
    /// Joined more than 5 minutes after the start.
    pub late: bool,
    /// Left more than 5 minutes before the end.
    pub left_early: bool,
    /// Counted for attendance only (a minor, or declined recording).
    pub attendance_only: bool,
    pub participation: Option<Participation>,
}

/// An enrolled student who did not come.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Absent {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub display_name: String,
}

/// One minute of a class.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MinuteFigures {
    pub minute: i32,
    /// People present on average over the minute.
    pub attendees: f64,
    pub chat: i32,
    pub questions: i32,
    pub poll_answers: i32,
    pub hands: i32,
    pub speaking_seconds: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct PollFigures {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub poll_id: Uuid,
    pub question: String,
    pub options: Vec<String>,
    pub correct_option: Option<i32>,
    pub answers: i32,
    pub correct: i32,
    /// correct / answers, when the poll has a correct option and answers.
    pub accuracy: Option<f64>,
}

/// A stretch of a replay's media watched the same number of times.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub(crate) struct ReplayStretch {
    pub from_s: i32,
    pub to_s: i32,
    pub views: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ReplayFigures {
    pub viewers: i64,
    pub watched_minutes: f64,
    /// Which seconds were watched how often (unwatched seconds left out).
    pub stretches: Vec<ReplayStretch>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionAnalytics {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub title: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Students on the course's roster now.
    pub enrolled: i64,
    /// Students who came.
    pub attended: i64,
    /// attended / enrolled (0 when nobody is enrolled).
    pub attendance_rate: f64,
    pub average_minutes_present: f64,
    pub students: Vec<StudentInClass>,
    pub absent: Vec<Absent>,
    pub timeline: Vec<MinuteFigures>,
    pub polls: Vec<PollFigures>,
    pub replay: ReplayFigures,
    /// Events folded so far.
    pub events: i64,
}

pub(super) fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

pub(super) fn csv_response(name: &str, rows: Vec<Vec<String>>) -> ApiResult<Response> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))?;
    }
    let body = w
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(super) fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[derive(sqlx::FromRow)]
pub(super) struct AttendanceRow {
    pub(super) session_id: Uuid,
    pub(super) user_id: Uuid,
    pub(super) display_name: String,
    pub(super) minor: bool,
    pub(super) first_join: DateTime<Utc>,
    pub(super) last_leave: Option<DateTime<Utc>>,
    pub(super) present_ms: i64,
    pub(super) open_since: Option<DateTime<Utc>>,
    pub(super) joins: i32,
    pub(super) attendance_only: bool,
    pub(super) chat: i32,
    pub(super) questions: i32,
    pub(super) upvotes: i32,
    pub(super) poll_answers: i32,
    pub(super) poll_correct: i32,
    pub(super) hands: i32,
    pub(super) speaking_ms: i64,
    pub(super) mic_ms: i64,
    pub(super) started_at: DateTime<Utc>,
    pub(super) ended_at: Option<DateTime<Utc>>,
}

pub(super) const ATTENDANCE: &str =
    "SELECT a.session_id, a.user_id, u.display_name, u.minor, a.first_join,
        a.last_leave, a.present_ms, a.open_since, a.joins, a.attendance_only, a.chat, a.questions,
        a.upvotes, a.poll_answers, a.poll_correct, a.hands, a.speaking_ms, a.mic_ms, s.started_at, s.ended_at
   FROM analytics_attendance a
   JOIN analytics_sessions s ON s.session_id = a.session_id
   JOIN users u ON u.id = a.user_id AND u.tenant_id = a.tenant_id";

impl AttendanceRow {
    pub(super) fn student(&self, now: DateTime<Utc>) -> StudentInClass {
        let open = self.open_since.map_or(0, |since| {
            (self.ended_at.unwrap_or(now) - since)
                .num_milliseconds()
                .max(0)
        });
        let late = (self.first_join - self.started_at).num_milliseconds() > GRACE_MS;
        let left_early = match (self.last_leave, self.ended_at) {
            (Some(left), Some(end)) => (end - left).num_milliseconds() > GRACE_MS,
            _ => false,
        };
        let attendance_only = self.attendance_only || self.minor;
        StudentInClass {
            user_id: self.user_id,
            display_name: self.display_name.clone(),
            first_join: self.first_join,
            last_leave: self.last_leave,
            minutes_present: round1((self.present_ms + open) as f64 / 60_000.0),
            joins: self.joins,
            late,
            left_early,
            attendance_only,
            participation: (!attendance_only).then(|| Participation {
                chat: self.chat,
                questions: self.questions,
                upvotes: self.upvotes,
                poll_answers: self.poll_answers,
                poll_correct: self.poll_correct,
                hands: self.hands,
                speaking_seconds: round1(self.speaking_ms as f64 / 1000.0),
                mic_seconds: round1(self.mic_ms as f64 / 1000.0),
            }),
        }
    }
}

/// The class's fold, or 404 when nothing of it is folded yet.
async fn folded(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
) -> ApiResult<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>, i64, String)> {
    let row: Option<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>, i64, String)> = sqlx::query_as(
        "SELECT a.course_id, a.started_at, a.ended_at, a.events, s.title
           FROM analytics_sessions a JOIN sessions s ON s.id = a.session_id
          WHERE a.session_id = $1 AND a.tenant_id = $2",
    )
    .bind(session)
    .bind(tenant)
    .fetch_optional(app.db())
    .await?;
    row.ok_or(ApiError::not_found("analytics"))
}

pub(super) async fn enrolled_students(
    app: &AppState,
    course: Uuid,
) -> ApiResult<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.display_name FROM course_members m JOIN users u ON u.id = m.user_id
          WHERE m.course_id = $1 AND m.role = 'student' AND u.erased_at IS NULL
          ORDER BY u.display_name, u.id",
    )
    .bind(course)
    .fetch_all(app.db())
    .await?)
}

async fn replay_figures(app: &AppState, session: Uuid) -> ApiResult<ReplayFigures> {
    let (viewers, watched): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), sum(watched_ms)::bigint FROM analytics_replay_viewers WHERE session_id = $1",
    )
    .bind(session)
    .fetch_one(app.db())
    .await?;
    let seconds: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT second, views FROM analytics_replay_seconds WHERE session_id = $1 ORDER BY second",
    )
    .bind(session)
    .fetch_all(app.db())
    .await?;
    Ok(ReplayFigures {
        viewers,
        watched_minutes: round1(watched.unwrap_or(0) as f64 / 60_000.0),
        stretches: stretches(&seconds),
    })
}

/// Consecutive seconds with the same views, merged.
pub(crate) fn stretches(seconds: &[(i32, i64)]) -> Vec<ReplayStretch> {
    let mut out: Vec<ReplayStretch> = Vec::new();
    for &(s, v) in seconds {
        match out.last_mut() {
            Some(last) if last.to_s == s && last.views == v => last.to_s = s + 1,
            _ => out.push(ReplayStretch {
                from_s: s,
                to_s: s + 1,
                views: v,
            }),
        }
    }
    out
}

pub(super) async fn poll_figures(app: &AppState, sessions: &[Uuid]) -> ApiResult<Vec<PollFigures>> {
    let rows: Vec<(Uuid, Uuid, String, serde_json::Value, Option<i32>, i32, i32)> = sqlx::query_as(
        "SELECT p.session_id, p.poll_id, p.question, p.options, p.correct_option, p.answers, p.correct
           FROM analytics_polls p JOIN analytics_sessions s ON s.session_id = p.session_id
          WHERE p.session_id = ANY($1) ORDER BY s.started_at, p.opened_seq",
    )
    .bind(sessions)
    .fetch_all(app.db())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(session_id, poll_id, question, options, correct_option, answers, correct)| {
                PollFigures {
                    session_id,
                    poll_id,
                    question,
                    options: serde_json::from_value(options).unwrap_or_default(),
                    correct_option,
                    answers,
                    correct,
                    accuracy: (correct_option.is_some() && answers > 0)
                        .then(|| round3(correct as f64 / answers as f64)),
                }
            },
        )
        .collect())
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A class's figures (the course's staff, admins).
#[utoipa::path(get, path = "/sessions/{id}/analytics", operation_id = "session_analytics", tag = "analytics",
    params(("id" = Uuid, Path, description = "The session")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Attendance, participation, the minute-by-minute timeline, polls and replay viewing of the class; `Accept: text/csv` gives one line per student", body = SessionAnalytics,
            content((SessionAnalytics = "application/json"), (String = "text/csv"))),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not the course's staff (`not_course_staff`)", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant, or nothing of it folded yet", body = ApiErrorBody),
        (status = 429, description = "Too many reads (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn session(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let session: SessionId = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Analytics)?;
    crate::orchestration::sessions::load_session(&app, &auth, session).await?;
    let course = course_of_session(&app, session.as_uuid()).await?;
    require_course_staff(&app, &auth, course).await?;
    let tenant = auth.tenant_id.as_uuid();
    let sid = session.as_uuid();
    let (course_id, started_at, ended_at, events, title) = folded(&app, tenant, sid).await?;
    let now = Utc::now();
    let rows: Vec<AttendanceRow> = sqlx::query_as(&format!(
        "{ATTENDANCE} WHERE a.session_id = $1 AND a.tenant_id = $2 AND a.role = 'student'
          ORDER BY u.display_name, a.user_id"
    ))
    .bind(sid)
    .bind(tenant)
    .fetch_all(app.db())
    .await?;
    let students: Vec<StudentInClass> = rows.iter().map(|r| r.student(now)).collect();
    let roster = enrolled_students(&app, course_id).await?;
    let came: std::collections::HashSet<Uuid> = students.iter().map(|s| s.user_id).collect();
    let absent: Vec<Absent> = roster
        .iter()
        .filter(|(u, _)| !came.contains(u))
        .map(|(u, n)| Absent {
            user_id: *u,
            display_name: n.clone(),
        })
        .collect();
    let minutes: Vec<(i32, i64, i32, i32, i32, i32, i64)> = sqlx::query_as(
        "SELECT minute, attendee_ms, chat, questions, poll_answers, hands, speaking_ms
           FROM analytics_minutes WHERE session_id = $1 ORDER BY minute",
    )
    .bind(sid)
    .fetch_all(app.db())
    .await?;
    let timeline = minutes
        .into_iter()
        .map(
            |(minute, ms, chat, questions, poll_answers, hands, speaking)| MinuteFigures {
                minute,
                attendees: round1(ms as f64 / 60_000.0),
                chat,
                questions,
                poll_answers,
                hands,
                speaking_seconds: round1(speaking as f64 / 1000.0),
            },
        )
        .collect();
    let attended = students.len() as i64;
    let out = SessionAnalytics {
        session_id: sid,
        course_id,
        title,
        started_at,
        ended_at,
        enrolled: roster.len() as i64,
        attended,
        attendance_rate: round3(ratio(
            students
                .iter()
                .filter(|s| roster.iter().any(|(u, _)| *u == s.user_id))
                .count() as i64,
            roster.len() as i64,
        )),
        average_minutes_present: if attended == 0 {
            0.0
        } else {
            round1(students.iter().map(|s| s.minutes_present).sum::<f64>() / attended as f64)
        },
        absent,
        timeline,
        polls: poll_figures(&app, &[sid]).await?,
        replay: replay_figures(&app, sid).await?,
        events,
        students,
    };
    if wants_csv(&headers) {
        let mut rows = vec![csv_header(&[
            "user_id",
            "display_name",
            "first_join",
            "last_leave",
            "minutes_present",
            "joins",
            "late",
            "left_early",
            "attendance_only",
        ])];
        for s in &out.students {
            let mut r = vec![
                s.user_id.to_string(),
                s.display_name.clone(),
                s.first_join.to_rfc3339(),
                s.last_leave.map(|t| t.to_rfc3339()).unwrap_or_default(),
                s.minutes_present.to_string(),
                s.joins.to_string(),
                s.late.to_string(),
                s.left_early.to_string(),
                s.attendance_only.to_string(),
            ];
            r.extend(participation_cells(s.participation.as_ref()));
            rows.push(r);
        }
        for a in &out.absent {
            let mut r = vec![a.user_id.to_string(), a.display_name.clone()];
            r.extend(std::iter::repeat_n(String::new(), 7));
            r.extend(participation_cells(None));
            rows.push(r);
        }
        return csv_response(&format!("class-{sid}"), rows);
    }
    Ok(Json(out).into_response())
}

pub(super) const PARTICIPATION_COLUMNS: [&str; 8] = [
    "chat",
    "questions",
    "upvotes",
    "poll_answers",
    "poll_correct",
    "hands",
    "speaking_seconds",
    "mic_seconds",
];

pub(super) fn csv_header(first: &[&str]) -> Vec<String> {
    first
        .iter()
        .chain(PARTICIPATION_COLUMNS.iter())
        .map(|s| s.to_string())
        .collect()
}

pub(super) fn participation_cells(p: Option<&Participation>) -> Vec<String> {
    match p {
        Some(p) => vec![
            p.chat.to_string(),
            p.questions.to_string(),
            p.upvotes.to_string(),
            p.poll_answers.to_string(),
            p.poll_correct.to_string(),
            p.hands.to_string(),
            p.speaking_seconds.to_string(),
            p.mic_seconds.to_string(),
        ],
        None => vec![String::new(); PARTICIPATION_COLUMNS.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_seconds_merge_into_stretches() {
        let s = stretches(&[(0, 1), (1, 1), (2, 2), (4, 2)]);
        assert_eq!(
            s,
            vec![
                ReplayStretch {
                    from_s: 0,
                    to_s: 2,
                    views: 1
                },
                ReplayStretch {
                    from_s: 2,
                    to_s: 3,
                    views: 2
                },
                ReplayStretch {
                    from_s: 4,
                    to_s: 5,
                    views: 2
                },
            ]
        );
    }
}
