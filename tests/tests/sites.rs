//! A campus edge on a network of its own: the edge box (edge-node and its
//! NATS leaf) runs in a network namespace the test makes, reaching core, the
//! hub and the S3 store (Garage) only over a veth "WAN"; its students reach
//! it over a campus "LAN" link. Core and the edge speak HTTPS (the edge
//! fetches core's JWKS over it), the leaf link is TLS, and recordings go
//! from the edge straight into S3: no filesystem is shared. The WAN is cut
//! and restored mid-class with nothing lost.

use std::collections::HashSet;
use std::time::Duration;

use classroom_tests::{Stack, StackOptions, media_check, pdf, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn edge_post(stack: &Stack, url: String, token: &str, body: Value) -> (StatusCode, Value) {
    let r = stack
        .api
        .http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campus_edge_on_its_own_network_records_into_s3_and_rides_out_a_wan_cut() {
    let _heavy = classroom_tests::heavy().await;
    let stack = Stack::start(StackOptions {
        recording: true,
        s3: true,
        https: true,
        edges: vec!["edge-a", "edge-b"],
        site: Some("edge-a"),
        students: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let site = stack.site.as_ref().unwrap();
    let (garage, core_key) = stack.garage.as_ref().unwrap();
    assert!(stack.core_url.starts_with("https://"), "{}", stack.core_url);
    let edge_url = stack.edge_url("edge-a");
    assert!(
        edge_url.starts_with(&format!("https://{}:", site.lan_edge)),
        "{edge_url}"
    );
    // (Stack::start waited for the edge to hold core's keys: fetched over
    // HTTPS across the WAN, trusting the campus's CA file)

    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let deck = pdf::colored_pages(&[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]);
    let deck_id = api.upload_deck(&teacher, deck).await.unwrap();
    let run = api
        .lesson_run(&teacher, json!({ "edge_id": "edge-a" }))
        .await
        .unwrap();
    let session = api.start(&teacher, &run).await.unwrap();
    assert_eq!(session.edge_id, "edge-a");
    let sid = session.id.clone();
    let teacher_seat = api.join(&teacher, &sid).await.unwrap();
    assert_eq!(
        teacher_seat.edge_url, edge_url,
        "students go to the campus edge"
    );
    let mut students = Vec::new();
    for n in 1..=3 {
        let tok = api.login(&format!("student{n}@demo.test")).await.unwrap();
        students.push(api.join(&tok, &sid).await.unwrap());
    }
    for (p, body) in [
        ("slides", json!({ "deck_id": deck_id, "index": 0 })),
        ("scene", json!({ "scene": "slides" })),
    ] {
        let (s, v) = edge_post(
            &stack,
            format!("{edge_url}/sessions/{sid}/{p}"),
            &teacher_seat.join_token,
            body,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    // the edge records and uploads into S3; core learns of each segment
    wait_until(
        "two recording segments in core",
        Duration::from_secs(60),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.iter()
                .filter(|e| e["type"] == "recording.segment")
                .count()
                >= 2)
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let before_cut = api.events(&teacher, &sid).await.unwrap().len();

    // --- the campus box's own NATS, seen from inside its namespace: no
    // credentials or an unknown identity get no connection; the edge's own
    // identity cannot speak in another edge's name (the hub never hears a
    // heartbeat it forged, while the genuine ones keep coming)
    let leaf_port = stack.edges[0].leaf.port;
    let edge_seed = stack.nats_auth.seed("edge-a.local");
    let hub = stack.hub.client().await.unwrap();
    let mut heard = hub
        .subscribe(protocol::subjects::EDGE_HEALTH_ALL)
        .await
        .unwrap();
    hub.flush().await.unwrap();
    let url = format!("nats://127.0.0.1:{leaf_port}");
    let inbox =
        protocol::subjects::edge_inbox_prefix(&protocol::EdgeId::new("edge-a".to_owned()).unwrap());
    let (anonymous, stranger, forged_sent) = site
        .run_inside(|| async move {
            let anonymous = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(3))
                .connect(&url)
                .await
                .is_ok();
            let stranger =
                async_nats::ConnectOptions::with_nkey(nkeys::KeyPair::new_user().seed().unwrap())
                    .connection_timeout(Duration::from_secs(3))
                    .connect(&url)
                    .await
                    .is_ok();
            let own = async_nats::ConnectOptions::with_nkey(edge_seed)
                .custom_inbox_prefix(inbox)
                .connect(&url)
                .await
                .expect("the edge's identity connects to its own leaf");
            let forged = json!({
                "edge_id": "edge-b", "url": "http://forged.invalid", "region": "campus-b",
                "capacity": 1000, "sessions": 0, "participants": 0, "accepting": true,
                "public_viewers": {}, "at": chrono::Utc::now()
            });
            let sent = own
                .publish("cls.edge.edge-b.health", forged.to_string().into())
                .await
                .is_ok();
            let _ = own.flush().await;
            (anonymous, stranger, sent)
        })
        .unwrap();
    assert!(!anonymous, "the campus leaf let an anonymous client in");
    assert!(!stranger, "the campus leaf let an unknown nkey in");
    assert!(forged_sent, "the forged heartbeat was not even sent");
    let mut genuine = 0;
    tokio::time::timeout(Duration::from_secs(15), async {
        while genuine < 3 {
            let m = futures::StreamExt::next(&mut heard)
                .await
                .expect("heartbeats");
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_ne!(
                v["url"], "http://forged.invalid",
                "a heartbeat forged in edge-b's name crossed the WAN"
            );
            if m.subject.as_str() != "cls.edge.edge-a.health" {
                continue;
            }
            genuine += 1;
        }
    })
    .await
    .expect("edge-a's own heartbeats cross the WAN");

    // an event for a class homed on another edge (edge-b, on core's side),
    // written by the campus box into its own stream: it crosses the WAN and
    // core refuses it, never ingests it
    let run_b = api
        .lesson_run(&teacher, json!({ "edge_id": "edge-b" }))
        .await
        .unwrap();
    let class_b = api.start(&teacher, &run_b).await.unwrap();
    assert_eq!(class_b.edge_id, "edge-b");
    let sid_b = class_b.id.clone();
    let b_events = wait_until(
        "edge-b's class at core",
        Duration::from_secs(15),
        || async {
            let evs = api.events(&teacher, &sid_b).await.ok()?;
            (!evs.is_empty()).then_some(evs)
        },
    )
    .await
    .unwrap();
    let mut forged = b_events[0].clone();
    let forged_id = uuid::Uuid::now_v7();
    let tenant_b = forged["tenant_id"].as_str().unwrap().to_owned();
    forged["event_id"] = json!(forged_id);
    forged["seq"] = json!(b_events.len() + 1);
    forged["source"] = json!("edge:edge-a");
    let edge_seed = stack.nats_auth.seed("edge-a.local");
    let url = format!("nats://127.0.0.1:{leaf_port}");
    let subject = format!("cls.ev.edge-a.{tenant_b}.{sid_b}");
    site.run_inside(|| async move {
        let own = async_nats::ConnectOptions::with_nkey(edge_seed)
            .custom_inbox_prefix(protocol::subjects::edge_inbox_prefix(
                &protocol::EdgeId::new("edge-a".to_owned()).unwrap(),
            ))
            .connect(&url)
            .await
            .unwrap();
        async_nats::jetstream::with_domain(own, "edge-a")
            .publish(subject, forged.to_string().into())
            .await
            .unwrap()
            .await
            .expect("the box's own stream takes it");
    })
    .unwrap();
    let db = stack.db().await.unwrap();
    let refused: (String, Value) = wait_until(
        "core to refuse the event across the WAN",
        Duration::from_secs(20),
        || async {
            sqlx::query_as(
                "SELECT edge_id, details FROM trust_refusals WHERE kind = 'event' ORDER BY id",
            )
            .fetch_optional(&db)
            .await
            .ok()?
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(refused.0, "edge-a");
    assert_eq!(refused.1["home_edge"], "edge-b", "{}", refused.1);
    assert_eq!(refused.1["event_id"], json!(forged_id));
    let ids: Vec<String> = api
        .events(&teacher, &sid_b)
        .await
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.contains(&forged_id.to_string()), "ingested: {ids:?}");

    // --- the WAN goes down; the campus LAN stays up
    let segments_before = api
        .events(&teacher, &sid)
        .await
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "recording.segment")
        .count() as u32;
    site.cut_wan().unwrap();
    let mut acked = 0;
    let mut last_seq = 0;
    for round in 0..4 {
        for (i, st) in students.iter().enumerate() {
            let (s, v) = edge_post(
                &stack,
                format!("{edge_url}/sessions/{sid}/chat"),
                &st.join_token,
                json!({ "text": format!("round {round} from student {i}, WAN down") }),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            acked += 1;
            last_seq = v["seq"].as_i64().unwrap_or(last_seq);
        }
        let (s, v) = edge_post(
            &stack,
            format!("{edge_url}/sessions/{sid}/slides"),
            &teacher_seat.join_token,
            json!({ "deck_id": deck_id, "index": (round + 1) % 3 }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        acked += 1;
        last_seq = v["seq"].as_i64().unwrap();
    }
    // the class goes on until a segment has closed while S3 is away (its
    // upload waits for the WAN): the recorder has opened the one after the
    // segment that was open at the cut (`segN.mp4.part`, sealed on upload)
    let spool = stack.dir.path().join("edge-a").join("spool");
    wait_until(
        "a segment to close with the WAN down",
        Duration::from_secs(40),
        || async {
            walk(&spool)
                .iter()
                .filter_map(|p| {
                    let name = p.file_name()?.to_str()?;
                    name.strip_prefix("seg")?
                        .split('.')
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .any(|i| i >= segments_before + 2)
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let during = api.events(&teacher, &sid).await.unwrap();
    assert!(
        during.len() <= before_cut + 1,
        "nothing crossed the cut WAN ({} events before, {} during)",
        before_cut,
        during.len()
    );
    assert!(acked >= 16);

    // --- the WAN comes back
    site.restore_wan().unwrap();
    let events = wait_until(
        "core to receive every event acknowledged during the cut",
        Duration::from_secs(90),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.last()?["seq"].as_i64()? >= last_seq).then_some(evs)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let chats = events
        .iter()
        .filter(|e| e["type"] == "chat.message")
        .filter(|e| e.to_string().contains("WAN down"))
        .count();
    assert_eq!(chats, 12, "every chat acknowledged during the cut arrived");

    // end the class through core (core reaches the edge again)
    let (s, v) = wait_until(
        "core to reach the edge again",
        Duration::from_secs(30),
        || async {
            let (s, v) = api
                .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
                .await
                .ok()?;
            (s == StatusCode::OK).then_some((s, v))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec = wait_until(
        "the recording to be finalized in core",
        Duration::from_secs(90),
        || async {
            let (s, v) = api
                .get(&format!("/sessions/{sid}/recording"), &teacher)
                .await
                .ok()?;
            (s == StatusCode::OK && v["status"] == "finalized").then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));

    // every event once, in order
    let events = api.events(&teacher, &sid).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "in order, no gap"
    );
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "no duplicate");

    // the recording is whole: no gap, and every segment is in the bucket,
    // byte for byte what the edge announced
    assert_eq!(
        rec["gaps"].as_array().map(Vec::len),
        Some(0),
        "the cut WAN cost no recording: {rec}"
    );
    let seg_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "recording.segment")
        .collect();
    assert!(seg_events.len() >= 4, "{} segments", seg_events.len());
    let tenant = events[0]["tenant_id"].as_str().unwrap();
    let objects = garage
        .list(core_key, &format!("recordings/{tenant}/{sid}"))
        .await
        .unwrap();
    // every segment is in the bucket, sealed to the tenant's key: what the
    // campus's own S3 key reads back is not an MP4
    for e in &seg_events {
        let key = e["payload"]["object_key"].as_str().unwrap();
        let sealed = hosting::sealed::sealed_len(e["payload"]["bytes"].as_u64().unwrap());
        assert!(
            objects.iter().any(|(k, n)| k == key && *n == sealed),
            "{key} ({sealed} bytes sealed) is not in the bucket: {objects:?}"
        );
    }
    let first_key = seg_events[0]["payload"]["object_key"].as_str().unwrap();
    let reader = garage.key("bucket-reader").await.unwrap();
    let raw = garage.get(&reader, first_key).await.unwrap();
    assert_eq!(&raw[..8], hosting::sealed::MAGIC);
    assert!(
        !raw.windows(4).any(|w| w == b"ftyp"),
        "a campus key reads a plain MP4 out of the bucket"
    );
    let dir = tempfile::tempdir().unwrap();
    for s in rec["segments"].as_array().unwrap().iter().take(2) {
        let r = api
            .http
            .get(s["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            media_check::sha256_hex(&bytes),
            s["sha256"].as_str().unwrap()
        );
    }
    // the whole class as one file: made by core's joiner after the
    // recording was finalized (no one has asked for it yet), then served
    // out of the bucket
    let mp4_key = format!("recordings/{tenant}/{sid}/recording.mp4");
    wait_until(
        "the joiner to store the one-file MP4",
        Duration::from_secs(60),
        || async {
            let objects = garage
                .list(core_key, &format!("recordings/{tenant}/{sid}"))
                .await
                .ok()?;
            objects.iter().any(|(k, _)| *k == mp4_key).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let joined = dir.path().join("recording.mp4");
    let whole = api
        .bytes_when_ready(rec["url"].as_str().unwrap())
        .await
        .unwrap();
    std::fs::write(&joined, &whole).unwrap();
    // a seek: a byte range, streamed out of the bucket
    let r = api
        .http
        .get(rec["url"].as_str().unwrap())
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.bytes().await.unwrap()[..], &whole[1000..2000]);
    let duration = media_check::duration_s(&joined).await.unwrap();
    // the segments tile the recording with no hole (the cut cost nothing),
    // and the joined file is that long
    let mut at = 0;
    for e in &seg_events {
        assert_eq!(e["payload"]["start_ms"].as_u64(), Some(at), "{}", e);
        at = e["payload"]["end_ms"].as_u64().unwrap();
    }
    let finalized = events
        .iter()
        .find(|e| e["type"] == "recording.finalized")
        .unwrap();
    assert_eq!(finalized["payload"]["duration_ms"].as_u64(), Some(at));
    assert!(
        (duration - at as f64 / 1000.0).abs() <= 0.5,
        "joined {duration:.2}s vs segments {at} ms"
    );
    // and it covers the class: from start to end less the recorder's arming
    // (0.65 s when this test was written) and what a debug-build composer on
    // a loaded two-core box falls behind real time (up to a tenth here, with
    // Garage, two edges and their leaves on the same cores; the real-time
    // figure is bench-recorder's business)
    let started = events
        .iter()
        .find(|e| e["type"] == "session.started")
        .unwrap();
    let ended = events
        .iter()
        .find(|e| e["type"] == "session.ended")
        .unwrap();
    let t = |e: &Value| {
        chrono::DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let class = (t(ended) - t(started)) as f64 / 1000.0;
    assert!(
        duration <= class + 0.5 && duration >= class * 0.8,
        "recording {duration:.2}s vs class {class:.2}s"
    );

    // no shared filesystem: nothing of the recording sits in a directory
    // core could have read
    let stray: Vec<_> = walk(stack.dir.path())
        .into_iter()
        .filter(|p| {
            let s = p.display().to_string();
            s.ends_with(".mp4") && !s.contains("/spool/") && !s.contains("/garage/")
        })
        .collect();
    assert!(stray.is_empty(), "segments outside S3: {stray:?}");
    // a renewed certificate is taken up on SIGHUP: the edge keeps running
    // (its classes with it) and keeps answering over HTTPS
    let pid = stack.edges[0].proc.pid().unwrap().to_string();
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    };
    assert!(kill("-HUP"));
    wait_until(
        "the edge to answer after SIGHUP",
        Duration::from_secs(10),
        || async {
            let r = api
                .http
                .get(format!("{edge_url}/healthz"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await
    .unwrap();
    assert!(kill("-0"), "SIGHUP ended the edge");
    stack.shutdown().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
