//! Retention against the real stack: a tenant's written policy, a legal
//! hold, and the sweep. Two classes ended "400 days ago" (their end moved
//! back in the database, the one thing a test cannot wait for) and one
//! ended now; the policy keeps classes 365 days. The sweep removes the
//! expired class — events, seats, replay and its search entries, its
//! recording's objects, the hub stream's copies — and records that it did;
//! it keeps the expired class whose course is on legal hold, and the recent
//! one; old replay-access rows go, fresh ones stay. Releasing the hold lets
//! the next sweep remove the held class; a sweep with nothing due removes
//! nothing.

use std::time::Duration;

use classroom_tests::{Api, Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// A class in its own course: a student chats `said`, the teacher asks and
/// answers a question, the class ends. Returns the session id.
async fn class(api: &Api, teacher: &str, student: &str, said: &str) -> String {
    let sid = api.start_class(teacher).await.unwrap().id;
    api.join(student, &sid).await.unwrap();
    api.join(teacher, &sid).await.unwrap();
    let at = |p: &str| format!("/sessions/{sid}{p}");
    let ok = |r: anyhow::Result<(StatusCode, Value)>| {
        let (s, v) = r.unwrap();
        assert!(s.is_success(), "{s} {v}");
        v
    };
    ok(api
        .post(&at("/chat"), student, json!({ "text": said }))
        .await);
    let q = ok(api
        .post(
            &at("/questions"),
            student,
            json!({ "text": format!("a question on {said}") }),
        )
        .await);
    let qid = q["question_id"].as_str().unwrap();
    ok(api
        .post(
            &at(&format!("/questions/{qid}/answer")),
            teacher,
            json!({ "text": "answered" }),
        )
        .await);
    ok(api.post(&at("/end"), teacher, json!({})).await);
    wait_until(
        "core to hold the ended class",
        Duration::from_secs(30),
        || async {
            let evs = api.events(teacher, &sid).await.ok()?;
            evs.iter()
                .any(|e| e["type"] == "session.ended")
                .then_some(())
        },
    )
    .await
    .unwrap();
    sid
}

/// Publishes a class and waits until its replay's index holds `word`.
async fn publish(api: &Api, teacher: &str, sid: &str, word: &str) -> String {
    let (s, v) = api
        .post(&format!("/sessions/{sid}/publish"), teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let rid = v["replay_id"].as_str().unwrap().to_owned();
    wait_until(
        "the replay to be searchable",
        Duration::from_secs(60),
        || async {
            let (_, v) = api
                .get(&format!("/replays/{rid}/search?q={word}"), teacher)
                .await
                .ok()?;
            (!v["hits"].as_array()?.is_empty()).then_some(())
        },
    )
    .await
    .unwrap();
    rid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_an_expired_class_keeps_a_held_one_and_records_it() {
    let stack = Stack::start(StackOptions {
        artifacts: true,
        students: 2,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let db = stack.db().await.unwrap();

    let expired = class(api, &teacher, &student, "wombat").await;
    let held = class(api, &teacher, &student, "platypus").await;
    let recent = class(api, &teacher, &student, "echidna").await;
    let expired_replay = publish(api, &teacher, &expired, "wombat").await;
    let recent_replay = publish(api, &teacher, &recent, "echidna").await;
    let course_of = |sid: String| {
        let db = db.clone();
        async move {
            let (c, t): (Uuid, Uuid) = sqlx::query_as(
                "SELECT l.course_id, s.tenant_id FROM sessions s
                   JOIN lesson_runs r ON r.id = s.lesson_run_id
                   JOIN lessons l ON l.id = r.lesson_id WHERE s.id = $1::uuid",
            )
            .bind(sid)
            .fetch_one(&db)
            .await
            .unwrap();
            (c, t)
        }
    };
    let (held_course, tenant) = course_of(held.clone()).await;
    // a recording's objects, where an edge's recorder puts them
    let objects = stack
        .dir
        .path()
        .join("objects")
        .join("recordings")
        .join(tenant.to_string());
    for sid in [&expired, &held] {
        let dir = objects.join(sid);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("seg-00000.mp4"), b"segment bytes").unwrap();
    }
    // time passes: two classes ended 400 days ago; one replay opening is as
    // old, another is fresh
    sqlx::query(
        "UPDATE sessions SET started_at = now() - interval '400 days 1 hour',
                ended_at = now() - interval '400 days' WHERE id = ANY($1::uuid[])",
    )
    .bind(vec![expired.clone(), held.clone()])
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO replay_access_log (tenant_id, replay_id, user_id, via, action, at)
         VALUES ($1, $2::uuid, NULL, 'account', 'open', now() - interval '400 days')",
    )
    .bind(tenant)
    .bind(&recent_replay)
    .execute(&db)
    .await
    .unwrap();
    let (s, _) = api
        .get(&format!("/replays/{recent_replay}"), &student)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let hub = |needle: &'static str| {
        let stack = &stack;
        async move {
            stack
                .hub_stream_text()
                .await
                .unwrap()
                .iter()
                .any(|m| m.contains(needle))
        }
    };
    assert!(
        hub("wombat").await,
        "the hub stream holds the class's events"
    );

    // the policy: admins only, consistent, audited
    let (s, v) = api.get("/tenant/retention", &admin).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["class_days"], 1095, "the default policy: {v}");
    let (s, v) = api
        .patch("/tenant/retention", &teacher, json!({ "class_days": 365 }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "admin_only"), "{v}");
    let (s, v) = api
        .patch(
            "/tenant/retention",
            &admin,
            json!({ "class_days": 365, "recording_days": 400 }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_retention"),
        "{v}"
    );
    let (s, v) = api
        .patch("/tenant/retention", &admin, json!({ "class_days": 0 }))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_retention"),
        "{v}"
    );
    let (s, policy) = api
        .patch(
            "/tenant/retention",
            &admin,
            json!({ "class_days": 365, "recording_days": 30, "transcript_days": 365, "access_log_days": 365 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{policy}");
    assert_eq!(policy["recording_days"], 30);

    // a legal hold on the second class's course
    let hold = format!("/courses/{held_course}/legal-hold");
    let (s, v) = api
        .put(&hold, &teacher, json!({ "hold": true }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "admin_only"), "{v}");
    let (s, v) = api
        .put(
            &hold,
            &admin,
            json!({ "hold": true, "reason": "records request 2026-17" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hold"], true);

    // two exports of the student: one made eight days ago, one just now
    let student_id = api.user_id(&admin, "student1@demo.test").await.unwrap();
    let mut exports = Vec::new();
    for key in ["old-export", "new-export"] {
        let (s, job) = api
            .post_with_key(
                &format!("/subjects/{student_id}/export"),
                &admin,
                key,
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::ACCEPTED, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        let done = wait_until("an export", Duration::from_secs(60), || async {
            let (_, j) = api
                .get(&format!("/subjects/jobs/{id}"), &admin)
                .await
                .ok()?;
            (j["state"] == "done").then_some(j)
        })
        .await
        .unwrap();
        exports.push((id, done["download_url"].as_str().unwrap().to_owned()));
    }
    sqlx::query(
        "UPDATE subject_jobs SET finished_at = now() - interval '8 days' WHERE id = $1::uuid",
    )
    .bind(&exports[0].0)
    .execute(&db)
    .await
    .unwrap();

    // the sweep
    let (s, report) = api
        .post("/tenant/retention/sweep", &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["classes_removed"], 1, "{report}");
    assert_eq!(report["exports_removed"], 1, "{report}");
    // the week-old archive is gone (its link with it), the fresh one stays
    let old = reqwest::get(&exports[0].1).await.unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    let fresh = reqwest::get(&exports[1].1).await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(report["held"], 1, "{report}");
    assert_eq!(report["recordings_removed"], 0, "{report}");
    assert_eq!(report["access_log_rows_removed"], 1, "{report}");

    // the expired class: nothing of its content is left anywhere...
    let count = |sql: &'static str, sid: String| {
        let db = db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).bind(sid).fetch_one(&db).await.unwrap();
            n
        }
    };
    const EVENTS: &str = "SELECT count(*) FROM session_state_events WHERE session_id = $1::uuid";
    const SEATS: &str = "SELECT count(*) FROM participants WHERE session_id = $1::uuid";
    const ARTIFACTS: &str = "SELECT count(*) FROM artifacts WHERE session_id = $1::uuid";
    assert_eq!(count(EVENTS, expired.clone()).await, 0);
    assert_eq!(count(SEATS, expired.clone()).await, 0);
    assert_eq!(count(ARTIFACTS, expired.clone()).await, 0);
    assert!(!objects.join(&expired).join("seg-00000.mp4").exists());
    let (s, _) = api
        .get(&format!("/replays/{expired_replay}"), &student)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, found) = api.get("/replays/search?q=wombat", &teacher).await.unwrap();
    assert!(found["hits"].as_array().unwrap().is_empty(), "{found}");
    assert!(
        !hub("wombat").await,
        "the hub stream still holds the removed class"
    );
    // ...but the record that it was
    let purged: (String, bool) =
        sqlx::query_as("SELECT title, purged_at IS NOT NULL FROM sessions WHERE id = $1::uuid")
            .bind(&expired)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(purged.1, "{purged:?}");
    let (s, removals) = api.get("/retention/removals", &admin).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{removals}");
    let list = removals["removals"].as_array().unwrap();
    assert!(
        list.iter().any(|r| r["what"] == "class"
            && r["session_id"] == expired.as_str()
            && r["rows"].as_i64() > Some(5)
            && r["objects"] == 1),
        "{removals}"
    );
    assert!(
        list.iter()
            .any(|r| r["what"] == "access_log" && r["rows"] == 1),
        "{removals}"
    );
    assert!(
        list.iter()
            .any(|r| r["what"] == "export" && r["objects"] == 1),
        "{removals}"
    );

    // the held class and the recent one are whole
    for (sid, word) in [(&held, "platypus"), (&recent, "echidna")] {
        let evs = serde_json::to_string(&api.events(&teacher, sid).await.unwrap()).unwrap();
        assert!(evs.contains(word), "{word} lost");
    }
    assert!(objects.join(&held).join("seg-00000.mp4").exists());
    let (s, _) = api
        .get(&format!("/replays/{recent_replay}"), &student)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (fresh,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM replay_access_log WHERE replay_id = $1::uuid")
            .bind(&recent_replay)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(fresh >= 1, "the fresh access rows were swept");

    // outside the sweep, the log is still append-only
    let refused = sqlx::query("DELETE FROM session_state_events WHERE session_id = $1::uuid")
        .bind(&held)
        .execute(&db)
        .await;
    assert!(
        refused.is_err(),
        "a plain DELETE got past the append-only trigger"
    );

    // the hold released: the next sweep removes the class; then nothing is due
    let (s, v) = api
        .put(&hold, &admin, json!({ "hold": false }))
        .await
        .unwrap();
    assert_eq!((s, &v["hold"]), (StatusCode::OK, &json!(false)), "{v}");
    let (_, report) = api
        .post("/tenant/retention/sweep", &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(report["classes_removed"], 1, "{report}");
    assert_eq!(report["held"], 0, "{report}");
    assert_eq!(count(EVENTS, held.clone()).await, 0);
    assert!(!objects.join(&held).join("seg-00000.mp4").exists());
    let (_, report) = api
        .post("/tenant/retention/sweep", &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(
        report,
        json!({ "classes_removed": 0, "recordings_removed": 0, "transcripts_removed": 0, "access_log_rows_removed": 0, "exports_removed": 0, "analytics_removed": 0, "beacons_removed": 0, "held": 0 })
    );

    // every step is in the audit chain, which still verifies
    let (_, audit) = api.get("/audit?limit=200", &admin).await.unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "tenant.retention_changed",
        "course.legal_hold_set",
        "course.legal_hold_released",
        "retention.class_removed",
        "retention.access_log_removed",
    ] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
    let (_, verified) = api.get("/audit/verify", &admin).await.unwrap();
    assert_eq!(verified["intact"], true, "{verified}");

    stack.shutdown().await;
}
