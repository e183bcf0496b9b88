//! Extractors whose rejections speak the api.md error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::http::error::ApiError;
use crate::identity::Auth;

/// A JSON body, parsed, with its raw bytes kept for idempotency hashing.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or(false);
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        // An empty body is an empty object, so POSTs without fields work.
        let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &raw
        };
        if !is_json && !raw.is_empty() {
            return Err(ApiError::bad_request(
                "unsupported_content_type",
                "send the body as application/json",
            ));
        }
        let tree: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}"))
        })?;
        // PostgreSQL text cannot hold NUL: refuse it here, for every route,
        // instead of failing at the database.
        if holds_nul(&tree) {
            return Err(ApiError::bad_request(
                "invalid_body",
                "a string in the body holds a NUL character",
            ));
        }
        let value = T::deserialize(&tree).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}"))
        })?;
        Ok(JsonBody { value, raw })
    }
}

/// Whether any string (or key) in `v` holds a NUL character.
pub(crate) fn holds_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(holds_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The path parameters of a route, parsed into typed ids on demand.
pub struct PathIds(Vec<String>);

impl PathIds {
    /// The parameters after the first (the session or resource id).
    pub fn rest(&self) -> Vec<String> {
        self.0.iter().skip(1).cloned().collect()
    }

    pub fn get<T: std::str::FromStr>(&self, i: usize) -> Result<T, ApiError> {
        self.0.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_id", "an id in the path is not a valid UUID")
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid_path", "bad path parameters"))?;
        Ok(PathIds(params.iter().map(|(_, v)| v.to_owned()).collect()))
    }
}

/// Query parameters with api.md errors.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "a query parameter holds a NUL character",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The caller's `Idempotency-Key`, if any.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => {
                let s = v.to_str().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be ASCII",
                    )
                })?;
                if s.is_empty() || s.len() > 255 {
                    return Err(ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 characters",
                    ));
                }
                Ok(IdempotencyKey(Some(s.to_owned())))
            }
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing_token", "send Authorization: Bearer <access token>")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "invalid_token",
                    "the Authorization header is not a bearer token",
                )
            })?;
        state.keys().verify_access(token)
    }
}
