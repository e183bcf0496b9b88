//! Dialling the relay: QUIC + TLS 1.3 (trusting the given CA), MoQ SETUP
//! with our token, and a record of why the connection ended.

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
    CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, PROBE_NAMESPACE, SETUP_TOKEN_TYPE as TOKEN_TYPE,
};

const KEEP_ALIVE: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the connection ended, as far as we can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    Application { code: u32, reason: String },
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
}

pub(crate) struct Connection {
    pub(crate) publisher: Publisher,
    pub(crate) subscriber: Subscriber,
    pub(crate) quic: quinn::Connection,
    /// Keeps the socket's driver alive as long as the connection.
    _endpoint: quinn::Endpoint,
    pub(crate) reason: watch::Receiver<Option<CloseReason>>,
}

fn client_config(ca_pem: &[u8]) -> Result<quinn::ClientConfig, MeshError> {
    let config_err = |e: &dyn std::fmt::Display| MeshError::Config(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| config_err(&e))?)
            .map_err(|e| config_err(&e))?;
    }
    if roots.is_empty() {
        return Err(MeshError::Config("no CA certificate in ca_pem".to_owned()));
    }
    // An explicit provider: the workspace links both ring and aws-lc-rs into
    // rustls, so `ClientConfig::builder()` would panic without a default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![
        moq_transport::setup::DraftVersion::Draft18
            .alpn_bytes()
            .to_vec(),
    ];
    let mut config = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).map_err(|e| config_err(&e))?,
    ));
    let mut transport = quinn::TransportConfig::default();
    // Every subscription and published namespace holds a bidi stream for its
    // whole life in draft-18, every open group a uni stream: quinn's default
    // of 100 would cap an edge at ~100 tracks.
    transport
        .max_concurrent_bidi_streams(4096u32.into())
        .max_concurrent_uni_streams(8192u32.into())
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok())
        // BBR like the relay (and moq-native): Cubic halves its window on
        // every burst of drops and live media then queues behind it.
        .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

impl Connection {
    pub(crate) async fn dial(
        url: &str,
        ca_pem: &[u8],
        token: &str,
    ) -> Result<Connection, MeshError> {
        let url = Url::parse(url).map_err(|e| MeshError::Config(format!("relay url: {e}")))?;
        if url.scheme() != "moqt" {
            return Err(MeshError::Config(format!(
                "relay url must be moqt://host:port, got {url}"
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(MeshError::Config("relay url has no host".to_owned())),
        };
        let port = url.port().unwrap_or(443);
        let config = client_config(ca_pem)?;
        let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| MeshError::Unavailable(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| MeshError::Unavailable(format!("{host} has no address")))?;
        let bind: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| MeshError::Unavailable(format!("binding a UDP socket: {e}")))?;
        let connecting = endpoint
            .connect_with(config, addr, &host)
            .map_err(|e| MeshError::Config(format!("connecting to {addr}: {e}")))?;
        let quic = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| MeshError::Unavailable(format!("{addr}: connect timed out")))?
            .map_err(|e| MeshError::Unavailable(format!("{addr}: {e}")))?;

        let raw = moq_transport::session::transport::quinn::Session::raw(
            quic.clone(),
            url,
            moq_transport::session::transport::quinn::proto::ConnectResponse::default(),
        );
        let tokens = vec![AuthorizationToken::new(
            TOKEN_TYPE,
            token.as_bytes().to_vec(),
        )];
        let setup = Session::connect_with_tokens(raw.into(), None, Transport::RawQuic, tokens);
        let (session, publisher, subscriber) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| MeshError::Unavailable("MoQ setup timed out".to_owned()))?
            .map_err(|e| match quic.close_reason() {
                Some(reason) => CloseReason::from_quinn(&reason).to_error(),
                None => MeshError::Unavailable(format!("MoQ setup: {e}")),
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
        let mut connection = Connection {
            publisher,
            subscriber,
            quic,
            _endpoint: endpoint,
            reason,
        };
        connection.probe().await?;
        Ok(connection)
    }

    /// One round trip telling whether the relay kept us: it answers a
    /// SUBSCRIBE to its reserved probe namespace with NOT FOUND, while a
    /// relay that refused our token has already closed the connection.
    async fn probe(&mut self) -> Result<(), MeshError> {
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
                    Err(self.closed().await.to_error())
                } else {
                    Ok(())
                }
            }
            reason = self.closed() => Err(reason.to_error()),
        }
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        let seen = self.reason.borrow().clone();
        seen.or_else(|| {
            self.quic
                .close_reason()
                .map(|e| CloseReason::from_quinn(&e))
        })
    }

    pub(crate) async fn closed(&self) -> CloseReason {
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
    }
}
