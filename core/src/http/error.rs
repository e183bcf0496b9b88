//! Every HTTP error goes through `ApiError` and leaves as the api.md body:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::{Permission, RejectKind, Rejection};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: String, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden {
        code: String,
        message: String,
        missing_permission: Option<Permission>,
    },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Not found, with the session writer's own code (`poll_not_found`, ...).
    #[error("{message}")]
    NotFoundCode { code: String, message: String },
    #[error("{message}")]
    Conflict { code: String, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency the request needs is down; nothing was changed.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: code.to_owned(),
            message: message.into(),
        }
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code: code.to_owned(),
            message: message.into(),
            missing_permission: None,
        }
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code: code.to_owned(),
            message: message.into(),
        }
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(what: &'static str) -> Self {
        ApiError::NotFound { what }
    }

    /// A class-command request that builds no command: the status, code and
    /// message the edges give too (`protocol::api::InputError`).
    pub fn from_input(e: protocol::api::InputError) -> Self {
        let (code, message) = (e.code().to_owned(), e.message());
        match e.http_status() {
            404 => ApiError::NotFoundCode { code, message },
            _ => ApiError::BadRequest { code, message },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> String {
        match self {
            ApiError::Unauthorized { code, .. } | ApiError::Unavailable { code, .. } => {
                (*code).to_owned()
            }
            ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFoundCode { code, .. }
            | ApiError::Conflict { code, .. } => code.clone(),
            ApiError::NotFound { what } => format!("{what}_not_found"),
            ApiError::PayloadTooLarge => "payload_too_large".to_owned(),
            ApiError::RateLimited { .. } => "rate_limited".to_owned(),
            ApiError::Internal(_) => "internal".to_owned(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r.kind {
            RejectKind::Invalid => ApiError::BadRequest {
                code: r.code,
                message: r.message,
            },
            RejectKind::Forbidden => ApiError::Forbidden {
                code: r.code,
                message: r.message,
                missing_permission: r.missing_permission,
            },
            RejectKind::NotFound => ApiError::NotFoundCode {
                code: r.code,
                message: r.message,
            },
            RejectKind::Conflict => ApiError::Conflict {
                code: r.code,
                message: r.message,
            },
            RejectKind::RateLimited => ApiError::RateLimited {
                retry_after_secs: r.retry_after_secs.unwrap_or(1).max(1).into(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({ "error": { "code": self.code(), "message": message } });
        if let ApiError::Forbidden {
            missing_permission: Some(p),
            ..
        } = &self
        {
            body["error"]["missing_permission"] = json!(p);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE
            && !resp.headers().contains_key(header::RETRY_AFTER)
        {
            // a dependency is down or the work is not done yet: a client
            // comes back later rather than at once
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("database"))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The api.md error body, for the OpenAPI document (shared with the edge).
pub(crate) use protocol::api::ApiErrorBody;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_answers_with_the_status_its_kind_names() {
        for kind in RejectKind::ALL {
            let r = Rejection {
                kind,
                code: "x".into(),
                message: "y".into(),
                missing_permission: None,
                retry_after_secs: Some(3),
            };
            assert_eq!(
                ApiError::from(r).status().as_u16(),
                kind.http_status(),
                "{kind:?}: core and the edges answer alike"
            );
        }
    }

    #[test]
    fn a_class_command_that_builds_nothing_answers_like_the_edge() {
        use protocol::api::InputError;
        for e in [
            InputError::Body("x".into()),
            InputError::Id,
            InputError::Route,
        ] {
            let api = ApiError::from_input(e.clone());
            assert_eq!(api.status().as_u16(), e.http_status(), "{e:?}");
            assert_eq!(api.code(), e.code(), "{e:?}");
        }
    }
}
