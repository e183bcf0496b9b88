//! Core's requests to this edge (start, command, state, abort) over NATS.

use futures::StreamExt;
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::subjects::edge_control_subject;
use tokio_util::sync::CancellationToken;

use crate::runtime::registry::Registry;

pub async fn serve(
    nats: async_nats::Client,
    registry: Registry,
    edge: protocol::EdgeId,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut sub = nats.subscribe(edge_control_subject(&edge)).await?;
    tracing::info!(edge_id = %edge, "control endpoint listening");
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let registry = registry.clone();
        let nats = nats.clone();
        // Each request runs on its own task; per-session order is kept by
        // the session's writer, not here.
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<EdgeRequest>(&msg.payload) {
                Ok(req) => registry.handle_request(req).await,
                Err(e) => EdgeReply::Failed {
                    code: "bad_request".into(),
                    message: e.to_string(),
                },
            };
            match serde_json::to_vec(&answer) {
                Ok(bytes) => {
                    if let Err(e) = nats.publish(reply_to, bytes.into()).await {
                        tracing::warn!(error = %e, "could not answer core");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not encode reply"),
            }
        });
    }
}
