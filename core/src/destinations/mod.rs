//! Multistream destinations (spec service 9): where a tenant's classes can
//! be pushed (RTMP, RTMPS, SRT) and which live class goes where.
//!
//! Admins keep the tenant's destinations; a stream key is sealed by the KEK
//! at rest and leaves core only inside the push target sent to the class's
//! home edge over the leaf link (never in an answer, an audit row or a
//! log). The course's teachers (and admins) attach destinations to a live
//! class; each change sends the class's whole set to its edge, whose
//! pushers report every state as a `destination.status` event, which
//! `GET /sessions/{id}/destinations` reads back from the class's state.
//! Destinations can also be attached to a lesson run before its class
//! starts (`runs.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use protocol::control::{Audience, EdgeReply, EdgeRequest, PushKind, PushTarget};
use protocol::{DestinationId, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::identity::Auth;
use crate::orchestration::sessions::{current_state, load_session};

pub(crate) mod runs;

const PURPOSE: &str = "destination-key";
/// Destinations a tenant may keep.
const MAX_PER_TENANT: i64 = 200;
/// Destinations one class may push to at once.
const MAX_PER_CLASS: i64 = 8;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationBody {
    /// 1 to 100 characters.
    name: String,
    /// `rtmp`, `rtmps` or `srt`.
    #[schema(value_type = String, example = "rtmp")]
    kind: PushKindBody,
    /// `rtmp://`, `rtmps://` or `srt://` (as the kind), at most 500
    /// characters, without the stream key.
    url: String,
    /// Required for RTMP(S): pushed to `url` + `/` + `stream_key`. For SRT,
    /// optional: sent as the `streamid`. Never returned.
    #[serde(default)]
    stream_key: Option<String>,
    /// `public`: the class's staff, slides, screen and whiteboard only;
    /// `private`: the whole program (another campus).
    #[schema(value_type = String, example = "public")]
    audience: AudienceBody,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum PushKindBody {
    Rtmp,
    Rtmps,
    Srt,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum AudienceBody {
    Public,
    Private,
}

/// A destination as the API shows it (never its stream key).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Destination {
    pub id: Uuid,
    pub name: String,
    /// `rtmp`, `rtmps` or `srt`.
    pub kind: String,
    /// Without the stream key.
    pub url: String,
    /// `public` or `private`.
    pub audience: String,
    /// Whether a stream key is kept (it is never shown).
    pub has_stream_key: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DestinationList {
    pub destinations: Vec<Destination>,
}

fn kind_str(k: PushKindBody) -> &'static str {
    match k {
        PushKindBody::Rtmp => "rtmp",
        PushKindBody::Rtmps => "rtmps",
        PushKindBody::Srt => "srt",
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_destination", message)
}

/// Checks a destination body; bad input changes nothing.
fn validate(b: &DestinationBody) -> ApiResult<()> {
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name must be 1 to 100 characters"));
    }
    let scheme = kind_str(b.kind);
    let parsed = reqwest::Url::parse(&b.url)
        .map_err(|_| invalid(format!("url must be a {scheme}:// URL")))?;
    if parsed.scheme() != scheme || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "url must be a {scheme}:// URL with a host"
        )));
    }
    if b.url.len() > 500 || b.url.chars().any(char::is_whitespace) {
        return Err(invalid(
            "url must be at most 500 characters, without spaces",
        ));
    }
    if matches!(b.kind, PushKindBody::Rtmp | PushKindBody::Rtmps) && parsed.query().is_some() {
        return Err(invalid(
            "an RTMP url takes no query; the key goes in stream_key",
        ));
    }
    match (&b.stream_key, b.kind) {
        (None, PushKindBody::Rtmp | PushKindBody::Rtmps) => {
            Err(invalid("an RTMP destination needs its stream_key"))
        }
        (Some(k), _)
            if k.is_empty()
                || k.len() > 500
                || k.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(invalid(
                "stream_key must be 1 to 500 characters, without spaces",
            ))
        }
        _ => Ok(()),
    }
}

/// The URL a pusher sends to, key included.
fn push_url(kind: &str, url: &str, key: Option<&str>) -> String {
    match (kind, key) {
        ("srt", Some(k)) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}streamid={k}")
        }
        (_, Some(k)) => format!("{}/{k}", url.trim_end_matches('/')),
        (_, None) => url.to_string(),
    }
}

