//! The join token on the edge: `Authorization: Bearer` or `?token=`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use protocol::claims::JoinClaims;
use protocol::{Actor, SessionId};

use crate::http::EdgeState;
use crate::http::error::EdgeError;
use crate::join_tokens::TokenError;

/// A participant holding a valid join token for this edge.
pub(crate) struct Joined(pub JoinClaims);

impl Joined {
    pub(crate) fn actor(&self) -> Actor {
        Actor::Person {
            user_id: self.0.uid,
            participant_id: Some(self.0.sub),
            role: self.0.role,
        }
    }

    /// The token is for one session; any other is refused.
    pub(crate) fn require_session(&self, id: SessionId) -> Result<(), EdgeError> {
        if self.0.sid == id {
            Ok(())
        } else {
            Err(EdgeError::new(
                axum::http::StatusCode::FORBIDDEN,
                "wrong_session",
                "the join token is for another session",
            ))
        }
    }
}

fn token_from(parts: &Parts) -> Option<String> {
    if let Some(h) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        return h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(|t| t.to_owned()))
    })
}

impl FromRequestParts<EdgeState> for Joined {
    type Rejection = EdgeError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &EdgeState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_from(parts)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        Ok(Joined(state.tokens.verify_fresh(&token).await?))
    }
}
