//! The trust boundary's refusals: a heartbeat, relay token request or event
//! that arrived under an identity that may not send it. NATS permissions on
//! the hub already keep an edge to its own subjects; these are the checks
//! behind them (the body names another edge, an event of a session homed on
//! another edge). Each refusal is counted (`/metrics`), kept in
//! `trust_refusals`, and written to the tenant's audit log when it concerns
//! one. Nothing refused is ingested.

use std::sync::atomic::{AtomicU64, Ordering};

use protocol::{EdgeId, TenantId};
use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Heartbeat,
    RelayToken,
    Event,
}

impl Refusal {
    pub(crate) const ALL: [Refusal; 3] = [Refusal::Heartbeat, Refusal::RelayToken, Refusal::Event];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Heartbeat => "heartbeat",
            Refusal::RelayToken => "relay_token",
            Refusal::Event => "event",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// How many refusals of `kind` this process has made.
pub(crate) fn count(kind: Refusal) -> u64 {
    COUNTS[kind.index()].load(Ordering::Relaxed)
}

/// Counts, keeps and audits one refusal. `tenant` is the tenant it concerns
/// (the session's, or the edge owner's); when None the edge's owner is used.
pub(crate) async fn refuse(
    db: &PgPool,
    edge: &EdgeId,
    kind: Refusal,
    tenant: Option<TenantId>,
    details: Value,
) {
    COUNTS[kind.index()].fetch_add(1, Ordering::Relaxed);
    tracing::warn!(edge_id = %edge, kind = kind.as_str(), %details, "trust boundary refused a message");
    if let Err(e) = write(db, edge, kind, tenant, details).await {
        tracing::error!(edge_id = %edge, error = %e, "could not record a refusal");
    }
}

async fn write(
    db: &PgPool,
    edge: &EdgeId,
    kind: Refusal,
    tenant: Option<TenantId>,
    details: Value,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let tenant = match tenant {
        Some(t) => Some(t),
        None => {
            sqlx::query_scalar::<_, Option<uuid::Uuid>>("SELECT tenant_id FROM edges WHERE id = $1")
                .bind(edge.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .flatten()
                .map(TenantId::from_uuid)
        }
    };
    sqlx::query(
        "INSERT INTO trust_refusals (edge_id, kind, tenant_id, details) VALUES ($1, $2, $3, $4)",
    )
    .bind(edge.as_str())
    .bind(kind.as_str())
    .bind(tenant.map(|t| t.as_uuid()))
    .bind(&details)
    .execute(&mut *tx)
    .await?;
    if let Some(t) = tenant {
        crate::audit::record_tx(
            &mut tx,
            t,
            None,
            &format!("{}.refused", kind.as_str()),
            "edge",
            edge.as_str(),
            details,
        )
        .await?;
    }
    tx.commit().await
}

/// The counters in Prometheus text format.
pub(crate) fn metrics_text() -> String {
    let mut out = String::from(
        "# HELP classroom_trust_refusals_total Messages the trust boundary refused, by kind.\n\
         # TYPE classroom_trust_refusals_total counter\n",
    );
    for kind in Refusal::ALL {
        out.push_str(&format!(
            "classroom_trust_refusals_total{{kind=\"{}\"}} {}\n",
            kind.as_str(),
            count(kind)
        ));
    }
    out
}
