//! The OpenAPI 3.1 description of core's HTTP API, served at `/openapi.json`.
//!
//! Made from the code: every handler carries a `#[utoipa::path]` annotation
//! (its path and query parameters, body, answers and error statuses) and is
//! registered through `routes!` in [`crate::http::api`], so a route cannot
//! exist without its description. The class command routes, shared with the
//! edge, are described once in `protocol::api::openapi`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::error::ApiErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Classroom core API",
        description = "Identity, courses and enrollment, orchestration of live classes, \
                       recordings, artifacts and replays. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` (api.md)."
    ),
    components(schemas(ApiErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "system", description = "Health, keys and this document"),
        (name = "auth", description = "Log in, refresh, log out"),
        (name = "console", description = "Users, rosters, discovery, tenant settings, audit log"),
        (name = "privacy", description = "Data-subject requests (exports of what is held about a person) and consent records"),
        (name = "courses", description = "Courses, lessons and lesson runs"),
        (name = "sessions", description = "Live classes: start, join, end, state, events"),
        (name = "class", description = "Class commands (the same routes on the edge)"),
        (name = "recordings", description = "Recordings and their objects"),
        (name = "artifacts", description = "Transcript, chapters, highlights, summary, timeline"),
        (name = "replays", description = "The replay library and its search"),
        (name = "decks", description = "Slide decks"),
        (name = "analytics", description = "Attendance, participation, polls and replay viewing per class, course and student; xAPI to the tenant's LRS"),
        (name = "public", description = "Public links: no account needed"),
        (name = "multistream", description = "Destinations (RTMP, RTMPS, SRT) and the classes streamed to them"),
    )
)]
struct Base;

/// Routes whose axum path `routes!` cannot express (a wildcard taking
/// slashes): registered with `.route` in `http::api()`, described here.
#[derive(OpenApi)]
#[openapi(paths(crate::recordings::object, crate::http::web::asset))]
struct Wildcards;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some("An access token from /auth/login"))
                        .build(),
                ),
            );
        }
    }
}

/// The whole document: core's routes and the class command routes.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.merge(crate::http::api().into_openapi());
    doc.merge(Wildcards::openapi());
    doc.merge(protocol::api::openapi::class_routes("bearer"));
    doc
}

#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object, content_type = "application/json")))]
pub async fn document() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| {
        serde_json::to_string(&spec()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "openapi document");
            "{}".to_owned()
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
}
