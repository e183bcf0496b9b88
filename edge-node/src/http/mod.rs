//! The edge's HTTP surface: health, the live feed, and campus commands.
//! (WHIP/WHEP signaling joins here with the SFU.)

pub mod auth;
pub mod commands;
pub mod error;
pub mod live_feed;
pub mod signaling;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, get, on, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::config::Config;
use crate::join_tokens::JoinTokens;
use crate::rate_limit::RateLimits;
use crate::runtime::registry::Registry;

#[derive(Clone)]
pub struct EdgeState {
    pub registry: Registry,
    pub tokens: JoinTokens,
    pub limits: RateLimits,
    pub config: Config,
    pub nats: async_nats::Client,
    pub sfu: crate::sfu::Sfu,
    /// Classes hosted on other edges, pulled from the relay for students here.
    pub remote_feeds: crate::mesh::RemoteFeeds,
}

pub fn router(state: EdgeState) -> Router {
    use commands as c;
    let cors = cors_layer(&state.config.cors_origins);
    let mut router = Router::new();
    for r in protocol::api::CLASS_ROUTES {
        let method = match r.method {
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::POST,
        };
        router = router.route(r.path, on(method, c::class_command));
    }
    router
        .route("/healthz", get(healthz))
        .route("/sessions/{id}/live", get(live_feed::live))
        .route("/whip/{id}", post(signaling::publish))
        .route("/whep/{id}", post(signaling::subscribe))
        .route("/whip/{id}/{peer}", axum::routing::delete(signaling::leave))
        .route("/whep/{id}/{peer}", axum::routing::delete(signaling::leave))
        .route("/sessions/{id}/state", get(c::state))
        .route("/sessions/{id}/permissions", post(c::permissions))
        .route("/sessions/{id}/leave", post(c::leave))
        .fallback(|| async {
            error::EdgeError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
        })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(cors)
        .with_state(state)
}

fn cors_layer(origins: &str) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers([axum::http::header::LOCATION]);
    let list: Vec<HeaderValue> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if list.is_empty() {
        base.allow_origin(Any)
    } else {
        base.allow_origin(AllowOrigin::list(list))
    }
}

async fn healthz(State(st): State<EdgeState>) -> impl IntoResponse {
    let log = st.registry.log().healthy().await;
    let nats = st.nats.connection_state() == async_nats::connection::State::Connected;
    let keys = st.tokens.has_keys();
    let ok = log && nats && st.sfu.alive();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ok { "ok" } else { "degraded" },
            "service": "edge-node",
            "edge_id": st.config.edge_id,
            "event_log": log,
            "nats": nats,
            "keys": keys,
            "sessions": st.registry.live_count().await,
            "media": {
                "alive": st.sfu.alive(),
                "udp": st.sfu.public.to_string(),
                "peers": st.sfu.stats.peers.load(std::sync::atomic::Ordering::Relaxed),
                "packets_in": st.sfu.stats.packets_in.load(std::sync::atomic::Ordering::Relaxed),
                "packets_out": st.sfu.stats.packets_out.load(std::sync::atomic::Ordering::Relaxed),
            },
            "appends": {
                "batches": st.registry.log().stats().appends.load(std::sync::atomic::Ordering::Relaxed),
                "events": st.registry.log().stats().events.load(std::sync::atomic::Ordering::Relaxed),
                "failures": st.registry.log().stats().failures.load(std::sync::atomic::Ordering::Relaxed),
            },
        })),
    )
}
