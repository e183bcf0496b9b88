//! Relay token verification: pure, with the keys and `now` passed in.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// The audience core puts in tokens meant for relays.
pub const RELAY_AUDIENCE: &str = protocol::claims::RELAY_AUDIENCE;

/// The AUTHORIZATION TOKEN type our JWT travels under in SETUP (one copy
/// with the mesh's clients).
pub use mesh_client::codes::SETUP_TOKEN_TYPE;

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: i64 = 5;

/// What a relay token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayClaims {
    pub iss: String,
    pub aud: String,
    /// The edge (or relay) id the token was issued to.
    pub sub: String,
    pub exp: i64,
    /// The namespaces it may publish and subscribe to (none when absent).
    #[serde(flatten)]
    pub grants: protocol::claims::RelayGrants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token presented")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid for this relay")]
    Invalid,
    #[error("the token names a key the relay does not know")]
    UnknownKey,
    #[error("the relay has no verification keys yet (core's JWKS unreachable)")]
    NoKeys,
}

/// Verification keys by key id, from core's JWKS.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, DecodingKey)>,
}

impl KeySet {
    pub fn new(keys: Vec<(String, DecodingKey)>) -> KeySet {
        KeySet { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, d)| d)
    }

    pub fn has(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }
}

/// The key id a token names, if it parses at all.
pub(crate) fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Verifies signature (EdDSA only: `alg: none` and HMAC forgeries fail),
/// issuer, audience and expiry against `now` (unix seconds).
pub fn verify(token: &str, keys: &KeySet, now: i64) -> Result<RelayClaims, AuthError> {
    if keys.is_empty() {
        return Err(AuthError::NoKeys);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
    if header.alg != Algorithm::EdDSA {
        return Err(AuthError::Invalid);
    }
    let kid = header.kid.ok_or(AuthError::Invalid)?;
    let key = keys.get(&kid).ok_or(AuthError::UnknownKey)?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[RELAY_AUDIENCE]);
    v.set_issuer(&[protocol::claims::ISSUER]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    // Expiry is checked below against the caller's `now`, not the library's
    // clock, so the check is testable and the relay has one notion of time.
    v.validate_exp = false;
    let data =
        jsonwebtoken::decode::<RelayClaims>(token, key, &v).map_err(|_| AuthError::Invalid)?;
    if data.claims.exp + LEEWAY_SECS < now {
        return Err(AuthError::Expired);
    }
    if data.claims.sub.is_empty() {
        return Err(AuthError::Invalid);
    }
    Ok(data.claims)
}

/// A token carried in the connection path's query (`moqt://relay:4443/?token=…`),
/// for clients that cannot set SETUP options. moq-transport keeps the query
/// in the raw-QUIC PATH it hands us, unnormalised.
pub fn token_from_path(path: &str) -> Option<String> {
    let (_, query) = path.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header};

    fn keypair(seed: u8) -> (EncodingKey, KeySet) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let der = key.to_pkcs8_der().expect("der");
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let dec = DecodingKey::from_ed_components(&x).expect("public key");
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            KeySet::new(vec![(format!("k{seed}"), dec)]),
        )
    }

    fn sign(enc: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, &claims, enc).expect("sign")
    }

    fn check(token: impl Fn(&EncodingKey) -> String, expect: Result<&str, AuthError>) {
        let (enc, keys) = keypair(1);
        let got = verify(&token(&enc), &keys, 1_000).map(|c| c.sub);
        assert_eq!(got.as_deref().map_err(|e| *e), expect);
    }

    fn claims(iss: &str, aud: &str, exp: i64) -> serde_json::Value {
        serde_json::json!({ "iss": iss, "aud": aud, "sub": "edge-a", "exp": exp })
    }

    #[test]
    fn verification_cases() {
        check(
            |k| sign(k, "k1", claims("classroom-core", "relay", 2_000)),
            Ok("edge-a"),
        );
        // inside the leeway
        check(
            |k| sign(k, "k1", claims("classroom-core", "relay", 996)),
            Ok("edge-a"),
        );
        check(
            |k| sign(k, "k1", claims("classroom-core", "relay", 900)),
            Err(AuthError::Expired),
        );
        check(
            |k| sign(k, "k1", claims("someone", "relay", 2_000)),
            Err(AuthError::Invalid),
        );
        check(
            |k| sign(k, "k1", claims("classroom-core", "classroom-api", 2_000)),
            Err(AuthError::Invalid),
        );
        check(
            |k| sign(k, "k9", claims("classroom-core", "relay", 2_000)),
            Err(AuthError::UnknownKey),
        );
        check(|_| "not a jwt".to_owned(), Err(AuthError::Invalid));
        // signed by another key under the known kid: a forgery
        check(
            |_| {
                sign(
                    &keypair(2).0,
                    "k1",
                    claims("classroom-core", "relay", 2_000),
                )
            },
            Err(AuthError::Invalid),
        );
        // alg none
        check(
            |_| {
                let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
                let c =
                    URL_SAFE_NO_PAD.encode(claims("classroom-core", "relay", 2_000).to_string());
                format!("{h}.{c}.")
            },
            Err(AuthError::Invalid),
        );
        assert_eq!(
            verify("x.y.z", &KeySet::default(), 0).map(|c| c.sub),
            Err(AuthError::NoKeys)
        );
    }

    #[test]
    fn token_in_the_path_query() {
        assert_eq!(token_from_path("/?token=a.b.c").as_deref(), Some("a.b.c"));
        assert_eq!(token_from_path("/scope?x=1&token=t").as_deref(), Some("t"));
        assert_eq!(token_from_path("/scope"), None);
        assert_eq!(token_from_path("/?tok=t"), None);
    }
}
