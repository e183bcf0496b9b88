//! Erasure by crypto-shredding against the real stack: a student's name
//! and words are sealed at rest from the start; an admin erases her; after
//! that nothing of her name or words can be found — the class's events
//! (the decrypted view), consent records, the account, her export archive,
//! the replay and its search index, the hub stream and the edge's stream,
//! core's and the edge's logs — while the class's replay still plays and searches for everyone
//! else, and the audit chain records the erasure and still verifies. And
//! the words she spoke in a recorded class: the transcript attributes them
//! to her voice and keeps them sealed under her key; erased, they read as a
//! placeholder, leave the replay's index and her voice track goes, while
//! the teacher's words stay.

use std::time::Duration;

use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::{Api, Stack, StackOptions, media_check, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Ana's name and words: none may survive her erasure.
const ANA_NAME: &str = "Anaïs Quintero-Zubiri";
const ANA_SAID: [&str; 3] = [
    "quokkas are my favourite marsupial",
    "why does turgor pressure rise",
    "private note about marmalade",
];
/// Ben's words: they stay.
const BEN_SAID: [&str; 2] = ["ben mentions the dentist", "is the capybara on the exam"];

/// The replay's search hits for `q`.
async fn search(api: &Api, token: &str, rid: &str, q: &str) -> Vec<Value> {
    let (s, v) = api
        .get(&format!("/replays/{rid}/search?q={q}"), token)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    v["hits"].as_array().cloned().unwrap_or_default()
}

/// A subject job, once done.
async fn finished(api: &Api, admin: &str, id: &str) -> Value {
    wait_until(
        "a subject job to finish",
        Duration::from_secs(90),
        || async {
            let (_, j) = api.get(&format!("/subjects/jobs/{id}"), admin).await.ok()?;
            assert_ne!(j["state"], "failed", "{j}");
            (j["state"] == "done").then_some(j)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_student_is_gone_everywhere_and_the_class_still_works_for_the_others() {
    let stack = Stack::start(StackOptions {
        artifacts: true,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let ben = api.login("student2@demo.test").await.unwrap();
    let ana_id = api.user_id(&admin, "student1@demo.test").await.unwrap();
    let ok = |r: anyhow::Result<(StatusCode, Value)>| {
        let (s, v) = r.unwrap();
        assert!(s.is_success(), "{s} {v}");
        v
    };
    ok(api
        .patch(
            &format!("/users/{ana_id}"),
            &admin,
            json!({ "display_name": ANA_NAME }),
        )
        .await);
    let ana = api.login("student1@demo.test").await.unwrap();

    // a class: both students talk, the teacher answers both questions
    let class = api.start_class(&teacher).await.unwrap();
    let sid = class.id.clone();
    let at = |p: &str| format!("/sessions/{sid}{p}");
    api.join(&ana, &sid).await.unwrap();
    api.join(&ben, &sid).await.unwrap();
    api.join(&teacher, &sid).await.unwrap();
    ok(api
        .post(&at("/chat"), &ana, json!({ "text": ANA_SAID[0] }))
        .await);
    ok(api
        .post(&at("/chat"), &ben, json!({ "text": BEN_SAID[0] }))
        .await);
    let q_ana = ok(api
        .post(&at("/questions"), &ana, json!({ "text": ANA_SAID[1] }))
        .await);
    let q_ben = ok(api
        .post(&at("/questions"), &ben, json!({ "text": BEN_SAID[1] }))
        .await);
    ok(api
        .post(&at("/notes"), &ana, json!({ "text": ANA_SAID[2] }))
        .await);
    for (q, answer) in [
        (&q_ana, "vacuoles fill with water"),
        (&q_ben, "yes, rodents are examinable"),
    ] {
        let qid = q["question_id"].as_str().unwrap();
        ok(api
            .post(
                &at(&format!("/questions/{qid}/answer")),
                &teacher,
                json!({ "text": answer }),
            )
            .await);
    }
    ok(api.post(&at("/end"), &teacher, json!({})).await);
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

    // at rest the rows hold neither name nor words, of anyone; the
    // decrypted view holds both
    let db = stack.db().await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT payload::text FROM session_state_events WHERE session_id = $1::uuid",
    )
    .bind(&sid)
    .fetch_all(&db)
    .await
    .unwrap();
    let at_rest: String = rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n");
    assert!(at_rest.contains("sealed:v1:"), "{at_rest}");
    for plain in ANA_SAID.iter().chain(&BEN_SAID).chain(&[ANA_NAME]) {
        assert!(!at_rest.contains(plain), "{plain} is stored in plain text");
    }
    let view = serde_json::to_string(&api.events(&teacher, &sid).await.unwrap()).unwrap();
    for said in ANA_SAID[..2].iter().chain(&BEN_SAID).chain(&[ANA_NAME]) {
        assert!(
            view.contains(said),
            "{said} missing from the class's events"
        );
    }

    // a published replay whose search finds both questions (the index
    // is built by the pipeline, after publishing)
    let (s, pubd) = api
        .post(&at("/publish"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{pubd}");
    let rid = pubd["replay_id"].as_str().unwrap().to_owned();
    wait_until(
        "the replay's index to hold both questions",
        Duration::from_secs(60),
        || async {
            (!search(api, &teacher, &rid, "turgor").await.is_empty()
                && !search(api, &teacher, &rid, "capybara").await.is_empty())
            .then_some(())
        },
    )
    .await
    .unwrap();
    let hub_before = stack.hub_stream_text().await.unwrap().join("\n");
    assert!(
        hub_before.contains(ANA_SAID[0]),
        "the hub stream carries the live events in plain text until erased"
    );

    // an export made before the erasure
    let (s, export) = api
        .post(&format!("/subjects/{ana_id}/export"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{export}");
    let export_id = export["id"].as_str().unwrap().to_owned();
    let exported = finished(api, &admin, &export_id).await;
    let link = exported["download_url"].as_str().unwrap().to_owned();
    let zip = reqwest::get(&link).await.unwrap().bytes().await.unwrap();
    let archive =
        String::from_utf8(media_check::unzip(&zip).unwrap()["export.json"].clone()).unwrap();
    for said in ANA_SAID.iter().chain(&[ANA_NAME]) {
        assert!(archive.contains(said), "the export lacks {said}");
    }

    // who may erase: admins of the tenant, not themselves
    let erase = format!("/subjects/{ana_id}/erase");
    let (s, v) = api.post(&erase, &teacher, json!({})).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "admin_only"), "{v}");
    let other_admin = api.login("admin@other.test").await.unwrap();
    let (s, _) = api.post(&erase, &other_admin, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let admin_id = api.user_id(&admin, "admin@demo.test").await.unwrap();
    let (s, v) = api
        .post(&format!("/subjects/{admin_id}/erase"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "cannot_erase_self"),
        "{v}"
    );

    // the erasure
    let (s, started) = api
        .post_with_key(&erase, &admin, "erase-ana", json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["kind"], "erase");
    let done = finished(api, &admin, started["id"].as_str().unwrap()).await;
    let result = &done["result"];
    assert_eq!(result["key_shredded"], true, "{done}");
    assert_eq!(result["classes"], 1, "{done}");
    assert_eq!(result["classes_rederived"], 1, "{done}");
    assert_eq!(result["export_archives_deleted"], 1, "{done}");
    assert!(
        result["hub_stream_copies_deleted"].as_u64().unwrap() >= 4,
        "{done}"
    );
    assert!(done["download_url"].is_null(), "{done}");
    // a retry of the request is the same job; a new one is refused
    let (s, again) = api
        .post_with_key(&erase, &admin, "erase-ana", json!({}))
        .await
        .unwrap();
    assert_eq!((s, &again["id"]), (StatusCode::ACCEPTED, &started["id"]));
    let (s, v) = api.post(&erase, &admin, json!({})).await.unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "already_erased"),
        "{v}"
    );
    let (s, v) = api
        .post(&format!("/subjects/{ana_id}/export"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "already_erased"),
        "{v}"
    );

    // the class's events: her name and words read as placeholders, Ben's stay
    let evs = api.events(&teacher, &sid).await.unwrap();
    let view = serde_json::to_string(&evs).unwrap();
    for gone in ANA_SAID.iter().chain(&[ANA_NAME]) {
        assert!(!view.contains(gone), "{gone} still in the class's events");
    }
    assert!(view.contains("Former participant"), "{view}");
    for kept in BEN_SAID {
        assert!(view.contains(kept), "{kept} lost from the class's events");
    }
    let (_, consents) = api.get(&at("/consents"), &teacher).await.unwrap();
    assert!(!consents.to_string().contains(ANA_NAME), "{consents}");

    // the account: no name, no email, no sign-in, not listed
    let (_, users) = api.get("/users?limit=500", &admin).await.unwrap();
    assert!(!users.to_string().contains("student1@demo.test"), "{users}");
    assert!(!users.to_string().contains(ANA_NAME));
    assert!(
        api.login("student1@demo.test").await.is_err(),
        "the erased account signed in"
    );
    let row: (String, String, bool) =
        sqlx::query_as("SELECT email, display_name, disabled FROM users WHERE id = $1::uuid")
            .bind(&ana_id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        !row.0.contains("student1") && row.1 == "Former participant" && row.2,
        "{row:?}"
    );

    // the archive made before is gone
    let resp = reqwest::get(&link).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // the replay, derived again: her question is out of the index and the
    // markers; Ben's question and the teacher's answers are still found
    wait_until(
        "the replay's index to lose her words",
        Duration::from_secs(60),
        || async {
            search(api, &teacher, &rid, "turgor")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert!(
        !search(api, &teacher, &rid, "capybara").await.is_empty(),
        "Ben's question left the index"
    );
    assert!(
        !search(api, &teacher, &rid, "vacuoles").await.is_empty(),
        "the teacher's answer left the index"
    );
    let (s, replay) = api.get(&format!("/replays/{rid}"), &ben).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{replay}");
    let replay = replay.to_string();
    for gone in ANA_SAID.iter().chain(&[ANA_NAME]) {
        assert!(!replay.contains(gone), "{gone} still in the replay");
    }
    assert!(
        replay.contains(BEN_SAID[1]),
        "the replay lost Ben's question"
    );

    // the hub stream no longer carries her events; Ben's are still there
    let hub_after = stack.hub_stream_text().await.unwrap().join("\n");
    for gone in ANA_SAID.iter().chain(&[ANA_NAME]) {
        assert!(!hub_after.contains(gone), "{gone} still in the hub stream");
    }
    assert!(hub_after.contains(BEN_SAID[0]));
    assert!(
        result["edge_stream_copies_deleted"].as_u64().unwrap() >= 4,
        "{done}"
    );
    assert_eq!(result["edges_unreachable"], json!([]), "{done}");
    let edge = &stack.edges[0];
    let edge_id = protocol::EdgeId::new(edge.id.clone()).unwrap();
    let edge_stream = edge
        .leaf
        .stream_text(
            &protocol::subjects::edge_domain(&edge_id),
            &protocol::subjects::edge_stream_name(&edge_id),
        )
        .await
        .unwrap()
        .join("\n");
    for gone in ANA_SAID.iter().chain(&[ANA_NAME]) {
        assert!(
            !edge_stream.contains(gone),
            "{gone} still in the edge's stream"
        );
    }
    assert!(
        edge_stream.contains(BEN_SAID[0]),
        "the edge's stream lost Ben's words"
    );

    // no process logged her name or words
    for proc in std::iter::once(&stack.core).chain(stack.edges.iter().map(|e| &e.proc)) {
        let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
        assert!(!log.is_empty(), "{} wrote no log", proc.name);
        for gone in ANA_SAID.iter().chain(&[ANA_NAME]) {
            assert!(!log.contains(gone), "{} logged {gone}", proc.name);
        }
    }

    // the audit chain holds the request and the erasure, and still verifies
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
    assert!(actions.contains(&"subject.erase_requested"), "{actions:?}");
    assert!(actions.contains(&"subject.erased"), "{actions:?}");
    let (s, verified) = api.get("/audit/verify", &admin).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{verified}");
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(!audit.to_string().contains(ANA_NAME), "{audit}");

    stack.shutdown().await;
}

/// Waits until `at` (the recorder's clock) has passed: a cue of the script.
async fn at_media(armed: chrono::DateTime<chrono::Utc>, ms: i64) {
    let when = armed + chrono::Duration::milliseconds(ms);
    wait_until(
        "the media clock to reach the next cue",
        Duration::from_millis(ms.max(0) as u64 + 30_000),
        || async { (chrono::Utc::now() >= when).then_some(()) },
    )
    .await
    .unwrap();
}

/// What the teacher and the student say (espeak-ng speech as real Opus),
/// apart in time so each is a segment of its own.
const TEACHER_SAYS: &str = "Welcome to the lesson. Today we study how green plants grow.";
const ANA_SAYS: &str = "My favourite animal is the kangaroo. Kangaroos live in Australia.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_words_a_student_spoke_leave_the_transcript_when_she_is_erased() {
    let _heavy = classroom_tests::heavy().await;
    let model = asr::model_path("ggml-base.bin");
    assert!(
        model.exists(),
        "{} is missing: run deploy/asr-models.sh",
        model.display()
    );
    let stack = Stack::start(StackOptions {
        recording: true,
        artifacts: true,
        core_args: vec!["--asr-model".into(), model.display().to_string()],
        ..StackOptions::default()
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
    let at = |p: &str| format!("/sessions/{sid}{p}");
    let armed = wait_until("the recorder to arm", Duration::from_secs(20), || async {
        let evs = api.events(&teacher, &sid).await.ok()?;
        evs.iter().find(|e| e["type"] == "recording.armed")?["payload"]["started_at"]
            .as_str()?
            .parse::<chrono::DateTime<chrono::Utc>>()
            .ok()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut publishers = Vec::new();
    let mut seats = Vec::new();
    for (token, words, from_ms) in [(&teacher, TEACHER_SAYS, 1_000), (&ana, ANA_SAYS, 13_000)] {
        let sub = dir.path().join(format!("voice-{from_ms}"));
        std::fs::create_dir_all(&sub).unwrap();
        let clip = media_check::speech_clip(&sub, &[(0, words)], 9_000)
            .await
            .unwrap();
        let seat = api.join(token, &sid).await.unwrap();
        if token == &ana {
            let (s, v) = api
                .post(
                    &at("/permissions"),
                    &teacher,
                    json!({ "participant_id": seat.participant_id, "grant": ["speak"] }),
                )
                .await
                .unwrap();
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let start: std::time::SystemTime = (armed + chrono::Duration::milliseconds(from_ms)).into();
        publishers.push(
            rtc_client::publish(
                &seat.edge_url,
                &sid,
                &seat.join_token,
                PublishOptions {
                    video: false,
                    audio_clip: Some(std::sync::Arc::new(clip)),
                    audio_clip_start: Some(start),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        seats.push(seat.participant_id.clone());
    }
    let (teacher_seat, ana_seat) = (seats[0].clone(), seats[1].clone());
    at_media(armed, 24_000).await;
    let (s, v) = api.post(&at("/end"), &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    for p in publishers {
        p.stop().await;
    }
    let (s, pubd) = api
        .post(&at("/publish"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{pubd}");
    let rid = pubd["replay_id"].as_str().unwrap().to_owned();
    wait_until(
        "the transcript and the replay's index",
        Duration::from_secs(240),
        || async {
            let (s, v) = api.get(&at("/artifacts"), &teacher).await.ok()?;
            (s == StatusCode::OK
                && v["state"] == "done"
                && !search(api, &teacher, &rid, "kangaroo").await.is_empty())
            .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));

    // each voice's words are attributed to its seat
    let (s, t) = api.get(&at("/transcript"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{t}");
    let segments = t["segments"].as_array().unwrap().clone();
    let spoken_by = |word: &str| -> Vec<Value> {
        segments
            .iter()
            .filter(|s| s["text"].as_str().unwrap().to_lowercase().contains(word))
            .map(|s| s["speaker"].clone())
            .collect()
    };
    for s in &segments {
        let who = if s["speaker"] == ana_seat.as_str() {
            "ana"
        } else if s["speaker"] == teacher_seat.as_str() {
            "teacher"
        } else {
            "nobody"
        };
        eprintln!(
            "{}..{} ms, {who}: {}",
            s["start_ms"], s["end_ms"], s["text"]
        );
    }
    assert_eq!(spoken_by("kangaroo"), vec![json!(ana_seat)], "{t}");
    assert_eq!(spoken_by("lesson"), vec![json!(teacher_seat)], "{t}");
    // at rest her words are sealed under her key, the teacher's too
    let db = stack.db().await.unwrap();
    let (stored,): (String,) = sqlx::query_as(
        "SELECT body::text FROM artifacts WHERE session_id = $1::uuid AND kind = 'transcript'",
    )
    .bind(&sid)
    .fetch_one(&db)
    .await
    .unwrap();
    for word in ["kangaroo", "Kangaroo", "lesson"] {
        assert!(!stored.contains(word), "{word} is in the stored transcript");
    }
    let tenant = api.events(&teacher, &sid).await.unwrap()[0]["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let audio = stack
        .dir
        .path()
        .join("objects/recordings")
        .join(&tenant)
        .join(&sid)
        .join("audio");
    let voice_tracks = |seat: &str| -> usize {
        let audio = audio.clone();
        std::fs::read_dir(audio)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(seat))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(voice_tracks(&ana_seat) > 0, "her raw voice track was kept");

    // her export holds what she said, and nothing the teacher said
    let (s, job) = api
        .post(&format!("/subjects/{ana_id}/export"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let exported = finished(api, &admin, job["id"].as_str().unwrap()).await;
    let zip = reqwest::get(exported["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let archive: Value =
        serde_json::from_slice(&media_check::unzip(&zip).unwrap()["export.json"]).unwrap();
    let spoken = archive["spoken"].to_string().to_lowercase();
    assert!(spoken.contains("kangaroo"), "{}", archive["spoken"]);
    assert!(!spoken.contains("lesson"), "{}", archive["spoken"]);

    // erased: her words read as the placeholder, leave the replay's index,
    // and her voice track goes; the teacher's words stay
    let (s, job) = api
        .post(&format!("/subjects/{ana_id}/erase"), &admin, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let done = finished(api, &admin, job["id"].as_str().unwrap()).await;
    assert!(
        done["result"]["voice_tracks_deleted"].as_u64() >= Some(1),
        "{done}"
    );
    assert_eq!(voice_tracks(&ana_seat), 0);
    assert!(voice_tracks(&teacher_seat) > 0, "the teacher's track stays");
    let (_, t) = api.get(&at("/transcript"), &teacher).await.unwrap();
    let text = t.to_string().to_lowercase();
    assert!(
        !text.contains("kangaroo") && !text.contains("australia"),
        "{t}"
    );
    assert!(text.contains("lesson"), "{t}");
    assert!(
        t["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["speaker"] == ana_seat.as_str()
                && s["text"] == "[removed at the person's request]"),
        "{t}"
    );
    wait_until(
        "the replay's index to lose her words",
        Duration::from_secs(60),
        || async {
            search(api, &teacher, &rid, "kangaroo")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert!(!search(api, &teacher, &rid, "lesson").await.is_empty());
    let (s, vtt) = api
        .get(&at("/transcript?format=vtt"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let vtt = vtt.as_str().unwrap_or_default().to_lowercase();
    assert!(vtt.contains("lesson") && !vtt.contains("kangaroo"), "{vtt}");
    // derived again from the transcript: nothing of hers in the summary
    let (s, summary) = api.get(&at("/summary"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{summary}");
    assert!(
        !summary.to_string().to_lowercase().contains("kangaroo"),
        "{summary}"
    );
    // and never in a log line
    assert!(
        !stack.logs().to_lowercase().contains("kangaroo"),
        "her words in a log"
    );
    stack.shutdown().await;
}
