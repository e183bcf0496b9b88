//! The artifact pipeline end to end (gates G5 and G6): a recorded class in
//! which a publisher speaks a known script (espeak-ng speech as real Opus)
//! while the teacher changes scenes and slides, a student asks a question
//! that is answered and a poll runs. After the class: the transcript's word
//! error rate, chapters at the scene/slide events, highlights with the poll
//! and the answered question, a replay whose search finds a phrase at the
//! second it was spoken, failure and retry of a stage (the model is missing
//! at first) without touching a live class, and a re-run that gives the same
//! artifacts.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use classroom_tests::api::Api;
use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::wait::wait_until;
use classroom_tests::{Stack, StackOptions, media_check, pdf};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the publisher says, and when (ms from the start of its audio).
const SCRIPT: &[(u64, &str)] = &[
    (
        0,
        "Welcome to today's biology lesson. We are going to learn how plants turn sunlight into food.",
    ),
    (
        9_000,
        "This process is called photosynthesis, and it happens inside the chloroplasts of every green leaf.",
    ),
    (
        19_000,
        "Light energy splits water molecules and releases oxygen into the air.",
    ),
    (
        27_000,
        "The second stage is the Calvin cycle, which builds sugar from carbon.",
    ),
    (
        36_000,
        "Carbon dioxide enters the leaf through tiny pores called stomata.",
    ),
    (
        45_000,
        "Now answer the poll on your screen about where this happens.",
    ),
    (
        53_000,
        "Great work everyone, next week we will study cellular respiration.",
    ),
];
/// The phrase searched for, the fifth line's start: said at 36 s of the
/// audio.
const PHRASE: &str = "\"carbon dioxide enters\"";
const PHRASE_AT_MS: u64 = 36_000;
/// The audio starts this long after the recorder armed, so the phrase is
/// at 42 s on the class's media clock.
const AUDIO_AT_MS: u64 = 6_000;
const CLIP_MS: u64 = 60_000;

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"].as_str().unwrap().parse().unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// Waits until the class's media clock (from the recorder's start) reaches
/// `ms`: the script's cue for its next step.
async fn at_media(armed: DateTime<Utc>, ms: u64) {
    let when = armed + chrono::Duration::milliseconds(ms as i64);
    wait_until(
        "the media clock to reach the next cue",
        Duration::from_millis(ms + 30_000),
        || async { (Utc::now() >= when).then_some(()) },
    )
    .await
    .unwrap();
}

async fn ok(api: &Api, token: &str, path: &str, body: Value) -> Value {
    let (s, v) = api.post(path, token, body.clone()).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{path} {body}: {v}");
    v
}

