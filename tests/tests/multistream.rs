//! Multistream fan-out against real receivers: a class is pushed to an RTMP
//! server (Debian's nginx with `libnginx-mod-rtmp`, which records every
//! stream it gets) as a public and a private program, to an SRT listener
//! (`srt-live-transmit`), and to a destination that refuses connections.
//! The streams are H.264 + AAC 1280x720 that decode cleanly; the refused
//! one leaves the others and the class alone; the RTMP server killed and
//! restarted mid-class gets the push back and the status events say so;
//! the public program never holds a student's camera while the private one
//! does; the multistream kill switch stops every push within a second.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use classroom_tests::media_check::{self, Frame, classify};
use classroom_tests::rtmp::{RtmpServer, SrtListener};
use classroom_tests::{Stack, StackOptions, free_port, free_udp_port, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PALETTE: &[(&str, [u8; 3])] = &[
    ("blue", [0, 0, 255]),
    ("green", [0, 255, 0]),
    ("black", [0, 0, 0]),
];

/// Whether any cell of the frame's grid is `colour`.
fn shows(f: &Frame, colour: &str) -> bool {
    (0..media_check::GRID_H)
        .flat_map(|y| (0..media_check::GRID_W).map(move |x| (x, y)))
        .any(|(x, y)| classify(f.at(x, y), PALETTE, 60) == colour)
}

fn time_of(ev: &Value) -> DateTime<Utc> {
    ev["occurred_at"].as_str().unwrap().parse().unwrap()
}

/// The `destination.status` events of one destination, in order.
async fn statuses(
    api: &classroom_tests::Api,
    token: &str,
    sid: &str,
    dest: &str,
) -> Vec<(String, DateTime<Utc>, Value)> {
    api.events(token, sid)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["type"] == "destination.status" && e["payload"]["destination_id"] == dest)
        .map(|e| {
            (
                e["payload"]["status"].as_str().unwrap_or("").to_string(),
                time_of(&e),
                e["payload"].clone(),
            )
        })
        .collect()
}

