//! The HTTP API: one router, the api.md contract.

pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod throttle;
pub(crate) mod web;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, get, on};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::AppState;
use crate::classroom::{commands, decks};
use crate::console;
use crate::events;
use crate::identity::routes as auth;
use crate::orchestration::{courses, edges, sessions};
use crate::{artifacts, replays};
use error::ApiError;

/// JSON bodies above this are refused with 413.
pub(crate) const MAX_JSON_BODY: usize = 64 * 1024;

/// Every documented route of core: the handlers carry their OpenAPI
/// annotations and are registered through `routes!`, so a route and its
/// description cannot drift apart. `/openapi.json` is made from this.
/// Class command routes are added by [`router`] from the shared table (their
/// description comes from `protocol::api::openapi`).
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(livez))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(web::index))
        .route("/assets/{*path}", get(web::asset))
        .routes(routes!(web::qr))
        .routes(routes!(auth::jwks))
        .routes(routes!(crate::openapi::document))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(courses::create_course, courses::list_courses))
        .routes(routes!(courses::get_course))
        .routes(routes!(console::members::list, console::members::add))
        .routes(
            routes!(console::members::import)
                .layer(DefaultBodyLimit::max(console::users::MAX_IMPORT_BYTES)),
        )
        .routes(routes!(console::members::remove))
        .routes(routes!(console::users::list, console::users::create))
        .routes(routes!(console::users::update))
        .routes(
            routes!(console::users::import)
                .layer(DefaultBodyLimit::max(console::users::MAX_IMPORT_BYTES)),
        )
        .routes(routes!(console::discovery::my_classes))
        .routes(routes!(console::discovery::sessions))
        .routes(routes!(console::discovery::replays))
        .routes(routes!(console::settings::get, console::settings::update))
        .routes(routes!(console::audit_log::list))
        .routes(routes!(console::audit_log::verify))
        .routes(routes!(crate::consents::list))
        .routes(routes!(crate::analytics::routes::session))
        .routes(routes!(crate::analytics::course::course))
        .routes(routes!(crate::analytics::student::student))
        .routes(routes!(
            crate::analytics::xapi::get_lrs,
            crate::analytics::xapi::put_lrs
        ))
        .routes(routes!(crate::analytics::beacons::progress))
        .routes(routes!(
            crate::destinations::create,
            crate::destinations::list
        ))
        .routes(routes!(crate::destinations::delete))
        .routes(routes!(
            crate::destinations::attach,
            crate::destinations::session_destinations
        ))
        .routes(routes!(crate::destinations::detach))
        .routes(routes!(
            crate::destinations::runs::attach,
            crate::destinations::runs::list
        ))
        .routes(routes!(crate::destinations::runs::detach))
        .routes(routes!(crate::subjects::export))
        .routes(routes!(crate::subjects::job))
        .routes(routes!(crate::subjects::download))
        .routes(routes!(crate::subjects::erase::erase))
        .routes(routes!(crate::retention::get, crate::retention::update))
        .routes(routes!(crate::retention::legal_hold))
        .routes(routes!(crate::retention::removals))
        .routes(routes!(crate::retention::sweep_now))
        .routes(routes!(courses::create_lesson))
        .routes(routes!(courses::create_lesson_run))
        .routes(routes!(edges::list))
        .routes(routes!(sessions::start))
        .routes(routes!(sessions::end))
        .routes(routes!(sessions::state))
        .routes(routes!(events::routes::list))
        .routes(routes!(sessions::join))
        .routes(routes!(sessions::leave))
        .routes(routes!(sessions::permissions))
        .routes(routes!(crate::recordings::get))
        .routes(routes!(crate::public::link))
        .routes(routes!(crate::public::audience))
        .routes(routes!(crate::public::watch))
        .routes(routes!(crate::recordings::mp4))
        .route("/objects/{*key}", get(crate::recordings::object))
        .routes(routes!(artifacts::status))
        .routes(routes!(artifacts::rerun))
        .routes(routes!(artifacts::transcript))
        .routes(routes!(artifacts::chapters))
        .routes(routes!(artifacts::highlights))
        .routes(routes!(artifacts::summary))
        .routes(routes!(artifacts::timeline))
        .routes(routes!(replays::publish))
        .routes(routes!(replays::search_all))
        .routes(routes!(replays::get))
        .routes(routes!(replays::search))
        .routes(routes!(replays::vtt))
        .routes(routes!(replays::public_get))
        .routes(routes!(replays::public_search))
        .routes(routes!(decks::upload).layer(DefaultBodyLimit::max(decks::MAX_PDF_BYTES)))
        .routes(routes!(decks::get))
        .routes(routes!(decks::page_image))
}

