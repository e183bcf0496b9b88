//! The relay's routing core: which session publishes which namespace, which
//! tracks are being pulled from where, who subscribes to them, and the cache
//! of each track's newest group so a late subscriber starts at a keyframe.
//!
//! Sans-IO: inputs carry an explicit `now`, decisions come out as [`Output`]s
//! the shell polls with [`Router::poll_output`]. Nothing here touches a
//! socket, a task or a clock, so every rule is tested with plain data
//! (`routing/tests.rs`).
//!
//! The unit of fan-out is one object: an [`Input::Object`] from a track's
//! source becomes one [`Output::Deliver`] per subscriber that has that group
//! open. The payload is a refcounted `Bytes`, so fan-out copies no media.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::claims::RelayGrants;

#[cfg(test)]
mod tests;

/// One MoQ session on this relay (a publisher, a subscriber, or both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u64);

/// One downstream subscription (a SUBSCRIBE some session sent us).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionKey(pub u64);

/// One upstream pull of a track. The router allocates these, so inputs from
/// a source that has since been replaced are recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(pub u64);

/// A full track name: MoQ namespace (`tenant/session/participant`) plus the
/// track name within it (`audio`, `video`, `program`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey {
    pub namespace: String,
    pub name: String,
}

impl TrackKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> TrackKey {
        TrackKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TrackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a track's objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A session connected to this relay that published the namespace.
    Session(SessionKey),
    /// The upstream relay (`--upstream`), pulled on demand.
    Upstream,
}

/// Why a source could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFailure {
    /// The origin answered that it does not have the track.
    NotFound,
    /// The origin could not be reached or failed otherwise.
    Unavailable,
}

/// Why a live track (and so every subscription to it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher ended the track cleanly.
    TrackEnded,
    /// The publishing session went away or was replaced by a newer one.
    PublisherGone,
    /// The upstream subscription failed (upstream relay lost, reset, ...).
    SourceLost,
}

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Nobody publishes the namespace here and there is no upstream to ask,
    /// or the upstream said it does not exist.
    NotFound,
    /// The subscriber's token does not grant this namespace.
    Unauthorized,
    /// The origin exists but could not be reached.
    Unavailable,
}

/// A connected peer: whom its token names and what it grants.
#[derive(Clone, Debug)]
struct Peer {
    id: String,
    grants: RelayGrants,
}

/// Why a PUBLISH_NAMESPACE was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishRefusal {
    /// The token does not grant publishing this namespace.
    NotGranted,
    /// Another peer publishes it; only that peer may take it over.
    OwnedByAnother,
}

/// The newest group of a track, replayed to a subscriber that joins late.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    pub group: u64,
    pub priority: u8,
    /// `(object id, payload)` from the group's first object on.
    pub objects: Vec<(u64, Bytes)>,
    /// The group has ended: write it and finish it at once.
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A peer connected with a verified token: `peer` is whom it was issued
    /// to, `grants` what it may publish and subscribe to.
    SessionUp {
        session: SessionKey,
        peer: String,
        grants: RelayGrants,
    },
    SessionDown {
        session: SessionKey,
    },
    NamespacePublished {
        session: SessionKey,
        namespace: String,
    },
    NamespaceWithdrawn {
        session: SessionKey,
        namespace: String,
    },
    Subscribe {
        session: SessionKey,
        subscription: SubscriptionKey,
        track: TrackKey,
    },
    Unsubscribe {
        subscription: SubscriptionKey,
    },
    /// The origin accepted our pull. `largest_group` is the newest group it
    /// had when it accepted (SUBSCRIBE_OK's LARGEST_OBJECT): anything older
    /// is history it replays, which no subscriber here asked for.
    SourceReady {
        source: SourceKey,
        largest_group: Option<u64>,
    },
    SourceFailed {
        source: SourceKey,
        reason: SourceFailure,
    },
    Object {
        source: SourceKey,
        group: u64,
        object: u64,
        priority: u8,
        payload: Bytes,
    },
    GroupEnded {
        source: SourceKey,
        group: u64,
    },
    SourceEnded {
        source: SourceKey,
        reason: EndReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Pull `track` from `origin`; report back with `source`.
    OpenSource {
        source: SourceKey,
        track: TrackKey,
        origin: Origin,
    },
    /// Stop pulling (unsubscribe upstream). Inputs from it are ignored now.
    CloseSource { source: SourceKey },
    /// Answer the SUBSCRIBE with OK and start serving; write `catch_up`
    /// first when there is one.
    Accept {
        subscription: SubscriptionKey,
        catch_up: Option<CatchUp>,
    },
    Reject {
        subscription: SubscriptionKey,
        reason: RejectReason,
    },
    StartGroup {
        subscription: SubscriptionKey,
        group: u64,
        priority: u8,
    },
    Deliver {
        subscription: SubscriptionKey,
        group: u64,
        object: u64,
        payload: Bytes,
    },
    EndGroup {
        subscription: SubscriptionKey,
        group: u64,
    },
    EndSubscription {
        subscription: SubscriptionKey,
        reason: EndReason,
    },
    /// A newer session took the namespace over: stop accepting it from this one.
    DropNamespace {
        session: SessionKey,
        namespace: String,
    },
}

