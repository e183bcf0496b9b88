//! The TCP twin of the QUIC port: `GET /healthz` (liveness plus the
//! routing counters as JSON), `/metrics` (the same counters in Prometheus
//! text), `/livez` and `/readyz`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::routing::Stats;

#[derive(Clone)]
struct Health {
    stats: watch::Receiver<Stats>,
    upstream: Option<String>,
}

pub(crate) fn router(stats: watch::Receiver<Stats>, upstream: Option<String>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(livez))
        .route("/metrics", get(metrics))
        .with_state(Health { stats, upstream })
}

async fn healthz(State(health): State<Health>) -> Json<Value> {
    let s = *health.stats.borrow();
    Json(json!({
        "status": "ok",
        "service": "relay",
        "sessions": s.sessions,
        "namespaces": s.namespaces,
        "tracks": s.tracks,
        "subscribers": s.subscribers,
        "objects_in": s.objects_in,
        "objects_out": s.objects_out,
        "objects_dropped": s.objects_dropped,
        "refused": s.refused,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "upstream": health.upstream,
    }))
}

async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok", "service": "relay" }))
}

async fn metrics(State(health): State<Health>) -> impl axum::response::IntoResponse {
    let s = *health.stats.borrow();
    let mut out = protocol::metrics::Exposition::new();
    out.gauge(
        "classroom_relay_sessions",
        "MoQ sessions (edges, relays, subscribers) connected now.",
        &[(&[], s.sessions as f64)],
    );
    out.gauge(
        "classroom_relay_namespaces",
        "Namespaces published through this relay now.",
        &[(&[], s.namespaces as f64)],
    );
    out.gauge(
        "classroom_relay_tracks",
        "Tracks this relay forwards now.",
        &[(&[], s.tracks as f64)],
    );
    out.gauge(
        "classroom_relay_subscribers",
        "Subscriptions served now.",
        &[(&[], s.subscribers as f64)],
    );
    out.counter(
        "classroom_relay_objects_total",
        "MoQ objects, by what became of them.",
        &[
            (&[("direction", "in")], s.objects_in),
            (&[("direction", "out")], s.objects_out),
            (&[("direction", "dropped")], s.objects_dropped),
        ],
    );
    out.counter(
        "classroom_relay_bytes_total",
        "Object payload bytes, by direction.",
        &[
            (&[("direction", "in")], s.bytes_in),
            (&[("direction", "out")], s.bytes_out),
        ],
    );
    out.counter(
        "classroom_relay_refusals_total",
        "PUBLISH_NAMESPACE and SUBSCRIBE requests the peer's token did not allow.",
        &[(&[], s.refused)],
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            protocol::metrics::CONTENT_TYPE,
        )],
        out.finish(),
    )
}
