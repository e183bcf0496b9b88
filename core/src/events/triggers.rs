//! Work that follows an event, once: a durable consumer of the hub stream
//! hands each event of the named types to a handler, acks it when the
//! handler succeeds and asks for it again (after `retry`) when it fails.
//! Artifact jobs (`session.ended`, `recording.finalized`) and the recording
//! joiner (`recording.finalized`) run on it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures::StreamExt;
use protocol::subjects::HUB_STREAM;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppState;

/// What a trigger needs of an event (its envelope's head).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Head {
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub seq: i64,
}

/// A durable consumer `name` on the hub stream.
pub(crate) struct Trigger<'a> {
    pub name: &'a str,
    /// The event types handed to the handler (every other is acked).
    pub types: &'a [&'a str],
    /// How long a handler may take before the event is delivered again.
    pub ack_wait: Duration,
    /// When a failed event comes back.
    pub retry: Duration,
}

/// Runs `trigger` until `stop`.
pub(crate) async fn run<F, Fut>(
    app: &AppState,
    trigger: Trigger<'_>,
    stop: CancellationToken,
    handle: F,
) -> anyhow::Result<()>
where
    F: Fn(Head) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = trigger.name;
    let stream = app
        .js()
        .get_stream(HUB_STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("hub stream: {e}"))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            name,
            consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: trigger.ack_wait,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{name} consumer: {e}"))?;
    tracing::info!(consumer = name, "trigger running");
    while !stop.is_cancelled() {
        let batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "trigger fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(m) = batch.next().await {
            let Ok(m) = m else { break };
            let ack = match serde_json::from_slice::<Head>(&m.payload) {
                Ok(h) if trigger.types.contains(&h.event_type.as_str()) => {
                    let session = h.session_id;
                    match handle(h).await {
                        Ok(()) => AckKind::Ack,
                        Err(e) => {
                            tracing::warn!(consumer = name, session_id = %session, error = %e, "trigger failed; retrying");
                            AckKind::Nak(Some(trigger.retry))
                        }
                    }
                }
                _ => AckKind::Ack,
            };
            let _ = m.ack_with(ack).await;
        }
    }
    Ok(())
}
