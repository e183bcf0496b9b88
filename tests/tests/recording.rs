//! The recording is the class of record: a class driven by headless
//! Chromium (fake camera and microphone) with scene, slide and layout
//! changes is composed and recorded on the edge; after the end its segments
//! match their events' checksums, the joined file plays from start to end
//! at the class's length, and every change lands within 100 ms of its event.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use classroom_tests::media_check::{self, Frame, classify};
use classroom_tests::{Stack, StackOptions, pdf, wait_until, workspace_root};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The teacher's pacing between actions: the class's script, not a wait
/// for anything (every wait for a condition below has a deadline).
async fn hold(d: Duration) {
    tokio::time::sleep(d).await;
}

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"].as_str().unwrap().parse().unwrap()
}

const PALETTE: &[(&str, [u8; 3])] = &[
    ("red", [255, 0, 0]),
    ("blue", [0, 0, 255]),
    ("magenta", [255, 0, 255]),
    ("white", [255, 255, 255]),
    ("black", [0, 0, 0]),
];

/// Slides are red, blue and magenta; Chromium's fake camera is green, so
/// anything outside the palette at the centre is the camera.
///
/// Which layout a frame shows, from two points: the centre (content) and
/// the top right (content in a full layout, background beside it).
fn label(f: &Frame) -> String {
    let c = classify(f.at(8, 4), PALETTE, 60);
    let r = classify(f.at(13, 1), PALETTE, 60);
    match (c, r) {
        ("other", _) => "camera".into(),
        (c, r) if c == r => format!("{c}-full"),
        (c, "black") => format!("{c}-side"),
        (c, r) => format!("{c}/{r}"),
    }
}

