//! Between the SFU and the relay.
//!
//! * [`publish_session`] (home edge): reads the session's mesh tap and
//!   publishes each track once to the relay as
//!   `<tenant>/<session>/<participant>/<video|audio|screen>`: one object
//!   per RTP packet, a group per keyframe. Far edges' keyframe requests
//!   arrive on `cls.media.<session>.keyframe` and go to the publisher.
//! * [`RemoteFeeds`] (far edge): when a student of a class hosted elsewhere
//!   connects here, follows the home edge's track list, subscribes to each
//!   track on the relay and feeds it into the local SFU, which forwards it
//!   to every student here. It unsubscribes once the last of them leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::event::TrackSource;
use protocol::ids::EdgeId;
use protocol::subjects::{edge_state_subject, keyframe_request_subject, moq_source_track_name};
use protocol::{ParticipantId, SessionId, TenantId};
use str0m::format::Codec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{MediaPacket, MeshError, TrackPublisher, Uplink};
use crate::policy;
use crate::runtime::registry::Registry;
use crate::sfu::forward::TrackKey;
use crate::sfu::{Audience, HostedTap, Sfu, TapCodec, TapKind, TapMsg};

struct OutTrack {
    name: String,
    codec: Codec,
    audio: bool,
    publisher: Option<TrackPublisher>,
    need_keyframe: bool,
    retry_at: Instant,
    last_kf_request: Option<Instant>,
}

fn codec_of(c: TapCodec) -> Codec {
    match c {
        TapCodec::Vp8 => Codec::Vp8,
        TapCodec::H264 => Codec::H264,
        TapCodec::Opus => Codec::Opus,
    }
}

/// Publishes a hosted session's tracks to the relay until the session is
/// no longer hosted here.
/// Publishes every session the SFU hands a hosted tap for, each on its own
/// task, until the SFU goes away.
pub(crate) async fn publish_hosted(
    mut hosted: mpsc::UnboundedReceiver<HostedTap>,
    uplink: Uplink,
    nats: async_nats::Client,
    sfu: Sfu,
    registry: Registry,
) {
    while let Some(h) = hosted.recv().await {
        let span = tracing::info_span!("mesh_out", session_id = %h.session);
        tokio::spawn(
            publish_session(
                uplink.clone(),
                nats.clone(),
                sfu.clone(),
                registry.clone(),
                h.tenant,
                h.session,
                h.tap,
            )
            .instrument(span),
        );
    }
}

async fn publish_session(
    mut uplink: Uplink,
    nats: async_nats::Client,
    sfu: Sfu,
    registry: Registry,
    tenant: TenantId,
    session: SessionId,
    mut tap: mpsc::Receiver<TapMsg>,
) {
    let mut requests = match nats.subscribe(keyframe_request_subject(session)).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no keyframe requests from far edges");
            None
        }
    };
    let mut tracks: HashMap<u32, OutTrack> = HashMap::new();
    let mut check = tokio::time::interval(Duration::from_secs(2));
    let ask = |track: u32| sfu.keyframe_for(session, TapKind::Mesh, track);
    loop {
        let request = async {
            match requests.as_mut() {
                Some(r) => r.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = tap.recv() => match m {
                None => break,
                Some(TapMsg::Track { track, participant, source, codec }) => {
                    tracks.insert(track, OutTrack {
                        name: moq_source_track_name(tenant, session, participant, source),
                        codec: codec_of(codec),
                        audio: codec == TapCodec::Opus,
                        publisher: None,
                        need_keyframe: true,
                        retry_at: Instant::now(),
                        last_kf_request: None,
                    });
                }
                Some(TapMsg::Ended { track }) => {
                    if let Some(p) = tracks.remove(&track).and_then(|t| t.publisher) {
                        p.finish();
                    }
                }
                Some(TapMsg::Rtp { track, packet }) => {
                    let Some(t) = tracks.get_mut(&track) else { continue };
                    let Some((pt, marker, sequence, timestamp, payload)) = crate::rtp::parse(&packet) else { continue };
                    let now = Instant::now();
                    if t.publisher.is_none() && now >= t.retry_at {
                        t.retry_at = now + Duration::from_secs(1);
                        if let Some(client) = uplink.client() {
                            match client.publish_track(&t.name).await {
                                Ok(p) => {
                                    tracing::info!(track = %t.name, "track published to the relay");
                                    t.publisher = Some(p);
                                    t.need_keyframe = !t.audio;
                                }
                                Err(e) => {
                                    tracing::warn!(track = %t.name, error = %e, "track not published");
                                    // a class that started after the token
                                    // was issued is not in it yet
                                    uplink.refresh();
                                }
                            }
                        }
                    }
                    let Some(p) = t.publisher.as_mut() else { continue };
                    let keyframe = t.audio || crate::sfu::codec::starts_keyframe(t.codec, payload);
                    if t.need_keyframe && !keyframe {
                        if t.last_kf_request.is_none_or(|at| now.duration_since(at) > Duration::from_millis(500)) {
                            t.last_kf_request = Some(now);
                            ask(track);
                        }
                        continue;
                    }
                    t.need_keyframe = false;
                    let packet = MediaPacket {
                        payload_type: pt,
                        sequence,
                        timestamp,
                        marker,
                        keyframe,
                        payload: bytes::Bytes::copy_from_slice(payload),
                    };
                    if let Err(e) = p.push(&packet) {
                        tracing::warn!(track = %t.name, error = %e, "relay publish interrupted");
                        t.publisher = None;
                    }
                }
            },
            _ = uplink.changed() => {
                for t in tracks.values_mut() {
                    t.publisher = None;
                    t.retry_at = Instant::now();
                }
            }
            Some(msg) = request => {
                let name = String::from_utf8_lossy(&msg.payload).to_string();
                if let Some((id, _)) = tracks.iter().find(|(_, t)| t.name == name) {
                    ask(*id);
                }
            }
            _ = check.tick() => {
                if registry.get(session).await.is_none() {
                    break;
                }
            }
        }
    }
    for (_, t) in tracks {
        if let Some(p) = t.publisher {
            p.finish();
        }
    }
    tracing::info!("relay publishing ended");
}

