//! The edge's HTTP errors, in the same body shape as core's api.md errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{Permission, Rejection};
use serde_json::json;

use crate::join_tokens::TokenError;

#[derive(Debug)]
pub(crate) struct EdgeError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub missing_permission: Option<Permission>,
    /// For 429: the `Retry-After` seconds (1 when not given).
    pub retry_after_secs: Option<u32>,
}

impl EdgeError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        EdgeError {
            status,
            code: code.to_owned(),
            message: message.into(),
            missing_permission: None,
            retry_after_secs: None,
        }
    }
    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl From<Rejection> for EdgeError {
    fn from(r: Rejection) -> Self {
        let status =
            StatusCode::from_u16(r.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        EdgeError {
            status,
            code: r.code,
            message: r.message,
            missing_permission: r.missing_permission,
            retry_after_secs: r.retry_after_secs,
        }
    }
}

impl From<TokenError> for EdgeError {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Missing => "missing_token",
            TokenError::Expired => "token_expired",
            TokenError::Invalid | TokenError::UnknownKey => "invalid_token",
            TokenError::NoKeys => "keys_unavailable",
        };
        let status = match e {
            TokenError::NoKeys => StatusCode::SERVICE_UNAVAILABLE,
            TokenError::Missing
            | TokenError::Expired
            | TokenError::Invalid
            | TokenError::UnknownKey => StatusCode::UNAUTHORIZED,
        };
        EdgeError::new(status, code, e.to_string())
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(p) = self.missing_permission {
            body["error"]["missing_permission"] = json!(p);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(self.retry_after_secs.unwrap_or(1).max(1)),
            );
        }
        resp
    }
}
