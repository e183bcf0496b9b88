//! The browser pages (from `web/`), compiled into the binary so a core
//! serves them wherever it runs.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

const FILES: &[(&str, &str, &str)] = &[
    ("teacher.html", "text/html; charset=utf-8", include_str!("../../../web/teacher.html")),
    ("student.html", "text/html; charset=utf-8", include_str!("../../../web/student.html")),
    ("common.js", "text/javascript; charset=utf-8", include_str!("../../../web/common.js")),
];

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => ([(header::CONTENT_TYPE, *ct), (header::CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn index() -> Redirect {
    Redirect::temporary("/app/teacher.html")
}
