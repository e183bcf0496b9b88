//! The driver: one task that owns the [`Router`] and the moq-transport
//! handles its decisions act on. Session tasks, source tasks and subscriber
//! serve tasks talk to it only through [`Event`]s on one channel; it feeds
//! them to the router and carries out every output before taking the next
//! event. It decides nothing itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use moq_transport::coding::{TrackName, TrackNamespace};
use moq_transport::serve::{self, ServeError, Subgroup, SubgroupWriter, SubgroupsWriter};
use moq_transport::session::{PublishedNamespace, Subscribed, Subscriber};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::routing::{
    CatchUp, EndReason, Input, Origin, Output, PublishRefusal, RejectReason, Router, SessionKey,
    SourceFailure, SourceKey, Stats, SubscriptionKey, TrackKey,
};
use crate::source::{self, SourceOrigin};
use crate::upstream::UpstreamLink;
use mesh_client::codes::REQUEST_UNAUTHORIZED;

/// Everything the driver hears about.
pub(crate) enum Event {
    // The big moq handles are boxed so that the hot variant (an object)
    // keeps the channel's slots small.
    SessionUp {
        session: SessionKey,
        subscriber: Box<Subscriber>,
        /// Whom the session's token names, and what it grants.
        peer: String,
        grants: protocol::claims::RelayGrants,
    },
    SessionDown {
        session: SessionKey,
    },
    NamespacePublished {
        session: SessionKey,
        published: Box<PublishedNamespace>,
    },
    NamespaceWithdrawn {
        session: SessionKey,
        namespace: String,
    },
    Subscribed {
        session: SessionKey,
        subscribed: Box<Subscribed>,
    },
    SubscriptionEnded {
        subscription: SubscriptionKey,
    },
    Source {
        source: SourceKey,
        event: SourceEvent,
    },
}

/// What a source task reports about its upstream pull.
pub(crate) enum SourceEvent {
    Ready {
        largest_group: Option<u64>,
    },
    Failed(SourceFailure),
    Object {
        group: u64,
        object: u64,
        priority: u8,
        payload: Bytes,
    },
    GroupEnded {
        group: u64,
    },
    Ended(EndReason),
}

/// PUBLISH_DONE status codes (draft-18 §15.10.3) for the ways a track ends.
fn publish_done_code(reason: EndReason) -> u64 {
    match reason {
        EndReason::TrackEnded => 0x2,    // TRACK_ENDED
        EndReason::PublisherGone => 0x4, // GOING_AWAY
        EndReason::SourceLost => 0x0,    // INTERNAL_ERROR
    }
}

/// Our track key for a moq full track name: namespace fields joined by `/`.
pub(crate) fn track_key(namespace: &TrackNamespace, name: &TrackName) -> TrackKey {
    TrackKey::new(
        namespace_key(namespace),
        name.to_string_lossy().into_owned(),
    )
}

pub(crate) fn namespace_key(namespace: &TrackNamespace) -> String {
    let fields: Vec<String> = namespace
        .fields
        .iter()
        .map(|f| String::from_utf8_lossy(&f.value).into_owned())
        .collect();
    fields.join("/")
}

enum Downstream {
    /// SUBSCRIBE received, waiting for the router's verdict.
    Pending(Box<Subscribed>),
    Serving {
        writer: SubgroupsWriter,
        groups: HashMap<u64, SubgroupWriter>,
    },
}

pub(crate) struct Driver {
    router: Router,
    events: mpsc::Sender<Event>,
    sessions: HashMap<SessionKey, Subscriber>,
    namespaces: HashMap<(SessionKey, String), oneshot::Sender<()>>,
    downstream: HashMap<SubscriptionKey, Downstream>,
    /// The moq names of tracks we pull, kept from the SUBSCRIBE that asked
    /// for them (the router only knows the string key).
    names: HashMap<TrackKey, (TrackNamespace, TrackName)>,
    sources: HashMap<SourceKey, (CancellationToken, TrackKey)>,
    upstream: Option<Arc<UpstreamLink>>,
    next_subscription: u64,
    stats: watch::Sender<Stats>,
}

