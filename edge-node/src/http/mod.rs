//! The edge's HTTP surface: health, the live feed, WHIP/WHEP signaling and
//! campus commands, described by the OpenAPI document at `/openapi.json`.
//!
//! The document is made from the code: every handler carries a
//! `#[utoipa::path]` annotation and is registered through `routes!` in
//! [`api`], so a route cannot exist without its description; the class
//! command routes, shared with core, are described once in
//! `protocol::api::openapi`.

pub(crate) mod auth;
pub(crate) mod commands;
pub(crate) mod error;
pub(crate) mod live_feed;
pub(crate) mod signaling;

use std::sync::OnceLock;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use protocol::api::ApiErrorBody;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::join_tokens::JoinTokens;
use crate::runtime::registry::Registry;

#[derive(Clone)]
pub(crate) struct EdgeState {
    pub registry: Registry,
    pub tokens: JoinTokens,
    pub config: Config,
    pub nats: async_nats::Client,
    pub sfu: crate::sfu::Sfu,
    /// Classes hosted on other edges, pulled from the relay for students here.
    pub remote_feeds: crate::mesh::RemoteFeeds,
    /// The HTTP requests answered (`/metrics`).
    pub http_requests: std::sync::Arc<protocol::metrics::HttpRequests>,
}

/// JSON bodies above this are refused with 413.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Every route of the edge, with its OpenAPI description: the handlers
/// carry their annotations and are registered through `routes!`; the class
/// command routes come from the shared table (described by
/// `protocol::api::openapi::class_routes`).
pub(crate) fn api() -> OpenApiRouter<EdgeState> {
    use commands as c;
    let mut router = OpenApiRouter::new();
    for r in protocol::api::CLASS_ROUTES {
        let method = match r.method {
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::POST,
        };
        router = router.route(r.path, on(method, c::class_command));
    }
    router
        .routes(routes!(healthz))
        .routes(routes!(livez))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(document))
        .routes(routes!(live_feed::live))
        .routes(routes!(signaling::publish))
        .routes(routes!(signaling::subscribe))
        .routes(routes!(signaling::leave_whip))
        .routes(routes!(signaling::leave_whep))
        .routes(routes!(c::state))
        .routes(routes!(c::permissions))
        .routes(routes!(c::leave))
}

pub(crate) fn router(state: EdgeState) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let (router, _) = api().split_for_parts();
    router
        .fallback(|| async {
            error::EdgeError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(cors)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Classroom edge API",
        description = "The campus edge of a live class: its live feed, WHIP/WHEP media \
                       signaling and the class commands (the same routes and bodies as \
                       core's), with the join token core issued at `POST /sessions/{id}/join`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}` (api.md)."
    ),
    components(schemas(ApiErrorBody, live_feed::LiveMessage)),
    modifiers(&JoinTokenScheme),
    tags(
        (name = "system", description = "Health and this document"),
        (name = "sessions", description = "The live feed, the state, permissions, leaving"),
        (name = "media", description = "WHIP publish and WHEP subscribe"),
        (name = "class", description = "Class commands (the same routes on core)"),
    )
)]
struct Base;

struct JoinTokenScheme;

impl Modify for JoinTokenScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "join_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A join token from core's `POST /sessions/{id}/join`, for one \
                         session on this edge: `Authorization: Bearer <token>`, or \
                         `?token=<token>` where a header cannot be set (a browser's \
                         WebSocket)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The edge's whole document: its routes and the class command routes.
pub(crate) fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.merge(api().into_openapi());
    doc.merge(protocol::api::openapi::class_routes("join_token"));
    doc
}

#[utoipa::path(get, path = "/openapi.json", tag = "system", operation_id = "edge_openapi",
    summary = "This document",
    responses((status = 200, description = "The edge's OpenAPI 3.1 document", body = Object)))]
async fn document() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| {
        serde_json::to_string(&spec()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "openapi document");
            "{}".to_owned()
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
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

/// Whether the edge and what it needs are up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EdgeHealth {
    pub appends: EdgeAppends,
    pub edge_id: protocol::EdgeId,
    /// The event log (JetStream) answers.
    pub event_log: bool,
    /// Whether the join-token keys are loaded.
    pub keys: bool,
    pub media: EdgeMedia,
    /// Connected to the NATS leaf node.
    pub nats: bool,
    /// Always `edge-node`.
    pub service: &'static str,
    /// Live sessions hosted here.
    pub sessions: usize,
    /// `ok`, or `degraded` when the event log, NATS or the media plane is down.
    pub status: &'static str,
}

/// The media plane (SFU).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EdgeMedia {
    pub alive: bool,
    pub packets_in: u64,
    pub packets_out: u64,
    pub peers: u64,
    /// The public UDP address of the media socket.
    pub udp: String,
}

