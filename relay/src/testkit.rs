//! Helpers for the relay's integration tests and its benchmark (not used by
//! the relay itself): a stand-in for core's JWKS and token minting, a relay
//! child process, and thin publish/subscribe wrappers over moq-transport.

use protocol::claims::RelayGrants;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moq_transport::coding::TrackNamespace;
use moq_transport::serve::{self, ServeError, SubgroupsWriter, TrackReaderMode, TracksWriter};
use moq_transport::session::{Publisher, Subscribe};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::auth::RELAY_AUDIENCE;
use crate::client::Connection;

/// Core's part in relay auth: an Ed25519 key, its JWKS served over HTTP,
/// and tokens signed with it.
pub struct TokenIssuer {
    kid: String,
    x: String,
    encoding: EncodingKey,
    /// Another key, used to forge tokens under our kid.
    forger: EncodingKey,
}

fn encoding_key(key: &SigningKey) -> EncodingKey {
    match key.to_pkcs8_der() {
        Ok(der) => EncodingKey::from_ed_der(der.as_bytes()),
        // PKCS#8 encoding of a valid in-memory key cannot fail.
        Err(_) => EncodingKey::from_ed_der(&[]),
    }
}

impl TokenIssuer {
    pub fn new() -> TokenIssuer {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let forger = SigningKey::generate(&mut rand::rngs::OsRng);
        TokenIssuer {
            kid: "test-key".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            encoding: encoding_key(&key),
            forger: encoding_key(&forger),
        }
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": self.x,
        }]})
    }

    fn sign(&self, key: &EncodingKey, sub: &str, exp: i64, grants: &RelayGrants) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let claims = serde_json::json!({
            "iss": protocol::claims::ISSUER, "aud": RELAY_AUDIENCE, "sub": sub, "exp": exp,
            "publish": grants.publish, "subscribe": grants.subscribe,
        });
        jsonwebtoken::encode(&header, &claims, key).unwrap_or_default()
    }

    /// A valid relay token for `sub` that may publish and subscribe to
    /// everything, expiring in `ttl_secs` (negative: expired).
    pub fn token(&self, sub: &str, ttl_secs: i64) -> String {
        self.token_with(sub, ttl_secs, &RelayGrants::all())
    }

    /// A valid relay token for `sub` with these grants.
    pub fn token_with(&self, sub: &str, ttl_secs: i64, grants: &RelayGrants) -> String {
        self.sign(&self.encoding, sub, now() + ttl_secs, grants)
    }

    /// A token that names our key but is signed by another one.
    pub fn forged(&self, sub: &str) -> String {
        self.sign(&self.forger, sub, now() + 600, &RelayGrants::all())
    }

    /// Serves `/.well-known/jwks.json` on 127.0.0.1 (a free port) until the
    /// runtime ends; returns core's base URL.
    pub async fn serve(self: &Arc<Self>) -> std::io::Result<String> {
        let jwks = self.jwks();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }
}

