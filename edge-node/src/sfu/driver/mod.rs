//! The SFU's shell: one task owns the UDP socket and every `Rtc`. It feeds
//! them packets and timeouts, drains their outputs, hands media to the
//! forwarding core (`forward::Room`) and writes what the core decides. It
//! makes no forwarding decisions of its own.
//!
//! Session events (track published, participant joined/left, media quality)
//! go to the session's writer through one ordered queue; a watcher per
//! session turns revoked permissions, media kill switches, removals and the
//! end of the class into cuts here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::event::{LeaveReason, MediaKind as Kind, TrackSource};
use protocol::{Actor, Command, EventBody, ParticipantId, SessionId, TrackId};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction as SdpDirection, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::forward::{self, Incoming, Layer, Outputs, PeerId, Room, TrackKey};
use super::{
    Direction, PeerOwner, SfuCommand, SfuConfig, SfuError, SfuStats, TapCodec, TapKind, TapMsg,
    cut_command,
};
use crate::policy;
use crate::runtime::registry::Registry;
use crate::runtime::session::SessionHandle;

mod negotiate;
mod remote;
mod taps;

pub(super) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One published m-line of a publisher.
struct InTrack {
    key: TrackKey,
    kind: Kind,
    codec: Option<Codec>,
    /// rid → layer
    layers: HashMap<String, Layer>,
    track_id: TrackId,
}

struct Peer {
    id: PeerId,
    rtc: Rtc,
    owner: PeerOwner,
    direction: Direction,
    created: Instant,
    connected: bool,
    disconnected_since: Option<Instant>,
    timeout: Instant,
    // publisher
    in_tracks: HashMap<Mid, InTrack>,
    // subscriber
    out: HashMap<TrackKey, Mid>,
    /// offered m-lines not carrying a track yet, by kind
    idle_slots: Vec<(Mid, Kind)>,
    channel: Option<ChannelId>,
    pending: Option<(SdpPendingOffer, Vec<(TrackKey, Mid)>)>,
    wants_add: Vec<TrackKey>,
    wants_stop: Vec<Mid>,
    /// Last datagram from this peer: browsers send consent checks every few
    /// seconds, so silence longer than `idle` means the peer is gone.
    last_rx: Instant,
    // quality
    last_quality: Instant,
    last_bytes: u64,
    last_stats: Option<str0m::stats::PeerStats>,
}

/// The recorder's subscription to a session: a subscriber of the forwarding
/// core like any other (so it gets layer switches on keyframes and
/// continuous sequence numbers), whose packets go to a channel.
struct Tap {
    peer: PeerId,
    session: SessionId,
    kind: TapKind,
    tx: mpsc::Sender<TapMsg>,
    tracks: HashMap<TrackKey, TapTrack>,
    next_track: u32,
    dropped: u64,
}

struct TapTrack {
    id: u32,
    mid: Mid,
    announced: bool,
}

/// The tap asks for the best layer: the recording is the class of record.
const TAP_ESTIMATE_BPS: u64 = 50_000_000;

struct Driver {
    config: SfuConfig,
    socket: UdpSocket,
    registry: Registry,
    stats: Arc<SfuStats>,
    peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<SocketAddr, PeerId>,
    rooms: HashMap<SessionId, Room>,
    next_id: u64,
    events: mpsc::UnboundedSender<(SessionHandle, Actor, Command)>,
    /// Participants with no connected peer, and since when.
    absent: HashMap<(SessionId, ParticipantId), Instant>,
    watched: HashSet<SessionId>,
    self_tx: mpsc::Sender<SfuCommand>,
    dirty: VecDeque<PeerId>,
    out: Outputs,
    taps: HashMap<PeerId, Tap>,
    last_tap_tick: Instant,
    /// Tracks that come from the relay (this edge does not host the session).
    remote: HashMap<TrackKey, RemoteTrack>,
    remote_peers: HashMap<(SessionId, ParticipantId), PeerId>,
    /// Who takes the taps of the sessions hosted here (the relay publisher).
    hosted: Option<mpsc::UnboundedSender<super::HostedTap>>,
    mesh_out: HashSet<SessionId>,
}