/// Event log appends since start.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EdgeAppends {
    pub batches: u64,
    pub events: u64,
    pub failures: u64,
}

/// Every answered request counted by route template and status, timed.
async fn count_request(
    State(st): State<EdgeState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    st.http_requests.record(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Whether the edge can serve classes: its event log, NATS, the media
/// plane and core's token keys.
async fn readiness(st: &EdgeState) -> [(&'static str, bool); 4] {
    [
        ("event_log", st.registry.log().healthy().await),
        (
            "nats",
            st.nats.connection_state() == async_nats::connection::State::Connected,
        ),
        ("media", st.sfu.alive()),
        ("keys", st.tokens.has_keys()),
    ]
}

#[utoipa::path(get, path = "/metrics", tag = "system", operation_id = "edge_metrics",
    summary = "Prometheus text exposition: requests, the event path, media, dependencies",
    responses((status = 200, description = "Prometheus text exposition (0.0.4)", body = String, content_type = "text/plain")))]
async fn metrics(State(st): State<EdgeState>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = protocol::metrics::Exposition::new();
    let ready = readiness(&st).await;
    let up: Vec<([(&str, &str); 1], f64)> = ready
        .iter()
        .map(|(name, ok)| ([("dependency", *name)], f64::from(u8::from(*ok))))
        .collect();
    let up: Vec<(&[(&str, &str)], f64)> = up.iter().map(|(l, v)| (&l[..], *v)).collect();
    out.gauge(
        "classroom_edge_dependency_up",
        "Whether a part the edge needs works (1) or not (0).",
        &up,
    );
    out.gauge(
        "classroom_edge_live_sessions",
        "Classes this edge hosts now.",
        &[(&[], st.registry.live_count().await as f64)],
    );
    let stats = st.registry.log().stats();
    out.counter(
        "classroom_edge_event_appends_total",
        "Appends to the edge's event log (a batch is one append).",
        &[(&[], stats.appends.load(Relaxed))],
    );
    out.counter(
        "classroom_edge_events_appended_total",
        "Class events made durable in the edge's event log.",
        &[(&[], stats.events.load(Relaxed))],
    );
    out.counter(
        "classroom_edge_event_append_failures_total",
        "Appends the event log refused or did not acknowledge.",
        &[(&[], stats.failures.load(Relaxed))],
    );
    let media = &st.sfu.stats;
    out.gauge(
        "classroom_edge_media_peers",
        "WebRTC connections (publishers and subscribers) now.",
        &[(&[], media.peers.load(Relaxed) as f64)],
    );
    out.counter(
        "classroom_edge_media_packets_total",
        "RTP packets through the SFU, by direction.",
        &[
            (&[("direction", "in")], media.packets_in.load(Relaxed)),
            (&[("direction", "out")], media.packets_out.load(Relaxed)),
        ],
    );
    out.counter(
        "classroom_edge_media_bytes_out_total",
        "Bytes the SFU sent.",
        &[(&[], media.bytes_out.load(Relaxed))],
    );
    st.http_requests.write("classroom_edge", &mut out);
    (
        [(header::CONTENT_TYPE, protocol::metrics::CONTENT_TYPE)],
        out.finish(),
    )
}

#[utoipa::path(get, path = "/livez", tag = "system", operation_id = "edge_livez",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Up", body = Object)))]
async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "system", operation_id = "edge_readyz",
    summary = "Readiness: the event log, NATS, the media plane and the token keys work",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready: the parts that fail are false", body = Object),
    ))]
async fn readyz(State(st): State<EdgeState>) -> impl IntoResponse {
    let ready = readiness(&st).await;
    let ok = ready.iter().all(|(_, up)| *up);
    let mut body = serde_json::json!({ "status": if ok { "ok" } else { "not_ready" } });
    for (name, up) in ready {
        body[name] = serde_json::json!(up);
    }
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

#[utoipa::path(get, path = "/healthz", tag = "system", operation_id = "edge_healthz",
    summary = "Health of the edge, its event log, NATS and media plane",
    responses(
        (status = 200, description = "Healthy", body = EdgeHealth),
        (status = 503, description = "The event log, NATS or the media plane is down", body = EdgeHealth),
    ))]