impl Default for TokenIssuer {
    fn default() -> Self {
        Self::new()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A relay (ours or another) running as a child process; killed on drop.
pub struct RelayProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts our relay binary and waits for its `LISTENING <addr>` line.
    pub async fn spawn(bin: &Path, args: &[String]) -> std::io::Result<RelayProcess> {
        let mut child = tokio::process::Command::new(bin)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RELAY_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("RELAY_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    return addr
                        .trim()
                        .parse::<SocketAddr>()
                        .map_err(std::io::Error::other);
                }
            }
            Err(std::io::Error::other("relay exited before listening"))
        })
        .await
        .map_err(|_| std::io::Error::other("relay did not start in time"))??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(RelayProcess { child, addr })
    }

    /// Starts a process that does not announce itself (e.g. moq-relay-ietf)
    /// and waits until `addr`'s UDP port is taken.
    pub async fn spawn_foreign(
        bin: &Path,
        args: &[String],
        addr: SocketAddr,
    ) -> std::io::Result<RelayProcess> {
        let child = tokio::process::Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        for _ in 0..200 {
            if std::net::UdpSocket::bind(addr).is_err() {
                return Ok(RelayProcess { child, addr });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::other("foreign relay did not bind in time"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: the relay vanishes without closing anything.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// GET /healthz on the TCP twin.
    pub async fn health(&self) -> Option<serde_json::Value> {
        reqwest::get(format!("http://{}/healthz", self.addr))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// The relay process's CPU time so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid()?)
    }
}

/// User + system CPU time of a process, from `/proc/<pid>/stat` (Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux we run on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A published namespace whose tracks the caller writes into.
pub struct TestPublisher {
    tracks: TracksWriter,
    _serving: tokio::task::JoinHandle<()>,
}

impl TestPublisher {
    /// Sends PUBLISH_NAMESPACE and waits for the relay's OK, then serves the
    /// relay's subscriptions in the background.
    pub async fn start(
        connection: &Connection,
        namespace: &str,
    ) -> Result<TestPublisher, ServeError> {
        let ns = TrackNamespace::from_utf8_path(namespace);
        let (tracks, request, reader) = serve::Tracks::new(ns.clone()).produce();
        let mut publisher: Publisher = connection.publisher.clone();
        let published = publisher
            .publish_namespace_start(ns)
            .await
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        published.ok().await?;
        let serving = tokio::spawn(async move {
            let _request = request; // unknown tracks are answered NOT FOUND while it lives
            while let Ok(Some(subscribed)) = published.subscribed().await {
                let reader = reader.clone();
                tokio::spawn(async move {
                    let _ = Publisher::serve_subscribe(subscribed, reader).await;
                });
            }
        });
        Ok(TestPublisher {
            tracks,
            _serving: serving,
        })
    }

    /// Creates a track; write groups with `create(Subgroup {..})`.
    pub fn track(&mut self, name: &str) -> Option<SubgroupsWriter> {
        self.tracks.create(name)?.subgroups().ok()
    }
}

/// What a test subscriber sees, per group in order; groups interleave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Object {
        group: u64,
        object: u64,
        payload: Bytes,
    },
    GroupEnd {
        group: u64,
    },
    /// The track ended: `Ok` clean, `Err` with the error text.
    End(Result<(), String>),
}

/// Subscribes and streams what arrives. Keep the returned [`Subscribe`]
/// alive: dropping it unsubscribes.
pub async fn subscribe(
    connection: &Connection,
    namespace: &str,
    name: &str,
) -> Result<(Subscribe, mpsc::UnboundedReceiver<Received>), ServeError> {
    let (writer, reader) =
        serve::Track::new(TrackNamespace::from_utf8_path(namespace), name).produce();
    let mut subscriber = connection.subscriber.clone();
    let subscription = subscriber.subscribe_open(writer).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mode = match reader.mode().await {
            Ok(mode) => mode,
            Err(e) => {
                let _ = tx.send(Received::End(Err(e.to_string())));
                return;
            }
        };
        let TrackReaderMode::Subgroups(mut groups) = mode else {
            let _ = tx.send(Received::End(Err("not a subgroups track".to_owned())));
            return;
        };
        let mut tasks = tokio::task::JoinSet::new();
        let end = loop {
            match groups.next().await {
                Ok(Some(mut group)) => {
                    let tx = tx.clone();
                    tasks.spawn(async move {
                        let id = group.group_id;
                        while let Ok(Some(mut object)) = group.next().await {
                            let object_id = object.object_id;
                            let Ok(payload) = object.read_all().await else {
                                break;
                            };
                            let _ = tx.send(Received::Object {
                                group: id,
                                object: object_id,
                                payload,
                            });
                        }
                        let _ = tx.send(Received::GroupEnd { group: id });
                    });
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            }
        };
        while tasks.join_next().await.is_some() {}
        let _ = tx.send(Received::End(end));
    });
    Ok((subscription, rx))
}
