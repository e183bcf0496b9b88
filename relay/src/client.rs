//! A MoQ client connection to a relay: what this relay uses to pull from its
//! `--upstream`, and what the tests and the benchmark use to publish and
//! subscribe. Raw QUIC (`moqt://host:port[/path]`), TLS 1.3 against a given
//! CA, the relay token in SETUP.

use std::net::SocketAddr;

use moq_transport::coding::TrackNamespace;
use moq_transport::serve;
use moq_transport::session::{Publisher, Session, SessionError, Subscriber, Transport};
use moq_transport::setup::AuthorizationToken;
use tokio::sync::watch;
use url::Url;

/// The close codes, one copy with the mesh's clients.
pub use mesh_client::codes::{
    CLOSE_PROTOCOL_VIOLATION, CLOSE_SHUTDOWN, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED,
};
use mesh_client::codes::{PROBE_NAMESPACE, SETUP_TOKEN_TYPE};

#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    #[error("bad relay url: {0}")]
    Url(String),
    #[error("resolving the relay address: {0}")]
    Resolve(String),
    #[error("binding a local UDP socket: {0}")]
    Bind(String),
    #[error("QUIC connection: {0}")]
    Connect(String),
    #[error("MoQ setup: {0}")]
    Setup(String),
    #[error("the relay refused us (code {code}: {reason})")]
    Refused { code: u32, reason: String },
    #[error("the connection closed: {0}")]
    Closed(String),
}

/// Why a connection ended, as the peer (or the network) said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed with an application code (e.g. [`CLOSE_UNAUTHORIZED`]).
    Application { code: u32, reason: String },
    /// Anything else: idle timeout, reset, local close.
    Transport(String),
}