async fn healthz(State(st): State<EdgeState>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let log = st.registry.log().healthy().await;
    let nats = st.nats.connection_state() == async_nats::connection::State::Connected;
    let keys = st.tokens.has_keys();
    let ok = log && nats && st.sfu.alive();
    let stats = st.registry.log().stats();
    // fields in sorted order, as the answer always had them
    let health = EdgeHealth {
        appends: EdgeAppends {
            batches: stats.appends.load(Relaxed),
            events: stats.events.load(Relaxed),
            failures: stats.failures.load(Relaxed),
        },
        edge_id: st.config.edge_id.clone(),
        event_log: log,
        keys,
        media: EdgeMedia {
            alive: st.sfu.alive(),
            packets_in: st.sfu.stats.packets_in.load(Relaxed),
            packets_out: st.sfu.stats.packets_out.load(Relaxed),
            peers: st.sfu.stats.peers.load(Relaxed),
            udp: st.sfu.public.to_string(),
        },
        nats,
        service: "edge-node",
        sessions: st.registry.live_count().await,
        status: if ok { "ok" } else { "degraded" },
    };
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(health),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{Value, json};

    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    fn doc() -> Value {
        serde_json::to_value(spec()).unwrap()
    }

    /// (method, path) → operation
    fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
        let mut out = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.insert((m.to_owned(), path.clone()), op.clone());
                }
            }
        }
        out
    }

    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => v,
        }
    }

    #[test]
    fn the_document_lists_every_route() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let ops = operations(&doc);
        for r in protocol::api::CLASS_ROUTES {
            let key = (r.method.to_ascii_lowercase(), r.path.to_owned());
            let op = ops
                .get(&key)
                .unwrap_or_else(|| panic!("class route {} {} missing", r.method, r.path));
            assert_eq!(op["security"], json!([{ "join_token": [] }]));
            assert_eq!(op["tags"], json!(["class"]));
        }
        for (m, p) in [
            ("get", "/healthz"),
            ("get", "/livez"),
            ("get", "/readyz"),
            ("get", "/metrics"),
            ("get", "/openapi.json"),
            ("get", "/sessions/{id}/live"),
            ("post", "/whip/{id}"),
            ("post", "/whep/{id}"),
            ("delete", "/whip/{id}/{peer}"),
            ("delete", "/whep/{id}/{peer}"),
            ("get", "/sessions/{id}/state"),
            ("post", "/sessions/{id}/permissions"),
            ("post", "/sessions/{id}/leave"),
        ] {
            assert!(ops.contains_key(&(m.into(), p.into())), "{m} {p} missing");
        }
        assert_eq!(
            ops.len(),
            protocol::api::CLASS_ROUTES.len() + 13,
            "an operation without a test: {:?}",
            ops.keys().collect::<Vec<_>>()
        );
        // WHIP/WHEP: an SDP offer in, 201 with the SDP answer and a Location
        for p in ["/whip/{id}", "/whep/{id}"] {
            let op = &ops[&("post".to_owned(), p.to_owned())];
            assert!(op["requestBody"]["content"]["application/sdp"].is_object());
            let created = &op["responses"]["201"];
            assert!(created["content"]["application/sdp"].is_object(), "{p}");
            assert!(created["headers"]["Location"].is_object(), "{p}");
        }
        let live = &ops[&("get".to_owned(), "/sessions/{id}/live".to_owned())];
        assert!(live["responses"]["101"].is_object());
        assert!(doc["components"]["schemas"]["LiveMessage"].is_object());
        let scheme = &doc["components"]["securitySchemes"]["join_token"];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
    }

    #[test]
    fn every_operation_is_complete_with_a_unique_id() {
        let doc = doc();
        let mut ids = BTreeSet::new();
        for ((m, p), op) in operations(&doc) {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
            assert!(op["summary"].is_string(), "{m} {p}: no summary");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('1') || s.starts_with('2')),
                "{m} {p}: no success answer"
            );
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["in"] == "path")
                .map(|x| x["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            let in_path: BTreeSet<String> = p
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, in_path, "{m} {p}: path parameters");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                assert_eq!(op["security"], json!([{ "join_token": [] }]), "{m} {p}");
                for s in ["401", "503"] {
                    assert!(responses.contains_key(s), "{m} {p}: secured but no {s}");
                }
            }
            for (status, resp) in responses {
                if let Some(media) = resp["content"].get("application/json") {
                    let schema = resolve(&doc, &media["schema"]);
                    // errors (but the health and readiness answers, whatever
                    // their status)
                    let probe = p == "/healthz" || p == "/readyz";
                    if status.starts_with('4') || (status.starts_with('5') && !probe) {
                        assert!(
                            schema["properties"]["error"].is_object(),
                            "{m} {p} {status}: errors use the api.md body"
                        );
                    } else {
                        assert!(!schema.is_null(), "{m} {p} {status}: no schema");
                    }
                }
            }
        }
        // the unauthenticated routes
        for p in ["/healthz", "/openapi.json"] {
            assert!(doc["paths"][p]["get"].get("security").is_none(), "{p}");
        }
    }

    #[test]
    fn every_ref_resolves() {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if m.contains_key("$ref") {
                        resolve(doc, v);
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        let doc = doc();
        walk(&doc, &doc);
    }
}
