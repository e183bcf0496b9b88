//! Dialling a relay, one copy for every MoQ client: the edges (through
//! [`crate::MeshClient`]), a relay pulling from its upstream, the tests and
//! the benchmarks. QUIC + TLS 1.3 (trusting the given CA), MoQ SETUP with
//! the relay token, the QUIC transport settings both ends use, and a record
//! of why the connection ended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use moq_transport::coding::TrackNamespace;
use moq_transport::serve;
use moq_transport::session::{Publisher, Session, SessionError, Subscriber, Transport};
use moq_transport::setup::AuthorizationToken;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::watch;
use url::Url;

use crate::MeshError;

use crate::codes::{
    ALPN, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, PROBE_NAMESPACE, SETUP_TOKEN_TYPE as TOKEN_TYPE,
};

/// Keep-alive well inside the idle timeout: a dead peer is noticed within
/// `IDLE_TIMEOUT`, a quiet healthy one never times out.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The QUIC handshake and the MoQ SETUP each get this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// In draft-18 every live subscription and published namespace holds a bidi
/// stream, and every open group a uni stream: quinn's default of 100 each
/// would cap a link at ~100 tracks.
const MAX_BIDI_STREAMS: u32 = 4096;
const MAX_UNI_STREAMS: u32 = 8192;

/// The QUIC transport settings of both ends of every mesh link.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(MAX_BIDI_STREAMS.into())
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok())
        // BBR, as moq-native does: with Cubic a burst of receive-buffer
        // drops at a busy subscriber halved the window and live objects
        // queued for hundreds of ms.
        .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(t)
}

/// Why a client TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("no trust roots given")]
    NoRoots,
    #[error("reading the CA certificates: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC crypto configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A client configuration trusting exactly `roots`: TLS 1.3 only, ALPN
/// `moqt-18`, [`transport_config`].
pub fn client_config(
    roots: Vec<CertificateDer<'static>>,
) -> Result<quinn::ClientConfig, ClientConfigError> {
    if roots.is_empty() {
        return Err(ClientConfigError::NoRoots);
    }
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert)?;
    }
    // An explicit provider: the workspace links both ring and aws-lc-rs into
    // rustls, so `ClientConfig::builder()` would panic without a default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(store)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport_config());
    Ok(config)
}

/// [`client_config`] trusting the CA certificates of a PEM text.
pub fn client_config_from_pem(pem: &[u8]) -> Result<quinn::ClientConfig, ClientConfigError> {
    let roots = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    client_config(roots)
}

/// Why dialling failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

impl DialError {
    /// What an edge should do about it.
    pub(crate) fn to_mesh(&self) -> MeshError {
        match self {
            DialError::Url(m) => MeshError::Config(m.clone()),
            DialError::Refused { .. } => MeshError::Unauthorized,
            DialError::Closed(m) => MeshError::Disconnected(m.clone()),
            other => MeshError::Unavailable(other.to_string()),
        }
    }
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

    pub(crate) fn to_error(&self) -> MeshError {
        match self {
            // refused or expired: a fresh token is what it takes
            CloseReason::Application { code, .. }
                if *code == CLOSE_UNAUTHORIZED || *code == CLOSE_TOKEN_EXPIRED =>
            {
                MeshError::Unauthorized
            }
            CloseReason::Application { code, reason } => {
                MeshError::Disconnected(format!("closed by the relay ({code}: {reason})"))
            }
            CloseReason::Transport(reason) => MeshError::Disconnected(reason.clone()),
        }
    }

    fn to_dial_error(&self) -> DialError {
        match self {
            CloseReason::Application { code, reason }
                if *code == CLOSE_UNAUTHORIZED || *code == CLOSE_TOKEN_EXPIRED =>
            {
                DialError::Refused {
                    code: *code,
                    reason: reason.clone(),
                }
            }
            CloseReason::Application { code, reason } => {
                DialError::Closed(format!("code {code}: {reason}"))
            }
            CloseReason::Transport(reason) => DialError::Closed(reason.clone()),
        }
    }
}

