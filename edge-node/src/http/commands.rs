//! Class commands straight from campus clients, with the join token: the
//! same routes and bodies as core's API, so a class goes on when core is
//! unreachable.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use protocol::api::*;
use protocol::control::EdgeReply;
use protocol::view::Viewer;
use protocol::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::http::EdgeState;
use crate::http::auth::Joined;
use crate::http::error::EdgeError;

/// A JSON body with api.md errors (400 bad JSON, 413 too large).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = EdgeError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                EdgeError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body too large",
                )
            } else {
                EdgeError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        if !raw.is_empty() && !json {
            return Err(EdgeError::bad_request(
                "unsupported_content_type",
                "send the body as application/json",
            ));
        }
        let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &raw
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| EdgeError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
    }
}

fn session_id(raw: &str) -> Result<SessionId, EdgeError> {
    raw.parse()
        .map_err(|_| EdgeError::bad_request("invalid_id", "the session id is not a UUID"))
}

fn id<T: std::str::FromStr>(raw: &str) -> Result<T, EdgeError> {
    raw.parse()
        .map_err(|_| EdgeError::bad_request("invalid_id", "an id in the path is not a UUID"))
}

/// Runs one command through the session's writer on behalf of the token holder.
pub async fn run(
    state: &EdgeState,
    who: &Joined,
    session: SessionId,
    command: Command,
) -> Result<(Vec<Envelope>, Seq), EdgeError> {
    who.require_session(session)?;
    if !state.limits.allow(who.0.sub, &command) {
        return Err(EdgeError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        ));
    }
    let handle = state.registry.get(session).await.ok_or_else(|| {
        EdgeError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "the session is not live on this edge",
        )
    })?;
    let reply = handle
        .command(who.actor(), command)
        .await
        .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))?;
    match reply {
        EdgeReply::Done { events, seq, .. } => Ok((events, seq)),
        EdgeReply::Rejected { rejection } => Err(rejection.into()),
        EdgeReply::Failed { code, message } => Err(EdgeError::unavailable(&code, message)),
        EdgeReply::State { .. } => Err(EdgeError::unavailable("unexpected", "unexpected reply")),
    }
}

fn answer(events: &[Envelope], seq: Seq, extra: Value) -> Json<Value> {
    let mut v = json!({ "seq": events.last().map(|e| e.seq).unwrap_or(seq) });
    if let (Some(o), Value::Object(extra)) = (v.as_object_mut(), extra) {
        o.extend(extra);
    }
    Json(v)
}

type Res = Result<Json<Value>, EdgeError>;

pub async fn state(State(st): State<EdgeState>, who: Joined, Path(sid): Path<String>) -> Res {
    let sid = session_id(&sid)?;
    who.require_session(sid)?;
    let h = st.registry.get(sid).await.ok_or_else(|| {
        EdgeError::new(StatusCode::NOT_FOUND, "session_not_found", "not live here")
    })?;
    let s = h
        .state()
        .await
        .map_err(|e| EdgeError::unavailable("session_stopped", e.to_string()))?;
    let viewer = match who.0.role {
        Role::Public => Viewer::Public,
        _ => Viewer::Participant {
            participant_id: who.0.sub,
            role: who.0.role,
        },
    };
    Ok(Json(
        serde_json::to_value(s.view(&viewer)).unwrap_or(Value::Null),
    ))
}

pub async fn chat(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<TextBody>,
) -> Res {
    let message_id = MessageId::from_uuid(Uuid::now_v7());
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Chat {
            message_id,
            text: b.text,
        },
    )
    .await?;
    Ok(answer(
        &evs,
        seq,
        json!({ "id": message_id, "message_id": message_id }),
    ))
}

