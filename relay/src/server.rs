//! The tokio/quinn shell: binds the QUIC endpoint and its TCP health twin,
//! accepts connections, authenticates each peer at MoQ SETUP, and hands
//! every session's requests to the driver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moq_transport::session::{Session, Transport};
use moq_transport::setup::decode_setup_tokens;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::auth::{AuthError, Jwks, JwksError, RelayClaims, SETUP_TOKEN_TYPE, token_from_path};
use crate::client::{
    CLOSE_PROTOCOL_VIOLATION, CLOSE_SHUTDOWN, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, DialError,
    Dialer,
};
use crate::config::Config;
use crate::dev_ca::{self, DevCaError};
use crate::driver::{Driver, Event};
use crate::routing::{Router, RouterConfig, SessionKey, Stats};
use crate::tls::{self, TlsError};
use crate::upstream::{UpstreamLink, UpstreamToken};

/// A peer must finish TLS and MoQ SETUP within this long.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Events queued to the driver before senders wait (backpressure reaches
/// the publishers through QUIC flow control).
const EVENT_QUEUE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("dev CA: {0}")]
    DevCa(#[from] DevCaError),
    #[error("JWKS client: {0}")]
    Jwks(#[from] JwksError),
    #[error("core's CA: {0}")]
    CoreCa(#[from] hosting::tls::TlsError),
    #[error("upstream: {0}")]
    Upstream(#[from] DialError),
    #[error("--upstream needs a trust root: --upstream-ca or --dev-ca-dir")]
    UpstreamWithoutCa,
    #[error("health endpoint: {0}")]
    Http(std::io::Error),
}

/// A bound relay, ready to [`Relay::run`].
pub struct Relay {
    endpoint: quinn::Endpoint,
    http: tokio::net::TcpListener,
    addr: SocketAddr,
    jwks: Arc<Jwks>,
    upstream: Option<Arc<UpstreamLink>>,
    router: RouterConfig,
}

struct Shared {
    jwks: Arc<Jwks>,
    events: mpsc::Sender<Event>,
    next_session: AtomicU64,
}

impl Relay {
    /// Loads TLS material (creating the dev CA when asked) and binds the
    /// UDP socket and its TCP twin on the same port.
    pub async fn bind(config: &Config) -> Result<Relay, RelayError> {
        let dev = match &config.dev_ca_dir {
            Some(dir) => {
                let (files, outcome) = dev_ca::ensure(dir, &[])?;
                tracing::info!(dir = %dir.display(), ?outcome, "dev CA");
                Some(files)
            }
            None => None,
        };
        let server = match (&config.tls_cert, &config.tls_key, &dev) {
            (Some(cert), Some(key), _) => tls::server_config(cert, key)?,
            (_, _, Some(files)) => tls::server_config(&files.cert, &files.key)?,
            _ => {
                tracing::warn!(
                    "no --tls-cert/--tls-key or --dev-ca-dir: serving a throwaway self-signed \
                     certificate that no client trusts"
                );
                tls::ephemeral_server_config()?
            }
        };
        let upstream = match &config.upstream {
            None => None,
            Some(url) => {
                let mut roots = config.upstream_ca.clone();
                if let Some(files) = &dev {
                    roots.push(files.ca_cert.clone());
                }
                if roots.is_empty() {
                    return Err(RelayError::UpstreamWithoutCa);
                }
                let token = match (&config.upstream_token, &config.upstream_token_file) {
                    (Some(t), _) => UpstreamToken::Value(t.clone()),
                    (None, Some(path)) => UpstreamToken::File(path.clone()),
                    (None, None) => UpstreamToken::None,
                };
                let dialer = Dialer::new(tls::client_config(&roots)?)?;
                Some(Arc::new(UpstreamLink::new(url.clone(), token, dialer)))
            }
        };
        let (endpoint, http, addr) = bind_twin(config.listen, server)?;
        Ok(Relay {
            endpoint,
            http,
            addr,
            jwks: Arc::new(Jwks::new(
                &config.core_url,
                hosting::tls::client_roots(config.core_ca.as_deref())?,
            )?),
            upstream,
            router: RouterConfig {
                upstream: config.upstream.is_some(),
                linger: Duration::from_secs(config.linger_secs),
                ..RouterConfig::default()
            },
        })
    }

    /// The bound address (UDP for QUIC, TCP for /healthz).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` fires, then closes every connection with
    /// [`CLOSE_SHUTDOWN`] so peers learn at once (rather than after their
    /// idle timeout) that they should reconnect.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        let Relay {
            endpoint,
            http,
            addr,
            jwks,
            upstream,
            router,
        } = self;
        // Not a child of `shutdown`: the driver and the sessions must outlive
        // the accept loop until every peer has been sent its CONNECTION_CLOSE,
        // or a peer would see its streams die first and blame itself.
        let stop = CancellationToken::new();
        tokio::spawn(jwks.clone().keep_fresh(stop.clone()));

        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let (stats_tx, stats_rx) = watch::channel(Stats::default());
        let upstream_url = upstream.as_ref().map(|u| u.url().to_string());
        let driver = Driver::new(Router::new(router), events.clone(), upstream, stats_tx);
        let driver = tokio::spawn(driver.run(rx, stop.clone()));

        let health = crate::health::router(stats_rx, upstream_url);
        let http_stop = stop.clone();
        let http = tokio::spawn(async move {
            axum::serve(http, health)
                .with_graceful_shutdown(async move { http_stop.cancelled().await })
                .await
        });

        tracing::info!(%addr, "relay listening (QUIC moqt-18; /healthz over TCP)");
        let shared = Arc::new(Shared {
            jwks,
            events,
            next_session: AtomicU64::new(1),
        });
        loop {
            let incoming = tokio::select! {
                _ = shutdown.cancelled() => break,
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
            };
            tokio::spawn(handle_connection(incoming, shared.clone()));
        }

        endpoint.close(CLOSE_SHUTDOWN.into(), b"relay shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        stop.cancel();
        let _ = driver.await;
        match http.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RelayError::Http(e)),
            Err(_) => Ok(()),
        }
    }
}