/// A track fed from the relay: packets arrive with 16-bit sequence numbers
/// and 32-bit timestamps, extended here for the forwarding core.
struct RemoteTrack {
    session: SessionId,
    /// The composed program: only public viewers get it (and no tap).
    program: bool,
    codec: Codec,
    kind: forward::Kind,
    seq: Option<u64>,
    ts: Option<u64>,
    /// Keyframe requests go upstream through this.
    keyframes: mpsc::Sender<()>,
}

/// Extends a wrapping counter (`bits` wide) against the last extended value.
fn extend(last: &mut Option<u64>, v: u64, bits: u32) -> u64 {
    let modulus = 1u64 << bits;
    let e = match *last {
        // start well above zero so a reordered earlier packet stays positive
        None => v + modulus,
        Some(l) => {
            let half = (modulus / 2) as i64;
            let mut d = v as i64 - (l % modulus) as i64;
            if d > half {
                d -= modulus as i64;
            } else if d < -half {
                d += modulus as i64;
            }
            (l as i64 + d).max(0) as u64
        }
    };
    if last.is_none_or(|l| e > l) {
        *last = Some(e);
    }
    e
}

pub(super) fn spawn(
    config: SfuConfig,
    socket: UdpSocket,
    rx: mpsc::Receiver<SfuCommand>,
    registry: Registry,
    stats: Arc<SfuStats>,
    self_tx: mpsc::Sender<SfuCommand>,
    hosted: Option<mpsc::UnboundedSender<super::HostedTap>>,
    remote_rx: mpsc::Receiver<(TrackKey, crate::rtp::MediaPacket)>,
) {
    let (events, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(emit_events(events_rx));
    let driver = Driver {
        config,
        socket,
        registry,
        stats,
        peers: HashMap::new(),
        by_addr: HashMap::new(),
        rooms: HashMap::new(),
        next_id: 1,
        events,
        absent: HashMap::new(),
        watched: HashSet::new(),
        self_tx,
        dirty: VecDeque::new(),
        out: Outputs::default(),
        taps: HashMap::new(),
        last_tap_tick: Instant::now(),
        remote: HashMap::new(),
        remote_peers: HashMap::new(),
        hosted,
        mesh_out: HashSet::new(),
    };
    tokio::spawn(driver.run(rx, remote_rx));
}

/// Appends the SFU's events in the order they happened.
async fn emit_events(mut rx: mpsc::UnboundedReceiver<(SessionHandle, Actor, Command)>) {
    while let Some((handle, actor, command)) = rx.recv().await {
        let name = command.name();
        match handle.command(actor, command).await {
            Ok(protocol::control::EdgeReply::Done { .. }) => {}
            Ok(other) => {
                tracing::debug!(command = name, reply = ?other, "media event not appended")
            }
            Err(e) => tracing::debug!(command = name, error = %e, "session gone"),
        }
    }
}

fn rtc_kind(k: MediaKind) -> Kind {
    match k {
        MediaKind::Audio => Kind::Audio,
        MediaKind::Video => Kind::Video,
    }
}

impl Driver {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SfuCommand>,
        mut remote_rx: mpsc::Receiver<(TrackKey, crate::rtp::MediaPacket)>,
    ) {
        let mut buf = vec![0u8; 2000];
        tracing::info!(addr = %self.config.public, "SFU listening");
        loop {
            self.stats
                .loop_alive_ms
                .store(epoch_ms(), Ordering::Relaxed);
            let now = Instant::now();
            self.handle_timeouts(now).await;
            let deadline = self
                .peers
                .values()
                .map(|p| p.timeout)
                .min()
                .unwrap_or(now + Duration::from_millis(500))
                .min(now + Duration::from_millis(500));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => self.on_datagram(&buf[..n], source, Instant::now()).await,
                    Err(e) => tracing::debug!(error = %e, "udp receive error"),
                },
                cmd = rx.recv() => match cmd {
                    Some(c) => self.on_command(c).await,
                    None => return,
                },
                Some((key, pkt)) = remote_rx.recv() => self.on_remote_packet(key, pkt, Instant::now()),
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
            }
            self.flush_dirty().await;
        }
    }

    fn room(&mut self, s: SessionId) -> &mut Room {
        self.rooms.entry(s).or_default()
    }

    // ---- inputs --------------------------------------------------------

    async fn on_datagram(&mut self, data: &[u8], source: SocketAddr, now: Instant) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.config.public,
                contents,
            },
        );
        let id = match self.by_addr.get(&source) {
            Some(id) if self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)) => Some(*id),
            _ => self
                .peers
                .values()
                .find(|p| p.rtc.accepts(&input))
                .map(|p| p.id),
        };
        let Some(id) = id else { return };
        self.by_addr.insert(source, id);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.last_rx = now;
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(peer = id.0, error = %e, "rtc refused input");
        }
        self.drain(id, now).await;
    }

    async fn handle_timeouts(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.timeout <= now)
            .map(|p| p.id)
            .collect();
        for id in due {
            if let Some(p) = self.peers.get_mut(&id) {
                let _ = p.rtc.handle_input(Input::Timeout(now));
            }
            self.drain(id, now).await;
        }
        // peers that never connected, or stayed disconnected past the grace
        let timers = policy::PeerTimers {
            connect_timeout: self.config.connect_timeout,
            grace: self.config.grace,
            idle: self.config.idle,
        };
        let stale: Vec<(PeerId, &'static str)> = self
            .peers
            .values()
            .filter_map(|p| {
                let life = policy::PeerLife {
                    created: p.created,
                    connected: p.connected,
                    disconnected_since: p.disconnected_since,
                    last_rx: p.last_rx,
                    alive: p.rtc.is_alive(),
                };
                policy::give_up(&life, &timers, now).map(|why| (p.id, why))
            })
            .collect();
        for (id, why) in stale {
            tracing::info!(peer = id.0, reason = why, "dropping media peer");
            self.close_peer(id, now).await;
        }
        // participants gone for longer than the grace period have left
        let gone: Vec<(SessionId, ParticipantId)> = self
            .absent
            .iter()
            .filter(|(_, since)| policy::has_left(**since, self.config.grace, now))
            .map(|(k, _)| *k)
            .collect();
        for (session, participant) in gone {
            self.absent.remove(&(session, participant));
            if let Some(h) = self.registry.get(session).await {
                let cmd = Command::Leave {
                    participant_id: participant,
                    reason: LeaveReason::Disconnected,
                };
                let _ = self.events.send((h, Actor::System, cmd));
            }
        }
        self.tick_taps(now);
        // media quality samples
        let every = self.config.quality_every;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            if !p.connected || now.saturating_duration_since(p.last_quality) < every {
                continue;
            }
            let Some(st) = p.last_stats.as_ref() else {
                continue;
            };
            let bytes = st.peer_bytes_rx + st.peer_bytes_tx;
            let secs = now
                .saturating_duration_since(p.last_quality)
                .as_secs_f64()
                .max(0.001);
            let kbps = ((bytes.saturating_sub(p.last_bytes)) as f64 * 8.0 / 1000.0 / secs) as u32;
            let loss = match p.direction {
                Direction::Publish(_) => st.ingress_loss_fraction,
                Direction::Subscribe => st.egress_loss_fraction,
            }
            .unwrap_or(0.0);
            let body = EventBody::MediaQuality {
                participant_id: p.owner.participant,
                loss_permille: (loss.clamp(0.0, 1.0) * 1000.0) as u32,
                rtt_ms: st.rtt.map(|d| d.as_millis() as u32).unwrap_or(0),
                bitrate_kbps: kbps,
            };
            p.last_quality = now;
            p.last_bytes = bytes;
            let session = p.owner.session;
            if let Some(h) = self.registry.get(session).await {
                let _ = self
                    .events
                    .send((h, Actor::System, Command::System { event: body }));
            }
        }
    }

    async fn on_command(&mut self, cmd: SfuCommand) {
        match cmd {
            SfuCommand::Connect {
                owner,
                direction,
                offer,
                reply,
            } => {
                let r = self.connect(owner, direction, &offer).await;
                let _ = reply.send(r);
            }
            SfuCommand::Close {
                peer,
                participant,
                reply,
            } => {
                let r = match self.peers.get(&peer) {
                    None => Err(SfuError::NoPeer),
                    Some(p) if p.owner.participant != participant => Err(SfuError::NotYours),
                    Some(_) => {
                        self.close_peer(peer, Instant::now()).await;
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            SfuCommand::Cut {
                session,
                participant,
                publishers_only,
            } => {
                let ids: Vec<PeerId> = self
                    .peers
                    .values()
                    .filter(|p| p.owner.session == session)
                    .filter(|p| participant.is_none_or(|x| x == p.owner.participant))
                    .filter(|p| !publishers_only || matches!(p.direction, Direction::Publish(_)))
                    .map(|p| p.id)
                    .collect();
                let now = Instant::now();
                for id in ids {
                    tracing::info!(peer = id.0, "media cut");
                    self.close_peer(id, now).await;
                }
            }
            SfuCommand::Tap { session, kind, tx } => {
                self.add_tap(session, kind, tx, Instant::now())
            }
            SfuCommand::RemoteAdd {
                session,
                participant,
                source,
                codec,
                keyframes,
                reply,
            } => {
                let key = self.add_remote(
                    session,
                    participant,
                    source,
                    codec,
                    keyframes,
                    Instant::now(),
                );
                let _ = reply.send(key);
            }
            SfuCommand::RemoteRemove { key } => self.remove_remote(key),
            SfuCommand::CutRole { session, role } => {
                let ids: Vec<PeerId> = self
                    .peers
                    .values()
                    .filter(|p| p.owner.session == session && p.owner.role == role)
                    .map(|p| p.id)
                    .collect();
                let now = Instant::now();
                for id in ids {
                    tracing::info!(peer = id.0, ?role, "media cut");
                    self.close_peer(id, now).await;
                }
            }
            SfuCommand::Notify { session, message } => {
                let ids: Vec<PeerId> = self
                    .peers
                    .values()
                    .filter(|p| p.owner.session == session && p.direction == Direction::Subscribe)
                    .map(|p| p.id)
                    .collect();
                for id in ids {
                    let Some(p) = self.peers.get_mut(&id) else {
                        continue;
                    };
                    let Some(cid) = p.channel else { continue };
                    if let Some(mut ch) = p.rtc.channel(cid) {
                        let _ = ch.write(false, message.as_bytes());
                    }
                    self.dirty.push_back(id);
                }
            }
            SfuCommand::Audience { reply } => {
                let mut all: HashMap<SessionId, super::Audience> = HashMap::new();
                for p in self
                    .peers
                    .values()
                    .filter(|p| p.direction == Direction::Subscribe)
                {
                    let a = all.entry(p.owner.session).or_default();
                    if p.owner.role == protocol::Role::Public {
                        a.public += 1;
                    } else {
                        a.seated += 1;
                    }
                }
                let _ = reply.send(all);
            }
            SfuCommand::TapKeyframe {
                session,
                kind,
                track,
            } => {
                let Some(tap) = self
                    .taps
                    .values()
                    .find(|t| t.session == session && t.kind == kind)
                else {
                    return;
                };
                let Some(mid) = tap.tracks.values().find(|t| t.id == track).map(|t| t.mid) else {
                    return;
                };
                let peer = tap.peer;
                let mut out = std::mem::take(&mut self.out);
                self.room(session)
                    .on_keyframe_request(peer, mid, Instant::now(), &mut out);
                self.out = out;
                self.apply_outputs(session);
            }
        }
    }

    async fn connect(
        &mut self,
        owner: PeerOwner,
        direction: Direction,
        offer: &str,
    ) -> Result<(PeerId, String), SfuError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadOffer(e.to_string()))?;
        let now = Instant::now();
        self.make_room(&owner, direction, now).await?;
        let mut builder = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(1)));
        if direction == Direction::Subscribe {
            builder = builder.enable_bwe(Some(Bitrate::kbps(600)));
        }
        let mut rtc = builder.build(now);
        let cand = Candidate::host(self.config.public, "udp")
            .map_err(|e| SfuError::BadOffer(e.to_string()))?;
        rtc.add_local_candidate(cand);
        let answer: SdpAnswer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::BadOffer(e.to_string()))?;
        if direction == Direction::Subscribe {
            rtc.bwe().set_bitrate(Bitrate::kbps(300), Bitrate::mbps(4));
        }
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let session = owner.session;
        let peer = Peer {
            id,
            rtc,
            owner,
            direction,
            created: now,
            connected: false,
            disconnected_since: None,
            timeout: now,
            in_tracks: HashMap::new(),
            out: HashMap::new(),
            idle_slots: Vec::new(),
            channel: None,
            pending: None,
            wants_add: Vec::new(),
            wants_stop: Vec::new(),
            last_rx: now,
            last_quality: now,
            last_bytes: 0,
            last_stats: None,
        };
        self.peers.insert(id, peer);
        self.stats
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        self.watch(session).await;
        self.drain(id, now).await;
        Ok((id, answer.to_sdp_string()))
    }

    /// Room for one more connection of `owner`: a class at its public
    /// viewer cap refuses; a participant at their cap for this direction
    /// (and source) loses their oldest connection.
    async fn make_room(
        &mut self,
        owner: &PeerOwner,
        direction: Direction,
        now: Instant,
    ) -> Result<(), SfuError> {
        if direction == Direction::Subscribe && owner.role == protocol::Role::Public {
            let public = self
                .peers
                .values()
                .filter(|p| {
                    p.owner.session == owner.session
                        && p.direction == Direction::Subscribe
                        && p.owner.role == protocol::Role::Public
                })
                .count();
            if policy::public_full(public, self.config.max_public_viewers) {
                return Err(SfuError::Full(self.config.max_public_viewers));
            }
            return Ok(());
        }
        let cap = match direction {
            Direction::Publish(_) => super::MAX_PUBLISH_PER_SOURCE,
            Direction::Subscribe => super::MAX_SUBSCRIBE_PER_PARTICIPANT,
        };
        let mine: Vec<(Instant, PeerId)> = self
            .peers
            .values()
            .filter(|p| {
                p.owner.session == owner.session
                    && p.owner.participant == owner.participant
                    && p.direction == direction
            })
            .map(|p| (p.created, p.id))
            .collect();
        for id in policy::to_replace(&mine, cap) {
            tracing::info!(peer = id.0, participant_id = %owner.participant, "oldest media connection replaced");
            self.close_peer(id, now).await;
        }
        Ok(())
    }

    /// Watches a session's events for what must cut media at once.
    async fn watch(&mut self, session: SessionId) {
        if !self.watched.insert(session) {
            return;
        }
        let Some(handle) = self.registry.get(session).await else {
            return;
        };
        let Ok(sub) = handle.subscribe(protocol::Seq(u64::MAX)).await else {
            return;
        };
        let tx = self.self_tx.clone();
        tokio::spawn(async move {
            let mut live = sub.live;
            let mut state = sub.state;
            loop {
                let fe = match live.recv().await {
                    Ok(fe) => fe,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(cut_command(session, policy::Cut::Everyone)).await;
                        return;
                    }
                };
                let _ = state.apply(&fe.event);
                if let Some(cut) = policy::cut_for(&fe.event.body) {
                    let _ = tx.send(cut_command(session, cut)).await;
                }
                if !state.is_live() {
                    return;
                }
            }
        });
    }

    // ---- outputs -------------------------------------------------------

    /// Drains one peer's outputs; events may dirty other peers.
    async fn drain(&mut self, id: PeerId, now: Instant) {
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            let out = match peer.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(peer = id.0, error = %e, "rtc error; closing");
                    self.close_peer(id, now).await;
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    peer.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    self.stats
                        .bytes_out
                        .fetch_add(t.contents.len() as u64, Ordering::Relaxed);
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination)
                        && e.kind() == std::io::ErrorKind::WouldBlock
                    {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Output::Event(e) => self.on_event(id, e, now).await,
            }
        }
    }

    async fn flush_dirty(&mut self) {
        let now = Instant::now();
        while let Some(id) = self.dirty.pop_front() {
            self.drain(id, now).await;
        }
    }

    async fn on_event(&mut self, id: PeerId, event: Event, now: Instant) {
        match event {
            Event::Connected => self.on_connected(id, now).await,
            Event::IceConnectionStateChange(state) => {
                let Some(p) = self.peers.get_mut(&id) else {
                    return;
                };
                match state {
                    IceConnectionState::Disconnected => {
                        p.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        p.disconnected_since = None
                    }
                    IceConnectionState::New | IceConnectionState::Checking => {}
                }
            }
            Event::MediaAdded(m) => self.on_media_added(id, m, now).await,
            Event::RtpPacket(pkt) => self.on_rtp(id, pkt, now),
            Event::KeyframeRequest(req) => {
                let Some(p) = self.peers.get(&id) else { return };
                let session = p.owner.session;
                let mut out = std::mem::take(&mut self.out);
                self.room(session)
                    .on_keyframe_request(id, req.mid, now, &mut out);
                self.out = out;
                self.apply_outputs(session);
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let Some(p) = self.peers.get(&id) else { return };
                let session = p.owner.session;
                let mut out = std::mem::take(&mut self.out);
                self.room(session)
                    .set_estimate(id, estimate.as_u64(), now, &mut out);
                self.out = out;
                self.apply_outputs(session);
            }
            Event::PeerStats(st) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.last_stats = Some(st);
                }
            }
            Event::ChannelOpen(cid, _) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.channel = Some(cid);
                }
                self.renegotiate(id);
            }
            Event::ChannelData(d) => self.on_channel_data(id, &d.data, now),
            Event::Closed => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.disconnected_since.get_or_insert(now);
                }
            }
            _ => {}
        }
    }

    async fn on_connected(&mut self, id: PeerId, _now: Instant) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.connected = true;
        let owner = p.owner.clone();
        tracing::info!(peer = id.0, participant_id = %owner.participant, session_id = %owner.session, "media connected");
        self.absent.remove(&(owner.session, owner.participant));
        // media connecting is attendance: a participant who had dropped is
        // back (a public viewer has no seat and leaves no trace)
        let seated = owner.role != protocol::Role::Public;
        if let Some(h) = self.registry.get(owner.session).await.filter(|_| seated) {
            let cmd = Command::Join {
                participant_id: owner.participant,
                user_id: owner.user,
                role: owner.role,
                display_name: "-".into(),
                edge_id: self.registry.edge().clone(),
            };
            let _ = self.events.send((h, Actor::System, cmd));
        }
        if matches!(p.direction, Direction::Subscribe) {
            // everything already published in the room
            let keys: Vec<TrackKey> = self
                .rooms
                .get(&owner.session)
                .map(|r| r.tracks().map(|(k, _)| *k).collect())
                .unwrap_or_default();
            let keys: Vec<TrackKey> = keys
                .into_iter()
                .filter(|k| k.publisher != id && self.visible(owner.role, k))
                .collect();
            if let Some(p) = self.peers.get_mut(&id) {
                p.wants_add.extend(keys);
            }
            // the client's offered m-lines arrive as MediaAdded right after
            // this; what they cannot carry is offered once its data channel opens
            self.assign_slots(id, Instant::now());
        }
    }

    /// Sends the keyframe requests the core asked for.
    fn apply_outputs(&mut self, _session: SessionId) {
        let reqs: Vec<_> = self.out.keyframes.drain(..).collect();
        for r in reqs {
            if let Some(rt) = self.remote.get(&r.track) {
                let _ = rt.keyframes.try_send(());
                continue;
            }
            let Some(p) = self.peers.get_mut(&r.track.publisher) else {
                continue;
            };
            let rid = p.in_tracks.get(&r.track.mid).and_then(|t| {
                t.layers
                    .iter()
                    .find(|(_, l)| **l == r.layer)
                    .map(|(rid, _)| rid.clone())
            });
            let mut api = p.rtc.direct_api();
            if let Some(rx) =
                api.stream_rx_by_mid(r.track.mid, rid.as_deref().map(str0m::media::Rid::from))
            {
                rx.request_keyframe(str0m::media::KeyframeRequestKind::Pli);
                self.dirty.push_back(r.track.publisher);
            }
        }
    }

    async fn close_peer(&mut self, id: PeerId, now: Instant) {
        let Some(mut p) = self.peers.remove(&id) else {
            return;
        };
        p.rtc.disconnect();
        self.by_addr.retain(|_, v| *v != id);
        self.stats
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        let session = p.owner.session;
        let handle = self.registry.get(session).await;
        match p.direction {
            Direction::Publish(_) => {
                for t in p.in_tracks.values() {
                    self.tap_ended(session, t.key);
                    let stopped = self.room(session).remove_track(t.key);
                    if let Some(h) = &handle {
                        let body = EventBody::TrackUnpublished {
                            track_id: t.track_id,
                        };
                        let _ = self.events.send((
                            h.clone(),
                            Actor::System,
                            Command::System { event: body },
                        ));
                    }
                    for (sub, mid) in stopped {
                        if let Some(q) = self.peers.get_mut(&sub) {
                            q.out.retain(|_, m| *m != mid);
                            q.wants_stop.push(mid);
                        }
                        self.renegotiate(sub);
                    }
                }
            }
            Direction::Subscribe => self.room(session).remove_subscriber(id),
        }
        tracing::info!(peer = id.0, participant_id = %p.owner.participant, "peer closed");
        // the participant's last connected peer: start the grace period
        let still = self
            .peers
            .values()
            .any(|q| q.owner.session == session && q.owner.participant == p.owner.participant);
        if p.connected && !still && p.owner.role != protocol::Role::Public {
            self.absent.insert((session, p.owner.participant), now);
        }
        // a far edge's room keeps its relay tracks until the feed drops them
        if !self.peers.values().any(|q| q.owner.session == session)
            && !self.remote.values().any(|r| r.session == session)
        {
            self.rooms.remove(&session);
            for tap in self.taps.values_mut().filter(|t| t.session == session) {
                for (_, t) in tap.tracks.drain() {
                    let _ = tap.tx.try_send(TapMsg::Ended { track: t.id });
                }
            }
            self.remote_peers.retain(|(s, _), _| *s != session);
        }
    }
}