/// The relay feeds of sessions hosted on other edges, one per session.
#[derive(Clone)]
pub(crate) struct RemoteFeeds {
    feeds: Arc<Mutex<HashMap<SessionId, JoinHandle<()>>>>,
    sfu: Sfu,
    uplink: Uplink,
    nats: async_nats::Client,
    /// This edge (it asks home edges for state in its own name).
    me: EdgeId,
}

impl RemoteFeeds {
    pub(crate) fn new(
        sfu: Sfu,
        uplink: Uplink,
        nats: async_nats::Client,
        me: EdgeId,
    ) -> RemoteFeeds {
        RemoteFeeds {
            feeds: Arc::default(),
            sfu,
            uplink,
            nats,
            me,
        }
    }

    /// Whether this edge can carry classes hosted elsewhere (has a relay).
    pub(crate) fn enabled(&self) -> bool {
        self.uplink.is_enabled()
    }

    /// Makes sure the session's tracks are pulled from the relay.
    pub(crate) fn ensure(&self, tenant: TenantId, session: SessionId, home: EdgeId) {
        let Ok(mut feeds) = self.feeds.lock() else {
            return;
        };
        if feeds.get(&session).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let feed = Feed {
            sfu: self.sfu.clone(),
            uplink: self.uplink.clone(),
            nats: self.nats.clone(),
            tenant,
            session,
            home: home.clone(),
            me: self.me.clone(),
        };
        let span = tracing::info_span!("remote_feed", session_id = %session, home = %home);
        feeds.insert(session, tokio::spawn(feed.run().instrument(span)));
    }
}

#[derive(Clone)]
struct Feed {
    sfu: Sfu,
    uplink: Uplink,
    nats: async_nats::Client,
    tenant: TenantId,
    session: SessionId,
    home: EdgeId,
    me: EdgeId,
}

/// Polls of an empty room before the feed stops.
const IDLE_POLLS: u32 = 3;
const POLL_EVERY: Duration = Duration::from_secs(2);

