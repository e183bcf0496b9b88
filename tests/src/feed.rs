//! A live-feed client: the edge's WebSocket, as a browser would use it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Feed {
    ws: Ws,
}

impl Feed {
    pub async fn connect(
        edge_url: &str,
        session: &str,
        token: &str,
        after: Option<i64>,
    ) -> anyhow::Result<Feed> {
        let base = edge_url.replacen("http", "ws", 1);
        let mut url = format!("{base}/sessions/{session}/live?token={token}");
        if let Some(a) = after {
            url += &format!("&after={a}");
        }
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Feed { ws })
    }

    /// The next JSON message, or `None` at the deadline or when closed.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Events until one with `seq >= until` arrives (inclusive), under a deadline.
    pub async fn events_until(
        &mut self,
        until: i64,
        within: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let end = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = self.next(left).await else {
                anyhow::bail!(
                    "feed ended or timed out before seq {until}; got {:?}",
                    out.iter()
                        .map(|e: &Value| e["seq"].clone())
                        .collect::<Vec<_>>()
                );
            };
            if m["kind"] == "event" {
                let seq = m["event"]["seq"].as_i64().unwrap_or(0);
                out.push(m["event"].clone());
                if seq >= until {
                    return Ok(out);
                }
            }
        }
    }

    /// Reads frames without decoding them until the feed ends (a client
    /// that follows the class but is not under test).
    pub async fn drain(mut self) {
        while let Some(Ok(_)) = self.ws.next().await {}
    }

    pub async fn request_snapshot(&mut self) -> anyhow::Result<()> {
        self.ws
            .send(Message::Text(r#"{"type":"snapshot"}"#.into()))
            .await?;
        Ok(())
    }

    /// Whether the server ends the connection within `within` (frames that
    /// arrive first are read and dropped); `false` when it is still open.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(end, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends any text frame (a client that misbehaves).
    pub async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Drops the connection abruptly (no close handshake).
    pub fn drop_connection(self) {
        drop(self.ws);
    }
}
