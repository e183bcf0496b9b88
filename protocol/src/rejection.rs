//! Why the writer refused a command: a kind (which says the HTTP status at
//! core and at every edge alike) and a code that names the reason.

use serde::{Deserialize, Serialize};

use crate::roles::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Bad input: HTTP 400.
    Invalid,
    /// Not allowed: HTTP 403.
    Forbidden,
    /// Unknown id in this session: HTTP 404.
    NotFound,
    /// Conflicts with the current state: HTTP 409.
    Conflict,
    /// The actor sent too much too fast: HTTP 429 with `Retry-After`.
    RateLimited,
}

impl RejectKind {
    pub const ALL: [RejectKind; 5] = [
        RejectKind::Invalid,
        RejectKind::Forbidden,
        RejectKind::NotFound,
        RejectKind::Conflict,
        RejectKind::RateLimited,
    ];

    /// The HTTP status a rejection of this kind answers with, at core and at
    /// every edge alike (one copy of the mapping).
    pub fn http_status(self) -> u16 {
        match self {
            RejectKind::Invalid => 400,
            RejectKind::Forbidden => 403,
            RejectKind::NotFound => 404,
            RejectKind::Conflict => 409,
            RejectKind::RateLimited => 429,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub code: String,
    pub message: String,
    /// The permission the actor lacked, when that is the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<Permission>,
    /// For `RateLimited`: when to try again, in whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u32>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectKind, code: &str, message: impl Into<String>) -> Self {
        Rejection {
            kind,
            code: code.to_owned(),
            message: message.into(),
            missing_permission: None,
            retry_after_secs: None,
        }
    }
    /// Too much too fast from one actor (the session's writer applies the
    /// limits, so every way into the class meets them).
    pub fn rate_limited(retry_after_secs: u32) -> Self {
        Rejection {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(
                RejectKind::RateLimited,
                "rate_limited",
                "too many requests; slow down",
            )
        }
    }
    pub(crate) fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(RejectKind::Invalid, code, message)
    }
    pub(crate) fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(RejectKind::Forbidden, code, message)
    }
    pub(crate) fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(RejectKind::NotFound, code, message)
    }
    pub(crate) fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(RejectKind::Conflict, code, message)
    }
    pub(crate) fn missing(p: Permission) -> Self {
        Rejection {
            kind: RejectKind::Forbidden,
            code: "missing_permission".to_owned(),
            message: format!("this needs the {p} permission"),
            missing_permission: Some(p),
            retry_after_secs: None,
        }
    }
}