/// Adds a destination to the tenant (admins; audited without the key).
#[utoipa::path(post, path = "/destinations", operation_id = "create_destination", tag = "multistream",
    request_body = DestinationBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Added", body = Destination),
        (status = 400, description = "A bad name, kind, URL, key or audience (`invalid_destination`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 409, description = "The tenant keeps the most destinations it may (`too_many_destinations`)", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn create(
    State(app): State<AppState>,
    auth: Auth,
    body: JsonBody<DestinationBody>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = body.value;
    validate(&b)?;
    let sealed = match &b.stream_key {
        Some(k) => Some(crate::privacy::kms::seal_secret(
            app.kms().as_ref(),
            PURPOSE,
            k.as_bytes(),
        )?),
        None => None,
    };
    let tenant = auth.tenant_id.as_uuid();
    let mut tx = app.db().begin().await?;
    // one tenant's adds in a row: the count below holds
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('destinations:' || $1::text, 0))")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM destinations WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_PER_TENANT {
        return Err(ApiError::conflict(
            "too_many_destinations",
            format!("a tenant keeps at most {MAX_PER_TENANT} destinations"),
        ));
    }
    let audience = match b.audience {
        AudienceBody::Public => "public",
        AudienceBody::Private => "private",
    };
    let row: Destination = sqlx::query_as(
        "INSERT INTO destinations (id, tenant_id, name, kind, url, stream_key, audience, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, name, kind, url, audience, stream_key IS NOT NULL AS has_stream_key, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(b.name.trim())
    .bind(kind_str(b.kind))
    .bind(&b.url)
    .bind(&sealed)
    .bind(audience)
    .bind(auth.user_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "destination.created",
        "destination",
        &row.id.to_string(),
        json!({"name": row.name, "kind": row.kind, "url": row.url, "audience": row.audience}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(destination_id = %row.id, kind = %row.kind, audience = %row.audience, "destination added");
    Ok((StatusCode::CREATED, Json(row)))
}

/// The tenant's destinations (admins and teachers, who attach them).
#[utoipa::path(get, path = "/destinations", operation_id = "list_destinations", tag = "multistream",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's destinations, oldest first", body = DestinationList),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not staff", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<DestinationList>> {
    auth.require_staff()?;
    let destinations = sqlx::query_as(
        "SELECT id, name, kind, url, audience, stream_key IS NOT NULL AS has_stream_key, created_at
         FROM destinations WHERE tenant_id = $1 AND deleted_at IS NULL
         ORDER BY created_at, id",
    )
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    Ok(Json(DestinationList { destinations }))
}

/// Removes a destination (admins; audited): every live class pushing to it
/// stops.
#[utoipa::path(delete, path = "/destinations/{id}", operation_id = "delete_destination", tag = "multistream",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The destination")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such destination in the tenant", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn delete(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let id: Uuid = ids.get(0)?;
    let mut tx = app.db().begin().await?;
    let gone = sqlx::query(
        "UPDATE destinations SET deleted_at = now(), stream_key = NULL
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .execute(&mut *tx)
    .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found("destination"));
    }
    let live: Vec<(Uuid,)> = sqlx::query_as(
        "DELETE FROM session_destinations sd USING sessions s
          WHERE sd.destination_id = $1 AND s.id = sd.session_id AND s.status = 'live'
          RETURNING sd.session_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "destination.deleted",
        "destination",
        &id.to_string(),
        json!({"live_classes_stopped": live.len()}),
    )
    .await?;
    tx.commit().await?;
    for (session,) in live {
        if let Err(e) = send_targets(&app, session.into()).await {
            tracing::warn!(session_id = %session, error = ?e, "a class keeps pushing to a removed destination until its edge hears");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachBody {
    #[schema(value_type = String, format = Uuid)]
    pub(crate) destination_id: Uuid,
}

/// A destination of a class, with its pusher's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionDestination {
    pub destination_id: Uuid,
    pub name: String,
    pub kind: String,
    pub audience: String,
    /// `connecting`, `live`, `retrying`, `failed` or `stopped`.
    pub state: String,
    /// While live: kbit/s over the pusher's last report.
    pub bitrate_kbps: Option<u32>,
    /// Frames dropped because the destination could not keep up.
    pub dropped_frames: u64,
    /// Why it is retrying, failed or stopped.
    pub reason: Option<String>,
    pub attached_at: DateTime<Utc>,
    /// When the pusher last reported.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionDestinationList {
    pub destinations: Vec<SessionDestination>,
}

/// Who may stream a class: the course's teachers and admins.
async fn require_class_teacher(
    app: &AppState,
    auth: &Auth,
    session: SessionId,
) -> ApiResult<crate::orchestration::sessions::SessionRow> {
    auth.require_staff()?;
    let row = load_session(app, auth, session).await?;
    let course = crate::console::course_of_session(app, row.id).await?;
    crate::console::require_course_teacher(app, auth, course).await?;
    Ok(row)
}

/// Sends a live class's whole set of destinations to its home edge.
pub(crate) async fn send_targets(app: &AppState, session: SessionId) -> ApiResult<()> {
    type Row = (Uuid, String, String, Option<String>, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.id, d.kind, d.url, d.stream_key, d.audience
           FROM session_destinations sd
           JOIN destinations d ON d.id = sd.destination_id AND d.deleted_at IS NULL
          WHERE sd.session_id = $1
          ORDER BY sd.attached_at",
    )
    .bind(session.as_uuid())
    .fetch_all(app.db())
    .await?;
    let edge: Option<(String,)> = sqlx::query_as("SELECT edge_id FROM sessions WHERE id = $1")
        .bind(session.as_uuid())
        .fetch_optional(app.db())
        .await?;
    let Some((edge,)) = edge else {
        return Err(ApiError::not_found("session"));
    };
    let mut destinations = Vec::with_capacity(rows.len());
    for (id, kind, url, sealed, audience) in rows {
        let key = match sealed {
            Some(s) => {
                let opened = crate::privacy::kms::open_secret(app.kms().as_ref(), PURPOSE, &s)?
                    .ok_or_else(|| anyhow::anyhow!("a destination's key is not sealed"))?;
                Some(String::from_utf8(opened).map_err(anyhow::Error::new)?)
            }
            None => None,
        };
        destinations.push(PushTarget {
            destination_id: DestinationId::from_uuid(id),
            kind: match kind.as_str() {
                "rtmps" => PushKind::Rtmps,
                "srt" => PushKind::Srt,
                _ => PushKind::Rtmp,
            },
            url: push_url(&kind, &url, key.as_deref()),
            audience: if audience == "public" {
                Audience::Public
            } else {
                Audience::Private
            },
        });
    }
    let edge = protocol::EdgeId::new(edge).map_err(|e| anyhow::anyhow!(e))?;
    let req = EdgeRequest::Destinations {
        session_id: session,
        destinations,
    };
    match app.edge_link().request(&edge, &req).await {
        Ok(EdgeReply::Done { .. }) => Ok(()),
        Ok(EdgeReply::Failed { code, message }) => Err(ApiError::unavailable(
            "edge_unavailable",
            format!("the class's edge could not stream: {code}: {message}"),
        )),
        Ok(other) => Err(ApiError::Internal(anyhow::anyhow!(
            "unexpected destinations reply: {other:?}"
        ))),
        Err(e) => Err(ApiError::unavailable(
            "edge_unreachable",
            format!("the class's edge did not answer: {e}"),
        )),
    }
}

/// After an edge (re)starts: each of its live classes with destinations
/// gets them again (the edge holds push targets in memory only). The set
/// replaces what the edge has, so sending it twice changes nothing.
pub(crate) async fn resend_to_edge(app: &AppState, edge: &protocol::EdgeId) {
    let live: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
        "SELECT DISTINCT s.id FROM sessions s
           JOIN session_destinations sd ON sd.session_id = s.id
          WHERE s.edge_id = $1 AND s.status = 'live'",
    )
    .bind(edge.as_str())
    .fetch_all(app.db())
    .await;
    let live = match live {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(edge_id = %edge, error = %e, "could not read the edge's streamed classes");
            return;
        }
    };
    for (session,) in live {
        match send_targets(app, session.into()).await {
            Ok(()) => {
                tracing::info!(edge_id = %edge, session_id = %session, "destinations sent again to a restarted edge")
            }
            Err(e) => {
                tracing::warn!(edge_id = %edge, session_id = %session, error = ?e, "destinations not sent again")
            }
        }
    }
}

