//! Verifies join tokens offline with core's JWKS. The JWKS is fetched from
//! core and cached on disk, so a restarted edge accepts joins while core is
//! unreachable. A token signed by a key this edge does not know yet (core
//! rotated its key) makes it fetch the JWKS again (single-flight, at most
//! once per `REFETCH_EVERY`; a token arriving sooner waits for the next).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use protocol::EdgeId;
use protocol::claims::{ISSUER, JoinClaims, TokenType, join_audience};
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("no token")]
    Missing,
    #[error("the join token has expired")]
    Expired,
    #[error("the join token is not valid here")]
    Invalid,
    #[error("this edge cannot verify tokens yet (core's keys unknown)")]
    NoKeys,
    /// Signed by a key this edge does not know (yet).
    #[error("the join token names a key this edge does not know")]
    UnknownKey,
}

/// At most one JWKS fetch per this long is triggered by unknown keys, so a
/// stream of forged `kid`s cannot make the edge hammer core.
const REFETCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Deserialize, Clone)]
struct Jwk {
    kid: String,
    x: String,
}

#[derive(Deserialize, Clone)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Clone)]
pub(crate) struct JoinTokens {
    edge: EdgeId,
    core_url: String,
    /// Trusts core's CA when core's certificate is private (`--core-ca`).
    http: reqwest::Client,
    cache: PathBuf,
    keys: Arc<RwLock<Vec<(String, DecodingKey)>>>,
    /// Tokens already verified, with their claims: a client sends the same
    /// token with every command, and an Ed25519 verification per request
    /// would be most of the edge's CPU under load. Expiry is still checked.
    verified: Arc<RwLock<HashMap<String, JoinClaims>>>,
    /// When an unknown key last made the edge fetch the JWKS (held while
    /// one fetch runs: fetches are single-flight).
    last_refetch: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

/// Verified tokens remembered at most (the cache is cleared when full).
const VERIFIED_CACHE: usize = 20_000;

impl JoinTokens {
    pub(crate) fn new(
        edge: EdgeId,
        core_url: String,
        http: reqwest::Client,
        cache: PathBuf,
    ) -> Self {
        let t = JoinTokens {
            edge,
            core_url,
            http,
            cache,
            keys: Arc::new(RwLock::new(Vec::new())),
            verified: Arc::new(RwLock::new(HashMap::new())),
            last_refetch: Arc::default(),
        };
        if let Ok(bytes) = std::fs::read(&t.cache)
            && let Ok(jwks) = serde_json::from_slice::<Jwks>(&bytes)
        {
            t.install(&jwks);
            tracing::info!("loaded cached JWKS");
        }
        t
    }

    fn install(&self, jwks: &Jwks) {
        let keys: Vec<(String, DecodingKey)> = jwks
            .keys
            .iter()
            .filter_map(|k| {
                DecodingKey::from_ed_components(&k.x)
                    .ok()
                    .map(|d| (k.kid.clone(), d))
            })
            .collect();
        if let Ok(mut w) = self.keys.write() {
            *w = keys;
        }
        // a key rotation invalidates what was verified with the old keys
        if let Ok(mut v) = self.verified.write() {
            v.clear();
        }
    }

    fn jwks_url(&self) -> String {
        format!(
            "{}/.well-known/jwks.json",
            self.core_url.trim_end_matches('/')
        )
    }

    /// One fetch of core's JWKS: installed and cached on success.
    async fn fetch(&self, within: Duration) -> bool {
        let Ok(r) = self.http.get(self.jwks_url()).timeout(within).send().await else {
            return false;
        };
        if !r.status().is_success() {
            return false;
        }
        let Ok(bytes) = r.bytes().await else {
            return false;
        };
        let Ok(jwks) = serde_json::from_slice::<Jwks>(&bytes) else {
            return false;
        };
        self.install(&jwks);
        if let Some(dir) = self.cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&self.cache, &bytes);
        true
    }

    /// Fetches core's JWKS, retrying until it succeeds or `stop` fires; then
    /// refreshes it every few minutes.
    pub(crate) async fn keep_fresh(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            let wait = if self.fetch(Duration::from_secs(5)).await {
                Duration::from_secs(300)
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// [`Self::verify`], fetching the JWKS again first when the token names
    /// a key this edge does not know. Fetches are single-flight and at most
    /// one per `REFETCH_EVERY`: a token that arrives sooner waits for the
    /// next one (so a real new key is never refused, and forged `kid`s
    /// cannot make the edge hammer core).
    pub(crate) async fn verify_fresh(&self, token: &str) -> Result<JoinClaims, TokenError> {
        match self.verify(token) {
            Err(TokenError::UnknownKey) => {
                let mut last = self.last_refetch.lock().await;
                // another request may have fetched while this one waited
                if let Ok(c) = self.verify(token) {
                    return Ok(c);
                }
                if let Some(t) = *last {
                    let since = t.elapsed();
                    if since < REFETCH_EVERY {
                        tokio::time::sleep(REFETCH_EVERY - since).await;
                    }
                }
                *last = Some(Instant::now());
                if self.fetch(Duration::from_secs(3)).await {
                    tracing::info!("a token named an unknown key: fetched core's JWKS again");
                }
                drop(last);
                self.verify(token)
            }
            other => other,
        }
    }

    pub(crate) fn has_keys(&self) -> bool {
        self.keys.read().map(|k| !k.is_empty()).unwrap_or(false)
    }

    pub(crate) fn verify(&self, token: &str) -> Result<JoinClaims, TokenError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(c) = self
            .verified
            .read()
            .ok()
            .and_then(|v| v.get(token).cloned())
        {
            return if c.exp + 5 < now {
                Err(TokenError::Expired)
            } else {
                Ok(c)
            };
        }
        let claims = self.verify_signature(token)?;
        if let Ok(mut v) = self.verified.write() {
            if v.len() >= VERIFIED_CACHE {
                v.clear();
            }
            v.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<JoinClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let keys = self.keys.read().map_err(|_| TokenError::NoKeys)?;
        if keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let kid = header.kid.as_ref().ok_or(TokenError::Invalid)?;
        let key = keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, d)| d)
            .ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[join_audience(&self.edge)]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        v.leeway = 5;
        let data =
            jsonwebtoken::decode::<JoinClaims>(token, key, &v).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != TokenType::Join || data.claims.edge != self.edge {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}
