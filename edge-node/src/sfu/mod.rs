//! The edge's SFU: WebRTC on str0m (sans-IO), one UDP port for every peer.
//!
//! `forward.rs` is the forwarding core (pure state machine); `driver.rs` is
//! the thin shell that owns the socket and the `Rtc`s, feeds them packets and
//! timeouts, and carries out what the core decides. The HTTP side (WHIP/WHEP)
//! talks to the driver through `Sfu`, a command channel.

pub(crate) mod codec;
mod driver;
pub(crate) mod forward;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::event::TrackSource;
use protocol::{ParticipantId, SessionId, TenantId, UserId};
use tokio::sync::{mpsc, oneshot};

pub(crate) use forward::PeerId;

use crate::runtime::registry::Registry;

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Where the UDP socket binds.
    pub bind: SocketAddr,
    /// The host candidate advertised to peers (must be reachable by them).
    pub public: SocketAddr,
    /// A participant whose media dropped is `participant.left` after this.
    pub grace: Duration,
    /// `media.quality` samples per peer at most this often.
    pub quality_every: Duration,
    /// A connected peer silent this long (no media, RTCP or STUN) is gone.
    pub idle: Duration,
    /// A peer that does not connect within this is dropped.
    pub connect_timeout: Duration,
    /// Public viewers one class may have on this edge; past it, 503.
    pub max_public_viewers: u32,
}

/// Media connections one participant may hold in one class: one per
/// published source (a new camera replaces the old one, as after a
/// reconnect), and a few to watch with (tabs, devices). Past the cap the
/// oldest is closed, so a client that reconnects is never locked out.
pub(crate) const MAX_PUBLISH_PER_SOURCE: usize = 1;
pub(crate) const MAX_SUBSCRIBE_PER_PARTICIPANT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Publish(TrackSource),
    Subscribe,
}

/// Who a peer connection belongs to.
#[derive(Debug, Clone)]
pub struct PeerOwner {
    pub session: SessionId,
    pub tenant: TenantId,
    pub participant: ParticipantId,
    pub user: Option<UserId>,
    pub role: protocol::Role,
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("the SDP offer is malformed: {0}")]
    BadOffer(String),
    #[error("no such peer")]
    NoPeer,
    #[error("that peer belongs to someone else")]
    NotYours,
    #[error("the media plane is not running")]
    Down,
    #[error("this class has as many public viewers as this edge takes ({0})")]
    Full(u32),
}

pub(crate) enum SfuCommand {
    Connect {
        owner: PeerOwner,
        direction: Direction,
        offer: String,
        reply: oneshot::Sender<Result<(PeerId, String), SfuError>>,
    },
    Close {
        peer: PeerId,
        participant: ParticipantId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    /// Close peers of a participant: publishers only, or all.
    Cut {
        session: SessionId,
        participant: Option<ParticipantId>,
        publishers_only: bool,
    },
    /// Close every peer of a session held by this role (e.g. public viewers).
    CutRole {
        session: SessionId,
        role: protocol::Role,
    },
    /// A view of a session's media (the recorder's, the mesh's): every
    /// track, best layer.
    Tap {
        session: SessionId,
        kind: TapKind,
        tx: mpsc::Sender<TapMsg>,
    },
    /// A tap's reader lost a picture of a tapped track.
    TapKeyframe {
        session: SessionId,
        kind: TapKind,
        track: u32,
    },
    /// A track of a session hosted elsewhere, fed from the relay.
    RemoteAdd {
        session: SessionId,
        participant: ParticipantId,
        source: TrackSource,
        codec: TapCodec,
        keyframes: mpsc::Sender<()>,
        reply: oneshot::Sender<forward::TrackKey>,
    },
    RemoteRemove {
        key: forward::TrackKey,
    },
    /// A message for every subscriber of a session, on its data channel.
    Notify {
        session: SessionId,
        message: String,
    },
    /// Who watches (WHEP peers) each session here.
    Audience {
        reply: oneshot::Sender<std::collections::HashMap<SessionId, Audience>>,
    },
}

/// The subscribers of one session on this edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audience {
    /// Participants with a seat (students, staff).
    pub seated: u32,
    /// Public viewers (they see only the program).
    pub public: u32,
}

