//! Data-subject export against the real stack: a student who chatted,
//! asked, upvoted, voted, kept a note, raised a hand and withdrew consent is
//! exported by an admin; the archive holds all of it and nothing of another
//! student; only the tenant's admins start and follow the job; the link is
//! the only way to the archive and every download is audited. The class's
//! consent records show who withdrew consent, to its staff only.

use std::time::Duration;

use classroom_tests::{Stack, StackOptions, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_exports_everything_held_about_a_student_and_nothing_else() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let ana = api.login("student1@demo.test").await.unwrap();
    let ben = api.login("student2@demo.test").await.unwrap();
    let other_admin = api.login("admin@other.test").await.unwrap();
    let ana_id = stack
        .api
        .user_id(&admin, "student1@demo.test")
        .await
        .unwrap();

    let class = api.start_class(&teacher).await.unwrap();
    let sid = class.id.clone();
    let at = |p: &str| format!("/sessions/{sid}{p}");
    let ana_seat = api.join(&ana, &sid).await.unwrap();
    let ben_seat = api.join(&ben, &sid).await.unwrap();
    api.join(&teacher, &sid).await.unwrap();
    let ok = |r: anyhow::Result<(StatusCode, Value)>| {
        let (s, v) = r.unwrap();
        assert!(s.is_success(), "{s} {v}");
        v
    };
    ok(api
        .post(
            &at("/chat"),
            &ana,
            json!({ "text": "ana asks for the osmosis handout" }),
        )
        .await);
    ok(api
        .post(
            &at("/chat"),
            &ben,
            json!({ "text": "ben mentions his dentist appointment" }),
        )
        .await);
    ok(api
        .post(
            &at("/questions"),
            &ana,
            json!({ "text": "why does turgor pressure rise?" }),
        )
        .await);
    let ben_q = ok(api
        .post(
            &at("/questions"),
            &ben,
            json!({ "text": "is this on the exam?" }),
        )
        .await);
    ok(api
        .post(
            &at(&format!(
                "/questions/{}/upvote",
                ben_q["question_id"].as_str().unwrap()
            )),
            &ana,
            json!({}),
        )
        .await);
    let poll = ok(api
        .post(
            &at("/polls"),
            &teacher,
            json!({ "question": "Which way does water move?", "options": ["in", "out"] }),
        )
        .await);
    let pid = poll["poll_id"].as_str().unwrap().to_owned();
    ok(api
        .post(
            &at(&format!("/polls/{pid}/vote")),
            &ana,
            json!({ "option": 1 }),
        )
        .await);
    ok(api
        .post(
            &at(&format!("/polls/{pid}/vote")),
            &ben,
            json!({ "option": 0 }),
        )
        .await);
    ok(api
        .post(
            &at("/notes"),
            &ana,
            json!({ "text": "ana's own note: revise chapter 4" }),
        )
        .await);
    ok(api.post(&at("/hands"), &ana, json!({})).await);
    ok(api
        .post(&at("/consent"), &ana, json!({ "recording": false }))
        .await);
    ok(api.post(&at("/end"), &teacher, json!({})).await);
    // core holds the whole class before the export reads it
    wait_until(
        "core to hold the ended class",
        Duration::from_secs(30),
        || async {
            let evs = api.events(&admin, &sid).await.ok()?;
            evs.iter()
                .any(|e| e["type"] == "session.ended")
                .then_some(())
        },
    )
    .await
    .unwrap();

    // the class's consent records: ana withdrew, ben never did (staff only)
    let (s, v) = api.get(&at("/consents"), &ana).await.unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_course_staff"),
        "{v}"
    );
    let (s, _) = api.get(&at("/consents"), &other_admin).await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, consents) = api.get(&at("/consents"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{consents}");
    let record = |seat: &str| {
        consents["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["participant_id"] == seat)
            .unwrap_or_else(|| panic!("{seat} not in {consents}"))
            .clone()
    };
    let ana_consent = record(&ana_seat.participant_id);
    assert_eq!(ana_consent["recording"], false, "{consents}");
    assert_eq!(ana_consent["changes"].as_array().unwrap().len(), 1);
    assert_eq!(ana_consent["user_id"], ana_id.as_str());
    let ben_consent = record(&ben_seat.participant_id);
    assert_eq!(ben_consent["recording"], true);
    assert_eq!(ben_consent["changes"].as_array().unwrap().len(), 0);
    assert_eq!(consents["declined"], 1, "{consents}");

    // only the tenant's admins may export, and only their own people
    let export = format!("/subjects/{ana_id}/export");
    let (s, v) = api.post(&export, &teacher, json!({})).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "admin_only"), "{v}");
    let (s, v) = api.post(&export, &other_admin, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = api
        .post("/subjects/not-a-uuid/export", &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_id"),
        "{v}"
    );
    let (s, job) = api
        .post_with_key(&export, &admin, "export-ana-1", json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    // a retried request with the same key is the same job, not a second one
    let (s, again) = api
        .post_with_key(&export, &admin, "export-ana-1", json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], job["id"]);
    assert!(job["download_url"].is_null(), "{job}");
    let (s, _) = api
        .get(&format!("/subjects/jobs/{job_id}"), &other_admin)
        .await
        .unwrap();
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant never sees the job"
    );

    let done = wait_until("the export to finish", Duration::from_secs(60), || async {
        let (_, j) = api
            .get(&format!("/subjects/jobs/{job_id}"), &admin)
            .await
            .ok()?;
        assert_ne!(j["state"], "failed", "{j}");
        (j["state"] == "done").then_some(j)
    })
    .await
    .unwrap();
    let link = done["download_url"].as_str().expect("a download link");
    let (path, _) = link
        .split_once("/subjects/")
        .map(|(_, rest)| (format!("/subjects/{rest}"), ()))
        .unwrap();

    // the link is the credential: no account needed, a forged key refused
    let resp = api
        .http
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(done["bytes"].as_u64(), Some(bytes.len() as u64));
    let archive: Value = serde_json::from_slice(&bytes).unwrap();
    let forged = format!(
        "{}/subjects/jobs/{job_id}/download?key=forged.not.signed",
        api.base
    );
    let resp = api.http.get(forged).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // everything of ana's, and nothing of ben's
    let text = archive.to_string();
    assert_eq!(archive["format"], "classroom.subject-export/1");
    assert_eq!(archive["user"]["email"], "student1@demo.test", "{archive}");
    for said in [
        "ana asks for the osmosis handout",
        "why does turgor pressure rise?",
        "ana's own note: revise chapter 4",
    ] {
        assert!(text.contains(said), "{said} missing");
    }
    for theirs in [
        "ben mentions his dentist appointment",
        "is this on the exam?",
    ] {
        assert!(
            !text.contains(theirs),
            "another student's words leaked: {theirs}"
        );
    }
    let section = |name: &str| archive["sections"][name].as_array().unwrap().clone();
    assert_eq!(section("chat").len(), 1, "{archive}");
    assert_eq!(section("questions").len(), 2, "asked one, upvoted one");
    let votes = section("poll_votes");
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0]["payload"]["option"], 1);
    assert_eq!(section("notes").len(), 1);
    assert_eq!(section("hands").len(), 1);
    let consent = section("consent");
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0]["payload"]["recording"], false);
    assert!(
        section("attendance")
            .iter()
            .any(|e| e["type"] == "participant.joined"),
        "{archive}"
    );
    let classes = archive["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1, "{archive}");
    assert_eq!(classes[0]["session_id"], sid);
    assert_eq!(classes[0]["participant_id"], ana_seat.participant_id);
    assert!(
        archive["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["role"] == "student"),
        "{archive}"
    );

    // the request and the download are in the audit log
    let (_, audit) = api
        .get("/audit?action=subject.&limit=50", &admin)
        .await
        .unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"subject.export_requested"), "{actions:?}");
    assert!(
        actions.contains(&"subject.export_downloaded"),
        "{actions:?}"
    );
}

