//! The edge's standing connection to its relay. A background task fetches a
//! relay token from core (request/reply over the leaf link), connects, and
//! when the connection drops reconnects with backoff (a fresh token each
//! time). Publishers ask [`Uplink::client`] for the current connection and
//! publish again on a new one; nothing in a class waits on the relay.

use std::sync::Arc;
use std::time::Duration;

use protocol::ids::EdgeId;
use protocol::subjects::RELAY_TOKEN_REQUEST;
use tokio::sync::watch;

use super::{MeshClient, MeshError};

#[derive(Clone)]
pub struct Uplink {
    current: watch::Receiver<Option<Arc<MeshClient>>>,
    enabled: bool,
}

impl Uplink {
    /// No relay configured: the edge serves only its own students.
    pub fn disabled() -> Uplink {
        Uplink {
            current: watch::channel(None).1,
            enabled: false,
        }
    }

    /// Keeps a connection to `url` up for the edge's lifetime.
    pub fn start(url: String, ca_pem: Vec<u8>, edge: EdgeId, nats: async_nats::Client) -> Uplink {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match connect(&url, &ca_pem, &edge, &nats).await {
                    Ok(client) => {
                        let client = Arc::new(client);
                        tracing::info!(relay = %url, "connected to the relay");
                        backoff = Duration::from_millis(250);
                        if tx.send(Some(client.clone())).is_err() {
                            return;
                        }
                        let why = client.closed().await;
                        tracing::warn!(relay = %url, error = %why, "relay connection lost; reconnecting");
                        let _ = tx.send(None);
                    }
                    Err(e) => {
                        tracing::warn!(relay = %url, error = %e, retry_in_ms = backoff.as_millis() as u64, "relay not reachable");
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        Uplink {
            current: rx,
            enabled: true,
        }
    }

    /// Whether a relay is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The relay connection, if it is up now.
    pub fn client(&self) -> Option<Arc<MeshClient>> {
        self.current.borrow().clone().filter(|c| !c.is_closed())
    }

    /// Waits until the connection changes (up or down).
    pub async fn changed(&mut self) {
        if self.current.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A relay token for `edge`, from core.
pub async fn fetch_token(nats: &async_nats::Client, edge: &EdgeId) -> Result<String, MeshError> {
    let body = serde_json::json!({ "edge_id": edge.as_str() }).to_string();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        nats.request(RELAY_TOKEN_REQUEST, body.into()),
    )
    .await
    .map_err(|_| MeshError::Disconnected("core did not answer the relay token request".into()))?
    .map_err(|e| MeshError::Disconnected(format!("relay token request: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| MeshError::Config(format!("relay token reply: {e}")))?;
    match v["token"].as_str() {
        Some(t) => Ok(t.to_owned()),
        None => {
            tracing::warn!(error = %v["error"], "core refused a relay token");
            Err(MeshError::Unauthorized)
        }
    }
}

async fn connect(
    url: &str,
    ca_pem: &[u8],
    edge: &EdgeId,
    nats: &async_nats::Client,
) -> Result<MeshClient, MeshError> {
    let token = fetch_token(nats, edge).await?;
    MeshClient::connect(url, ca_pem, &token).await
}