/// A local QUIC endpoint that dials relays. One per process is plenty: it
/// multiplexes any number of connections over one UDP socket.
#[derive(Clone)]
pub struct Dialer {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl Dialer {
    /// Binds `0.0.0.0:0`.
    pub fn new(config: quinn::ClientConfig) -> Result<Dialer, DialError> {
        Self::bind(config, SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn bind(config: quinn::ClientConfig, addr: SocketAddr) -> Result<Dialer, DialError> {
        let endpoint = quinn::Endpoint::client(addr).map_err(|e| DialError::Bind(e.to_string()))?;
        Ok(Dialer { endpoint, config })
    }

    /// Connects to `moqt://host:port[/path]` and completes MoQ SETUP,
    /// presenting `token` if given. A relay that refuses the token closes
    /// the connection right after SETUP: [`Connection::probe`] tells.
    pub async fn connect(&self, url: &Url, token: Option<&str>) -> Result<Connection, DialError> {
        let (host, addr) = resolve(url, self.local_is_ipv4()).await?;
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, &host)
            .map_err(|e| DialError::Connect(format!("{addr}: {e}")))?;
        let quic = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| DialError::Connect(format!("{addr}: timed out")))?
            .map_err(|e| DialError::Connect(format!("{addr}: {e}")))?;
        Connection::establish(quic, url.clone(), token, self.endpoint.clone()).await
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

/// The host name (for TLS) and an address of the family asked for.
async fn resolve(url: &Url, ipv4: bool) -> Result<(String, SocketAddr), DialError> {
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
        .map_err(|e| DialError::Resolve(format!("{host}: {e}")))?
        .find(|a| a.is_ipv4() == ipv4)
        .ok_or_else(|| DialError::Resolve(format!("{host}: no usable address")))?;
    Ok((host, addr))
}

/// One MoQ session to a relay. Its `run` loop is driven by a task spawned
/// when it is established; the halves are cheap clones.
pub struct Connection {
    pub publisher: Publisher,
    pub subscriber: Subscriber,
    pub(crate) quic: quinn::Connection,
    /// Keeps the socket's driver alive as long as the connection.
    _endpoint: quinn::Endpoint,
    /// The first telling close reason. Watched from the start because
    /// moq-transport answers a peer's close by closing locally, and quinn
    /// then reports `LocallyClosed` instead of the peer's code.
    pub(crate) reason: watch::Receiver<Option<CloseReason>>,
}

impl Connection {
    /// What an edge does: a socket of the relay's address family, the CA
    /// given as PEM, SETUP with `token`, and the probe, so a refused token
    /// is known before the connection is used.
    pub(crate) async fn dial(
        url: &str,
        ca_pem: &[u8],
        token: &str,
    ) -> Result<Connection, MeshError> {
        let url = Url::parse(url).map_err(|e| MeshError::Config(format!("relay url: {e}")))?;
        let config =
            client_config_from_pem(ca_pem).map_err(|e| MeshError::Config(e.to_string()))?;
        // a socket of the relay's family
        let (_, addr) = match resolve(&url, true).await {
            Ok(found) => found,
            Err(DialError::Resolve(_)) => resolve(&url, false).await.map_err(|e| e.to_mesh())?,
            Err(e) => return Err(e.to_mesh()),
        };
        let bind: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let dialer = Dialer::bind(config, bind).map_err(|e| e.to_mesh())?;
        let mut connection = dialer
            .connect(&url, Some(token))
            .await
            .map_err(|e| e.to_mesh())?;
        connection.probe().await.map_err(|e| e.to_mesh())?;
        Ok(connection)
    }

    async fn establish(
        quic: quinn::Connection,
        url: Url,
        token: Option<&str>,
        endpoint: quinn::Endpoint,
    ) -> Result<Connection, DialError> {
        let raw = moq_transport::session::transport::quinn::Session::raw(
            quic.clone(),
            url,
            moq_transport::session::transport::quinn::proto::ConnectResponse::default(),
        );
        let tokens = token
            .map(|t| vec![AuthorizationToken::new(TOKEN_TYPE, t.as_bytes().to_vec())])
            .unwrap_or_default();
        let setup = Session::connect_with_tokens(raw.into(), None, Transport::RawQuic, tokens);
        let (session, publisher, subscriber) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| DialError::Setup("timed out".to_owned()))?
            .map_err(|e| match quic.close_reason() {
                Some(reason) => CloseReason::from_quinn(&reason).to_dial_error(),
                None => DialError::Setup(e.to_string()),
            })?;
        let (reason_tx, reason) = watch::channel(None);
        let reason_tx = Arc::new(reason_tx);
        let watched = quic.clone();
        let from_quinn = reason_tx.clone();
        tokio::spawn(async move {
            let error = watched.closed().await;
            record(&from_quinn, CloseReason::from_quinn(&error));
        });
        tokio::spawn(async move {
            // run() drives every request of the session; it must be polled
            // for as long as the connection is used.
            if let Err(error) = session.run().await {
                tracing::debug!(%error, "relay session ended");
                if let Some(error) = connection_error(&error) {
                    record(&reason_tx, CloseReason::from_quinn(error));
                }
            }
        });
        Ok(Connection {
            publisher,
            subscriber,
            quic,
            _endpoint: endpoint,
            reason,
        })
    }

    /// One round trip telling whether the relay kept us: it answers a
    /// SUBSCRIBE to its reserved probe namespace with NOT FOUND, while a
    /// relay that refused our token has already closed the connection.
    pub async fn probe(&mut self) -> Result<(), DialError> {
        let (writer, _reader) =
            serve::Track::new(TrackNamespace::from_utf8_path(PROBE_NAMESPACE), "auth").produce();
        let mut subscriber = self.subscriber.clone();
        // Racing the SUBSCRIBE against the close is safe only because the
        // close means the session is gone anyway: dropping a half-opened
        // request closes the whole session.
        tokio::select! {
            answer = subscriber.subscribe_open(writer) => {
                drop(answer);
                if self.quic.close_reason().is_some() {
                    Err(self.closed().await.to_dial_error())
                } else {
                    Ok(())
                }
            }
            reason = self.closed() => Err(reason.to_dial_error()),
        }
    }

    /// Why it ended, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        let seen = self.reason.borrow().clone();
        seen.or_else(|| {
            self.quic
                .close_reason()
                .map(|e| CloseReason::from_quinn(&e))
        })
    }

