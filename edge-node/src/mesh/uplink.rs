//! The edge's standing connection to its relay. A background task fetches a
//! relay token from core (request/reply over the leaf link), connects, and
//! when the connection drops reconnects with backoff (a fresh token each
//! time). Publishers ask [`Uplink::client`] for the current connection and
//! publish again on a new one; nothing in a class waits on the relay.
//!
//! A token names what the edge may publish (the classes it hosts when core
//! issued it) and subscribe to, and lives [`protocol::claims::RELAY_TTL_SECS`];
//! the relay closes the connection when it expires. So the edge connects
//! again with a fresh token a minute before that, and whenever a publisher
//! is refused (a class started after the token was issued): the new
//! connection comes up before the old one is let go.

use std::sync::Arc;
use std::time::Duration;

use protocol::ids::EdgeId;
use tokio::sync::watch;

use super::{MeshClient, MeshError, fetch_token};

#[derive(Clone)]
pub struct Uplink {
    current: watch::Receiver<Option<Arc<MeshClient>>>,
    enabled: bool,
    refresh: Arc<tokio::sync::Notify>,
}

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Refusal-driven renewals are at least this far apart (doubling while
/// they keep coming).
const MIN_RENEW_GAP: Duration = Duration::from_secs(2);

impl Uplink {
    /// No relay configured: the edge serves only its own students.
    pub fn disabled() -> Uplink {
        Uplink {
            current: watch::channel(None).1,
            enabled: false,
            refresh: Arc::default(),
        }
    }

    /// Keeps a connection to `url` up for the edge's lifetime.
    pub fn start(url: String, ca_pem: Vec<u8>, edge: EdgeId, nats: async_nats::Client) -> Uplink {
        let (tx, rx) = watch::channel(None);
        let refresh = Arc::new(tokio::sync::Notify::new());
        let renew = refresh.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            // refusal-driven renewals in a row: each waits twice as long
            // (2 s … 64 s), so a publisher refused for good cannot make the
            // edge reconnect every two seconds; a connection that lived five
            // minutes starts the count again
            let mut asked_in_a_row = 0u32;
            loop {
                match connect(&url, &ca_pem, &edge, &nats).await {
                    Ok((client, ttl)) => {
                        let client = Arc::new(client);
                        tracing::info!(relay = %url, ttl_secs = ttl.as_secs(), "connected to the relay");
                        backoff = Duration::from_millis(250);
                        // the new connection replaces the old one here;
                        // publishers move over on `changed`
                        if tx.send(Some(client.clone())).is_err() {
                            return;
                        }
                        let renew_in = ttl.saturating_sub(RENEW_BEFORE).max(MIN_RENEW_GAP);
                        let gap = MIN_RENEW_GAP * 2u32.pow(asked_in_a_row.min(5));
                        let up_since = tokio::time::Instant::now();
                        let asked = async {
                            tokio::time::sleep(gap).await;
                            renew.notified().await;
                        };
                        tokio::select! {
                            why = client.closed() => {
                                tracing::warn!(relay = %url, error = %why, "relay connection lost; reconnecting");
                                let _ = tx.send(None);
                            }
                            _ = tokio::time::sleep(renew_in) => {
                                tracing::info!(relay = %url, "relay token about to expire; connecting with a fresh one");
                                continue;
                            }
                            _ = asked => {
                                asked_in_a_row = if up_since.elapsed() > Duration::from_secs(300) {
                                    1
                                } else {
                                    asked_in_a_row + 1
                                };
                                tracing::info!(relay = %url, in_a_row = asked_in_a_row, "a publisher was refused; connecting with a fresh token");
                                continue;
                            }
                        }
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
            refresh,
        }
    }

    /// Asks for a connection with a fresh token (the current one does not
    /// cover a class that started since); at most one every two seconds,
    /// backing off while they keep coming.
    pub fn refresh(&self) {
        self.refresh.notify_one();
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

async fn connect(
    url: &str,
    ca_pem: &[u8],
    edge: &EdgeId,
    nats: &async_nats::Client,
) -> Result<(MeshClient, Duration), MeshError> {
    let (token, ttl) = fetch_token(nats, edge).await?;
    Ok((MeshClient::connect(url, ca_pem, &token).await?, ttl))
}
