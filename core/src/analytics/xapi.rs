//! xAPI: what students did, as statements to the tenant's Learning Record
//! Store. The fold queues statements in `xapi_outbox`, in the transaction
//! that folds their events (so each is queued once, and never without the
//! fold); replay beacons queue theirs with the beacon. The sender takes
//! due rows with `SKIP LOCKED` (any number of core replicas, each statement
//! sent by one), posts them, and retries a failure with exponential backoff
//! and jitter; after `MAX_ATTEMPTS` a statement stays in the outbox as
//! dead, with its last error.
//!
//! Statement ids are derived from the class and the event's seq, so a
//! statement queued twice (a rebuild) is one statement in the LRS, which
//! answers a repeat with 409 or 204.
//!
//! Privacy: the actor is the account id, never a name or an email. A minor,
//! or someone who declined recording, is sent attendance only (joined,
//! left).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::fold::{Fold, Happening, Noted};
use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::JsonBody;
use crate::identity::Auth;

/// After this many failed attempts a statement is dead (kept, not retried).
const MAX_ATTEMPTS: i32 = 12;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: f64 = 600.0;
/// Statements claimed per round.
const CLAIM: i64 = 100;
const VERSION: &str = "1.0.3";
const PURPOSE: &str = "lrs-secret";

/// A statement id from what it is about (the same input, the same id).
pub(crate) fn statement_id(parts: &[&[u8]]) -> Uuid {
    let mut h = sha2::Sha256::new();
    h.update(b"classroom.xapi.v1");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

fn duration_iso(ms: i64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

struct Ctx<'a> {
    home: &'a str,
    fold: &'a Fold,
    title: &'a str,
}

impl Ctx<'_> {
    fn actor(&self, user: Uuid) -> Value {
        json!({ "objectType": "Agent", "account": { "homePage": self.home, "name": user.to_string() } })
    }
    fn class(&self) -> Value {
        json!({
            "objectType": "Activity",
            "id": format!("{}/sessions/{}", self.home, self.fold.session_id),
            "definition": {
                "type": "http://adlnet.gov/expapi/activities/meeting",
                "name": { "en-US": self.title },
            },
        })
    }
    fn context(&self) -> Value {
        json!({
            "registration": self.fold.session_id.to_string(),
            "platform": "classroom",
            "contextActivities": {
                "parent": [{ "objectType": "Activity", "id": format!("{}/courses/{}", self.home, self.fold.course_id) }],
            },
        })
    }
}

fn verb(id: &str, display: &str) -> Value {
    json!({ "id": id, "display": { "en-US": display } })
}

/// The statement of one happening; `full`: participation may be sent
/// (not a minor, not attendance only).
fn statement(ctx: &Ctx<'_>, n: &Noted, full: bool) -> Option<Value> {
    let session = ctx.fold.session_id;
    let timestamp = n.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (actor, verb, object, result) = match &n.what {
        Happening::Joined { user } => (
            *user,
            verb("http://activitystrea.ms/join", "joined"),
            ctx.class(),
            None,
        ),
        Happening::Left { user, present_ms } => (
            *user,
            verb("http://activitystrea.ms/leave", "left"),
            ctx.class(),
            Some(json!({ "duration": duration_iso(*present_ms) })),
        ),
        Happening::Asked { user } if full => (
            *user,
            verb("http://adlnet.gov/expapi/verbs/asked", "asked"),
            ctx.class(),
            None,
        ),
        Happening::Answered {
            user,
            poll,
            question,
            option,
            options,
            correct,
        } if full => {
            let choices: Vec<Value> = options
                .iter()
                .enumerate()
                .map(|(i, o)| json!({ "id": i.to_string(), "description": { "en-US": o } }))
                .collect();
            let mut result = json!({ "response": option.to_string() });
            if let Some(c) = correct {
                result["success"] = json!(c);
            }
            (
                *user,
                verb("http://adlnet.gov/expapi/verbs/answered", "answered"),
                json!({
                    "objectType": "Activity",
                    "id": format!("{}/sessions/{session}/polls/{poll}", ctx.home),
                    "definition": {
                        "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                        "interactionType": "choice",
                        "name": { "en-US": question },
                        "choices": choices,
                    },
                }),
                Some(result),
            )
        }
        _ => return None,
    };
    // one event may end several people's presence (the class's end)
    let id = statement_id(&[session.as_bytes(), &n.seq.to_be_bytes(), actor.as_bytes()]);
    let mut s = json!({
        "id": id.to_string(),
        "actor": ctx.actor(actor),
        "verb": verb,
        "object": object,
        "timestamp": timestamp,
        "context": ctx.context(),
    });
    if let Some(r) = result {
        s["result"] = r;
    }
    Some(s)
}

