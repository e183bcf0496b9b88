//! Analytics on a fresh database: a scripted class of 30 students with
//! known behaviour (who joins when, who leaves, who answers what, who
//! declines recording, a minor) folded from its log gives exactly the
//! expected figures; folding in pieces, folding again (redelivery) and a
//! rebuild from the log give identical tables; who may read what; CSV.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use classroom_core::seed;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

mod common;
use common::{app, call, login};

const PW: &str = "a-long-password";
const HOME: &str = "http://core.test";

struct Class {
    tenant: Uuid,
    session: Uuid,
    course: Uuid,
    t0: DateTime<Utc>,
    /// student n (1-based) → (user id, seat)
    students: Vec<(Uuid, Uuid)>,
    teacher: (Uuid, Uuid),
    events: Vec<(i64, String, DateTime<Utc>, Value)>,
}

impl Class {
    fn at(&self, minutes: f64) -> DateTime<Utc> {
        self.t0 + Duration::milliseconds((minutes * 60_000.0) as i64)
    }
    fn push(&mut self, minutes: f64, ty: &str, payload: Value) {
        let seq = self.events.len() as i64 + 1;
        let at = self.at(minutes);
        self.events.push((seq, ty.to_owned(), at, payload));
    }
    fn s(&self, n: usize) -> (Uuid, Uuid) {
        self.students[n - 1]
    }
    fn join(&mut self, minutes: f64, n: usize) {
        let (user, seat) = self.s(n);
        self.push(
            minutes,
            "participant.joined",
            json!({
                "participant_id": seat, "user_id": user, "role": "student",
                "display_name": format!("Student {n}"), "edge_id": "edge-a", "permissions": [],
            }),
        );
    }
    fn leave(&mut self, minutes: f64, n: usize) {
        let seat = self.s(n).1;
        self.push(
            minutes,
            "participant.left",
            json!({ "participant_id": seat, "reason": "left" }),
        );
    }
    fn vote(&mut self, minutes: f64, n: usize, poll: Uuid, option: u32) {
        let seat = self.s(n).1;
        self.push(
            minutes,
            "poll.voted",
            json!({ "poll_id": poll, "participant_id": seat, "option": option }),
        );
    }
}

