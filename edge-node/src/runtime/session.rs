//! One live session's writer task.
//!
//! It owns the session's state and next `seq`. Every command arrives on its
//! channel; the task decides it with `protocol::decide`, appends each
//! resulting event to the edge's event log, applies it only once the log
//! acknowledged it, fans it out to the live feed, then answers. Nothing else
//! touches the state, so there is nothing to lock.

use std::collections::VecDeque;
use std::sync::Arc;

use protocol::control::EdgeReply;
use protocol::state::SessionState;
use protocol::*;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use super::batch;
use crate::event_log::EventLog;
use crate::rate_limit::RateLimits;

/// Live-feed buffer per session; a subscriber that falls further behind
/// resumes from the event log.
const FEED_CAPACITY: usize = 4096;

pub(crate) enum SessionMsg {
    Command {
        actor: Actor,
        command: Command,
        reply: oneshot::Sender<EdgeReply>,
    },
    State {
        reply: oneshot::Sender<SessionState>,
    },
    /// Cheap figures for the heartbeat (no state clone).
    Summary { reply: oneshot::Sender<Summary> },
    /// A live-feed subscription: the state now, the events after `after`
    /// that are still in memory, and every event from here on.
    Subscribe {
        after: Seq,
        reply: oneshot::Sender<Subscription>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub present: u32,
    pub live: bool,
}

pub struct Subscription {
    pub state: SessionState,
    /// Events after the requested seq up to `state.seq`, when memory still
    /// holds them all; `None` means read them from the event log.
    pub backlog: Option<Vec<Arc<Envelope>>>,
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
}

/// One event as the live feed sends it: serialized once, shared by every
/// subscriber (a class of 200 would otherwise encode each event 200 times).
pub struct FeedEvent {
    pub event: Arc<Envelope>,
    /// `{"kind":"event","event":…}`
    pub frame: bytes::Bytes,
}

impl FeedEvent {
    pub fn new(event: Arc<Envelope>) -> FeedEvent {
        let frame = serde_json::to_vec(&serde_json::json!({ "kind": "event", "event": &*event }))
            .map(bytes::Bytes::from)
            .unwrap_or_default();
        FeedEvent { event, frame }
    }
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

    pub async fn summary(&self) -> Result<Summary, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionMsg::Summary { reply })
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

pub(crate) struct SessionTask {
    state: SessionState,
    log: EventLog,
    edge: EdgeId,
    feed: broadcast::Sender<Arc<FeedEvent>>,
    recent: VecDeque<Arc<Envelope>>,
    rx: mpsc::Receiver<SessionMsg>,
    limits: RateLimits,
}

/// Starts the writer for a session whose log is `events` (folding to `state`).
pub(crate) fn spawn(
    state: SessionState,
    events: &[Envelope],
    log: EventLog,
    edge: EdgeId,
    limits: RateLimits,
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
        limits,
    };
    tokio::spawn(task.run().instrument(span));
    Some(handle)
}

/// Commands decided and appended together at most (one atomic batch).
const MAX_BATCH_COMMANDS: usize = 128;

type Pending = (Actor, Command, oneshot::Sender<EdgeReply>);

