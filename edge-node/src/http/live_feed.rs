//! `GET /sessions/{id}/live`: the session's events over a WebSocket, in
//! `seq` order, resumable with `?after=SEQ` with no gap and no duplicate.
//!
//! Without `after` the feed opens with a snapshot of the state; with it, it
//! replays what the client missed (from memory, else from the event log),
//! then continues live. A client may ask for a fresh snapshot at any time by
//! sending `{"type":"snapshot"}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use protocol::api::ApiErrorBody;
use protocol::view::{SessionView, Viewer, event_visible_to};
use protocol::{Envelope, Role, Seq};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use crate::http::EdgeState;
use crate::http::auth::Joined;
use crate::http::error::EdgeError;
use crate::runtime::session::SessionHandle;

#[derive(Deserialize)]
pub(crate) struct LiveQuery {
    #[serde(default)]
    after: Option<u64>,
}

/// One text frame of the live feed (each a JSON object).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum LiveMessage<'a> {
    /// The state as the viewer may see it: first without `after`, and
    /// whenever the client sends `{"type":"snapshot"}`.
    Snapshot { seq: Seq, state: Box<SessionView> },
    /// One event of the class, in `seq` order (only those the viewer may see).
    Event {
        /// An event envelope: `event_id`, `seq`, `occurred_at`, `actor`,
        /// `type`, `payload`, ...
        #[schema(value_type = Object)]
        event: &'a Envelope,
    },
    /// The client fell behind; reconnect with `?after=<resume_after>`.
    Lagged { resume_after: Seq },
    /// The class ended; the socket closes.
    Closed { last_seq: Seq },
}

impl LiveMessage<'_> {
    /// The frame's JSON (maps in sorted key order, as the feed always sent).
    fn to_json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(self)?)
    }
}

#[utoipa::path(get, path = "/sessions/{id}/live", tag = "sessions", operation_id = "edge_live_feed",
    summary = "The session's live feed: a WebSocket of JSON text frames",
    description = "A WebSocket (`GET` with `Connection: Upgrade`, `Upgrade: websocket`). \
        Every server frame is a JSON text frame, a `LiveMessage` (see the schema): \
        without `after` the feed opens with a `snapshot`; with `after` it first replays \
        the events after that seq (no gap, no duplicate), then goes on live with `event` \
        frames. A client may send `{\"type\":\"snapshot\"}` for a fresh snapshot. \
        The join token may come as `?token=` (a browser's WebSocket cannot set headers).",
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("after" = Option<u64>, Query, description = "Resume after this seq: no snapshot, the missed events first"),
        ("token" = Option<String>, Query, description = "The join token, when no `Authorization` header can be sent"),
    ),
    security(("join_token" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket; each frame is a `LiveMessage` (JSON text)"),
        (status = 400, description = "The session id is not a UUID (`invalid_id`, JSON); or, as plain text from the framework, `after` is not a number or the request is not a WebSocket upgrade",
            content((ApiErrorBody = "application/json"), (String = "text/plain"))),
        (status = 401, description = "No join token, or a bad or expired one", body = ApiErrorBody),
        (status = 403, description = "The join token is for another session (`wrong_session`)", body = ApiErrorBody),
        (status = 404, description = "The session is not live on this edge (`session_not_found`)", body = ApiErrorBody),
        (status = 426, description = "The connection cannot be upgraded (plain text)", body = String, content_type = "text/plain"),
        (status = 503, description = "The token keys are not loaded yet (`keys_unavailable`)", body = ApiErrorBody),
    ))]
pub(crate) async fn live(
    // the token is checked first: an unauthenticated request is a 401 even
    // when it is not a WebSocket upgrade
    who: Joined,
    State(st): State<EdgeState>,
    Path(sid): Path<String>,
    Query(q): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, EdgeError> {
    let sid = sid
        .parse()
        .map_err(|_| EdgeError::bad_request("invalid_id", "the session id is not a UUID"))?;
    who.require_session(sid)?;
    let handle = st.registry.get(sid).await.ok_or_else(|| {
        EdgeError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "the session is not live on this edge",
        )
    })?;
    let viewer = match who.0.role {
        Role::Public => Viewer::Public,
        role => Viewer::Participant {
            participant_id: who.0.sub,
            role,
        },
    };
    // small write buffers: a class holds hundreds of these connections; a
    // client only ever sends `{"type":"snapshot"}`, so its frames are small
    Ok(ws
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            if let Err(e) = feed(socket, st, handle, viewer, q.after.map(Seq)).await {
                tracing::debug!(error = %e, "live feed closed");
            }
        }))
}