/// Binds UDP `addr` and TCP on the same port. With port 0, retries until a
/// port free for both is found.
fn bind_twin(
    addr: SocketAddr,
    server: quinn::ServerConfig,
) -> Result<(quinn::Endpoint, tokio::net::TcpListener, SocketAddr), RelayError> {
    let bind_err = |source| RelayError::Bind { addr, source };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        tls::tune_socket(&udp);
        let bound = udp.local_addr().map_err(bind_err)?;
        let tcp = match std::net::TcpListener::bind(bound) {
            Ok(tcp) => tcp,
            Err(_) if addr.port() == 0 && attempts < 20 => continue,
            Err(source) => {
                return Err(RelayError::Bind {
                    addr: bound,
                    source,
                });
            }
        };
        tcp.set_nonblocking(true).map_err(bind_err)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(bind_err)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| bind_err(std::io::Error::other("no async runtime for quinn")))?;
        let endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), udp, runtime)
                .map_err(bind_err)?;
        return Ok((endpoint, tcp, bound));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn handle_connection(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let peer = incoming.remote_address();
    let conn = match tokio::time::timeout(SETUP_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "QUIC handshake timed out");
            return;
        }
    };
    let accepted = tokio::time::timeout(SETUP_TIMEOUT, async {
        let raw = moq_transport::session::transport::quinn::Session::raw(
            conn.clone(),
            // Raw QUIC has no request URL; the client's path (and query)
            // arrives in SETUP's PATH option instead.
            Url::parse("moqt://relay/").map_err(|e| e.to_string())?,
            moq_transport::session::transport::quinn::proto::ConnectResponse::default(),
        );
        let (session, publisher, subscriber) =
            Session::accept(raw.into(), None, Transport::RawQuic)
                .await
                .map_err(|e| e.to_string())?;
        Ok::<_, String>((session, publisher, subscriber))
    })
    .await;
    let (session, publisher, subscriber) = match accepted {
        Ok(Ok(parts)) => parts,
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "MoQ setup failed");
            conn.close(CLOSE_PROTOCOL_VIOLATION.into(), b"setup failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "MoQ setup timed out");
            conn.close(CLOSE_PROTOCOL_VIOLATION.into(), b"setup timed out");
            return;
        }
    };
    let (Some(mut publisher), Some(mut subscriber)) = (publisher, subscriber) else {
        // moq-transport 0.17 always builds both halves; treat their absence
        // as a setup failure rather than trusting that forever.
        conn.close(0x1u32.into(), b"internal error");
        return;
    };

    // Authenticate before `session.run()` is ever polled: until then the
    // session reads no request, so a refused peer gets nothing at all.
    let claims = match authenticate(&session, &shared.jwks).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::warn!(%peer, reason = %error, "refused a peer");
            conn.close(CLOSE_UNAUTHORIZED.into(), b"unauthorized");
            return;
        }
    };

    let key = SessionKey(shared.next_session.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!("session", session = key.0, edge_id = %claims.sub, %peer);
    let events = shared.events.clone();
    async move {
        tracing::info!("session up");
        let up = Event::SessionUp {
            session: key,
            subscriber: Box::new(subscriber.clone()),
            peer: claims.sub.clone(),
            grants: claims.grants.clone(),
        };
        if events.send(up).await.is_err() {
            return;
        }
        let subscriptions = async {
            while let Some(subscribed) = publisher.subscribed().await {
                let event = Event::Subscribed {
                    session: key,
                    subscribed: Box::new(subscribed),
                };
                if events.send(event).await.is_err() {
                    break;
                }
            }
        };
        let namespaces = async {
            while let Some(published) = subscriber.published_namespace().await {
                let event = Event::NamespacePublished {
                    session: key,
                    published: Box::new(published),
                };
                if events.send(event).await.is_err() {
                    break;
                }
            }
        };
        // The token's lifetime is the session's: at `exp` the peer is
        // closed and must come back with a fresh one.
        let expires_in = Duration::from_secs(claims.exp.saturating_sub(unix_now()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(expires_in) => {
                tracing::info!("token expired; closing the session");
                conn.close(CLOSE_TOKEN_EXPIRED.into(), b"token expired");
            }
            result = session.run() => match result {
                Ok(()) => tracing::info!("session closed"),
                Err(error) if error.is_graceful_close() => tracing::info!("session closed"),
                Err(error) => tracing::info!(%error, "session ended"),
            },
            _ = subscriptions => {}
            _ = namespaces => {}
        }
        let _ = events.send(Event::SessionDown { session: key }).await;
    }
    .instrument(span)
    .await
}

/// The token from SETUP's AUTHORIZATION TOKEN option (our type), else from
/// the connection path's `?token=` query.
async fn authenticate(session: &Session, jwks: &Jwks) -> Result<RelayClaims, AuthError> {
    let from_setup = decode_setup_tokens(session.setup_params())
        .map_err(|_| AuthError::Invalid)?
        .into_iter()
        .find(|t| t.token_type == SETUP_TOKEN_TYPE)
        .map(|t| String::from_utf8_lossy(t.value).into_owned());
    let token = from_setup
        .or_else(|| session.connection_path().and_then(token_from_path))
        .ok_or(AuthError::Missing)?;
    jwks.verify(&token, unix_now()).await
}
