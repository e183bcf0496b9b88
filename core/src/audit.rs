//! The audit log: who did what to which record. Append-only in the schema.

use protocol::{TenantId, UserId};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

pub(crate) async fn record_tx(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    actor: Option<UserId>,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_uuid())
    .bind(actor.map(|a| a.as_uuid()))
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