impl Feed {
    async fn run(self) {
        tracing::info!("pulling the class from the relay");
        let mut pulls: HashMap<String, (JoinHandle<()>, Arc<Mutex<Option<TrackKey>>>)> =
            HashMap::new();
        let mut idle = 0;
        // whether each pulled track is flowing; students hear when the class
        // is reconnecting and when it is back
        let (up_tx, mut up_rx) = mpsc::unbounded_channel::<(String, bool)>();
        let mut up: HashMap<String, bool> = HashMap::new();
        let mut told: Option<bool> = None;
        loop {
            let audience = self.sfu.audience_of(self.session).await;
            match self.published(audience).await {
                Ok(wanted) => {
                    for (name, (participant, source)) in &wanted {
                        if !pulls.contains_key(name) {
                            let slot: Arc<Mutex<Option<TrackKey>>> = Arc::default();
                            let task = tokio::spawn(
                                self.clone()
                                    .pull(
                                        *participant,
                                        *source,
                                        name.clone(),
                                        slot.clone(),
                                        up_tx.clone(),
                                    )
                                    .in_current_span(),
                            );
                            pulls.insert(name.clone(), (task, slot));
                        }
                    }
                    let gone: Vec<String> = pulls
                        .keys()
                        .filter(|n| !wanted.contains_key(*n))
                        .cloned()
                        .collect();
                    for name in gone {
                        if let Some((task, slot)) = pulls.remove(&name) {
                            task.abort();
                            self.drop_track(&slot).await;
                        }
                        up.remove(&name);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "home edge's track list unavailable"),
            }
            if audience.seated + audience.public == 0 {
                idle += 1;
                if idle >= IDLE_POLLS {
                    break;
                }
            } else {
                idle = 0;
            }
            let next_poll = tokio::time::Instant::now() + POLL_EVERY;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_poll) => break,
                    Some((name, flowing)) = up_rx.recv() => {
                        if pulls.contains_key(&name) {
                            up.insert(name, flowing);
                        }
                        let live = !up.is_empty() && up.values().all(|f| *f);
                        if told != Some(live) && (live || told.is_some()) {
                            told = Some(live);
                            let state = if live { "live" } else { "reconnecting" };
                            tracing::info!(state, "class media upstream");
                            self.sfu.notify(self.session, serde_json::json!({ "type": "upstream", "state": state })).await;
                        }
                    }
                }
            }
        }
        for (_, (task, slot)) in pulls {
            task.abort();
            self.drop_track(&slot).await;
        }
        tracing::info!("no students here any more; relay feed stopped");
    }

    async fn drop_track(&self, slot: &Mutex<Option<TrackKey>>) {
        let key = slot.lock().ok().and_then(|mut k| k.take());
        if let Some(key) = key {
            self.sfu.remote_remove(key).await;
        }
    }

    /// The tracks this edge's audience needs, and the cuts the class's
    /// rules make here, from the home edge's state (`policy::far_edge`).
    async fn published(
        &self,
        audience: Audience,
    ) -> anyhow::Result<HashMap<String, (ParticipantId, TrackSource)>> {
        let state = self.state().await?;
        let plan = policy::far_edge(
            &state,
            self.tenant,
            self.session,
            policy::FarAudience {
                seated: audience.seated,
                public: audience.public,
            },
        );
        for cut in plan.cuts {
            self.sfu.cut(self.session, cut).await;
        }
        if !state.is_live() {
            anyhow::bail!("the class has ended");
        }
        Ok(plan.pull)
    }

    /// The class's state, from its writer (the home edge).
    async fn state(&self) -> anyhow::Result<Box<protocol::state::SessionState>> {
        let req = serde_json::to_vec(&EdgeRequest::State {
            session_id: self.session,
        })?;
        let msg = tokio::time::timeout(
            Duration::from_secs(3),
            self.nats
                .request(edge_state_subject(&self.home, &self.me), req.into()),
        )
        .await??;
        match serde_json::from_slice::<EdgeReply>(&msg.payload)? {
            EdgeReply::State { state } => Ok(state),
            other => anyhow::bail!("home edge answered {other:?}"),
        }
    }

    /// Pulls one track for as long as it is wanted: resubscribes after the
    /// relay or the publisher went away; keyframe requests go upstream.
    async fn pull(
        mut self,
        participant: ParticipantId,
        source: TrackSource,
        name: String,
        slot: Arc<Mutex<Option<TrackKey>>>,
        up: mpsc::UnboundedSender<(String, bool)>,
    ) {
        let (kf_tx, mut kf_rx) = mpsc::channel::<()>(4);
        let kf_subject = keyframe_request_subject(self.session);
        loop {
            let Some(client) = self.uplink.client() else {
                self.uplink.changed().await;
                continue;
            };
            let mut sub = match client.subscribe(&name).await {
                Ok(s) => s,
                Err(e) => {
                    if e != MeshError::NotFound {
                        tracing::debug!(track = %name, error = %e, "subscribe failed");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            tracing::info!(track = %name, "subscribed on the relay");
            let mut flowing = false;
            loop {
                tokio::select! {
                    r = sub.next() => match r {
                        Ok(r) => {
                            let key = slot.lock().ok().and_then(|k| *k);
                            let key = match key {
                                Some(k) => k,
                                None => {
                                    let Some(codec) = TapCodec::from_payload_type(r.packet.payload_type) else { continue };
                                    let Ok(k) = self.sfu.remote_add(self.session, participant, source, codec, kf_tx.clone()).await else { return };
                                    if let Ok(mut s) = slot.lock() {
                                        *s = Some(k);
                                    }
                                    k
                                }
                            };
                            self.sfu.remote_packet(key, r.packet);
                            if !flowing {
                                flowing = true;
                                let _ = up.send((name.clone(), true));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(track = %name, error = %e, "relay subscription ended; resubscribing");
                            let _ = up.send((name.clone(), false));
                            break;
                        }
                    },
                    Some(()) = kf_rx.recv() => {
                        let _ = self.nats.publish(kf_subject.clone(), name.clone().into()).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
