//! Core's registry of edges: who is alive, where, how loaded; and placing a
//! class on one.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use protocol::control::EdgeHealth;
use protocol::subjects::{EDGE_HEALTH_ALL, edge_health_subject};
use protocol::{EdgeId, TenantId};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::events::hub_stream;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::identity::Auth;

/// Listens to edge heartbeats, keeps `edges` current and makes sure the hub
/// stream sources every edge it has heard of.
pub async fn run_health_listener(app: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let mut sub = app.nats().subscribe(EDGE_HEALTH_ALL).await?;
    let mut sourced: HashSet<EdgeId> = HashSet::new();
    // each edge's process start, as last heard
    let mut boots: std::collections::HashMap<EdgeId, chrono::DateTime<chrono::Utc>> =
        Default::default();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let health: EdgeHealth = match serde_json::from_slice(&msg.payload) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(subject = %msg.subject, error = %e, "unreadable edge heartbeat");
                continue;
            }
        };
        if msg.subject.as_str() != edge_health_subject(&health.edge_id) {
            // The hub lets each edge's identity publish only its own
            // heartbeat subject, so the subject names the sender.
            let sender = msg.subject.as_str().split('.').nth(2).unwrap_or_default();
            if let Ok(sender) = EdgeId::new(sender) {
                crate::trust::refuse(
                    app.db(),
                    &sender,
                    crate::trust::Refusal::Heartbeat,
                    None,
                    serde_json::json!({ "claimed_edge": health.edge_id.as_str() }),
                )
                .await;
            }
            continue;
        }
        app.audience()
            .report(&health.edge_id, health.public_viewers.clone());
        if let Err(e) = record(&app, &health).await {
            tracing::warn!(edge_id = %health.edge_id, error = %e, "recording heartbeat failed");
            continue;
        }
        // an edge heard for the first time, or started again, holds no push
        // targets: its live classes' destinations are sent again
        if let Some(booted) = health.booted_at
            && boots.insert(health.edge_id.clone(), booted) != Some(booted)
        {
            let (app, edge) = (app.clone(), health.edge_id.clone());
            tokio::spawn(async move { crate::destinations::resend_to_edge(&app, &edge).await });
        }
        if !sourced.contains(&health.edge_id) {
            match hub_stream::add_edge(app.js(), &health.edge_id).await {
                Ok(_) => {
                    sourced.insert(health.edge_id.clone());
                }
                Err(e) => {
                    tracing::warn!(edge_id = %health.edge_id, error = %e, "could not source edge stream yet")
                }
            }
        }
    }
}

async fn record(app: &AppState, h: &EdgeHealth) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO edges (id, url, region, capacity, sessions, participants, accepting, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, region = EXCLUDED.region,
           capacity = EXCLUDED.capacity, sessions = EXCLUDED.sessions,
           participants = EXCLUDED.participants, accepting = EXCLUDED.accepting, last_seen = now()",
    )
    .bind(h.edge_id.as_str())
    .bind(&h.url)
    .bind(&h.region)
    .bind(h.capacity as i32)
    .bind(h.sessions as i32)
    .bind(h.participants as i32)
    .bind(h.accepting)
    .execute(app.db())
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct PlacedEdge {
    pub id: EdgeId,
    pub url: String,
}

