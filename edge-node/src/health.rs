//! The heartbeat core uses to place classes: alive, where, how loaded, and
//! whether this edge can take a class now (its event log answers).

use std::time::Duration;

use chrono::Utc;
use protocol::control::EdgeHealth;
use protocol::subjects::edge_health_subject;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::runtime::registry::Registry;

pub(crate) async fn run(
    nats: async_nats::Client,
    registry: Registry,
    sfu: crate::sfu::Sfu,
    config: Config,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let subject = edge_health_subject(&config.edge_id);
    let booted_at = Utc::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // the event log and the media plane: a class must not start without both
        let accepting = registry.log().healthy().await && sfu.alive();
        let mut participants = 0u32;
        let handles = registry.handles().await;
        for h in &handles {
            if let Ok(s) = h.summary().await {
                participants += s.present;
            }
        }
        let health = EdgeHealth {
            edge_id: config.edge_id.clone(),
            url: config.public_url.clone(),
            region: config.region.clone(),
            capacity: config.capacity,
            sessions: handles.len() as u32,
            participants,
            accepting,
            at: Utc::now(),
            public_viewers: sfu
                .audience()
                .await
                .into_iter()
                .filter(|(_, a)| a.public > 0)
                .map(|(s, a)| (s, a.public))
                .collect(),
            booted_at: Some(booted_at),
        };
        if let Ok(bytes) = serde_json::to_vec(&health)
            && let Err(e) = nats.publish(subject.clone(), bytes.into()).await
        {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
    }
}