async fn id_of(db: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The class: 30 enrolled; 1–20 come at minute 1, 21–24 at minute 10
/// (late), 25–30 never; 5–8 leave at 30 (early), 9 leaves at 20 and comes
/// back at 25; poll 1 (correct: option 1) answered by 1–16, odd ones right,
/// 2 changes to right; 10 declines recording at 35; poll 2 (no right
/// answer) answered by 10–20; 1 chats 3 times, 21 once; 3 asks, 4 and 5
/// upvote; 6 raises a hand; 7 speaks 5 s; the class ends at 60. Student 4
/// is a minor.
async fn script(db: &PgPool) -> Class {
    seed::seed(db, PW, 30).await.unwrap();
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'demo'")
        .fetch_one(db)
        .await
        .unwrap();
    let (run, lesson, course): (Uuid, Uuid, Uuid) = sqlx::query_as(
        "SELECT r.id, l.id, l.course_id FROM lesson_runs r JOIN lessons l ON l.id = r.lesson_id
          WHERE r.tenant_id = $1 LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(db)
    .await
    .unwrap();
    let teacher = id_of(db, "teacher@demo.test").await;
    let mut students = Vec::new();
    for n in 1..=30 {
        students.push((
            id_of(db, &format!("student{n}@demo.test")).await,
            Uuid::now_v7(),
        ));
    }
    sqlx::query("UPDATE users SET minor = true WHERE id = $1")
        .bind(students[3].0)
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO edges (id, url, capacity, last_seen) VALUES ('edge-a', 'http://edge-a', 100, now())",
    )
    .execute(db)
    .await
    .unwrap();
    let t0 = DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
        .unwrap()
        .to_utc();
    let session = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, lesson_run_id, edge_id, status, title, started_by, started_at)
         VALUES ($1, $2, $3, 'edge-a', 'live', 'Photosynthesis', $4, $5)",
    )
    .bind(session)
    .bind(tenant)
    .bind(run)
    .bind(teacher)
    .bind(t0)
    .execute(db)
    .await
    .unwrap();
    let mut c = Class {
        tenant,
        session,
        course,
        t0,
        students,
        teacher: (teacher, Uuid::now_v7()),
        events: Vec::new(),
    };
    c.push(0.0, "session.started", json!({
        "lesson_run_id": run, "course_id": course, "lesson_id": lesson, "title": "Photosynthesis",
        "edge_id": "edge-a", "started_by": teacher,
    }));
    let (tu, ts) = c.teacher;
    c.push(
        0.0,
        "participant.joined",
        json!({
            "participant_id": ts, "user_id": tu, "role": "teacher", "display_name": "Tess",
            "edge_id": "edge-a", "permissions": [],
        }),
    );
    for n in 1..=20 {
        c.join(1.0, n);
    }
    let s1 = c.s(1).1;
    for k in 0..3 {
        c.push(
            5.0 + k as f64 * 0.1,
            "chat.message",
            json!({ "message_id": Uuid::now_v7(), "participant_id": s1, "text": "hi" }),
        );
    }
    for n in 21..=24 {
        c.join(10.0, n);
    }
    let s21 = c.s(21).1;
    c.push(
        12.0,
        "chat.message",
        json!({ "message_id": Uuid::now_v7(), "participant_id": s21, "text": "sorry I'm late" }),
    );
    let poll1 = Uuid::now_v7();
    c.push(15.0, "poll.opened", json!({ "poll_id": poll1, "question": "What do plants make?", "options": ["Salt", "Sugar"], "correct_option": 1 }));
    for n in 1..=16 {
        c.vote(15.5, n, poll1, if n % 2 == 1 { 1 } else { 0 });
    }
    c.vote(16.0, 2, poll1, 1);
    c.push(
        17.0,
        "poll.closed",
        json!({ "poll_id": poll1, "results": [] }),
    );
    c.leave(20.0, 9);
    let q = Uuid::now_v7();
    let s3 = c.s(3).1;
    c.push(
        20.0,
        "question.asked",
        json!({ "question_id": q, "participant_id": s3, "text": "why green?" }),
    );
    for n in [4, 5] {
        let seat = c.s(n).1;
        c.push(
            21.0,
            "question.upvoted",
            json!({ "question_id": q, "participant_id": seat }),
        );
    }
    let s6 = c.s(6).1;
    c.push(22.0, "hand.raised", json!({ "participant_id": s6 }));
    c.push(22.5, "hand.lowered", json!({ "participant_id": s6 }));
    let s7 = c.s(7).1;
    c.push(
        23.0,
        "caption.segment",
        json!({ "start_ms": 1_380_000, "end_ms": 1_385_000, "text": "light", "speaker": s7 }),
    );
    // 7 opens the microphone for a minute; 12 from minute 30 to the end
    let (s7, s12) = (c.s(7).1, c.s(12).1);
    let (mic7, mic12) = (Uuid::now_v7(), Uuid::now_v7());
    c.push(23.0, "track.published", json!({ "track_id": mic7, "participant_id": s7, "kind": "audio", "source": "microphone", "codec": "opus" }));
    c.push(24.0, "track.unpublished", json!({ "track_id": mic7 }));
    c.push(30.0, "track.published", json!({ "track_id": mic12, "participant_id": s12, "kind": "audio", "source": "microphone", "codec": "opus" }));
    c.join(25.0, 9);
    for n in 5..=8 {
        c.leave(30.0, n);
    }
    let s10 = c.s(10).1;
    c.push(
        35.0,
        "consent.changed",
        json!({ "participant_id": s10, "recording": false }),
    );
    let poll2 = Uuid::now_v7();
    c.push(
        40.0,
        "poll.opened",
        json!({ "poll_id": poll2, "question": "Did you like it?", "options": ["Yes", "No"] }),
    );
    for n in 10..=20 {
        c.vote(41.0, n, poll2, 0);
    }
    c.push(60.0, "session.ended", json!({ "reason": "teacher" }));
    c
}

