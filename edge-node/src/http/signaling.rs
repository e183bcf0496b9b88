//! WHIP-style publish and WHEP-style subscribe: an SDP offer in, 201 with
//! the SDP answer and a `Location` out, DELETE on that location to leave.
//! The join token is the bearer; what may be published is decided by the
//! participant's permissions in the session state *now*, not by the token.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::api::ApiErrorBody;
use protocol::event::TrackSource;
use protocol::{Role, SessionId};
use serde::Deserialize;

use crate::http::EdgeState;
use crate::http::auth::Joined;
use crate::http::error::EdgeError;
use crate::policy;
use crate::sfu::{Direction, PeerId, PeerOwner, SfuError};

/// SDP offers above this are refused.
const MAX_SDP: usize = 64 * 1024;

#[derive(Deserialize, Default)]
pub(crate) struct PublishQuery {
    /// `camera` (default) or `screen`.
    #[serde(default)]
    source: Option<String>,
}

/// Which media kinds an offer sends (m-lines not marked recvonly/inactive).
fn offered_kinds(sdp: &str) -> (bool, bool) {
    let (mut audio, mut video) = (false, false);
    let mut current: Option<&str> = None;
    let mut sends = true;
    let flush = |kind: Option<&str>, sends: bool, audio: &mut bool, video: &mut bool| match kind {
        Some("audio") if sends => *audio = true,
        Some("video") if sends => *video = true,
        _ => {}
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            flush(current, sends, &mut audio, &mut video);
            current = rest.split_whitespace().next();
            sends = true;
        } else if line == "a=recvonly" || line == "a=inactive" {
            sends = false;
        }
    }
    flush(current, sends, &mut audio, &mut video);
    (audio, video)
}

fn sdp_body(headers: &HeaderMap, body: &Bytes) -> Result<String, EdgeError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/sdp") {
        return Err(EdgeError::bad_request(
            "unsupported_content_type",
            "send the offer as application/sdp",
        ));
    }
    if body.len() > MAX_SDP {
        return Err(EdgeError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the offer is too large",
        ));
    }
    let sdp = std::str::from_utf8(body)
        .map_err(|_| EdgeError::bad_request("invalid_sdp", "the offer is not UTF-8"))?;
    if !sdp.starts_with("v=0") {
        return Err(EdgeError::bad_request(
            "invalid_sdp",
            "the body is not an SDP offer",
        ));
    }
    Ok(sdp.to_owned())
}

fn sid(raw: &str) -> Result<SessionId, EdgeError> {
    raw.parse()
        .map_err(|_| EdgeError::bad_request("invalid_id", "the session id is not a UUID"))
}

fn created(kind: &str, session: SessionId, peer: PeerId, answer: String) -> Response {
    let location = format!("/{kind}/{session}/{}", peer.0);
    let mut resp = (StatusCode::CREATED, answer).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    resp
}

fn sfu_error(e: SfuError) -> EdgeError {
    match e {
        SfuError::BadOffer(m) => EdgeError::bad_request("invalid_sdp", m),
        SfuError::NoPeer => EdgeError::new(
            StatusCode::NOT_FOUND,
            "peer_not_found",
            "no such media connection",
        ),
        SfuError::NotYours => EdgeError::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "that media connection belongs to someone else",
        ),
        SfuError::Down => {
            EdgeError::unavailable("media_unavailable", "the media plane is not running")
        }
        SfuError::Full(n) => {
            let mut e = EdgeError::unavailable(
                "class_full",
                format!("this class has as many public viewers as this edge takes ({n})"),
            );
            e.retry_after_secs = Some(30);
            e
        }
    }
}

/// The class's state now, from its writer on this edge.
async fn class_state(
    st: &EdgeState,
    who: &Joined,
    session: SessionId,
) -> Result<protocol::state::SessionState, EdgeError> {
    who.require_session(session)?;
    let h = st.registry.get(session).await.ok_or_else(|| {
        EdgeError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "the session is not live on this edge",
        )
    })?;
    h.state()
        .await
        .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))
}

/// A media-policy refusal as the api.md error.
fn refused(r: policy::Refusal) -> EdgeError {
    let mut e = match r {
        policy::Refusal::NothingOffered => EdgeError::bad_request(r.code(), r.message()),
        _ => EdgeError::new(StatusCode::FORBIDDEN, r.code(), r.message()),
    };
    if let policy::Refusal::MissingPermission(p) = r {
        e.missing_permission = Some(p);
    }
    e
}