async fn download(api: &classroom_tests::Api, url: &str, to: &Path) -> Vec<u8> {
    let bytes = api.bytes_when_ready(url).await.unwrap();
    std::fs::write(to, &bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_class_plays_with_every_scene_change_in_place() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let deck = pdf::colored_pages(&[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]);
    let deck_id = api.upload_deck(&teacher, deck).await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let path = |p: &str| format!("/sessions/{sid}{p}");

    // the teacher's browser publishes camera and microphone
    let mut browser = tokio::process::Command::new("node")
        .arg("record.mjs")
        .current_dir(workspace_root().join("tests/browser"))
        .env("CORE_URL", &stack.core_url)
        .env("SESSION", &sid)
        .env("PASSWORD", classroom_tests::stack::PASSWORD)
        .env("TIMEOUT_MS", "90000")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let published = tokio::time::timeout(Duration::from_secs(100), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("\"published\":true") {
                return true;
            }
            if l.contains("\"ok\":false") {
                panic!("the browser failed: {l}");
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        published,
        "the teacher's browser published\n{}",
        stack.logs()
    );
    // the recorder has the camera once its track is announced
    wait_until(
        "the teacher's video track",
        Duration::from_secs(30),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            evs.iter()
                .any(|e| e["type"] == "track.published" && e["payload"]["kind"] == "video")
                .then_some(())
        },
    )
    .await
    .unwrap();

    // the class: a slide is readied in the camera scene, then the changes
    let (s, v) = api
        .post(
            &path("/slides"),
            &teacher,
            json!({ "deck_id": deck_id, "index": 0 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    hold(Duration::from_secs(3)).await;
    let script: Vec<(&str, Value, &str)> = vec![
        ("/scene", json!({ "scene": "slides" }), "red-full"),
        (
            "/slides",
            json!({ "deck_id": deck_id, "index": 1 }),
            "blue-full",
        ),
        ("/layout", json!({ "layout": "side_by_side" }), "blue-side"),
        ("/scene", json!({ "scene": "whiteboard" }), "white-side"),
        ("/layout", json!({ "layout": "pip" }), "white-full"),
        ("/scene", json!({ "scene": "camera" }), "camera"),
    ];
    for (p, body, _) in &script {
        let (s, v) = api.post(&path(p), &teacher, body.clone()).await.unwrap();
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
        hold(Duration::from_millis(2500)).await;
    }
    let (s, v) = api.post(&path("/end"), &teacher, json!({})).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let stdin = browser.stdin.as_mut().unwrap();
    let _ = stdin.write_all(b"stop\n").await;
    let _ = tokio::time::timeout(Duration::from_secs(30), browser.wait()).await;

    // the recording as core serves it
    let rec = wait_until(
        "the recording to be finalized in core",
        Duration::from_secs(30),
        || async {
            let (s, v) = api.get(&path("/recording"), &teacher).await.ok()?;
            (s == StatusCode::OK && v["status"] == "finalized").then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let evs = api.events(&teacher, &sid).await.unwrap();
    let of = |t: &'static str| evs.iter().filter(move |e| e["type"] == t);
    let started = time_of(of("session.started").next().unwrap());
    let ended = time_of(of("session.ended").next().unwrap());
    let armed = of("recording.armed").next().expect("recording.armed");
    let armed_at: DateTime<Utc> = armed["payload"]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        armed["seq"].as_u64() < of("session.ended").next().unwrap()["seq"].as_u64(),
        "armed during the class"
    );
    assert_eq!(of("recording.gap").count(), 0, "no gaps in a clean class");
    let finalized = of("recording.finalized")
        .next()
        .expect("recording.finalized");
    assert!(
        finalized["seq"].as_u64() < of("session.ended").next().unwrap()["seq"].as_u64(),
        "finalized before the class ended"
    );
    let seg_events: Vec<&Value> = of("recording.segment").collect();
    let segments = rec["segments"].as_array().unwrap();
    assert_eq!(segments.len(), seg_events.len());
    assert!(segments.len() >= 3, "{rec}");

    // every uploaded segment is what its event says
    let dir = tempfile::tempdir().unwrap();
    let mut frames: Vec<(f64, Frame)> = Vec::new();
    for (s, e) in segments.iter().zip(&seg_events) {
        let file = dir.path().join(format!("seg{}.mp4", s["index"]));
        let bytes = download(api, s["url"].as_str().unwrap(), &file).await;
        assert_eq!(bytes.len() as u64, e["payload"]["bytes"].as_u64().unwrap());
        assert_eq!(
            media_check::sha256_hex(&bytes),
            e["payload"]["sha256"].as_str().unwrap()
        );
        assert_eq!(s["sha256"], e["payload"]["sha256"]);
        let start_ms = e["payload"]["start_ms"].as_u64().unwrap() as f64;
        let v0 = media_check::video_start_s(&file).await.unwrap();
        for f in media_check::frames(&file).await.unwrap() {
            frames.push((start_ms / 1000.0 + (f.pts_s - v0), f));
        }
    }
    // a forged or foreign segment URL does not open
    let url = segments[0]["url"].as_str().unwrap();
    let forged = url.replace("seg00000", "seg00001");
    assert_eq!(
        api.http.get(&forged).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // the joined file: the class's length, clean from start to end
    let joined = dir.path().join("recording.mp4");
    download(api, rec["url"].as_str().unwrap(), &joined).await;
    let duration = media_check::duration_s(&joined).await.unwrap();
    let class = (ended - started).num_milliseconds() as f64 / 1000.0;
    assert!(
        (duration - class).abs() <= 1.0,
        "recording {duration:.2}s vs class {class:.2}s"
    );
    assert_eq!(
        media_check::decode_errors(&joined).await.unwrap(),
        "",
        "decodes cleanly"
    );
    let codecs = media_check::codecs(&joined).await.unwrap();
    assert!(
        codecs.contains(&"h264".into()) && codecs.contains(&"aac".into()),
        "{codecs:?}"
    );
    let loudest = media_check::max_volume_db(&joined).await.unwrap();
    assert!(loudest > -40.0, "the microphone is heard: max {loudest} dB");

    // 30 fps without holes across segment boundaries
    for w in frames.windows(2) {
        let dt = w[1].0 - w[0].0;
        assert!(
            dt > 0.0 && dt < 0.1,
            "frames at {:.3} and {:.3}",
            w[0].0,
            w[1].0
        );
    }

    // each change lands within 100 ms of its event, and holds until the next
    let change_events: Vec<&Value> = evs
        .iter()
        .filter(|e| {
            ["scene.changed", "slide.changed", "layout.changed"]
                .contains(&e["type"].as_str().unwrap())
        })
        .skip(1) // the first slide, shown under the camera
        .collect();
    assert_eq!(change_events.len(), script.len());
    let at: Vec<f64> = change_events
        .iter()
        .map(|e| (time_of(e) - armed_at).num_milliseconds() as f64 / 1000.0)
        .collect();
    let mut report = Vec::new();
    for (i, (_, _, want)) in script.iter().enumerate() {
        let te = at[i];
        let next = at.get(i + 1).copied().unwrap_or(f64::MAX);
        let first = frames
            .iter()
            .find(|(t, f)| *t >= te - 0.034 && *t < next && label(f) == *want)
            .map(|(t, _)| *t);
        let Some(first) = first else {
            let seen: Vec<String> = frames
                .iter()
                .filter(|(t, _)| *t >= te - 0.1 && *t < te + 0.5)
                .map(|(t, f)| format!("{t:.3}:{} {:?}", label(f), f.at(8, 4)))
                .collect();
            panic!("{want} never shown after its event at {te:.3}: {seen:?}");
        };
        let lag_ms = (first - te) * 1000.0;
        report.push(format!("{want}: {lag_ms:.0} ms"));
        if lag_ms > 100.0 {
            let seen: Vec<String> = frames
                .iter()
                .filter(|(t, _)| *t >= te - 0.1 && *t <= first)
                .map(|(t, f)| format!("{t:.3}:{} {:?}/{:?}", label(f), f.at(8, 4), f.at(13, 1)))
                .collect();
            panic!("{want} landed {lag_ms:.0} ms after its event at {te:.3}: {seen:?}");
        }
        let wrong: Vec<String> = frames
            .iter()
            .filter(|(t, _)| *t >= first && *t < next - 0.034)
            .filter(|(_, f)| label(f) != *want)
            .map(|(t, f)| format!("{t:.3}:{}", label(f)))
            .collect();
        assert!(wrong.is_empty(), "{want} interrupted: {wrong:?}");
    }
    eprintln!("layout changes after their events: {}", report.join(", "));
    stack.shutdown().await;
}

/// A class recorded without media: slides only (the composer still makes a
/// 720p30 program of them).
async fn slide_class(stack: &Stack) -> (String, String, String) {
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let deck = pdf::colored_pages(&[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]);
    let deck_id = api.upload_deck(&teacher, deck).await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    for (p, body) in [
        ("/slides", json!({ "deck_id": deck_id, "index": 0 })),
        ("/scene", json!({ "scene": "slides" })),
    ] {
        let (s, v) = api
            .post(&format!("/sessions/{sid}{p}"), &teacher, body)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    (teacher, sid, deck_id)
}

/// The session's events of one type, as core has them.
async fn events_of(stack: &Stack, token: &str, sid: &str, ty: &str) -> Vec<Value> {
    let evs = stack.api.events(token, sid).await.unwrap_or_default();
    evs.into_iter().filter(|e| e["type"] == ty).collect()
}

async fn wait_events(
    stack: &Stack,
    token: &str,
    sid: &str,
    ty: &'static str,
    n: usize,
    within: Duration,
) -> Vec<Value> {
    wait_until(&format!("{n} × {ty}"), within, || async {
        let evs = events_of(stack, token, sid, ty).await;
        (evs.len() >= n).then_some(evs)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()))
}

/// Ends the class and checks what every recorded class must hold: each
/// uploaded segment is what its event says and decodes cleanly, and the
/// joined file (gaps filled) is the class's length and plays end to end.
async fn end_and_check(stack: &Stack, teacher: &str, sid: &str) -> Value {
    let api = &stack.api;
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec = wait_until(
        "the recording to be finalized in core",
        Duration::from_secs(40),
        || async {
            let (s, v) = api
                .get(&format!("/sessions/{sid}/recording"), teacher)
                .await
                .ok()?;
            (s == StatusCode::OK && v["status"] == "finalized").then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let evs = api.events(teacher, sid).await.unwrap();
    let seg_events: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "recording.segment")
        .collect();
    let segments = rec["segments"].as_array().unwrap();
    assert_eq!(segments.len(), seg_events.len(), "{rec}");
    let dir = tempfile::tempdir().unwrap();
    for (s, e) in segments.iter().zip(&seg_events) {
        let file = dir.path().join(format!("seg{}.mp4", s["index"]));
        let bytes = download(api, s["url"].as_str().unwrap(), &file).await;
        assert_eq!(
            media_check::sha256_hex(&bytes),
            e["payload"]["sha256"].as_str().unwrap()
        );
        assert_eq!(
            media_check::decode_errors(&file).await.unwrap(),
            "",
            "segment {} decodes",
            s["index"]
        );
    }
    let started = time_of(evs.iter().find(|e| e["type"] == "session.started").unwrap());
    let ended = time_of(evs.iter().find(|e| e["type"] == "session.ended").unwrap());
    let joined = dir.path().join("recording.mp4");
    download(api, rec["url"].as_str().unwrap(), &joined).await;
    let duration = media_check::duration_s(&joined).await.unwrap();
    let class = (ended - started).num_milliseconds() as f64 / 1000.0;
    assert!(
        (duration - class).abs() <= 1.0,
        "recording {duration:.2}s vs class {class:.2}s\n{rec}"
    );
    assert_eq!(
        media_check::decode_errors(&joined).await.unwrap(),
        "",
        "the joined file decodes cleanly"
    );
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_keeps_its_recording_up_to_the_last_segment() {
    let _heavy = classroom_tests::heavy().await;
    let mut stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let (teacher, sid, deck_id) = slide_class(&stack).await;
    let before = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.segment",
        2,
        Duration::from_secs(40),
    )
    .await;

    // kill -9 mid-segment, then the edge comes back with the same data
    stack.edge("edge-a").kill().await;
    stack.edge("edge-a").restart().await.unwrap();
    let gaps = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.gap",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(gaps[0]["payload"]["reason"], "edge_restart", "{}", gaps[0]);
    let armed = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.armed",
        2,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        armed[1]["seq"].as_u64() > gaps[0]["seq"].as_u64(),
        "re-armed after the gap"
    );
    let recorded_to = before
        .iter()
        .map(|e| e["payload"]["end_ms"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        gaps[0]["payload"]["from_ms"].as_u64().unwrap() >= recorded_to,
        "the gap starts after every segment finished before the crash: {}",
        gaps[0]
    );

    // the class goes on and is recorded again
    let (s, v) = stack
        .api
        .post(
            &format!("/sessions/{sid}/slides"),
            &teacher,
            json!({ "deck_id": deck_id, "index": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let n = events_of(&stack, &teacher, &sid, "recording.segment")
        .await
        .len();
    wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.segment",
        n + 1,
        Duration::from_secs(30),
    )
    .await;

    let rec = end_and_check(&stack, &teacher, &sid).await;
    // every segment finished before the crash is in the recording unchanged
    let segments = rec["segments"].as_array().unwrap();
    for e in &before {
        let i = e["payload"]["index"].as_u64().unwrap();
        let s = segments
            .iter()
            .find(|s| s["index"].as_u64() == Some(i))
            .expect("segment kept");
        assert_eq!(s["sha256"], e["payload"]["sha256"]);
    }
    let gaps = rec["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{rec}");
    assert_eq!(gaps[0]["reason"], "edge_restart");
    stack.shutdown().await;
}

/// A tmpfs the test mounts (and always unmounts) as the edge's spool.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size_mb: u32) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the spool (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    fn free_bytes(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_stops_the_recording_with_an_alert_and_the_class_goes_on() {
    let _heavy = classroom_tests::heavy().await;
    let base = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(base.path().join("spool"), 16);
    let stack = Stack::start(StackOptions {
        recording: true,
        edge_args: vec![
            "--spool-dir".into(),
            disk.path.display().to_string(),
            "--spool-min-free-mb".into(),
            "4".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let (teacher, sid, deck_id) = slide_class(&stack).await;
    let before = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.segment",
        1,
        Duration::from_secs(30),
    )
    .await;

    // something else fills the disk, leaving less than the spool's minimum
    let filler = disk.path.join("filler");
    let fill = disk.free_bytes().saturating_sub(2 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    let alerts = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.alert",
        1,
        Duration::from_secs(20),
    )
    .await;
    let reason = alerts[0]["payload"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("disk_full"), "{reason}");

    // the class goes on: commands are taken and the live state moves
    for (p, body) in [
        ("/slides", json!({ "deck_id": deck_id, "index": 2 })),
        ("/layout", json!({ "layout": "side_by_side" })),
    ] {
        let (s, v) = stack
            .api
            .post(&format!("/sessions/{sid}{p}"), &teacher, body)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    wait_until(
        "the class state to move on",
        Duration::from_secs(10),
        || async {
            let (s, state) = stack
                .api
                .get(&format!("/sessions/{sid}/state"), &teacher)
                .await
                .ok()?;
            (s == StatusCode::OK && state["slide"]["index"] == 2).then_some(())
        },
    )
    .await
    .unwrap();
    // and the recording's alert is shown with it
    let (_, rec) = stack
        .api
        .get(&format!("/sessions/{sid}/recording"), &teacher)
        .await
        .unwrap();
    assert!(rec["alerts"].to_string().contains("disk_full"), "{rec}");

    // space comes back: the recorder re-arms by itself, the gap is explicit
    std::fs::remove_file(&filler).unwrap();
    let gaps = wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.gap",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(gaps[0]["payload"]["reason"], "disk_full", "{}", gaps[0]);
    wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.armed",
        2,
        Duration::from_secs(10),
    )
    .await;
    let n = events_of(&stack, &teacher, &sid, "recording.segment")
        .await
        .len();
    wait_events(
        &stack,
        &teacher,
        &sid,
        "recording.segment",
        n + 1,
        Duration::from_secs(30),
    )
    .await;

    let rec = end_and_check(&stack, &teacher, &sid).await;
    let segments = rec["segments"].as_array().unwrap();
    for e in &before {
        let i = e["payload"]["index"].as_u64().unwrap();
        assert!(
            segments
                .iter()
                .any(|s| s["index"].as_u64() == Some(i) && s["sha256"] == e["payload"]["sha256"])
        );
    }
    stack.shutdown().await;
    drop(disk);
}

/// Reads the program track from the relay as a far edge would, until `n`
/// frames arrived; they must start at a keyframe. Returns the H.264 stream
/// (reassembled from its RTP payloads).
async fn watch_program(stack: &Stack, track: &str, n: usize) -> Vec<u8> {
    use mesh_client::{MeshClient, MeshError, fetch_token};
    let relay = stack.relay.as_ref().unwrap();
    let ca = std::fs::read(&relay.ca_pem).unwrap();
    let nats = stack.hub.client().await.unwrap();
    let edge = protocol::ids::EdgeId::new("edge-a".to_owned()).unwrap();
    let mut sub = wait_until(
        "the program track on the relay",
        Duration::from_secs(30),
        || async {
            let (token, _) = fetch_token(&nats, &edge).await.ok()?;
            let client = MeshClient::connect(&relay.url, &ca, &token).await.ok()?;
            match client.subscribe(track).await {
                Ok(s) => Some((client, s)),
                Err(MeshError::NotFound) => None,
                Err(e) => {
                    eprintln!("subscribe: {e}");
                    None
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let mut payloads = Vec::new();
    let mut frames = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        while frames < n {
            let p = sub.1.next().await.expect("program packets keep coming");
            if payloads.is_empty() {
                assert!(p.packet.keyframe, "a new viewer starts at a keyframe");
            }
            if p.packet.marker {
                frames += 1;
            }
            payloads.push(p.packet.payload);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {frames} of {n} program frames\n{}", stack.logs()));
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_ref()).collect();
    media_check::h264_annexb(&refs)
}

async fn check_h264(stream: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("program.h264");
    std::fs::write(&file, stream).unwrap();
    assert_eq!(
        media_check::decode_errors(&file).await.unwrap(),
        "",
        "the program decodes cleanly"
    );
    let frames = media_check::frames(&file).await.unwrap();
    assert!(frames.len() >= 60, "{} frames decoded", frames.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_feed_reaches_the_relay_and_survives_its_restart() {
    let _heavy = classroom_tests::heavy().await;
    let mut stack = Stack::start(StackOptions {
        recording: true,
        relay: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let (teacher, sid, deck_id) = slide_class(&stack).await;
    let evs = stack.api.events(&teacher, &sid).await.unwrap();
    let tenant = evs[0]["tenant_id"].as_str().unwrap().to_owned();
    let track = format!("{tenant}/{sid}/program/video");

    // core gives relay tokens only to edges it knows
    let nats = stack.hub.client().await.unwrap();
    let stranger = protocol::ids::EdgeId::new("edge-unknown".to_owned()).unwrap();
    assert!(mesh_client::fetch_token(&nats, &stranger).await.is_err());

    let stream = watch_program(&stack, &track, 90).await;
    check_h264(&stream).await;

    // the relay dies and comes back: the class and its recording go on, and
    // the program is on the relay again
    stack.relay.as_mut().unwrap().kill().await;
    let (s, v) = stack
        .api
        .post(
            &format!("/sessions/{sid}/slides"),
            &teacher,
            json!({ "deck_id": deck_id, "index": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    stack.relay.as_mut().unwrap().restart().await.unwrap();
    let stream = watch_program(&stack, &track, 90).await;
    check_h264(&stream).await;

    let rec = end_and_check(&stack, &teacher, &sid).await;
    assert_eq!(
        rec["gaps"].as_array().map(|g| g.len()),
        Some(0),
        "the relay's crash cost the recording nothing: {rec}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_who_declined_recording_never_appears_in_it() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let session = api.start_class(&teacher).await.unwrap();
    let sid = session.id.clone();
    let seat = api.join(&teacher, &sid).await.unwrap();
    let consent = |recording: bool| {
        let (api, teacher, sid) = (api.clone(), teacher.clone(), sid.clone());
        async move {
            let (s, v) = api
                .post(
                    &format!("/sessions/{sid}/consent"),
                    &teacher,
                    json!({ "recording": recording }),
                )
                .await
                .unwrap();
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    consent(false).await;
    // a real camera (ffmpeg's moving test pattern) and a microphone
    let dir = tempfile::tempdir().unwrap();
    let clip = media_check::vp8_clip(dir.path(), 640, 360, 30, 4)
        .await
        .unwrap();
    let opts = classroom_tests::rtc_client::PublishOptions {
        clip: Some(std::sync::Arc::new(clip)),
        ..Default::default()
    };
    let publisher =
        classroom_tests::rtc_client::publish(&seat.edge_url, &sid, &seat.join_token, opts)
            .await
            .unwrap();
    wait_until("the camera's track", Duration::from_secs(20), || async {
        let evs = api.events(&teacher, &sid).await.ok()?;
        evs.iter()
            .any(|e| e["type"] == "track.published" && e["payload"]["kind"] == "video")
            .then_some(())
    })
    .await
    .unwrap();
    hold(Duration::from_secs(5)).await;
    consent(true).await;
    hold(Duration::from_secs(5)).await;
    let rec = end_and_check(&stack, &teacher, &sid).await;
    publisher.stop().await;

    let evs = api.events(&teacher, &sid).await.unwrap();
    let armed: DateTime<Utc> =
        evs.iter().find(|e| e["type"] == "recording.armed").unwrap()["payload"]["started_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let given = evs
        .iter()
        .filter(|e| e["type"] == "consent.changed")
        .find(|e| e["payload"]["recording"] == true)
        .map(time_of)
        .expect("consent given");
    let given_s = (given - armed).num_milliseconds() as f64 / 1000.0;
    let joined = dir.path().join("recording.mp4");
    download(api, rec["url"].as_str().unwrap(), &joined).await;
    let frames = media_check::frames(&joined).await.unwrap();
    let v0 = media_check::video_start_s(&joined).await.unwrap();
    let before: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.pts_s - v0 < given_s - 0.1)
        .collect();
    let after: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.pts_s - v0 > given_s + 1.0)
        .collect();
    assert!(
        before.len() > 60 && after.len() > 30,
        "{} frames before, {} after",
        before.len(),
        after.len()
    );
    let seen_before = before.iter().map(|f| f.brightest()).max().unwrap();
    let seen_after = after.iter().map(|f| f.brightest()).max().unwrap();
    assert!(
        seen_before < 60,
        "nothing of the declined camera is in the recording (brightest {seen_before})"
    );
    assert!(
        seen_after > 300,
        "the camera appears once consent is given (brightest {seen_after})"
    );
    let quiet = media_check::max_volume_db_between(&joined, 0.0, given_s - 0.2)
        .await
        .unwrap();
    let heard = media_check::max_volume_db_between(&joined, given_s + 0.5, f64::MAX)
        .await
        .unwrap();
    eprintln!(
        "declined: brightest {seen_before}, max {quiet} dB; consenting: brightest {seen_after}, max {heard} dB"
    );
    assert!(
        quiet < -60.0,
        "the declined microphone is not heard: {quiet} dB"
    );
    assert!(
        heard > quiet + 20.0,
        "the microphone is heard once consent is given: {heard} dB"
    );
    stack.shutdown().await;
}
