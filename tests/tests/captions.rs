//! Live captions: in a recorded class with captions on, a publisher reads a
//! short lecture (espeak-ng speech as real Opus from a WebRTC client). While
//! the class is live the edge logs `caption.segment` events that read like
//! the script (word error rate), come within seconds of the speech, sit on
//! the recording's media clock where the speech was, and reach a student's
//! live feed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use classroom_tests::feed::Feed;
use classroom_tests::rtc_client::{self, PublishOptions};
use classroom_tests::{Stack, StackOptions, media_check, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The lecture, about 30 s at espeak's 150 words a minute.
const LECTURE: &[&str] = &[
    "Good morning everyone. Today we are going to talk about how plants make their own food.",
    "This process is called photosynthesis, and it happens inside the leaves.",
    "Plants take in water through their roots, and carbon dioxide from the air.",
    "Using the energy of sunlight, they turn these into sugar and oxygen.",
    "Please write down three things that a plant needs to grow.",
    "We will discuss your answers after the break.",
];
/// Silence before the first sentence, between sentences and at the end.
const LEAD_MS: u64 = 1_000;
const PAUSE_MS: u64 = 1_200;
/// The speech starts this long after the publisher is set up: time to
/// connect and for the recorder to take the microphone into its mix.
const SPEAK_AFTER: Duration = Duration::from_secs(6);

const MAX_WER: f64 = 0.30;
/// From the end of what a caption says to its event.
const MAX_DELAY_MS: i64 = 10_000;

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"].as_str().unwrap().parse().unwrap()
}