#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Whether `--upstream` is configured: unknown tracks are pulled from it
    /// instead of being refused.
    pub upstream: bool,
    /// How long a track with no subscribers keeps its source, so a quick
    /// re-subscribe (a reconnecting edge) does not pay a new upstream pull.
    pub linger: Duration,
    /// The newest group is cached for late joiners up to this many bytes; a
    /// bigger group (a very long GOP) is not cached and late joiners wait for
    /// the next one instead of the relay growing without bound.
    pub max_cached_bytes: usize,
    /// Groups open at once per track; beyond that the oldest is ended (a
    /// publisher that never finishes its groups cannot pin memory here).
    pub max_open_groups: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            upstream: false,
            linger: Duration::from_secs(5),
            max_cached_bytes: 8 << 20,
            max_open_groups: 4,
        }
    }
}

/// Counters for `/healthz`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub sessions: usize,
    pub namespaces: usize,
    pub tracks: usize,
    pub subscribers: usize,
    pub objects_in: u64,
    pub objects_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Objects of groups older than what a source had when we joined, or of
    /// groups already ended here: never forwarded.
    pub objects_dropped: u64,
    /// PUBLISH_NAMESPACE and SUBSCRIBE requests the peers' tokens did not
    /// allow.
    pub refused: u64,
}

/// Namespaces that never leave this relay: a client's cheap round trip to
/// learn whether the relay accepted its token (see `client::probe`).
pub use mesh_client::codes::PROBE_NAMESPACE;

/// Ended groups remembered per track, so stragglers of a group that was
/// already ended (forced out, or ended before a late object) are dropped
/// instead of reopening it.
const RETIRED_GROUPS: usize = 16;

pub struct Router {
    config: RouterConfig,
    /// Connected sessions: who the peer is and what its token grants.
    sessions: HashMap<SessionKey, Peer>,
    namespaces: HashMap<String, SessionKey>,
    tracks: HashMap<TrackKey, Track>,
    sources: HashMap<SourceKey, TrackKey>,
    subscriptions: HashMap<SubscriptionKey, Subscription>,
    next_source: u64,
    outputs: VecDeque<Output>,
    stats: Stats,
}

struct Track {
    source: SourceKey,
    origin: Origin,
    ready: bool,
    /// Accepted subscribers, in the order they subscribed (fan-out order).
    subscribers: Vec<SubscriptionKey>,
    /// Subscribers waiting for the source to become ready.
    pending: Vec<SubscriptionKey>,
    /// Groups being forwarded now, with their priority.
    open_groups: Vec<(u64, u8)>,
    retired: VecDeque<u64>,
    floor: Option<u64>,
    latest: Option<u64>,
    cache: Option<GroupCache>,
    idle_since: Option<Instant>,
}

struct GroupCache {
    group: u64,
    priority: u8,
    objects: Vec<(u64, Bytes)>,
    bytes: usize,
    complete: bool,
    /// Exceeded `max_cached_bytes`: not usable as a starting point.
    truncated: bool,
}

