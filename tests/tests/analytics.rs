//! Analytics through the whole stack: a class of 30 enrolled students run
//! through core's API (24 come, 12 answer a poll, some chat, one raises a
//! hand, 5 leave before the end) is counted exactly by the analytics
//! consumer; the tenant's LRS (Ralph, a real one) accepts every xAPI
//! statement; every message redelivered (the consumer made again from the
//! stream's start) and a `core analytics rebuild` leave the tables as they
//! were; a student reads only their own figures; the teacher's reports and
//! the student's progress page work in Chromium and pass axe-core.

use std::time::Duration;

use classroom_tests::lrs::{self, Lrs};
use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every analytics table of the class, as text, in a fixed order.
async fn tables(db: &sqlx::PgPool, session: &str) -> Vec<String> {
    let session: uuid::Uuid = session.parse().unwrap();
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

fn verb(s: &Value) -> &str {
    s["verb"]["display"]["en-US"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_of_thirty_is_counted_exactly_and_reaches_the_lrs() {
    let mut stack = Stack::start(StackOptions {
        students: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut lrs = Lrs::start(stack.dir.path()).await.unwrap();
    let api = stack.api.clone();
    let admin = api.login("admin@demo.test").await.unwrap();
    let (s, v) = api
        .put(
            "/tenant/lrs",
            &admin,
            json!({ "endpoint": lrs.endpoint, "username": lrs::USERNAME, "password": lrs::PASSWORD }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("password").is_none() && !v.to_string().contains(lrs::PASSWORD));

    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let core = |p: &str| format!("/sessions/{}{p}", session.id);
    api.join(&teacher, &session.id).await.unwrap();
    let mut students = Vec::new();
    for n in 1..=30 {
        students.push(api.login(&format!("student{n}@demo.test")).await.unwrap());
    }
    for tok in &students[..24] {
        api.join(tok, &session.id).await.unwrap();
    }
    let (s, p) = api
        .post(
            &core("/polls"),
            &teacher,
            json!({ "question": "What do plants make?", "options": ["Salt", "Sugar"], "correct_option": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{p}");
    let poll = p["poll_id"].as_str().unwrap().to_owned();
    for (i, tok) in students[..12].iter().enumerate() {
        let n = i + 1;
        let option = if n % 2 == 1 { 1 } else { 0 };
        let (s, v) = api
            .post(
                &core(&format!("/polls/{poll}/vote")),
                tok,
                json!({ "option": option }),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "vote {n}: {v}");
    }
    for (i, tok) in students[..3].iter().enumerate() {
        let times = if i == 0 { 3 } else { 1 };
        for k in 0..times {
            let (s, v) = api
                .post(&core("/chat"), tok, json!({ "text": format!("note {k}") }))
                .await
                .unwrap();
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    }
    let (s, v) = api
        .post(
            &core("/questions"),
            &students[0],
            json!({ "text": "Why do acids sting?" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .post(&core("/hands"), &students[4], json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    for tok in &students[19..24] {
        let (s, v) = api.post(&core("/leave"), tok, json!({})).await.unwrap();
        assert!(s.is_success(), "leave: {s} {v}");
    }
    let (s, v) = api.post(&core("/end"), &teacher, json!({})).await.unwrap();
    assert!(s.is_success(), "end: {s} {v}");

    // the consumer folds the class once ingest committed its end
    let report = wait_until("the class's analytics", Duration::from_secs(30), || {
        let api = api.clone();
        let path = core("/analytics");
        let teacher = teacher.clone();
        async move {
            let (s, v) = api.get(&path, &teacher).await.ok()?;
            (s == StatusCode::OK && !v["ended_at"].is_null()).then_some(v)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(report["enrolled"], 30, "{report}");
    assert_eq!(report["attended"], 24);
    assert_eq!(report["attendance_rate"], 0.8);
    assert_eq!(report["absent"].as_array().unwrap().len(), 6);
    let polls = report["polls"].as_array().unwrap();
    assert_eq!(polls.len(), 1);
    assert_eq!(
        (polls[0]["answers"].clone(), polls[0]["correct"].clone()),
        (json!(12), json!(6))
    );
    assert_eq!(polls[0]["accuracy"], 0.5);
    let by_name = |name: &str| -> Value {
        report["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["display_name"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
            .clone()
    };
    assert_eq!(by_name("Student 1")["participation"]["chat"], 3);
    assert_eq!(by_name("Student 1")["participation"]["poll_correct"], 1);
    assert_eq!(by_name("Student 2")["participation"]["poll_correct"], 0);
    assert_eq!(by_name("Student 2")["participation"]["chat"], 1);
    assert_eq!(by_name("Student 5")["participation"]["hands"], 1);
    assert_eq!(by_name("Student 13")["participation"]["poll_answers"], 0);
    let interactions: i64 = report["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = &s["participation"];
            ["chat", "questions", "upvotes", "poll_answers", "hands"]
                .iter()
                .map(|k| p[k].as_i64().unwrap())
                .sum::<i64>()
        })
        .sum();
    assert_eq!(
        interactions,
        5 + 12 + 1 + 1,
        "chat, answers, the hand and the question, nothing else"
    );
    let events = report["events"].as_i64().unwrap();

    // CSV
    let resp = api
        .http
        .get(format!("{}{}", api.base, core("/analytics")))
        .bearer_auth(&teacher)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(resp.text().await.unwrap().lines().count(), 31);

    // a student reads only their own figures
    let me: Value = api.get("/me", &students[0]).await.unwrap().1;
    let other: Value = api.get("/me", &students[1]).await.unwrap().1;
    let (s, v) = api
        .get(
            &format!("/students/{}/analytics", me["id"].as_str().unwrap()),
            &students[0],
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let chemistry = v["courses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == "Chemistry")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(chemistry["classes"][0]["attended"], true);
    assert_eq!(chemistry["classes"][0]["answers"][0]["correct"], true);
    let (s, v) = api
        .get(
            &format!("/students/{}/analytics", other["id"].as_str().unwrap()),
            &students[0],
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_your_student"))
    );
    let (s, _) = api.get(&core("/analytics"), &students[0]).await.unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN);

    // a replay of the class, watched for ten seconds
    let db = stack.db().await.unwrap();
    let replay = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO replays (id, tenant_id, session_id, visibility, published_by)
         SELECT $1, tenant_id, id, 'enrolled', started_by FROM sessions WHERE id = $2",
    )
    .bind(replay)
    .bind(session.id.parse::<uuid::Uuid>().unwrap())
    .execute(&db)
    .await
    .unwrap();
    let (s, v) = api
        .post(
            &format!("/replays/{replay}/progress"),
            &students[0],
            json!({ "from_ms": 0, "to_ms": 10_000 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // the LRS accepted every statement: 25 joins and 25 leaves (the
    // teacher too; those still in left with the class's end), 12 answers,
    // the question, the replay stretch
    let expected = 25 + 25 + 12 + 1 + 1;
    let statements = wait_until(
        "the LRS holds every statement",
        Duration::from_secs(30),
        || {
            let lrs = &lrs;
            async move {
                let s = lrs.statements().await.ok()?;
                (s.len() >= expected).then_some(s)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(statements.len(), expected);
    let count = |v: &str| statements.iter().filter(|s| verb(s) == v).count();
    assert_eq!(
        (
            count("joined"),
            count("left"),
            count("answered"),
            count("asked"),
            count("played")
        ),
        (25, 25, 12, 1, 1)
    );
    let right = statements
        .iter()
        .filter(|s| verb(s) == "answered" && s["result"]["success"] == true)
        .count();
    assert_eq!(right, 6);
    for s in &statements {
        let name = s["actor"]["account"]["name"].as_str().unwrap();
        assert!(
            name.parse::<uuid::Uuid>().is_ok(),
            "the actor is an account id: {s}"
        );
        assert!(!s.to_string().contains("Student "), "no names in xAPI: {s}");
    }
    // and the outbox knows it (each row marked once its answer came)
    wait_until("the outbox emptied", Duration::from_secs(30), || {
        let db = db.clone();
        async move {
            let unsent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM xapi_outbox WHERE sent_at IS NULL")
                    .fetch_one(&db)
                    .await
                    .ok()?;
            (unsent == 0).then_some(())
        }
    })
    .await
    .unwrap();

    // every message again: the consumer made anew from the stream's start
    let before = tables(&db, &session.id).await;
    stack.kill_core().await;
    stack
        .delete_hub_consumer(protocol::subjects::ANALYTICS_CONSUMER)
        .await
        .unwrap();
    stack.restart_core().await.unwrap();
    stack
        .hub_consumer_drained(
            protocol::subjects::ANALYTICS_CONSUMER,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(
        tables(&db, &session.id).await,
        before,
        "a redelivery changes nothing"
    );
    let (_, again) = api.get(&core("/analytics"), &teacher).await.unwrap();
    assert_eq!(again["events"].as_i64().unwrap(), events);

    // a rebuild from the log: the same tables, no statement twice
    let out = stack
        .core_command(&["analytics".into(), "rebuild".into()])
        .await
        .unwrap();
    let printed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(printed["classes"], 1, "{out}");
    assert_eq!(
        tables(&db, &session.id).await,
        before,
        "a rebuild gives the same tables"
    );
    assert_eq!(lrs.statements().await.unwrap().len(), expected);

    // the pages in Chromium: the teacher's reports, a student's progress
    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| classroom_tests::workspace_root().join("target"))
        .join("web-screenshots");
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("TEACHER_EMAIL", "teacher@demo.test".to_owned()),
        ("STUDENT_EMAIL", "student1@demo.test".to_owned()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("SESSION_ID", session.id.clone()),
        ("COURSE_TITLE", "Chemistry".to_owned()),
        ("ATTENDED", "24".to_owned()),
        ("ENROLLED", "30".to_owned()),
        ("SHOTS_DIR", shots.display().to_string()),
    ];
    let result = classroom_tests::browser::run(&stack, "reports.mjs", &env).await;
    assert_eq!(result["course_csv_lines"], 31, "{result}");

    lrs.stop().await;
    stack.shutdown().await;
}
