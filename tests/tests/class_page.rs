//! The student class page in real headless Chromium against the real stack:
//! a teacher (str0m publisher with a real VP8 camera) runs a class with a
//! slide, a poll and a CTA; a student signs in, follows "Join …" from My
//! classes, consents at the recording notice, chats, asks, raises a hand, votes
//! and keeps a note, and sees the teacher's video; the live feed drops and
//! resumes; a student taken off the roster is refused with a clear message.
//! What the browser did is checked in core's event log.

use std::sync::Arc;

use classroom_tests::{Stack, StackOptions, media_check, pdf, rtc_client, workspace_root};
use reqwest::StatusCode;
use serde_json::json;

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("web-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_takes_part_in_a_class_from_the_class_page() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();

    // the class: a deck on its second slide, an open poll, a CTA
    let (s, deck) = api
        .post_raw(
            "/decks",
            Some(&teacher),
            "application/pdf",
            pdf::pages(&["Welcome", "Photosynthesis"]),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{deck}");
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let seat = api.join(&teacher, &sid).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = media_check::vp8_clip(dir.path(), 640, 360, 30, 4)
        .await
        .unwrap();
    let _camera = rtc_client::publish(
        &seat.edge_url,
        &sid,
        &seat.join_token,
        rtc_client::PublishOptions {
            clip: Some(Arc::new(clip)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for (path, body) in [
        ("/slides", json!({ "deck_id": deck["id"], "index": 1 })),
        (
            "/polls",
            json!({ "question": "Where does photosynthesis happen?", "options": ["Leaves", "Roots"] }),
        ),
        (
            "/ctas",
            json!({ "url": "https://example.edu/reading", "label": "Reading list" }),
        ),
    ] {
        let (s, v) = api
            .post(&format!("/sessions/{sid}{path}"), &teacher, body)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }

    // student9 is taken off the course's roster: an outsider
    let (_, live) = api.get("/sessions?status=live", &admin).await.unwrap();
    let course = live["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["session_id"] == sid.as_str() || x["id"] == sid.as_str())
        .and_then(|x| x["course_id"].as_str())
        .unwrap_or_else(|| panic!("{sid} not in {live}"))
        .to_owned();
    let outsider = api.login_full("student9@demo.test").await.unwrap();
    let outsider_id = outsider["user"]["id"].as_str().unwrap();
    let (s, v) = api
        .delete(&format!("/courses/{course}/members/{outsider_id}"), &admin)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let shots = shots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("SESSION", sid.clone()),
        ("STUDENT_EMAIL", "student1@demo.test".to_owned()),
        ("OUTSIDER_EMAIL", "student9@demo.test".to_owned()),
        ("SHOTS_DIR", shots.display().to_string()),
    ];
    let result = classroom_tests::browser::run(&stack, "classpage.mjs", &env).await;
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    assert_eq!(result["outsider_refused"], true, "{result}");
    assert_eq!(result["reconnected"], true, "{result}");
    assert!(
        result["video_frames"].as_u64().unwrap_or(0) > 0,
        "the teacher's camera reached the page: {result}"
    );
    for page in ["class-notice", "class", "class-refused"] {
        let bad: Vec<_> = result["axe"][page]["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("no axe result for {page}: {result}"))
            .iter()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(bad.is_empty(), "{page}: {bad:?}");
    }

    // what the student did is in the class's log, under their name
    let evs = api.events(&teacher, &sid).await.unwrap();
    let by_student = |ty: &str| {
        evs.iter()
            .any(|e| e["type"] == ty && e["actor"]["role"] == "student")
    };
    for ty in [
        "participant.joined",
        "chat.message",
        "question.asked",
        "hand.raised",
        "poll.voted",
    ] {
        assert!(
            by_student(ty),
            "no {ty} by a student in the log: {:?}",
            evs.iter()
                .map(|e| (e["type"].clone(), e["actor"].clone()))
                .collect::<Vec<_>>()
        );
    }
    stack.shutdown().await;
}
