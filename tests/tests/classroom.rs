//! The live classroom: studio state, interaction and safety controls,
//! through core's API and through the edge alone (campus clients), with the
//! live feed.

use std::time::Duration;

use classroom_tests::feed::Feed;
use classroom_tests::{Session, Stack, StackOptions, pdf};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

struct Class {
    stack: Stack,
    teacher: String,
    session: Session,
    /// (access token, join answer) per student
    students: Vec<(String, classroom_tests::api::Joined)>,
    teacher_seat: classroom_tests::api::Joined,
}

impl Class {
    async fn start(n: usize) -> Class {
        let stack = Stack::start(StackOptions::default()).await.unwrap();
        let teacher = stack.api.login("teacher@demo.test").await.unwrap();
        let session = stack.api.start_class(&teacher).await.unwrap();
        let mut students = Vec::new();
        for i in 1..=n {
            let tok = stack
                .api
                .login(&format!("student{i}@demo.test"))
                .await
                .unwrap();
            let j = stack.api.join(&tok, &session.id).await.unwrap();
            students.push((tok, j));
        }
        let teacher_seat = stack.api.join(&teacher, &session.id).await.unwrap();
        Class {
            stack,
            teacher,
            session,
            students,
            teacher_seat,
        }
    }

    fn core(&self, path: &str) -> String {
        format!("/sessions/{}{path}", self.session.id)
    }

    fn edge(&self, path: &str) -> String {
        format!(
            "{}/sessions/{}{path}",
            self.session.edge_url, self.session.id
        )
    }