async fn lrs_enabled(tx: &mut Transaction<'_, Postgres>, tenant: Uuid) -> sqlx::Result<bool> {
    let row: Option<(bool,)> =
        sqlx::query_as("SELECT enabled FROM tenant_lrs WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some_and(|r| r.0))
}

/// Queues the statements of what a fold noted (nothing when the tenant has
/// no LRS).
pub(crate) async fn queue(
    tx: &mut Transaction<'_, Postgres>,
    home: &str,
    fold: &Fold,
    noted: &[Noted],
) -> anyhow::Result<()> {
    if noted.is_empty() || !lrs_enabled(tx, fold.tenant_id).await? {
        return Ok(());
    }
    let (title,): (String,) = sqlx::query_as("SELECT title FROM sessions WHERE id = $1")
        .bind(fold.session_id)
        .fetch_one(&mut **tx)
        .await?;
    let users: Vec<Uuid> = noted
        .iter()
        .map(|n| match &n.what {
            Happening::Joined { user }
            | Happening::Left { user, .. }
            | Happening::Asked { user }
            | Happening::Answered { user, .. } => *user,
        })
        .collect();
    let minors: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE id = ANY($1) AND minor")
        .bind(&users)
        .fetch_all(&mut **tx)
        .await?;
    let minors: std::collections::HashSet<Uuid> = minors.into_iter().map(|r| r.0).collect();
    let ctx = Ctx {
        home,
        fold,
        title: &title,
    };
    let mut ids = Vec::new();
    let mut statements = Vec::new();
    for (n, user) in noted.iter().zip(users) {
        let full =
            !minors.contains(&user) && fold.people.get(&user).is_some_and(|p| !p.attendance_only);
        if let Some(s) = statement(&ctx, n, full) {
            ids.push(s["id"].as_str().and_then(|i| i.parse::<Uuid>().ok()));
            statements.push(s);
        }
    }
    let ids: Vec<Uuid> = ids.into_iter().flatten().collect();
    for (id, s) in ids.iter().zip(statements) {
        sqlx::query(
            "INSERT INTO xapi_outbox (id, tenant_id, statement) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(fold.tenant_id)
        .bind(s)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The `homePage` of actor accounts and the base of activity ids: core's
/// public URL.
pub(crate) fn home_page(public_url: &str) -> String {
    public_url.trim_end_matches('/').to_owned()
}

/// Queues the statement of a watched replay segment.
pub(crate) async fn queue_watched(
    tx: &mut Transaction<'_, Postgres>,
    home: &str,
    tenant: Uuid,
    session: Uuid,
    user: Uuid,
    beacon: i64,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<()> {
    if !lrs_enabled(tx, tenant).await? {
        return Ok(());
    }
    let id = statement_id(&[b"beacon", &beacon.to_be_bytes()]);
    let s = json!({
        "id": id.to_string(),
        "actor": { "objectType": "Agent", "account": { "homePage": home, "name": user.to_string() } },
        "verb": verb("https://w3id.org/xapi/video/verbs/played", "played"),
        "object": {
            "objectType": "Activity",
            "id": format!("{home}/sessions/{session}/replay"),
            "definition": { "type": "https://w3id.org/xapi/video/activity-type/video" },
        },
        "result": {
            "duration": duration_iso(to_ms - from_ms),
            "extensions": {
                "https://w3id.org/xapi/video/extensions/time-from": from_ms as f64 / 1000.0,
                "https://w3id.org/xapi/video/extensions/time-to": to_ms as f64 / 1000.0,
            },
        },
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "context": { "registration": session.to_string(), "platform": "classroom" },
    });
    sqlx::query(
        "INSERT INTO xapi_outbox (id, tenant_id, statement) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(tenant)
    .bind(s)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A claimed statement and where it goes.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    tenant_id: Uuid,
    statement: Value,
    attempts: i32,
    endpoint: String,
    username: String,
    secret: String,
}

/// Sends due statements until `stop`.
pub(crate) async fn run_sender(app: AppState, stop: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "xAPI sender cannot start");
            return;
        }
    };
    tracing::info!("xAPI sender running");
    while !stop.is_cancelled() {
        let sent = match round(&app, &http).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "xAPI round failed");
                0
            }
        };
        if sent == 0 {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// What became of a statement.
type Outcome = Result<u16, (Option<u16>, String)>;

/// One round: claim due statements (a lease of a minute), send each
/// tenant's as one batch (tenants side by side, so a slow LRS holds up only
/// its own tenant), record each outcome. Returns how many were claimed.
async fn round(app: &AppState, http: &reqwest::Client) -> anyhow::Result<usize> {
    let due: Vec<Due> = sqlx::query_as(
        "WITH claimed AS (
           SELECT o.id FROM xapi_outbox o JOIN tenant_lrs l ON l.tenant_id = o.tenant_id AND l.enabled
            WHERE o.sent_at IS NULL AND o.next_at <= now() AND o.attempts < $1
            ORDER BY o.next_at, o.created_at
            LIMIT $2 FOR UPDATE OF o SKIP LOCKED)
         UPDATE xapi_outbox o SET next_at = now() + interval '60 seconds'
           FROM claimed, tenant_lrs l
          WHERE o.id = claimed.id AND l.tenant_id = o.tenant_id
         RETURNING o.id, o.tenant_id, o.statement, o.attempts, l.endpoint, l.username, l.secret",
    )
    .bind(MAX_ATTEMPTS)
    .bind(CLAIM)
    .fetch_all(app.db())
    .await?;
    let n = due.len();
    let mut by_tenant: std::collections::BTreeMap<Uuid, Vec<Due>> = Default::default();
    for d in due {
        by_tenant.entry(d.tenant_id).or_default().push(d);
    }
    let batches = by_tenant
        .into_values()
        .map(|batch| async move { send_batch(app, http, batch).await });
    for outcomes in futures::future::join_all(batches).await {
        for (d, outcome) in outcomes {
            record(app, &d, outcome).await?;
        }
    }
    Ok(n)
}

/// Sends a tenant's statements as one batch; when the LRS refuses the batch
/// for its content (4xx: one bad or already-stored statement), one by one,
/// so one statement never holds up the others.
async fn send_batch(
    app: &AppState,
    http: &reqwest::Client,
    batch: Vec<Due>,
) -> Vec<(Due, Outcome)> {
    let Some(first) = batch.first() else {
        return Vec::new();
    };
    let body = Value::Array(batch.iter().map(|d| d.statement.clone()).collect());
    let whole = post(app, http, first, &body).await;
    match whole {
        Err((Some(status), _)) if (400..500).contains(&status) && batch.len() > 1 => {
            let mut out = Vec::with_capacity(batch.len());
            for d in batch {
                let o = post(app, http, &d, &d.statement).await;
                out.push((d, o));
            }
            out
        }
        whole => batch.into_iter().map(|d| (d, whole.clone())).collect(),
    }
}

async fn record(app: &AppState, d: &Due, outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Ok(status) => {
            sqlx::query(
                "UPDATE xapi_outbox SET sent_at = now(), attempts = attempts + 1,
                   last_status = $2, last_error = NULL WHERE id = $1",
            )
            .bind(d.id)
            .bind(i32::from(status))
            .execute(app.db())
            .await?;
        }
        Err((status, error)) => {
            let attempts = d.attempts + 1;
            let wait = backoff(attempts);
            tracing::warn!(statement = %d.id, attempts, status, error = %error, retry_in_s = wait, "xAPI statement refused");
            sqlx::query(
                "UPDATE xapi_outbox SET attempts = $2, last_status = $3, last_error = $4,
                   next_at = now() + make_interval(secs => $5) WHERE id = $1",
            )
            .bind(d.id)
            .bind(attempts)
            .bind(status.map(i32::from))
            .bind(error.chars().take(500).collect::<String>())
            .bind(wait)
            .execute(app.db())
            .await?;
        }
    }
    Ok(())
}

/// Seconds before attempt `attempts + 1`: 2^attempts, capped, ±25 % jitter.
fn backoff(attempts: i32) -> f64 {
    let base = 2f64.powi(attempts.min(20)).min(MAX_BACKOFF_SECS);
    base * (0.75 + rand::random::<f64>() * 0.5)
}

/// POSTs `body` (a statement or an array of them) to `to`'s LRS.
async fn post(app: &AppState, http: &reqwest::Client, to: &Due, body: &Value) -> Outcome {
    let password = open_secret(app, &to.secret).map_err(|e| (None, e.to_string()))?;
    let url = format!("{}/statements", to.endpoint.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(&to.username, Some(password))
        .json(body)
        .send()
        .await
        .map_err(|e| (None, e.to_string()))?;
    let status = resp.status().as_u16();
    // 409 for one statement: the LRS holds it already (sent before)
    if resp.status().is_success() || (status == 409 && !body.is_array()) {
        Ok(status)
    } else {
        let body = resp.text().await.unwrap_or_default();
        Err((Some(status), body))
    }
}

fn open_secret(app: &AppState, sealed: &str) -> anyhow::Result<String> {
    let bytes = crate::privacy::kms::open_secret(app.kms().as_ref(), PURPOSE, sealed)?
        .ok_or_else(|| anyhow::anyhow!("the LRS secret is not sealed"))?;
    Ok(String::from_utf8(bytes)?)
}

/// The tenant's Learning Record Store, as shown (never the secret).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct LrsSettings {
    /// The LRS's xAPI endpoint (statements go to `{endpoint}/statements`).
    pub endpoint: String,
    pub username: String,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LrsBody {
    /// http(s) URL of the xAPI endpoint, up to 500 characters.
    pub endpoint: String,
    pub username: String,
    /// The LRS password or key secret (write-only).
    pub password: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The tenant's LRS (admins).
#[utoipa::path(get, path = "/tenant/lrs", operation_id = "get_lrs", tag = "analytics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Where xAPI statements go", body = LrsSettings),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No LRS configured", body = ApiErrorBody),
    ))]
