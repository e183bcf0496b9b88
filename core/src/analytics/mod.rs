//! Analytics and learning intelligence (spec service 8): who came to each
//! class and for how long, who took part and how, the class minute by
//! minute, poll results, and which parts of a replay people watch; per
//! class, per course and per student, as JSON or CSV; and the same as xAPI
//! statements to the tenant's Learning Record Store.
//!
//! Analytics read events only and never slow a class: the `core-analytics`
//! consumer of the hub stream is told which classes moved and folds their
//! committed log (`session_state_events`, up to `sessions.last_seq`) past
//! where it stands ([`store::catch_up`]), writing the fold's tables and its
//! new position in one transaction. A redelivered message finds the fold
//! past it and changes nothing; a message ahead of ingest waits and comes
//! again. `core analytics rebuild` folds every kept log from its start and
//! gets the same rows.
//!
//! Privacy: someone who declined recording counts for attendance only; a
//! minor is shown (and sent to the LRS) as attendance only; an erased
//! person is taken out of every fold and never folded again; names are
//! shown only to who may see that student (the course's staff, an admin,
//! the student themself).

pub(crate) mod beacons;
pub(crate) mod course;
pub(crate) mod fold;
pub(crate) mod routes;
pub(crate) mod store;
pub(crate) mod student;
pub(crate) mod xapi;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures::StreamExt;
use protocol::subjects::{ANALYTICS_CONSUMER, HUB_STREAM};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::events::triggers::Head;

/// Messages fetched per round.
const BATCH: usize = 1_000;
/// A message whose class cannot be folded (its start never committed) is
/// dropped after this many deliveries.
const MAX_DELIVERIES: i64 = 40;

/// Runs the analytics consumer until `stop`.
pub(crate) async fn run(app: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let stream = app
        .js()
        .get_stream(HUB_STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("hub stream: {e}"))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            ANALYTICS_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(ANALYTICS_CONSUMER.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 50_000,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("analytics consumer: {e}"))?;
    let home = xapi::home_page(&app.config().public_url);
    tracing::info!("analytics consumer running");
    while !stop.is_cancelled() {
        let batch = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_millis(300))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "analytics fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut msgs = Vec::new();
        while let Some(m) = batch.next().await {
            match m {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        if msgs.is_empty() {
            continue;
        }
        let heads: Vec<Option<Head>> = msgs
            .iter()
            .map(|m| serde_json::from_slice::<Head>(&m.payload).ok())
            .collect();
        let mut classes: HashMap<Uuid, Uuid> = HashMap::new();
        for h in heads.iter().flatten() {
            classes.insert(h.session_id, h.tenant_id);
        }
        // how far each class's fold reached (None: it could not be folded)
        let mut reached: HashMap<Uuid, i64> = HashMap::new();
        let span = tracing::info_span!(
            "analytics_batch",
            messages = msgs.len(),
            classes = classes.len()
        );
        async {
            for (session, tenant) in classes {
                match fold_class(app.db(), &home, tenant, session).await {
                    Ok(Some(seq)) => {
                        reached.insert(session, seq);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(session_id = %session, error = %e, "analytics fold failed; will retry");
                    }
                }
            }
        }
        .instrument(span)
        .await;
        for (m, head) in msgs.iter().zip(heads) {
            let ack = match head {
                // not an event: nothing to fold
                None => AckKind::Ack,
                Some(h) if reached.get(&h.session_id).is_some_and(|r| *r >= h.seq) => AckKind::Ack,
                Some(h) => {
                    let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
                    if delivered >= MAX_DELIVERIES {
                        tracing::warn!(session_id = %h.session_id, seq = h.seq, "analytics gave up on an event its class never committed");
                        AckKind::Term
                    } else {
                        AckKind::Nak(Some(Duration::from_millis(300)))
                    }
                }
            };
            let _ = m.ack_with(ack).await;
        }
    }
    Ok(())
}

/// Folds one class as far as its committed log goes (and queues its xAPI
/// statements); its fold's `last_seq`, `None` when its log does not begin
/// with `session.started` yet.
pub async fn fold_class(
    db: &sqlx::PgPool,
    home: &str,
    tenant: Uuid,
    session: Uuid,
) -> anyhow::Result<Option<i64>> {
    let mut tx = db.begin().await?;
    let caught = store::catch_up(&mut tx, tenant, session, false).await?;
    let Some(fold) = caught.fold else {
        return Ok(None);
    };
    xapi::queue(&mut tx, home, &fold, &caught.noted).await?;
    tx.commit().await?;
    Ok(Some(fold.last_seq))
}

/// `core analytics rebuild`: see [`store::rebuild`].
pub async fn rebuild(
    db: &sqlx::PgPool,
    public_url: &str,
    tenant: Option<Uuid>,
) -> anyhow::Result<(u64, u64)> {
    store::rebuild(db, &xapi::home_page(public_url), tenant).await
}

/// Takes an erased person out of every fold and analytics table (what the
/// erasure job does inside its own transaction).
pub async fn erase_user(db: &sqlx::PgPool, tenant: Uuid, user: Uuid) -> anyhow::Result<u64> {
    let mut tx = db.begin().await?;
    let n = store::erase(&mut tx, tenant, user).await?;
    tx.commit().await?;
    Ok(n)
}