async fn artifacts_done(api: &Api, token: &str, sid: &str, stack: &Stack) -> Value {
    wait_until(
        "the artifact pipeline to finish",
        Duration::from_secs(240),
        || async {
            let (s, v) = api
                .get(&format!("/sessions/{sid}/artifacts"), token)
                .await
                .ok()?;
            (s == StatusCode::OK && v["state"] == "done").then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recorded_class_becomes_a_searchable_replay_with_aligned_chapters() {
    let _heavy = classroom_tests::heavy().await;
    // the transcription model is missing when the class ends: its stage
    // must fail, retry with backoff and succeed once the model is there
    let models = tempfile::tempdir().unwrap();
    let model = models.path().join("ggml-base.bin");
    let real_model = asr::model_path("ggml-base.bin");
    assert!(
        real_model.exists(),
        "{} is missing: run deploy/asr-models.sh",
        real_model.display()
    );
    let stack = Stack::start(StackOptions {
        recording: true,
        artifacts: true,
        core_args: vec![
            "--asr-model".into(),
            model.display().to_string(),
            "--artifact-retry-max-ms".into(),
            "2000".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let deck = pdf::pages(&["Photosynthesis", "The Calvin Cycle", "Cellular Respiration"]);
    let deck_id = api.upload_deck(&teacher, deck).await.unwrap();

    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let path = |p: &str| format!("/sessions/{sid}{p}");
    let armed = wait_until("the recorder to arm", Duration::from_secs(20), || async {
        let evs = api.events(&teacher, &sid).await.ok()?;
        evs.iter()
            .find(|e| e["type"] == "recording.armed")
            .map(|e| {
                e["payload"]["started_at"]
                    .as_str()
                    .unwrap()
                    .parse::<DateTime<Utc>>()
                    .unwrap()
            })
    })
    .await
    .unwrap();

    // the speaker: real Opus speech, starting at a known instant
    let dir = tempfile::tempdir().unwrap();
    let clip = media_check::speech_clip(dir.path(), SCRIPT, CLIP_MS)
        .await
        .unwrap();
    let seat = api.join(&teacher, &sid).await.unwrap();
    let audio_at: SystemTime = (armed + chrono::Duration::milliseconds(AUDIO_AT_MS as i64)).into();
    let publisher = rtc_client::publish(
        &seat.edge_url,
        &sid,
        &seat.join_token,
        PublishOptions {
            video: false,
            audio_clip: Some(std::sync::Arc::new(clip)),
            audio_clip_start: Some(audio_at),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let student_seat = api.join(&student, &sid).await.unwrap();
    let student2 = api.login("student2@demo.test").await.unwrap();
    api.join(&student2, &sid).await.unwrap();

    // the class, on the media clock
    ok(
        api,
        &teacher,
        &path("/slides"),
        json!({ "deck_id": deck_id, "index": 0 }),
    )
    .await;
    at_media(armed, 12_000).await;
    let scene = ok(api, &teacher, &path("/scene"), json!({ "scene": "slides" })).await;
    at_media(armed, 24_000).await;
    let q = ok(
        api,
        &student,
        &path("/questions"),
        json!({ "text": "Does photosynthesis happen at night?" }),
    )
    .await;
    let qid = q["question_id"].as_str().unwrap().to_owned();
    at_media(armed, 30_000).await;
    let slide = ok(
        api,
        &teacher,
        &path("/slides"),
        json!({ "deck_id": deck_id, "index": 1 }),
    )
    .await;
    at_media(armed, 40_000).await;
    ok(
        api,
        &teacher,
        &path(&format!("/questions/{qid}/answer")),
        json!({ "text": "Only the light reactions stop; the Calvin cycle can go on." }),
    )
    .await;
    at_media(armed, 47_000).await;
    let poll = ok(
        api,
        &teacher,
        &path("/polls"),
        json!({ "question": "Where does photosynthesis happen?", "options": ["mitochondria", "chloroplasts"], "correct_option": 1 }),
    )
    .await;
    let pid = poll["poll_id"].as_str().unwrap().to_owned();
    ok(
        api,
        &student,
        &path(&format!("/polls/{pid}/vote")),
        json!({ "option": 1 }),
    )
    .await;
    ok(
        api,
        &student2,
        &path(&format!("/polls/{pid}/vote")),
        json!({ "option": 1 }),
    )
    .await;
    at_media(armed, 54_000).await;
    ok(
        api,
        &teacher,
        &path(&format!("/polls/{pid}/close")),
        json!({}),
    )
    .await;
    at_media(armed, 58_000).await;
    let camera = ok(api, &teacher, &path("/scene"), json!({ "scene": "camera" })).await;
    // the speaker finishes before the end
    at_media(armed, AUDIO_AT_MS + CLIP_MS + 1_000).await;
    let first_audio = publisher.snapshot().audio_clip_started_at;
    ok(api, &teacher, &path("/end"), json!({})).await;
    publisher.stop().await;
    drop(student_seat);

    // where the speech really began on the media clock
    let first_audio = first_audio.expect("the speech clip was sent");
    let audio_media_ms = (DateTime::<Utc>::from(first_audio) - armed).num_milliseconds();
    println!("speech began at {audio_media_ms} ms on the media clock (planned {AUDIO_AT_MS})");
    let phrase_media_ms = audio_media_ms as u64 + PHRASE_AT_MS;

    // the model is missing: the transcript stage fails and retries
    let failing = wait_until(
        "the transcript stage to fail and be retried",
        Duration::from_secs(120),
        || async {
            let (s, v) = api.get(&path("/artifacts"), &teacher).await.ok()?;
            if s != StatusCode::OK {
                return None;
            }
            let st = v["stages"]
                .as_array()?
                .iter()
                .find(|s| s["stage"] == "transcript")?
                .clone();
            (st["state"] == "failed" && st["attempts"].as_u64()? >= 2).then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    // waiting for its next attempt, or already in it: retried, not given up
    assert!(
        matches!(
            failing["job"]["state"].as_str(),
            Some("pending" | "running")
        ),
        "{failing}"
    );
    let err = failing["job"]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("ggml-base.bin"),
        "the error names the model: {err}"
    );
    let (s, v) = api.get(&path("/chapters"), &teacher).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "artifacts_pending"));
    // meanwhile a live class is untouched
    let other = api.start_class(&teacher).await.unwrap();
    api.join(&teacher, &other.id).await.unwrap();
    let m = ok(
        api,
        &teacher,
        &format!("/sessions/{}/chat", other.id),
        json!({ "text": "the pipeline's trouble is not ours" }),
    )
    .await;
    assert!(m["seq"].as_u64().is_some(), "{m}");
    ok(
        api,
        &teacher,
        &format!("/sessions/{}/end", other.id),
        json!({}),
    )
    .await;

    // the model arrives: the next retry succeeds
    std::os::unix::fs::symlink(&real_model, &model).unwrap();
    let status = artifacts_done(api, &teacher, &sid, &stack).await;
    let tstage = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "transcript")
        .unwrap()
        .clone();
    println!(
        "transcript stage: {} attempts, rtf {}, audio {} ms",
        tstage["attempts"], tstage["detail"]["rtf"], tstage["detail"]["audio_ms"]
    );

    // the transcript against the script
    let (s, t) = api.get(&path("/transcript"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{t}");
    let said: Vec<&str> = t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let hyp = said.join(" ");
    let reference: Vec<&str> = SCRIPT.iter().map(|s| s.1).collect();
    let wer = asr::wer(&reference.join(" "), &hyp);
    println!("WER {:.1} %\ntranscript: {hyp}", wer * 100.0);
    assert!(
        wer <= 0.15,
        "word error rate {:.1} % > 15 %: {hyp}",
        wer * 100.0
    );
    // words on the media clock: "Welcome" is said when the audio begins
    let first = &t["segments"][0]["words"][0];
    let first_ms = first["start_ms"].as_i64().unwrap();
    assert!(
        (first_ms - audio_media_ms).abs() <= 1_000,
        "the first word at {first_ms} ms, speech began at {audio_media_ms} ms"
    );

    // chapters at the scene and slide events (G6)
    let evs = api.events(&teacher, &sid).await.unwrap();
    let media_of = |seq: u64| -> i64 {
        let e = evs.iter().find(|e| e["seq"] == seq).unwrap();
        (time_of(e) - armed).num_milliseconds()
    };
    let (s, ch) = api.get(&path("/chapters"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{ch}");
    let chapters = ch["chapters"].as_array().unwrap().clone();
    println!(
        "chapters: {}",
        serde_json::to_string_pretty(&chapters).unwrap()
    );
    let mut worst = 0i64;
    for (ev, title) in [
        (&scene, "Photosynthesis"),
        (&slide, "The Calvin Cycle"),
        (&camera, ""),
    ] {
        let seq = ev["seq"].as_u64().unwrap();
        let c = chapters
            .iter()
            .find(|c| c["source_event_seq"] == seq)
            .unwrap_or_else(|| panic!("no chapter opens at seq {seq}: {chapters:?}"));
        let err = c["start_ms"].as_i64().unwrap() - media_of(seq);
        worst = worst.max(err.abs());
        assert!(err.abs() <= 1_000, "chapter {c} is {err} ms off its event");
        if !title.is_empty() {
            assert_eq!(c["title"], title, "{c}");
        }
    }
    println!("chapter alignment: worst {worst} ms");
    for w in chapters.windows(2) {
        assert_eq!(w[0]["end_ms"], w[1]["start_ms"], "chapters tile the class");
    }

    // highlights: the poll with its results, the answered question
    let (s, h) = api.get(&path("/highlights"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{h}");
    let hs = h["highlights"].as_array().unwrap();
    let p = hs
        .iter()
        .find(|h| h["kind"] == "poll")
        .expect("a poll highlight");
    assert_eq!(p["detail"]["votes"], 2, "{p}");
    assert!(p["title"].as_str().unwrap().contains("chloroplasts"), "{p}");
    let qh = hs
        .iter()
        .find(|h| h["kind"] == "question")
        .expect("a question highlight");
    assert_eq!(qh["detail"]["answered"], true, "{qh}");
    assert!(
        qh["detail"]["answer"].as_str().unwrap().contains("Calvin"),
        "{qh}"
    );
    let (s, sum) = api.get(&path("/summary"), &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{sum}");
    let terms: Vec<&str> = sum["key_terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["term"].as_str().unwrap())
        .collect();
    println!("key terms: {terms:?}");

    // publish: a replay, searchable (G5)
    let (s, v) = api
        .post(&path("/publish"), &student, json!({}))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "staff_only"));
    let (s, v) = api
        .post(
            &path("/publish"),
            &teacher,
            json!({ "visibility": "everyone" }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_visibility")
    );
    let (s, pubd) = api
        .post(&path("/publish"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{pubd}");
    let rid = pubd["replay_id"].as_str().unwrap().to_owned();
    let (s, again) = api
        .post(&path("/publish"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["replay_id"], rid.as_str(), "one replay per class");

    // the student who was there opens it: media, transcript, chapters...
    let (s, r) = api.get(&format!("/replays/{rid}"), &student).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["media"]["mp4_url"].as_str().is_some(), "{r}");
    assert_eq!(r["chapters"], ch["chapters"]);
    assert!(
        r["markers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "poll.closed")
    );
    let vtt = reqwest::get(r["media"]["transcript_vtt_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(vtt.status(), StatusCode::OK);
    let vtt = vtt.text().await.unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n1\n"), "{vtt}");
    assert!(vtt.to_lowercase().contains("chloroplast"), "{vtt}");

    // the phrase said at 00:42 is found at 42 s ± 1 s
    let q = urlencode(PHRASE);
    let (s, found) = api
        .get(&format!("/replays/{rid}/search?q={q}"), &student)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{found}");
    let hit = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "transcript")
        .unwrap_or_else(|| panic!("no transcript hit for {PHRASE}: {found}"))
        .clone();
    let at = hit["start_ms"].as_i64().unwrap();
    println!(
        "search {PHRASE}: hit at {at} ms, phrase said at {phrase_media_ms} ms (planned 42000): {}",
        hit["text"]
    );
    assert!(
        (at - phrase_media_ms as i64).abs() <= 1_000,
        "hit at {at} ms, said at {phrase_media_ms} ms"
    );
    // stemming and typos: "chloroplast" (the poll says "chloroplasts") and
    // "photosynthsis" (the slide and the question say "photosynthesis")
    for q in ["chloroplast", "photosynthsis"] {
        let (s, v) = api
            .get(&format!("/replays/{rid}/search?q={q}"), &student)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(!v["hits"].as_array().unwrap().is_empty(), "{q}: {v}");
    }
    // across the tenant, with the slide's text too
    let (s, all) = api
        .get("/replays/search?q=calvin%20cycle", &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{all}");
    let kinds: Vec<&str> = all["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"transcript") && kinds.contains(&"slide"),
        "{all}"
    );
    assert!(
        all["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["replay_id"] == rid.as_str())
    );
    let (s, v) = api.get("/replays/search?q=", &teacher).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "empty_query"));

    // who may open it: a student taken off the course's roster (and never
    // in the class) may not; unknown is 404
    let outsider_login = api.login_full("student9@demo.test").await.unwrap();
    let outsider = outsider_login["access_token"].as_str().unwrap().to_owned();
    let course = r["course_id"].as_str().unwrap().to_owned();
    let outsider_id = outsider_login["user"]["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .delete(
            &format!("/courses/{course}/members/{outsider_id}"),
            &teacher,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = api
        .get(&format!("/replays/{rid}"), &outsider)
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_enrolled"),
        "{v}"
    );
    let (s, v) = api
        .get("/replays/search?q=photosynthesis", &outsider)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(v["hits"].as_array().unwrap().is_empty(), "{v}");
    let (s, _) = api
        .get(&format!("/replays/{}", uuid::Uuid::now_v7()), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    // a public link works without an account, and stops when made private
    let (s, pubd) = api
        .post(
            &path("/publish"),
            &teacher,
            json!({ "visibility": "public" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{pubd}");
    let public_url = pubd["public_url"].as_str().unwrap().to_owned();
    let r = reqwest::get(&public_url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = reqwest::get(format!("{public_url}x")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    api.post(
        &path("/publish"),
        &teacher,
        json!({ "visibility": "tenant" }),
    )
    .await
    .unwrap();
    let r = reqwest::get(&public_url).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = api
        .get(&format!("/replays/{rid}"), &outsider)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "tenant-wide now");

    // access is logged
    let db = sqlx::PgPool::connect(&stack.db_url).await.unwrap();
    let logged: Vec<(Option<uuid::Uuid>, String, String)> = sqlx::query_as(
        "SELECT user_id, via, action FROM replay_access_log WHERE replay_id = $1::uuid ORDER BY id",
    )
    .bind(&rid)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        logged.iter().any(|l| l.2 == "open" && l.1 == "account"),
        "{logged:?}"
    );
    assert!(logged.iter().any(|l| l.2 == "search"), "{logged:?}");
    assert!(logged.iter().any(|l| l.1 == "public_link"), "{logged:?}");

    // a re-run from the same inputs gives the same artifacts
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for p in ["/transcript", "/chapters", "/highlights", "/summary"] {
            v.push(api.get(&path(p), &teacher).await.unwrap().1);
        }
        v
    };
    let (s, v) = api
        .post(&path("/artifacts/rerun"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "pending", "{v}");
    artifacts_done(api, &teacher, &sid, &stack).await;
    for (i, p) in ["/transcript", "/chapters", "/highlights", "/summary"]
        .iter()
        .enumerate()
    {
        let now = api.get(&path(p), &teacher).await.unwrap().1;
        assert_eq!(now, before[i], "{p} changed on a re-run");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
