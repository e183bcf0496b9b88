//! The HTTP API: one router, the api.md contract.

pub mod error;
pub mod extract;
pub mod web;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, get, on, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::classroom::{commands, decks};
use crate::console;
use crate::events;
use crate::identity::routes as auth;
use crate::orchestration::{courses, edges, sessions};
use crate::{artifacts, replays};
use error::ApiError;

/// JSON bodies above this are refused with 413.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(web::index))
        .route("/app/{file}", get(web::file))
        .route("/qr.svg", get(web::qr))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route(
            "/courses",
            post(courses::create_course).get(courses::list_courses),
        )
        .route("/courses/{id}", get(courses::get_course))
        .route(
            "/courses/{id}/members",
            get(console::members::list).post(console::members::add),
        )
        .route(
            "/courses/{id}/members/import",
            post(console::members::import)
                .layer(DefaultBodyLimit::max(console::users::MAX_IMPORT_BYTES)),
        )
        .route(
            "/courses/{id}/members/{user_id}",
            axum::routing::delete(console::members::remove),
        )
        .route(
            "/users",
            get(console::users::list).post(console::users::create),
        )
        .route("/users/{id}", axum::routing::patch(console::users::update))
        .route(
            "/users/import",
            post(console::users::import)
                .layer(DefaultBodyLimit::max(console::users::MAX_IMPORT_BYTES)),
        )
        .route("/me/classes", get(console::discovery::my_classes))
        .route("/sessions", get(console::discovery::sessions))
        .route("/replays", get(console::discovery::replays))
        .route(
            "/tenant/settings",
            get(console::settings::get).patch(console::settings::update),
        )
        .route("/audit", get(console::audit_log::list))
        .route("/lessons", post(courses::create_lesson))
        .route("/lesson-runs", post(courses::create_lesson_run))
        .route("/edges", get(edges::list))
        .route("/sessions/start", post(sessions::start))
        .route("/sessions/{id}/end", post(sessions::end))
        .route("/sessions/{id}/state", get(sessions::state))
        .route("/sessions/{id}/events", get(events::routes::list))
        .route("/sessions/{id}/join", post(sessions::join))
        .route("/sessions/{id}/leave", post(sessions::leave))
        .route("/sessions/{id}/permissions", post(sessions::permissions))
        .route("/sessions/{id}/recording", get(crate::recordings::get))
        .route("/sessions/{id}/public-link", post(crate::public::link))
        .route("/sessions/{id}/audience", get(crate::public::audience))
        .route("/public/sessions/{id}/watch", post(crate::public::watch))
        .route("/sessions/{id}/recording.mp4", get(crate::recordings::mp4))
        .route("/objects/{*key}", get(crate::recordings::object))
        .route("/sessions/{id}/artifacts", get(artifacts::status))
        .route("/sessions/{id}/artifacts/rerun", post(artifacts::rerun))
        .route("/sessions/{id}/transcript", get(artifacts::transcript))
        .route("/sessions/{id}/chapters", get(artifacts::chapters))
        .route("/sessions/{id}/highlights", get(artifacts::highlights))
        .route("/sessions/{id}/summary", get(artifacts::summary))
        .route("/sessions/{id}/timeline", get(artifacts::timeline))
        .route("/sessions/{id}/publish", post(replays::publish))
        .route("/replays/search", get(replays::search_all))
        .route("/replays/{id}", get(replays::get))
        .route("/replays/{id}/search", get(replays::search))
        .route("/replays/{id}/transcript.vtt", get(replays::vtt))
        .route("/public/replays/{id}", get(replays::public_get))
        .route("/public/replays/{id}/search", get(replays::public_search))
        .route(
            "/decks",
            post(decks::upload).layer(DefaultBodyLimit::max(decks::MAX_PDF_BYTES)),
        )
        .route("/decks/{id}", get(decks::get))
        .route("/decks/{id}/pages/{page}", get(decks::page_image))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);

    // every class command: one handler, routes from the shared table
    let mut api = api;
    for r in protocol::api::CLASS_ROUTES {
        let method = match r.method {
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::POST,
        };
        api = api.route(r.path, on(method, commands::class_command));
    }
    let cors = cors_layer(&app.config().cors_origins);
    api.layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(app)
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

async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query("SELECT 1").execute(app.db()).await.is_ok();
    let nats = app.nats().connection_state() == async_nats::connection::State::Connected;
    let status = if db && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if db && nats { "ok" } else { "degraded" }, "service": "core", "db": db, "nats": nats }),
        ),
    )
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
