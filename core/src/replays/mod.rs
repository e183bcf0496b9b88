//! Replays: a finished class published as a lesson to come back to. The
//! replay serves the recording with its transcript (JSON and WebVTT),
//! chapters, highlights, event markers and summary, and is searchable on
//! its own or across the tenant (tantivy). Every opening and search is
//! logged in `replay_access_log`.
//!
//! Visibility: `enrolled` (admins, the course's roster, and anyone who sat
//! in a class of the course), `tenant` (anyone of the tenant), `public` (also anyone with
//! the replay's public link).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use classroom_search::{Doc, Query};
use protocol::{SessionId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::artifacts::{self, derive, pipeline};
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{JsonBody, PathIds, QueryParams};
use crate::http::throttle::ClientAddr;
use crate::identity::Auth;
use crate::orchestration::sessions::load_session;

/// Signed media and caption URLs in a replay live this long.
const URL_TTL_SECS: i64 = 6 * 3600;
/// A public replay link lives this long.
const PUBLIC_LINK_TTL_SECS: i64 = 30 * 24 * 3600;
/// Longest accepted search text.
const MAX_QUERY_CHARS: usize = 500;

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReplayRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub visibility: String,
    pub published_at: DateTime<Utc>,
    pub title: String,
    pub course_id: Uuid,
    pub teacher_id: Uuid,
    pub started_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT r.id, r.tenant_id, r.session_id, r.visibility, r.published_at,
        s.title, l.course_id, s.started_by AS teacher_id, s.started_at
   FROM replays r
   JOIN sessions s ON s.id = r.session_id AND s.tenant_id = r.tenant_id
   JOIN lesson_runs lr ON lr.id = s.lesson_run_id AND lr.tenant_id = s.tenant_id
   JOIN lessons l ON l.id = lr.lesson_id AND l.tenant_id = lr.tenant_id";

pub(crate) async fn replay_of(
    app: &AppState,
    session: SessionId,
) -> anyhow::Result<Option<ReplayRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE r.session_id = $1"))
        .bind(session.as_uuid())
        .fetch_optional(app.db())
        .await?)
}

pub(crate) async fn replay_by_id(app: &AppState, id: Uuid) -> anyhow::Result<Option<ReplayRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(app.db())
        .await?)
}

fn public_scope(id: Uuid) -> String {
    format!("replay/{id}")
}

fn vtt_scope(id: Uuid) -> String {
    format!("replay-vtt/{id}")
}

fn base(app: &AppState) -> &str {
    app.config().public_url.trim_end_matches('/')
}