impl Driver {
    pub(crate) fn new(
        router: Router,
        events: mpsc::Sender<Event>,
        upstream: Option<Arc<UpstreamLink>>,
        stats: watch::Sender<Stats>,
    ) -> Driver {
        Driver {
            router,
            events,
            sessions: HashMap::new(),
            namespaces: HashMap::new(),
            downstream: HashMap::new(),
            names: HashMap::new(),
            sources: HashMap::new(),
            upstream,
            next_subscription: 1,
            stats,
        }
    }

    /// Runs until `stop` fires or every event sender is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Event>, stop: CancellationToken) {
        let mut since_stats = 0u32;
        loop {
            let deadline = self.router.poll_timeout();
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = rx.recv() => match event {
                    Some(event) => Some(event),
                    None => break,
                },
                _ = sleep_until(deadline) => None,
            };
            let now = Instant::now();
            match event {
                Some(event) => self.handle_event(event, now),
                None => self.router.handle_timeout(now),
            }
            self.drain_outputs();
            since_stats += 1;
            // Publish stats when the queue runs dry, or every so often under
            // load, not per object.
            if rx.is_empty() || since_stats >= 1024 {
                since_stats = 0;
                self.stats.send_replace(self.router.stats());
            }
        }
        // Dropping every handle closes downstream tracks and upstream pulls.
        for (_, (cancel, _)) in self.sources.drain() {
            cancel.cancel();
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        let input = match event {
            Event::SessionUp {
                session,
                subscriber,
                peer,
                grants,
            } => {
                self.sessions.insert(session, *subscriber);
                Input::SessionUp {
                    session,
                    peer,
                    grants,
                }
            }
            Event::SessionDown { session } => {
                self.sessions.remove(&session);
                self.namespaces.retain(|(s, _), _| *s != session);
                Input::SessionDown { session }
            }
            Event::NamespacePublished {
                session,
                mut published,
            } => {
                let namespace = namespace_key(&published.info.namespace);
                if let Err(refusal) = self.router.check_publish(session, &namespace) {
                    tracing::warn!(session = session.0, %namespace, ?refusal, "refused a PUBLISH_NAMESPACE the token does not allow");
                    self.router.count_refused();
                    let reason = match refusal {
                        PublishRefusal::NotGranted => "not granted by the token",
                        PublishRefusal::OwnedByAnother => "published by another peer",
                    };
                    let _ = published.reject(REQUEST_UNAUTHORIZED, reason);
                    return;
                }
                if let Err(error) = published.ok() {
                    tracing::debug!(%error, %namespace, "PUBLISH_NAMESPACE went away before we accepted it");
                    return;
                }
                tracing::info!(session = session.0, %namespace, "namespace published");
                let (cancel, cancelled) = oneshot::channel();
                if let Some(old) = self.namespaces.insert((session, namespace.clone()), cancel) {
                    // The same session published the same namespace again.
                    let _ = old.send(());
                }
                tokio::spawn(watch_namespace(
                    session,
                    namespace.clone(),
                    *published,
                    cancelled,
                    self.events.clone(),
                ));
                Input::NamespacePublished { session, namespace }
            }
            Event::NamespaceWithdrawn { session, namespace } => {
                self.namespaces.remove(&(session, namespace.clone()));
                Input::NamespaceWithdrawn { session, namespace }
            }
            Event::Subscribed {
                session,
                subscribed,
            } => {
                let subscription = SubscriptionKey(self.next_subscription);
                self.next_subscription += 1;
                let track = track_key(
                    &subscribed.info.track_namespace,
                    &subscribed.info.track_name,
                );
                self.names.entry(track.clone()).or_insert_with(|| {
                    (
                        subscribed.info.track_namespace.clone(),
                        subscribed.info.track_name.clone(),
                    )
                });
                tracing::debug!(session = session.0, subscription = subscription.0, %track, "subscribe");
                self.downstream
                    .insert(subscription, Downstream::Pending(subscribed));
                Input::Subscribe {
                    session,
                    subscription,
                    track,
                }
            }
            Event::SubscriptionEnded { subscription } => {
                self.downstream.remove(&subscription);
                Input::Unsubscribe { subscription }
            }
            Event::Source { source, event } => match event {
                SourceEvent::Ready { largest_group } => Input::SourceReady {
                    source,
                    largest_group,
                },
                SourceEvent::Failed(reason) => Input::SourceFailed { source, reason },
                SourceEvent::Object {
                    group,
                    object,
                    priority,
                    payload,
                } => Input::Object {
                    source,
                    group,
                    object,
                    priority,
                    payload,
                },
                SourceEvent::GroupEnded { group } => Input::GroupEnded { source, group },
                SourceEvent::Ended(reason) => Input::SourceEnded { source, reason },
            },
        };
        self.router.handle_input(input, now);
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.router.poll_output() {
            match output {
                Output::OpenSource {
                    source,
                    track,
                    origin,
                } => self.open_source(source, track, origin),
                Output::CloseSource { source } => {
                    if let Some((cancel, track)) = self.sources.remove(&source) {
                        cancel.cancel();
                        if !self.sources.values().any(|(_, t)| *t == track) {
                            self.names.remove(&track);
                        }
                    }
                }
                Output::Accept {
                    subscription,
                    catch_up,
                } => self.accept(subscription, catch_up),
                Output::Reject {
                    subscription,
                    reason,
                } => {
                    if let Some(Downstream::Pending(subscribed)) =
                        self.downstream.remove(&subscription)
                    {
                        let error = match reason {
                            RejectReason::NotFound => ServeError::NotFound,
                            RejectReason::Unauthorized => ServeError::Closed(REQUEST_UNAUTHORIZED),
                            RejectReason::Unavailable => {
                                ServeError::Internal("origin unavailable".to_owned())
                            }
                        };
                        // The REQUEST_ERROR goes out when `subscribed` drops.
                        let _ = subscribed.close(error);
                    }
                }
                Output::StartGroup {
                    subscription,
                    group,
                    priority,
                } => {
                    if let Some(Downstream::Serving { writer, groups }) =
                        self.downstream.get_mut(&subscription)
                    {
                        match writer.create(Subgroup {
                            group_id: group,
                            subgroup_id: 0,
                            priority,
                        }) {
                            Ok(g) => {
                                groups.insert(group, g);
                            }
                            Err(error) => {
                                tracing::debug!(%error, subscription = subscription.0, "cannot start group")
                            }
                        }
                    }
                }
                Output::Deliver {
                    subscription,
                    group,
                    object,
                    payload,
                } => {
                    if let Some(Downstream::Serving { groups, .. }) =
                        self.downstream.get_mut(&subscription)
                        && let Some(g) = groups.get_mut(&group)
                        && let Err(error) = write_object(g, object, payload)
                    {
                        tracing::debug!(%error, subscription = subscription.0, "cannot deliver object");
                        groups.remove(&group);
                    }
                }
                Output::EndGroup {
                    subscription,
                    group,
                } => {
                    if let Some(Downstream::Serving { groups, .. }) =
                        self.downstream.get_mut(&subscription)
                        && let Some(g) = groups.remove(&group)
                    {
                        let _ = g.finish();
                    }
                }
                Output::EndSubscription {
                    subscription,
                    reason,
                } => match self.downstream.remove(&subscription) {
                    Some(Downstream::Serving { writer, groups }) => {
                        drop(groups);
                        let _ = writer.close(ServeError::Closed(publish_done_code(reason)));
                    }
                    Some(Downstream::Pending(subscribed)) => {
                        let _ = subscribed.close(ServeError::Closed(publish_done_code(reason)));
                    }
                    None => {}
                },
                Output::DropNamespace { session, namespace } => {
                    if let Some(cancel) = self.namespaces.remove(&(session, namespace)) {
                        let _ = cancel.send(());
                    }
                }
            }
        }
    }

    fn open_source(&mut self, source: SourceKey, track: TrackKey, origin: Origin) {
        let Some((namespace, name)) = self.names.get(&track).cloned() else {
            // Unreachable by construction: OpenSource only follows a
            // Subscribe whose names we stored. Fail the source, don't panic.
            self.router.handle_input(
                Input::SourceFailed {
                    source,
                    reason: SourceFailure::Unavailable,
                },
                Instant::now(),
            );
            return;
        };
        let origin = match origin {
            Origin::Session(session) => match self.sessions.get(&session) {
                Some(subscriber) => SourceOrigin::Session(Box::new(subscriber.clone())),
                None => SourceOrigin::Gone,
            },
            Origin::Upstream => match &self.upstream {
                Some(link) => SourceOrigin::Upstream(link.clone()),
                None => SourceOrigin::Gone,
            },
        };
        let cancel = CancellationToken::new();
        self.sources.insert(source, (cancel.clone(), track.clone()));
        tracing::debug!(source = source.0, %track, "pulling track");
        tokio::spawn(source::run(
            source,
            namespace,
            name,
            origin,
            self.events.clone(),
            cancel,
        ));
    }

    fn accept(&mut self, subscription: SubscriptionKey, catch_up: Option<CatchUp>) {
        let Some(Downstream::Pending(subscribed)) = self.downstream.remove(&subscription) else {
            return;
        };
        let subscribed = *subscribed;
        let (track_writer, track_reader) = serve::Track::new(
            subscribed.info.track_namespace.clone(),
            subscribed.info.track_name.clone(),
        )
        .produce();
        let mut writer = match track_writer.subgroups() {
            Ok(w) => w,
            Err(error) => {
                tracing::debug!(%error, "cannot set up a subscriber track");
                let _ = self
                    .events
                    .try_send(Event::SubscriptionEnded { subscription });
                return;
            }
        };
        let mut groups = HashMap::new();
        // The catch-up group is written before serving starts, so SUBSCRIBE_OK
        // announces it as the largest location: a downstream relay then knows
        // anything older it might see is history.
        if let Some(c) = catch_up {
            match writer.create(Subgroup {
                group_id: c.group,
                subgroup_id: 0,
                priority: c.priority,
            }) {
                Ok(mut g) => {
                    let ok = c
                        .objects
                        .into_iter()
                        .all(|(object, payload)| write_object(&mut g, object, payload).is_ok());
                    if ok && !c.complete {
                        groups.insert(c.group, g);
                    } else {
                        let _ = g.finish();
                    }
                }
                Err(error) => tracing::debug!(%error, "cannot write catch-up group"),
            }
        }
        self.downstream
            .insert(subscription, Downstream::Serving { writer, groups });
        let events = self.events.clone();
        tokio::spawn(async move {
            if let Err(error) = subscribed.serve(track_reader).await {
                tracing::debug!(%error, subscription = subscription.0, "subscriber stream ended");
            }
            let _ = events.send(Event::SubscriptionEnded { subscription }).await;
        });
    }
}

fn write_object(group: &mut SubgroupWriter, object: u64, payload: Bytes) -> Result<(), ServeError> {
    group
        .create_with_id(object, payload.len(), None)?
        .write(payload)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Holds an accepted PUBLISH_NAMESPACE until the publisher withdraws it or
/// the driver drops it (a newer session took the namespace over).
async fn watch_namespace(
    session: SessionKey,
    namespace: String,
    published: PublishedNamespace,
    cancelled: oneshot::Receiver<()>,
    events: mpsc::Sender<Event>,
) {
    tokio::select! {
        _ = published.closed() => {
            let _ = events.send(Event::NamespaceWithdrawn { session, namespace }).await;
        }
        _ = cancelled => {}
    }
}