async fn send_json(socket: &mut WebSocket, v: serde_json::Value) -> anyhow::Result<()> {
    socket.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

async fn send_event(socket: &mut WebSocket, ev: &Envelope, viewer: &Viewer) -> anyhow::Result<()> {
    if event_visible_to(&ev.body, viewer) {
        send_json(socket, LiveMessage::Event { event: ev }.to_json()?).await?;
    }
    Ok(())
}

async fn feed(
    mut socket: WebSocket,
    st: EdgeState,
    handle: SessionHandle,
    viewer: Viewer,
    after: Option<Seq>,
) -> anyhow::Result<()> {
    let sub = handle.subscribe(after.unwrap_or(Seq(u64::MAX))).await?;
    let mut live = sub.live;
    let mut last = sub.state.seq;
    match after {
        None => {
            let snapshot = LiveMessage::Snapshot {
                seq: sub.state.seq,
                state: Box::new(sub.state.view(&viewer)),
            };
            send_json(&mut socket, snapshot.to_json()?).await?;
        }
        Some(after) => {
            let backlog: Vec<Arc<Envelope>> = match sub.backlog {
                Some(b) => b,
                None => st
                    .registry
                    .log()
                    .read_session(handle.tenant, handle.id, after)
                    .await?
                    .into_iter()
                    .map(Arc::new)
                    .collect(),
            };
            for ev in backlog
                .iter()
                .filter(|e| e.seq > after && e.seq <= sub.state.seq)
            {
                send_event(&mut socket, ev, &viewer).await?;
            }
            last = sub.state.seq.max(after);
        }
    }
    let mut snapshots = SnapshotBudget::new(Instant::now());
    loop {
        tokio::select! {
            ev = live.recv() => match ev {
                Ok(fe) => {
                    if fe.event.seq > last {
                        if event_visible_to(&fe.event.body, &viewer) {
                            let text = axum::extract::ws::Utf8Bytes::try_from(fe.frame.clone())?;
                            socket.send(Message::Text(text)).await?;
                        }
                        last = fe.event.seq;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow to follow live: resume from the log instead.
                    send_json(&mut socket, LiveMessage::Lagged { resume_after: last }.to_json()?).await?;
                    return Ok(());
                }
                Err(RecvError::Closed) => {
                    send_json(&mut socket, LiveMessage::Closed { last_seq: last }.to_json()?).await?;
                    let _ = socket.send(Message::Close(None)).await;
                    return Ok(());
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let wants_snapshot = serde_json::from_str::<serde_json::Value>(t.as_str())
                        .map(|v| v["type"] == "snapshot")
                        .unwrap_or(false);
                    if wants_snapshot && !snapshots.allow(Instant::now()) {
                        // a client asking faster than a snapshot can be worth
                        // it: dropped; one that never stops is cut off
                        if snapshots.refused > SNAPSHOT_FLOOD {
                            tracing::info!("live feed closed: snapshot request flood");
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame {
                                    code: close_code::POLICY,
                                    reason: "too many snapshot requests".into(),
                                })))
                                .await;
                            return Ok(());
                        }
                    } else if wants_snapshot {
                        // The snapshot can be ahead of `last`: events between
                        // are still delivered by the live receiver, in order.
                        let state = handle.state().await?;
                        let snapshot = LiveMessage::Snapshot {
                            seq: state.seq,
                            state: Box::new(state.view(&viewer)),
                        };
                        send_json(&mut socket, snapshot.to_json()?).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The largest frame or message a client may send (the feed's only client
/// message is a snapshot request of a few bytes).
const MAX_CLIENT_MESSAGE: usize = 1024;
/// Snapshot requests answered at once, and how often one more is.
const SNAPSHOT_BURST: f64 = 3.0;
const SNAPSHOT_EVERY_SECS: f64 = 5.0;
/// Refused snapshot requests after which the connection is closed.
const SNAPSHOT_FLOOD: u32 = 50;

/// Snapshot requests on one connection: a token bucket, and how many it
/// refused.
struct SnapshotBudget {
    tokens: f64,
    at: Instant,
    refused: u32,
}

impl SnapshotBudget {
    fn new(now: Instant) -> Self {
        SnapshotBudget {
            tokens: SNAPSHOT_BURST,
            at: now,
            refused: 0,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed / SNAPSHOT_EVERY_SECS).min(SNAPSHOT_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshot_requests_have_a_budget() {
        let t0 = Instant::now();
        let mut b = SnapshotBudget::new(t0);
        assert!((0..3).all(|_| b.allow(t0)), "three at once");
        assert!(!b.allow(t0), "the fourth waits");
        assert_eq!(b.refused, 1);
        assert!(
            b.allow(t0 + std::time::Duration::from_secs(5)),
            "one more five seconds later"
        );
    }

    /// The typed frames are the JSON the feed always sent.
    #[test]
    fn frames_keep_their_shape() {
        assert_eq!(
            LiveMessage::Lagged {
                resume_after: Seq(7)
            }
            .to_json()
            .unwrap(),
            json!({ "kind": "lagged", "resume_after": 7 })
        );
        assert_eq!(
            LiveMessage::Closed { last_seq: Seq(9) }.to_json().unwrap(),
            json!({ "kind": "closed", "last_seq": 9 })
        );
    }
}