    async fn state(&self) -> Value {
        let (s, v) = self
            .stack
            .api
            .get(&self.core("/state"), &self.teacher)
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decks_slides_and_scenes() {
    let c = Class::start(1).await;
    let api = &c.stack.api;
    let deck_pdf = pdf::pages(&["Photosynthesis", "Light reactions", "The Calvin cycle"]);

    // bad uploads
    let (s, v) = api
        .post_raw(
            "/decks",
            Some(&c.teacher),
            "application/pdf",
            b"not a pdf".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_pdf"));
    let (s, v) = api
        .post_raw(
            "/decks",
            Some(&c.teacher),
            "application/pdf",
            b"%PDF-1.4 garbage".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_pdf"));
    let (s, v) = api
        .post_raw("/decks", Some(&c.teacher), "text/plain", deck_pdf.clone())
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "unsupported_content_type")
    );
    let (s, _) = api
        .post_raw(
            "/decks",
            Some(&c.students[0].0),
            "application/pdf",
            deck_pdf.clone(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, deck) = api
        .post_raw("/decks", Some(&c.teacher), "application/pdf", deck_pdf)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{deck}");
    assert_eq!(deck["page_count"], 3);
    let pages = deck["pages"].as_array().unwrap();
    assert!(
        pages[1]["text"]
            .as_str()
            .unwrap()
            .contains("Light reactions")
    );
    assert_eq!(deck["title"], "Photosynthesis");
    let img = api
        .http
        .get(pages[2]["image_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(img.status(), StatusCode::OK);
    let bytes = img.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a rendered page image");
    // a URL signed for page 2 does not open page 1
    let forged = pages[2]["image_url"]
        .as_str()
        .unwrap()
        .replace("/pages/2.png", "/pages/1.png");
    assert_eq!(
        api.http.get(forged).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let deck_id = deck["id"].as_str().unwrap();
    // slides need a slide before the slides scene
    let (s, v) = api
        .post(&c.core("/scene"), &c.teacher, json!({ "scene": "slides" }))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "scene_source_missing")
    );
    let (s, v) = api
        .post(
            &c.core("/slides"),
            &c.teacher,
            json!({ "deck_id": deck_id, "index": 3 }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "slide_out_of_range")
    );
    let (s, v) = api
        .post(
            &c.core("/slides"),
            &c.teacher,
            json!({ "deck_id": uuid::Uuid::now_v7(), "index": 0 }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "deck_not_found"));
    let (s, v) = api
        .post(
            &c.core("/slides"),
            &c.teacher,
            json!({ "deck_id": deck_id, "index": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api
        .post(&c.core("/scene"), &c.teacher, json!({ "scene": "slides" }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    // another tenant cannot use our deck
    let other = api.login("teacher@other.test").await.unwrap();
    let (s, _) = api.get(&format!("/decks/{deck_id}"), &other).await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);

    // the campus teacher drives slides on the edge directly (the edge learnt
    // the deck when it was uploaded)
    let (s, v) = api
        .post(
            &c.edge("/slides"),
            &c.teacher_seat.join_token,
            json!({ "deck_id": deck_id, "index": 2 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .post(
            &c.edge("/slides"),
            &c.students[0].1.join_token,
            json!({ "deck_id": deck_id, "index": 0 }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("control_scene"))
    );
    let (s, _) = api
        .post(
            &c.edge("/layout"),
            &c.teacher_seat.join_token,
            json!({ "layout": "pip" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(
            &c.edge("/whiteboard/strokes"),
            &c.teacher_seat.join_token,
            json!({ "color": "#ff0000", "width": 4, "points": [[10, 10], [9000, 9000]] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.edge("/whiteboard/strokes"),
            &c.teacher_seat.join_token,
            json!({ "color": "red", "width": 4, "points": [[1, 1]] }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_color"));
    let (s, v) = api
        .post(
            &c.edge("/whiteboard/strokes"),
            &c.students[0].1.join_token,
            json!({ "color": "#000000", "width": 1, "points": [[1, 1]] }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("whiteboard"))
    );

    let st = c.state().await;
    assert_eq!(st["scene"], "slides");
    assert_eq!(st["slide"]["index"], 2);
    assert_eq!(st["slide"]["page_count"], 3);
    assert_eq!(st["layout"], "pip");
    assert_eq!(st["whiteboard"].as_array().unwrap().len(), 1);
    let (s, _) = api
        .post(&c.core("/whiteboard/clear"), &c.teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(c.state().await["whiteboard"].as_array().unwrap().is_empty());
    c.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_questions_polls_hands_notes_and_ctas() {
    let c = Class::start(3).await;
    let api = &c.stack.api;
    let (a, b, d) = (&c.students[0], &c.students[1], &c.students[2]);

    // chat through core and through the edge; bad input changes nothing
    let (s, m) = api
        .post(&c.core("/chat"), &a.0, json!({ "text": "hello via core" }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{m}");
    let (s, m2) = api
        .post(
            &c.edge("/chat"),
            &b.1.join_token,
            json!({ "text": "hello via the edge" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{m2}");
    for (body, status, want) in [
        (json!({ "text": "" }), StatusCode::BAD_REQUEST, "empty_text"),
        (
            json!({ "text": "x".repeat(10_000) }),
            StatusCode::BAD_REQUEST,
            "text_too_long",
        ),
        (
            json!({ "text": 42 }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({ "text": "this is darn annoying" }),
            StatusCode::BAD_REQUEST,
            "blocked_content",
        ),
        (
            json!({ "text": "visit https://evil.example now" }),
            StatusCode::FORBIDDEN,
            "links_not_allowed",
        ),
    ] {
        let (s, v) = api
            .post(&c.core("/chat"), &a.0, body.clone())
            .await
            .unwrap();
        assert_eq!((s, code(&v)), (status, want), "{body}");
    }
    // teachers may post links
    let (s, _) = api
        .post(
            &c.core("/chat"),
            &c.teacher,
            json!({ "text": "read https://school.test/notes" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    // a moderator deletes a message; a student cannot delete another's
    let mid = m["message_id"].as_str().unwrap();
    let (s, v) = api
        .delete(&c.core(&format!("/chat/{mid}")), &b.0)
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("moderate"))
    );
    let (s, _) = api
        .delete(&c.core(&format!("/chat/{mid}")), &c.teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // Q&A: ordered by votes, upvote once, answer and dismiss by moderators
    let (_, q1) = api
        .post(
            &c.core("/questions"),
            &a.0,
            json!({ "text": "first question?" }),
        )
        .await
        .unwrap();
    let (_, q2) = api
        .post(
            &c.edge("/questions"),
            &b.1.join_token,
            json!({ "text": "second question?" }),
        )
        .await
        .unwrap();
    let (q1, q2) = (
        q1["question_id"].as_str().unwrap().to_owned(),
        q2["question_id"].as_str().unwrap().to_owned(),
    );
    let (s, _) = api
        .post(&c.core(&format!("/questions/{q2}/upvote")), &a.0, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(
            &c.edge(&format!("/questions/{q2}/upvote")),
            &d.1.join_token,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(&c.core(&format!("/questions/{q2}/upvote")), &a.0, json!({}))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "already_upvoted"));
    let (s, v) = api
        .post(
            &c.core(&format!("/questions/{}/upvote", uuid::Uuid::now_v7())),
            &a.0,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "question_not_found"));
    let st = c.state().await;
    let order: Vec<&str> = st["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["question_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec![q2.as_str(), q1.as_str()], "most upvoted first");
    assert_eq!(st["questions"][0]["votes"], 2);
    let (s, v) = api
        .post(&c.core(&format!("/questions/{q1}/answer")), &a.0, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("moderate"))
    );
    let (s, _) = api
        .post(
            &c.core(&format!("/questions/{q2}/answer")),
            &c.teacher,
            json!({ "text": "chlorophyll" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(
            &c.edge(&format!("/questions/{q1}/dismiss")),
            &c.teacher_seat.join_token,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // polls: one vote each, unknown option, closed poll, results
    let (s, v) = api
        .post(
            &c.core("/polls"),
            &c.teacher,
            json!({ "question": "Best pigment?", "options": ["chlorophyll"] }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_options"));
    let (s, p) = api.post(&c.core("/polls"), &c.teacher, json!({ "question": "Best pigment?", "options": ["chlorophyll", "carotene"], "correct_option": 0 })).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{p}");
    let pid = p["poll_id"].as_str().unwrap();
    let (s, _) = api
        .post(
            &c.core(&format!("/polls/{pid}/vote")),
            &a.0,
            json!({ "option": 0 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(
            &c.edge(&format!("/polls/{pid}/vote")),
            &b.1.join_token,
            json!({ "option": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.core(&format!("/polls/{pid}/vote")),
            &a.0,
            json!({ "option": 1 }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "already_voted"));
    let (s, v) = api
        .post(
            &c.core(&format!("/polls/{pid}/vote")),
            &d.0,
            json!({ "option": 7 }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "unknown_option"));
    // students do not see results while the poll is open
    let (_, sv) = api.get(&c.core("/state"), &d.0).await.unwrap();
    assert!(sv["open_polls"][0]["results"].is_null(), "{sv}");
    let (s, closed) = api
        .post(
            &c.core(&format!("/polls/{pid}/close")),
            &c.teacher,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{closed}");
    let votes: Vec<i64> = closed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["votes"].as_i64().unwrap())
        .collect();
    assert_eq!(votes, vec![1, 1]);
    let (s, v) = api
        .post(
            &c.core(&format!("/polls/{pid}/vote")),
            &d.0,
            json!({ "option": 0 }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "poll_closed"));

    // another session's ids are unknown here
    let other = api.start_class(&c.teacher).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{}/polls/{pid}/close", other.id),
            &c.teacher,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "poll_not_found"));
    let (s, v) = api
        .post(
            &format!("/sessions/{}/questions/{q2}/answer", other.id),
            &c.teacher,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "question_not_found"));
    // a join token for one session is refused by another
    let (s, v) = api
        .post(
            &format!("{}/sessions/{}/chat", c.session.edge_url, other.id),
            &a.1.join_token,
            json!({ "text": "hi" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_session"));

    // hands, notes (private), CTAs
    let (s, _) = api
        .post(&c.edge("/hands"), &a.1.join_token, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(
            &c.core("/notes"),
            &a.0,
            json!({ "text": "ask about chlorophyll" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (_, mine) = api.get(&c.edge("/state"), &a.1.join_token).await.unwrap();
    let (_, theirs) = api.get(&c.edge("/state"), &b.1.join_token).await.unwrap();
    assert_eq!(mine["notes"].as_array().unwrap().len(), 1);
    assert!(
        theirs["notes"].as_array().unwrap().is_empty(),
        "notes are private"
    );
    let (s, cta) = api
        .post(
            &c.core("/ctas"),
            &c.teacher,
            json!({ "url": "https://school.test/quiz", "label": "Quiz" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.core("/ctas"),
            &c.teacher,
            json!({ "url": "javascript:alert(1)", "label": "x" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_url"));
    let st = c.state().await;
    assert_eq!(st["hands"].as_array().unwrap().len(), 1);
    assert_eq!(st["ctas"][0]["url"], "https://school.test/quiz");
    // any page can show the CTA as a QR code
    let qr = api
        .http
        .get(format!(
            "{}/qr.svg?data=https://school.test/quiz",
            c.stack.core_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status(), StatusCode::OK);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.text().await.unwrap().contains("<svg"));
    let (s, _) = api
        .delete(
            &c.core(&format!("/ctas/{}", cta["cta_id"].as_str().unwrap())),
            &c.teacher,
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(c.state().await["ctas"].as_array().unwrap().is_empty());
    c.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_controls_act_at_once() {
    let c = Class::start(3).await;
    let api = &c.stack.api;
    let (a, b) = (&c.students[0], &c.students[1]);

    // per-participant rate limit on the edge: 429 with Retry-After, others unaffected
    let mut limited = None;
    for i in 0..20 {
        let resp = api
            .http
            .post(c.edge("/chat"))
            .bearer_auth(&a.1.join_token)
            .json(&json!({ "text": format!("spam {i}") }))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("a flood is rate limited");
    assert!(limited.headers().get("retry-after").is_some());
    let (s, _) = api
        .post(
            &c.edge("/chat"),
            &b.1.join_token,
            json!({ "text": "i am fine" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "another participant is not limited");

    // the same limit through core: the session's writer applies it, so a
    // burst that comes in over NATS is cut like one at the edge
    let c3 = &c.students[2];
    let (mut accepted, mut refused, mut retry_after) = (0, 0, None);
    for i in 0..60 {
        let resp = api
            .http
            .post(format!("{}{}", c.stack.core_url, c.core("/chat")))
            .bearer_auth(&c3.0)
            .json(&json!({ "text": format!("burst through core {i}") }))
            .send()
            .await
            .unwrap();
        match resp.status() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                retry_after = retry_after.or_else(|| {
                    resp.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                });
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
            }
            other => panic!("chat through core answered {other}"),
        }
    }
    assert!(
        (8..=12).contains(&accepted) && refused == 60 - accepted,
        "a burst of 60 through core: {accepted} accepted, {refused} refused"
    );
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After on a 429");
    let in_log = api
        .events(&c.teacher, &c.session.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"] == "chat.message"
                && e["payload"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("burst through core"))
        })
        .count();
    assert_eq!(
        in_log, accepted,
        "every accepted message, and only those, is in the log"
    );

    // chat kill switch: refused within the same request cycle, released again
    let (s, _) = api
        .post(
            &c.core("/kill-switch"),
            &c.teacher,
            json!({ "switch": { "kind": "chat" }, "engaged": true }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.edge("/chat"),
            &b.1.join_token,
            json!({ "text": "hello?" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "chat_disabled"));
    let (s, v) = api
        .post(
            &c.core("/kill-switch"),
            &a.0,
            json!({ "switch": { "kind": "chat" }, "engaged": false }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("kill_switch"))
    );
    let (s, _) = api
        .post(
            &c.core("/kill-switch"),
            &c.teacher,
            json!({ "switch": { "kind": "chat" }, "engaged": false }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // exam mode: chat and Q&A off, screen scene refused
    let (s, _) = api
        .post(
            &c.edge("/exam-mode"),
            &c.teacher_seat.join_token,
            json!({ "enabled": true }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.core("/questions"),
            &b.0,
            json!({ "text": "answer to q3?" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "exam_mode"));
    let (s, v) = api
        .post(&c.core("/chat"), &b.0, json!({ "text": "psst" }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "exam_mode"));
    // screen sharing is restricted too, even for the teacher
    let resp = api
        .http
        .post(format!(
            "{}/whip/{}?source=screen",
            c.session.edge_url, c.session.id
        ))
        .bearer_auth(&c.teacher_seat.join_token)
        .header("content-type", "application/sdp")
        .body("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&resp.json::<Value>().await.unwrap()), "exam_mode");
    let (s, _) = api
        .post(
            &c.edge("/exam-mode"),
            &c.teacher_seat.join_token,
            json!({ "enabled": false }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // mute, lock, remove
    let (s, _) = api
        .post(
            &c.core("/mute"),
            &c.teacher,
            json!({ "participant_id": b.1.participant_id, "media": "audio" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .post(&c.core("/lock"), &c.teacher, json!({ "locked": true }))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let late = api.login("student9@demo.test").await.unwrap();
    let (s, v) = api.post(&c.core("/join"), &late, json!({})).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "room_locked"));
    let (s, _) = api
        .post(
            &c.core("/remove"),
            &c.teacher,
            json!({ "participant_id": b.1.participant_id }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .post(
            &c.edge("/chat"),
            &b.1.join_token,
            json!({ "text": "still here?" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "removed"));
    let (s, v) = api.post(&c.core("/join"), &b.0, json!({})).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "removed"));
    // students cannot moderate
    let (s, v) = api
        .post(
            &c.core("/remove"),
            &a.0,
            json!({ "participant_id": c.teacher_seat.participant_id }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("moderate"))
    );
    // consent is one's own
    let (s, _) = api
        .post(
            &c.edge("/consent"),
            &a.1.join_token,
            json!({ "recording": false }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    let st = c.state().await;
    assert_eq!(st["locked"], true);
    let parts = st["participants"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .all(|p| p["participant_id"] != b.1.participant_id.as_str()),
        "removed"
    );
    let pa = parts
        .iter()
        .find(|p| p["participant_id"] == a.1.participant_id.as_str())
        .unwrap();
    assert_eq!(pa["recording_consent"], false);
    c.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_resumes_without_gap_or_duplicate() {
    let c = Class::start(2).await;
    let api = &c.stack.api;
    let (a, b) = (&c.students[0], &c.students[1]);
    let mut feed = Feed::connect(&c.session.edge_url, &c.session.id, &a.1.join_token, None)
        .await
        .unwrap();
    let snap = feed
        .next(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no snapshot\n{}", c.stack.logs()));
    assert_eq!(snap["kind"], "snapshot");
    let start_seq = snap["seq"].as_i64().unwrap();
    assert_eq!(snap["state"]["participants"].as_array().unwrap().len(), 3);

    let (_, v) = api
        .post(&c.edge("/chat"), &b.1.join_token, json!({ "text": "one" }))
        .await
        .unwrap();
    let s1 = v["seq"].as_i64().unwrap();
    let got = feed.events_until(s1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (start_seq + 1..=s1).collect::<Vec<_>>()
    );
    assert_eq!(got.last().unwrap()["payload"]["text"], "one");

    // the feed drops; the class goes on
    feed.drop_connection();
    let mut last = s1;
    for t in ["two", "three", "four"] {
        let (_, v) = api
            .post(&c.core("/chat"), &b.0, json!({ "text": t }))
            .await
            .unwrap();
        last = v["seq"].as_i64().unwrap();
    }
    // b's private note must not reach a
    let (_, v) = api
        .post(
            &c.edge("/notes"),
            &b.1.join_token,
            json!({ "text": "b's secret" }),
        )
        .await
        .unwrap();
    let note_seq = v["seq"].as_i64().unwrap();
    let (_, v) = api
        .post(&c.edge("/hands"), &b.1.join_token, json!({}))
        .await
        .unwrap();
    last = v["seq"].as_i64().unwrap().max(last);

    let mut feed = Feed::connect(
        &c.session.edge_url,
        &c.session.id,
        &a.1.join_token,
        Some(s1),
    )
    .await
    .unwrap();
    let resumed = feed
        .events_until(last, Duration::from_secs(5))
        .await
        .unwrap();
    let seqs: Vec<i64> = resumed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let want: Vec<i64> = (s1 + 1..=last).filter(|s| *s != note_seq).collect();
    assert_eq!(
        seqs, want,
        "every missed event once, in order, minus others' private notes"
    );
    assert_eq!(resumed[0]["payload"]["text"], "two");

    // live events keep flowing after the resume, and a snapshot on request
    let (_, v) = api
        .post(&c.edge("/chat"), &b.1.join_token, json!({ "text": "five" }))
        .await
        .unwrap();
    let s5 = v["seq"].as_i64().unwrap();
    let more = feed.events_until(s5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(more.len(), 1);
    feed.request_snapshot().await.unwrap();
    let snap = loop {
        let m = feed.next(Duration::from_secs(5)).await.unwrap();
        if m["kind"] == "snapshot" {
            break m;
        }
    };
    assert_eq!(snap["seq"].as_i64(), Some(s5));
    assert_eq!(
        snap["state"]["notes"].as_array().unwrap().len(),
        0,
        "a's snapshot has no notes of b"
    );

    // snapshot requests have a budget per connection (three at once, one
    // more every 5 s; the first request above took one, a few seconds
    // ago): a burst of ten gets two or three answers, not ten, and the feed
    // stays open
    for _ in 0..10 {
        feed.request_snapshot().await.unwrap();
    }
    let mut snapshots = 0;
    while let Some(m) = feed.next(Duration::from_millis(1500)).await {
        if m["kind"] == "snapshot" {
            snapshots += 1;
        }
    }
    assert!(
        (2..=3).contains(&snapshots),
        "a burst of snapshot requests is cut: {snapshots} answered"
    );
    let (_, v) = api
        .post(&c.edge("/chat"), &b.1.join_token, json!({ "text": "six" }))
        .await
        .unwrap();
    let s6 = v["seq"].as_i64().unwrap();
    assert_eq!(
        feed.events_until(s6, Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1,
        "the feed goes on"
    );
    // a client message larger than the feed takes closes that connection
    // (a well-behaved one stays open)
    let connect = || Feed::connect(&c.session.edge_url, &c.session.id, &a.1.join_token, None);
    let mut polite = connect().await.unwrap();
    polite.request_snapshot().await.unwrap();
    assert!(!polite.closed_within(Duration::from_secs(1)).await);
    let mut rude = connect().await.unwrap();
    rude.send_text(format!(
        r#"{{"type":"snapshot","pad":"{}"}}"#,
        "x".repeat(4096)
    ))
    .await
    .unwrap();
    assert!(
        rude.closed_within(Duration::from_secs(5)).await,
        "an oversized client message ends the feed"
    );

    // a feed without a token, or with a foreign one, is refused
    let resp = api
        .http
        .get(format!(
            "{}/sessions/{}/live",
            c.session.edge_url, c.session.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .http
        .get(format!(
            "{}/sessions/{}/live?token=forged",
            c.session.edge_url, c.session.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // when the class ends the feed says so
    let (s, _) = api
        .post(&c.core("/end"), &c.teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    let mut saw_end = false;
    while let Some(m) = feed.next(Duration::from_secs(5)).await {
        if m["kind"] == "event" && m["event"]["type"] == "session.ended" {
            saw_end = true;
        }
        if m["kind"] == "closed" {
            break;
        }
    }
    assert!(saw_end);
    c.stack.shutdown().await;
}