pub fn router(app: AppState) -> Router {
    let (mut api, _) = api().split_for_parts();
    // every class command: one handler, routes from the shared table
    for r in protocol::api::CLASS_ROUTES {
        let method = match r.method {
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::POST,
        };
        api = api.route(r.path, on(method, commands::class_command));
    }
    let cors = cors_layer(&app.config().cors_origins);
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(audit_source))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            count_request,
        ))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// Every audit row a request writes names the address it came from.
async fn audit_source(
    addr: throttle::ClientAddr,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    crate::audit::with_source(addr.0, next.run(req)).await
}

fn cors_layer(origins: &str) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(600));
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

/// Whether core and what it needs (PostgreSQL, NATS) are up.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `degraded` when a dependency is down.
    pub status: String,
    /// Always `core`.
    pub service: String,
    pub db: bool,
    pub nats: bool,
}

/// Every answered request counted by route template and status, timed.
async fn count_request(
    State(app): State<AppState>,
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
    app.http_requests().record(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Prometheus text exposition: requests by route and status with their
/// latency, whether the database and NATS are up, the trust boundary's
/// refusals.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition (0.0.4)", body = String, content_type = "text/plain")))]
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let (db, nats) = dependencies(&app).await;
    let mut out = protocol::metrics::Exposition::new();
    out.gauge(
        "classroom_core_dependency_up",
        "Whether core reaches a dependency (1) or not (0).",
        &[
            (&[("dependency", "db")], f64::from(u8::from(db))),
            (&[("dependency", "nats")], f64::from(u8::from(nats))),
        ],
    );
    out.gauge(
        "classroom_core_db_connections",
        "Database connections held by core's pool, by state.",
        &[
            (&[("state", "open")], f64::from(app.db().size())),
            (&[("state", "idle")], app.db().num_idle() as f64),
        ],
    );
    app.http_requests().write("classroom_core", &mut out);
    out.raw(&crate::trust::metrics_text());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            protocol::metrics::CONTENT_TYPE,
        )],
        out.finish(),
    )
}

async fn dependencies(app: &AppState) -> (bool, bool) {
    let db = sqlx::query("SELECT 1").execute(app.db()).await.is_ok();
    let nats = app.nats().connection_state() == async_nats::connection::State::Connected;
    (db, nats)
}

/// Liveness: the process answers (restart it if not).
#[utoipa::path(get, path = "/livez", tag = "system",
    responses((status = 200, description = "Core's process is up", body = Object)))]
async fn livez() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: core can serve (its database and NATS are reachable); send it
/// traffic only while this is 200.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down", body = Health),
    ))]
async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    healthz(State(app)).await
}

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses(
        (status = 200, description = "Core, its database and NATS are up", body = Health),
        (status = 503, description = "A dependency is down", body = Health),
    ))]
async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let (db, nats) = dependencies(&app).await;
    let status = if db && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if db && nats { "ok" } else { "degraded" }.to_owned(),
        service: "core".to_owned(),
        db,
        nats,
    };
    (status, Json(health))
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(
            json!({ "error": { "code": "method_not_allowed", "message": "this route does not take that method" } }),
        ),
    )
}