/// Writes events with seq in `range` and moves `sessions.last_seq` (what
/// ingest does); `ended`: the class row ends too.
async fn ingest(db: &PgPool, c: &Class, upto: usize) {
    let mut tx = db.begin().await.unwrap();
    for (seq, ty, at, payload) in c.events.iter().take(upto) {
        sqlx::query(
            "INSERT INTO session_state_events
               (event_id, tenant_id, session_id, seq, type, v, occurred_at, actor, source, payload)
             VALUES ($1, $2, $3, $4, $5, 1, $6, '{\"kind\":\"system\"}', 'edge', $7)
             ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(c.tenant)
        .bind(c.session)
        .bind(seq)
        .bind(ty)
        .bind(at)
        .bind(payload)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE sessions SET last_seq = $2 WHERE id = $1")
        .bind(c.session)
        .bind(upto as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    if upto == c.events.len() {
        sqlx::query("UPDATE sessions SET status = 'ended', ended_at = $2 WHERE id = $1")
            .bind(c.session)
            .bind(c.at(60.0))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Every analytics table of the class, as text, in a fixed order.
async fn tables(db: &PgPool, session: Uuid) -> Vec<String> {
    let mut out = Vec::new();
    for (table, order) in [
        ("analytics_sessions", "session_id"),
        ("analytics_attendance", "user_id"),
        ("analytics_minutes", "minute"),
        ("analytics_polls", "poll_id"),
        ("analytics_poll_answers", "poll_id, user_id"),
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT row_to_json(t)::text FROM {table} t WHERE session_id = $1 ORDER BY {order}"
        ))
        .bind(session)
        .fetch_all(db)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| format!("{table}: {}", r.0)));
    }
    out
}

fn student(v: &Value, user: Uuid) -> &Value {
    v["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_id"] == json!(user))
        .unwrap_or_else(|| panic!("{user} not in {v}"))
}