/// Who reads a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    Recorder,
    /// Publishes the session's tracks to the relay.
    Mesh,
}

/// A tap on a session hosted here, handed out when its first track is
/// published: continuous numbering, the best layer of each track. The mesh
/// publishes it to the relay; the SFU does not know who consumes it.
pub struct HostedTap {
    pub session: SessionId,
    pub tenant: protocol::TenantId,
    pub tap: mpsc::Receiver<TapMsg>,
}

impl TapCodec {
    /// The codec of a payload type the tap stamps.
    pub fn from_payload_type(pt: u8) -> Option<TapCodec> {
        match pt {
            96 => Some(TapCodec::Vp8),
            102 => Some(TapCodec::H264),
            111 => Some(TapCodec::Opus),
            _ => None,
        }
    }
}

/// Codecs of tapped tracks (the RTP payload type the tap stamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapCodec {
    Vp8,
    H264,
    Opus,
}

impl TapCodec {
    pub fn payload_type(self) -> u8 {
        match self {
            TapCodec::Vp8 => 96,
            TapCodec::H264 => 102,
            TapCodec::Opus => 111,
        }
    }
}

/// What a tap receives. `track` numbers are the tap's own (also the SSRC of
/// its packets).
#[derive(Debug)]
pub enum TapMsg {
    /// A track's first packet: who sends it and what it is.
    Track {
        track: u32,
        participant: ParticipantId,
        source: TrackSource,
        codec: TapCodec,
    },
    /// One RTP packet, sequence and timestamps continuous across layer
    /// switches.
    Rtp { track: u32, packet: Vec<u8> },
    /// The track ended (unpublished, cut or its peer gone).
    Ended { track: u32 },
}

/// Counters for health and benchmarks.
#[derive(Debug, Default)]
pub struct SfuStats {
    pub peers: AtomicU64,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub loop_alive_ms: AtomicU64,
}

#[derive(Clone)]
pub struct Sfu {
    tx: mpsc::Sender<SfuCommand>,
    remote_tx: mpsc::Sender<(forward::TrackKey, crate::rtp::MediaPacket)>,
    pub stats: Arc<SfuStats>,
    pub public: SocketAddr,
}

impl Sfu {
    /// Binds the UDP socket and starts the driver.
    pub async fn start(
        config: SfuConfig,
        registry: Registry,
        hosted: Option<mpsc::UnboundedSender<HostedTap>>,
    ) -> anyhow::Result<Sfu> {
        let socket = tokio::net::UdpSocket::bind(config.bind).await?;
        let public = config.public;
        let stats = Arc::new(SfuStats::default());
        let (tx, rx) = mpsc::channel(1024);
        let (remote_tx, remote_rx) = mpsc::channel(8192);
        driver::spawn(
            config,
            socket,
            rx,
            registry,
            stats.clone(),
            tx.clone(),
            hosted,
            remote_rx,
        );
        Ok(Sfu {
            tx,
            remote_tx,
            stats,
            public,
        })
    }