pub async fn delete_chat(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, mid)): Path<(String, String)>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::DeleteChat {
            message_id: id(&mid)?,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn ask(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<TextBody>,
) -> Res {
    let question_id = QuestionId::from_uuid(Uuid::now_v7());
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Ask {
            question_id,
            text: b.text,
        },
    )
    .await?;
    Ok(answer(
        &evs,
        seq,
        json!({ "id": question_id, "question_id": question_id }),
    ))
}

pub async fn upvote(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, qid)): Path<(String, String)>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Upvote {
            question_id: id(&qid)?,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn answer_question(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, qid)): Path<(String, String)>,
    Body(b): Body<AnswerBody>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Answer {
            question_id: id(&qid)?,
            answer: b.text,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn dismiss(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, qid)): Path<(String, String)>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Dismiss {
            question_id: id(&qid)?,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn open_poll(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<PollBody>,
) -> Res {
    let poll_id = PollId::from_uuid(Uuid::now_v7());
    let cmd = Command::OpenPoll {
        poll_id,
        question: b.question,
        options: b.options,
        correct_option: b.correct_option,
    };
    let (evs, seq) = run(&st, &who, session_id(&sid)?, cmd).await?;
    Ok(answer(
        &evs,
        seq,
        json!({ "id": poll_id, "poll_id": poll_id }),
    ))
}

pub async fn vote(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, pid)): Path<(String, String)>,
    Body(b): Body<VoteBody>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::Vote {
            poll_id: id(&pid)?,
            option: b.option,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn close_poll(
    State(st): State<EdgeState>,
    who: Joined,
    Path((sid, pid)): Path<(String, String)>,
) -> Res {
    let poll_id: PollId = id(&pid)?;
    let (evs, seq) = run(&st, &who, session_id(&sid)?, Command::ClosePoll { poll_id }).await?;
    let results = evs.iter().find_map(|e| match &e.body {
        EventBody::PollClosed { results, .. } => Some(results.clone()),
        _ => None,
    });
    Ok(answer(
        &evs,
        seq,
        json!({ "poll_id": poll_id, "results": results }),
    ))
}

pub async fn scene(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<SceneBody>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::SetScene { scene: b.scene },
    )
    .await?;
    Ok(answer(&evs, seq, json!({ "scene": b.scene })))
}

pub async fn layout(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<LayoutBody>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::SetLayout { layout: b.layout },
    )
    .await?;
    Ok(answer(&evs, seq, json!({ "layout": b.layout })))
}

pub async fn raise_hand(State(st): State<EdgeState>, who: Joined, Path(sid): Path<String>) -> Res {
    let (evs, seq) = run(&st, &who, session_id(&sid)?, Command::RaiseHand).await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn lower_hand(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<LowerHandBody>,
) -> Res {
    let (evs, seq) = run(
        &st,
        &who,
        session_id(&sid)?,
        Command::LowerHand {
            participant_id: b.participant_id,
        },
    )
    .await?;
    Ok(answer(&evs, seq, json!({})))
}

pub async fn permissions(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
    Body(b): Body<PermissionsBody>,
) -> Res {
    let PermissionsBody {
        participant_id,
        grant,
        revoke,
    } = b;
    let sid = session_id(&sid)?;
    let (evs, seq) = run(
        &st,
        &who,
        sid,
        Command::ChangePermissions {
            participant_id,
            grant,
            revoke,
        },
    )
    .await?;
    let perms = match st.registry.get(sid).await {
        Some(h) => h
            .state()
            .await
            .ok()
            .and_then(|s| s.participant(participant_id).map(|p| p.permissions.clone())),
        None => None,
    };
    Ok(answer(
        &evs,
        seq,
        json!({ "participant_id": participant_id, "permissions": perms }),
    ))
}

pub async fn leave(
    State(st): State<EdgeState>,
    who: Joined,
    Path(sid): Path<String>,
) -> Result<StatusCode, EdgeError> {
    let me = who.0.sub;
    run(&st, &who, session_id(&sid)?, protocol::api::leave(me)).await?;
    Ok(StatusCode::NO_CONTENT)
}