/// Picks a healthy edge with room: the requested one, else one in the
/// region, else the least loaded. None healthy → 503: the class must not
/// start without its media plane.
pub async fn place(
    app: &AppState,
    tenant: TenantId,
    requested: Option<&str>,
    region: Option<&str>,
) -> ApiResult<PlacedEdge> {
    let stale = app.config().edge_stale_ms as f64 / 1000.0;
    let pick = |only: Option<String>, region: Option<String>| {
        sqlx::query_as::<_, (String, String)>(
            "SELECT id, url FROM edges
             WHERE accepting AND last_seen > now() - make_interval(secs => $1) AND sessions < capacity
               AND ($2::text IS NULL OR id = $2) AND ($3::text IS NULL OR region = $3)
               AND (tenant_id IS NULL OR tenant_id = $4)
             ORDER BY sessions::float8 / GREATEST(capacity, 1), id
             LIMIT 1",
        )
        .bind(stale)
        .bind(only)
        .bind(region)
        .bind(tenant.as_uuid())
        .fetch_optional(app.db())
    };
    let row = if let Some(id) = requested {
        let row = pick(Some(id.to_owned()), None).await?;
        if row.is_none() {
            return Err(ApiError::unavailable(
                "edge_unavailable",
                format!("edge {id} is not healthy or has no room; the class cannot start there"),
            ));
        }
        row
    } else {
        match region {
            Some(r) => match pick(None, Some(r.to_owned())).await? {
                Some(row) => Some(row),
                None => pick(None, None).await?,
            },
            None => pick(None, None).await?,
        }
    };
    let (id, url) = row.ok_or_else(|| {
        ApiError::unavailable(
            "no_edge_available",
            "no healthy edge can take this class; it cannot start",
        )
    })?;
    let id = EdgeId::new(id).map_err(|e| anyhow::anyhow!(e))?;
    Ok(PlacedEdge { id, url })
}

/// The edge a viewer of a class homed on `home` comes in through: the one
/// asked for by name, else the healthy one of `region` with the fewest
/// participants, else the home edge. Only edges `tenant` may use; a name no
/// such edge has is the caller's mistake (400 `unknown_edge`), a known edge
/// that is down is an outage (503 `edge_unavailable`); the home edge is
/// always answered (its class runs there). Joins and public viewers both
/// choose here.
pub async fn viewer_edge(
    app: &AppState,
    tenant: TenantId,
    home: &EdgeId,
    asked: Option<&str>,
    region: Option<&str>,
) -> ApiResult<PlacedEdge> {
    let edge = match (asked, region) {
        (Some(e), _) => EdgeId::new(e.to_owned())
            .map_err(|e| ApiError::bad_request("invalid_edge_id", e.to_string()))?,
        (None, Some(r)) if r.len() > 64 => {
            return Err(ApiError::bad_request(
                "invalid_region",
                "a region name is at most 64 characters",
            ));
        }
        (None, Some(r)) => nearest_in(app, tenant, r)
            .await?
            .unwrap_or_else(|| home.clone()),
        (None, None) => home.clone(),
    };
    let url = match healthy(app, tenant, &edge).await? {
        Some(url) => url,
        None if &edge == home => url_of(app, &edge).await?,
        None if !known(app, tenant, &edge).await? => {
            return Err(ApiError::bad_request(
                "unknown_edge",
                format!("no edge is called {edge}"),
            ));
        }
        None => {
            return Err(ApiError::unavailable(
                "edge_unavailable",
                format!("edge {edge} is not available"),
            ));
        }
    };
    Ok(PlacedEdge { id: edge, url })
}

/// Whether an edge `tenant` may use is healthy right now, with its URL.
pub async fn healthy(app: &AppState, tenant: TenantId, id: &EdgeId) -> ApiResult<Option<String>> {
    let stale = app.config().edge_stale_ms as f64 / 1000.0;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT url FROM edges WHERE id = $1 AND accepting AND last_seen > now() - make_interval(secs => $2)
           AND (tenant_id IS NULL OR tenant_id = $3)",
    )
    .bind(id.as_str())
    .bind(stale)
    .bind(tenant.as_uuid())
    .fetch_optional(app.db())
    .await?;
    Ok(row.map(|r| r.0))
}

/// Whether an edge of this name that `tenant` may use ever registered
/// (another tenant's edge is as unknown as a typo).
pub async fn known(app: &AppState, tenant: TenantId, id: &EdgeId) -> ApiResult<bool> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM edges WHERE id = $1 AND (tenant_id IS NULL OR tenant_id = $2)",
    )
    .bind(id.as_str())
    .bind(tenant.as_uuid())
    .fetch_optional(app.db())
    .await?;
    Ok(row.is_some())
}

