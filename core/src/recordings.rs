//! Recordings as clients see them: `GET /sessions/{id}/recording` (status,
//! segments with signed URLs, gaps), the segments themselves from object
//! storage, and one playable MP4 joined from them once the recording is
//! finalized (stretches no recorder covered are filled with black and
//! silence, so the file's clock is the session's media clock).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use protocol::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::events::store;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{PathIds, QueryParams};
use crate::identity::Auth;
use crate::orchestration::sessions::{load_session, seat_of};

/// Signed recording URLs live this long.
const URL_TTL_SECS: i64 = 6 * 3600;

pub(crate) use protocol::recording::{Recording, Segment};

/// What a playable file is made of, in order: segments and fillers.
pub(crate) trait Timeline {
    fn timeline(&self) -> Vec<Piece>;
}

impl Timeline for Recording {
    fn timeline(&self) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut at = 0u64;
        for s in &self.segments {
            if s.start_ms > at + 500 {
                out.push(Piece::Filler {
                    ms: s.start_ms - at,
                });
            }
            out.push(Piece::Segment(s.clone()));
            at = s.end_ms;
        }
        out
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Segment(Segment),
    Filler { ms: u64 },
}

fn public(app: &AppState) -> &str {
    app.config().public_url.trim_end_matches('/')
}

fn signed_object_url(app: &AppState, key: &str) -> ApiResult<String> {
    let exp = Utc::now().timestamp() + URL_TTL_SECS;
    let sig = app.keys().sign_asset(&format!("object/{key}"), exp)?;
    Ok(format!("{}/objects/{key}?sig={sig}", public(app)))
}

/// May this caller watch the session's recording? Staff of its tenant, and
/// the people who were in the class.
async fn may_watch(app: &AppState, auth: &Auth, session: SessionId) -> ApiResult<()> {
    if auth.role.is_staff() || seat_of(app, auth, session).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_a_participant",
            "only the class's staff and participants may watch its recording",
        ))
    }
}

pub(crate) async fn load(
    app: &AppState,
    tenant: TenantId,
    session: SessionId,
) -> ApiResult<Recording> {
    let events = store::read_all_typed(app.db(), app.vault(), tenant, session).await?;
    Ok(Recording::from_events(&events))
}

/// A stored segment of a recording, with a signed URL.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SegmentLink {
    pub index: u32,
    /// Signed; valid for 6 hours.
    pub url: String,
    /// Media time, in ms from the recording's start.
    pub start_ms: u64,
    pub end_ms: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A stretch of media time no segment covers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GapView {
    pub from_ms: u64,
    pub to_ms: u64,
    pub reason: String,
}

/// A session's recording.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordingView {
    pub session_id: SessionId,
    /// `off`, `recording` or `finalized`
    pub status: String,
    pub duration_ms: u64,
    /// The whole recording as one MP4 (signed, 6 hours); null until it is
    /// finalized with segments.
    pub url: Option<String>,
    /// The manifest object (signed); null until finalized.
    pub manifest_url: Option<String>,
    /// In index order.
    pub segments: Vec<SegmentLink>,
    pub gaps: Vec<GapView>,
    pub alerts: Vec<String>,
}