/// The replay's documents for the search index: transcript segments,
/// chapter titles, slides as shown, questions (with answers) and polls.
async fn documents(app: &AppState, r: &ReplayRow) -> anyhow::Result<Vec<Doc>> {
    let session = SessionId::from_uuid(r.session_id);
    let doc = |start_ms: u64, end_ms: u64, kind: &str, text: String| Doc {
        tenant_id: r.tenant_id,
        replay_id: r.id,
        session_id: r.session_id,
        course_id: Some(r.course_id),
        teacher_id: Some(r.teacher_id),
        date: r.started_at,
        start_ms,
        end_ms,
        kind: kind.to_owned(),
        text,
    };
    let mut docs = Vec::new();
    if let Some(t) = pipeline::artifact(app, session, "transcript").await? {
        let t: derive::Transcript = serde_json::from_value(t)?;
        for s in t.segments {
            docs.push(doc(s.start_ms, s.end_ms, "transcript", s.text));
        }
    }
    if let Some(c) = pipeline::artifact(app, session, "chapters").await? {
        let cs: Vec<derive::Chapter> = serde_json::from_value(c["chapters"].clone())?;
        for c in cs {
            docs.push(doc(c.start_ms, c.end_ms, "chapter", c.title));
        }
    }
    if let Some(h) = pipeline::artifact(app, session, "highlights").await? {
        let hs: Vec<derive::Highlight> = serde_json::from_value(h["highlights"].clone())?;
        for h in hs {
            let text = match h.kind.as_str() {
                "question" => match h.detail["answer"].as_str() {
                    Some(a) => format!("{} {a}", h.title),
                    None => h.title.clone(),
                },
                "poll" => {
                    let opts: Vec<&str> = h.detail["options"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|o| o.as_str())
                        .collect();
                    format!(
                        "{} {}",
                        h.detail["question"].as_str().unwrap_or(&h.title),
                        opts.join(" ")
                    )
                }
                "engagement" => continue,
                _ => h.title.clone(),
            };
            docs.push(doc(h.start_ms, h.end_ms, &h.kind, text));
        }
    }
    if let (Some(tl), Some(sl)) = (
        pipeline::artifact(app, session, "timeline").await?,
        pipeline::artifact(app, session, "slides").await?,
    ) {
        let mut pages = std::collections::HashMap::new();
        for d in sl["decks"].as_array().into_iter().flatten() {
            for p in d["pages"].as_array().into_iter().flatten() {
                if let (Some(deck), Some(i), Some(t)) = (
                    d["deck_id"].as_str(),
                    p["index"].as_u64(),
                    p["text"].as_str(),
                ) {
                    pages.insert((deck.to_owned(), i), t.to_owned());
                }
            }
        }
        let markers: Vec<derive::Marker> = serde_json::from_value(tl["markers"].clone())?;
        let mut seen = std::collections::HashSet::new();
        for m in markers.iter().filter(|m| m.kind == "slide.changed") {
            let key = (
                m.detail["deck_id"].as_str().unwrap_or_default().to_owned(),
                m.detail["index"].as_u64().unwrap_or(0),
            );
            if let Some(text) = pages.get(&key)
                && !text.trim().is_empty()
                && seen.insert(key.clone())
            {
                docs.push(doc(m.at_ms, m.at_ms + 1, "slide", text.clone()));
            }
        }
    }
    Ok(docs)
}

/// Puts a published replay's documents in the search index (replacing what
/// it had). Returns how many.
pub(crate) async fn index_replay(app: &AppState, r: &ReplayRow) -> anyhow::Result<usize> {
    let docs = documents(app, r).await?;
    let index = app.search()?;
    let id = r.id;
    let n = docs.len();
    tokio::task::spawn_blocking(move || index.replace_replay(id, &docs))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(n)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    /// enrolled (the default), tenant or public
    #[serde(default)]
    visibility: Option<String>,
}

/// What publishing answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Published {
    pub replay_id: Uuid,
    pub session_id: Uuid,
    /// enrolled, tenant or public
    pub visibility: String,
    /// The replay in the API (`GET /replays/{id}`).
    pub url: String,
    /// The replay page.
    pub page_url: String,
    /// How many documents went into the search index now; null when the
    /// pipeline indexes the replay later.
    pub indexed_documents: Option<usize>,
    /// A public replay's link key (`?key=`); absent unless public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `GET /public/replays/{id}?key=`; absent unless public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The replay page for anyone with the link; absent unless public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_page_url: Option<String>,
}

