//! `GET /courses/{id}/analytics`: a course across its lesson runs.

use std::collections::{BTreeMap, HashMap};

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
use crate::console::rate_limit::Kind;
use crate::console::require_course_staff;
use crate::http::error::{ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;
use protocol::CourseId;

/// Runs that count as "recent" for the at-risk rules.
const RECENT_RUNS: usize = 3;

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

#[cfg(test)]
mod tests {
    use super::*;

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
