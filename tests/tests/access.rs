//! G2 (permissions enforced), identity, tokens and bad input, against the
//! real core: each bad request gets its status and error code, and changes
//! nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use classroom_tests::{Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_cannot_run_a_class_and_tenants_never_meet() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    let other_teacher = api.login("teacher@other.test").await.unwrap();
    let other_student = api.login("student1@other.test").await.unwrap();

    // students cannot create or start
    let (s, v) = api
        .post("/courses", &student, json!({ "title": "Mine" }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "staff_only"));
    let run = api.lesson_run(&teacher, json!({})).await.unwrap();
    let (s, v) = api
        .post("/sessions/start", &student, json!({ "lesson_run_id": run }))
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "staff_only"));

    let session = api.start(&teacher, &run).await.unwrap();
    let sid = &session.id;
    let me = api.join(&student, sid).await.unwrap();

    // a student cannot end, switch scenes or grant themselves permissions;
    // the answer names what is missing
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &student, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "missing_permission"),
        "{v}"
    );
    assert_eq!(v["error"]["missing_permission"], "end_session");
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/scene"),
            &student,
            json!({ "scene": "whiteboard" }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("control_scene"))
    );
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &student,
            json!({ "participant_id": me.participant_id, "grant": ["present"] }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["error"]["missing_permission"].as_str()),
        (StatusCode::FORBIDDEN, Some("manage_permissions"))
    );

    // the teacher grants, and the grant shows at once; a revoke takes it back
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": me.participant_id, "grant": ["present", "speak"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "present")
    );
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": me.participant_id, "revoke": ["present"] }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(
        !v["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "present")
    );
    // a participant of no session, or an unknown permission name
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": uuid::Uuid::now_v7(), "grant": ["chat"] }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "participant_not_found")
    );
    let (s, v) = api
        .post(
            &format!("/sessions/{sid}/permissions"),
            &teacher,
            json!({ "participant_id": me.participant_id, "grant": ["fly"] }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));

    // another tenant sees nothing: every id of ours is a 404 to them
    for path in [
        format!("/sessions/{sid}/state"),
        format!("/sessions/{sid}/events"),
    ] {
        let (s, v) = api.get(&path, &other_teacher).await.unwrap();
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "session_not_found"),
            "{path}"
        );
    }
    for (path, body) in [
        (format!("/sessions/{sid}/join"), json!({})),
        (format!("/sessions/{sid}/end"), json!({})),
        (format!("/sessions/{sid}/chat"), json!({ "text": "hi" })),
    ] {
        let (s, v) = api.post(&path, &other_teacher, body).await.unwrap();
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "session_not_found"),
            "{path}"
        );
    }
    let (s, v) = api
        .post(
            "/sessions/start",
            &other_teacher,
            json!({ "lesson_run_id": run }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "lesson_run_not_found")
    );
    let (_, course) = api.get("/courses", &teacher).await.unwrap();
    let cid = course["courses"][0]["id"].as_str().unwrap();
    let (s, _) = api
        .get(&format!("/courses/{cid}"), &other_teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .post(
            "/lessons",
            &other_teacher,
            json!({ "course_id": cid, "title": "x" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "course_not_found"));
    let (s, _) = api
        .post(&format!("/sessions/{sid}/join"), &other_student, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);

    // unknown and malformed ids
    let (s, v) = api
        .get(
            &format!("/sessions/{}/state", uuid::Uuid::now_v7()),
            &teacher,
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "session_not_found"));
    let (s, v) = api
        .get("/sessions/not-a-uuid/state", &teacher)
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_id"));

    // nothing the refused calls tried changed the log
    let events = api.events(&teacher, sid).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "session.started",
            "roster.set",
            "participant.joined",
            "permission.changed",
            "permission.changed"
        ]
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_and_forgeries_fail() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    // core's signing key is sealed under its KEK at rest; a plain key from
    // before sealing (one this test knows) is sealed in place at the next
    // start and signs from then on
    let key_file = stack.dir.path().join("core/signing-key.pem");
    let sealed = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !sealed.contains("PRIVATE KEY"),
        "the signing key is stored plain: {sealed}"
    );
    let known = ed25519_dalek::SigningKey::from_bytes(&[77u8; 32]);
    {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let pem = known
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&key_file, pem.as_bytes()).unwrap();
    }
    stack.restart_core().await.unwrap();
    let resealed = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !resealed.contains("PRIVATE KEY"),
        "the plain key was not sealed: {resealed}"
    );
    assert_ne!(resealed, sealed);
    let api = &stack.api;

    let (s, v) = api
        .post_raw(
            "/auth/login",
            None,
            "application/json",
            br#"{"email":"teacher@demo.test","password":"wrong"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let (s, v) = api
        .post_raw(
            "/auth/login",
            None,
            "application/json",
            br#"{"email":"nobody@demo.test","password":"wrong"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "unknown and wrong look the same"
    );

    let login = api.login_full("teacher@demo.test").await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    assert!(login["expires_in"].as_i64().unwrap() <= 900);

    // rotation: r1 → r2; r1 is dead
    let refresh = |t: &str| {
        let api = api.clone();
        let body = json!({ "refresh_token": t }).to_string().into_bytes();
        async move {
            api.post_raw("/auth/refresh", None, "application/json", body)
                .await
                .unwrap()
        }
    };
    let (s, v) = refresh(&r1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r2 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let (s, _) = api
        .get("/me", v["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);

    // reuse of r1 revokes the whole family: r2 dies too
    let (s, v) = refresh(&r1).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let (s, v) = refresh(&r2).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
        "the family is revoked"
    );

    // logout revokes its family
    let l2 = api.login_full("teacher@demo.test").await.unwrap();
    let r3 = l2["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = api
        .post_raw(
            "/auth/logout",
            None,
            "application/json",
            json!({ "refresh_token": r3 }).to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = refresh(&r3).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = refresh("rt_made_up").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // JWKS publishes the Ed25519 key that verifies our token
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", stack.core_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    // no token, garbage, alg none, HS256 with the public key, tampered role,
    // expired (signed with core's own key), another issuer's key
    let (s, v) = api.get("/courses", "").await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let resp = api
        .http
        .get(format!("{}/courses", stack.core_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = api.get("/courses", "garbage").await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let parts: Vec<&str> = access.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let (s, _) = api.get("/courses", &none).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "alg none");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0]["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let (s, _) = api.get("/courses", &hs).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "HS256 key confusion");
    claims["role"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let (s, _) = api.get("/edges", &tampered).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered claims");

    let key = known;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let der = key.to_pkcs8_der().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = jwks["keys"][0]["kid"].as_str().map(String::from);
    let mut old: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let past = chrono::Utc::now().timestamp() - 3600;
    old["iat"] = json!(past - 900);
    old["exp"] = json!(past);
    let expired = jsonwebtoken::encode(
        &header,
        &old,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    let (s, v) = api.get("/courses", &expired).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_expired"));
    // a validly signed token of the wrong type (a join token's audience) fails
    let mut wrong_aud = old.clone();
    wrong_aud["exp"] = json!(chrono::Utc::now().timestamp() + 600);
    wrong_aud["aud"] = json!("edge:edge-a");
    let t = jsonwebtoken::encode(
        &header,
        &wrong_aud,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    let (s, _) = api.get("/courses", &t).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "wrong audience");
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let t = jsonwebtoken::encode(
        &header,
        &wrong_aud
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("aud".into(), json!("classroom-api"));
                Value::Object(o)
            })
            .unwrap(),
        &jsonwebtoken::EncodingKey::from_ed_der(stranger.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();
    let (s, _) = api.get("/courses", &t).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "someone else's key");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_bodies_change_nothing() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let db = stack.db().await.unwrap();
    let count = || async {
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM courses")
            .fetch_one(&db)
            .await
            .unwrap()
            .0
    };
    let before = count().await;

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            br#"{"title": 42}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            br#"{"titel": "typo"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            br#"{"title": ""}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_title",
        ),
        (
            "application/json",
            format!(r#"{{"title": "{}"}}"#, "x".repeat(300)).into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_title",
        ),
        (
            "text/plain",
            br#"{"title": "ok"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
        ),
        (
            "application/json",
            format!(r#"{{"title": "{}"}}"#, "x".repeat(100_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (ct, body, status, want) in cases {
        let (s, v) = api
            .post_raw("/courses", Some(&teacher), ct, body)
            .await
            .unwrap();
        assert_eq!((s, code(&v)), (status, want), "{v}");
    }
    assert_eq!(count().await, before, "no refused request created anything");

    // wrong types in session commands
    let session = api.start_class(&teacher).await.unwrap();
    let (s, v) = api
        .post(
            &format!("/sessions/{}/scene", session.id),
            &teacher,
            json!({ "scene": "disco" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (s, v) = api
        .post(
            &format!("/sessions/{}/layout", session.id),
            &teacher,
            json!({ "layout": 3 }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (s, v) = api
        .post(
            "/sessions/start",
            &teacher,
            json!({ "lesson_run_id": "nope" }),
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (s, v) = api
        .get(
            &format!("/sessions/{}/events?after=-1", session.id),
            &teacher,
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, v) = api
        .get(
            &format!("/sessions/{}/events?after=abc", session.id),
            &teacher,
        )
        .await
        .unwrap();
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, v) = api.get("/no/such/route", &teacher).await.unwrap();
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "route_not_found"));

    let events = api.events(&teacher, &session.id).await.unwrap();
    assert_eq!(
        events.len(),
        2,
        "only session.started and roster.set: {events:?}"
    );

    // the OpenAPI document lists the contract's routes
    let (s, doc) = api.get("/openapi.json", &teacher).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/courses",
        "/lessons",
        "/lesson-runs",
        "/sessions/start",
        "/sessions/{id}/end",
        "/sessions/{id}/state",
        "/sessions/{id}/join",
        "/sessions/{id}/leave",
        "/sessions/{id}/permissions",
        "/sessions/{id}/events",
        "/sessions/{id}/recording",
        "/sessions/{id}/recording.mp4",
        "/objects/{key}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    stack.shutdown().await;
}

/// Sign-in is throttled per account (5 failures, then one a minute) and the
/// routes that need no account per address; the refusals are 429 with
/// `Retry-After`, and others are not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_and_public_floods_are_throttled() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let login = |email: &str, password: &str| {
        let api = api.clone();
        let body = json!({ "email": email, "password": password })
            .to_string()
            .into_bytes();
        async move {
            api.http
                .post(format!("{}/auth/login", api.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    // five wrong passwords are answered as wrong; then the account waits,
    // even with the right password
    for _ in 0..5 {
        let r = login("student2@demo.test", "not-the-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login("student2@demo.test", classroom_tests::stack::PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(code(&v), "rate_limited");
    // another account from the same address signs in
    let r = login("student3@demo.test", classroom_tests::stack::PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);

    // a flood of a public route from one address is cut: no more than the
    // burst (300) and the refill (50/s) over the flood's time get through
    let url = format!("{}/qr.svg?data=flood", api.base);
    let started = std::time::Instant::now();
    let (mut ok, mut limited, mut retry_after) = (0u64, 0u64, None);
    'flood: for _ in 0..50 {
        let wave: Vec<_> = (0..64)
            .map(|_| {
                let http = api.http.clone();
                let url = url.clone();
                tokio::spawn(async move { http.get(url).send().await.unwrap() })
            })
            .collect();
        for w in wave {
            let r = w.await.unwrap();
            match r.status() {
                StatusCode::OK => ok += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    retry_after = r.headers().get("retry-after").map(|v| v.to_owned());
                }
                other => panic!("the QR route answered {other}"),
            }
        }
        if limited > 0 {
            break 'flood;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(limited > 0, "{ok} requests in {secs:.1} s, none refused");
    assert!(retry_after.is_some(), "a 429 carries Retry-After");
    assert!(
        (ok as f64) <= 300.0 + 50.0 * secs + 1.0,
        "{ok} passed in {secs:.1} s"
    );
    stack.shutdown().await;
}