/// `POST /sessions/{id}/publish` (staff): the ended class becomes a replay
/// (one per class; publishing again changes its visibility).
#[utoipa::path(post, path = "/sessions/{id}/publish", operation_id = "publish_session", tag = "replays",
    request_body = PublishBody,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session (ended)")),
    responses(
        (status = 200, description = "Published again: the visibility changed", body = Published),
        (status = 201, description = "Published: the replay exists now", body = Published),
        (status = 400, description = "Invalid session id, body or visibility", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher or admin", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
        (status = 409, description = "The class is still live", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub(crate) async fn publish(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<PublishBody>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let id: SessionId = ids.get(0)?;
    let visibility = body.value.visibility.unwrap_or_else(|| "enrolled".into());
    if !["enrolled", "tenant", "public"].contains(&visibility.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_visibility",
            "visibility is enrolled, tenant or public",
        ));
    }
    let row = load_session(&app, &auth, id).await?;
    if row.is_live() {
        return Err(ApiError::conflict(
            "session_live",
            "a class is published after it ends",
        ));
    }
    let mut tx = app.db().begin().await?;
    let (replay_id, created): (Uuid, bool) = sqlx::query_as(
        "INSERT INTO replays (id, tenant_id, session_id, visibility, published_by)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (session_id) DO UPDATE SET visibility = EXCLUDED.visibility
         RETURNING id, (xmax = 0)",
    )
    .bind(Uuid::now_v7())
    .bind(auth.tenant_id.as_uuid())
    .bind(id.as_uuid())
    .bind(&visibility)
    .bind(auth.user_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "session.published",
        "replay",
        &replay_id.to_string(),
        json!({ "session_id": id, "visibility": visibility }),
    )
    .await?;
    tx.commit().await?;
    let replay = replay_by_id(&app, replay_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("replay vanished"))?;
    // searchable now if the artifacts are; else the pipeline's index stage
    // does it when they are made
    let indexed = match pipeline::artifact(&app, id, "chapters").await? {
        Some(_) => match index_replay(&app, &replay).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(replay_id = %replay_id, error = %e, "indexing the replay failed; the pipeline will retry");
                pipeline::enqueue(&app, row.tenant_id, row.id, row.last_seq, true).await?;
                None
            }
        },
        None => None,
    };
    let mut out = Published {
        replay_id,
        session_id: id.as_uuid(),
        url: format!("{}/replays/{replay_id}", base(&app)),
        page_url: format!("{}/#/replay/{replay_id}", base(&app)),
        indexed_documents: indexed,
        visibility,
        public_key: None,
        public_url: None,
        public_page_url: None,
    };
    if out.visibility == "public" {
        let key = app.keys().sign_asset(
            &public_scope(replay_id),
            Utc::now().timestamp() + PUBLIC_LINK_TTL_SECS,
        )?;
        out.public_url = Some(format!(
            "{}/public/replays/{replay_id}?key={key}",
            base(&app)
        ));
        out.public_page_url = Some(format!("{}/#/replay/{replay_id}?key={key}", base(&app)));
        out.public_key = Some(key);
    }
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

/// May this account open the replay? Another tenant's replay does not exist
/// for it.
pub(crate) async fn may_open(app: &AppState, auth: &Auth, r: &ReplayRow) -> ApiResult<()> {
    if r.tenant_id != auth.tenant_id.as_uuid() {
        return Err(ApiError::not_found("replay"));
    }
    if auth.role == protocol::Role::Admin || r.visibility == "tenant" || r.visibility == "public" {
        return Ok(());
    }
    // the course's roster, and anyone who sat in one of its classes
    let (enrolled,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (
           SELECT 1 FROM course_members m
            WHERE m.user_id = $1 AND m.tenant_id = $2 AND m.course_id = $3)
         OR EXISTS (
           SELECT 1 FROM participants p
             JOIN sessions s ON s.id = p.session_id
             JOIN lesson_runs lr ON lr.id = s.lesson_run_id
             JOIN lessons l ON l.id = lr.lesson_id
            WHERE p.user_id = $1 AND p.tenant_id = $2 AND l.course_id = $3)",
    )
    .bind(auth.user_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .bind(r.course_id)
    .fetch_one(app.db())
    .await?;
    if enrolled {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_enrolled",
            "this replay is for the course's students",
        ))
    }
}

async fn log_access(
    app: &AppState,
    r: &ReplayRow,
    user: Option<Uuid>,
    via: &str,
    action: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO replay_access_log (tenant_id, replay_id, user_id, via, action)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(r.tenant_id)
    .bind(r.id)
    .bind(user)
    .bind(via)
    .bind(action)
    .execute(app.db())
    .await?;
    Ok(())
}

