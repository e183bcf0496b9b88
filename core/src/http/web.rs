//! The browser pages (from `web/`), compiled into the binary so a core
//! serves them wherever it runs.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiErrorBody};
use crate::http::extract::{PathIds, QueryParams};

const FILES: &[(&str, &str, &str)] = &[
    (
        "teacher.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/teacher.html"),
    ),
    (
        "student.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/student.html"),
    ),
    (
        "watch.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/watch.html"),
    ),
    (
        "replay.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/replay.html"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/common.js"),
    ),
];

/// A page of the browser app (teacher, student, watch, replay) or its script.
#[utoipa::path(get, path = "/app/{file}", operation_id = "web_file", tag = "system",
    params(("file" = String, Path, description = "teacher.html, student.html, watch.html, replay.html or common.js")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/html"),
            (String = "text/javascript"),
        )),
        (status = 400, description = "The path is not valid UTF-8", body = ApiErrorBody),
        (status = 404, description = "No such file", body = ApiErrorBody),
    ))]
pub async fn file(ids: PathIds) -> Response {
    // PathIds, not Path: a bad path answers the api.md error body
    let name: String = match ids.get(0) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found("file").into_response(),
    }
}

/// The teacher's page.
#[utoipa::path(get, path = "/", operation_id = "web_index", tag = "system",
    responses(
        (status = 307, description = "To /app/teacher.html",
            headers(("location" = String, description = "/app/teacher.html"))),
    ))]
pub async fn index() -> Redirect {
    Redirect::temporary("/app/teacher.html")
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// What the code says (a URL), 1 to 2000 bytes.
    data: String,
}

/// A QR code (SVG) for a call to action's URL, so any page can show one.
#[utoipa::path(get, path = "/qr.svg", operation_id = "qr_svg", tag = "system",
    params(QrQuery),
    responses(
        (status = 200, description = "The QR code", body = String, content_type = "image/svg+xml"),
        (status = 400, description = "data missing, empty, too long or too much for a QR code", body = ApiErrorBody),
    ))]
pub async fn qr(QueryParams(q): QueryParams<QrQuery>) -> Response {
    if q.data.is_empty() || q.data.len() > 2000 {
        return ApiError::bad_request("invalid_data", "data must be 1 to 2000 bytes")
            .into_response();
    }
    match qrcode::QrCode::new(q.data.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build();
            (
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CACHE_CONTROL, "public, max-age=86400"),
                ],
                svg,
            )
                .into_response()
        }
        Err(e) => ApiError::bad_request("invalid_data", e.to_string()).into_response(),
    }
}