/// `GET /sessions/{id}/recording`
#[utoipa::path(get, path = "/sessions/{id}/recording", tag = "recordings", operation_id = "get_recording",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The session")),
    responses(
        (status = 200, description = "The recording's status, segments and gaps", body = RecordingView),
        (status = 400, description = "Bad id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Neither staff nor a participant of the class", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn get(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<RecordingView>> {
    let id: SessionId = ids.get(0)?;
    let row = load_session(&app, &auth, id).await?;
    may_watch(&app, &auth, id).await?;
    let rec = load(&app, row.tenant_id.into(), id).await?;
    let mut segments = Vec::new();
    for s in &rec.segments {
        segments.push(SegmentLink {
            index: s.index,
            url: signed_object_url(&app, &s.object_key)?,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            bytes: s.bytes,
            sha256: s.sha256.clone(),
        });
    }
    let url = match &rec.finalized {
        Some(_) if !rec.segments.is_empty() => {
            let exp = Utc::now().timestamp() + URL_TTL_SECS;
            let sig = app.keys().sign_asset(&format!("recording/{id}"), exp)?;
            Some(format!(
                "{}/sessions/{id}/recording.mp4?sig={sig}",
                public(&app)
            ))
        }
        _ => None,
    };
    let gaps = rec
        .gaps
        .iter()
        .map(|g| GapView {
            from_ms: g.from_ms,
            to_ms: g.to_ms,
            reason: g.reason.clone(),
        })
        .collect();
    let manifest = match &rec.finalized {
        Some((_, key)) => Some(signed_object_url(&app, key)?),
        None => None,
    };
    Ok(Json(RecordingView {
        session_id: id,
        status: rec.status().to_owned(),
        duration_ms: rec.duration_ms(),
        url,
        manifest_url: manifest,
        segments,
        gaps,
        alerts: rec.alerts,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SigQuery {
    /// The signature from the signed URL.
    sig: String,
}

/// `GET /objects/{*key}`: a stored object by signed URL. The key may hold
/// slashes: the route is a wildcard, so it is registered with `.route` and
/// this description joins the document through `openapi::Wildcards`.
#[utoipa::path(get, path = "/objects/{key}", tag = "recordings", operation_id = "get_object",
    params(
        ("key" = String, Path, description = "The object's key (may contain `/`)"),
        SigQuery,
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
    ),
    responses(
        (status = 200, description = "The object; its type by the key's extension", content(
            ("video/mp4"), (Object = "application/json"), ("audio/ogg"), ("application/octet-stream"))),
        (status = 206, description = "The requested byte range", content(
            ("video/mp4"), (Object = "application/json"), ("audio/ogg"), ("application/octet-stream"))),
        (status = 400, description = "Not an object key, or no signature", body = ApiErrorBody),
        (status = 401, description = "The URL is not signed for this object or has expired", body = ApiErrorBody),
        (status = 404, description = "No such object", body = ApiErrorBody),
    ))]
pub(crate) async fn object(
    State(app): State<AppState>,
    axum::extract::Path(key): axum::extract::Path<String>,
    QueryParams(q): QueryParams<SigQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if key
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ApiError::bad_request("invalid_key", "not an object key"));
    }
    if !app.keys().verify_asset(&q.sig, &format!("object/{key}")) {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "the URL is not signed for this object or has expired",
        ));
    }
    serve(app.objects(), &key, &headers).await
}

/// `GET /sessions/{id}/recording.mp4`: the whole recording as one file
/// (joined on first request), by the signed URL from
/// `GET /sessions/{id}/recording`.
#[utoipa::path(get, path = "/sessions/{id}/recording.mp4", tag = "recordings", operation_id = "get_recording_mp4",
    params(
        ("id" = String, Path, format = Uuid, description = "The session"),
        SigQuery,
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
    ),
    responses(
        (status = 200, description = "The recording", content_type = "video/mp4"),
        (status = 206, description = "The requested byte range", content_type = "video/mp4"),
        (status = 400, description = "Bad id, or no signature", body = ApiErrorBody),
        (status = 401, description = "The URL is not signed for this recording or has expired", body = ApiErrorBody),
        (status = 404, description = "No such session", body = ApiErrorBody),
        (status = 409, description = "The recording is not finalized yet", body = ApiErrorBody),
        (status = 503, description = "The recording is being assembled into one file (moments after it is finalized): try again after Retry-After", body = ApiErrorBody),
    ))]
pub(crate) async fn mp4(
    State(app): State<AppState>,
    ids: PathIds,
    QueryParams(q): QueryParams<SigQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: SessionId = ids.get(0)?;
    if !app.keys().verify_asset(&q.sig, &format!("recording/{id}")) {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "the URL is not signed for this recording or has expired",
        ));
    }
    let row: Option<(uuid::Uuid,)> = sqlx::query_as("SELECT tenant_id FROM sessions WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(app.db())
        .await?;
    let (tenant,) = row.ok_or(ApiError::not_found("session"))?;
    let tenant: TenantId = tenant.into();
    let rec = load(&app, tenant, id).await?;
    if rec.finalized.is_none() || rec.segments.is_empty() {
        return Err(ApiError::conflict(
            "not_finalized",
            "the recording is not finalized yet",
        ));
    }
    let key = mp4_key(tenant, id);
    let exists = app
        .objects()
        .head(&ObjectPath::from(key.as_str()))
        .await
        .is_ok();
    if !exists {
        // made by the joiner (`run_joiner`) moments after the recording is
        // finalized, never inside a request
        return Err(ApiError::unavailable(
            "recording_joining",
            "the recording is being assembled into one file; try again shortly",
        ));
    }
    serve(app.objects(), &key, &headers).await
}

