//! Core's requests to this edge (start, command, state, abort) over NATS,
//! and other edges' requests for the state of a class homed here (on
//! `cls.edge.<this>.state.<asking edge>`: only state, nothing that changes).

use futures::StreamExt;
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::subjects::{edge_control_subject, edge_state_requests};
use tokio_util::sync::CancellationToken;

use crate::runtime::registry::Registry;

pub(crate) async fn serve(
    nats: async_nats::Client,
    registry: Registry,
    edge: protocol::EdgeId,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let control = nats.subscribe(edge_control_subject(&edge)).await?;
    let peers = nats.subscribe(edge_state_requests(&edge)).await?;
    tracing::info!(edge_id = %edge, "control endpoint listening");
    let mut both = futures::stream::select(control.map(|m| (m, false)), peers.map(|m| (m, true)));
    loop {
        let (msg, from_peer) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = both.next() => match m { Some(m) => m, None => return Ok(()) },
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
                Ok(req @ EdgeRequest::State { .. }) => registry.handle_request(req).await,
                Ok(_) if from_peer => {
                    tracing::warn!(subject = %msg.subject, "an edge asked for more than state; refused");
                    EdgeReply::Failed {
                        code: "forbidden".into(),
                        message: "edges may only ask for a class's state".into(),
                    }
                }
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