async fn csv(app: &axum::Router, path: &str, token: &str) -> (StatusCode, String, String) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/csv")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn a_scripted_class_gives_exactly_the_expected_figures(db: PgPool) {
    let c = script(&db).await;
    let n = c.events.len();
    // folded in pieces, as ingest commits them
    for upto in [1, 7, 30, n / 2, n - 3, n] {
        ingest(&db, &c, upto).await;
        let reached = classroom_core::analytics::fold_class(&db, HOME, c.tenant, c.session)
            .await
            .unwrap();
        assert_eq!(reached, Some(upto as i64));
    }
    let folded = tables(&db, c.session).await;
    // a redelivery (the same messages again) changes nothing
    classroom_core::analytics::fold_class(&db, HOME, c.tenant, c.session)
        .await
        .unwrap();
    assert_eq!(tables(&db, c.session).await, folded);
    // a rebuild from the log gives the same tables
    let (classes, events) = classroom_core::analytics::rebuild(&db, HOME, None)
        .await
        .unwrap();
    assert_eq!((classes, events), (1, n as u64));
    assert_eq!(tables(&db, c.session).await, folded);
    // and so does a rebuild after the tables were lost
    sqlx::query("DELETE FROM analytics_sessions")
        .execute(&db)
        .await
        .unwrap();
    classroom_core::analytics::rebuild(&db, HOME, None)
        .await
        .unwrap();
    assert_eq!(tables(&db, c.session).await, folded);

    let app = app(db.clone());
    let (teacher, _) = login(&app, "teacher@demo.test", PW).await;
    let (s, v) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["enrolled"], 30);
    assert_eq!(v["attended"], 24);
    assert_eq!(v["attendance_rate"], 0.8);
    assert_eq!(v["absent"].as_array().unwrap().len(), 6);
    assert_eq!(
        v["students"].as_array().unwrap().len(),
        24,
        "the teacher is not a student"
    );
    let late: Vec<&Value> = v["students"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["late"] == true)
        .collect();
    assert_eq!(late.len(), 4);
    let early: Vec<&Value> = v["students"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["left_early"] == true)
        .collect();
    assert_eq!(early.len(), 4);
    let u = |n: usize| c.s(n).0;
    assert_eq!(student(&v, u(1))["minutes_present"], 59.0);
    assert_eq!(student(&v, u(6))["minutes_present"], 29.0);
    assert_eq!(student(&v, u(9))["minutes_present"], 54.0);
    assert_eq!(student(&v, u(9))["joins"], 2);
    assert_eq!(student(&v, u(22))["minutes_present"], 50.0);
    let p = |n: usize| student(&v, u(n))["participation"].clone();
    assert_eq!(p(1)["chat"], 3);
    assert_eq!(p(1)["poll_answers"], 1);
    assert_eq!(p(1)["poll_correct"], 1);
    assert_eq!(
        p(2)["poll_correct"],
        1,
        "a changed answer counts as the last one"
    );
    assert_eq!(p(2)["poll_answers"], 1);
    assert_eq!(p(3)["questions"], 1);
    assert_eq!(p(5)["upvotes"], 1);
    assert_eq!(p(6)["hands"], 1);
    assert_eq!(p(7)["speaking_seconds"], 5.0);
    assert_eq!(p(7)["mic_seconds"], 60.0);
    assert_eq!(p(12)["mic_seconds"], 1800.0, "open until the class's end");
    assert_eq!(p(1)["mic_seconds"], 0.0);
    assert_eq!(p(21)["chat"], 1);
    assert_eq!(p(12)["poll_answers"], 2);
    // the minor and the student who declined recording: attendance only
    assert_eq!(student(&v, u(4))["attendance_only"], true);
    assert!(p(4).is_null());
    assert_eq!(student(&v, u(10))["attendance_only"], true);
    assert!(p(10).is_null());
    assert_eq!(student(&v, u(10))["minutes_present"], 59.0);
    // polls: 10's answers are forgotten with the decline
    let polls = v["polls"].as_array().unwrap();
    assert_eq!(polls.len(), 2);
    assert_eq!(
        (polls[0]["answers"].clone(), polls[0]["correct"].clone()),
        (json!(15), json!(9))
    );
    assert_eq!(polls[0]["accuracy"], 0.6);
    assert_eq!(polls[1]["answers"], 10);
    assert!(polls[1]["accuracy"].is_null());
    // the timeline: who was in, minute by minute
    let minute = |m: i64| {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["minute"] == m)
            .unwrap()
            .clone()
    };
    assert_eq!(minute(2)["attendees"], 21.0);
    assert_eq!(minute(12)["attendees"], 25.0);
    assert_eq!(minute(22)["attendees"], 24.0);
    assert_eq!(minute(45)["attendees"], 21.0);
    assert_eq!(minute(5)["chat"], 3);
    assert_eq!(minute(23)["speaking_seconds"], 5.0);
    assert_eq!(minute(15)["poll_answers"], 16);

    // CSV: a header and one line per enrolled student
    let (s, ct, body) = csv(
        &app,
        &format!("/sessions/{}/analytics", c.session),
        &teacher,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 31, "{body}");
    assert!(lines[0].starts_with("user_id,display_name,first_join"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{},Student 1,", u(1)))
                && l.ends_with(",3,0,0,1,1,0,0,0")),
        "{body}"
    );

    // the course: one run
    let (s, v) = call(
        &app,
        "GET",
        &format!("/courses/{}/analytics", c.course),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["runs"][0]["attended"], 24);
    assert_eq!(v["runs"][0]["poll_accuracy"], 0.6);
    assert_eq!(v["students"].as_array().unwrap().len(), 30);
    let (s, _, body) = csv(&app, &format!("/courses/{}/analytics", c.course), &teacher).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.lines().count(), 31);

    // a student sees themself, never another
    let (me, _) = login(&app, "student1@demo.test", PW).await;
    let (s, v) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", u(1)),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let class = &v["courses"][0]["classes"][0];
    assert_eq!(class["attended"], true);
    assert_eq!(class["answers"][0]["answer"], "Sugar");
    assert_eq!(class["answers"][0]["correct"], true);
    let (s, v) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", u(2)),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_your_student"))
    );
    let (s, _) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app,
        "GET",
        &format!("/courses/{}/analytics", c.course),
        Some(&me),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // the minor's own view: attendance only
    let (minor, _) = login(&app, "student4@demo.test", PW).await;
    let (s, v) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", u(4)),
        Some(&minor),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["minor"], true);
    assert!(v["courses"][0]["classes"][0]["figures"]["participation"].is_null());
    // the teacher sees their student; another tenant sees nothing of it
    let (s, _) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", u(2)),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (foreign, _) = login(&app, "teacher@other.test", PW).await;
    let (s, _) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", u(2)),
        Some(&foreign),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&foreign),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn an_erased_student_leaves_no_analytics_and_is_not_refolded(db: PgPool) {
    let c = script(&db).await;
    ingest(&db, &c, c.events.len()).await;
    classroom_core::analytics::fold_class(&db, HOME, c.tenant, c.session)
        .await
        .unwrap();
    let gone = c.s(1).0;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("UPDATE users SET erased_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    classroom_core::analytics::erase_user(&db, c.tenant, gone)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM analytics_attendance WHERE user_id = $1)
              + (SELECT count(*) FROM analytics_poll_answers WHERE user_id = $1)
              + (SELECT count(*) FROM analytics_sessions WHERE state::text LIKE '%' || $1::text || '%')",
    )
    .bind(gone)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(left, 0);
    classroom_core::analytics::rebuild(&db, HOME, None)
        .await
        .unwrap();
    let back: i64 =
        sqlx::query_scalar("SELECT count(*) FROM analytics_attendance WHERE user_id = $1")
            .bind(gone)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(back, 0, "a rebuild does not bring an erased person back");
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn replay_beacons_add_up_and_their_raw_rows_expire_alone(db: PgPool) {
    let c = script(&db).await;
    ingest(&db, &c, c.events.len()).await;
    classroom_core::analytics::fold_class(&db, HOME, c.tenant, c.session)
        .await
        .unwrap();
    let replay = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO replays (id, tenant_id, session_id, visibility, published_by)
         VALUES ($1, $2, $3, 'enrolled', $4)",
    )
    .bind(replay)
    .bind(c.tenant)
    .bind(c.session)
    .bind(c.teacher.0)
    .execute(&db)
    .await
    .unwrap();
    let app = app(db.clone());
    let (student, _) = login(&app, "student1@demo.test", PW).await;
    let progress = format!("/replays/{replay}/progress");
    for (from, to) in [(0, 10_000), (5_000, 15_000)] {
        let (s, v) = call(
            &app,
            "POST",
            &progress,
            Some(&student),
            Some(json!({ "from_ms": from, "to_ms": to })),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    // backwards, too long, unknown fields: refused, nothing counted
    for bad in [
        json!({ "from_ms": 10, "to_ms": 5 }),
        json!({ "from_ms": 0, "to_ms": 70_000 }),
        json!({ "from_ms": 0, "to_ms": 1000, "extra": 1 }),
    ] {
        let (s, _) = call(&app, "POST", &progress, Some(&student), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    // someone who may not open the replay counts for nothing
    let (foreign, _) = login(&app, "student1@other.test", PW).await;
    let (s, _) = call(
        &app,
        "POST",
        &progress,
        Some(&foreign),
        Some(json!({ "from_ms": 0, "to_ms": 1000 })),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (teacher, _) = login(&app, "teacher@demo.test", PW).await;
    let figures = |v: &Value| v["replay"].clone();
    let (s, v) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let replay_figures = figures(&v);
    assert_eq!(replay_figures["viewers"], 1);
    assert_eq!(replay_figures["watched_minutes"], 0.3);
    assert_eq!(
        replay_figures["stretches"],
        json!([
            { "from_s": 0, "to_s": 5, "views": 1 },
            { "from_s": 5, "to_s": 10, "views": 2 },
            { "from_s": 10, "to_s": 15, "views": 1 },
        ])
    );
    let (_, mine) = call(
        &app,
        "GET",
        &format!("/students/{}/analytics", c.s(1).0),
        Some(&student),
        None,
    )
    .await;
    let class = mine["courses"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["classes"].as_array().unwrap().clone())
        .find(|k| k["session_id"] == json!(c.session))
        .unwrap();
    assert_eq!(class["replay_minutes"], 0.3);

    // the raw beacons pass their retention; what they added up to stays
    sqlx::query("UPDATE replay_beacons SET at = now() - interval '31 days'")
        .execute(&db)
        .await
        .unwrap();
    let (admin, _) = login(&app, "admin@demo.test", PW).await;
    let (s, r) = call(
        &app,
        "POST",
        "/tenant/retention/sweep",
        Some(&admin),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["beacons_removed"], 2, "{r}");
    assert_eq!(r["analytics_removed"], 0, "{r}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM replay_beacons")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let (_, v) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(figures(&v), replay_figures);

    // analytics of a class older than analytics_days go; a fresh one stays
    let (s, v) = call(
        &app,
        "PATCH",
        "/tenant/retention",
        Some(&admin),
        Some(json!({ "analytics_days": 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, r) = call(
        &app,
        "POST",
        "/tenant/retention/sweep",
        Some(&admin),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        r["analytics_removed"], 1,
        "the class ended in November: {r}"
    );
    let (s, _) = call(
        &app,
        "GET",
        &format!("/sessions/{}/analytics", c.session),
        Some(&teacher),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