/// The healthy edge of a region with the fewest participants that
/// `tenant` may use, if any.
pub async fn nearest_in(
    app: &AppState,
    tenant: TenantId,
    region: &str,
) -> ApiResult<Option<EdgeId>> {
    let stale = app.config().edge_stale_ms as f64 / 1000.0;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM edges WHERE region = $1 AND accepting AND last_seen > now() - make_interval(secs => $2)
           AND (tenant_id IS NULL OR tenant_id = $3)
         ORDER BY participants, id LIMIT 1",
    )
    .bind(region)
    .bind(stale)
    .bind(tenant.as_uuid())
    .fetch_optional(app.db())
    .await?;
    Ok(row.and_then(|(id,)| EdgeId::new(id).ok()))
}

pub async fn url_of(app: &AppState, id: &EdgeId) -> ApiResult<String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT url FROM edges WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(app.db())
        .await?;
    Ok(row.map(|r| r.0).unwrap_or_default())
}

/// An edge as core last heard of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EdgeInfo {
    pub id: String,
    pub url: String,
    pub region: Option<String>,
    pub capacity: i32,
    /// Live sessions on it.
    pub sessions: i32,
    pub participants: i32,
    pub accepting: bool,
    /// Accepting, and heard from recently.
    pub healthy: bool,
    pub last_seen: DateTime<Utc>,
    /// The tenant the edge belongs to (a campus box); null when shared.
    pub tenant_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EdgeList {
    pub edges: Vec<EdgeInfo>,
}

/// `GET /edges`: the caller's tenant's edges and the shared ones, with
/// their health (admins only). Another tenant's edges are not listed.
#[utoipa::path(get, path = "/edges", tag = "system", operation_id = "list_edges",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's own and the shared edges, by id", body = EdgeList),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
    ))]
pub async fn list(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<EdgeList>> {
    auth.require_admin()?;
    let stale = Duration::from_millis(app.config().edge_stale_ms);
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, String, Option<String>, i32, i32, i32, bool, DateTime<Utc>, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, url, region, capacity, sessions, participants, accepting, last_seen, tenant_id FROM edges
         WHERE tenant_id IS NULL OR tenant_id = $1 ORDER BY id",
    )
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    let now = Utc::now();
    let edges = rows
        .into_iter()
        .map(
            |(
                id,
                url,
                region,
                capacity,
                sessions,
                participants,
                accepting,
                last_seen,
                tenant_id,
            )| {
                let fresh = (now - last_seen)
                    .to_std()
                    .map(|d| d < stale)
                    .unwrap_or(true);
                EdgeInfo {
                    id,
                    url,
                    region,
                    capacity,
                    sessions,
                    participants,
                    accepting,
                    healthy: accepting && fresh,
                    last_seen,
                    tenant_id,
                }
            },
        )
        .collect();
    Ok(Json(EdgeList { edges }))
}

/// `core edge-owner`: the edge belongs to the tenant with this slug, or is
/// shared (None). An edge that never sent a heartbeat gets a row that is
/// not accepting until it does.
pub async fn set_owner(
    db: &sqlx::PgPool,
    edge: &str,
    tenant_slug: Option<&str>,
) -> anyhow::Result<()> {
    let edge = EdgeId::new(edge.to_owned()).map_err(|e| anyhow::anyhow!("{edge}: {e}"))?;
    let tenant: Option<Uuid> = match tenant_slug {
        Some(slug) => Some(
            sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_optional(db)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant has the slug {slug}"))?,
        ),
        None => None,
    };
    let mut tx = db.begin().await?;
    let before: Option<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM edges WHERE id = $1 FOR UPDATE")
            .bind(edge.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    sqlx::query(
        "INSERT INTO edges (id, url, capacity, accepting, last_seen, tenant_id)
         VALUES ($1, '', 0, false, 'epoch', $2)
         ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id",
    )
    .bind(edge.as_str())
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    // both the tenant that gains the edge and the one that loses it see it
    // in their audit log (an operator's command: no actor)
    if before != tenant {
        let details = serde_json::json!({
            "from": before, "to": tenant, "shared": tenant.is_none(),
        });
        for t in [before, tenant].into_iter().flatten() {
            crate::audit::record_tx(
                &mut tx,
                TenantId::from_uuid(t),
                None,
                "edge.owner_changed",
                "edge",
                edge.as_str(),
                details.clone(),
            )
            .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(edge_id = %edge, tenant = ?tenant_slug, "edge owner set");
    Ok(())
}