pub(crate) async fn get_lrs(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<LrsSettings>> {
    auth.require_admin()?;
    let row: Option<LrsSettings> = sqlx::query_as(
        "SELECT endpoint, username, enabled, updated_at FROM tenant_lrs WHERE tenant_id = $1",
    )
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    row.map(Json).ok_or(ApiError::not_found("lrs"))
}

/// Sets the tenant's LRS (admins; audited, without the secret). Statements
/// are queued from then on.
#[utoipa::path(put, path = "/tenant/lrs", operation_id = "put_lrs", tag = "analytics",
    request_body = LrsBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The LRS as set", body = LrsSettings),
        (status = 400, description = "Not an http(s) URL, or an empty username or password (`invalid_lrs`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn put_lrs(
    State(app): State<AppState>,
    auth: Auth,
    body: JsonBody<LrsBody>,
) -> ApiResult<Json<LrsSettings>> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = body.value;
    let url_ok = reqwest::Url::parse(&b.endpoint)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok || b.endpoint.len() > 500 {
        return Err(ApiError::bad_request(
            "invalid_lrs",
            "endpoint must be an http(s) URL of at most 500 characters",
        ));
    }
    if b.username.is_empty()
        || b.username.len() > 200
        || b.password.is_empty()
        || b.password.len() > 500
    {
        return Err(ApiError::bad_request(
            "invalid_lrs",
            "username (1..200) and password (1..500) are required",
        ));
    }
    let secret =
        crate::privacy::kms::seal_secret(app.kms().as_ref(), PURPOSE, b.password.as_bytes())?;
    let tenant = auth.tenant_id.as_uuid();
    let mut tx = app.db().begin().await?;
    let row: LrsSettings = sqlx::query_as(
        "INSERT INTO tenant_lrs (tenant_id, endpoint, username, secret, enabled, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id) DO UPDATE SET endpoint = EXCLUDED.endpoint,
           username = EXCLUDED.username, secret = EXCLUDED.secret, enabled = EXCLUDED.enabled,
           updated_by = EXCLUDED.updated_by, updated_at = now()
         RETURNING endpoint, username, enabled, updated_at",
    )
    .bind(tenant)
    .bind(&b.endpoint)
    .bind(&b.username)
    .bind(&secret)
    .bind(b.enabled)
    .bind(auth.user_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "tenant.lrs_changed",
        "tenant",
        &tenant.to_string(),
        json!({ "endpoint": row.endpoint, "username": row.username, "enabled": row.enabled }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_ids_are_stable_and_distinct() {
        let s = Uuid::from_u128(1);
        let a = statement_id(&[s.as_bytes(), &5i64.to_be_bytes()]);
        assert_eq!(a, statement_id(&[s.as_bytes(), &5i64.to_be_bytes()]));
        assert_ne!(a, statement_id(&[s.as_bytes(), &6i64.to_be_bytes()]));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= 2.5 && backoff(1) >= 1.5);
        assert!(backoff(30) <= MAX_BACKOFF_SECS * 1.25);
    }
}
