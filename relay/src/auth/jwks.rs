//! Core's JWKS, fetched over HTTP and cached in memory. A token naming an
//! unknown key triggers a refetch (rate limited), so a key rotation at core
//! is picked up without restarting relays.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::token::{AuthError, KeySet, RelayClaims, key_id, verify};

/// Periodic refresh while the relay runs.
const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Retry delay while core is unreachable at start.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// At most one refetch per this long triggered by unknown keys, so a peer
/// spraying made-up key ids cannot make the relay hammer core.
const MIN_REFETCH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS from core: {0}")]
    Fetch(#[from] reqwest::Error),
    #[error("core answered the JWKS request with HTTP {0}")]
    Status(u16),
    #[error("core's JWKS is not valid JSON: {0}")]
    Parse(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    crv: String,
    x: String,
}

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    /// `roots`: extra CAs core's HTTPS certificate may chain to.
    pub fn new(core_url: &str, roots: Vec<reqwest::Certificate>) -> Result<Jwks, JwksError> {
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(5));
        for ca in roots {
            client = client.add_root_certificate(ca);
        }
        let client = client.build()?;
        Ok(Jwks {
            url: format!("{}/.well-known/jwks.json", core_url.trim_end_matches('/')),
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: Mutex::new(None),
        })
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fetches the JWKS now and installs its Ed25519 keys.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        if let Ok(mut last) = self.last_fetch.lock() {
            *last = Some(Instant::now());
        }
        let response = self.client.get(&self.url).send().await?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let set: JwkSet = serde_json::from_slice(&response.bytes().await?)?;
        let keys: Vec<(String, DecodingKey)> = set
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| {
                DecodingKey::from_ed_components(&k.x)
                    .ok()
                    .map(|d| (k.kid, d))
            })
            .collect();
        let count = keys.len();
        let set = Arc::new(KeySet::new(keys));
        match self.keys.write() {
            Ok(mut k) => *k = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(count)
    }

    /// Fetches at start (retrying until core answers), then every few minutes.
    pub async fn keep_fresh(self: Arc<Self>, stop: CancellationToken) {
        let mut ok = false;
        loop {
            match self.refresh().await {
                Ok(count) => {
                    if !ok {
                        tracing::info!(keys = count, "relay token keys loaded from core");
                    }
                    ok = true;
                }
                Err(error) => {
                    if ok {
                        tracing::warn!(%error, "refreshing core's JWKS failed; keeping the cached keys");
                    } else {
                        tracing::debug!(%error, "core's JWKS not reachable yet");
                    }
                }
            }
            let wait = if ok { REFRESH_EVERY } else { RETRY_EVERY };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Verifies a token, refetching the JWKS once when it names a key we do
    /// not have (core rotated its key, or we never reached core).
    pub async fn verify(&self, token: &str, now: i64) -> Result<RelayClaims, AuthError> {
        let keys = self.keys();
        match verify(token, &keys, now) {
            Err(AuthError::UnknownKey | AuthError::NoKeys) if self.may_refetch() => {
                // Only refetch for a token that at least names a key.
                if (key_id(token).is_some() || keys.is_empty())
                    && let Err(error) = self.refresh().await
                {
                    tracing::warn!(%error, "refetching core's JWKS failed");
                }
                verify(token, &self.keys(), now)
            }
            other => other,
        }
    }

    fn may_refetch(&self) -> bool {
        self.last_fetch
            .lock()
            .map(|last| last.is_none_or(|at| at.elapsed() >= MIN_REFETCH))
            .unwrap_or(false)
    }
}
