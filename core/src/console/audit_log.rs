//! Reading the audit log (admins): who did what to which record, newest
//! first, filtered by actor, action, target and time.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_limit;
use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::QueryParams;
use crate::identity::Auth;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// The acting user's id.
    #[param(value_type = Option<String>, format = Uuid)]
    actor: Option<Uuid>,
    /// An action (`user.updated`), or a prefix ending in a dot (`course.`).
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// From this instant (RFC 3339), inclusive.
    from: Option<DateTime<Utc>>,
    /// Up to this instant, exclusive.
    to: Option<DateTime<Utc>>,
    /// 1 to 500; 100 when absent.
    limit: Option<i64>,
    /// An entry id from `next_before`: the page starts below it.
    before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub details: Value,
    /// The address the request came from (absent for the command line and
    /// background work).
    pub source_addr: Option<String>,
    /// The entry's place in the tenant's hash chain (`GET /audit/verify`).
    pub chain_seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

fn short(what: &str, v: &Option<String>) -> ApiResult<()> {
    if v.as_deref().is_some_and(|s| s.is_empty() || s.len() > 200) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("{what} is 1 to 200 characters"),
        ));
    }
    Ok(())
}

/// The tenant's audit log, newest first (admins).
#[utoipa::path(get, path = "/audit", operation_id = "list_audit", tag = "console", params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        (status = 400, description = "Bad query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    auth.require_admin()?;
    let limit = page_limit(q.limit, 100, 500)?;
    short("action", &q.action)?;
    short("target_type", &q.target_type)?;
    short("target_id", &q.target_id)?;
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f > t
    {
        return Err(ApiError::bad_request("invalid_query", "from is after to"));
    }
    // `course.` matches every course action; anything else matches exactly
    let (exact, prefix) = match q.action {
        Some(a) if a.ends_with('.') => (
            None,
            Some(format!("{}%", a.replace('%', "\\%").replace('_', "\\_"))),
        ),
        other => (other, None),
    };
    let mut entries: Vec<AuditEntry> = sqlx::query_as(
        "SELECT a.id, a.at, a.actor_id, u.email AS actor_email, a.action, a.target_type,
                a.target_id, a.details, host(a.source_addr) AS source_addr, a.chain_seq
           FROM audit_log a
           LEFT JOIN users u ON u.id = a.actor_id AND u.tenant_id = a.tenant_id
          WHERE a.tenant_id = $1
            AND ($2::uuid IS NULL OR a.actor_id = $2)
            AND ($3::text IS NULL OR a.action = $3)
            AND ($4::text IS NULL OR a.action LIKE $4)
            AND ($5::text IS NULL OR a.target_type = $5)
            AND ($6::text IS NULL OR a.target_id = $6)
            AND ($7::timestamptz IS NULL OR a.at >= $7)
            AND ($8::timestamptz IS NULL OR a.at < $8)
            AND ($9::bigint IS NULL OR a.id < $9)
          ORDER BY a.id DESC LIMIT $10",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(q.actor)
    .bind(exact)
    .bind(prefix)
    .bind(q.target_type)
    .bind(q.target_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.before)
    .bind(limit + 1)
    .fetch_all(app.db())
    .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let next_before = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}

/// Walks the tenant's audit chain (admins): whether any row was edited or
/// removed since it was written, and where.
#[utoipa::path(get, path = "/audit/verify", operation_id = "verify_audit_chain", tag = "console",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the walk found (`intact` false: see `breaks`)", body = crate::audit::ChainReport),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 429, description = "Too many walks (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn verify(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<crate::audit::ChainReport>> {
    auth.require_admin()?;
    app.console_limits()
        .take(auth.user_id, super::rate_limit::Kind::AuditVerify)?;
    let report = crate::audit::verify(app.db(), Some(auth.tenant_id)).await?;
    if !report.intact {
        tracing::error!(tenant_id = %auth.tenant_id, breaks = report.breaks.len(), "the audit chain is broken");
    }
    Ok(Json(report))
}
