//! The web app in real headless Chromium against the real stack: an admin
//! signs in through the labelled form, adds a user in the console, changes
//! its role, disables it and imports a CSV with a bad line; creates a course
//! and runs its roster, adds and schedules a lesson; observes a live class,
//! engages a kill switch, ends and publishes it; saves tenant settings;
//! filters the audit log; every page
//! passes axe-core with no serious or critical violation, at desktop and
//! phone width. Screenshots of each page are kept in
//! `<target>/web-screenshots/`.

use classroom_tests::{Stack, StackOptions, workspace_root};
use serde_json::Value;

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("web-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_the_console_in_chromium_and_every_page_is_accessible() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let shots = shots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let env = [
        ("CORE_URL", stack.core_url.clone()),
        ("ADMIN_EMAIL", "admin@demo.test".to_owned()),
        ("PASSWORD", classroom_tests::stack::PASSWORD.to_owned()),
        ("SHOTS_DIR", shots.display().to_string()),
    ];
    let result = classroom_tests::browser::run(&stack, "app.mjs", &env).await;
    println!("{}", serde_json::to_string_pretty(&result).unwrap());

    // what the browser did is in core: the user exists, with the new role,
    // disabled
    let admin = stack.api.login("admin@demo.test").await.unwrap();
    let email = result["created_email"].as_str().expect("created_email");
    let (s, v) = stack.api.get("/users?limit=500", &admin).await.unwrap();
    assert!(s.is_success(), "{v}");
    let user = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in {v}"));
    assert_eq!(user["disabled"], true, "{user}");
    assert_eq!(user["role"], result["changed_role"], "{user}");

    // the course the admin made in the browser, with its roster: the
    // teacher stays, student1 was enrolled, moved to assistant and removed
    assert_eq!(result["destination_added"], true, "the destinations page");
    let (s, v) = stack
        .api
        .get("/audit?action=destination.", &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{v}");
    for action in ["destination.created", "destination.deleted"] {
        assert!(v.to_string().contains(action), "{action} audited: {v}");
    }
    assert!(
        !v.to_string().contains("very-secret-key-123"),
        "no key audited"
    );
    // the console's export of the new user: its link downloads the archive
    let link = result["export_link"].as_str().expect("export_link");
    let zip = stack
        .api
        .http
        .get(link)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let files = classroom_tests::media_check::unzip(&zip).unwrap();
    let archive: serde_json::Value = serde_json::from_slice(&files["export.json"]).unwrap();
    assert_eq!(archive["format"], "classroom.subject-export/2", "{archive}");
    assert_eq!(archive["user"]["email"], email, "{archive}");

    let course = result["course_id"].as_str().expect("course_id");
    let (s, c) = stack
        .api
        .get(&format!("/courses/{course}"), &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{c}");
    assert_eq!(c["title"], result["course_title"], "{c}");
    let (s, m) = stack
        .api
        .get(&format!("/courses/{course}/members"), &admin)
        .await
        .unwrap();
    assert!(s.is_success(), "{m}");
    let members: Vec<(&str, &str)> = m["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["email"].as_str().unwrap(), x["role"].as_str().unwrap()))
        .collect();
    assert!(members.contains(&("teacher@demo.test", "teacher")), "{m}");
    assert!(
        !members.iter().any(|(e, _)| *e == "student1@demo.test"),
        "{m}"
    );
    let (s, a) = stack
        .api
        .get(
            &format!("/audit?target_id={course}&action=course.&limit=50"),
            &admin,
        )
        .await
        .unwrap();
    assert!(s.is_success(), "{a}");
    let actions: Vec<&str> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "course.member_added",
        "course.member_changed",
        "course.member_removed",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    // the browser's changes came from loopback, and the console found the
    // chain whole
    for e in a["entries"].as_array().unwrap() {
        assert_eq!(e["source_addr"], "127.0.0.1", "{e}");
    }
    assert_eq!(
        result["audit_sources"],
        serde_json::json!(["127.0.0.1"]),
        "{result}"
    );
    assert!(
        result["audit_verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("The audit log is whole")),
        "{result}"
    );

    // the class the console observed, switched, ended and published
    let sid = result["session_id"].as_str().expect("session_id");
    let evs = stack.api.events(&admin, sid).await.unwrap();
    let types: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"kill_switch.changed"), "{types:?}");
    assert!(types.contains(&"session.ended"), "{types:?}");
    let (s, r) = stack.api.get("/replays", &admin).await.unwrap();
    assert!(s.is_success(), "{r}");
    assert!(
        r["replays"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["session_id"] == sid),
        "the published replay is in the library: {r}"
    );

    // the replay library lists it and its page opens (no recording in this
    // stack: the page says so, and a search answers with no hits)
    assert_eq!(result["replay_page_ok"], true, "{result}");

    // axe: no serious or critical violation on any page
    let pages = result["axe"].as_object().expect("axe results per page");
    assert!(pages.len() >= 8, "{pages:?}");
    for (page, r) in pages {
        let bad: Vec<&Value> = r["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(bad.is_empty(), "{page}: {bad:?}");
    }
    // screenshots kept as test output
    let kept = std::fs::read_dir(&shots).unwrap().count();
    assert!(kept >= 4, "{kept} screenshots in {}", shots.display());
    stack.shutdown().await;
}
