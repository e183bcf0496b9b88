//! Relay tokens for edges: an edge asks over its leaf link (request/reply on
//! `cls.core.relay-token.<edge>`, a subject only that edge's NATS identity
//! may publish) and gets a short EdDSA token, audience `relay`, naming it.
//! The edge is read off the subject, never off the body. Relays check the
//! token against core's JWKS; an edge core has never heard from gets nothing.

use futures::StreamExt;
use protocol::claims::{RELAY_TTL_SECS, RelayGrants};
use protocol::ids::EdgeId;
use protocol::subjects::RELAY_TOKEN_ALL;
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
    let mut sub = app.nats().subscribe(RELAY_TOKEN_ALL).await?;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let reply = answer(&app, msg.subject.as_str(), &msg.payload).await;
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        if let Err(e) = app.nats().publish(reply_to, body.into()).await {
            tracing::warn!(error = %e, "relay token reply not sent");
        }
    }
}

async fn answer(app: &AppState, subject: &str, payload: &[u8]) -> RelayTokenReply {
    let refused = |error: &str| RelayTokenReply::Refused {
        error: error.to_owned(),
    };
    let Ok(req) = serde_json::from_slice::<RelayTokenRequest>(payload) else {
        return refused("bad_request");
    };
    let asking = subject.rsplit('.').next().unwrap_or_default();
    let Ok(edge) = EdgeId::new(asking) else {
        return refused("bad_edge_id");
    };
    if req.edge_id != edge.as_str() {
        tracing::warn!(edge_id = %edge, claimed = %req.edge_id, "relay token refused: an edge asked in another edge's name");
        crate::trust::refuse(
            app.db(),
            &edge,
            crate::trust::Refusal::RelayToken,
            None,
            serde_json::json!({ "claimed_edge": req.edge_id }),
        )
        .await;
        return refused("wrong_edge");
    }
    let grants = match grants_for(app, &edge).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            tracing::warn!(edge_id = %edge, "relay token refused: unknown edge");
            return refused("unknown_edge");
        }
        Err(e) => {
            tracing::warn!(error = %e, "relay token: edge lookup failed");
            return refused("unavailable");
        }
    };
    let exp = chrono::Utc::now().timestamp() + RELAY_TTL_SECS;
    match app.keys().sign_relay(edge.as_str(), exp, &grants) {
        Ok(token) => {
            tracing::info!(edge_id = %edge, publish = grants.publish.len(), subscribe = ?grants.subscribe, "relay token issued");
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

/// What an edge's relay token grants: publishing the classes live on it
/// now (`<tenant>/<session>`), subscribing to its tenant's classes (a
/// campus box) or to every tenant's (a shared edge). None: no such edge.
pub async fn grants_for(app: &AppState, edge: &EdgeId) -> Result<Option<RelayGrants>, sqlx::Error> {
    let Some(owner): Option<Option<uuid::Uuid>> =
        sqlx::query_scalar("SELECT tenant_id FROM edges WHERE id = $1")
            .bind(edge.as_str())
            .fetch_optional(app.db())
            .await?
    else {
        return Ok(None);
    };
    let hosted: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT tenant_id, id FROM sessions WHERE edge_id = $1 AND status = 'live' ORDER BY started_at",
    )
    .bind(edge.as_str())
    .fetch_all(app.db())
    .await?;
    Ok(Some(RelayGrants {
        publish: hosted.iter().map(|(t, s)| format!("{t}/{s}")).collect(),
        subscribe: vec![
            owner
                .map(|t| t.to_string())
                .unwrap_or_else(|| "*".to_owned()),
        ],
    }))
}
