//! The teacher studio in real headless Chromium (fake camera, microphone
//! and screen) against the real stack: a teacher opens #/studio/<session>,
//! publishes the camera and a screen share over WHIP, uploads a deck and
//! pages it (Next, a thumbnail, Previous), switches scene and layout, draws
//! on the whiteboard and clears it, shows and hides a link, locks the room,
//! toggles exam mode, opens a poll, grants a student Speak, mutes and
//! removes them, ends the class and publishes the replay. What the browser
//! did is checked in core's event log.

use classroom_tests::{Stack, StackOptions, pdf, workspace_root};

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("web-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_runs_a_class_from_the_studio() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    // a student in the class, for the participants panel
    let student = api.login("student1@demo.test").await.unwrap();
    let seat = api.join(&student, &sid).await.unwrap();
    let (_, me) = api.get("/me", &student).await.unwrap();
    let student_name = me["display_name"]
        .as_str()
        .expect("a display name")
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let deck = dir.path().join("deck.pdf");
    std::fs::write(&deck, pdf::pages(&["One", "Two", "Three"])).unwrap();

    let shots = shots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("TEACHER_EMAIL", "teacher@demo.test".to_owned()),
        ("SESSION", sid.clone()),
        ("DECK_PDF", deck.display().to_string()),
        ("STUDENT_NAME", student_name),
        ("SHOTS_DIR", shots.display().to_string()),
    ];
    let result = classroom_tests::browser::run(&stack, "studio.mjs", &env).await;
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    assert_eq!(result["camera_published"], true, "{result}");
    assert_eq!(result["slide_index"], 1, "{result}");
    assert_eq!(result["scene"], "slides", "{result}");
    assert_eq!(result["ended"], true, "{result}");
    let deck_id = result["deck_id"].as_str().expect("a deck id").to_owned();
    let poll_id = result["poll_id"].as_str().expect("a poll id").to_owned();
    let pages = result["axe"].as_object().expect("axe results");
    assert!(
        pages.contains_key("studio") && pages.contains_key("studio-after"),
        "{pages:?}"
    );
    for (page, r) in pages {
        let bad: Vec<_> = r["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(bad.is_empty(), "{page}: {bad:?}");
    }
    for name in ["studio-1280.png", "studio-390.png", "studio-after-390.png"] {
        assert!(shots.join(name).exists(), "no screenshot {name}");
    }

    // what the studio did is in the class's log
    let evs = api.events(&teacher, &sid).await.unwrap();
    let types: Vec<_> = evs.iter().map(|e| e["type"].clone()).collect();
    let has = |ty: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        evs.iter().any(|e| e["type"] == ty && pred(&e["payload"]))
    };
    assert!(
        has("track.published", &|p| p["kind"] == "video"),
        "no published video track: {types:?}"
    );
    assert!(
        has("slide.changed", &|p| p["index"] == 1
            && p["deck_id"] == deck_id.as_str()
            && p["page_count"] == 3),
        "no slide.changed to index 1 of {deck_id}: {types:?}"
    );
    assert!(
        has("scene.changed", &|p| p["scene"] == "slides"),
        "no scene.changed to slides: {types:?}"
    );
    assert!(
        has("poll.opened", &|p| p["poll_id"] == poll_id.as_str()
            && p["question"] == "Is this clear?"),
        "no poll.opened {poll_id}: {types:?}"
    );
    assert!(
        has("session.ended", &|_| true),
        "no session.ended: {types:?}"
    );
    assert!(
        has("track.published", &|p| p["source"] == "screen"),
        "no screen track: {types:?}"
    );
    assert!(
        has("layout.changed", &|p| p["layout"] == "grid"),
        "{types:?}"
    );
    // one stroke drawn with the pointer, one with the arrow keys (9 points)
    let strokes: Vec<usize> = evs
        .iter()
        .filter(|e| e["type"] == "whiteboard.stroke")
        .map(|e| e["payload"]["points"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(
        strokes.len() == 2 && strokes.iter().all(|n| *n >= 2) && strokes.contains(&9),
        "{strokes:?}"
    );
    assert!(has("whiteboard.cleared", &|_| true), "{types:?}");
    assert!(
        has("cta.shown", &|p| p["url"] == "https://school.test/survey"),
        "{types:?}"
    );
    assert!(has("cta.hidden", &|_| true), "{types:?}");
    assert!(has("room.locked", &|p| p["locked"] == true), "{types:?}");
    assert!(
        has("exam_mode.changed", &|p| p["enabled"] == true)
            && has("exam_mode.changed", &|p| p["enabled"] == false),
        "{types:?}"
    );
    let pid = seat.participant_id.as_str();
    assert!(
        has("permission.changed", &|p| p["participant_id"] == pid
            && p["granted"]
                .as_array()
                .is_some_and(|g| g.iter().any(|x| x == "speak"))),
        "{types:?}"
    );
    assert!(
        has("participant.muted", &|p| p["participant_id"] == pid
            && p["media"] == "audio"),
        "{types:?}"
    );
    assert!(
        has("participant.left", &|p| p["participant_id"] == pid
            && p["reason"] == "removed"),
        "{types:?}"
    );
    // the replay published from "After the class"
    let replay = result["published"].as_str().expect("a replay id");
    let (s, r) = api
        .get(&format!("/replays/{replay}"), &teacher)
        .await
        .unwrap();
    assert!(s.is_success(), "{r}");
    assert_eq!(r["session_id"], sid.as_str(), "{r}");
    assert_eq!(r["visibility"], "tenant", "{r}");
    stack.shutdown().await;
}
