//! Multistream fan-out: a class this edge is home to, pushed to the RTMP,
//! RTMPS and SRT destinations core attached to it.
//!
//! Two programs, each encoded once and shared by every destination that
//! takes it: the *private* program is the recorder's (everyone who consents
//! to recording), for other campuses; the *public* program is composed by
//! the recorder only while a public destination is attached, from the
//! class's staff, slides, screen and whiteboard (no student's camera, voice
//! or name). Each destination has its own pusher (`pusher.rs`), so one that
//! refuses, stalls or drops never touches the class, the recording or the
//! other destinations.
//!
//! Every change of a destination's state is a `destination.status` event in
//! the class's log (the live feed and `GET /sessions/{id}/destinations`
//! read it). The multistream kill switch stops every pusher at once.

mod pusher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::control::{Audience, PushTarget};
use protocol::event::EventBody;
use protocol::{Actor, Command, DestinationId, SessionId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::runtime::session::SessionHandle;
pub(crate) use pusher::Report;

/// One encoded sample of a program, as the pushers take it: an H.264
/// access unit or an AAC frame, with its caps and running-time stamps.
#[derive(Debug, Clone)]
pub struct StreamFrame {
    pub video: bool,
    pub sample: gstreamer::Sample,
}

type Source = Option<broadcast::Sender<StreamFrame>>;

#[derive(Clone, Default)]
pub(crate) struct Fanout {
    inner: Arc<Mutex<HashMap<SessionId, Class>>>,
}

struct Class {
    /// The programs' encoded samples (`None` while one is not running).
    feeds: HashMap<Audience, watch::Sender<Source>>,
    targets: HashMap<DestinationId, PushTarget>,
    running: HashMap<DestinationId, CancellationToken>,
    /// The multistream kill switch is engaged.
    killed: bool,
    /// Whether the recorder should compose a public program.
    wants_public: watch::Sender<bool>,
    reports: Option<mpsc::UnboundedSender<(DestinationId, Report)>>,
}

impl Class {
    fn new() -> Class {
        Class {
            feeds: [Audience::Public, Audience::Private]
                .into_iter()
                .map(|a| (a, watch::channel(None).0))
                .collect(),
            targets: HashMap::new(),
            running: HashMap::new(),
            killed: false,
            wants_public: watch::channel(false).0,
            reports: None,
        }
    }

    fn start(&mut self, id: DestinationId, session: SessionId) {
        let (Some(target), Some(reports)) = (self.targets.get(&id), self.reports.clone()) else {
            return;
        };
        if self.killed || self.running.contains_key(&id) {
            return;
        }
        let stop = CancellationToken::new();
        let feed = self.feeds[&target.audience].subscribe();
        let span = tracing::info_span!("pusher", session_id = %session, destination_id = %id, kind = ?target.kind, audience = ?target.audience);
        tokio::spawn(pusher::run(target.clone(), feed, reports, stop.clone()).instrument(span));
        self.running.insert(id, stop);
    }

    fn stop(&mut self, id: DestinationId) {
        if let Some(stop) = self.running.remove(&id) {
            stop.cancel();
        }
    }
}

impl Fanout {
    fn with<R>(&self, session: SessionId, f: impl FnOnce(&mut Class) -> R) -> R {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(session).or_insert_with(Class::new))
    }

    /// Only a class still here (a closed one is not brought back).
    fn with_existing(&self, session: SessionId, f: impl FnOnce(&mut Class)) {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = all.get_mut(&session) {
            f(c);
        }
    }

    /// Sets the destinations a class streams to (the whole set). New ones
    /// start (unless the kill switch is engaged), missing or changed ones
    /// stop.
    pub(crate) fn set_targets(
        &self,
        handle: &SessionHandle,
        targets: Vec<PushTarget>,
        killed: bool,
    ) {
        let session = handle.id;
        let reporter = self.with(session, |c| {
            c.killed = killed;
            let fresh = c.reports.is_none();
            if fresh {
                let (tx, rx) = mpsc::unbounded_channel();
                c.reports = Some(tx);
                Some(rx)
            } else {
                None
            }
        });
        if let Some(rx) = reporter {
            tokio::spawn(log_reports(handle.clone(), rx).in_current_span());
        }
        self.with(session, |c| {
            let wanted: HashMap<DestinationId, PushTarget> = targets
                .into_iter()
                .map(|t| (t.destination_id, t))
                .collect();
            let gone: Vec<DestinationId> = c
                .targets
                .iter()
                .filter(|(id, t)| wanted.get(id) != Some(t))
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                c.stop(id);
                c.targets.remove(&id);
            }
            for (id, t) in wanted {
                c.targets.entry(id).or_insert(t);
                c.start(id, session);
            }
            let public = c.targets.values().any(|t| t.audience == Audience::Public);
            c.wants_public.send_replace(public);
            tracing::info!(session_id = %session, destinations = c.targets.len(), running = c.running.len(), public, killed, "destinations set");
        });
    }

    /// A program started (`Some`) or stopped (`None`).
    pub(crate) fn set_feed(&self, session: SessionId, audience: Audience, source: Source) {
        self.with_existing(session, |c| {
            c.feeds[&audience].send_replace(source);
        });
    }

    /// Whether the class has a public destination (the recorder composes
    /// the public program while it does).
    pub(crate) fn wants_public(&self, session: SessionId) -> watch::Receiver<bool> {
        self.with(session, |c| c.wants_public.subscribe())
    }

    /// The multistream kill switch: engaged stops every pusher of the class
    /// now; released starts them again.
    pub(crate) fn kill(&self, session: SessionId, engaged: bool) {
        self.with_existing(session, |c| {
            c.killed = engaged;
            let ids: Vec<DestinationId> = c.targets.keys().copied().collect();
            for id in ids {
                if engaged {
                    c.stop(id);
                } else {
                    c.start(id, session);
                }
            }
            tracing::info!(session_id = %session, engaged, destinations = c.targets.len(), "multistream kill switch");
        });
    }

    /// The class ended here: every pusher stops, nothing more is logged.
    pub(crate) fn close(&self, session: SessionId) {
        let class = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
        if let Some(mut c) = class {
            c.reports = None;
            let ids: Vec<DestinationId> = c.running.keys().copied().collect();
            for id in ids {
                c.stop(id);
            }
        }
    }
}

/// Logs each pusher's reports, in order, as `destination.status`.
async fn log_reports(
    handle: SessionHandle,
    mut rx: mpsc::UnboundedReceiver<(DestinationId, Report)>,
) {
    while let Some((destination_id, r)) = rx.recv().await {
        let event = EventBody::DestinationStatus {
            destination_id,
            status: r.status.to_string(),
            bitrate_kbps: r.bitrate_kbps,
            dropped_frames: Some(r.dropped_frames),
            reason: r.reason,
        };
        match handle
            .command(Actor::System, Command::System { event })
            .await
        {
            Ok(protocol::control::EdgeReply::Done { .. }) => {
                tracing::debug!(%destination_id, status = r.status, "destination status logged")
            }
            Ok(other) => {
                tracing::debug!(%destination_id, reply = ?other, "destination status not logged")
            }
            Err(_) => return,
        }
    }
}