/// Whether the session's one-file MP4 is in the object store.
pub(crate) async fn is_joined(app: &AppState, tenant: TenantId, session: SessionId) -> bool {
    app.objects()
        .head(&ObjectPath::from(mp4_key(tenant, session).as_str()))
        .await
        .is_ok()
}

/// Writes the session's one-file MP4 (opened) into `to`, as it streams out
/// of the store.
pub(crate) async fn download_joined(
    app: &AppState,
    tenant: TenantId,
    session: SessionId,
    to: &Path,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let key = mp4_key(tenant, session);
    let mut stream = app
        .objects()
        .get(&ObjectPath::from(key.as_str()))
        .await?
        .into_stream();
    let mut file = tokio::fs::File::create(to).await?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk?).await?;
    }
    file.flush().await?;
    Ok(())
}

fn mp4_key(tenant: TenantId, session: SessionId) -> String {
    format!("recordings/{tenant}/{session}/recording.mp4")
}

/// Joins every finalized recording into one MP4 in the object store: a
/// durable consumer of the hub stream, so a recording finalized while core
/// was down is joined when it is back, and a failed join is retried.
pub(crate) async fn run_joiner(
    app: AppState,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let trigger = crate::events::triggers::Trigger {
        name: protocol::subjects::RECORDING_JOIN_CONSUMER,
        types: &["recording.finalized"],
        // a long class's join is a stream copy of every segment
        ack_wait: std::time::Duration::from_secs(600),
        retry: std::time::Duration::from_secs(2),
    };
    crate::events::triggers::run(&app, trigger, stop, |h| {
        let app = app.clone();
        async move { ensure_joined(&app, h.tenant_id.into(), h.session_id.into(), h.seq).await }
    })
    .await
}

/// The session's one-file MP4 exists in the store (made now if missing).
/// A session with no finalized recording (or none left: removed by the
/// retention sweep) has nothing to join.
async fn ensure_joined(
    app: &AppState,
    tenant: TenantId,
    session: SessionId,
    finalized_seq: i64,
) -> anyhow::Result<()> {
    // the ingest consumer writes events into Postgres on its own clock: wait
    // (retry) until the finalizing event is there, unless the class is gone
    let (ingested, live): (Option<i64>, Option<bool>) = sqlx::query_as(
        "SELECT (SELECT max(seq) FROM session_state_events WHERE session_id = $1),
                (SELECT purged_at IS NULL AND recording_purged_at IS NULL FROM sessions WHERE id = $1)",
    )
    .bind(session.as_uuid())
    .fetch_one(app.db())
    .await?;
    if live != Some(true) {
        return Ok(());
    }
    anyhow::ensure!(
        ingested.unwrap_or(0) >= finalized_seq,
        "seq {finalized_seq} is not in Postgres yet"
    );
    let rec = load(app, tenant, session)
        .await
        .map_err(|e| anyhow::anyhow!("reading the recording: {e:?}"))?;
    if rec.finalized.is_none() || rec.segments.is_empty() {
        return Ok(());
    }
    let key = mp4_key(tenant, session);
    if app
        .objects()
        .head(&ObjectPath::from(key.as_str()))
        .await
        .is_ok()
    {
        return Ok(());
    }
    join(app, tenant, session, &rec, &key)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

static JOINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Joins the segments (and fillers for gaps) into one MP4 and stores it.
async fn join(
    app: &AppState,
    tenant: TenantId,
    session: SessionId,
    rec: &Recording,
    key: &str,
) -> ApiResult<()> {
    let _one_at_a_time = JOINING.lock().await;
    if app.objects().head(&ObjectPath::from(key)).await.is_ok() {
        return Ok(());
    }
    let work = app
        .config()
        .data_dir
        .join("tmp")
        .join(format!("join-{session}"));
    let _ = tokio::fs::remove_dir_all(&work).await;
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(anyhow::Error::from)?;
    let result = join_in(app.objects(), rec, &work).await;
    let out = match result {
        Ok(p) => p,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&work).await;
            tracing::error!(session_id = %session, tenant_id = %tenant, error = %e, "joining the recording failed");
            return Err(ApiError::unavailable(
                "recording_unavailable",
                format!("the recording could not be assembled: {e}"),
            ));
        }
    };
    let data = tokio::fs::read(&out).await.map_err(anyhow::Error::from)?;
    app.objects()
        .put(&ObjectPath::from(key), data.into())
        .await
        .map_err(|e| anyhow::anyhow!("storing the joined recording: {e}"))?;
    let _ = tokio::fs::remove_dir_all(&work).await;
    tracing::info!(session_id = %session, segments = rec.segments.len(), "recording joined");
    Ok(())
}

