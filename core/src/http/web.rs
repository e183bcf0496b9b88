//! The browser pages: the web app built into `web/dist`, served from the
//! `--web-dir` directory (`index.html` at `/`, its files under `/assets/`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody};
use crate::http::extract::QueryParams;
use crate::http::throttle::ClientAddr;

/// The web app (sign-in, console, studio, class pages): `index.html` of the
/// built app. Pages route by the URL's fragment, so this is the one document.
#[utoipa::path(get, path = "/", operation_id = "web_index", tag = "system",
    responses(
        (status = 200, description = "The web app", body = String, content_type = "text/html"),
        (status = 503, description = "The web app is not built (`npm run build` in web/)", body = ApiErrorBody),
    ))]
pub(crate) async fn index(State(app): State<AppState>) -> Response {
    let path = app.config().web_dir.join("index.html");
    match tokio::fs::read(&path).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "web app not built");
            ApiError::unavailable(
                "web_app_not_built",
                "the web app is not built: run npm ci && npm run build in web/",
            )
            .into_response()
        }
    }
}

/// A built asset of the web app (scripts, styles, images). Names carry a
/// content hash, so they are cached for a year.
#[utoipa::path(get, path = "/assets/{path}", operation_id = "web_asset", tag = "system",
    params(("path" = String, Path, description = "The asset's file name under assets/")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
            (String = "application/octet-stream"),
        )),
        (status = 400, description = "Not an asset path", body = ApiErrorBody),
        (status = 404, description = "No such asset", body = ApiErrorBody),
    ))]
pub(crate) async fn asset(
    State(app): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    if path.is_empty()
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\\'))
    {
        return ApiError::bad_request("invalid_path", "not an asset path").into_response();
    }
    let ct = match path.rsplit('.').next().unwrap_or_default() {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "json" => "application/json",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(app.config().web_dir.join("assets").join(&path)).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            body,
        )
            .into_response(),
        Err(_) => ApiError::not_found("asset").into_response(),
    }
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QrQuery {
    /// What the code says (a URL), 1 to 2000 bytes.
    data: String,
}

/// A QR code (SVG) for a call to action's URL, so any page can show one.
#[utoipa::path(get, path = "/qr.svg", operation_id = "qr_svg", tag = "system",
    params(QrQuery),
    responses(
        (status = 200, description = "The QR code", body = String, content_type = "image/svg+xml"),
        (status = 400, description = "data missing, empty, too long or too much for a QR code", body = ApiErrorBody),
        (status = 429, description = "Too many requests from this address to the routes that need no account; see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn qr(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    QueryParams(q): QueryParams<QrQuery>,
) -> Response {
    if let Err(e) = app.throttles().public(from) {
        return e.into_response();
    }
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
