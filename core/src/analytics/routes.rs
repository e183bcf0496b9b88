//! The analytics routes: a class, a course across its lesson runs, a
//! student across their courses; JSON, or CSV with `Accept: text/csv`.
//!
//! Who sees what: a class's and a course's figures are for the course's
//! staff (teachers, assistants) and admins, who may see its students; a
//! student's figures are for the student, the staff of the student's
//! courses (those courses only) and admins. A minor's participation and
//! poll answers are never shown (attendance only), nor those of someone
//! who declined recording.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use protocol::{CourseId, Role, SessionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::console::{course_of_session, course_role, require_course_staff};
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;

/// Joining later than this after the start is late; leaving earlier than
/// this before the end is leaving early.
pub(crate) const GRACE_MS: i64 = 5 * 60_000;
/// Runs that count as "recent" for the at-risk rules.
const RECENT_RUNS: usize = 3;

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
    pub speaking_seconds: f64,
}

impl Participation {
    /// Chat, questions, upvotes, poll answers and hands, summed.
    fn interactions(&self) -> i32 {
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

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv"))
}

fn csv_response(name: &str, rows: Vec<Vec<String>>) -> ApiResult<Response> {
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

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[derive(sqlx::FromRow)]
struct AttendanceRow {
    session_id: Uuid,
    user_id: Uuid,
    display_name: String,
    minor: bool,
    first_join: DateTime<Utc>,
    last_leave: Option<DateTime<Utc>>,
    present_ms: i64,
    open_since: Option<DateTime<Utc>>,
    joins: i32,
    attendance_only: bool,
    chat: i32,
    questions: i32,
    upvotes: i32,
    poll_answers: i32,
    poll_correct: i32,
    hands: i32,
    speaking_ms: i64,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

const ATTENDANCE: &str = "SELECT a.session_id, a.user_id, u.display_name, u.minor, a.first_join,
        a.last_leave, a.present_ms, a.open_since, a.joins, a.attendance_only, a.chat, a.questions,
        a.upvotes, a.poll_answers, a.poll_correct, a.hands, a.speaking_ms, s.started_at, s.ended_at
   FROM analytics_attendance a
   JOIN analytics_sessions s ON s.session_id = a.session_id
   JOIN users u ON u.id = a.user_id AND u.tenant_id = a.tenant_id";

impl AttendanceRow {
    fn student(&self, now: DateTime<Utc>) -> StudentInClass {
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

async fn enrolled_students(app: &AppState, course: Uuid) -> ApiResult<Vec<(Uuid, String)>> {
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

async fn poll_figures(app: &AppState, sessions: &[Uuid]) -> ApiResult<Vec<PollFigures>> {
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

fn round3(x: f64) -> f64 {
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

const PARTICIPATION_COLUMNS: [&str; 7] = [
    "chat",
    "questions",
    "upvotes",
    "poll_answers",
    "poll_correct",
    "hands",
    "speaking_seconds",
];

fn csv_header(first: &[&str]) -> Vec<String> {
    first
        .iter()
        .chain(PARTICIPATION_COLUMNS.iter())
        .map(|s| s.to_string())
        .collect()
}

fn participation_cells(p: Option<&Participation>) -> Vec<String> {
    match p {
        Some(p) => vec![
            p.chat.to_string(),
            p.questions.to_string(),
            p.upvotes.to_string(),
            p.poll_answers.to_string(),
            p.poll_correct.to_string(),
            p.hands.to_string(),
            p.speaking_seconds.to_string(),
        ],
        None => vec![String::new(); PARTICIPATION_COLUMNS.len()],
    }
}

/// One lesson run of a course.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RunFigures {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    pub title: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Students who came.
    pub attended: i64,
    /// attended (of the roster now) / students on the roster now.
    pub attendance_rate: f64,
    pub average_minutes_present: f64,
    /// Chat, questions, upvotes, poll answers and hands of the students
    /// whose participation may be counted.
    pub interactions: i64,
    pub poll_accuracy: Option<f64>,
}

/// A student across a course's runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StudentInCourse {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: Uuid,
    pub display_name: String,
    pub attended_runs: i64,
    pub attendance_rate: f64,
    pub minutes_present: f64,
    pub late_runs: i64,
    /// Absent for attendance-only students.
    pub interactions: Option<i64>,
    pub poll_accuracy: Option<f64>,
    pub at_risk: bool,
    /// `falling_attendance`, `falling_participation`.
    pub risks: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CourseAnalytics {
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub title: String,
    pub enrolled: i64,
    /// Oldest first: the attendance trend.
    pub runs: Vec<RunFigures>,
    /// Every poll of the course's runs with its accuracy.
    pub polls: Vec<PollFigures>,
    pub students: Vec<StudentInCourse>,
    pub at_risk: i64,
}

/// Students at risk: with at least `RECENT_RUNS + 1` runs, attendance over
/// the last `RECENT_RUNS` runs at least 50 points below the runs before;
/// or, for those whose participation counts, interactions per attended run
/// in the recent runs at most half of before (when before was at least 2).
pub(crate) fn risks(
    attended: &[bool],
    interactions: &[Option<i64>],
    participation_counts: bool,
) -> Vec<String> {
    let n = attended.len();
    let mut out = Vec::new();
    if n <= RECENT_RUNS {
        return out;
    }
    let (before, recent) = attended.split_at(n - RECENT_RUNS);
    let rate = |s: &[bool]| s.iter().filter(|a| **a).count() as f64 / s.len() as f64;
    if rate(recent) <= rate(before) - 0.5 {
        out.push("falling_attendance".to_owned());
    }
    if participation_counts {
        let (ib, ir) = interactions.split_at(n - RECENT_RUNS);
        let per_run = |xs: &[Option<i64>]| {
            let took: Vec<i64> = xs.iter().flatten().copied().collect();
            (!took.is_empty()).then(|| took.iter().sum::<i64>() as f64 / took.len() as f64)
        };
        if let (Some(b), Some(r)) = (per_run(ib), per_run(ir))
            && b >= 2.0
            && r <= b / 2.0
        {
            out.push("falling_participation".to_owned());
        }
    }
    out
}

/// A course's figures across its lesson runs (the course's staff, admins).
#[utoipa::path(get, path = "/courses/{id}/analytics", operation_id = "course_analytics", tag = "analytics",
    params(("id" = Uuid, Path, description = "The course")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Attendance trend per run, poll accuracy per question, each student's figures and who is at risk; `Accept: text/csv` gives one line per student", body = CourseAnalytics,
            content((CourseAnalytics = "application/json"), (String = "text/csv"))),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not the course's staff (`not_course_staff`)", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
        (status = 429, description = "Too many reads (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn course(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let course: CourseId = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Analytics)?;
    require_course_staff(&app, &auth, course).await?;
    let cid = course.as_uuid();
    let tenant = auth.tenant_id.as_uuid();
    let (title,): (String,) =
        sqlx::query_as("SELECT title FROM courses WHERE id = $1 AND tenant_id = $2")
            .bind(cid)
            .bind(tenant)
            .fetch_one(app.db())
            .await?;
    let runs: Vec<(Uuid, String, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT a.session_id, s.title, a.started_at, a.ended_at
           FROM analytics_sessions a JOIN sessions s ON s.id = a.session_id
          WHERE a.course_id = $1 AND a.tenant_id = $2 ORDER BY a.started_at, a.session_id",
    )
    .bind(cid)
    .bind(tenant)
    .fetch_all(app.db())
    .await?;
    let roster = enrolled_students(&app, cid).await?;
    let enrolled: std::collections::HashSet<Uuid> = roster.iter().map(|r| r.0).collect();
    let rows: Vec<AttendanceRow> = sqlx::query_as(&format!(
        "{ATTENDANCE} WHERE a.course_id = $1 AND a.tenant_id = $2 AND a.role = 'student'"
    ))
    .bind(cid)
    .bind(tenant)
    .fetch_all(app.db())
    .await?;
    let now = Utc::now();
    let index: HashMap<Uuid, usize> = runs.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    // per student: name, minor, and per run what they did
    let mut per: BTreeMap<Uuid, (String, Vec<Option<StudentInClass>>)> = BTreeMap::new();
    for (u, n) in &roster {
        per.insert(*u, (n.clone(), vec![None; runs.len()]));
    }
    let mut run_stats = vec![(0i64, 0i64, 0.0f64, 0i64); runs.len()];
    for r in &rows {
        let Some(&i) = index.get(&r.session_id) else {
            continue;
        };
        let s = r.student(now);
        let stat = &mut run_stats[i];
        stat.0 += 1;
        if enrolled.contains(&r.user_id) {
            stat.1 += 1;
        }
        stat.2 += s.minutes_present;
        stat.3 += s
            .participation
            .as_ref()
            .map_or(0, |p| p.interactions() as i64);
        per.entry(r.user_id)
            .or_insert_with(|| (r.display_name.clone(), vec![None; runs.len()]))
            .1[i] = Some(s);
    }
    let polls = poll_figures(&app, &runs.iter().map(|r| r.0).collect::<Vec<_>>()).await?;
    let mut accuracy_by_run: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for p in polls.iter().filter(|p| p.correct_option.is_some()) {
        let e = accuracy_by_run.entry(p.session_id).or_default();
        e.0 += p.correct as i64;
        e.1 += p.answers as i64;
    }
    let run_figures: Vec<RunFigures> = runs
        .iter()
        .zip(&run_stats)
        .map(
            |((sid, title, started_at, ended_at), (came, came_enrolled, minutes, interactions))| {
                RunFigures {
                    session_id: *sid,
                    title: title.clone(),
                    started_at: *started_at,
                    ended_at: *ended_at,
                    attended: *came,
                    attendance_rate: round3(ratio(*came_enrolled, roster.len() as i64)),
                    average_minutes_present: if *came == 0 {
                        0.0
                    } else {
                        round1(minutes / *came as f64)
                    },
                    interactions: *interactions,
                    poll_accuracy: accuracy_by_run
                        .get(sid)
                        .filter(|(_, n)| *n > 0)
                        .map(|(c, n)| round3(*c as f64 / *n as f64)),
                }
            },
        )
        .collect();
    let minors: std::collections::HashSet<Uuid> =
        rows.iter().filter(|r| r.minor).map(|r| r.user_id).collect();
    let mut students = Vec::with_capacity(per.len());
    for (user_id, (display_name, by_run)) in per {
        let attended: Vec<bool> = by_run.iter().map(Option::is_some).collect();
        let interactions: Vec<Option<i64>> = by_run
            .iter()
            .map(|s| {
                s.as_ref()
                    .and_then(|s| s.participation.as_ref())
                    .map(|p| p.interactions() as i64)
            })
            .collect();
        let counts = !minors.contains(&user_id)
            && by_run.iter().flatten().any(|s| s.participation.is_some());
        let (answers, correct) = by_run
            .iter()
            .flatten()
            .filter_map(|s| s.participation.as_ref())
            .fold((0, 0), |(a, c), p| {
                (a + p.poll_answers as i64, c + p.poll_correct as i64)
            });
        let risks = risks(&attended, &interactions, counts);
        let attended_runs = attended.iter().filter(|a| **a).count() as i64;
        students.push(StudentInCourse {
            user_id,
            display_name,
            attended_runs,
            attendance_rate: round3(ratio(attended_runs, runs.len() as i64)),
            minutes_present: round1(by_run.iter().flatten().map(|s| s.minutes_present).sum()),
            late_runs: by_run.iter().flatten().filter(|s| s.late).count() as i64,
            interactions: counts.then(|| interactions.iter().flatten().sum()),
            poll_accuracy: (counts && answers > 0).then(|| round3(correct as f64 / answers as f64)),
            at_risk: !risks.is_empty(),
            risks,
        });
    }
    students.sort_by(|a, b| {
        a.display_name
            .cmp(&b.display_name)
            .then(a.user_id.cmp(&b.user_id))
    });
    let out = CourseAnalytics {
        course_id: cid,
        title,
        enrolled: roster.len() as i64,
        at_risk: students.iter().filter(|s| s.at_risk).count() as i64,
        runs: run_figures,
        polls,
        students,
    };
    if wants_csv(&headers) {
        let mut rows = vec![
            vec![
                "user_id",
                "display_name",
                "attended_runs",
                "runs",
                "attendance_rate",
                "minutes_present",
                "late_runs",
                "interactions",
                "poll_accuracy",
                "at_risk",
                "risks",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ];
        for s in &out.students {
            rows.push(vec![
                s.user_id.to_string(),
                s.display_name.clone(),
                s.attended_runs.to_string(),
                out.runs.len().to_string(),
                s.attendance_rate.to_string(),
                s.minutes_present.to_string(),
                s.late_runs.to_string(),
                s.interactions.map(|i| i.to_string()).unwrap_or_default(),
                s.poll_accuracy.map(|a| a.to_string()).unwrap_or_default(),
                s.at_risk.to_string(),
                s.risks.join(" "),
            ]);
        }
        return csv_response(&format!("course-{cid}"), rows);
    }
    Ok(Json(out).into_response())
}

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

    #[test]
    fn falling_attendance_and_participation_are_at_risk() {
        let all = [true; 6];
        assert!(risks(&all, &[Some(3); 6], true).is_empty());
        let fell = [true, true, true, false, false, true];
        assert_eq!(
            risks(&fell, &[Some(3); 6], true),
            vec!["falling_attendance"]
        );
        let quiet = [Some(4), Some(4), Some(4), Some(1), Some(0), Some(2)];
        assert_eq!(risks(&all, &quiet, true), vec!["falling_participation"]);
        // participation is not judged for attendance-only students
        assert!(risks(&all, &quiet, false).is_empty());
        // too few runs to judge
        assert!(risks(&[true, false, false], &[None; 3], true).is_empty());
    }
}