/// What ffmpeg complains of while decoding the first `seconds` of a file.
async fn decode_errors_within(file: &Path, seconds: u32) -> String {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-t", &seconds.to_string(), "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

async fn video_size(file: &Path) -> (u32, u32) {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // a TS lists its streams per program too: the first line is enough
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let mut it = first.split(',').map(|n| n.trim().parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_streams_to_rtmp_and_srt_role_aware_isolated_and_resumes() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = &stack.api;
    let dir = tempfile::tempdir().unwrap();
    let rtmp_dir = dir.path().join("rtmp");
    std::fs::create_dir_all(&rtmp_dir).unwrap();
    let mut rtmp = RtmpServer::start(&rtmp_dir, free_port()).await.unwrap();
    let mut srt = SrtListener::start(dir.path(), free_udp_port()).unwrap();
    let refused_port = free_port();

    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live", rtmp.port);
    let create = |body: Value| {
        let (api, admin) = (api.clone(), admin.clone());
        async move {
            let (s, v) = api.post("/destinations", &admin, body).await.unwrap();
            assert_eq!(s, StatusCode::CREATED, "{v}");
            assert!(
                v.get("stream_key").is_none(),
                "the key is never returned: {v}"
            );
            v["id"].as_str().unwrap().to_string()
        }
    };
    let public = create(
        json!({"name": "Open lecture", "kind": "rtmp", "url": rtmp_url,
        "stream_key": "public-secret-key", "audience": "public"}),
    )
    .await;
    let private = create(json!({"name": "Campus B", "kind": "rtmp", "url": rtmp_url,
        "stream_key": "campus-b", "audience": "private"}))
    .await;
    let refused = create(json!({"name": "Down CDN", "kind": "rtmp",
        "url": format!("rtmp://127.0.0.1:{refused_port}/live"), "stream_key": "x", "audience": "private"}))
    .await;
    // a second of SRT latency: the receiver on this busy box must not drop
    // late packets (what a campus link would set too)
    let over_srt = create(json!({"name": "Campus C (SRT)", "kind": "srt",
        "url": format!("srt://127.0.0.1:{}?latency=1000", srt.port), "audience": "private"}))
    .await;

    // guarded: only admins add; bad input is refused and changes nothing
    let (s, _) = api
        .post(
            "/destinations",
            &teacher,
            json!({"name": "Mine", "kind": "rtmp", "url": rtmp_url, "stream_key": "k", "audience": "public"}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api
        .post(
            "/destinations",
            &admin,
            json!({"name": "Bad", "kind": "rtmp", "url": "http://example.test/live", "stream_key": "k", "audience": "public"}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_destination");
    let (s, listed) = api.get("/destinations", &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        listed["destinations"].as_array().unwrap().len(),
        4,
        "{listed}"
    );
    let text = listed.to_string();
    assert!(
        !text.contains("public-secret-key") && !text.contains("campus-b"),
        "no key is listed: {text}"
    );

    // the public destination is attached before the class starts (to its
    // lesson run); a student may not
    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, _) = api
        .post(
            &format!("/lesson-runs/{run}/destinations"),
            &student,
            json!({"destination_id": public}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = api
        .post(
            &format!("/lesson-runs/{run}/destinations"),
            &teacher,
            json!({"destination_id": public}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["destinations"][0]["destination_id"], public, "{v}");

    // the class: the teacher's camera is blue, the student's green
    let class = api.start(&teacher, &run).await.unwrap();
    let sid = class.id.clone();
    let t_seat = api.join(&teacher, &sid).await.unwrap();
    let s_seat = api.join(&student, &sid).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": s_seat.participant_id, "grant": ["present", "speak"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let blue = media_check::vp8_color_clip(dir.path(), "blue", 4)
        .await
        .unwrap();
    let green = media_check::vp8_color_clip(dir.path(), "0x00FF00", 4)
        .await
        .unwrap();
    let publish = |seat: &classroom_tests::api::Joined, clip: Vec<Vec<u8>>| {
        let (url, token, sid) = (seat.edge_url.clone(), seat.join_token.clone(), sid.clone());
        async move {
            classroom_tests::rtc_client::publish(
                &url,
                &sid,
                &token,
                classroom_tests::rtc_client::PublishOptions {
                    clip: Some(std::sync::Arc::new(clip)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let t_pub = publish(&t_seat, blue).await;
    let s_pub = publish(&s_seat, green).await;
    wait_until(
        "both cameras published",
        Duration::from_secs(20),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.iter()
                .filter(|e| e["type"] == "track.published" && e["payload"]["kind"] == "video")
                .count()
                >= 2)
                .then_some(())
        },
    )
    .await
    .unwrap();

    // everyone's camera in a grid: the private program shows both
    for (path, body) in [
        ("scene", json!({"scene": "camera"})),
        ("layout", json!({"layout": "grid"})),
    ] {
        let (s, v) = api
            .post(&format!("/sessions/{sid}/{path}"), &teacher, body)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    // a student may not stream the class
    let (s, _) = api
        .post(
            &format!("/sessions/{sid}/destinations"),
            &student,
            json!({"destination_id": public}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN);
    for d in [&private, &refused, &over_srt] {
        let (s, v) = api
            .post(
                &format!("/sessions/{sid}/destinations"),
                &teacher,
                json!({"destination_id": d}),
            )
            .await
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _) = api
        .post(
            &format!("/sessions/{sid}/destinations"),
            &teacher,
            json!({"destination_id": public}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT, "attached twice");

    let last = |v: &[(String, DateTime<Utc>, Value)]| v.last().map(|s| s.0.clone());
    for d in [&public, &private, &over_srt] {
        let live = wait_until(
            "the destination is live",
            Duration::from_secs(30),
            || async {
                (last(&statuses(api, &teacher, &sid, d).await).as_deref() == Some("live"))
                    .then_some(())
            },
        )
        .await;
        if let Err(e) = live {
            let evs: Vec<String> = statuses(api, &teacher, &sid, d)
                .await
                .iter()
                .map(|s| s.2.to_string())
                .collect();
            panic!(
                "{d}: {e}\nstatuses: {evs:?}\nedge: {}\nrtmp: {}",
                stack.edges[0].proc.tail(40),
                rtmp.log()
            );
        }
    }
    wait_until(
        "the refused destination retries",
        Duration::from_secs(20),
        || async {
            statuses(api, &teacher, &sid, &refused)
                .await
                .iter()
                .any(|s| s.0 == "retrying")
                .then_some(())
        },
    )
    .await
    .unwrap();
    // the class goes on beside it
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &student,
            json!({"text": "streaming?"}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");

    // 20 s of stream at the server
    wait_until(
        "20 s recorded by the RTMP server",
        Duration::from_secs(60),
        || async {
            let f = rtmp.recordings("public-secret-key").first().cloned()?;
            (media_check::duration_s(&f).await.ok()? >= 20.0).then_some(())
        },
    )
    .await
    .unwrap();
    let (s, v) = api
        .get(&format!("/sessions/{sid}/destinations"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let by_id = |v: &Value, id: &str| {
        v["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["destination_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&v, &public)["state"], "live", "{v}");
    // a live destination reports what it sends (every 10 s)
    wait_until(
        "the public push reports its bitrate",
        Duration::from_secs(15),
        || async {
            let (_, v) = api
                .get(&format!("/sessions/{sid}/destinations"), &teacher)
                .await
                .ok()?;
            (by_id(&v, &public)["bitrate_kbps"].as_u64()? > 0).then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(by_id(&v, &over_srt)["state"], "live", "{v}");
    assert_ne!(by_id(&v, &refused)["state"], "live", "{v}");

    // the RTMP server dies and comes back: the pushes resume by themselves
    let killed_at = Utc::now();
    rtmp.kill().await;
    for d in [&public, &private] {
        wait_until("the push retries", Duration::from_secs(20), || async {
            statuses(api, &teacher, &sid, d)
                .await
                .iter()
                .any(|s| s.0 == "retrying" && s.1 > killed_at)
                .then_some(())
        })
        .await
        .unwrap();
    }
    rtmp.restart().await.unwrap();
    for d in [&public, &private] {
        wait_until(
            "the push is live again",
            Duration::from_secs(40),
            || async {
                statuses(api, &teacher, &sid, d)
                    .await
                    .iter()
                    .any(|s| s.0 == "live" && s.1 > killed_at)
                    .then_some(())
            },
        )
        .await
        .unwrap();
    }
    wait_until(
        "the resumed stream is recorded",
        Duration::from_secs(30),
        || async {
            let files = rtmp.recordings("public-secret-key");
            let f = files.get(1)?;
            (media_check::duration_s(f).await.ok()? >= 3.0).then_some(())
        },
    )
    .await
    .unwrap();
    // the SRT push never noticed
    let srt_states: Vec<String> = statuses(api, &teacher, &sid, &over_srt)
        .await
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert!(
        srt_states.iter().all(|s| s == "connecting" || s == "live")
            && srt_states.contains(&"live".into()),
        "SRT untouched: {srt_states:?}"
    );

    // the kill switch stops every push within a second
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/kill-switch"),
            &teacher,
            json!({"switch": {"kind": "multistream"}, "engaged": true}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let evs = api.events(&teacher, &sid).await.unwrap();
    let engaged_at = evs
        .iter()
        .rev()
        .find(|e| e["type"] == "kill_switch.changed")
        .map(time_of)
        .expect("the kill switch event");
    for d in [&public, &private, &over_srt, &refused] {
        let stopped = wait_until("the push stopped", Duration::from_secs(10), || async {
            statuses(api, &teacher, &sid, d)
                .await
                .into_iter()
                .find(|s| s.0 == "stopped" && s.1 >= engaged_at)
                .map(|s| s.1)
        })
        .await
        .unwrap();
        let took = (stopped - engaged_at).num_milliseconds();
        eprintln!("{d} stopped {took} ms after the kill switch");
        assert!(took <= 1000, "{d} stopped {took} ms after the kill switch");
    }
    let (_, v) = api
        .get(&format!("/sessions/{sid}/destinations"), &teacher)
        .await
        .unwrap();
    for d in v["destinations"].as_array().unwrap() {
        assert_eq!(d["state"], "stopped", "{v}");
    }

    let ending = std::time::Instant::now();
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    eprintln!(
        "the end took {} ms (with the recording's finalize)",
        ending.elapsed().as_millis()
    );
    assert_eq!(s, StatusCode::OK, "{v}\n{}", stack.logs());
    t_pub.stop().await;
    s_pub.stop().await;
    srt.stop().await;
    rtmp.kill().await;
    let evs = api.events(&teacher, &sid).await.unwrap();
    assert!(
        evs.iter().any(|e| e["type"] == "recording.finalized"),
        "the recording finished"
    );
    assert!(
        !evs.iter().any(|e| e["type"] == "recording.alert"),
        "the recording never noticed the destinations"
    );
    let audit = api
        .get("/audit?action=destination.attached", &admin)
        .await
        .unwrap()
        .1;
    assert!(
        audit.to_string().contains(&public),
        "attachments are audited: {audit}"
    );
    assert!(!audit.to_string().contains("public-secret-key"));

    // what the receivers got
    let pub_file = rtmp.recordings("public-secret-key")[0].clone();
    let priv_file = rtmp.recordings("campus-b")[0].clone();
    for f in [&pub_file, &priv_file, &srt.file] {
        // ffprobe lists a TS's streams once per program and once more
        let mut codecs = media_check::codecs(f).await.unwrap();
        codecs.dedup_by(|a, b| a == b);
        codecs.truncate(2);
        assert_eq!(codecs, ["h264", "aac"], "{}", f.display());
        assert_eq!(video_size(f).await, (1280, 720), "{}", f.display());
        // a stream stopped by the kill switch may end mid-packet: its
        // first 15 s must decode without one error
        let errors = decode_errors_within(f, 15).await;
        assert!(
            errors.is_empty(),
            "{} decodes cleanly: {errors}",
            f.display()
        );
    }
    let public_frames = media_check::frames(&pub_file).await.unwrap();
    let private_frames = media_check::frames(&priv_file).await.unwrap();
    let green_public = public_frames.iter().filter(|f| shows(f, "green")).count();
    let blue_public = public_frames.iter().filter(|f| shows(f, "blue")).count();
    let green_private = private_frames.iter().filter(|f| shows(f, "green")).count();
    eprintln!(
        "public: {} frames, {blue_public} with the teacher, {green_public} with the student; private: {} frames, {green_private} with the student",
        public_frames.len(),
        private_frames.len()
    );
    assert!(
        public_frames.len() > 300,
        "{} public frames",
        public_frames.len()
    );
    assert_eq!(green_public, 0, "the student's camera is never public");
    assert!(
        blue_public > 300,
        "the teacher is public ({blue_public} frames)"
    );
    assert!(
        green_private > 300,
        "the student is in the private program ({green_private} frames)"
    );
}

/// Push targets live in the edge's memory; an edge that crashes and comes
/// back mid-class gets its classes' destinations from core again (its
/// heartbeat says it started anew) and the push resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_resumes_after_its_edge_restarts() {
    let _heavy = classroom_tests::heavy().await;
    let mut stack = Stack::start(StackOptions {
        recording: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rtmp = RtmpServer::start(dir.path(), free_port()).await.unwrap();
    let api = stack.api.clone();
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let (s, v) = api
        .post(
            "/destinations",
            &admin,
            json!({"name": "Campus B", "kind": "rtmp",
                "url": format!("rtmp://127.0.0.1:{}/live", rtmp.port),
                "stream_key": "campus-b", "audience": "private"}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let dest = v["id"].as_str().unwrap().to_string();
    let class = api.start_class(&teacher).await.unwrap();
    let sid = class.id.clone();
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/destinations"),
            &teacher,
            json!({"destination_id": dest}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let live_after = |after: DateTime<Utc>| {
        let (api, teacher, sid, dest) = (api.clone(), teacher.clone(), sid.clone(), dest.clone());
        async move {
            statuses(&api, &teacher, &sid, &dest)
                .await
                .iter()
                .any(|s| s.0 == "live" && s.1 > after)
                .then_some(())
        }
    };
    let started = Utc::now() - chrono::Duration::seconds(60);
    wait_until("live", Duration::from_secs(30), || live_after(started))
        .await
        .unwrap();

    let crashed_at = Utc::now();
    stack.edges[0].kill().await;
    stack.edges[0].restart().await.unwrap();
    wait_until(
        "the push is live again after the restart",
        Duration::from_secs(60),
        || live_after(crashed_at),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    // a second connection reached the server
    wait_until(
        "a second recording at the server",
        Duration::from_secs(20),
        || async { (rtmp.recordings("campus-b").len() >= 2).then_some(()) },
    )
    .await
    .unwrap();
    let (s, v) = api
        .get(&format!("/sessions/{sid}/destinations"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["destinations"][0]["state"], "live", "{v}");
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
}