    pub fn is_closed(&self) -> bool {
        self.close_reason().is_some()
    }

    pub fn close(&self, code: u32, reason: &str) {
        self.quic.close(code.into(), reason.as_bytes());
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.quic.remote_address()
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
            None => CloseReason::from_quinn(&self.quic.closed().await),
        }
    }
}

/// Keeps the most telling reason: moq-transport answers the relay's close by
/// closing too, after which quinn reports `LocallyClosed` instead of the
/// relay's code (e.g. UNAUTHORIZED).
fn record(tx: &watch::Sender<Option<CloseReason>>, reason: CloseReason) {
    tx.send_if_modified(|current| match (current.as_ref(), &reason) {
        (None, _) | (Some(CloseReason::Transport(_)), CloseReason::Application { .. }) => {
            *current = Some(reason.clone());
            true
        }
        (Some(_), _) => false,
    });
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_or_expired_token_asks_for_a_fresh_one() {
        let closed = |code| CloseReason::Application {
            code,
            reason: String::new(),
        };
        assert_eq!(
            closed(CLOSE_UNAUTHORIZED).to_error(),
            MeshError::Unauthorized
        );
        assert_eq!(
            closed(CLOSE_TOKEN_EXPIRED).to_error(),
            MeshError::Unauthorized
        );
        assert!(matches!(closed(0).to_error(), MeshError::Disconnected(_)));
        assert!(matches!(
            closed(CLOSE_UNAUTHORIZED).to_dial_error(),
            DialError::Refused { .. }
        ));
        assert!(matches!(closed(0).to_dial_error(), DialError::Closed(_)));
        assert_eq!(
            DialError::Refused {
                code: CLOSE_UNAUTHORIZED,
                reason: String::new()
            }
            .to_mesh(),
            MeshError::Unauthorized
        );
    }
}