struct Subscription {
    session: SessionKey,
    track: TrackKey,
    /// Groups this subscriber has been started on and not yet ended.
    open_groups: Vec<u64>,
    /// The group a late joiner was started at: older groups that show up
    /// afterwards (out of order) are not started for it.
    first_group: Option<u64>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            sessions: HashMap::new(),
            namespaces: HashMap::new(),
            tracks: HashMap::new(),
            sources: HashMap::new(),
            subscriptions: HashMap::new(),
            next_source: 1,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Router::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter_map(|t| t.idle_since.map(|since| since + self.config.linger))
            .min()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.sessions.len(),
            namespaces: self.namespaces.len(),
            tracks: self.tracks.len(),
            subscribers: self.subscriptions.len(),
            ..self.stats
        }
    }

    /// Releases the sources of tracks nobody has watched for `linger`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let linger = self.config.linger;
        let expired: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.idle_since.is_some_and(|since| since + linger <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in sorted(expired) {
            if let Some(track) = self.tracks.remove(&key) {
                self.sources.remove(&track.source);
                self.outputs.push_back(Output::CloseSource {
                    source: track.source,
                });
            }
        }
    }

    pub fn handle_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::SessionUp {
                session,
                peer,
                grants,
            } => {
                self.sessions.insert(session, Peer { id: peer, grants });
            }
            Input::SessionDown { session } => self.session_down(session, now),
            Input::NamespacePublished { session, namespace } => {
                self.namespace_published(session, namespace)
            }
            Input::NamespaceWithdrawn { session, namespace } => {
                // Tracks already pulled from it run until their source ends;
                // the namespace just stops routing new subscriptions.
                if self.namespaces.get(&namespace) == Some(&session) {
                    self.namespaces.remove(&namespace);
                }
            }
            Input::Subscribe {
                session,
                subscription,
                track,
            } => self.subscribe(session, subscription, track),
            Input::Unsubscribe { subscription } => self.unsubscribe(subscription, now),
            Input::SourceReady {
                source,
                largest_group,
            } => self.source_ready(source, largest_group),
            Input::SourceFailed { source, reason } => self.source_failed(source, reason),
            Input::Object {
                source,
                group,
                object,
                priority,
                payload,
            } => self.object(source, group, object, priority, payload),
            Input::GroupEnded { source, group } => self.group_ended(source, group),
            Input::SourceEnded { source, reason } => {
                if let Some(key) = self.sources.get(&source).cloned() {
                    self.end_track(&key, reason);
                }
            }
        }
    }

    fn session_down(&mut self, session: SessionKey, now: Instant) {
        self.sessions.remove(&session);
        self.namespaces.retain(|_, owner| *owner != session);
        let published: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.origin == Origin::Session(session))
            .map(|(k, _)| k.clone())
            .collect();
        for key in sorted(published) {
            self.end_track(&key, EndReason::PublisherGone);
        }
        let mut subscribed: Vec<SubscriptionKey> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.session == session)
            .map(|(k, _)| *k)
            .collect();
        subscribed.sort();
        for subscription in subscribed {
            self.unsubscribe(subscription, now);
        }
    }

    /// Whether `session` may publish `namespace`: its token must grant it,
    /// and a namespace another peer publishes stays that peer's (the same
    /// peer reconnecting takes its own namespace over, newest wins).
    pub fn check_publish(
        &self,
        session: SessionKey,
        namespace: &str,
    ) -> Result<(), PublishRefusal> {
        let Some(peer) = self.sessions.get(&session) else {
            return Err(PublishRefusal::NotGranted);
        };
        if !peer.grants.may_publish(namespace) {
            return Err(PublishRefusal::NotGranted);
        }
        if let Some(owner) = self.namespaces.get(namespace)
            && *owner != session
            && self.sessions.get(owner).is_some_and(|o| o.id != peer.id)
        {
            return Err(PublishRefusal::OwnedByAnother);
        }
        Ok(())
    }

    /// Counts a PUBLISH_NAMESPACE the shell refused after [`check_publish`].
    pub fn count_refused(&mut self) {
        self.stats.refused += 1;
    }

    fn namespace_published(&mut self, session: SessionKey, namespace: String) {
        if self.check_publish(session, &namespace).is_err() {
            // The shell checks before accepting; one that did not gets the
            // namespace dropped rather than routed.
            self.outputs
                .push_back(Output::DropNamespace { session, namespace });
            return;
        }
        // Newest wins: a reconnecting edge publishes again before the relay
        // has noticed (idle timeout) that its old session is dead. Refusing
        // the new one would keep the class dark for that long.
        if let Some(old) = self.namespaces.get(&namespace).copied()
            && old != session
        {
            self.outputs.push_back(Output::DropNamespace {
                session: old,
                namespace: namespace.clone(),
            });
            let stale: Vec<TrackKey> = self
                .tracks
                .iter()
                .filter(|(k, t)| k.namespace == namespace && t.origin == Origin::Session(old))
                .map(|(k, _)| k.clone())
                .collect();
            for key in sorted(stale) {
                self.end_track(&key, EndReason::PublisherGone);
            }
        }
        self.namespaces.insert(namespace, session);
    }

    fn subscribe(&mut self, session: SessionKey, subscription: SubscriptionKey, key: TrackKey) {
        if self.subscriptions.contains_key(&subscription) {
            // The shell allocates keys; a duplicate is its bug, not the peer's.
            return;
        }
        let probe = key.namespace.starts_with(PROBE_NAMESPACE);
        let granted = self
            .sessions
            .get(&session)
            .is_some_and(|p| p.grants.may_subscribe(&key.namespace));
        if !probe && !granted {
            self.stats.refused += 1;
            self.outputs.push_back(Output::Reject {
                subscription,
                reason: RejectReason::Unauthorized,
            });
            return;
        }
        if !self.tracks.contains_key(&key) {
            let origin = if probe {
                None
            } else if let Some(owner) = self.namespaces.get(&key.namespace) {
                Some(Origin::Session(*owner))
            } else if self.config.upstream {
                Some(Origin::Upstream)
            } else {
                None
            };
            let Some(origin) = origin else {
                self.outputs.push_back(Output::Reject {
                    subscription,
                    reason: RejectReason::NotFound,
                });
                return;
            };
            let source = SourceKey(self.next_source);
            self.next_source += 1;
            self.sources.insert(source, key.clone());
            self.tracks.insert(key.clone(), Track::new(source, origin));
            self.outputs.push_back(Output::OpenSource {
                source,
                track: key.clone(),
                origin,
            });
        }
        let Some(track) = self.tracks.get_mut(&key) else {
            return; // inserted just above when missing
        };
        track.idle_since = None;
        let mut sub = Subscription {
            session,
            track: key,
            open_groups: Vec::new(),
            first_group: None,
        };
        if track.ready {
            let catch_up = track.catch_up();
            if let Some(c) = &catch_up {
                sub.first_group = Some(c.group);
                if !c.complete {
                    sub.open_groups.push(c.group);
                }
                self.stats.objects_out += c.objects.len() as u64;
                self.stats.bytes_out += c.objects.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
            }
            track.subscribers.push(subscription);
            self.outputs.push_back(Output::Accept {
                subscription,
                catch_up,
            });
        } else {
            track.pending.push(subscription);
        }
        self.subscriptions.insert(subscription, sub);
    }

    fn unsubscribe(&mut self, subscription: SubscriptionKey, now: Instant) {
        let Some(sub) = self.subscriptions.remove(&subscription) else {
            return;
        };
        if let Some(track) = self.tracks.get_mut(&sub.track) {
            track.subscribers.retain(|s| *s != subscription);
            track.pending.retain(|s| *s != subscription);
            if track.subscribers.is_empty() && track.pending.is_empty() {
                track.idle_since = Some(now);
            }
        }
    }

    fn source_ready(&mut self, source: SourceKey, largest_group: Option<u64>) {
        let Some(key) = self.sources.get(&source) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(key) else {
            return;
        };
        if track.ready {
            return;
        }
        track.ready = true;
        track.floor = largest_group;
        for subscription in std::mem::take(&mut track.pending) {
            track.subscribers.push(subscription);
            self.outputs.push_back(Output::Accept {
                subscription,
                catch_up: None,
            });
        }
    }

    fn source_failed(&mut self, source: SourceKey, reason: SourceFailure) {
        let Some(key) = self.sources.remove(&source) else {
            return;
        };
        let Some(track) = self.tracks.remove(&key) else {
            return;
        };
        self.outputs.push_back(Output::CloseSource { source });
        let reject = match reason {
            SourceFailure::NotFound => RejectReason::NotFound,
            SourceFailure::Unavailable => RejectReason::Unavailable,
        };
        for subscription in track.pending {
            self.subscriptions.remove(&subscription);
            self.outputs.push_back(Output::Reject {
                subscription,
                reason: reject,
            });
        }
        for subscription in track.subscribers {
            self.subscriptions.remove(&subscription);
            self.outputs.push_back(Output::EndSubscription {
                subscription,
                reason: EndReason::SourceLost,
            });
        }
    }

    /// Ends a track and every subscription to it; subscribers subscribe again
    /// (to a new publisher, or after the upstream comes back).
    fn end_track(&mut self, key: &TrackKey, reason: EndReason) {
        let Some(track) = self.tracks.remove(key) else {
            return;
        };
        self.sources.remove(&track.source);
        self.outputs.push_back(Output::CloseSource {
            source: track.source,
        });
        for subscription in track.pending {
            self.subscriptions.remove(&subscription);
            self.outputs.push_back(Output::Reject {
                subscription,
                reason: RejectReason::Unavailable,
            });
        }
        for subscription in track.subscribers {
            self.subscriptions.remove(&subscription);
            self.outputs.push_back(Output::EndSubscription {
                subscription,
                reason,
            });
        }
    }

    fn object(&mut self, source: SourceKey, group: u64, object: u64, priority: u8, payload: Bytes) {
        let Some(key) = self.sources.get(&source) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(key) else {
            return;
        };
        if !track.ready {
            return;
        }
        self.stats.objects_in += 1;
        self.stats.bytes_in += payload.len() as u64;
        if track.floor.is_some_and(|floor| group < floor) || track.retired.contains(&group) {
            self.stats.objects_dropped += 1;
            return;
        }
        if !track.open_groups.iter().any(|(g, _)| *g == group) {
            track.open_groups.push((group, priority));
            for subscription in &track.subscribers {
                let Some(sub) = self.subscriptions.get_mut(subscription) else {
                    continue;
                };
                if sub.first_group.is_some_and(|first| group < first) {
                    continue;
                }
                sub.open_groups.push(group);
                self.outputs.push_back(Output::StartGroup {
                    subscription: *subscription,
                    group,
                    priority,
                });
            }
            if track.latest.is_none_or(|latest| group > latest) {
                track.latest = Some(group);
                track.cache = Some(GroupCache {
                    group,
                    priority,
                    objects: Vec::new(),
                    bytes: 0,
                    complete: false,
                    truncated: false,
                });
            }
            if track.open_groups.len() > self.config.max_open_groups
                && let Some(oldest) = track.open_groups.iter().map(|(g, _)| *g).min()
            {
                close_group(track, &mut self.subscriptions, &mut self.outputs, oldest);
            }
            if track.retired.contains(&group) {
                // The group just opened was itself the oldest and got forced
                // out; nothing to deliver.
                self.stats.objects_dropped += 1;
                return;
            }
        }
        if let Some(cache) = track
            .cache
            .as_mut()
            .filter(|c| c.group == group && !c.truncated)
        {
            if cache.bytes + payload.len() > self.config.max_cached_bytes {
                cache.truncated = true;
                cache.objects = Vec::new();
            } else {
                cache.bytes += payload.len();
                cache.objects.push((object, payload.clone()));
            }
        }
        for subscription in &track.subscribers {
            let open = self
                .subscriptions
                .get(subscription)
                .is_some_and(|s| s.open_groups.contains(&group));
            if open {
                self.stats.objects_out += 1;
                self.stats.bytes_out += payload.len() as u64;
                self.outputs.push_back(Output::Deliver {
                    subscription: *subscription,
                    group,
                    object,
                    payload: payload.clone(),
                });
            }
        }
    }

    fn group_ended(&mut self, source: SourceKey, group: u64) {
        let Some(key) = self.sources.get(&source) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(key) else {
            return;
        };
        if track.open_groups.iter().any(|(g, _)| *g == group) {
            close_group(track, &mut self.subscriptions, &mut self.outputs, group);
        }
    }
}