/// What destinations are attached to: a live class or a lesson run (whose
/// class takes them at its start). Both go through the same checks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Holder {
    Session(Uuid),
    Run(Uuid),
}

impl Holder {
    fn id(self) -> Uuid {
        match self {
            Holder::Session(id) | Holder::Run(id) => id,
        }
    }

    /// (the row to lock, the attachments table, its holder column, the
    /// audit target type)
    fn tables(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Holder::Session(_) => ("sessions", "session_destinations", "session_id", "session"),
            Holder::Run(_) => (
                "lesson_runs",
                "lesson_run_destinations",
                "lesson_run_id",
                "lesson_run",
            ),
        }
    }
}

/// Attaches a destination of the caller's tenant (audited): 404 for one
/// it does not have, 409 when attached already or at `MAX_PER_CLASS`.
pub(crate) async fn attach_to(
    app: &AppState,
    auth: &Auth,
    holder: Holder,
    dest: Uuid,
) -> ApiResult<()> {
    let known: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM destinations WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(dest)
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let Some((name,)) = known else {
        return Err(ApiError::not_found("destination"));
    };
    let (locked, table, column, target) = holder.tables();
    let mut tx = app.db().begin().await?;
    // one attach at a time per holder: the count below holds
    sqlx::query(&format!("SELECT 1 FROM {locked} WHERE id = $1 FOR UPDATE"))
        .bind(holder.id())
        .execute(&mut *tx)
        .await?;
    let (count,): (i64,) =
        sqlx::query_as(&format!("SELECT count(*) FROM {table} WHERE {column} = $1"))
            .bind(holder.id())
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_PER_CLASS {
        return Err(ApiError::conflict(
            "too_many_destinations",
            format!("a class streams to at most {MAX_PER_CLASS} destinations"),
        ));
    }
    let inserted = sqlx::query(&format!(
        "INSERT INTO {table} ({column}, destination_id, tenant_id, attached_by)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    ))
    .bind(holder.id())
    .bind(dest)
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "already_attached",
            "the class streams to this destination already",
        ));
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "destination.attached",
        target,
        &holder.id().to_string(),
        json!({"destination_id": dest, "name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Detaches a destination (audited); 404 when it is not attached.
pub(crate) async fn detach_from(
    app: &AppState,
    auth: &Auth,
    holder: Holder,
    dest: Uuid,
) -> ApiResult<()> {
    let (_, table, column, target) = holder.tables();
    let mut tx = app.db().begin().await?;
    let gone = sqlx::query(&format!(
        "DELETE FROM {table} WHERE {column} = $1 AND destination_id = $2 AND tenant_id = $3"
    ))
    .bind(holder.id())
    .bind(dest)
    .bind(auth.tenant_id.as_uuid())
    .execute(&mut *tx)
    .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found("destination"));
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "destination.detached",
        target,
        &holder.id().to_string(),
        json!({"destination_id": dest}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Streams a live class to a destination (the course's teachers, admins;
/// audited). The class's edge starts pushing at once.
#[utoipa::path(post, path = "/sessions/{id}/destinations", operation_id = "attach_destination", tag = "multistream",
    request_body = AttachBody,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 201, description = "Attached; its state follows in `destination.status` events", body = SessionDestinationList),
        (status = 400, description = "Bad id or body", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such session or destination in the tenant", body = ApiErrorBody),
        (status = 409, description = "The class has ended (`session_ended`), the destination is attached already (`already_attached`) or the class has the most it may (`too_many_destinations`)", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "The class's edge did not take it; nothing was attached", body = ApiErrorBody),
    ))]
pub(crate) async fn attach(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<AttachBody>,
) -> ApiResult<(StatusCode, Json<SessionDestinationList>)> {
    let session: SessionId = ids.get(0)?;
    let row = require_class_teacher(&app, &auth, session).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    if !row.is_live() {
        return Err(ApiError::conflict("session_ended", "the session has ended"));
    }
    let dest = body.value.destination_id;
    attach_to(&app, &auth, Holder::Session(row.id), dest).await?;
    // the edge takes the whole set; if it cannot, nothing stays attached
    if let Err(e) = send_targets(&app, session).await {
        sqlx::query(
            "DELETE FROM session_destinations WHERE session_id = $1 AND destination_id = $2",
        )
        .bind(row.id)
        .bind(dest)
        .execute(app.db())
        .await?;
        return Err(e);
    }
    let list = session_list(&app, &auth, &row).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

async fn session_list(
    app: &AppState,
    auth: &Auth,
    row: &crate::orchestration::sessions::SessionRow,
) -> ApiResult<SessionDestinationList> {
    type Row = (Uuid, String, String, String, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.id, d.name, d.kind, d.audience, sd.attached_at
           FROM session_destinations sd JOIN destinations d ON d.id = sd.destination_id
          WHERE sd.session_id = $1 AND sd.tenant_id = $2
          ORDER BY sd.attached_at, d.id",
    )
    .bind(row.id)
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(app.db())
    .await?;
    let (state, _) = current_state(app, auth, row).await?;
    let destinations = rows
        .into_iter()
        .map(|(id, name, kind, audience, attached_at)| {
            let did = DestinationId::from_uuid(id);
            let stats = state
                .destination_stats
                .get(&did)
                .cloned()
                .unwrap_or_default();
            let status = match state.destinations.get(&did) {
                _ if !row.is_live() => "stopped".to_string(),
                Some(s) => s.clone(),
                None => "connecting".to_string(),
            };
            SessionDestination {
                destination_id: id,
                name,
                kind,
                audience,
                state: status,
                bitrate_kbps: stats.bitrate_kbps,
                dropped_frames: stats.dropped_frames,
                reason: stats.reason,
                attached_at,
                updated_at: stats.at,
            }
        })
        .collect();
    Ok(SessionDestinationList { destinations })
}

/// A class's destinations and each one's state (the course's teachers,
/// admins).
#[utoipa::path(get, path = "/sessions/{id}/destinations", operation_id = "session_destinations", tag = "multistream",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "Attached destinations, in the order attached", body = SessionDestinationList),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn session_destinations(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<SessionDestinationList>> {
    let session: SessionId = ids.get(0)?;
    let row = require_class_teacher(&app, &auth, session).await?;
    Ok(Json(session_list(&app, &auth, &row).await?))
}

/// Stops streaming a class to a destination (the course's teachers,
/// admins; audited).
#[utoipa::path(delete, path = "/sessions/{id}/destinations/{destination_id}", operation_id = "detach_destination", tag = "multistream",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The session"),
        ("destination_id" = String, Path, format = Uuid, description = "The destination"),
    ),
    responses(
        (status = 204, description = "Detached; its pusher stops"),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = ApiErrorBody),
        (status = 404, description = "No such session, or the destination is not attached", body = ApiErrorBody),
        (status = 429, description = "Too many changes (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "The class's edge did not answer; it stops pushing when it hears", body = ApiErrorBody),
    ))]
