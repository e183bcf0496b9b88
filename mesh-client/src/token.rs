//! Relay tokens come from core: an edge asks over its NATS leaf link on
//! `cls.core.relay-token.<edge>` (a subject only that edge's identity may
//! publish) and gets a short EdDSA token naming what it may publish and
//! subscribe to.

use std::time::Duration;

use protocol::ids::EdgeId;
use protocol::subjects::relay_token_subject;

use crate::MeshError;

/// A relay token for `edge` from core, with how long it lives.
pub async fn fetch_token(
    nats: &async_nats::Client,
    edge: &EdgeId,
) -> Result<(String, Duration), MeshError> {
    let body = serde_json::json!({ "edge_id": edge.as_str() }).to_string();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        nats.request(relay_token_subject(edge), body.into()),
    )
    .await
    .map_err(|_| MeshError::Disconnected("core did not answer the relay token request".into()))?
    .map_err(|e| MeshError::Disconnected(format!("relay token request: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| MeshError::Config(format!("relay token reply: {e}")))?;
    let ttl = v["expires_in"]
        .as_u64()
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(protocol::claims::RELAY_TTL_SECS as u64));
    match v["token"].as_str() {
        Some(t) => Ok((t.to_owned(), ttl)),
        None => {
            tracing::warn!(error = %v["error"], "core refused a relay token");
            Err(MeshError::Unauthorized)
        }
    }
}
