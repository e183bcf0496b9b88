//! The event backbone under faults: a cut leaf link while a class is live,
//! an edge that cannot take a start, and an event log that refuses it.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream;
use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn edge_post(
    api: &classroom_tests::Api,
    url: String,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    api.post(&url, token, body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_leaf_link_loses_and_duplicates_nothing() {
    let mut stack = Stack::start(StackOptions {
        proxied_edge: Some("edge-a"),
        ..Default::default()
    })
    .await
    .unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let edge = session.edge_url.clone();

    let (s, poll) = api
        .post(
            &format!("/sessions/{sid}/polls"),
            &teacher,
            json!({ "question": "pH of water?", "options": ["6", "7", "8"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{poll}");
    let poll_id = poll["poll_id"].as_str().unwrap().to_owned();
    let mut students = Vec::new();
    for n in 1..=8 {
        let tok = api.login(&format!("student{n}@demo.test")).await.unwrap();
        students.push(api.join(&tok, &sid).await.unwrap());
    }
    let teacher_seat = api.join(&teacher, &sid).await.unwrap();
    let before_cut = wait_until(
        "core to catch up before the cut",
        Duration::from_secs(20),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.len() as i64 == evs.last()?["seq"].as_i64()? && evs.len() >= 11)
                .then_some(evs.len())
        },
    )
    .await
    .unwrap();

    stack.edge("edge-a").proxy.as_ref().unwrap().cut();

    // Core notices the edge is gone: commands through core are refused with
    // 503 and change nothing; new classes cannot start there.
    let (s, v) = wait_until(
        "core to refuse commands for the cut edge",
        Duration::from_secs(20),
        || {
            let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
            async move {
                let (s, v) = api
                    .post(
                        &format!("/sessions/{sid}/layout"),
                        &teacher,
                        json!({ "layout": "grid" }),
                    )
                    .await
                    .ok()?;
                (s == StatusCode::SERVICE_UNAVAILABLE).then_some((s, v))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(v["error"]["code"], "edge_unreachable", "{s} {v}");
    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, v) = wait_until(
        "starts to be refused while the only edge is cut off",
        Duration::from_secs(20),
        || {
            let (api, teacher, run) = (api.clone(), teacher.clone(), run.clone());
            async move {
                let (s, v) = api
                    .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
                    .await
                    .ok()?;
                (s == StatusCode::SERVICE_UNAVAILABLE).then_some((s, v))
            }
        },
    )
    .await
    .unwrap();
    assert!(
        ["no_edge_available", "edge_unavailable"].contains(&v["error"]["code"].as_str().unwrap()),
        "{s} {v}"
    );

    // The campus class goes on at the edge: a burst of commands.
    let mut acked = 0;
    for (i, st) in students.iter().enumerate() {
        let tok = &st.join_token;
        for k in 0..3 {
            let (s, v) = edge_post(
                &api,
                format!("{edge}/sessions/{sid}/chat"),
                tok,
                json!({ "text": format!("msg {i}.{k} during the cut") }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            acked += 1;
        }
        let (s, v) = edge_post(
            &api,
            format!("{edge}/sessions/{sid}/polls/{poll_id}/vote"),
            tok,
            json!({ "option": i % 3 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = edge_post(&api, format!("{edge}/sessions/{sid}/hands"), tok, json!({})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = edge_post(
            &api,
            format!("{edge}/sessions/{sid}/questions"),
            tok,
            json!({ "text": format!("question {i}?") }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        acked += 3;
    }
    let (s, v) = edge_post(
        &api,
        format!("{edge}/sessions/{sid}/scene"),
        &teacher_seat.join_token,
        json!({ "scene": "whiteboard" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, closed) = edge_post(
        &api,
        format!("{edge}/sessions/{sid}/polls/{poll_id}/close"),
        &teacher_seat.join_token,
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    acked += 2;
    let last_seq = closed["seq"].as_i64().unwrap();
    assert_eq!(
        last_seq as usize,
        before_cut + acked,
        "the edge kept sequencing without core"
    );

    // Core saw none of it while cut.
    let during = api.events(&teacher, &sid).await.unwrap();
    assert_eq!(during.len(), before_cut, "nothing crossed the cut link");

    stack.edge("edge-a").proxy.as_ref().unwrap().restore();

    let events = wait_until(
        "core to receive every event after the link returns",
        Duration::from_secs(90),
        || {
            let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
            async move {
                let evs = api.events(&teacher, &sid).await.ok()?;
                (evs.last()?["seq"].as_i64()? >= last_seq).then_some(evs)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=last_seq).collect::<Vec<_>>(), "in order, no gap");
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "no duplicate");

    // Postgres holds exactly the edge's log: compare with the edge's stream.
    let leaf = stack.edge("edge-a").leaf.client().await.unwrap();
    let js = jetstream::with_domain(leaf, "edge-a");
    let mut stream = js.get_stream("EV_edge-a").await.unwrap();
    let info = stream.info().await.unwrap();
    let db = stack.db().await.unwrap();
    let (rows, distinct): (i64, i64) = sqlx::query_as("SELECT count(*), count(DISTINCT seq) FROM session_state_events WHERE session_id = $1::uuid")
        .bind(&sid)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, last_seq);
    assert_eq!(distinct, last_seq);
    assert_eq!(
        info.state.messages as i64, last_seq,
        "edge stream and core agree"
    );

    // core's folded state equals the edge's, field for field
    let (_, st) = api
        .get(&format!("/sessions/{sid}/state"), &teacher)
        .await
        .unwrap();
    let (_, folded) = api
        .get(&format!("/sessions/{sid}/state?source=core"), &teacher)
        .await
        .unwrap();
    assert_eq!(st["state_source"], "edge");
    assert_eq!(folded["state_source"], "core");
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("state_source");
        v
    };
    let (a, b) = (strip(st.clone()), strip(folded));
    let differing: Vec<&String> = a
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| a[k.as_str()] != b[k.as_str()])
        .collect();
    assert!(
        differing.is_empty(),
        "core's copy of the log folds to the edge's state; differing: {differing:?}"
    );
    assert_eq!(st["seq"].as_i64(), Some(last_seq));
    assert_eq!(st["scene"], "whiteboard");
    assert_eq!(st["hands"].as_array().unwrap().len(), 8);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_the_edge_cannot_take_aborts_and_leaves_nothing() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let db = stack.db().await.unwrap();
    let sessions = || async {
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM sessions")
            .fetch_one(&db)
            .await
            .unwrap()
            .0
    };
    let events = || async {
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM session_state_events")
            .fetch_one(&db)
            .await
            .unwrap()
            .0
    };

    // 1. The edge's event log refuses writes (its stream sealed): the start
    //    aborts with 503 and nothing is left.
    let leaf = stack.edge("edge-a").leaf.client().await.unwrap();
    let js = jetstream::with_domain(leaf, "edge-a");
    let mut stream = js.get_stream("EV_edge-a").await.unwrap();
    let mut cfg = stream.info().await.unwrap().config.clone();
    cfg.sealed = true;
    js.update_stream(cfg).await.unwrap();
    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, v) = api
        .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "event_log_unavailable");
    assert_eq!(
        (sessions().await, events().await),
        (0, 0),
        "nothing half-made"
    );

    // 2. The edge is gone (crashed): 503 again, nothing made.
    stack.edge("edge-a").kill().await;
    let (s, v) = api
        .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        ["edge_unavailable", "no_edge_available"].contains(&v["error"]["code"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!((sessions().await, events().await), (0, 0));

    // the same key can be retried after a failure: nothing was stored under it
    let (s, _) = api
        .post_with_key(
            "/sessions/start",
            &teacher,
            "k1",
            json!({ "lesson_run_id": run }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, v) = api
        .post_with_key(
            "/sessions/start",
            &teacher,
            "k1",
            json!({ "lesson_run_id": run }),
        )
        .await
        .unwrap();
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "a failed key is not replayed as success: {v}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_edge_resumes_its_live_classes_from_its_log() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let seat = api.join(&student, &sid).await.unwrap();
    let (s, _) = api
        .post(
            &format!("{}/sessions/{sid}/chat", seat.edge_url),
            &seat.join_token,
            json!({ "text": "before the crash" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    stack.edge("edge-a").kill().await;
    stack.edge("edge-a").restart().await.unwrap();

    // same seq continues: the writer rebuilt its state from the log
    let (s, v) = wait_until(
        "the edge to take commands again",
        Duration::from_secs(20),
        || {
            let (api, url, tok) = (
                api.clone(),
                format!("{}/sessions/{sid}/chat", seat.edge_url),
                seat.join_token.clone(),
            );
            async move {
                let (s, v) = api
                    .post(&url, &tok, json!({ "text": "after the crash" }))
                    .await
                    .ok()?;
                (s == StatusCode::OK).then_some((s, v))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["seq"], 5,
        "session.started, roster.set, joined, chat, chat"
    );
    let events = wait_until("core to have all five", Duration::from_secs(30), || {
        let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
        async move {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.len() == 5).then_some(evs)
        }
    })
    .await
    .unwrap();
    assert_eq!(events[4]["payload"]["text"], "after the crash");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_repairs_a_gap_in_its_hub_stream_from_the_edge() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let mut seats = Vec::new();
    for n in 1..=3 {
        let tok = api.login(&format!("student{n}@demo.test")).await.unwrap();
        seats.push(api.join(&tok, &sid).await.unwrap());
    }
    wait_until(
        "core to hold the joins",
        Duration::from_secs(20),
        // session.started, roster.set, three joins
        || async { (api.events(&teacher, &sid).await.ok()?.len() == 5).then_some(()) },
    )
    .await
    .unwrap();

    // Core is down while the class chats at the edge; the hub stream still
    // sources the events.
    stack.kill_core().await;
    for (i, seat) in seats.iter().enumerate() {
        let (s, _) = api
            .post(
                &format!("{}/sessions/{sid}/chat", seat.edge_url),
                &seat.join_token,
                json!({ "text": format!("hi {i}") }),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK);
    }
    let hub = stack.hub.client().await.unwrap();
    let js = jetstream::with_domain(hub, "core");
    let mut stream = js.get_stream("CLASS_EVENTS").await.unwrap();
    wait_until(
        "the hub stream to source all eight",
        Duration::from_secs(20),
        || {
            let js = js.clone();
            async move {
                let mut s = js.get_stream("CLASS_EVENTS").await.ok()?;
                (s.info().await.ok()?.state.messages >= 8).then_some(())
            }
        },
    )
    .await
    .unwrap();
    // The hub loses an acknowledged write (the failure Jepsen found in
    // JetStream): delete the middle chat message from the hub stream.
    let last = stream.info().await.unwrap().state.last_sequence;
    let victim = last - 1;
    let raw = stream.get_raw_message(victim).await.unwrap();
    let lost: Value = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(lost["type"], "chat.message");
    stream.delete_message(victim).await.unwrap();

    stack.restart_core().await.unwrap();
    let events = wait_until(
        "core to repair the gap from the edge",
        Duration::from_secs(60),
        || {
            let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
            async move {
                let evs = api.events(&teacher, &sid).await.ok()?;
                (evs.len() == 8).then_some(evs)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert!(
        events.iter().any(|e| e["event_id"] == lost["event_id"]),
        "the lost event was recovered"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_commit_together_and_a_refused_append_changes_nothing() {
    let mut stack = Stack::start(StackOptions {
        students: 20,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let mut seats = Vec::new();
    for n in 1..=20 {
        let tok = api.login(&format!("student{n}@demo.test")).await.unwrap();
        seats.push(api.join(&tok, &sid).await.unwrap());
    }
    // 20 participants x 4 commands at once: the writer batches them
    let mut tasks = Vec::new();
    for seat in &seats {
        for k in 0..4 {
            let (api, url, tok) = (
                api.clone(),
                format!("{}/sessions/{sid}/chat", seat.edge_url),
                seat.join_token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                api.post(&url, &tok, json!({ "text": format!("burst {k}") }))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        seqs.push(v["seq"].as_i64().unwrap());
    }
    seqs.sort();
    assert_eq!(
        seqs,
        // session.started, roster.set, 20 joins, then the burst
        (23..23 + 80).collect::<Vec<i64>>(),
        "each command its own seq, no gap"
    );

    // The event log starts refusing writes mid-class: every command in
    // flight gets a 503, and the edge's state stays equal to its log.
    let leaf = stack.edge("edge-a").leaf.client().await.unwrap();
    let js = jetstream::with_domain(leaf, "edge-a");
    let mut stream = js.get_stream("EV_edge-a").await.unwrap();
    let mut cfg = stream.info().await.unwrap().config.clone();
    cfg.sealed = true;
    js.update_stream(cfg).await.unwrap();
    let mut tasks = Vec::new();
    for seat in &seats {
        let (api, url, tok) = (
            api.clone(),
            format!("{}/sessions/{sid}/questions", seat.edge_url),
            seat.join_token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            api.post(&url, &tok, json!({ "text": "does it still work?" }))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "event_log_unavailable");
    }
    let (s, st) = api
        .get(
            &format!("{}/sessions/{sid}/state", seats[0].edge_url),
            &seats[0].join_token,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["seq"], 102, "no refused command was applied");
    assert!(st["questions"].as_array().unwrap().is_empty());
    let messages = stream.info().await.unwrap().state.messages;
    assert_eq!(messages, 102);
    let events = wait_until("core to hold all 102", Duration::from_secs(30), || {
        let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
        async move {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.len() == 102).then_some(evs)
        }
    })
    .await
    .unwrap();
    let got: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, (1..=102).collect::<Vec<_>>());
    stack.shutdown().await;
}