impl Track {
    fn new(source: SourceKey, origin: Origin) -> Track {
        Track {
            source,
            origin,
            ready: false,
            subscribers: Vec::new(),
            pending: Vec::new(),
            open_groups: Vec::new(),
            retired: VecDeque::new(),
            floor: None,
            latest: None,
            cache: None,
            idle_since: None,
        }
    }

    fn catch_up(&self) -> Option<CatchUp> {
        let cache = self.cache.as_ref()?;
        if cache.truncated || cache.objects.is_empty() {
            return None;
        }
        Some(CatchUp {
            group: cache.group,
            priority: cache.priority,
            objects: cache.objects.clone(),
            complete: cache.complete,
        })
    }
}

/// Ends `group` for everyone who has it open and remembers it as retired.
fn close_group(
    track: &mut Track,
    subscriptions: &mut HashMap<SubscriptionKey, Subscription>,
    outputs: &mut VecDeque<Output>,
    group: u64,
) {
    track.open_groups.retain(|(g, _)| *g != group);
    track.retired.push_back(group);
    if track.retired.len() > RETIRED_GROUPS {
        track.retired.pop_front();
    }
    if let Some(cache) = track.cache.as_mut().filter(|c| c.group == group) {
        cache.complete = true;
    }
    for subscription in &track.subscribers {
        if let Some(sub) = subscriptions.get_mut(subscription)
            && let Some(pos) = sub.open_groups.iter().position(|g| *g == group)
        {
            sub.open_groups.swap_remove(pos);
            outputs.push_back(Output::EndGroup {
                subscription: *subscription,
                group,
            });
        }
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
