//! The done-when of the media plane: a teacher publishing from headless
//! Chromium (fake camera and microphone) is seen and heard by three students
//! in three other Chromium contexts, on the same edge.

use std::time::Duration;

use classroom_tests::{Stack, StackOptions, workspace_root};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chromium_students_see_and_hear_a_chromium_teacher() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let teacher = stack.api.login("teacher@demo.test").await.unwrap();
    let session = stack.api.start_class(&teacher).await.unwrap();
    let dir = workspace_root().join("tests/browser");
    let run = tokio::process::Command::new("node")
        .arg("class.mjs")
        .current_dir(&dir)
        .env("CORE_URL", &stack.core_url)
        .env("SESSION", &session.id)
        .env("PASSWORD", classroom_tests::stack::PASSWORD)
        .env("STUDENTS", "3")
        .env(
            "TIMEOUT_MS",
            std::env::var("BROWSER_TIMEOUT_MS").unwrap_or_else(|_| "90000".into()),
        )
        .env(
            "DEBUG_STATS",
            std::env::var("DEBUG_STATS").unwrap_or_default(),
        )
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("browsers finished")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from the browsers\nstdout: {stdout}\nstderr: {stderr}\n{}",
                stack.logs()
            )
        });
    assert_eq!(
        result["ok"],
        true,
        "{result}\nstderr: {stderr}\n{}",
        stack.logs()
    );
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
