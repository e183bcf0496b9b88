//! Retention: a written policy per tenant (how many days each kind of data
//! lives), legal hold per course, and the sweep ([`sweep`]) that removes
//! what is past the policy and records that it did.
//!
//! Routes (admins): `GET`/`PATCH /tenant/retention`, `PUT
//! /courses/{id}/legal-hold`, `GET /retention/removals`, and `POST
//! /tenant/retention/sweep` to sweep the tenant now (the scheduler sweeps
//! every tenant every `--retention-interval-secs`).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds, QueryParams};
use crate::identity::Auth;

pub(crate) mod sweep;

/// The longest any policy may keep anything: 100 years.
const MAX_DAYS: i32 = 36_500;

/// How long each kind of data lives, in days after the class ended (the
/// access log: after the access).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct RetentionPolicy {
    /// A whole class: its events, seats, artifacts, replay and recording.
    pub class_days: i32,
    /// A class's recording (at most `class_days`).
    pub recording_days: i32,
    /// A class's transcript, what is derived from it, and its search
    /// entries (at most `class_days`).
    pub transcript_days: i32,
    /// Replay openings and searches.
    pub access_log_days: i32,
    /// Analytics aggregates (from a class's end).
    pub analytics_days: i32,
    /// Raw replay viewing beacons (what they add up to is kept with the
    /// analytics).
    pub beacon_days: i32,
}

/// A tenant that never set a policy gets this one: three years for a class
/// and its transcript, one for recordings and access logs, two for
/// analytics. Nothing is kept indefinitely.
pub(crate) const DEFAULT_POLICY: RetentionPolicy = RetentionPolicy {
    class_days: 1095,
    recording_days: 365,
    transcript_days: 1095,
    access_log_days: 365,
    analytics_days: 730,
    beacon_days: 30,
};

impl RetentionPolicy {
    fn check(&self) -> Result<(), ApiError> {
        for (name, days) in [
            ("class_days", self.class_days),
            ("recording_days", self.recording_days),
            ("transcript_days", self.transcript_days),
            ("access_log_days", self.access_log_days),
            ("analytics_days", self.analytics_days),
            ("beacon_days", self.beacon_days),
        ] {
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(ApiError::bad_request(
                    "invalid_retention",
                    format!("{name} is 1 to {MAX_DAYS} days"),
                ));
            }
        }
        if self.recording_days > self.class_days || self.transcript_days > self.class_days {
            return Err(ApiError::bad_request(
                "invalid_retention",
                "a recording or transcript cannot outlive its class: recording_days and transcript_days are at most class_days",
            ));
        }
        Ok(())
    }
}

/// A tenant's policy, or the default.
pub(crate) async fn policy_of(db: &sqlx::PgPool, tenant: Uuid) -> sqlx::Result<RetentionPolicy> {
    let row: Option<RetentionPolicy> = sqlx::query_as(
        "SELECT class_days, recording_days, transcript_days, access_log_days, analytics_days, beacon_days
           FROM retention_policies WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    Ok(row.unwrap_or(DEFAULT_POLICY))
}

/// The tenant's retention policy (admins).
#[utoipa::path(get, path = "/tenant/retention", operation_id = "get_retention", tag = "privacy",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy (the default until an admin sets one)", body = RetentionPolicy),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
    ))]
