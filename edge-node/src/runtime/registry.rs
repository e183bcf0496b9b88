//! The sessions this edge is home to. Holds handles, never state.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::control::{EdgeReply, EdgeRequest};
use protocol::event::{EndReason, SessionSettings};
use protocol::*;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::event_log::EventLog;
use crate::rate_limit::RateLimits;
use crate::runtime::hooks::{ArmOutcome, RecordingHooks};
use crate::runtime::recovery;
use crate::runtime::session::{self, SessionHandle};

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<SessionId, SessionHandle>>>,
    log: EventLog,
    edge: EdgeId,
    /// Page counts of the decks core told this edge about.
    decks: Arc<std::sync::RwLock<HashMap<DeckId, protocol::control::DeckInfo>>>,
    /// The composer/recorder, once the media plane is up.
    recorders: Arc<std::sync::OnceLock<Arc<dyn RecordingHooks>>>,
    /// Per-participant limits, applied by each session's writer.
    limits: RateLimits,
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
    pub fn new(log: EventLog, edge: EdgeId, limits: RateLimits) -> Self {
        Registry {
            inner: Arc::new(Mutex::new(HashMap::new())),
            log,
            edge,
            decks: Default::default(),
            recorders: Default::default(),
            limits,
        }
    }

    /// Hands the registry its recorders (they need the SFU, which needs
    /// the registry).
    pub fn set_recorders(&self, r: Arc<dyn RecordingHooks>) {
        let _ = self.recorders.set(r);
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
        let mut resume = Vec::new();
        for (id, events) in all {
            let (state, rearm) = match recovery::judge(&events) {
                recovery::Verdict::Resume { state, rearm } => (*state, rearm),
                recovery::Verdict::Ended => continue,
                recovery::Verdict::Unreadable(error) => {
                    tracing::error!(session_id = %id, %error, "session log does not fold; not resumed");
                    continue;
                }
            };
            if let Some(h) = session::spawn(
                state.clone(),
                &events,
                self.log.clone(),
                self.edge.clone(),
                self.limits.clone(),
            ) {
                if rearm {
                    resume.push((h.clone(), state));
                }
                map.insert(id, h);
                live += 1;
            }
        }
        drop(map);
        if let Some(rec) = self.recorders.get() {
            for (h, state) in resume {
                rec.resume(h, &state, self.clone()).await;
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
        let recording_required = p.settings.recording_required;
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
                settings: p.settings.clone(),
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
        // arm the recorder before anything is logged: a session that
        // requires recording does not start without it
        let mut unarmed = None;
        let prepared = match self.recorders.get() {
            Some(rec) => match rec.prepare(p.tenant_id, p.session_id, &p.settings).await {
                ArmOutcome::Armed(armed) => Some(armed),
                // turned off on purpose: nothing to say about it per class
                ArmOutcome::Off if !recording_required => None,
                ArmOutcome::Off => {
                    tracing::error!(session_id = %p.session_id, "cannot start: recording is off on this edge");
                    return EdgeReply::Failed {
                        code: "recording_unavailable".into(),
                        message: "recording is turned off on this edge".into(),
                    };
                }
                ArmOutcome::Failed(e) if recording_required => {
                    tracing::error!(session_id = %p.session_id, error = %e, "cannot start: recorder unavailable");
                    return EdgeReply::Failed {
                        code: "recording_unavailable".into(),
                        message: e,
                    };
                }
                ArmOutcome::Failed(e) => {
                    unarmed = Some(e);
                    None
                }
            },
            None => None,
        };
        if let Err(e) = self.log.append(&first).await {
            tracing::error!(session_id = %p.session_id, error = %e, "cannot start: event log unavailable");
            if let (Some(rec), Some(prep)) = (self.recorders.get(), prepared) {
                rec.abandon(prep, p.session_id);
            }
            return EdgeReply::Failed {
                code: "event_log_unavailable".into(),
                message: e.to_string(),
            };
        }
        let handle = session::spawn(
            state,
            std::slice::from_ref(&first),
            self.log.clone(),
            self.edge.clone(),
            self.limits.clone(),
        );
        if let Some(h) = &handle {
            map.insert(p.session_id, h.clone());
        }
        drop(map);
        if let (Some(rec), Some(h)) = (self.recorders.get(), handle) {
            match prepared {
                Some(prep) => rec.launch(prep, h, self.clone()).await,
                None if unarmed.is_some() => {
                    let reason = format!("recording_unavailable: {}", unarmed.unwrap_or_default());
                    let body = EventBody::RecordingAlert { reason };
                    let _ = h
                        .command(Actor::System, Command::System { event: body })
                        .await;
                }
                None => {}
            }
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
        if let Some(rec) = self.recorders.get() {
            rec.discard(id).await;
        }
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

    /// Before a class ends, its recording is finalized (when the end will be
    /// accepted: a refused end must not stop the recording).
    async fn finalize_recording(&self, h: &SessionHandle, actor: &Actor) {
        let Some(rec) = self.recorders.get() else {
            return;
        };
        let Ok(state) = h.state().await else { return };
        if protocol::decide(&state, actor, &Command::End).is_err() {
            return;
        }
        if let Err(e) = rec.finalize(h.id, std::time::Duration::from_secs(30)).await {
            tracing::error!(session_id = %h.id, error = %e, "recording not finalized before the end");
            let body = EventBody::RecordingAlert {
                reason: format!("finalize_failed: {e}"),
            };
            let _ = h
                .command(Actor::System, Command::System { event: body })
                .await;
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
                if ends {
                    self.finalize_recording(&h, &actor).await;
                }
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
            EdgeRequest::Destinations {
                session_id,
                destinations,
            } => {
                let Some(h) = self.get(session_id).await else {
                    return unknown(session_id);
                };
                let Some(rec) = self.recorders.get() else {
                    return EdgeReply::Failed {
                        code: "no_composer".into(),
                        message: "this edge has no composer to stream from".into(),
                    };
                };
                rec.destinations(h, destinations).await;
                EdgeReply::Done {
                    events: vec![],
                    seq: Seq::ZERO,
                    participant: None,
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