fn owner(who: &Joined, session: SessionId) -> PeerOwner {
    PeerOwner {
        session,
        tenant: who.0.tid,
        participant: who.0.sub,
        user: who.0.uid,
        role: who.0.role,
    }
}

#[utoipa::path(post, path = "/whip/{id}", tag = "media", operation_id = "whip_publish",
    summary = "Publish media (WHIP): an SDP offer in, the SDP answer out",
    description = "What may be published is decided by the participant's permissions in the \
        session now: video needs `present`, audio `speak`, a screen `screen_share`. \
        `DELETE` the `Location` to stop.",
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("source" = Option<String>, Query, description = "`camera` (default) or `screen`"),
    ),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer (`v=0...`), at most 64 KiB"),
    security(("join_token" = [])),
    responses(
        (status = 201, description = "Connecting: the SDP answer", body = String, content_type = "application/sdp",
            headers(("Location" = String, description = "`/whip/{id}/{peer}`: DELETE it to stop publishing"))),
        (status = 400, description = "The session id is not a UUID (`invalid_id`), the body is not `application/sdp` (`unsupported_content_type`), not an SDP offer or sends no audio or video (`invalid_sdp`), an unknown `source` (`invalid_source`); plain text from the framework for a malformed query",
            content((ApiErrorBody = "application/json"), (String = "text/plain"))),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A token for another session (`wrong_session`), no seat (`not_joined`), removed (`removed`), a permission missing (`missing_permission`), media switched off by a moderator (`media_disabled`), a screen in exam mode (`exam_mode`)", body = ApiErrorBody),
        (status = 404, description = "The session is not live on this edge (`session_not_found`)", body = ApiErrorBody),
        (status = 413, description = "The offer is larger than 64 KiB (plain text from the body limit)", body = String, content_type = "text/plain"),
        (status = 503, description = "The media plane is down (`media_unavailable`), the session's writer stopped, or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn publish(
    who: Joined,
    State(st): State<EdgeState>,
    Path(session): Path<String>,
    Query(q): Query<PublishQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EdgeError> {
    let session = sid(&session)?;
    let sdp = sdp_body(&headers, &body)?;
    let source = match q.source.as_deref() {
        None | Some("camera") => TrackSource::Camera,
        Some("screen") => TrackSource::Screen,
        Some(other) => {
            return Err(EdgeError::bad_request(
                "invalid_source",
                format!("unknown source {other:?}: camera or screen"),
            ));
        }
    };
    let state = class_state(&st, &who, session).await?;
    let (audio, video) = offered_kinds(&sdp);
    let offer = policy::Offer {
        source,
        audio,
        video,
    };
    policy::may_publish(&state, who.0.sub, offer).map_err(refused)?;
    let (peer, answer) = st
        .sfu
        .connect(owner(&who, session), Direction::Publish(source), sdp)
        .await
        .map_err(sfu_error)?;
    tracing::info!(session_id = %session, participant_id = %who.0.sub, peer = peer.0, "publisher connecting");
    Ok(created("whip", session, peer, answer))
}

#[utoipa::path(post, path = "/whep/{id}", tag = "media", operation_id = "whep_subscribe",
    summary = "Watch the class (WHEP): an SDP offer in, the SDP answer out",
    description = "Participants of a class hosted here; students sent here for a class \
        hosted on another edge (its media comes through the relay); public viewers while \
        the class allows public viewing. `DELETE` the `Location` to stop.",
    params(("id" = Uuid, Path, description = "The session")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer (`v=0...`), at most 64 KiB"),
    security(("join_token" = [])),
    responses(
        (status = 201, description = "Connecting: the SDP answer", body = String, content_type = "application/sdp",
            headers(("Location" = String, description = "`/whep/{id}/{peer}`: DELETE it to stop watching"))),
        (status = 400, description = "The session id is not a UUID (`invalid_id`), the body is not `application/sdp` (`unsupported_content_type`) or not an SDP offer (`invalid_sdp`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A token for another session (`wrong_session`), no seat (`not_joined`), removed (`removed`), public viewing off (`public_viewing_off`)", body = ApiErrorBody),
        (status = 404, description = "The session is not live on this edge (`session_not_found`)", body = ApiErrorBody),
        (status = 413, description = "The offer is larger than 64 KiB (plain text from the body limit)", body = String, content_type = "text/plain"),
        (status = 503, description = "The media plane is down (`media_unavailable`), no relay to reach the class's home edge (`no_relay`), the class has as many public viewers as this edge takes (`class_full`, with `Retry-After`), the session's writer stopped, or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn subscribe(
    who: Joined,
    State(st): State<EdgeState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, EdgeError> {
    let session = sid(&session)?;
    let sdp = sdp_body(&headers, &body)?;
    let hosted = st.registry.get(session).await.is_some();
    match (&who.0.home, hosted) {
        // a class hosted on another edge: core sent the student here (the
        // token is for this edge and names the home edge); its media comes
        // from the relay
        (Some(home), false) if home != st.registry.edge() => {
            who.require_session(session)?;
            if !st.remote_feeds.enabled() {
                return Err(EdgeError::unavailable(
                    "no_relay",
                    "this edge has no relay to reach the class's home edge",
                ));
            }
            st.remote_feeds.ensure(who.0.tid, session, home.clone());
        }
        _ if who.0.role != Role::Public => {
            let state = class_state(&st, &who, session).await?;
            policy::may_watch(&state, who.0.role, who.0.sub).map_err(refused)?;
        }
        _ => {
            // a public viewer: only while the class allows public viewing
            who.require_session(session)?;
            if let Some(h) = st.registry.get(session).await {
                let state = h
                    .state()
                    .await
                    .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))?;
                policy::may_watch(&state, Role::Public, who.0.sub).map_err(refused)?;
            }
        }
    }
    let (peer, answer) = st
        .sfu
        .connect(owner(&who, session), Direction::Subscribe, sdp)
        .await
        .map_err(sfu_error)?;
    tracing::info!(session_id = %session, participant_id = %who.0.sub, peer = peer.0, "subscriber connecting");
    Ok(created("whep", session, peer, answer))
}

#[utoipa::path(delete, path = "/whip/{id}/{peer}", tag = "media", operation_id = "whip_delete",
    summary = "Stop publishing: close a WHIP connection",
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("peer" = u64, Path, description = "The connection, from the `Location` of `POST /whip/{id}`"),
    ),
    security(("join_token" = [])),
    responses(
        (status = 204, description = "Closed"),
        (status = 400, description = "The session id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A token for another session (`wrong_session`), or someone else's connection (`not_yours`)", body = ApiErrorBody),
        (status = 404, description = "No such connection (`peer_not_found`)", body = ApiErrorBody),
        (status = 503, description = "The media plane is down (`media_unavailable`), or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn leave_whip(
    who: Joined,
    st: State<EdgeState>,
    path: Path<(String, String)>,
) -> Result<StatusCode, EdgeError> {
    leave(who, st, path).await
}

#[utoipa::path(delete, path = "/whep/{id}/{peer}", tag = "media", operation_id = "whep_delete",
    summary = "Stop watching: close a WHEP connection",
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("peer" = u64, Path, description = "The connection, from the `Location` of `POST /whep/{id}`"),
    ),
    security(("join_token" = [])),
    responses(
        (status = 204, description = "Closed"),
        (status = 400, description = "The session id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "A token for another session (`wrong_session`), or someone else's connection (`not_yours`)", body = ApiErrorBody),
        (status = 404, description = "No such connection (`peer_not_found`)", body = ApiErrorBody),
        (status = 503, description = "The media plane is down (`media_unavailable`), or the token keys are not loaded yet", body = ApiErrorBody),
    ))]
pub(crate) async fn leave_whep(
    who: Joined,
    st: State<EdgeState>,
    path: Path<(String, String)>,
) -> Result<StatusCode, EdgeError> {
    leave(who, st, path).await
}

/// Closes one of the caller's media connections (WHIP or WHEP alike).
async fn leave(
    who: Joined,
    State(st): State<EdgeState>,
    Path((session, peer)): Path<(String, String)>,
) -> Result<StatusCode, EdgeError> {
    let session = sid(&session)?;
    who.require_session(session)?;
    let peer = peer.parse::<u64>().map_err(|_| {
        EdgeError::new(
            StatusCode::NOT_FOUND,
            "peer_not_found",
            "no such media connection",
        )
    })?;
    st.sfu
        .close(PeerId(peer), who.0.sub)
        .await
        .map_err(sfu_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_kinds_reads_directions() {
        let pubo = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n";
        assert_eq!(offered_kinds(pubo), (true, true));
        let sub = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";
        assert_eq!(offered_kinds(sub), (false, false));
        let video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(offered_kinds(video_only), (false, true));
    }
}
