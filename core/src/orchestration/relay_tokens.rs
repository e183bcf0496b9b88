//! Relay tokens for edges: an edge asks over its leaf link (request/reply on
//! `cls.core.relay-token`) and gets a short EdDSA token, audience `relay`,
//! naming it. Relays check it against core's JWKS; an edge core has never
//! heard from gets nothing.

use futures::StreamExt;
use protocol::claims::RELAY_TTL_SECS;
use protocol::ids::EdgeId;
use protocol::subjects::RELAY_TOKEN_REQUEST;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::AppState;

#[derive(Debug, Serialize, Deserialize)]
pub struct RelayTokenRequest {
    pub edge_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RelayTokenReply {
    Token { token: String, expires_in: i64 },
    Refused { error: String },
}

pub async fn run(app: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let mut sub = app.nats().subscribe(RELAY_TOKEN_REQUEST).await?;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let reply = answer(&app, &msg.payload).await;
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        if let Err(e) = app.nats().publish(reply_to, body.into()).await {
            tracing::warn!(error = %e, "relay token reply not sent");
        }
    }
}

async fn answer(app: &AppState, payload: &[u8]) -> RelayTokenReply {
    let refused = |error: &str| RelayTokenReply::Refused {
        error: error.to_owned(),
    };
    let Ok(req) = serde_json::from_slice::<RelayTokenRequest>(payload) else {
        return refused("bad_request");
    };
    let Ok(edge) = EdgeId::new(req.edge_id) else {
        return refused("bad_edge_id");
    };
    let known: Result<Option<(String,)>, _> = sqlx::query_as("SELECT id FROM edges WHERE id = $1")
        .bind(edge.as_str())
        .fetch_optional(app.db())
        .await;
    match known {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::warn!(edge_id = %edge, "relay token refused: unknown edge");
            return refused("unknown_edge");
        }
        Err(e) => {
            tracing::warn!(error = %e, "relay token: edge lookup failed");
            return refused("unavailable");
        }
    }
    let exp = chrono::Utc::now().timestamp() + RELAY_TTL_SECS;
    match app.keys().sign_relay(edge.as_str(), exp) {
        Ok(token) => {
            tracing::info!(edge_id = %edge, "relay token issued");
            RelayTokenReply::Token {
                token,
                expires_in: RELAY_TTL_SECS,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "relay token not signed");
            refused("unavailable")
        }
    }
}
