//! One live session's writer task.
//!
//! It owns the session's state and next `seq`. Every command arrives on its
//! channel; the task decides it with `protocol::decide`, appends each
//! resulting event to the edge's event log, applies it only once the log
//! acknowledged it, fans it out to the live feed, then answers. Nothing else
//! touches the state, so there is nothing to lock.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::Utc;
use protocol::control::EdgeReply;
use protocol::state::{Participant, SessionState};
use protocol::*;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use crate::event_log::EventLog;

/// Live-feed buffer per session; a subscriber that falls further behind
/// resumes from the event log.
const FEED_CAPACITY: usize = 4096;

pub enum SessionMsg {
    Command {
        actor: Actor,
        command: Command,
        reply: oneshot::Sender<EdgeReply>,
    },
    State {
        reply: oneshot::Sender<SessionState>,
    },
    /// A live-feed subscription: the state now, the events after `after`
    /// that are still in memory, and every event from here on.
    Subscribe {
        after: Seq,
        reply: oneshot::Sender<Subscription>,
    },
}

pub struct Subscription {
    pub state: SessionState,
    /// Events after the requested seq up to `state.seq`, when memory still
    /// holds them all; `None` means read them from the event log.
    pub backlog: Option<Vec<Arc<Envelope>>>,
    pub live: broadcast::Receiver<Arc<Envelope>>,
}

/// Recent events kept in memory for live-feed resumes.
const RECENT: usize = 20_000;

#[derive(Clone)]
pub struct SessionHandle {
    pub id: SessionId,
    pub tenant: TenantId,
    pub first: Arc<Envelope>,
    tx: mpsc::Sender<SessionMsg>,
}

#[derive(Debug, thiserror::Error)]
#[error("the session's writer has stopped")]
pub struct Stopped;

impl SessionHandle {
    pub async fn command(&self, actor: Actor, command: Command) -> Result<EdgeReply, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionMsg::Command {
                actor,
                command,
                reply,
            })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn state(&self) -> Result<SessionState, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionMsg::State { reply })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn subscribe(&self, after: Seq) -> Result<Subscription, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionMsg::Subscribe { after, reply })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub struct SessionTask {
    state: SessionState,
    log: EventLog,
    edge: EdgeId,
    feed: broadcast::Sender<Arc<Envelope>>,
    recent: VecDeque<Arc<Envelope>>,
    rx: mpsc::Receiver<SessionMsg>,
}

/// Starts the writer for a session whose log is `events` (folding to `state`).
pub fn spawn(
    state: SessionState,
    events: &[Envelope],
    log: EventLog,
    edge: EdgeId,
) -> Option<SessionHandle> {
    let first = events.first()?.clone();
    let (tx, rx) = mpsc::channel(1024);
    let (feed, _) = broadcast::channel(FEED_CAPACITY);
    let handle = SessionHandle {
        id: state.session_id,
        tenant: state.tenant_id,
        first: Arc::new(first),
        tx,
    };
    let span = tracing::info_span!("session", tenant_id = %state.tenant_id, session_id = %state.session_id, edge_id = %edge);
    let skip = events.len().saturating_sub(RECENT);
    let recent = events[skip..].iter().cloned().map(Arc::new).collect();
    let task = SessionTask {
        state,
        log,
        edge,
        feed,
        recent,
        rx,
    };
    tokio::spawn(task.run().instrument(span));
    Some(handle)
}

impl SessionTask {
    async fn run(mut self) {
        tracing::info!(seq = %self.state.seq, "session writer running");
        while let Some(msg) = self.rx.recv().await {
            match msg {
                SessionMsg::Command {
                    actor,
                    command,
                    reply,
                } => {
                    let answer = self.handle(actor, command).await;
                    let _ = reply.send(answer);
                }
                SessionMsg::State { reply } => {
                    let _ = reply.send(self.state.clone());
                }
                SessionMsg::Subscribe { after, reply } => {
                    let oldest = self.recent.front().map(|e| e.seq).unwrap_or(Seq(u64::MAX));
                    let backlog = (after.next() >= oldest || after >= self.state.seq).then(|| {
                        self.recent
                            .iter()
                            .filter(|e| e.seq > after)
                            .cloned()
                            .collect()
                    });
                    let _ = reply.send(Subscription {
                        state: self.state.clone(),
                        backlog,
                        live: self.feed.subscribe(),
                    });
                }
            }
        }
        tracing::info!("session writer stopped");
    }

    /// Fills in the caller's seat from the state when only the user is known
    /// (commands forwarded by core).
    fn resolve(&self, actor: Actor) -> Actor {
        match actor {
            Actor::Person {
                user_id: Some(uid),
                participant_id: None,
                role,
            } => {
                let seat = self
                    .state
                    .participants
                    .values()
                    .filter(|p| p.user_id == Some(uid))
                    .max_by_key(|p| (p.present, p.joined_seq))
                    .map(|p| p.participant_id);
                Actor::Person {
                    user_id: Some(uid),
                    participant_id: seat,
                    role,
                }
            }
            other => other,
        }
    }

    async fn handle(&mut self, actor: Actor, command: Command) -> EdgeReply {
        let actor = self.resolve(actor);
        let bodies = match decide(&self.state, &actor, &command) {
            Ok(b) => b,
            Err(rejection) => {
                tracing::debug!(command = command.name(), code = %rejection.code, "command rejected");
                return EdgeReply::Rejected { rejection };
            }
        };
        let mut appended = Vec::with_capacity(bodies.len());
        for body in bodies {
            let ev = Envelope {
                event_id: EventId::from_uuid(Uuid::now_v7()),
                tenant_id: self.state.tenant_id,
                session_id: self.state.session_id,
                seq: self.state.seq.next(),
                occurred_at: Utc::now(),
                actor: actor.clone(),
                source: Source::Edge(self.edge.clone()),
                v: EVENT_SCHEMA_VERSION,
                body,
            };
            if let Err(e) = self.log.append(&ev).await {
                // Earlier events of this command are durable and applied; this
                // one and any after it never happened.
                tracing::error!(command = command.name(), error = %e, "append failed; command stopped");
                return EdgeReply::Failed {
                    code: "event_log_unavailable".into(),
                    message: e.to_string(),
                };
            }
            if let Err(e) = self.state.apply(&ev) {
                // decide() produced it for this very state: cannot happen.
                tracing::error!(error = %e, "appended event does not fold");
            }
            let ev = Arc::new(ev);
            let _ = self.feed.send(ev.clone());
            self.recent.push_back(ev.clone());
            if self.recent.len() > RECENT {
                self.recent.pop_front();
            }
            appended.push((*ev).clone());
        }
        let participant = target_participant(&self.state, &actor, &command);
        EdgeReply::Done {
            events: appended,
            seq: self.state.seq,
            participant,
        }
    }
}

fn target_participant(
    state: &SessionState,
    actor: &Actor,
    command: &Command,
) -> Option<Participant> {
    let id = match command {
        Command::Join { participant_id, .. }
        | Command::ChangePermissions { participant_id, .. }
        | Command::Leave { participant_id, .. } => Some(*participant_id),
        _ => actor.participant_id(),
    }?;
    state.participant(id).cloned()
}