/// Writes one forwarded packet on a subscriber's m-line; false when the
/// m-line has no send stream (yet).
#[allow(clippy::too_many_arguments)]
fn write_forward(
    sub: &mut Peer,
    f: &forward::Forward,
    codec: Codec,
    pt: str0m::media::Pt,
    marker: bool,
    nackable: bool,
    payload: &[u8],
    now: Instant,
) -> bool {
    let mut api = sub.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(f.out_mid, None) else {
        tracing::trace!(subscriber = f.subscriber.0, mid = %f.out_mid, "no send stream for the m-line");
        return false;
    };
    tracing::trace!(subscriber = f.subscriber.0, mid = %f.out_mid, %pt, seq = f.seq, ts = f.ts, ssrc = %tx.ssrc(), "rtp out");
    let mut w = RtpWrite::new(pt, SeqNo::from(f.seq), f.ts, now, payload.to_vec())
        .marker(marker)
        .nackable(nackable);
    if let (Some(pic), Codec::Vp8) = (f.picture_id, codec)
        && let Ok(d) = str0m::rtp::Vp8Descriptor::parse(payload)
        && let Ok(patch) = d.patch().picture_id(pic).build()
    {
        w = w.vp8_patch(patch);
    }
    tx.write_rtp(w);
    true
}