/// Runs ffmpeg quietly; its error output is the error.
pub(crate) async fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running ffmpeg: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Each piece becomes an MPEG-TS file (H.264 with its parameter sets in
/// band, so pieces from different encoder runs join cleanly), then one copy
/// into MP4.
async fn join_in(
    objects: &Arc<dyn ObjectStore>,
    rec: &Recording,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    let mut list = String::new();
    for (i, piece) in rec.timeline().into_iter().enumerate() {
        let ts = work.join(format!("p{i:05}.ts"));
        let ts_s = ts.display().to_string();
        match piece {
            Piece::Segment(s) => {
                let mp4 = work.join(format!("s{:05}.mp4", s.index));
                let bytes = objects
                    .get(&ObjectPath::from(s.object_key.as_str()))
                    .await?
                    .bytes()
                    .await?;
                tokio::fs::write(&mp4, &bytes).await?;
                ffmpeg(&[
                    "-i",
                    &mp4.display().to_string(),
                    "-c",
                    "copy",
                    "-bsf:v",
                    "h264_mp4toannexb",
                    "-f",
                    "mpegts",
                    &ts_s,
                ])
                .await?;
                let _ = tokio::fs::remove_file(&mp4).await;
            }
            Piece::Filler { ms } => {
                let secs = format!("{:.3}", ms as f64 / 1000.0);
                ffmpeg(&[
                    "-f",
                    "lavfi",
                    "-i",
                    "color=c=black:s=1280x720:r=30",
                    "-f",
                    "lavfi",
                    "-i",
                    "anullsrc=r=48000:cl=stereo",
                    "-t",
                    &secs,
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-profile:v",
                    "high",
                    "-pix_fmt",
                    "yuv420p",
                    "-g",
                    "60",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "128k",
                    "-f",
                    "mpegts",
                    &ts_s,
                ])
                .await?;
            }
        }
        list.push_str(&format!("file '{ts_s}'\n"));
    }
    let list_path = work.join("list.txt");
    tokio::fs::write(&list_path, list).await?;
    let out = work.join("recording.mp4");
    ffmpeg(&[
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        &list_path.display().to_string(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        &out.display().to_string(),
    ])
    .await?;
    Ok(out)
}

/// Serves an object, honouring a single byte range (players seek with it).
async fn serve(
    objects: &Arc<dyn ObjectStore>,
    key: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let path = ObjectPath::from(key);
    let meta = objects
        .head(&path)
        .await
        .map_err(|_| ApiError::not_found("object"))?;
    let size = meta.size;
    let content_type = match key.rsplit('.').next() {
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        Some("ogg") => "audio/ogg",
        _ => "application/octet-stream",
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, size));
    match range {
        Some((start, end)) => {
            // streamed from the store as it arrives (a seek into a long
            // recording never holds the range in memory)
            let got = objects
                .get_opts(
                    &path,
                    object_store::GetOptions {
                        range: Some(object_store::GetRange::Bounded(start..end + 1)),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
            Ok((
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                    (header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
                    (header::CONTENT_LENGTH, (end + 1 - start).to_string()),
                ],
                Body::from_stream(got.into_stream()),
            )
                .into_response())
        }
        None => {
            let got = objects
                .get(&path)
                .await
                .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                    (header::CONTENT_LENGTH, size.to_string()),
                ],
                Body::from_stream(got.into_stream()),
            )
                .into_response())
        }
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the object.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=0-5000", 1000), Some((0, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
    }

    fn seg(index: u32, start_ms: u64, end_ms: u64) -> Segment {
        Segment {
            index,
            start_ms,
            end_ms,
            bytes: 1,
            sha256: String::new(),
            object_key: format!("k{index}"),
        }
    }

    #[test]
    fn gaps_become_fillers_on_the_timeline() {
        let rec = Recording {
            segments: vec![seg(0, 0, 6000), seg(1, 6000, 12000), seg(3, 20000, 26000)],
            ..Default::default()
        };
        let t = rec.timeline();
        assert_eq!(t.len(), 4);
        assert!(matches!(t[2], Piece::Filler { ms: 8000 }));
        // a late first segment is preceded by filler too; jitter is not a gap
        let rec = Recording {
            segments: vec![seg(0, 200, 6000), seg(1, 6010, 12000)],
            ..Default::default()
        };
        assert_eq!(rec.timeline().len(), 2);
    }
}