/// Parental-consent rules: while a minor is on a course's roster, none of
/// its classes is shown to the public — no new public link, and a link made
/// before stops letting anyone in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_on_the_roster_keeps_the_class_off_public_links() {
    let stack = Stack::start(StackOptions {
        students: 2,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let (s, v) = api
        .patch(
            "/tenant/settings",
            &admin,
            json!({ "public_viewing": true }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let sid = api.start_class(&teacher).await.unwrap().id;
    let link = format!("/sessions/{sid}/public-link");
    let (s, before) = api.post(&link, &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{before}");
    let watch = |key: Value| {
        let path = format!("/public/sessions/{sid}/watch");
        async move {
            let resp = api
                .http
                .post(format!("{}{path}", api.base))
                .json(&json!({ "key": key }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = watch(before["key"].clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // a student on the roster is marked a minor (admins only; audited)
    let ana = api.user_id(&admin, "student1@demo.test").await.unwrap();
    let mark = |minor: bool| {
        let path = format!("/users/{ana}");
        let admin = admin.clone();
        async move {
            api.patch(&path, &admin, json!({ "minor": minor }))
                .await
                .unwrap()
        }
    };
    let (s, v) = api
        .patch(&format!("/users/{ana}"), &teacher, json!({ "minor": true }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "admin_only"), "{v}");
    let (s, v) = mark(true).await;
    assert_eq!((s, &v["minor"]), (StatusCode::OK, &json!(true)), "{v}");

    let (s, v) = api.post(&link, &teacher, json!({})).await.unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "minors_enrolled"),
        "{v}"
    );
    let (s, v) = watch(before["key"].clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "minors_enrolled"),
        "the link made before still let the public in: {v}"
    );

    // unmarked, the class may be public again
    let (s, _) = mark(false).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api.post(&link, &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");

    let (_, audit) = api
        .get("/audit?action=user.updated&limit=10", &admin)
        .await
        .unwrap();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target_id"] == ana.as_str()),
        "{audit}"
    );
    stack.shutdown().await;
}
