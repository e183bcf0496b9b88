//! `session_state_events` in Postgres: the append-only copy of every
//! session's log, gap-free up to `sessions.last_seq`.

use chrono::{DateTime, Utc};
use protocol::{Envelope, SessionId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::privacy::Vault;

/// An event as stored: the envelope with its payload kept as raw JSON, so a
/// newer schema version than this core knows is stored intact.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq)]
pub(crate) struct StoredEvent {
    pub event_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub seq: i64,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub v: i16,
    pub occurred_at: DateTime<Utc>,
    pub actor: Value,
    pub source: String,
    pub payload: Value,
}

impl StoredEvent {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<StoredEvent, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub(crate) fn from_envelope(ev: &Envelope) -> Result<StoredEvent, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(ev)?)
    }

    /// The typed envelope, when this core knows the event's schema.
    pub(crate) fn typed(&self) -> Option<Envelope> {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

/// Inserts one event; a second copy of the same event is a no-op. Returns
/// whether a row was written.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    ev: &StoredEvent,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO session_state_events
           (event_id, tenant_id, session_id, seq, type, v, occurred_at, actor, source, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING",
    )
    .bind(ev.event_id)
    .bind(ev.tenant_id)
    .bind(ev.session_id)
    .bind(ev.seq)
    .bind(&ev.event_type)
    .bind(ev.v)
    .bind(ev.occurred_at)
    .bind(&ev.actor)
    .bind(&ev.source)
    .bind(&ev.payload)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Inserts many events in one statement; duplicates are no-ops. Returns the
/// ids that were new.
pub(crate) async fn insert_many(
    tx: &mut Transaction<'_, Postgres>,
    evs: &[StoredEvent],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "INSERT INTO session_state_events
           (event_id, tenant_id, session_id, seq, type, v, occurred_at, actor, source, payload)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                              $6::smallint[], $7::timestamptz[], $8::jsonb[], $9::text[], $10::jsonb[])
         ON CONFLICT DO NOTHING
         RETURNING event_id",
    )
    .bind(evs.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.session_id).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.seq).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.v).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.actor.clone()).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.source.clone()).collect::<Vec<_>>())
    .bind(evs.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Events after `after`, up to the session's gap-free high-water mark, with
/// their personal fields opened (placeholders for an erased person).
pub(crate) async fn read_after(
    db: &PgPool,
    vault: &Vault,
    tenant: TenantId,
    session: SessionId,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let mut events: Vec<StoredEvent> = sqlx::query_as(
        "SELECT e.event_id, e.tenant_id, e.session_id, e.seq, e.type, e.v, e.occurred_at,
                e.actor, e.source, e.payload
         FROM session_state_events e
         JOIN sessions s ON s.id = e.session_id AND s.tenant_id = e.tenant_id
         WHERE e.session_id = $1 AND e.tenant_id = $2 AND e.seq > $3 AND e.seq <= s.last_seq
         ORDER BY e.seq
         LIMIT $4",
    )
    .bind(session.as_uuid())
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?;
    vault.open(db, &mut events).await?;
    Ok(events)
}

/// The whole gap-free log of a session, typed, for folding.
pub(crate) async fn read_all_typed(
    db: &PgPool,
    vault: &Vault,
    tenant: TenantId,
    session: SessionId,
) -> anyhow::Result<Vec<Envelope>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = read_after(db, vault, tenant, session, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for ev in &page {
            match ev.typed() {
                Some(t) => out.push(t),
                None => anyhow::bail!(
                    "event {} ({}) has a schema this core cannot read",
                    ev.seq,
                    ev.event_type
                ),
            }
        }
    }
    Ok(out)
}
