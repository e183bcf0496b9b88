//! The sessions this edge is home to. Holds handles, never state.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::control::{EdgeReply, EdgeRequest};
use protocol::event::{EndReason, SessionSettings};
use protocol::*;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::event_log::EventLog;
use crate::runtime::session::{self, SessionHandle};

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<SessionId, SessionHandle>>>,
    log: EventLog,
    edge: EdgeId,
    /// Page counts of the decks core told this edge about.
    decks: Arc<std::sync::RwLock<HashMap<DeckId, protocol::control::DeckInfo>>>,
}

pub struct StartParams {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub lesson_run_id: LessonRunId,
    pub course_id: CourseId,
    pub lesson_id: LessonId,
    pub title: String,
    pub started_by: UserId,
    pub settings: SessionSettings,
}

impl Registry {
    pub fn new(log: EventLog, edge: EdgeId) -> Self {
        Registry {
            inner: Arc::new(Mutex::new(HashMap::new())),
            log,
            edge,
            decks: Default::default(),
        }
    }

    /// A deck's page count, if core told this edge about it (same tenant only).
    pub fn deck_pages(&self, tenant: TenantId, deck: DeckId) -> Option<u32> {
        let decks = self.decks.read().ok()?;
        decks
            .get(&deck)
            .filter(|d| d.tenant_id == tenant)
            .map(|d| d.page_count)
    }

    /// The signed URL of a deck page's image, if known.
    pub fn deck_page_url(&self, tenant: TenantId, deck: DeckId, index: u32) -> Option<String> {
        let decks = self.decks.read().ok()?;
        decks
            .get(&deck)
            .filter(|d| d.tenant_id == tenant)
            .and_then(|d| d.page_urls.get(index as usize).cloned())
    }

    fn learn_decks(&self, decks: &[protocol::control::DeckInfo]) {
        if let Ok(mut map) = self.decks.write() {
            for d in decks {
                map.insert(d.deck_id, d.clone());
            }
        }
    }