pub(crate) async fn get(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<RetentionPolicy>> {
    auth.require_admin()?;
    Ok(Json(policy_of(app.db(), auth.tenant_id.as_uuid()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyPatch {
    class_days: Option<i32>,
    recording_days: Option<i32>,
    transcript_days: Option<i32>,
    access_log_days: Option<i32>,
    analytics_days: Option<i32>,
    beacon_days: Option<i32>,
}

/// Changes the tenant's retention policy (admins; audited); the next sweep
/// applies it.
#[utoipa::path(patch, path = "/tenant/retention", operation_id = "update_retention", tag = "privacy",
    request_body = PolicyPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy after the change", body = RetentionPolicy),
        (status = 400, description = "A value out of 1..=36500 days, or a recording or transcript kept longer than its class (`invalid_retention`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn update(
    State(app): State<AppState>,
    auth: Auth,
    body: JsonBody<PolicyPatch>,
) -> ApiResult<Json<RetentionPolicy>> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let p = body.value;
    let tenant = auth.tenant_id.as_uuid();
    let mut tx = app.db().begin().await?;
    // one change at a time per tenant
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let before: RetentionPolicy = sqlx::query_as(
        "SELECT class_days, recording_days, transcript_days, access_log_days, analytics_days, beacon_days
           FROM retention_policies WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or(DEFAULT_POLICY);
    let after = RetentionPolicy {
        class_days: p.class_days.unwrap_or(before.class_days),
        recording_days: p.recording_days.unwrap_or(before.recording_days),
        transcript_days: p.transcript_days.unwrap_or(before.transcript_days),
        access_log_days: p.access_log_days.unwrap_or(before.access_log_days),
        analytics_days: p.analytics_days.unwrap_or(before.analytics_days),
        beacon_days: p.beacon_days.unwrap_or(before.beacon_days),
    };
    after.check()?;
    sqlx::query(
        "INSERT INTO retention_policies
           (tenant_id, class_days, recording_days, transcript_days, access_log_days, analytics_days, updated_by, beacon_days)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id) DO UPDATE SET
           class_days = EXCLUDED.class_days, recording_days = EXCLUDED.recording_days,
           transcript_days = EXCLUDED.transcript_days, access_log_days = EXCLUDED.access_log_days,
           analytics_days = EXCLUDED.analytics_days, updated_by = EXCLUDED.updated_by,
           beacon_days = EXCLUDED.beacon_days,
           updated_at = now()",
    )
    .bind(tenant)
    .bind(after.class_days)
    .bind(after.recording_days)
    .bind(after.transcript_days)
    .bind(after.access_log_days)
    .bind(after.analytics_days)
    .bind(auth.user_id.as_uuid())
    .bind(after.beacon_days)
    .execute(&mut *tx)
    .await?;
    if after != before {
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            "tenant.retention_changed",
            "tenant",
            &tenant.to_string(),
            json!({ "from": before, "to": after }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    /// Keep everything of the course's classes, whatever the policy says.
    hold: bool,
    /// Why (a case or request reference; at most 500 characters).
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LegalHold {
    #[schema(value_type = String, format = Uuid)]
    pub course_id: Uuid,
    pub hold: bool,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// Puts a course on legal hold or releases it (admins; audited).
#[utoipa::path(put, path = "/courses/{id}/legal-hold", operation_id = "set_legal_hold", tag = "privacy",
    request_body = HoldBody,
    params(("id" = Uuid, Path, description = "The course")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The course's hold now", body = LegalHold),
        (status = 400, description = "Invalid id or body (`invalid_id`, `invalid_reason`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn legal_hold(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<HoldBody>,
) -> ApiResult<Json<LegalHold>> {
    auth.require_admin()?;
    let course: Uuid = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = body.value;
    let reason = b
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "a reason is at most 500 printable characters",
        ));
    }
    let mut tx = app.db().begin().await?;
    let row: Option<(bool, Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "UPDATE courses SET legal_hold = $3,
                legal_hold_reason = CASE WHEN $3 THEN $4 END,
                legal_hold_at = CASE WHEN $3 THEN COALESCE(CASE WHEN legal_hold THEN legal_hold_at END, now()) END
          WHERE id = $1 AND tenant_id = $2
          RETURNING legal_hold, legal_hold_reason, legal_hold_at",
    )
    .bind(course)
    .bind(auth.tenant_id.as_uuid())
    .bind(b.hold)
    .bind(&reason)
    .fetch_optional(&mut *tx)
    .await?;
    let (hold, reason, since) = row.ok_or(ApiError::not_found("course"))?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        if hold {
            "course.legal_hold_set"
        } else {
            "course.legal_hold_released"
        },
        "course",
        &course.to_string(),
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(LegalHold {
        course_id: course,
        hold,
        reason,
        since,
    }))
}

/// One thing the sweep removed.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Removal {
    pub id: i64,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub session_id: Option<Uuid>,
    /// `class`, `recording`, `transcript`, `access_log` or `export` (a
    /// data-subject export archive, kept a week).
    pub what: String,
    /// The class's end (or, for access log rows and exports, the cut-off).
    pub older_than: DateTime<Utc>,
    pub rows: i64,
    pub objects: i64,
    pub removed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removals {
    pub removals: Vec<Removal>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemovalsQuery {
    /// At most this many, newest first (1 to 1000; default 100).
    #[serde(default)]
    limit: Option<i64>,
}

/// What the sweep removed of the tenant, newest first (admins).
#[utoipa::path(get, path = "/retention/removals", operation_id = "list_retention_removals", tag = "privacy",
    params(RemovalsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The record of removals", body = Removals),
        (status = 400, description = "Invalid limit (`invalid_query`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
    ))]
pub(crate) async fn removals(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<RemovalsQuery>,
) -> ApiResult<Json<Removals>> {
    auth.require_admin()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be 1 to 1000",
        ));
    }
    let removals: Vec<Removal> = sqlx::query_as(
        "SELECT id, session_id, what, older_than, rows, objects, removed_at
           FROM retention_removals WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(limit)
    .fetch_all(app.db())
    .await?;
    Ok(Json(Removals { removals }))
}

/// Sweeps the tenant now (admins): removes what is past the policy and
/// answers what it did.
#[utoipa::path(post, path = "/tenant/retention/sweep", operation_id = "sweep_retention", tag = "privacy",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What this sweep removed and kept", body = sweep::SweepReport),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 429, description = "Too many sweeps (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn sweep_now(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<sweep::SweepReport>> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Sweep)?;
    let report = sweep::tenant(&app, auth.tenant_id.as_uuid(), Utc::now()).await?;
    Ok(Json(report))
}
