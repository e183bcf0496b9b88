//! The relay mesh: a class hosted on `edge-a` reaches students who join
//! through `edge-b`, whose media comes over the MoQ relay. Real binaries:
//! core, two edges with their NATS leaves, the relay with its dev CA and
//! core-issued tokens; Chromium for the teacher and the far students.

use std::time::Duration;

use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn two_edges_and_a_relay() -> Stack {
    Stack::start(StackOptions {
        edges: vec!["edge-a", "edge-b"],
        relay: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A class whose home is `edge-a`.
async fn class_on_edge_a(stack: &Stack, teacher: &str) -> String {
    let run = stack
        .api
        .lesson_run(teacher, json!({ "edge_id": "edge-a" }))
        .await
        .unwrap();
    let session = stack.api.start(teacher, &run).await.unwrap();
    assert_eq!(session.edge_id, "edge-a");
    session.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_students_on_another_edge_see_and_hear_the_class_through_the_relay() {
    let _heavy = classroom_tests::heavy().await;
    let stack = two_edges_and_a_relay().await;
    let teacher = stack.api.login("teacher@demo.test").await.unwrap();
    let sid = class_on_edge_a(&stack, &teacher).await;
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("SESSION", sid.clone()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("STUDENTS", "2".to_owned()),
        ("STUDENT_EDGE", "edge-b".to_owned()),
    ];
    let result = classroom_tests::browser::run(&stack, "class.mjs", &env).await;
    eprintln!(
        "far students (through edge-b and the relay): {}",
        result["students"]
    );
    let students = result["students"].as_array().unwrap();
    assert_eq!(students.len(), 2);
    for s in students {
        assert!(s["framesDecoded"].as_u64().unwrap() >= 60, "{s}");
        assert!(s["audioSamples"].as_u64().unwrap() >= 48_000, "{s}");
        assert!(s["audioLevel"].as_f64().unwrap() > 0.0, "{s}");
    }
    // the far students joined through edge-b, and their hand reached the class
    wait_until(
        "the far students' seats and hand in core's record",
        Duration::from_secs(10),
        || async {
            let evs = stack.api.events(&teacher, &sid).await.ok()?;
            let far = evs
                .iter()
                .filter(|e| {
                    e["type"] == "participant.joined" && e["payload"]["edge_id"] == "edge-b"
                })
                .count();
            (far >= 2 && evs.iter().any(|e| e["type"] == "hand.raised")).then_some(())
        },
    )
    .await
    .unwrap();
    // edge-b pulled the class from the relay; it hosts nothing itself
    let health: Value = reqwest::get(format!("{}/healthz", stack.edge_url("edge-b")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        health["media"]["packets_in"].as_u64().unwrap_or(0) > 100,
        "{health}"
    );
    stack.shutdown().await;
}

fn video_frames(c: &rtc_client::Client) -> u64 {
    c.snapshot().video_frames()
}

async fn frames_grow(what: &str, c: &rtc_client::Client, by: u64, within: Duration) {
    let from = video_frames(c);
    wait_until(what, within, || async {
        (video_frames(c) >= from + by).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restart_leaves_the_local_class_alone_and_far_students_recover() {
    let _heavy = classroom_tests::heavy().await;
    let mut stack = two_edges_and_a_relay().await;
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let sid = class_on_edge_a(&stack, &teacher).await;
    let t = api.join(&teacher, &sid).await.unwrap();
    let _publisher =
        rtc_client::publish(&t.edge_url, &sid, &t.join_token, PublishOptions::default())
            .await
            .unwrap();
    let s1 = api.login("student1@demo.test").await.unwrap();
    let local = api.join(&s1, &sid).await.unwrap();
    assert_eq!(local.body["edge"]["id"], "edge-a");
    let local = rtc_client::subscribe(&local.edge_url, &sid, &local.join_token)
        .await
        .unwrap();
    let s2 = api.login("student2@demo.test").await.unwrap();
    let far = api
        .join_with(&s2, &sid, json!({ "edge_id": "edge-b" }))
        .await
        .unwrap();
    assert_eq!(far.body["edge"]["id"], "edge-b");
    assert_eq!(far.body["home_edge_id"], "edge-a");
    let far = rtc_client::subscribe(&far.edge_url, &sid, &far.join_token)
        .await
        .unwrap();
    frames_grow(
        "the local student's video",
        &local,
        60,
        Duration::from_secs(20),
    )
    .await;
    frames_grow(
        "the far student's video (through the relay)",
        &far,
        60,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        far.snapshot().keyframes >= 1,
        "the far student started at a keyframe"
    );

    // the relay dies: the local class goes on untouched, far students are
    // told the class is reconnecting
    stack.relay.as_mut().unwrap().kill().await;
    frames_grow(
        "the local student's video with the relay down",
        &local,
        90,
        Duration::from_secs(20),
    )
    .await;
    wait_until(
        "the far student told the class is reconnecting",
        Duration::from_secs(30),
        || async {
            (far.snapshot().upstream.last().map(String::as_str) == Some("reconnecting"))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert!(
        local.snapshot().upstream.is_empty(),
        "the home campus hears nothing of it"
    );
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &s1,
            json!({ "text": "still here" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");

    // it comes back: the far student's video resumes
    stack.relay.as_mut().unwrap().restart().await.unwrap();
    frames_grow(
        "the far student's video after the relay returned",
        &far,
        60,
        Duration::from_secs(40),
    )
    .await;
    wait_until(
        "the far student told the class is live again",
        Duration::from_secs(10),
        || async {
            (far.snapshot().upstream.last().map(String::as_str) == Some("live")).then_some(())
        },
    )
    .await
    .unwrap();

    // a student arriving later on campus b (join by region: the nearest
    // edge) starts at a keyframe, asked for upstream
    let s3 = api.login("student3@demo.test").await.unwrap();
    let late = api
        .join_with(&s3, &sid, json!({ "region": "campus-b" }))
        .await
        .unwrap();
    assert_eq!(late.body["edge"]["id"], "edge-b", "{}", late.body);
    let late_pid = late.participant_id.clone();
    let late = rtc_client::subscribe(&late.edge_url, &sid, &late.join_token)
        .await
        .unwrap();
    wait_until(
        "the late far student's first keyframe",
        Duration::from_secs(20),
        || async {
            let s = late.snapshot();
            (s.keyframes >= 1 && s.first_keyframe.is_some()).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    frames_grow(
        "the late far student's video",
        &late,
        30,
        Duration::from_secs(20),
    )
    .await;

    // the teacher removes the late student: the far edge cuts them too
    let peers_b = || async {
        let h: Value = reqwest::get(format!("{}/healthz", stack.edge_url("edge-b")))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        h["media"]["peers"].as_u64()
    };
    assert_eq!(peers_b().await, Some(2), "two far students on edge-b");
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/remove"),
            &teacher,
            json!({ "participant_id": late_pid }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    wait_until(
        "edge-b to cut the removed student",
        Duration::from_secs(15),
        || async { (peers_b().await == Some(1)).then_some(()) },
    )
    .await
    .unwrap();
    frames_grow(
        "the other far student's video",
        &far,
        30,
        Duration::from_secs(20),
    )
    .await;

    // the far edge crashes: only its own students lose the class
    stack.edge("edge-b").kill().await;
    frames_grow(
        "the local student's video with edge-b gone",
        &local,
        90,
        Duration::from_secs(20),
    )
    .await;
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &s1,
            json!({ "text": "campus a carries on" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_viewers_watch_the_program_through_their_nearest_edge_counted_and_anonymous() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        edges: vec!["edge-a", "edge-b"],
        relay: true,
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = stack.api.clone();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let sid = class_on_edge_a(&stack, &teacher).await;
    let link = format!("/sessions/{sid}/public-link");

    // off unless the tenant allows it
    let (s, v) = api.post(&link, &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "public_viewing_off");
    let db = stack.db().await.unwrap();
    sqlx::query(
        "UPDATE tenants SET settings = settings || '{\"public_viewing\": true}'::jsonb
         WHERE id = (SELECT tenant_id FROM users WHERE email = 'teacher@demo.test')",
    )
    .execute(&db)
    .await
    .unwrap();
    // settings are fixed when a class starts: a new class allows it
    let (s, _) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let sid = class_on_edge_a(&stack, &teacher).await;
    let link = format!("/sessions/{sid}/public-link");
    let (s, _) = api.post(&link, &student, json!({})).await.unwrap();
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "students cannot hand out public links"
    );
    let (s, v) = api.post(&link, &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let key = v["key"].as_str().unwrap().to_owned();

    // a forged or foreign key opens nothing
    let watch = format!("{}/public/sessions/{sid}/watch", stack.core_url);
    let r = api
        .http
        .post(&watch)
        .json(&json!({ "key": "forged" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let other = class_on_edge_a(&stack, &teacher).await;
    let r = api
        .http
        .post(format!("{}/public/sessions/{other}/watch", stack.core_url))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a link opens only its own class"
    );
    let (s, _) = api
        .post(&format!("/sessions/{other}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // a public viewer at the home edge: no seat, no actions, no identities
    let v: Value = api
        .http
        .post(&watch)
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["edge"]["id"], "edge-a", "{v}");
    let token = v["join_token"].as_str().unwrap().to_owned();
    let viewer = rtc_client::subscribe(v["edge"]["url"].as_str().unwrap(), &sid, &token)
        .await
        .unwrap();
    let r = api
        .http
        .post(format!(
            "{}/sessions/{sid}/chat",
            v["edge"]["url"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&json!({ "text": "hello from nowhere" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a public viewer cannot chat"
    );
    wait_until(
        "the public viewer counted",
        Duration::from_secs(15),
        || async {
            let (_, a) = api
                .get(&format!("/sessions/{sid}/audience"), &teacher)
                .await
                .ok()?;
            (a["public_viewers"] == 1 && a["by_edge"]["edge-a"] == 1).then_some(())
        },
    )
    .await
    .unwrap();
    let evs = api.events(&teacher, &sid).await.unwrap();
    assert!(
        !evs.iter()
            .any(|e| e["type"] == "participant.joined" && e["payload"]["role"] == "public"),
        "a public viewer leaves no identity in the class's record"
    );

    // two viewers on campus b watch the program through edge-b (the relay)
    let env = [
        ("LINK", url.clone()),
        ("VIEWERS", "2".to_owned()),
        ("REGION", "campus-b".to_owned()),
    ];
    let result = classroom_tests::browser::run(&stack, "watch.mjs", &env).await;
    eprintln!("public viewers on campus b: {}", result["viewers"]);
    for v in result["viewers"].as_array().unwrap() {
        assert_eq!(v["edge"], "edge-b", "{v}");
        assert!(v["framesDecoded"].as_u64().unwrap() >= 60, "{v}");
        assert!(
            v["audioPackets"].as_u64().unwrap() >= 100,
            "the program's sound: {v}"
        );
        assert_eq!(
            v["rendered"]["width"], 1280,
            "the program, not a camera: {v}"
        );
    }
    viewer.stop().await;
    stack.shutdown().await;
}
