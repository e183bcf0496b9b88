//! The done-when of the media plane: a teacher publishing from headless
//! Chromium (fake camera and microphone) is seen and heard by three students
//! in three other Chromium contexts, on the same edge.

use classroom_tests::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chromium_students_see_and_hear_a_chromium_teacher() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let teacher = stack.api.login("teacher@demo.test").await.unwrap();
    let session = stack.api.start_class(&teacher).await.unwrap();
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("SESSION", session.id.clone()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("STUDENTS", "3".to_owned()),
    ];
    let result = classroom_tests::browser::run(&stack, "class.mjs", &env).await;
    let students = result["students"].as_array().unwrap();
    assert_eq!(students.len(), 3);
    for s in students {
        assert!(s["framesDecoded"].as_u64().unwrap() >= 60, "{s}");
        assert!(s["audioSamples"].as_u64().unwrap() >= 48_000, "{s}");
        assert!(
            s["audioLevel"].as_f64().unwrap() > 0.0,
            "audible, not silence: {s}"
        );
        assert!(s["rendered"]["width"].as_u64().unwrap() > 0, "{s}");
    }
    assert_eq!(result["hand_seen"], true);
    // the log has the browser's tracks, with simulcast layers on the video
    let evs = stack.api.events(&teacher, &session.id).await.unwrap();
    let video = evs
        .iter()
        .find(|e| e["type"] == "track.published" && e["payload"]["kind"] == "video")
        .expect("a video track was published");
    assert_eq!(
        video["payload"]["simulcast"].as_array().map(|a| a.len()),
        Some(3),
        "{video}"
    );
    stack.shutdown().await;
}