    /// Adds a track of a session hosted on another edge (from the relay);
    /// its packets go through [`Sfu::remote_packet`].
    pub async fn remote_add(
        &self,
        session: SessionId,
        participant: ParticipantId,
        source: TrackSource,
        codec: TapCodec,
        keyframes: mpsc::Sender<()>,
    ) -> Result<forward::TrackKey, SfuError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SfuCommand::RemoteAdd {
                session,
                participant,
                source,
                codec,
                keyframes,
                reply,
            })
            .await
            .map_err(|_| SfuError::Down)?;
        rx.await.map_err(|_| SfuError::Down)
    }

    pub async fn remote_remove(&self, key: forward::TrackKey) {
        let _ = self.tx.send(SfuCommand::RemoteRemove { key }).await;
    }

    /// Hands a relay packet to the SFU; dropped when it is overloaded.
    pub fn remote_packet(&self, key: forward::TrackKey, packet: crate::rtp::MediaPacket) -> bool {
        self.remote_tx.try_send((key, packet)).is_ok()
    }

    /// Closes a session's peers here as a policy cut says.
    pub async fn cut(&self, session: SessionId, cut: crate::policy::Cut) {
        let _ = self.tx.send(cut_command(session, cut)).await;
    }

    /// Tells every subscriber of a session something (JSON on the data
    /// channel), e.g. that the class's media is reconnecting.
    pub async fn notify(&self, session: SessionId, message: serde_json::Value) {
        let _ = self
            .tx
            .send(SfuCommand::Notify {
                session,
                message: message.to_string(),
            })
            .await;
    }

    /// Who watches each session through this edge.
    pub async fn audience(&self) -> std::collections::HashMap<SessionId, Audience> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(SfuCommand::Audience { reply }).await.is_err() {
            return Default::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Who watches one session through this edge.
    pub async fn audience_of(&self, session: SessionId) -> Audience {
        self.audience()
            .await
            .get(&session)
            .copied()
            .unwrap_or_default()
    }

    pub async fn connect(
        &self,
        owner: PeerOwner,
        direction: Direction,
        offer: String,
    ) -> Result<(PeerId, String), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SfuCommand::Connect {
                owner,
                direction,
                offer,
                reply,
            })
            .await
            .map_err(|_| SfuError::Down)?;
        rx.await.map_err(|_| SfuError::Down)?
    }

    pub async fn close(&self, peer: PeerId, participant: ParticipantId) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SfuCommand::Close {
                peer,
                participant,
                reply,
            })
            .await
            .map_err(|_| SfuError::Down)?;
        rx.await.map_err(|_| SfuError::Down)?
    }

    /// Taps a session's media for the recorder. Packets that do not fit the
    /// channel are dropped (the recorder must never slow the SFU down).
    pub async fn tap(&self, session: SessionId) -> Result<mpsc::Receiver<TapMsg>, SfuError> {
        let (tx, rx) = mpsc::channel(4096);
        self.tx
            .send(SfuCommand::Tap {
                session,
                kind: TapKind::Recorder,
                tx,
            })
            .await
            .map_err(|_| SfuError::Down)?;
        Ok(rx)
    }

    /// Asks a tapped track's sender for a keyframe (for the recorder's tap).
    pub fn tap_keyframe(&self, session: SessionId, track: u32) {
        self.keyframe_for(session, TapKind::Recorder, track);
    }

    /// Asks a tapped track's sender for a keyframe, for the tap of `kind`.
    pub fn keyframe_for(&self, session: SessionId, kind: TapKind, track: u32) {
        let _ = self.tx.try_send(SfuCommand::TapKeyframe {
            session,
            kind,
            track,
        });
    }

    /// Whether the driver loop has run recently.
    pub fn alive(&self) -> bool {
        let last = self.stats.loop_alive_ms.load(Ordering::Relaxed);
        let now = driver::epoch_ms();
        now.saturating_sub(last) < 5_000
    }
}

/// The SFU command that carries out a policy cut.
fn cut_command(session: SessionId, cut: crate::policy::Cut) -> SfuCommand {
    match cut {
        crate::policy::Cut::Everyone => SfuCommand::Cut {
            session,
            participant: None,
            publishers_only: false,
        },
        crate::policy::Cut::Participant {
            participant,
            publishers_only,
        } => SfuCommand::Cut {
            session,
            participant: Some(participant),
            publishers_only,
        },
        crate::policy::Cut::Role(role) => SfuCommand::CutRole { session, role },
    }
}
