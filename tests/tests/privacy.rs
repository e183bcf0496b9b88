//! Data-subject export against the real stack: a student who chatted,
//! asked, upvoted, voted, kept a note, raised a hand and withdrew consent is
//! exported by an admin; the archive holds all of it and nothing of another
//! student; only the tenant's admins start and follow the job; the link is
//! the only way to the archive and every download is audited. The class's
//! consent records show who withdrew consent, to its staff only.

use std::time::Duration;

use classroom_tests::{Stack, StackOptions, media_check, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The stored bytes of the one object named `name` in the stack's store.
fn stored_object(stack: &Stack, name: &str) -> Vec<u8> {
    fn walk(dir: &std::path::Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, name, out);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(&stack.dir.path().join("objects"), name, &mut found);
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    std::fs::read(&found[0]).unwrap()
}

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
    assert_eq!(
        resp.headers()[reqwest::header::CONTENT_TYPE],
        "application/zip"
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(done["bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(
        done["sha256"].as_str(),
        Some(media_check::sha256_hex(&bytes).as_str())
    );
    let files = media_check::unzip(&bytes).unwrap();
    let archive: Value = serde_json::from_slice(&files["export.json"]).unwrap();
    // no recording in this class: no clips
    assert_eq!(files.len(), 1, "{:?}", files.keys());
    assert_eq!(archive["recordings"]["clips"], json!([]));
    // at rest the archive is sealed to the tenant's key: nothing of it can
    // be read in the stored object
    let stored = stored_object(&stack, &format!("{job_id}.zip"));
    assert_eq!(&stored[..8], hosting::sealed::MAGIC);
    assert!(
        !contains(&stored, b"osmosis") && !contains(&stored, b"export.json"),
        "the stored archive is readable"
    );
    let forged = format!(
        "{}/subjects/jobs/{job_id}/download?key=forged.not.signed",
        api.base
    );
    let resp = api.http.get(forged).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // everything of ana's, and nothing of ben's
    let text = archive.to_string();
    assert_eq!(archive["format"], "classroom.subject-export/2");
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

/// Media time (ms of the recording) of an event, from the recorder's run.
fn media_ms(events: &[Value], ev: &Value) -> u64 {
    let time = |e: &Value, field: &str| -> chrono::DateTime<chrono::Utc> {
        e[field].as_str().unwrap().parse().unwrap()
    };
    let armed = events
        .iter()
        .find(|e| e["type"] == "recording.armed")
        .expect("the recorder armed");
    let started = time(&armed["payload"], "started_at");
    (time(ev, "occurred_at") - started)
        .num_milliseconds()
        .max(0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_the_recording_clips_the_student_appears_in() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let ana = api.login("student1@demo.test").await.unwrap();
    let ana_id = api.user_id(&admin, "student1@demo.test").await.unwrap();
    let class = api.start_class(&teacher).await.unwrap();
    let sid = class.id.clone();
    let seat = api.join(&ana, &sid).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": seat.participant_id, "grant": ["present", "speak"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let dir = tempfile::tempdir().unwrap();
    // ana's camera: ffmpeg's bright moving test pattern (the class is
    // otherwise dark: no slides, no other camera)
    let clip = media_check::vp8_clip(dir.path(), 640, 360, 30, 4)
        .await
        .unwrap();
    let publisher = classroom_tests::rtc_client::publish(
        &seat.edge_url,
        &sid,
        &seat.join_token,
        classroom_tests::rtc_client::PublishOptions {
            clip: Some(std::sync::Arc::new(clip)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let event_of = |ty: &'static str, pid: String| {
        let (api, ana, sid) = (api.clone(), ana.clone(), sid.clone());
        async move {
            wait_until(ty, Duration::from_secs(30), || async {
                let evs = api.events(&ana, &sid).await.ok()?;
                let e = evs
                    .iter()
                    .find(|e| e["type"] == ty && e["payload"]["participant_id"] == pid.as_str())?
                    .clone();
                Some((media_ms(&evs, &e), evs))
            })
            .await
            .unwrap()
        }
    };
    // the recording goes on until it holds `ms` of media time
    let recorded_to = |ms: u64| {
        let (api, ana, sid) = (api.clone(), ana.clone(), sid.clone());
        async move {
            wait_until(
                "the recording to go on",
                Duration::from_secs(30),
                || async {
                    let evs = api.events(&ana, &sid).await.ok()?;
                    evs.iter()
                        .any(|e| {
                            e["type"] == "recording.segment"
                                && e["payload"]["end_ms"].as_u64() >= Some(ms)
                        })
                        .then_some(())
                },
            )
            .await
            .unwrap()
        }
    };
    let (on_at, _) = event_of("track.published", seat.participant_id.clone()).await;
    recorded_to(on_at + 5_000).await;
    // ana withdraws consent: from then on she is in no recording
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/consent"),
            &ana,
            json!({ "recording": false }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let (off_at, _) = event_of("consent.changed", seat.participant_id.clone()).await;
    recorded_to(off_at + 4_000).await;
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    publisher.stop().await;
    wait_until(
        "the recording to be finalized in core",
        Duration::from_secs(60),
        || async {
            let evs = api.events(&admin, &sid).await.ok()?;
            evs.iter()
                .any(|e| e["type"] == "recording.finalized")
                .then_some(())
        },
    )
    .await
    .unwrap();

    let (s, job) = api
        .post(&format!("/subjects/{ana_id}/export"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let done = wait_until(
        "the export with clips",
        Duration::from_secs(120),
        || async {
            let (_, j) = api
                .get(&format!("/subjects/jobs/{job_id}"), &admin)
                .await
                .ok()?;
            assert_ne!(j["state"], "failed", "{j}");
            (j["state"] == "done").then_some(j)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let bytes = api
        .http
        .get(done["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let files = media_check::unzip(&bytes).unwrap();
    let archive: Value = serde_json::from_slice(&files["export.json"]).unwrap();
    let clips = archive["recordings"]["clips"].as_array().unwrap();
    // one stretch: from her camera's start to her withdrawal (not after)
    assert_eq!(clips.len(), 1, "{}", archive["recordings"]);
    let c = &clips[0];
    assert_eq!(c["session_id"], sid.as_str());
    let (from, to) = (c["from_ms"].as_u64().unwrap(), c["to_ms"].as_u64().unwrap());
    assert!(
        from.abs_diff(on_at) <= 100,
        "clip from {from}, camera on at {on_at}"
    );
    assert!(
        to.abs_diff(off_at) <= 100,
        "clip to {to}, consent off at {off_at}"
    );
    let file = &files[c["file"].as_str().unwrap()];
    assert_eq!(
        c["sha256"].as_str(),
        Some(media_check::sha256_hex(file).as_str())
    );
    let mp4 = dir.path().join("clip.mp4");
    std::fs::write(&mp4, file).unwrap();
    let length = media_check::duration_s(&mp4).await.unwrap();
    let want = (to - from) as f64 / 1000.0;
    // a stream copy starts at the keyframe at or before the stretch (one a
    // second)
    assert!(
        length >= want - 0.3 && length <= want + 1.3,
        "clip of {length:.2} s for a stretch of {want:.2} s"
    );
    assert_eq!(media_check::decode_errors(&mp4).await.unwrap(), "");
    let frames = media_check::frames(&mp4).await.unwrap();
    let lit = frames.iter().filter(|f| f.brightest() > 300).count();
    eprintln!(
        "clip {from}..{to} ms (camera on at {on_at}, consent off at {off_at}): {length:.2} s, {lit} of {} frames show the camera",
        frames.len()
    );
    assert!(
        lit * 2 > frames.len(),
        "ana's camera is in the clip: {lit} of {} frames show it",
        frames.len()
    );

    // at rest, the recording and the export are sealed to the tenant: the
    // stored segment and joined file are not MP4s, and core still serves
    // them as MP4s
    let evs = api.events(&admin, &sid).await.unwrap();
    let seg = evs
        .iter()
        .find(|e| e["type"] == "recording.segment")
        .unwrap();
    let seg_key = seg["payload"]["object_key"].as_str().unwrap();
    let stored = std::fs::read(stack.dir.path().join("objects").join(seg_key)).unwrap();
    assert_eq!(&stored[..8], hosting::sealed::MAGIC);
    assert!(!contains(&stored, b"ftyp"), "a plain MP4 at rest");
    assert_eq!(
        stored.len() as u64,
        hosting::sealed::sealed_len(seg["payload"]["bytes"].as_u64().unwrap())
    );
    let joined = stored_object(&stack, "recording.mp4");
    assert_eq!(&joined[..8], hosting::sealed::MAGIC);
    let export = stored_object(&stack, &format!("{job_id}.zip"));
    assert_eq!(&export[..8], hosting::sealed::MAGIC);
    stack.shutdown().await;
}
