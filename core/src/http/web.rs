//! The browser pages (from `web/`), compiled into the binary so a core
//! serves them wherever it runs.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

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

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn index() -> Redirect {
    Redirect::temporary("/app/teacher.html")
}

#[derive(serde::Deserialize)]
pub struct QrQuery {
    data: String,
}

/// A QR code (SVG) for a call to action's URL, so any page can show one.
pub async fn qr(axum::extract::Query(q): axum::extract::Query<QrQuery>) -> Response {
    if q.data.is_empty() || q.data.len() > 2000 {
        return crate::http::error::ApiError::bad_request(
            "invalid_data",
            "data must be 1 to 2000 bytes",
        )
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
        Err(e) => {
            crate::http::error::ApiError::bad_request("invalid_data", e.to_string()).into_response()
        }
    }
}