fn ms(ev: &Value, field: &str) -> u64 {
    ev["payload"][field].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_class_is_captioned_live() {
    let _heavy = classroom_tests::heavy().await;
    let model = asr::model_path("ggml-tiny.en.bin");
    assert!(
        model.exists(),
        "the caption model {} is missing: run deploy/asr-models.sh",
        model.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let speech = media_check::speech_paced(dir.path(), LECTURE, LEAD_MS, PAUSE_MS)
        .await
        .unwrap();
    let script = speech.script();
    let stack = Stack::start(StackOptions {
        recording: true,
        captions: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();

    // a student follows the class's live feed
    let student = api.login("student1@demo.test").await.unwrap();
    let student_seat = api.join(&student, &sid).await.unwrap();
    let mut feed = Feed::connect(&student_seat.edge_url, &sid, &student_seat.join_token, None)
        .await
        .unwrap();
    let heard: Arc<Mutex<Vec<Value>>> = Arc::default();
    let follower = {
        let heard = heard.clone();
        tokio::spawn(async move {
            while let Some(m) = feed.next(Duration::from_secs(120)).await {
                if m["kind"] == "event" && m["event"]["type"] == "caption.segment" {
                    heard.lock().unwrap().push(m["event"].clone());
                }
            }
        })
    };

    // the teacher speaks (microphone only)
    let seat = api.join(&teacher, &sid).await.unwrap();
    let publisher = rtc_client::publish(
        &seat.edge_url,
        &sid,
        &seat.join_token,
        PublishOptions {
            video: false,
            audio_clip: Some(Arc::new(speech.packets.clone())),
            audio_clip_start: Some(SystemTime::now() + SPEAK_AFTER),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_until(
        "the microphone's track",
        Duration::from_secs(20),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            evs.iter()
                .any(|e| e["type"] == "track.published" && e["payload"]["kind"] == "audio")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let started_at: DateTime<Utc> = wait_until(
        "the speech to start",
        SPEAK_AFTER + Duration::from_secs(20),
        || async { publisher.snapshot().audio_clip_started_at },
    )
    .await
    .unwrap()
    .into();
    let armed = armed_at(&stack, &teacher, &sid).await;
    // where the speech is on the media clock
    let speech_ms = (started_at - armed).num_milliseconds();
    assert!(speech_ms > 0, "the speech started after the recorder armed");
    let speech_ms = speech_ms as u64;
    let (first_word, last_word) = (
        speech_ms + speech.spoken[0].0,
        speech_ms + speech.spoken.last().unwrap().1,
    );

    // captions arrive while the class is live, up to the last sentence
    let clip = Duration::from_millis(speech.duration_ms);
    let captions = wait_until(
        "captions up to the end of the speech",
        clip + Duration::from_secs(40),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            let caps: Vec<Value> = evs
                .into_iter()
                .filter(|e| e["type"] == "caption.segment")
                .collect();
            caps.iter()
                .any(|c| ms(c, "end_ms") + 1_500 >= last_word)
                .then_some(caps)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; heard so far: {:?}\n{}",
            heard.lock().unwrap(),
            stack.logs()
        )
    });
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    publisher.stop().await;

    let evs = api.events(&teacher, &sid).await.unwrap();
    let ended = evs
        .iter()
        .find(|e| e["type"] == "session.ended")
        .expect("session.ended");
    let class_ms = (time_of(ended) - armed).num_milliseconds() as u64;
    for c in &captions {
        assert!(
            c["seq"].as_u64() < ended["seq"].as_u64(),
            "logged while the class was live: {c}"
        );
    }

    // what they say
    let text: Vec<&str> = captions
        .iter()
        .map(|c| c["payload"]["text"].as_str().unwrap())
        .collect();
    let hypothesis = text.join(" ");
    let wer = asr::wer(&script, &hypothesis);
    println!("script:   {script}");
    println!("captions: {hypothesis}");
    println!("WER {:.1} % over {} captions", wer * 100.0, captions.len());
    assert!(wer <= MAX_WER, "WER {:.1} %", wer * 100.0);

    // when: on the media clock where the speech was, logged soon after
    let mut delays = Vec::new();
    for c in &captions {
        let (start, end) = (ms(c, "start_ms"), ms(c, "end_ms"));
        assert!(
            start <= end && end <= class_ms,
            "caption {start}..{end} ms within the class's {class_ms} ms: {c}"
        );
        assert!(
            start + 2_000 >= first_word && end <= last_word + 2_000,
            "caption {start}..{end} ms within the speech ({first_word}..{last_word} ms on the media clock): {c}"
        );
        let said = armed + chrono::Duration::milliseconds(end as i64);
        delays.push((time_of(c) - said).num_milliseconds());
    }
    let first_start = captions.iter().map(|c| ms(c, "start_ms")).min().unwrap();
    println!(
        "speech {first_word}..{last_word} ms on the media clock; captions from {first_start} ms; delay after the words (ms): {delays:?}"
    );
    let worst = delays.iter().copied().max().unwrap();
    assert!(
        worst <= MAX_DELAY_MS,
        "captions logged at most {MAX_DELAY_MS} ms after their words (worst {worst} ms)"
    );
    assert!(
        first_start.abs_diff(first_word) <= 2_000,
        "the first caption starts where the speech does ({first_start} vs {first_word} ms)"
    );

    // the student saw them live
    let want: BTreeSet<u64> = captions.iter().filter_map(|c| c["seq"].as_u64()).collect();
    wait_until(
        "the captions on the student's live feed",
        Duration::from_secs(10),
        || async {
            let got: BTreeSet<u64> = heard
                .lock()
                .unwrap()
                .iter()
                .filter_map(|c| c["seq"].as_u64())
                .collect();
            want.is_subset(&got).then_some(())
        },
    )
    .await
    .unwrap();
    let seen = heard.lock().unwrap().clone();
    for c in &captions {
        let twin = seen.iter().find(|h| h["seq"] == c["seq"]).unwrap();
        assert_eq!(
            twin["payload"], c["payload"],
            "the feed's caption is core's"
        );
    }
    follower.abort();
    stack.shutdown().await;
}

/// Media time 0: the first `recording.armed` (its run's running time 0).
async fn armed_at(stack: &Stack, token: &str, sid: &str) -> DateTime<Utc> {
    let armed = wait_until("recording.armed", Duration::from_secs(20), || async {
        let evs = stack.api.events(token, sid).await.ok()?;
        evs.into_iter().find(|e| e["type"] == "recording.armed")
    })
    .await
    .unwrap();
    assert_eq!(armed["payload"]["offset_ms"], 0, "{armed}");
    armed["payload"]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
