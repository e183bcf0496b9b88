//! A whole class in the browser, console to replay, against the real stack
//! with recording and the artifact pipeline on (`tests/browser/scenario.mjs`
//! drives five Chromium contexts: admin, teacher, two students, outsider).
//! The browsers check what people see — the slide on the students' pixels,
//! the whiteboard stroke, poll results, the hands queue, the refusal, the
//! replay playing from a chapter and a search hit — and this test checks
//! that what they did is what core holds: the users, the roster, the
//! class's events and the published replay, and that what the student
//! watched of it reached the class's analytics.

use classroom_tests::{Stack, StackOptions, pdf, workspace_root};
use serde_json::Value;

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("web-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_class_runs_in_the_browser_from_console_to_replay() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        artifacts: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;

    // red, blue and magenta pages: a page is told from another by colour
    let colors = [[255, 0, 0], [0, 0, 255], [255, 0, 255]];
    let dir = tempfile::tempdir().unwrap();
    let deck = dir.path().join("deck.pdf");
    std::fs::write(
        &deck,
        pdf::colored_pages(&[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]),
    )
    .unwrap();
    let shots = shots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("ADMIN_EMAIL", "admin@demo.test".to_owned()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("DECK_PDF", deck.display().to_string()),
        ("DECK_COLORS", serde_json::to_string(&colors).unwrap()),
        ("SHOTS_DIR", shots.display().to_string()),
        ("TIMEOUT_MS", "420000".to_owned()),
    ];
    let result = classroom_tests::browser::run(&stack, "scenario.mjs", &env).await;
    println!("{}", serde_json::to_string_pretty(&result).unwrap());

    // the students saw slides 2 and 3 on their pixels, and the stroke
    let seen: Vec<(i64, i64)> = result["slide_pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["want"].as_i64().unwrap(), p["closest"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen, vec![(1, 1), (1, 1), (2, 2), (2, 2)], "{result}");
    assert_eq!(
        result["board_pixels"].as_array().map(Vec::len),
        Some(2),
        "{result}"
    );
    assert_eq!(result["hands_in_studio"], 2, "{result}");
    assert_eq!(result["outsider_refused"], true, "{result}");

    // the people and the roster the admin made in the browser
    let admin = api.login("admin@demo.test").await.unwrap();
    let course = result["course_id"].as_str().expect("course_id");
    let (s, m) = api
        .get(&format!("/courses/{course}/members"), &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{m}");
    let roster: Vec<(String, String)> = m["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["email"].as_str().unwrap().to_owned(),
                x["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let teacher = result["teacher_email"].as_str().unwrap().to_owned();
    assert!(roster.contains(&(teacher, "teacher".into())), "{m}");
    for s in result["student_emails"].as_array().unwrap() {
        let email = s.as_str().unwrap().to_owned();
        assert!(roster.contains(&(email, "student".into())), "{m}");
    }
    let outsider = result["outsider_email"].as_str().unwrap();
    assert!(!roster.iter().any(|(e, _)| e == outsider), "{m}");

    // the class's log holds what the studio and the class pages did
    let sid = result["session_id"].as_str().expect("session_id");
    let evs = api.events(&admin, sid).await.unwrap();
    let count = |ty: &str, pred: &dyn Fn(&Value) -> bool| {
        evs.iter()
            .filter(|e| e["type"] == ty && pred(&e["payload"]))
            .count()
    };
    let types: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        count("slide.changed", &|p| p["index"] == 2
            && p["page_count"] == 3)
            >= 1,
        "{types:?}"
    );
    assert_eq!(count("whiteboard.stroke", &|_| true), 1, "{types:?}");
    assert_eq!(count("chat.message", &|_| true), 2, "{types:?}");
    assert_eq!(count("poll.voted", &|p| p["option"] == 0), 2, "{types:?}");
    assert_eq!(count("question.upvoted", &|_| true), 1, "{types:?}");
    assert_eq!(count("question.answered", &|_| true), 1, "{types:?}");
    assert_eq!(count("poll.closed", &|_| true), 1, "{types:?}");
    assert!(count("hand.lowered", &|_| true) >= 1, "{types:?}");
    assert_eq!(count("hand.raised", &|_| true), 2, "{types:?}");
    // the teacher and both students took seats; nobody withdrew consent
    assert!(count("participant.joined", &|_| true) >= 3, "{types:?}");
    assert_eq!(
        count("consent.changed", &|p| p["recording"] == false),
        0,
        "{types:?}"
    );
    assert_eq!(count("session.ended", &|_| true), 1, "{types:?}");
    // the first student, granted Speak, published her microphone
    let ana = result["student_names"][0].as_str().unwrap();
    let ana_id = evs
        .iter()
        .find(|e| e["type"] == "participant.joined" && e["payload"]["display_name"] == ana)
        .map(|e| e["payload"]["participant_id"].clone())
        .expect("the first student's seat");
    assert_eq!(
        count("permission.changed", &|p| p["participant_id"] == ana_id
            && p["granted"]
                .as_array()
                .is_some_and(|g| g.iter().any(|x| x == "speak"))),
        1,
        "{types:?}"
    );
    assert_eq!(
        count("track.published", &|p| p["participant_id"] == ana_id
            && p["kind"] == "audio"),
        1,
        "{types:?}"
    );

    // the replay the teacher published, which the student played
    let replay = result["replay_id"].as_str().expect("replay_id");
    let (s, r) = api
        .get(&format!("/replays/{replay}"), &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{r}");
    assert_eq!(r["session_id"], sid, "{r}");
    assert_eq!(r["visibility"], "enrolled", "{r}");
    assert!(
        result["chapter_seek"]["chapters"].as_i64().unwrap() >= 2
            && result["chapter_seek"]["want_ms"].as_i64().unwrap() >= 8_000,
        "a chapter past the start: {result}"
    );
    for seek in ["chapter_seek", "search_seek"] {
        let want = result[seek]["want_ms"].as_i64().unwrap();
        let at = result[seek]["current_ms"].as_i64().unwrap();
        assert!((at - want).abs() < 3000, "{seek}: {result}");
    }
    // what the student watched (from the search hit to the pause) reached
    // the class's analytics
    let (from, to) = (
        result["beacon"]["from_ms"].as_i64().expect("a beacon"),
        result["beacon"]["to_ms"].as_i64().unwrap(),
    );
    assert!(to - from >= 1000, "{result}");
    let (s, a) = api
        .get(&format!("/sessions/{sid}/analytics"), &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{a}");
    assert!(a["replay"]["viewers"].as_i64().unwrap() >= 1, "{a}");
    let second = from / 1000 + 1;
    assert!(
        a["replay"]["stretches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| {
                st["from_s"].as_i64().unwrap() <= second && second < st["to_s"].as_i64().unwrap()
            }),
        "the watched second {second} is counted: {a}"
    );

    // no request of the run failed but the outsider's refused join
    let failed: Vec<&str> = result["failed_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| !(r.starts_with("outsider: 403 POST") && r.ends_with("/join")))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    // axe on every page of the run; the screenshots are kept
    for (page, r) in result["axe"].as_object().expect("axe results") {
        let bad: Vec<&Value> = r["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(bad.is_empty(), "{page}: {bad:?}");
    }
    for name in [
        "scenario-class-390.png",
        "scenario-studio-1280.png",
        "scenario-after-1280.png",
        "scenario-replay-390.png",
    ] {
        assert!(shots.join(name).exists(), "no screenshot {name}");
    }
}