fn replay_id(ids: &PathIds) -> ApiResult<Uuid> {
    ids.get::<Uuid>(0)
        .map_err(|_| ApiError::bad_request("invalid_id", "not a replay id"))
}

/// The replay's media, under signed URLs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayMedia {
    /// The whole recording as one MP4; null until the recording is finalized
    /// and assembled into one file.
    pub mp4_url: Option<String>,
    /// WebVTT captions; null until there is a transcript.
    pub transcript_vtt_url: Option<String>,
}

/// A replay's transcript (its duration is the replay's).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayTranscript {
    pub model: String,
    pub segments: Vec<derive::TranscriptSegment>,
}

/// Where the artifact pipeline is for the replay's class.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayArtifacts {
    /// The job's state, or `not_started`.
    pub state: String,
    pub stages: Vec<artifacts::ArtifactStage>,
}

/// Everything a player needs. The artifacts are null until the pipeline
/// has made them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Replay {
    pub replay_id: Uuid,
    pub session_id: Uuid,
    pub title: String,
    pub course_id: Uuid,
    pub teacher_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub published_at: DateTime<Utc>,
    /// enrolled, tenant or public
    pub visibility: String,
    pub duration_ms: u64,
    pub media: ReplayMedia,
    #[schema(value_type = Option<ReplayTranscript>)]
    pub transcript: Option<Value>,
    #[schema(value_type = Option<Vec<derive::Chapter>>)]
    pub chapters: Option<Value>,
    #[schema(value_type = Option<Vec<derive::Highlight>>)]
    pub highlights: Option<Value>,
    #[schema(value_type = Option<Vec<derive::Marker>>)]
    pub markers: Option<Value>,
    #[schema(value_type = Option<derive::Summary>)]
    pub summary: Option<Value>,
    pub artifacts: ReplayArtifacts,
}

/// Everything a player needs.
async fn body_of(app: &AppState, r: &ReplayRow) -> ApiResult<Replay> {
    let session = SessionId::from_uuid(r.session_id);
    let art = |kind: &'static str| pipeline::artifact(app, session, kind);
    let transcript = art("transcript").await?;
    let chapters = art("chapters").await?;
    let highlights = art("highlights").await?;
    let timeline = art("timeline").await?;
    let summary = art("summary").await?;
    let rec = crate::recordings::load(app, TenantId::from_uuid(r.tenant_id), session).await?;
    let exp = Utc::now().timestamp() + URL_TTL_SECS;
    // the player gets a URL once the one-file MP4 exists (the joiner makes
    // it moments after the recording is finalized), never one that answers 503
    let joined = rec.finalized.is_some()
        && !rec.segments.is_empty()
        && crate::recordings::is_joined(app, TenantId::from_uuid(r.tenant_id), session).await;
    let mp4 = if joined {
        let sig = app
            .keys()
            .sign_asset(&format!("recording/{session}"), exp)?;
        Some(format!(
            "{}/sessions/{session}/recording.mp4?sig={sig}",
            base(app)
        ))
    } else {
        None
    };
    let vtt = match &transcript {
        Some(_) => {
            let sig = app.keys().sign_asset(&vtt_scope(r.id), exp)?;
            Some(format!(
                "{}/replays/{}/transcript.vtt?sig={sig}",
                base(app),
                r.id
            ))
        }
        None => None,
    };
    let status = artifacts::status_of(app, session).await?;
    Ok(Replay {
        replay_id: r.id,
        session_id: r.session_id,
        title: r.title.clone(),
        course_id: r.course_id,
        teacher_id: r.teacher_id,
        started_at: r.started_at,
        published_at: r.published_at,
        visibility: r.visibility.clone(),
        duration_ms: rec.duration_ms(),
        media: ReplayMedia {
            mp4_url: mp4,
            transcript_vtt_url: vtt,
        },
        transcript: transcript.map(|t| json!({ "model": t["model"], "segments": t["segments"] })),
        chapters: chapters.map(|c| c["chapters"].clone()),
        highlights: highlights.map(|h| h["highlights"].clone()),
        markers: timeline.map(|t| t["markers"].clone()),
        summary,
        artifacts: ReplayArtifacts {
            state: status.state,
            stages: status.stages,
        },
    })
}