impl CloseReason {
    fn from_quinn(err: &quinn::ConnectionError) -> CloseReason {
        match err {
            quinn::ConnectionError::ApplicationClosed(close) => CloseReason::Application {
                code: u32::try_from(close.error_code.into_inner()).unwrap_or(u32::MAX),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            other => CloseReason::Transport(other.to_string()),
        }
    }
}

/// A local QUIC endpoint that dials relays. One per process is plenty; it
/// multiplexes any number of connections over one UDP socket.
#[derive(Clone)]
pub struct Dialer {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl Dialer {
    /// `config` from [`crate::tls::client_config`]; binds `0.0.0.0:0`.
    pub fn new(config: quinn::ClientConfig) -> Result<Dialer, DialError> {
        Self::bind(config, SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn bind(config: quinn::ClientConfig, addr: SocketAddr) -> Result<Dialer, DialError> {
        let endpoint = quinn::Endpoint::client(addr).map_err(|e| DialError::Bind(e.to_string()))?;
        Ok(Dialer { endpoint, config })
    }

    /// Connects and completes MoQ SETUP, presenting `token` if given. A
    /// relay that refuses the token closes the connection right after
    /// SETUP; call [`Connection::probe`] to learn that before relying on it.
    pub async fn connect(&self, url: &Url, token: Option<&str>) -> Result<Connection, DialError> {
        if url.scheme() != "moqt" {
            return Err(DialError::Url(format!(
                "scheme must be moqt://, got {}://",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(DialError::Url("no host".to_owned())),
        };
        let port = url.port().unwrap_or(443);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| DialError::Resolve(e.to_string()))?
            .find(|a| a.is_ipv4() == self.local_is_ipv4())
            .ok_or_else(|| DialError::Resolve(format!("{host}: no usable address")))?;
        let conn = self
            .endpoint
            .connect_with(self.config.clone(), addr, &host)
            .map_err(|e| DialError::Connect(e.to_string()))?
            .await
            .map_err(|e| DialError::Connect(e.to_string()))?;
        Connection::establish(conn, url.clone(), token).await
    }

    fn local_is_ipv4(&self) -> bool {
        self.endpoint
            .local_addr()
            .map(|a| a.is_ipv4())
            .unwrap_or(true)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }
}

/// One MoQ session to a relay. Its `run` loop is driven by a task spawned in
/// [`Dialer::connect`]; the halves are cheap clones.
pub struct Connection {
    pub publisher: Publisher,
    pub subscriber: Subscriber,
    quic: quinn::Connection,
    /// The first close reason seen. Watched from the start because
    /// moq-transport answers a peer's close by closing locally, and quinn
    /// then reports `LocallyClosed` instead of the peer's code.
    reason: watch::Receiver<Option<CloseReason>>,
}

impl Connection {
    async fn establish(
        quic: quinn::Connection,
        url: Url,
        token: Option<&str>,
    ) -> Result<Connection, DialError> {
        let raw = moq_transport::session::transport::quinn::Session::raw(
            quic.clone(),
            url,
            moq_transport::session::transport::quinn::proto::ConnectResponse::default(),
        );
        let tokens = token
            .map(|t| {
                vec![AuthorizationToken::new(
                    SETUP_TOKEN_TYPE,
                    t.as_bytes().to_vec(),
                )]
            })
            .unwrap_or_default();
        let (session, publisher, subscriber) =
            Session::connect_with_tokens(raw.into(), None, Transport::RawQuic, tokens)
                .await
                .map_err(|e| match quic.close_reason() {
                    Some(reason) => refused_or_closed(CloseReason::from_quinn(&reason)),
                    None => DialError::Setup(e.to_string()),
                })?;
        let (reason_tx, reason) = watch::channel(None);
        let reason_tx = std::sync::Arc::new(reason_tx);
        let watched = quic.clone();
        let from_quinn = reason_tx.clone();
        tokio::spawn(async move {
            let error = watched.closed().await;
            record(&from_quinn, CloseReason::from_quinn(&error));
        });
        tokio::spawn(async move {
            if let Err(error) = session.run().await {
                tracing::debug!(%error, "relay client session ended");
                if let Some(error) = connection_error(&error) {
                    record(&reason_tx, CloseReason::from_quinn(error));
                }
            }
        });
        Ok(Connection {
            publisher,
            subscriber,
            quic,
            reason,
        })
    }

    /// One round trip that tells whether the relay accepted our token: a
    /// SUBSCRIBE to the reserved probe namespace, which an accepting relay
    /// refuses with NOT FOUND and a refusing relay never answers (it has
    /// already closed the connection).
    pub async fn probe(&mut self) -> Result<(), DialError> {
        let (writer, _reader) =
            serve::Track::new(TrackNamespace::from_utf8_path(PROBE_NAMESPACE), "auth").produce();
        let mut subscriber = self.subscriber.clone();
        // Racing the SUBSCRIBE against the close is safe: if the close wins,
        // the session is gone anyway (dropping a half-open request closes
        // the whole session, which is why nothing else may cancel it).
        tokio::select! {
            answer = subscriber.subscribe_open(writer) => {
                drop(answer);
                if self.quic.close_reason().is_some() {
                    Err(refused_or_closed(self.closed().await))
                } else {
                    Ok(())
                }
            }
            reason = self.closed() => Err(refused_or_closed(reason)),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.reason.borrow().is_some() || self.quic.close_reason().is_some()
    }

    /// Waits until the connection ends and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut reason = self.reason.clone();
        let seen = match reason.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        match seen {
            Some(r) => r,
            // The watcher task is gone (runtime shutting down): ask quinn.
            None => CloseReason::from_quinn(&self.quic.closed().await),
        }
    }

    pub fn close(&self, code: u32, reason: &str) {
        self.quic.close(code.into(), reason.as_bytes());
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.quic.remote_address()
    }
}

/// Keeps the most telling close reason: the peer's application close wins
/// over a transport-level one (quinn reports `LocallyClosed` once
/// moq-transport has reacted to the peer's close by closing too).
fn record(tx: &watch::Sender<Option<CloseReason>>, reason: CloseReason) {
    tx.send_if_modified(|current| match (current.as_ref(), &reason) {
        (None, _) | (Some(CloseReason::Transport(_)), CloseReason::Application { .. }) => {
            *current = Some(reason.clone());
            true
        }
        (Some(_), _) => false,
    });
}

/// The QUIC-level error under a moq session error, if that is what it is.
fn connection_error(error: &SessionError) -> Option<&quinn::ConnectionError> {
    use moq_transport::session::transport::{Error, quinn as wt};
    let session = match error {
        SessionError::WebTransport(Error::Session(s)) => s,
        SessionError::WebTransport(Error::Read(wt::ReadError::SessionError(s))) => s,
        SessionError::WebTransport(Error::Write(wt::WriteError::SessionError(s))) => s,
        _ => return None,
    };
    match session {
        wt::SessionError::ConnectionError(e) => Some(e),
        wt::SessionError::WebTransportError(_) | wt::SessionError::SendDatagramError(_) => None,
    }
}

fn refused_or_closed(reason: CloseReason) -> DialError {
    match reason {
        CloseReason::Application { code, reason } if code == CLOSE_UNAUTHORIZED => {
            DialError::Refused { code, reason }
        }
        CloseReason::Application { code, reason } => {
            DialError::Closed(format!("code {code}: {reason}"))
        }
        CloseReason::Transport(reason) => DialError::Closed(reason),
    }
}
