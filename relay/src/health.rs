//! `GET /healthz` on the TCP twin of the QUIC port: liveness plus the
//! routing counters.

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
