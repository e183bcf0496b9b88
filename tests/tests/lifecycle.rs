//! G1 (session lifecycle) and G3 (events captured, durable, gap-free) through
//! the real binaries.

use std::collections::HashSet;
use std::time::Duration;

use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Waits until core's copy of the log reaches `seq`, then checks it is
/// gap-free from 1 and every event_id appears once.
async fn core_log_reaches(stack: &Stack, token: &str, session: &str, seq: i64) -> Vec<Value> {
    let events = wait_until(
        "core to hold the whole log",
        Duration::from_secs(30),
        || async {
            let evs = stack.api.events(token, session).await.ok()?;
            (evs.last().and_then(|e| e["seq"].as_i64()) >= Some(seq)).then_some(evs)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seq must be gap-free from 1"
    );
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "every event once");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_runs_from_start_to_end_and_every_event_lands_in_postgres() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();

    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, started) = api
        .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{started}");
    assert_eq!(started["status"], "live");
    assert_eq!(started["edge"]["id"], "edge-a");
    assert_eq!(started["edge"]["url"], stack.edge_url("edge-a"));
    let sid = started["id"].as_str().unwrap().to_owned();

    // starting the same run again while live is a conflict
    let (s, v) = api
        .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "session_already_live");

    let (s, state) = api
        .get(&format!("/sessions/{sid}/state"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{state}");
    assert_eq!(state["status"], "live");
    assert_eq!(state["seq"], 2, "session.started, roster.set");

    let joined = api.join(&student, &sid).await.unwrap();
    assert_eq!(joined.body["role"], "student");
    assert!(
        joined.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "chat")
    );
    assert!(
        !joined.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "present")
    );
    assert_eq!(joined.edge_url, stack.edge_url("edge-a"));
    // joining twice keeps the seat
    let again = api.join(&student, &sid).await.unwrap();
    assert_eq!(again.participant_id, joined.participant_id);

    let (s, state) = api
        .get(&format!("/sessions/{sid}/state"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let parts = state["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["participant_id"], joined.participant_id.as_str());
    assert_eq!(parts[0]["role"], "student");
    assert_eq!(parts[0]["edge_id"], "edge-a");

    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &student,
            json!({ "text": "hello class" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["seq"].as_i64().unwrap() > 2);

    let (s, _) = api
        .post(&format!("/sessions/{sid}/leave"), &student, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, ended) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "ended");
    let end_seq = ended["seq"].as_i64().unwrap();

    // ending again is a conflict; so is joining an ended class
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) = api
        .post(&format!("/sessions/{sid}/join"), &student, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT);

    let events = core_log_reaches(&stack, &teacher, &sid, end_seq).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "session.started",
            "roster.set",
            "participant.joined",
            "chat.message",
            "participant.left",
            "session.ended"
        ]
    );
    assert!(events.iter().all(|e| e["source"] == "edge:edge-a"));

    let (s, state) = api
        .get(&format!("/sessions/{sid}/state"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state["status"], "ended");
    assert_eq!(state["state_source"], "core");

    // the stored log is append-only, and the projections followed the log
    let db = stack.db().await.unwrap();
    let err = sqlx::query("UPDATE session_state_events SET type = 'x' WHERE session_id = $1::uuid")
        .bind(&sid)
        .execute(&db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(
        sqlx::query("DELETE FROM session_state_events")
            .execute(&db)
            .await
            .is_err()
    );
    let (status, last_seq): (String, i64) =
        sqlx::query_as("SELECT status::text, last_seq FROM sessions WHERE id = $1::uuid")
            .bind(&sid)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), last_seq), ("ended", end_seq));
    let (left,): (bool,) =
        sqlx::query_as("SELECT left_at IS NOT NULL FROM participants WHERE id = $1::uuid")
            .bind(&joined.participant_id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(left);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_under_an_idempotency_key() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let body = json!({ "lesson_run_id": run });
    let (s1, a) = api
        .post_with_key("/sessions/start", &teacher, "start-1", body.clone())
        .await
        .unwrap();
    let (s2, b) = api
        .post_with_key("/sessions/start", &teacher, "start-1", body.clone())
        .await
        .unwrap();
    assert_eq!(
        (s1, s2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{a} {b}"
    );
    assert_eq!(a, b, "the same key and body answer the first answer again");
    let db = stack.db().await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sessions WHERE lesson_run_id = $1::uuid")
            .bind(&run)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(n, 1, "one session, however often the key is replayed");

    // the same key with another body is refused
    let other = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, v) = api
        .post_with_key(
            "/sessions/start",
            &teacher,
            "start-1",
            json!({ "lesson_run_id": other }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "idempotency_key_reused");

    // creating courses is idempotent too
    let (_, c1) = api
        .post_with_key("/courses", &teacher, "course-1", json!({ "title": "Art" }))
        .await
        .unwrap();
    let (_, c2) = api
        .post_with_key("/courses", &teacher, "course-1", json!({ "title": "Art" }))
        .await
        .unwrap();
    assert_eq!(c1["id"], c2["id"]);
    stack.shutdown().await;
}