pub(crate) async fn detach(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let session: SessionId = ids.get(0)?;
    let dest: Uuid = ids.get(1)?;
    let row = require_class_teacher(&app, &auth, session).await?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    detach_from(&app, &auth, Holder::Session(row.id), dest).await?;
    if row.is_live() {
        send_targets(&app, session).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: PushKindBody, url: &str, key: Option<&str>) -> DestinationBody {
        DestinationBody {
            name: "Channel".into(),
            kind,
            url: url.into(),
            stream_key: key.map(str::to_string),
            audience: AudienceBody::Public,
        }
    }

    #[test]
    fn a_destination_is_checked_before_anything_is_kept() {
        assert!(
            validate(&body(
                PushKindBody::Rtmp,
                "rtmp://live.example/app",
                Some("k1")
            ))
            .is_ok()
        );
        assert!(validate(&body(PushKindBody::Srt, "srt://127.0.0.1:9000", None)).is_ok());
        // the scheme follows the kind
        assert!(
            validate(&body(
                PushKindBody::Rtmps,
                "rtmp://live.example/app",
                Some("k")
            ))
            .is_err()
        );
        assert!(
            validate(&body(
                PushKindBody::Rtmp,
                "http://live.example/app",
                Some("k")
            ))
            .is_err()
        );
        // RTMP needs a key; keys have no spaces
        assert!(validate(&body(PushKindBody::Rtmp, "rtmp://live.example/app", None)).is_err());
        assert!(
            validate(&body(
                PushKindBody::Rtmp,
                "rtmp://live.example/app",
                Some("a b")
            ))
            .is_err()
        );
        assert!(validate(&body(PushKindBody::Rtmp, "rtmp:///app", Some("k"))).is_err());
        let mut long = body(PushKindBody::Rtmp, "rtmp://live.example/app", Some("k"));
        long.name = "x".repeat(101);
        assert!(validate(&long).is_err());
    }

    #[test]
    fn the_pushed_url_carries_the_key() {
        assert_eq!(
            push_url("rtmp", "rtmp://h/live/", Some("abc")),
            "rtmp://h/live/abc"
        );
        assert_eq!(
            push_url("srt", "srt://h:9000", Some("abc")),
            "srt://h:9000?streamid=abc"
        );
        assert_eq!(
            push_url("srt", "srt://h:9000?latency=200", Some("abc")),
            "srt://h:9000?latency=200&streamid=abc"
        );
        assert_eq!(push_url("srt", "srt://h:9000", None), "srt://h:9000");
    }
}
