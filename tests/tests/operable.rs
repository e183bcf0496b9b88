//! Core, the edge and the relay are operable: each serves Prometheus text
//! at `/metrics` (well-formed, with the requests, the event path, media and
//! relay figures a class leaves behind), `/livez` and `/readyz`; an edge
//! whose NATS leaf is down reports not ready (503, naming what fails) and
//! ready again once it is back.

use std::time::Duration;

use classroom_tests::{Stack, StackOptions, wait_until};
use protocol::metrics::parse;
use reqwest::StatusCode;
use serde_json::json;

async fn scrape(http: &reqwest::Client, base: &str) -> Vec<(String, f64)> {
    let resp = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{base}/metrics");
    let ct = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{base}/metrics is not exposition: {e}\n{text}"))
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| {
            let names: Vec<&str> = samples.iter().map(|(k, _)| k.as_str()).collect();
            panic!("no {series} in {names:#?}")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_tell_how_each_service_is_doing() {
    let mut stack = Stack::start(StackOptions {
        relay: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let class = api.start_class(&teacher).await.unwrap();
    let seat = api.join(&student, &class.id).await.unwrap();
    // two chats through core, one straight at the edge with the join token
    for text in ["one", "two"] {
        let (s, v) = api
            .post(
                &format!("/sessions/{}/chat", class.id),
                &student,
                json!({ "text": text }),
            )
            .await
            .unwrap();
        assert!(s.is_success(), "{v}");
    }
    let resp = http
        .post(format!("{}/sessions/{}/chat", seat.edge_url, class.id))
        .bearer_auth(&seat.join_token)
        .json(&json!({ "text": "three" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // core: its requests by route and status, timed; its dependencies
    let core = scrape(&http, &stack.core_url).await;
    assert!(
        value(
            &core,
            "classroom_core_http_requests_total{method=\"POST\",route=\"/sessions/{id}/chat\",status=\"200\"}"
        ) >= 2.0
    );
    assert!(
        value(
            &core,
            "classroom_core_http_request_duration_seconds_count{route=\"/sessions/{id}/chat\"}"
        ) >= 2.0
    );
    assert_eq!(
        value(&core, "classroom_core_dependency_up{dependency=\"db\"}"),
        1.0
    );
    assert_eq!(
        value(&core, "classroom_core_dependency_up{dependency=\"nats\"}"),
        1.0
    );
    assert!(
        core.iter()
            .any(|(k, _)| k.starts_with("classroom_trust_refusals_total{")),
        "the trust boundary's refusals are still there"
    );

    // the edge: the event path (the class's events are durable), media,
    // its own requests
    let edge_url = stack.edge_url("edge-a");
    let edge = scrape(&http, &edge_url).await;
    assert!(value(&edge, "classroom_edge_events_appended_total") >= 5.0);
    assert_eq!(value(&edge, "classroom_edge_live_sessions"), 1.0);
    assert_eq!(
        value(&edge, "classroom_edge_event_append_failures_total"),
        0.0
    );
    assert!(
        value(
            &edge,
            "classroom_edge_http_requests_total{method=\"POST\",route=\"/sessions/{id}/chat\",status=\"200\"}"
        ) >= 1.0
    );
    for dep in ["event_log", "nats", "media", "keys"] {
        assert_eq!(
            value(
                &edge,
                &format!("classroom_edge_dependency_up{{dependency=\"{dep}\"}}")
            ),
            1.0,
            "{dep}"
        );
    }
    value(
        &edge,
        "classroom_edge_media_packets_total{direction=\"in\"}",
    );

    // the relay: its routing figures (the edge keeps a session with it)
    let relay_base = format!("http://127.0.0.1:{}", stack.relay.as_ref().unwrap().port);
    // the edge dials the relay on its own time (a token from core first)
    let relay = wait_until(
        "the edge's session at the relay",
        Duration::from_secs(30),
        || {
            let http = http.clone();
            let base = relay_base.clone();
            async move {
                let relay = scrape(&http, &base).await;
                (value(&relay, "classroom_relay_sessions") >= 1.0).then_some(relay)
            }
        },
    )
    .await
    .unwrap();
    value(&relay, "classroom_relay_objects_total{direction=\"in\"}");
    value(&relay, "classroom_relay_refusals_total");

    // probes: all live and ready
    for base in [&stack.core_url, &edge_url, &relay_base] {
        for probe in ["livez", "readyz"] {
            let r = http.get(format!("{base}/{probe}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{base}/{probe}");
        }
    }

    // the edge's leaf goes down: live, not ready, and says why; back: ready
    stack.edge("edge-a").leaf.proc.kill().await;
    let why = wait_until(
        "the edge to report not ready",
        Duration::from_secs(30),
        || {
            let http = http.clone();
            let url = format!("{edge_url}/readyz");
            async move {
                let r = http.get(&url).send().await.ok()?;
                if r.status() != StatusCode::SERVICE_UNAVAILABLE {
                    return None;
                }
                r.json::<serde_json::Value>().await.ok()
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(why["status"], "not_ready", "{why}");
    assert_eq!(why["nats"], false, "{why}");
    let r = http.get(format!("{edge_url}/livez")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "still alive");
    let edge = scrape(&http, &edge_url).await;
    assert_eq!(
        value(&edge, "classroom_edge_dependency_up{dependency=\"nats\"}"),
        0.0
    );
    stack.edge("edge-a").leaf.restart().await.unwrap();
    wait_until(
        "the edge to be ready again",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let url = format!("{edge_url}/readyz");
            async move {
                let r = http.get(&url).send().await.ok()?;
                (r.status() == StatusCode::OK).then_some(())
            }
        },
    )
    .await
    .unwrap();
}
