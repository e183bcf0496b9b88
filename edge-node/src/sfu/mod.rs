//! The edge's SFU: WebRTC on str0m (sans-IO), one UDP port for every peer.
//!
//! `forward.rs` is the forwarding core (pure state machine); `driver.rs` is
//! the thin shell that owns the socket and the `Rtc`s, feeds them packets and
//! timeouts, and carries out what the core decides. The HTTP side (WHIP/WHEP)
//! talks to the driver through `Sfu`, a command channel.

pub mod codec;
mod driver;
pub mod forward;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::event::TrackSource;
use protocol::{ParticipantId, SessionId, TenantId, UserId};
use tokio::sync::{mpsc, oneshot};

pub use forward::PeerId;

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
}

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
    pub stats: Arc<SfuStats>,
    pub public: SocketAddr,
}

impl Sfu {
    /// Binds the UDP socket and starts the driver.
    pub async fn start(config: SfuConfig, registry: Registry) -> anyhow::Result<Sfu> {
        let socket = tokio::net::UdpSocket::bind(config.bind).await?;
        let public = config.public;
        let stats = Arc::new(SfuStats::default());
        let (tx, rx) = mpsc::channel(1024);
        driver::spawn(config, socket, rx, registry, stats.clone(), tx.clone());
        Ok(Sfu { tx, stats, public })
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

    /// Whether the driver loop has run recently.
    pub fn alive(&self) -> bool {
        let last = self.stats.loop_alive_ms.load(Ordering::Relaxed);
        let now = driver::epoch_ms();
        now.saturating_sub(last) < 5_000
    }
}