/// `GET /replays/{id}`
#[utoipa::path(get, path = "/replays/{id}", operation_id = "get_replay", tag = "replays",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The replay")),
    responses(
        (status = 200, description = "The replay: media, transcript, chapters, highlights, markers, summary", body = Replay),
        (status = 400, description = "Invalid replay id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "An enrolled-only replay of a course the caller is not on", body = ApiErrorBody),
        (status = 404, description = "No such replay in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn get(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Replay>> {
    let id = replay_id(&ids)?;
    let r = replay_by_id(&app, id)
        .await?
        .ok_or(ApiError::not_found("replay"))?;
    may_open(&app, &auth, &r).await?;
    log_access(&app, &r, Some(auth.user_id.as_uuid()), "account", "open").await?;
    Ok(Json(body_of(&app, &r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeyQuery {
    /// The public link's key (`public_key` from publishing).
    key: String,
    /// The search text (used by the search only).
    #[serde(default)]
    q: Option<String>,
}

async fn public_replay(app: &AppState, ids: &PathIds, key: &str) -> ApiResult<ReplayRow> {
    let id = replay_id(ids)?;
    if key.len() > 2048 || !app.keys().verify_asset(key, &public_scope(id)) {
        return Err(ApiError::unauthorized(
            "invalid_link",
            "this replay link is not valid or has expired",
        ));
    }
    let r = replay_by_id(app, id)
        .await?
        .ok_or(ApiError::not_found("replay"))?;
    if r.visibility != "public" {
        return Err(ApiError::unauthorized(
            "invalid_link",
            "this replay is no longer public",
        ));
    }
    Ok(r)
}

/// `GET /public/replays/{id}?key=` (no account): a public replay.
#[utoipa::path(get, path = "/public/replays/{id}", operation_id = "get_public_replay", tag = "public",
    params(("id" = String, Path, format = Uuid, description = "The replay"), KeyQuery),
    responses(
        (status = 200, description = "The replay", body = Replay),
        (status = 400, description = "Invalid replay id, missing key or unknown query parameter", body = ApiErrorBody),
        (status = 401, description = "The link is not valid, has expired, or the replay is no longer public", body = ApiErrorBody),
        (status = 404, description = "No such replay", body = ApiErrorBody),
        (status = 429, description = "Too many requests from this address to the routes that need no account; see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn public_get(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    ids: PathIds,
    QueryParams(q): QueryParams<KeyQuery>,
) -> ApiResult<Json<Replay>> {
    app.throttles().public(from)?;
    let r = public_replay(&app, &ids, &q.key).await?;
    log_access(&app, &r, None, "public_link", "open").await?;
    Ok(Json(body_of(&app, &r).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SigQuery {
    /// The signature from the replay's `transcript_vtt_url`.
    sig: String,
}

/// `GET /replays/{id}/transcript.vtt?sig=`: captions for the player.
#[utoipa::path(get, path = "/replays/{id}/transcript.vtt", operation_id = "replay_transcript_vtt", tag = "replays",
    params(("id" = String, Path, format = Uuid, description = "The replay"), SigQuery),
    responses(
        (status = 200, description = "WebVTT captions", body = String, content_type = "text/vtt"),
        (status = 400, description = "Invalid replay id, missing sig or unknown query parameter", body = ApiErrorBody),
        (status = 401, description = "The URL is not signed for this replay or has expired", body = ApiErrorBody),
        (status = 404, description = "No such replay", body = ApiErrorBody),
        (status = 409, description = "The pipeline has not made the transcript yet", body = ApiErrorBody),
    ))]
pub(crate) async fn vtt(
    State(app): State<AppState>,
    ids: PathIds,
    QueryParams(q): QueryParams<SigQuery>,
) -> ApiResult<Response> {
    let id = replay_id(&ids)?;
    if !app.keys().verify_asset(&q.sig, &vtt_scope(id)) {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "the URL is not signed for this replay or has expired",
        ));
    }
    let r = replay_by_id(&app, id)
        .await?
        .ok_or(ApiError::not_found("replay"))?;
    let t = artifacts::require(&app, SessionId::from_uuid(r.session_id), "transcript").await?;
    let resp = artifacts::transcript_response(t, Some("vtt"))?;
    let mut resp = resp;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    Ok(resp)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// Words, `"exact phrases"`, `-excluded` words (1 to 500 characters).
    q: String,
    /// Hits wanted, 1 to 100 (outside values are brought into range); 20 when absent.
    #[serde(default)]
    limit: Option<usize>,
    /// Only this course's replays (across replays only; ignored in one replay).
    #[serde(default)]
    course_id: Option<Uuid>,
    /// Only classes this teacher started (across replays only).
    #[serde(default)]
    teacher_id: Option<Uuid>,
    /// Classes on or after this instant (across replays only; years 1678 to 2261).
    #[serde(default)]
    from: Option<DateTime<Utc>>,
    /// Classes on or before this instant (across replays only; years 1678 to 2261).
    #[serde(default)]
    to: Option<DateTime<Utc>>,
    /// Only hits of this kind: transcript, chapter, slide, question, poll, cta.
    #[serde(default)]
    kind: Option<String>,
}

/// A date filter must fall in the years 1678 to 2261: the search index
/// keeps dates as nanoseconds in an i64 (1677-09-21 to 2262-04-11), and its
/// conversion of a date outside that overflows (a panic, once a 500).
fn search_date(d: Option<DateTime<Utc>>, name: &str) -> ApiResult<()> {
    use chrono::Datelike;
    match d {
        Some(d) if !(1678..=2261).contains(&d.year()) => Err(ApiError::bad_request(
            "date_out_of_range",
            format!("{name} must be a date between the years 1678 and 2261"),
        )),
        _ => Ok(()),
    }
}

fn check_query(q: &str) -> ApiResult<()> {
    if q.trim().is_empty() {
        return Err(ApiError::bad_request("empty_query", "q is empty"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("q is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Lowercase letters and digits of a word.
fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Do two words match as a search would (same word, or the same stem
/// roughly: a shared prefix of 5 letters, or one a prefix of the other)?
fn same_word(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let n = a.chars().count().min(b.chars().count());
    if n >= 4 && (a.starts_with(b) || b.starts_with(a)) {
        return true;
    }
    n >= 5 && a.chars().take(5).eq(b.chars().take(5))
}

/// A transcript hit's time, to the word: where the query's words (its
/// phrase, else its first word found) are said within the hit's segment.
fn word_time(words: &[derive::Word], hit: &classroom_search::Hit, query: &str) -> u64 {
    let terms: Vec<String> = query
        .split_whitespace()
        .map(norm)
        .filter(|t| !t.is_empty())
        .collect();
    let inside: Vec<&derive::Word> = words
        .iter()
        .filter(|w| w.start_ms + 500 >= hit.start_ms && w.start_ms <= hit.end_ms)
        .collect();
    if terms.is_empty() || inside.is_empty() {
        return hit.start_ms;
    }
    let normed: Vec<String> = inside.iter().map(|w| norm(&w.text)).collect();
    // the whole phrase in order
    for i in 0..normed.len() {
        if i + terms.len() <= normed.len()
            && terms.iter().zip(&normed[i..]).all(|(t, w)| same_word(t, w))
        {
            return inside[i].start_ms;
        }
    }
    for t in &terms {
        if let Some(i) = normed.iter().position(|w| same_word(t, w)) {
            return inside[i].start_ms;
        }
    }
    hit.start_ms
}

async fn run_search(app: &AppState, q: Query, text: &str) -> ApiResult<Vec<classroom_search::Hit>> {
    let index = app.search()?;
    let hits = tokio::task::spawn_blocking(move || index.search(&q))
        .await
        .map_err(anyhow::Error::from)?;
    let mut hits = match hits {
        Ok(h) => h,
        Err(classroom_search::SearchError::Query(m)) => {
            return Err(ApiError::bad_request("invalid_query", m));
        }
        Err(e) => return Err(anyhow::anyhow!("{e}").into()),
    };
    // transcript hits point at the word, not the segment's start
    let mut words: std::collections::HashMap<Uuid, Vec<derive::Word>> = Default::default();
    for h in hits.iter_mut().filter(|h| h.kind == "transcript") {
        if let std::collections::hash_map::Entry::Vacant(e) = words.entry(h.session_id) {
            let w = match pipeline::artifact(app, SessionId::from_uuid(h.session_id), "transcript")
                .await?
            {
                Some(t) => serde_json::from_value::<derive::Transcript>(t)
                    .map(|t| t.words().cloned().collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            e.insert(w);
        }
        h.start_ms = word_time(&words[&h.session_id], h, text);
    }
    Ok(hits)
}

/// A hit inside one replay.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchHit {
    /// Where it is said or shown, on the media clock (to the word for
    /// transcript hits).
    pub start_ms: u64,
    pub end_ms: u64,
    /// The text found (cut around the match when long).
    pub text: String,
    /// transcript, chapter, slide, question, poll or cta
    pub kind: String,
    pub score: f64,
}

fn hit_of(h: &classroom_search::Hit) -> SearchHit {
    SearchHit {
        start_ms: h.start_ms,
        end_ms: h.end_ms,
        text: h.text.clone(),
        kind: h.kind.clone(),
        // as the JSON always had it: the f32 score widened
        score: f64::from(h.score),
    }
}

/// The hits of a search inside one replay, best first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplaySearch {
    pub replay_id: Uuid,
    pub q: String,
    pub hits: Vec<SearchHit>,
}

/// `GET /replays/{id}/search?q=`: hits inside one replay, each with its time.
#[utoipa::path(get, path = "/replays/{id}/search", operation_id = "search_replay", tag = "replays",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The replay"), SearchQuery),
    responses(
        (status = 200, description = "Hits, best first", body = ReplaySearch),
        (status = 400, description = "Invalid replay id, empty or too long q, nothing to search for, date out of range, or unknown query parameter", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "An enrolled-only replay of a course the caller is not on", body = ApiErrorBody),
        (status = 404, description = "No such replay in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn search(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    QueryParams(q): QueryParams<SearchQuery>,
) -> ApiResult<Json<ReplaySearch>> {
    let id = replay_id(&ids)?;
    check_query(&q.q)?;
    search_date(q.from, "from")?;
    search_date(q.to, "to")?;
    let r = replay_by_id(&app, id)
        .await?
        .ok_or(ApiError::not_found("replay"))?;
    may_open(&app, &auth, &r).await?;
    log_access(&app, &r, Some(auth.user_id.as_uuid()), "account", "search").await?;
    search_one(&app, &r, &q.q, q.limit, q.kind).await
}

/// `GET /public/replays/{id}/search?key=&q=`
#[utoipa::path(get, path = "/public/replays/{id}/search", operation_id = "search_public_replay", tag = "public",
    params(("id" = String, Path, format = Uuid, description = "The replay"), KeyQuery),
    responses(
        (status = 200, description = "Hits, best first", body = ReplaySearch),
        (status = 400, description = "Invalid replay id, missing key, empty or too long q, nothing to search for, or unknown query parameter", body = ApiErrorBody),
        (status = 401, description = "The link is not valid, has expired, or the replay is no longer public", body = ApiErrorBody),
        (status = 404, description = "No such replay", body = ApiErrorBody),
        (status = 429, description = "Too many requests from this address to the routes that need no account; see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn public_search(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    ids: PathIds,
    QueryParams(q): QueryParams<KeyQuery>,
) -> ApiResult<Json<ReplaySearch>> {
    app.throttles().public(from)?;
    let r = public_replay(&app, &ids, &q.key).await?;
    let text = q.q.unwrap_or_default();
    check_query(&text)?;
    log_access(&app, &r, None, "public_link", "search").await?;
    search_one(&app, &r, &text, None, None).await
}

async fn search_one(
    app: &AppState,
    r: &ReplayRow,
    text: &str,
    limit: Option<usize>,
    kind: Option<String>,
) -> ApiResult<Json<ReplaySearch>> {
    let query = Query {
        tenant_id: r.tenant_id,
        text: text.to_owned(),
        replay_id: Some(r.id),
        kind,
        limit: limit.unwrap_or(20).clamp(1, 100),
        ..Default::default()
    };
    let hits = run_search(app, query, text).await?;
    Ok(Json(ReplaySearch {
        replay_id: r.id,
        q: text.to_owned(),
        hits: hits.iter().map(hit_of).collect(),
    }))
}

/// A hit in the replay library, with its replay.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LibraryHit {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// transcript, chapter, slide, question, poll or cta
    pub kind: String,
    pub score: f64,
    pub replay_id: Uuid,
    pub session_id: Uuid,
    /// The class's title.
    pub title: String,
    pub course_id: Uuid,
    /// When the class started.
    pub date: DateTime<Utc>,
}

/// The hits of a search across the replays the caller may open, best first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LibrarySearch {
    pub q: String,
    pub hits: Vec<LibraryHit>,
}

/// `GET /replays/search?q=`: every replay of the caller's tenant that the
/// caller may open; filters `course_id`, `teacher_id`, `from`, `to`, `kind`.
#[utoipa::path(get, path = "/replays/search", operation_id = "search_replays", tag = "replays",
    security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "Hits in the replays the caller may open, best first", body = LibrarySearch),
        (status = 400, description = "Empty or too long q, nothing to search for, date out of range, or unknown query parameter", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ))]
pub(crate) async fn search_all(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<SearchQuery>,
) -> ApiResult<Json<LibrarySearch>> {
    check_query(&q.q)?;
    search_date(q.from, "from")?;
    search_date(q.to, "to")?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    // a student's hits are limited to what they may open: ask for more and
    // keep those
    let want = if auth.role == protocol::Role::Admin {
        limit
    } else {
        limit * 5
    };
    let query = Query {
        tenant_id: auth.tenant_id.as_uuid(),
        text: q.q.clone(),
        course_id: q.course_id,
        teacher_id: q.teacher_id,
        from: q.from,
        to: q.to,
        kind: q.kind.clone(),
        limit: want,
        ..Default::default()
    };
    let hits = run_search(&app, query, &q.q).await?;
    let mut out = Vec::new();
    let mut allowed: std::collections::HashMap<Uuid, Option<ReplayRow>> = Default::default();
    for h in hits {
        if let std::collections::hash_map::Entry::Vacant(e) = allowed.entry(h.replay_id) {
            let r = match replay_by_id(&app, h.replay_id).await? {
                Some(r) if may_open(&app, &auth, &r).await.is_ok() => Some(r),
                _ => None,
            };
            e.insert(r);
        }
        let Some(r) = &allowed[&h.replay_id] else {
            continue;
        };
        let hit = hit_of(&h);
        out.push(LibraryHit {
            start_ms: hit.start_ms,
            end_ms: hit.end_ms,
            text: hit.text,
            kind: hit.kind,
            score: hit.score,
            replay_id: r.id,
            session_id: r.session_id,
            title: r.title.clone(),
            course_id: r.course_id,
            date: r.started_at,
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(Json(LibrarySearch { q: q.q, hits: out }))
}

#[cfg(test)]
mod tests;
