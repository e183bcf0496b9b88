//! The audit log: who did what to which record, from where. Append-only in
//! the schema and tamper-evident: each tenant's rows form a hash chain
//! (`migrations/0006_audit_chain.sql`: `chain_seq` without gaps, each
//! row's `hash` over the previous hash and its own fields, the chain's head
//! kept in `audit_chain_heads`). [`verify`] walks it; `core audit verify`
//! and `GET /audit/verify` report what it finds.

use std::future::Future;
use std::net::IpAddr;

use futures::TryStreamExt;
use protocol::{TenantId, UserId};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

tokio::task_local! {
    /// The address of the request being served (set by the HTTP layer).
    static SOURCE: Option<IpAddr>;
}

/// Runs `f` with `addr` as the source address of the audit rows it writes.
pub(crate) async fn with_source<F: Future>(addr: Option<IpAddr>, f: F) -> F::Output {
    SOURCE.scope(addr, f).await
}

fn source() -> Option<IpAddr> {
    SOURCE.try_with(|s| *s).ok().flatten()
}

/// Appends one row to the tenant's chain, inside the caller's transaction
/// (the chain's head stays locked until it commits, so rows of one tenant
/// are chained one after another).
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
        "INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash)
         VALUES ($1, 0, ''::bytea) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.as_uuid())
    .execute(&mut **tx)
    .await?;
    let (last_seq, last_hash): (i64, Vec<u8>) = sqlx::query_as(
        "SELECT last_seq, last_hash FROM audit_chain_heads WHERE tenant_id = $1 FOR UPDATE",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut **tx)
    .await?;
    let prev = (last_seq > 0).then_some(last_hash);
    let seq = last_seq + 1;
    let (hash,): (Vec<u8>,) = sqlx::query_as(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id, details,
                                at, chain_seq, prev_hash, source_addr, hash)
         VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8, $9::inet,
                 audit_row_hash($8, $1, $7, $2, $3, $4, $5, $6, now(), $9::inet))
         RETURNING hash",
    )
    .bind(tenant.as_uuid())
    .bind(actor.map(|a| a.as_uuid()))
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(details)
    .bind(seq)
    .bind(prev)
    .bind(source().map(|a| a.to_string()))
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_chain_heads SET last_seq = $2, last_hash = $3 WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .bind(seq)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Where a chain is broken, and how.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ChainBreak {
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: Uuid,
    /// The row's number in the tenant's chain (for a missing tail: the
    /// number the head expected).
    pub chain_seq: i64,
    /// The row's id, when there is a row.
    pub id: Option<i64>,
    /// `edited` (the row's hash does not match its fields), `missing`
    /// (rows before it were removed), `relinked` (it does not follow the
    /// row before it), `tail_missing` (the last rows were removed).
    pub problem: String,
}

/// What a walk of the chains found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainReport {
    /// Every chain walked is whole.
    pub intact: bool,
    /// Rows checked.
    pub rows: u64,
    /// Tenants (chains) checked.
    pub tenants: u64,
    /// The first breaks found (at most 100).
    pub breaks: Vec<ChainBreak>,
}

const MAX_BREAKS: usize = 100;

/// Walks the audit chain of one tenant, or of every tenant.
pub async fn verify(db: &PgPool, tenant: Option<TenantId>) -> Result<ChainReport, sqlx::Error> {
    let tenant = tenant.map(|t| t.as_uuid());
    let mut report = ChainReport {
        intact: true,
        rows: 0,
        tenants: 0,
        breaks: Vec::new(),
    };
    let mut heads: std::collections::BTreeMap<Uuid, (i64, Vec<u8>)> = sqlx::query_as(
        "SELECT tenant_id, last_seq, last_hash FROM audit_chain_heads
          WHERE $1::uuid IS NULL OR tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|(t, n, h): (Uuid, i64, Vec<u8>)| (t, (n, h)))
    .collect();
    let mut rows = sqlx::query_as::<_, (Uuid, i64, i64, Option<Vec<u8>>, Vec<u8>, bool)>(
        "SELECT tenant_id, id, chain_seq, prev_hash, hash,
                hash = audit_row_hash(prev_hash, tenant_id, chain_seq, actor_id, action,
                                      target_type, target_id, details, at, source_addr)
           FROM audit_log
          WHERE $1::uuid IS NULL OR tenant_id = $1
          ORDER BY tenant_id, chain_seq",
    )
    .bind(tenant)
    .fetch(db);
    let mut walk = Walk::default();
    while let Some((t, id, seq, prev, hash, intact)) = rows.try_next().await? {
        if walk.tenant != Some(t) {
            walk.finish(&mut heads, &mut report);
            walk = Walk {
                tenant: Some(t),
                ..Walk::default()
            };
            report.tenants += 1;
        }
        report.rows += 1;
        let problem = if seq != walk.seq + 1 {
            Some("missing")
        } else if prev.as_deref() != walk.hash.as_deref() {
            Some("relinked")
        } else if !intact {
            Some("edited")
        } else {
            None
        };
        if let Some(problem) = problem {
            report.push(ChainBreak {
                tenant_id: t,
                chain_seq: seq,
                id: Some(id),
                problem: problem.into(),
            });
        }
        walk.seq = seq;
        walk.hash = Some(hash);
    }
    walk.finish(&mut heads, &mut report);
    // heads whose every row is gone
    for (t, (n, _)) in heads {
        if n > 0 {
            report.tenants += 1;
            report.push(ChainBreak {
                tenant_id: t,
                chain_seq: 1,
                id: None,
                problem: "tail_missing".into(),
            });
        }
    }
    Ok(report)
}

impl ChainReport {
    fn push(&mut self, b: ChainBreak) {
        self.intact = false;
        if self.breaks.len() < MAX_BREAKS {
            self.breaks.push(b);
        }
    }
}

/// Where the walk of one tenant's chain is.
#[derive(Default)]
struct Walk {
    tenant: Option<Uuid>,
    seq: i64,
    hash: Option<Vec<u8>>,
}

impl Walk {
    /// The chain must end where its head says.
    fn finish(
        &self,
        heads: &mut std::collections::BTreeMap<Uuid, (i64, Vec<u8>)>,
        report: &mut ChainReport,
    ) {
        let Some(t) = self.tenant else { return };
        let head = heads.remove(&t);
        let reaches = head
            .as_ref()
            .is_some_and(|(n, h)| *n == self.seq && Some(h) == self.hash.as_ref());
        if !reaches {
            report.push(ChainBreak {
                tenant_id: t,
                chain_seq: head.map_or(self.seq, |(n, _)| n),
                id: None,
                problem: "tail_missing".into(),
            });
        }
    }
}
