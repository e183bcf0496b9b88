//! `GET /sessions/{id}/live`: the session's events over a WebSocket, in
//! `seq` order, resumable with `?after=SEQ` with no gap and no duplicate.
//!
//! Without `after` the feed opens with a snapshot of the state; with it, it
//! replays what the client missed (from memory, else from the event log),
//! then continues live. A client may ask for a fresh snapshot at any time by
//! sending `{"type":"snapshot"}`.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use protocol::view::{Viewer, event_visible_to};
use protocol::{Envelope, Role, Seq};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::http::EdgeState;
use crate::http::auth::Joined;
use crate::http::error::EdgeError;
use crate::runtime::session::SessionHandle;

#[derive(Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    after: Option<u64>,
}

pub async fn live(
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
    // small write buffers: a class holds hundreds of these connections
    Ok(ws
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
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
        send_json(socket, json!({ "kind": "event", "event": ev })).await?;
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
            send_json(&mut socket, json!({ "kind": "snapshot", "seq": sub.state.seq, "state": sub.state.view(&viewer) })).await?;
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
                    send_json(&mut socket, json!({ "kind": "lagged", "resume_after": last })).await?;
                    return Ok(());
                }
                Err(RecvError::Closed) => {
                    send_json(&mut socket, json!({ "kind": "closed", "last_seq": last })).await?;
                    let _ = socket.send(Message::Close(None)).await;
                    return Ok(());
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let wants_snapshot = serde_json::from_str::<serde_json::Value>(t.as_str())
                        .map(|v| v["type"] == "snapshot")
                        .unwrap_or(false);
                    if wants_snapshot {
                        // The snapshot can be ahead of `last`: events between
                        // are still delivered by the live receiver, in order.
                        let state = handle.state().await?;
                        send_json(&mut socket, json!({ "kind": "snapshot", "seq": state.seq, "state": state.view(&viewer) })).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}