    pub fn edge(&self) -> &EdgeId {
        &self.edge
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Rebuilds every live session from the edge's own log (after a restart).
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let all = self.log.read_all().await?;
        let mut map = self.inner.lock().await;
        let mut live = 0;
        for (id, events) in all {
            let state = match fold(&events) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(session_id = %id, error = %e, "session log does not fold; not resumed");
                    continue;
                }
            };
            if !state.is_live() {
                continue;
            }
            if let Some(h) = session::spawn(state, &events, self.log.clone(), self.edge.clone()) {
                map.insert(id, h);
                live += 1;
            }
        }
        tracing::info!(
            sessions = live,
            "recovered live sessions from the event log"
        );
        Ok(live)
    }

    pub async fn get(&self, id: SessionId) -> Option<SessionHandle> {
        self.inner.lock().await.get(&id).cloned()
    }

    pub async fn live_count(&self) -> usize {
        self.inner.lock().await.len()
    }

    pub async fn handles(&self) -> Vec<SessionHandle> {
        self.inner.lock().await.values().cloned().collect()
    }

    /// Becomes the home of a new session: appends `session.started` and starts
    /// its writer. A repeated start of the same session answers the same.
    pub async fn start(&self, p: StartParams) -> EdgeReply {
        let mut map = self.inner.lock().await;
        if let Some(h) = map.get(&p.session_id) {
            if h.tenant != p.tenant_id {
                return EdgeReply::Failed {
                    code: "conflict".into(),
                    message: "session id in use".into(),
                };
            }
            return EdgeReply::Done {
                events: vec![(*h.first).clone()],
                seq: Seq::FIRST,
                participant: None,
            };
        }
        let first = Envelope {
            event_id: EventId::from_uuid(Uuid::now_v7()),
            tenant_id: p.tenant_id,
            session_id: p.session_id,
            seq: Seq::FIRST,
            occurred_at: crate::clock::event_time(),
            actor: Actor::Person {
                user_id: Some(p.started_by),
                participant_id: None,
                role: Role::Teacher,
            },
            source: Source::Edge(self.edge.clone()),
            v: EVENT_SCHEMA_VERSION,
            body: EventBody::SessionStarted {
                lesson_run_id: p.lesson_run_id,
                course_id: p.course_id,
                lesson_id: p.lesson_id,
                title: p.title,
                edge_id: self.edge.clone(),
                started_by: p.started_by,
                settings: p.settings,
            },
        };
        let state = match SessionState::genesis(&first) {
            Ok(s) => s,
            Err(e) => {
                return EdgeReply::Failed {
                    code: "invalid".into(),
                    message: e.to_string(),
                };
            }
        };
        if let Err(e) = self.log.append(&first).await {
            tracing::error!(session_id = %p.session_id, error = %e, "cannot start: event log unavailable");
            return EdgeReply::Failed {
                code: "event_log_unavailable".into(),
                message: e.to_string(),
            };
        }
        if let Some(handle) = session::spawn(
            state,
            std::slice::from_ref(&first),
            self.log.clone(),
            self.edge.clone(),
        ) {
            map.insert(p.session_id, handle);
        }
        tracing::info!(session_id = %p.session_id, "session started here");
        EdgeReply::Done {
            events: vec![first],
            seq: Seq::FIRST,
            participant: None,
        }
    }

    /// Core could not record a start: end the session here and forget it.
    pub async fn abort(&self, id: SessionId) -> EdgeReply {
        let handle = self.inner.lock().await.remove(&id);
        let Some(h) = handle else {
            return EdgeReply::Done {
                events: vec![],
                seq: Seq::ZERO,
                participant: None,
            };
        };
        let cmd = Command::System {
            event: EventBody::SessionEnded {
                reason: EndReason::Aborted,
            },
        };
        match h.command(Actor::System, cmd).await {
            Ok(r) => r,
            Err(e) => EdgeReply::Failed {
                code: "stopped".into(),
                message: e.to_string(),
            },
        }
    }

    /// Drops sessions that have ended from the live map.
    pub async fn forget(&self, id: SessionId) {
        self.inner.lock().await.remove(&id);
    }

    pub async fn handle_request(&self, req: EdgeRequest) -> EdgeReply {
        match req {
            EdgeRequest::Start {
                session_id,
                tenant_id,
                lesson_run_id,
                course_id,
                lesson_id,
                title,
                started_by,
                settings,
                decks,
            } => {
                self.learn_decks(&decks);
                self.start(StartParams {
                    session_id,
                    tenant_id,
                    lesson_run_id,
                    course_id,
                    lesson_id,
                    title,
                    started_by,
                    settings,
                })
                .await
            }
            EdgeRequest::Abort { session_id } => self.abort(session_id).await,
            EdgeRequest::Decks { decks } => {
                self.learn_decks(&decks);
                EdgeReply::Done {
                    events: vec![],
                    seq: Seq::ZERO,
                    participant: None,
                }
            }
            EdgeRequest::Command {
                session_id,
                actor,
                command,
            } => {
                let Some(h) = self.get(session_id).await else {
                    return unknown(session_id);
                };
                let ends = matches!(command, Command::End);
                match h.command(actor, command).await {
                    Ok(reply) => {
                        if ends && matches!(reply, EdgeReply::Done { .. }) {
                            self.forget(session_id).await;
                        }
                        reply
                    }
                    Err(e) => EdgeReply::Failed {
                        code: "stopped".into(),
                        message: e.to_string(),
                    },
                }
            }
            EdgeRequest::State { session_id } => {
                let Some(h) = self.get(session_id).await else {
                    return unknown(session_id);
                };
                match h.state().await {
                    Ok(state) => EdgeReply::State {
                        state: Box::new(state),
                    },
                    Err(e) => EdgeReply::Failed {
                        code: "stopped".into(),
                        message: e.to_string(),
                    },
                }
            }
        }
    }
}

fn unknown(id: SessionId) -> EdgeReply {
    EdgeReply::Failed {
        code: "unknown_session".into(),
        message: format!("session {id} is not live on this edge"),
    }
}
