//! The edge's media plane with str0m clients over real UDP: a teacher
//! publishes, students receive; publishing needs the live permission; bad
//! signaling is refused without disturbing anyone; a subscriber that drops
//! and comes back keeps its seat; a publisher that vanishes ends its tracks.

use std::time::Duration;

use classroom_tests::rtc_client::{self, PublishOptions, SignalError};
use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn frames_grow(c: &rtc_client::Client, video: u64, audio: u64, what: &str) {
    wait_until(what, Duration::from_secs(30), || async {
        let s = c.snapshot();
        (s.video_frames() >= video && s.audio_frames() >= audio).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", c.snapshot()));
}

async fn event_types(stack: &Stack, token: &str, session: &str) -> Vec<Value> {
    stack.api.events(token, session).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_is_seen_and_heard_by_every_student() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let t = api.join(&teacher, &session.id).await.unwrap();
    let mut students = Vec::new();
    for n in 1..=3 {
        let tok = api.login(&format!("student{n}@demo.test")).await.unwrap();
        students.push((tok.clone(), api.join(&tok, &session.id).await.unwrap()));
    }
    // two students subscribe before the teacher publishes, one after
    let early: Vec<_> = futures::future::join_all(
        students[..2]
            .iter()
            .map(|(_, j)| rtc_client::subscribe(&j.edge_url, &session.id, &j.join_token)),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap())
    .collect();
    let teacher_pub = rtc_client::publish(
        &t.edge_url,
        &session.id,
        &t.join_token,
        PublishOptions::default(),
    )
    .await
    .unwrap();
    let late = rtc_client::subscribe(
        &students[2].1.edge_url,
        &session.id,
        &students[2].1.join_token,
    )
    .await
    .unwrap();
    assert!(
        teacher_pub
            .location
            .starts_with(&format!("/whip/{}/", session.id))
    );
    for (i, s) in early.iter().chain(std::iter::once(&late)).enumerate() {
        frames_grow(
            s,
            60,
            60,
            &format!("student {i} to receive video and audio"),
        )
        .await;
        assert!(s.snapshot().keyframes >= 1, "decoding starts at a keyframe");
    }

    // the log records the tracks and the media quality samples
    let evs = wait_until(
        "track and quality events",
        Duration::from_secs(20),
        || async {
            let evs = event_types(&stack, &teacher, &session.id).await;
            let published = evs
                .iter()
                .filter(|e| e["type"] == "track.published")
                .count();
            let quality = evs.iter().any(|e| e["type"] == "media.quality");
            (published == 2 && quality).then_some(evs)
        },
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = evs
        .iter()
        .filter(|e| e["type"] == "track.published")
        .map(|e| e["payload"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"video") && kinds.contains(&"audio"));
    let (_, st) = api
        .get(&format!("/sessions/{}/state", session.id), &teacher)
        .await
        .unwrap();
    assert_eq!(st["tracks"].as_array().unwrap().len(), 2);

    // the publisher leaves cleanly: its tracks end for everyone
    let loc = teacher_pub.location.clone();
    let resp = api
        .http
        .delete(format!("{}{loc}", t.edge_url))
        .bearer_auth(&students[0].1.join_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "only the owner may end a media connection"
    );
    let resp = api
        .http
        .delete(format!("{}{loc}", t.edge_url))
        .bearer_auth(&t.join_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    wait_until("tracks unpublished", Duration::from_secs(20), || async {
        let evs = event_types(&stack, &teacher, &session.id).await;
        (evs.iter()
            .filter(|e| e["type"] == "track.unpublished")
            .count()
            == 2)
            .then_some(())
    })
    .await
    .unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_follows_live_permissions_and_bad_signaling_disturbs_nobody() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let t = api.join(&teacher, &session.id).await.unwrap();
    let s1 = api.login("student1@demo.test").await.unwrap();
    let st = api.join(&s1, &session.id).await.unwrap();
    let s2 = api.login("student2@demo.test").await.unwrap();
    let viewer = api.join(&s2, &session.id).await.unwrap();
    let _teacher_pub = rtc_client::publish(
        &t.edge_url,
        &session.id,
        &t.join_token,
        PublishOptions::default(),
    )
    .await
    .unwrap();
    let watcher = rtc_client::subscribe(&viewer.edge_url, &session.id, &viewer.join_token)
        .await
        .unwrap();
    frames_grow(&watcher, 30, 30, "the watcher to receive").await;

    // a student cannot publish
    match rtc_client::publish(
        &st.edge_url,
        &session.id,
        &st.join_token,
        PublishOptions::default(),
    )
    .await
    {
        Err(SignalError::Status(403, body)) => {
            assert!(body.contains("missing_permission"), "{body}")
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    // bad requests: no token, forged token, other session, malformed SDP, wrong type
    let whip = format!("{}/whip/{}", st.edge_url, session.id);
    let post = |token: Option<&str>, ct: &str, body: &str, url: &str| {
        let mut r = api
            .http
            .post(url)
            .header("content-type", ct)
            .body(body.to_owned());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(
        post(None, "application/sdp", offer, &whip)
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some("forged.token.x"), "application/sdp", offer, &whip)
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let other = api.start_class(&teacher).await.unwrap();
    let other_whep = format!("{}/whep/{}", st.edge_url, other.id);
    assert_eq!(
        post(
            Some(&viewer.join_token),
            "application/sdp",
            offer,
            &other_whep
        )
        .await
        .unwrap()
        .status(),
        StatusCode::FORBIDDEN
    );
    let whep = format!("{}/whep/{}", st.edge_url, session.id);
    let r = post(
        Some(&viewer.join_token),
        "application/sdp",
        "v=0\r\nthis is not sdp",
        &whep,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(&viewer.join_token), "application/sdp", "hello", &whep)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(&viewer.join_token), "text/plain", offer, &whep)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // ... and the watcher kept receiving throughout
    let before = watcher.snapshot().video_frames();
    frames_grow(&watcher, before + 30, 0, "the watcher to keep receiving").await;

    // a grant lets the student publish; the watcher sees a second video
    let (s, _) = api
        .post(
            &format!("/sessions/{}/permissions", session.id),
            &teacher,
            json!({ "participant_id": st.participant_id, "grant": ["present", "speak"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let student_pub = rtc_client::publish(
        &st.edge_url,
        &session.id,
        &st.join_token,
        PublishOptions::default(),
    )
    .await
    .unwrap();
    wait_until(
        "the watcher to receive the student's video too",
        Duration::from_secs(30),
        || async { (watcher.snapshot().video_tracks() >= 2).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", watcher.snapshot()));
    assert!(
        watcher.snapshot().offers >= 1,
        "the second video came by renegotiation on the data channel"
    );

    // the revoke cuts the student's media at once
    let (s, _) = api
        .post(
            &format!("/sessions/{}/permissions", session.id),
            &teacher,
            json!({ "participant_id": st.participant_id, "revoke": ["present"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    wait_until(
        "the student's tracks to be unpublished",
        Duration::from_secs(10),
        || async {
            let evs = event_types(&stack, &teacher, &session.id).await;
            let theirs = evs
                .iter()
                .filter(|e| {
                    e["type"] == "track.published"
                        && e["payload"]["participant_id"] == st.participant_id.as_str()
                })
                .count();
            let gone = evs
                .iter()
                .filter(|e| e["type"] == "track.unpublished")
                .count();
            (theirs == 2 && gone == 2).then_some(())
        },
    )
    .await
    .unwrap();
    drop(student_pub);
    // a media kill switch refuses publishing even to a teacher
    let (s, _) = api
        .post(&format!("/sessions/{}/kill-switch", session.id), &teacher, json!({ "switch": { "kind": "media", "participant_id": t.participant_id }, "engaged": true }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    match rtc_client::publish(
        &t.edge_url,
        &session.id,
        &t.join_token,
        PublishOptions::default(),
    )
    .await
    {
        Err(SignalError::Status(403, body)) => assert!(body.contains("media_disabled"), "{body}"),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_survive_a_brief_drop_and_vanished_publishers_end_their_tracks() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let t = api.join(&teacher, &session.id).await.unwrap();
    let s1 = api.login("student1@demo.test").await.unwrap();
    let st = api.join(&s1, &session.id).await.unwrap();
    let publisher = rtc_client::publish(
        &t.edge_url,
        &session.id,
        &t.join_token,
        PublishOptions::default(),
    )
    .await
    .unwrap();
    let sub = rtc_client::subscribe(&st.edge_url, &session.id, &st.join_token)
        .await
        .unwrap();
    frames_grow(&sub, 20, 20, "the student to receive").await;

    // the student's connection drops and comes straight back: same seat, no leave
    sub.vanish();
    let back = rtc_client::subscribe(&st.edge_url, &session.id, &st.join_token)
        .await
        .unwrap();
    frames_grow(&back, 20, 20, "the student to receive again").await;
    let evs = event_types(&stack, &teacher, &session.id).await;
    assert!(
        !evs.iter().any(|e| e["type"] == "participant.left"
            && e["payload"]["participant_id"] == st.participant_id.as_str()),
        "a brief drop is not a leave"
    );

    // the publisher vanishes (no DELETE, no close): its tracks end for everyone
    // once it has been silent past the idle timeout, and the teacher has left
    // after the grace period
    publisher.vanish();
    let evs = wait_until(
        "the vanished publisher's tracks to end",
        Duration::from_secs(30),
        || async {
            let evs = event_types(&stack, &teacher, &session.id).await;
            let gone = evs
                .iter()
                .filter(|e| e["type"] == "track.unpublished")
                .count()
                == 2;
            let left = evs.iter().any(|e| {
                e["type"] == "participant.left"
                    && e["payload"]["participant_id"] == t.participant_id.as_str()
                    && e["payload"]["reason"] == "disconnected"
            });
            (gone && left).then_some(evs)
        },
    )
    .await
    .unwrap();
    let (_, state) = api
        .get(&format!("/sessions/{}/state", session.id), &teacher)
        .await
        .unwrap();
    assert!(state["tracks"].as_array().unwrap().is_empty(), "{state}");
    // the student is still in the class
    assert!(
        state["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["participant_id"] == st.participant_id.as_str())
    );
    let _ = evs;
    stack.shutdown().await;
}

/// Media connections are capped where they live, the SFU: a participant's
/// fourth watching connection closes their oldest (the other three go on),
/// a second camera replaces the first, and a class at its public-viewer cap
/// refuses the next viewer with 503 `class_full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_connections_are_capped_per_participant_and_public_viewers_per_class() {
    let stack = Stack::start(StackOptions {
        edge_args: vec!["--max-public-viewers".into(), "1".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    // the tenant allows public viewing (fixed for a class when it starts)
    let admin = api.login("admin@demo.test").await.unwrap();
    let r = api
        .http
        .patch(format!("{}/tenant/settings", stack.core_url))
        .bearer_auth(&admin)
        .json(&json!({ "public_viewing": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let t = api.join(&teacher, &sid).await.unwrap();
    let _first_camera =
        rtc_client::publish(&t.edge_url, &sid, &t.join_token, PublishOptions::default())
            .await
            .unwrap();
    let s1 = api.login("student1@demo.test").await.unwrap();
    let st = api.join(&s1, &sid).await.unwrap();
    let mut subs = Vec::new();
    for _ in 0..4 {
        let c = rtc_client::subscribe(&st.edge_url, &sid, &st.join_token)
            .await
            .unwrap();
        subs.push(c);
    }
    frames_grow(&subs[3], 30, 30, "the newest connection to receive").await;
    // from here the oldest gets nothing while the newest gets 60 more frames
    let before: Vec<u64> = subs.iter().map(|c| c.snapshot().video_frames()).collect();
    frames_grow(
        &subs[3],
        before[3] + 60,
        0,
        "the newest connection to go on",
    )
    .await;
    let gained: Vec<u64> = subs
        .iter()
        .zip(&before)
        .map(|(c, b)| c.snapshot().video_frames() - b)
        .collect();
    assert!(
        gained[0] <= 5,
        "the oldest connection was closed: {gained:?}"
    );
    assert!(
        gained[1..].iter().all(|g| *g >= 30),
        "the three newest receive: {gained:?}"
    );

    // a second camera from the same seat replaces the first
    let _second_camera =
        rtc_client::publish(&t.edge_url, &sid, &t.join_token, PublishOptions::default())
            .await
            .unwrap();
    wait_until(
        "the first camera's tracks to end",
        Duration::from_secs(15),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            let published = evs
                .iter()
                .filter(|e| e["type"] == "track.published")
                .count();
            let ended = evs
                .iter()
                .filter(|e| e["type"] == "track.unpublished")
                .count();
            (published >= 4 && ended >= 2).then_some(())
        },
    )
    .await
    .unwrap();
    let now = subs[3].snapshot().video_frames();
    frames_grow(
        &subs[3],
        now + 30,
        0,
        "the second camera to reach the student",
    )
    .await;

    // one public viewer fits this edge's cap for the class; the next is shed
    let (s, v) = api
        .post(&format!("/sessions/{sid}/public-link"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = v["key"].as_str().unwrap().to_owned();
    let mut viewers = Vec::new();
    for _ in 0..2 {
        let w: Value = api
            .http
            .post(format!("{}/public/sessions/{sid}/watch", stack.core_url))
            .json(&json!({ "key": key }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        viewers.push(w["join_token"].as_str().unwrap().to_owned());
    }
    let _viewer = rtc_client::subscribe(&st.edge_url, &sid, &viewers[0])
        .await
        .unwrap();
    match rtc_client::subscribe(&st.edge_url, &sid, &viewers[1]).await {
        Err(SignalError::Status(503, body)) => assert!(body.contains("class_full"), "{body}"),
        other => panic!("expected 503 class_full, got {:?}", other.map(|_| ())),
    }
    stack.shutdown().await;
}