impl SessionTask {
    async fn run(mut self) {
        tracing::info!(seq = %self.state.seq, "session writer running");
        let mut next: Option<SessionMsg> = None;
        loop {
            let msg = match next.take() {
                Some(m) => m,
                None => match self.rx.recv().await {
                    Some(m) => m,
                    None => break,
                },
            };
            match msg {
                SessionMsg::Command {
                    actor,
                    command,
                    reply,
                } => {
                    // Group commit: take every command already waiting, decide
                    // them in order, and make them durable in one append.
                    let mut batch: Vec<Pending> = vec![(actor, command, reply)];
                    while batch.len() < MAX_BATCH_COMMANDS {
                        match self.rx.try_recv() {
                            Ok(SessionMsg::Command {
                                actor,
                                command,
                                reply,
                            }) => batch.push((actor, command, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.run_batch(batch).await;
                }
                SessionMsg::State { reply } => {
                    let _ = reply.send(self.state.clone());
                }
                SessionMsg::Summary { reply } => {
                    let _ = reply.send(Summary {
                        present: self.state.present().count() as u32,
                        live: self.state.is_live(),
                    });
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

    /// Decides each command against the state as the earlier ones left it
    /// (`batch::plan`, on a copy), appends all resulting events at once, and
    /// only then takes the new state and answers each command. If the
    /// append fails, the state is rebuilt from the log, which is the truth:
    /// each command is answered by whether its events are in it.
    async fn run_batch(&mut self, batch: Vec<Pending>) {
        let mut commands = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (actor, command, reply) in batch {
            commands.push((actor, command));
            replies.push(reply);
        }
        let limits = &self.limits;
        let planned = batch::plan(
            &self.state,
            &self.edge,
            crate::clock::event_time(),
            commands,
            // every way in (this edge's HTTP, core over NATS) meets the same limit
            |actor, command| limit_key(actor).and_then(|key| limits.check(key, command).err()),
            || EventId::from_uuid(Uuid::now_v7()),
        );
        let events = planned.events;
        if events.is_empty() {
            for (r, reply) in batch::settle(planned.outcomes, &events, None, "")
                .into_iter()
                .zip(replies)
            {
                let _ = reply.send(r);
            }
            return;
        }
        let answers = match self.log.append_batch(&events).await {
            Ok(()) => {
                self.state = planned.state;
                for ev in &events {
                    let ev = Arc::new(ev.clone());
                    if self.feed.receiver_count() > 0 {
                        let _ = self.feed.send(Arc::new(FeedEvent::new(ev.clone())));
                    }
                    self.recent.push_back(ev);
                }
                while self.recent.len() > RECENT {
                    self.recent.pop_front();
                }
                batch::settle(planned.outcomes, &events, None, "")
            }
            Err(e) => {
                tracing::error!(events = events.len(), error = %e, "append failed; rebuilding state from the log");
                let durable = self.reload().await;
                batch::settle(planned.outcomes, &events, Some(&durable), &e.to_string())
            }
        };
        for (r, reply) in answers.into_iter().zip(replies) {
            let _ = reply.send(r);
        }
    }

    /// Rebuilds state and recent events from the event log after a failed
    /// append. Returns the ids of the batch's events that did land. If the
    /// log cannot be read either, the optimistic events are dropped by
    /// folding what memory holds minus them.
    async fn reload(&mut self) -> std::collections::HashSet<EventId> {
        match self
            .log
            .read_session(self.state.tenant_id, self.state.session_id, Seq::ZERO)
            .await
        {
            Ok(log) => match protocol::fold(&log) {
                Ok(state) => {
                    let ids = log.iter().map(|e| e.event_id).collect();
                    self.state = state;
                    let skip = log.len().saturating_sub(RECENT);
                    self.recent = log[skip..].iter().cloned().map(Arc::new).collect();
                    ids
                }
                Err(e) => {
                    tracing::error!(error = %e, "the session log does not fold; keeping the last good state");
                    self.restore_from_recent();
                    Default::default()
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "the session log cannot be read; keeping the last good state");
                self.restore_from_recent();
                Default::default()
            }
        }
    }

    /// The state as of the last durable event, when memory still holds the
    /// whole log (it does for all but the longest classes).
    fn restore_from_recent(&mut self) {
        if self.recent.front().map(|e| e.seq) == Some(Seq::FIRST)
            && let Ok(s) = protocol::fold(self.recent.iter().map(|e| e.as_ref()))
        {
            self.state = s;
        }
    }
}

/// Whose bucket a command draws on: the seat, else the user (a forwarded
/// command before the seat is known); the platform itself is not limited.
fn limit_key(actor: &Actor) -> Option<Uuid> {
    match actor {
        Actor::Person {
            participant_id: Some(p),
            ..
        } => Some(p.as_uuid()),
        Actor::Person {
            user_id: Some(u), ..
        } => Some(u.as_uuid()),
        _ => None,
    }
}
