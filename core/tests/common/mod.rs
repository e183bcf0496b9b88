//! The router without a port: a fresh migrated database per test (sqlx),
//! a NATS client that never connects (these routes do not use NATS, or
//! survive without it), and requests sent with `oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use classroom_core::config::Config;
use classroom_core::identity::signing_keys::SigningKeys;
use classroom_core::{AppState, http};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

pub fn app(db: PgPool) -> axum::Router {
    let kek = std::env::temp_dir().join("classroom-core-tests-kek.key");
    let objects = std::env::temp_dir().join("classroom-core-tests-objects");
    let config = Config::parse_from([
        "core",
        "--edge-timeout-ms",
        "300",
        "--kek-file",
        kek.to_str().expect("a UTF-8 temp dir"),
        "--object-store-dir",
        objects.to_str().expect("a UTF-8 temp dir"),
    ]);
    let keys = SigningKeys::from_key(&ed25519_dalek::SigningKey::from_bytes(&[3u8; 32])).unwrap();
    let nats = futures::executor::block_on(
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1"),
    )
    .unwrap();
    http::router(AppState::new(db, keys, nats, config).expect("app state"))
}

pub async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    match body {
        Some(b) => send(app, method, path, token, "application/json", b.to_string()).await,
        None => send(app, method, path, token, "", String::new()).await,
    }
}

pub async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Logs in; returns (access token, refresh token).
pub async fn login(app: &axum::Router, email: &str, password: &str) -> (String, String) {
    let (s, v) = call(
        app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "login {email}: {v}");
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}
