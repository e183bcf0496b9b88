//! Identities on every link, against the dev stack's own NATS configs
//! (`core nats-auth`, the dev CA) and real servers: who may connect, what
//! each edge's identity may publish and receive, what core refuses behind
//! that, and which edges a tenant's classes may use.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use classroom_tests::{Stack, StackOptions, pdf, wait_until};
use futures::StreamExt;
use protocol::EdgeId;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

async fn metric(stack: &Stack, kind: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", stack.core_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let needle = format!("classroom_trust_refusals_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {kind} counter in\n{text}"))
}

async fn refusals(db: &sqlx::PgPool, kind: &str) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT edge_id, details FROM trust_refusals WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(db)
        .await
        .unwrap()
}

/// The claims of a JWT, unverified (the test only reads what core put in).
fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_edge_identity_is_kept_to_its_own_subjects() {
    let stack = Stack::start(StackOptions {
        edges: vec!["edge-a", "edge-b"],
        ..Default::default()
    })
    .await
    .unwrap();
    let db = stack.db().await.unwrap();
    let a = EdgeId::new("edge-a".to_owned()).unwrap();

    // no credentials, or an identity the hub does not know: no connection,
    // on the hub or on a leaf
    for url in [stack.hub.url(), stack.edges[0].leaf.url()] {
        let anonymous = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .connect(&url)
            .await;
        assert!(anonymous.is_err(), "{url} let an anonymous client in");
        let stranger = nkeys::KeyPair::new_user().seed().unwrap();
        let forged = async_nats::ConnectOptions::with_nkey(stranger)
            .connection_timeout(Duration::from_secs(3))
            .connect(&url)
            .await;
        assert!(forged.is_err(), "{url} let an unknown nkey in");
    }
    // nor a leaf link with edge-b's name but an identity the hub does not
    // know: it never shows up as a NATS peer (checked below through the
    // heartbeats core sees)

    let hub = stack.hub.client().await.unwrap();
    let on_a = stack.edges[0].leaf.client().await.unwrap();

    // edge-a's identity cannot publish edge-b's heartbeats: core (on the
    // hub) sees edge-b's own ones and never the forged one
    let mut seen = hub.subscribe("cls.edge.edge-b.health").await.unwrap();
    let forged = json!({
        "edge_id": "edge-b", "url": "http://forged.invalid", "region": "campus-b",
        "capacity": 1000, "sessions": 0, "participants": 0, "accepting": true,
        "public_viewers": {}, "at": chrono::Utc::now()
    });
    on_a.publish("cls.edge.edge-b.health", forged.to_string().into())
        .await
        .unwrap();
    on_a.flush().await.unwrap();
    let mut genuine = 0;
    tokio::time::timeout(Duration::from_secs(15), async {
        while genuine < 3 {
            let m = seen.next().await.expect("heartbeats");
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_ne!(
                v["url"], "http://forged.invalid",
                "a forged heartbeat reached the hub"
            );
            genuine += 1;
        }
    })
    .await
    .expect("edge-b's own heartbeats reach the hub");

    // on its own subject but in edge-b's name: refused, counted, kept
    let before = metric(&stack, "heartbeat").await;
    on_a.publish("cls.edge.edge-a.health", forged.to_string().into())
        .await
        .unwrap();
    on_a.flush().await.unwrap();
    let rows = wait_until("the heartbeat refusal", Duration::from_secs(10), || async {
        let rows = refusals(&db, "heartbeat").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .unwrap();
    assert_eq!(metric(&stack, "heartbeat").await, before + 1);
    assert_eq!(rows[0].0, "edge-a", "the refusal names the sender");
    assert_eq!(rows[0].1["claimed_edge"], "edge-b");
    let (url,): (String,) = sqlx::query_as("SELECT url FROM edges WHERE id = 'edge-b'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        url, stack.edges[1].url,
        "edge-b's registration is untouched"
    );

    // edge-a's identity does not receive edge-b's control requests, so it
    // cannot answer them: edge-b does
    let mut stolen = on_a.subscribe("cls.edge.edge-b.control").await.unwrap();
    on_a.flush().await.unwrap();
    let session = uuid::Uuid::now_v7();
    let req = json!({ "op": "state", "session_id": session });
    let reply = hub
        .request("cls.edge.edge-b.control", req.to_string().into())
        .await
        .expect("edge-b answers its control requests");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("status").is_some(), "{reply}");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stolen.next())
            .await
            .is_err(),
        "edge-a's identity received edge-b's control request"
    );

    // relay tokens: only in its own name
    let in_b_name = tokio::time::timeout(
        Duration::from_secs(3),
        on_a.request(
            "cls.core.relay-token.edge-b",
            json!({"edge_id": "edge-b"}).to_string().into(),
        ),
    )
    .await;
    assert!(
        !matches!(in_b_name, Ok(Ok(_))),
        "edge-a got an answer on edge-b's subject: {in_b_name:?}"
    );
    let before = metric(&stack, "relay_token").await;
    let (token, _) = mesh_client::fetch_token(&on_a, &a).await.unwrap();
    assert_eq!(claims(&token)["sub"], "edge-a");
    let lie = on_a
        .request(
            "cls.core.relay-token.edge-a",
            json!({"edge_id": "edge-b"}).to_string().into(),
        )
        .await
        .unwrap();
    let lie: Value = serde_json::from_slice(&lie.payload).unwrap();
    assert_eq!(lie["error"], "wrong_edge", "{lie}");
    assert_eq!(metric(&stack, "relay_token").await, before + 1);

    // a far edge may ask a home edge for a class's state, as itself only
    let as_a = on_a
        .request(
            "cls.edge.edge-b.state.edge-a",
            json!({ "op": "state", "session_id": session })
                .to_string()
                .into(),
        )
        .await
        .expect("edge-b answers edge-a's state request");
    let as_a: Value = serde_json::from_slice(&as_a.payload).unwrap();
    assert_ne!(as_a["code"], "forbidden", "{as_a}");
    assert!(as_a.get("status").is_some(), "{as_a}");
    let pretending = tokio::time::timeout(
        Duration::from_secs(3),
        on_a.request(
            "cls.edge.edge-b.state.edge-c",
            json!({ "op": "state", "session_id": session })
                .to_string()
                .into(),
        ),
    )
    .await;
    assert!(
        !matches!(pretending, Ok(Ok(_))),
        "edge-a asked in another edge's name and got {pretending:?}"
    );
    // and nothing but state: an abort through the peer subject is refused
    let abort = on_a
        .request(
            "cls.edge.edge-b.state.edge-a",
            json!({ "op": "abort", "session_id": session })
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let abort: Value = serde_json::from_slice(&abort.payload).unwrap();
    assert_eq!(abort["code"], "forbidden", "{abort}");

    // events: a class homed on edge-b; edge-a writes an event for it into
    // its own stream. Core refuses it, audits it, never ingests it.
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let admin = api.login("admin@demo.test").await.unwrap();
    let run = api
        .lesson_run(&teacher, json!({ "edge_id": "edge-b" }))
        .await
        .unwrap();
    let class = api.start(&teacher, &run).await.unwrap();
    assert_eq!(class.edge_id, "edge-b");
    let sid = class.id.clone();
    api.join(&teacher, &sid).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &teacher,
            json!({ "text": "genuine" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let evs = wait_until("the chat at core", Duration::from_secs(15), || async {
        let evs = api.events(&teacher, &sid).await.ok()?;
        evs.iter()
            .any(|e| e["type"] == "chat.message")
            .then_some(evs)
    })
    .await
    .unwrap();
    let tenant = evs[0]["tenant_id"].as_str().unwrap().to_owned();
    let last_seq = evs.iter().filter_map(|e| e["seq"].as_i64()).max().unwrap();
    let hub_js = async_nats::jetstream::with_domain(hub.clone(), "core");
    let stream = hub_js.get_stream("CLASS_EVENTS").await.unwrap();
    let original = stream
        .get_last_raw_message_by_subject(&format!("cls.ev.edge-b.{tenant}.{sid}"))
        .await
        .unwrap();
    let mut ev: Value = serde_json::from_slice(&original.payload).unwrap();
    let forged_id = uuid::Uuid::now_v7();
    ev["event_id"] = json!(forged_id);
    ev["seq"] = json!(last_seq + 1);
    ev["source"] = json!("edge:edge-a");
    ev["type"] = json!("chat.message");
    let js_a = async_nats::jetstream::with_domain(on_a.clone(), "edge-a");
    js_a.publish(
        format!("cls.ev.edge-a.{tenant}.{sid}"),
        ev.to_string().into(),
    )
    .await
    .unwrap()
    .await
    .expect("edge-a's own stream takes it");
    // the same event straight onto core's subject, or on edge-b's: the hub
    // takes neither from edge-a's identity
    ev["event_id"] = json!(uuid::Uuid::now_v7());
    on_a.publish(format!("cls.ev.core.{tenant}.{sid}"), ev.to_string().into())
        .await
        .unwrap();
    on_a.publish(
        format!("cls.ev.edge-b.{tenant}.{sid}"),
        ev.to_string().into(),
    )
    .await
    .unwrap();
    on_a.flush().await.unwrap();
    let rows = wait_until("the event refusal", Duration::from_secs(15), || async {
        let rows = refusals(&db, "event").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "edge-a");
    assert_eq!(rows[0].1["home_edge"], "edge-b");
    assert_eq!(rows[0].1["event_id"], json!(forged_id));
    assert!(metric(&stack, "event").await >= 1);
    // the tenant's admin sees it in the audit log
    let (s, log) = api
        .get("/audit?action=event.refused", &admin)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{log}");
    assert!(
        log.to_string().contains("event.refused"),
        "no audit row: {log}"
    );
    // and the class's record holds only what its home edge wrote: one
    // chat, the genuine one, with later events still flowing
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/chat"),
            &teacher,
            json!({ "text": "after" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let evs = wait_until(
        "the later chat at core",
        Duration::from_secs(15),
        || async {
            let evs = api.events(&teacher, &sid).await.ok()?;
            (evs.iter().filter(|e| e["type"] == "chat.message").count() >= 2).then_some(evs)
        },
    )
    .await
    .unwrap();
    let chats: Vec<&Value> = evs.iter().filter(|e| e["type"] == "chat.message").collect();
    assert_eq!(chats.len(), 2, "{chats:?}");
    assert!(evs.iter().all(|e| e["event_id"] != json!(forged_id)));
    assert!(evs.iter().all(|e| e["source"] != "edge:edge-a"), "{evs:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_campus_edge_serves_only_that_tenant() {
    let stack = Stack::start(StackOptions {
        edges: vec!["edge-a", "edge-b"],
        ..Default::default()
    })
    .await
    .unwrap();
    // edge-a is shared; edge-b is tenant other's campus box
    stack.set_edge_owner("edge-a", None).await.unwrap();
    stack.set_edge_owner("edge-b", Some("other")).await.unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let other_admin = api.login("admin@other.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let other_teacher = api.login("teacher@other.test").await.unwrap();

    // the console lists a tenant's own edges and the shared ones
    let (s, v) = api.get("/edges", &admin).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["edge-a"], "{v}");
    assert!(v["edges"][0]["tenant_id"].is_null());
    let (_, v) = api.get("/edges", &other_admin).await.unwrap();
    let edges = v["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{v}");
    let other_tenant = edges[1]["tenant_id"].as_str().expect("edge-b is owned");
    // the change of owner is in the gaining tenant's audit log
    let (s, log) = api
        .get("/audit?action=edge.owner_changed", &other_admin)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{log}");
    assert!(log.to_string().contains("edge-b"), "{log}");

    // placement: demo's class cannot be put on edge-b, asked or not
    let run = api
        .lesson_run(&teacher, json!({ "edge_id": "edge-b" }))
        .await
        .unwrap();
    let (s, v) = api
        .post("/sessions/start", &teacher, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "edge_unavailable"),
        "{v}"
    );
    for _ in 0..2 {
        let class = api.start_class(&teacher).await.unwrap();
        assert_eq!(
            class.edge_id, "edge-a",
            "demo's classes go to the shared edge"
        );
        let (s, v) = api
            .post(&format!("/sessions/{}/end", class.id), &teacher, json!({}))
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // other's teacher may use its own box
    let run = api
        .lesson_run(&other_teacher, json!({ "edge_id": "edge-b" }))
        .await
        .unwrap();
    let other_class = api.start(&other_teacher, &run).await.unwrap();
    assert_eq!(other_class.edge_id, "edge-b");

    // joining: a demo student cannot come in through edge-b, by name (as if
    // there were no such edge) or by its region (the home edge serves)
    let class = api.start_class(&teacher).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{}/join", class.id),
            &student,
            json!({ "edge_id": "edge-b" }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "unknown_edge"),
        "{v}"
    );
    let joined = api
        .join_with(&student, &class.id, json!({ "region": "campus-b" }))
        .await
        .unwrap();
    assert_eq!(joined.body["edge"]["id"], "edge-a", "{}", joined.body);

    // decks: a demo deck is announced to edge-a, never to edge-b
    let hub = stack.hub.client().await.unwrap();
    let mut to_a = hub.subscribe("cls.edge.edge-a.control").await.unwrap();
    let mut to_b = hub.subscribe("cls.edge.edge-b.control").await.unwrap();
    hub.flush().await.unwrap();
    let deck = pdf::pages(&["Secret page one", "Secret page two"]);
    let deck_id = api.upload_deck(&teacher, deck).await.unwrap();
    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = to_a.next().await.unwrap();
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["op"] == "decks" && v.to_string().contains(&deck_id) {
                return v;
            }
        }
    })
    .await
    .expect("edge-a hears of the deck");
    assert!(announced.to_string().contains("page_urls"));
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), to_b.next()).await {
        assert!(
            !String::from_utf8_lossy(&m.payload).contains(&deck_id),
            "edge-b got demo's deck"
        );
    }

    // relay tokens: edge-b may watch only its tenant's classes and publish
    // only the class it hosts; the shared edge serves everyone
    let (tb, _) = mesh_client::fetch_token(&hub, &EdgeId::new("edge-b".to_owned()).unwrap())
        .await
        .unwrap();
    let cb = claims(&tb);
    assert_eq!(cb["subscribe"], json!([other_tenant]), "{cb}");
    let hosted = cb["publish"].as_array().unwrap();
    assert_eq!(hosted.len(), 1, "{cb}");
    assert!(
        hosted[0].as_str().unwrap().ends_with(&other_class.id),
        "{cb}"
    );
    let (ta, _) = mesh_client::fetch_token(&hub, &EdgeId::new("edge-a".to_owned()).unwrap())
        .await
        .unwrap();
    let ca = claims(&ta);
    assert_eq!(ca["subscribe"], json!(["*"]), "{ca}");
    assert!(
        ca["publish"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().ends_with(&class.id)),
        "{ca}"
    );
    stack.shutdown().await;
}
