//! Core's Ed25519 signing key, the tokens it signs and the JWKS that lets
//! anyone (edges above all) verify them offline.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use protocol::claims::{
    ACCESS_AUDIENCE, ACCESS_TTL_SECS, AccessClaims, ISSUER, JoinClaims, TokenType,
};
use protocol::{Role, TenantId, UserId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::identity::Auth;
use crate::privacy::kms::{self, Kms};

/// One Ed25519 key: what signs (or only verifies) and what the JWKS shows.
struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// RFC 7638 thumbprint of the public key.
    kid: String,
    x: String,
}

impl Key {
    fn of(key: &SigningKey) -> anyhow::Result<Key> {
        let der = key.to_pkcs8_der().context("encoding signing key")?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        Ok(Key {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&x).context("public key")?,
            kid: thumbprint(&x),
            x,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": self.x,
        })
    }
}

/// The RFC 7638 JWK thumbprint of an Ed25519 public key: SHA-256 over the
/// required members in lexicographic order, no whitespace, base64url.
pub fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Core's keys: the current one signs; the one before a rotation still
/// verifies (and stays in the JWKS) until the next rotation, so tokens
/// signed before it keep working while they live.
pub struct SigningKeys {
    current: Key,
    previous: Option<Key>,
}

/// Where the key a rotation retired is kept, beside the current one.
fn previous_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("previous.pem")
}

/// What a sealed signing key file says it holds.
const PURPOSE: &str = "signing-key";

/// Reads a key file: sealed under the KEK, or a plain PEM from before keys
/// were sealed, which is sealed in place on the way.
fn read_key(path: &Path, kms: &dyn Kms) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading signing key {}", path.display()))?;
    let pem = match kms::open_secret(kms, PURPOSE, &text)
        .with_context(|| format!("opening signing key {}", path.display()))?
    {
        Some(bytes) => String::from_utf8(bytes).context("a sealed signing key is not a PEM")?,
        None => {
            let sealed = kms::seal_secret(kms, PURPOSE, text.as_bytes())?;
            let tmp = path.with_extension("sealing.pem");
            let _ = std::fs::remove_file(&tmp);
            write_private(&tmp, sealed.as_bytes())?;
            std::fs::rename(&tmp, path)?;
            tracing::info!(path = %path.display(), "sealed a plain signing key under the KEK");
            text
        }
    };
    SigningKey::from_pkcs8_pem(&pem).context("signing key is not an Ed25519 PKCS#8 PEM")
}

fn create_key(path: &Path, kms: &dyn Kms) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding signing key")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(
        path,
        kms::seal_secret(kms, PURPOSE, pem.as_bytes())?.as_bytes(),
    )?;
    Ok(key)
}

impl SigningKeys {
    /// Loads the key from `path` (and the one a rotation retired, if any),
    /// creating it (mode 0600, sealed under the KEK) on first start.
    pub(crate) fn load_or_create(path: &Path, kms: &dyn Kms) -> anyhow::Result<SigningKeys> {
        let key = if path.exists() {
            read_key(path, kms)?
        } else {
            let key = create_key(path, kms)?;
            tracing::info!(path = %path.display(), "created a new signing key");
            key
        };
        let previous = previous_path(path);
        let previous = if previous.exists() {
            Some(Key::of(&read_key(&previous, kms)?)?)
        } else {
            None
        };
        Ok(SigningKeys {
            current: Key::of(&key)?,
            previous,
        })
    }

    /// `core rotate-keys`: the current key becomes the previous one (the
    /// one before it is dropped) and a new key signs from now on. Cores
    /// pick the new key up when they start; edges and relays fetch the JWKS
    /// again when they meet its `kid`. Returns (new kid, retired kid).
    pub(crate) fn rotate(path: &Path, kms: &dyn Kms) -> anyhow::Result<(String, Option<String>)> {
        let retired = if path.exists() {
            let old = read_key(path, kms)?;
            let previous = previous_path(path);
            let tmp = path.with_extension("rotating.pem");
            std::fs::copy(path, &tmp).with_context(|| format!("copying {}", path.display()))?;
            std::fs::rename(&tmp, &previous)
                .with_context(|| format!("keeping {}", previous.display()))?;
            std::fs::remove_file(path)?;
            Some(Key::of(&old)?.kid)
        } else {
            None
        };
        let key = create_key(path, kms)?;
        Ok((Key::of(&key)?.kid, retired))
    }

    pub fn from_key(key: &SigningKey) -> anyhow::Result<SigningKeys> {
        Ok(SigningKeys {
            current: Key::of(key)?,
            previous: None,
        })
    }

    /// The key that signs now.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The keys that verify: the current one first.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(Key::jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// The key a token names (`kid`), among those that verify; a token
    /// without one is checked against the current key.
    fn verifying(&self, token: &str) -> Option<&DecodingKey> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid;
        match kid {
            None => Some(&self.current.decoding),
            Some(k) if k == self.current.kid => Some(&self.current.decoding),
            Some(k) => self
                .previous
                .as_ref()
                .filter(|p| p.kid == k)
                .map(|p| &p.decoding),
        }
    }

    fn header(&self) -> Header {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(self.current.kid.clone());
        h
    }

    pub fn sign_access(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(String, i64)> {
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            sub: user,
            tid: tenant,
            role,
            iat: now.timestamp(),
            exp: now.timestamp() + ACCESS_TTL_SECS,
            jti: uuid::Uuid::now_v7().to_string(),
            typ: TokenType::Access,
        };
        let token = jsonwebtoken::encode(&self.header(), &claims, &self.current.encoding)?;
        Ok((token, ACCESS_TTL_SECS))
    }

    pub fn sign_join(&self, claims: &JoinClaims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &self.header(),
            claims,
            &self.current.encoding,
        )?)
    }

    /// Signs a relay token for an edge: lets it publish and subscribe in the
    /// media mesh until `exp`.
    pub fn sign_relay(
        &self,
        edge: &str,
        exp: i64,
        grants: &protocol::claims::RelayGrants,
    ) -> anyhow::Result<String> {
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": protocol::claims::RELAY_AUDIENCE, "sub": edge, "exp": exp,
            "publish": grants.publish, "subscribe": grants.subscribe,
        });
        Ok(jsonwebtoken::encode(
            &self.header(),
            &claims,
            &self.current.encoding,
        )?)
    }

    /// Signs a capability for one asset (a deck page, a recording segment):
    /// a short EdDSA JWT whose audience is the asset's scope.
    pub fn sign_asset(&self, scope: &str, exp: i64) -> anyhow::Result<String> {
        let claims = serde_json::json!({ "iss": ISSUER, "aud": format!("asset:{scope}"), "exp": exp, "sub": scope });
        Ok(jsonwebtoken::encode(
            &self.header(),
            &claims,
            &self.current.encoding,
        )?)
    }

    pub fn verify_asset(&self, token: &str, scope: &str) -> bool {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[format!("asset:{scope}")]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        self.verifying(token)
            .is_some_and(|key| jsonwebtoken::decode::<serde_json::Value>(token, key, &v).is_ok())
    }

    /// Verifies an access token: signature (EdDSA only, so `alg: none` and
    /// HMAC forgeries fail), issuer, audience, expiry and token type.
    pub fn verify_access(&self, token: &str) -> Result<Auth, ApiError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[ACCESS_AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        v.leeway = 5;
        let key = self.verifying(token).ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "the access token is not valid")
        })?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "token_expired",
                    "the access token has expired; refresh it",
                ),
                _ => ApiError::unauthorized("invalid_token", "the access token is not valid"),
            }
        })?;
        let c = data.claims;
        if c.typ != TokenType::Access {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "not an access token",
            ));
        }
        Ok(Auth {
            user_id: c.sub,
            tenant_id: c.tid,
            role: c.role,
        })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SigningKeys {
        SigningKeys::from_key(&SigningKey::from_bytes(&[7u8; 32])).unwrap()
    }

    fn ids() -> (UserId, TenantId) {
        (uuid::Uuid::now_v7().into(), uuid::Uuid::now_v7().into())
    }

    #[test]
    fn access_tokens_roundtrip() {
        let k = keys();
        let (u, t) = ids();
        let (tok, ttl) = k.sign_access(u, t, Role::Teacher, Utc::now()).unwrap();
        assert_eq!(ttl, ACCESS_TTL_SECS);
        let auth = k.verify_access(&tok).unwrap();
        assert_eq!(
            (auth.user_id, auth.tenant_id, auth.role),
            (u, t, Role::Teacher)
        );
    }

    #[test]
    fn expired_forged_and_foreign_tokens_fail() {
        let k = keys();
        let (u, t) = ids();
        let old = Utc::now() - chrono::Duration::hours(2);
        let (expired, _) = k.sign_access(u, t, Role::Admin, old).unwrap();
        let err = k.verify_access(&expired).unwrap_err();
        assert!(matches!(
            err,
            ApiError::Unauthorized {
                code: "token_expired",
                ..
            }
        ));

        // another key's signature
        let other = SigningKeys::from_key(&SigningKey::from_bytes(&[9u8; 32])).unwrap();
        let (foreign, _) = other.sign_access(u, t, Role::Admin, Utc::now()).unwrap();
        assert!(k.verify_access(&foreign).is_err());

        // alg none: header and claims of a valid token, no signature
        let (good, _) = k.sign_access(u, t, Role::Admin, Utc::now()).unwrap();
        let claims_part = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            k.verify_access(&format!("{none_header}.{claims_part}."))
                .is_err()
        );

        // HS256 signed with the public key as the secret (key confusion)
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(claims_part).unwrap())
                .unwrap(),
            &EncodingKey::from_secret(k.current.x.as_bytes()),
        )
        .unwrap();
        assert!(k.verify_access(&hs).is_err());

        // a tampered payload (role upgraded)
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_part).unwrap()).unwrap();
        claims["role"] = json!("admin");
        let tampered = format!(
            "{}.{}.{}",
            good.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            good.split('.').nth(2).unwrap()
        );
        assert!(k.verify_access(&tampered).is_err());
        assert!(k.verify_access("garbage").is_err());
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the Ed25519 example key's thumbprint
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let k = keys();
        assert_eq!(k.kid(), thumbprint(&k.current.x));
    }

    #[test]
    fn a_rotation_keeps_the_previous_key_verifying_until_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        let kek = crate::privacy::kms::LocalKms::from_bytes(&[9u8; 32]).unwrap();
        let first = SigningKeys::load_or_create(&path, &kek).unwrap();
        let at_rest = std::fs::read_to_string(&path).unwrap();
        assert!(
            !at_rest.contains("PRIVATE KEY"),
            "the key is stored plain: {at_rest}"
        );
        let (u, t) = ids();
        let (old_token, _) = first.sign_access(u, t, Role::Student, Utc::now()).unwrap();
        let old_asset = first
            .sign_asset("deck:1", Utc::now().timestamp() + 60)
            .unwrap();

        let (new_kid, retired) = SigningKeys::rotate(&path, &kek).unwrap();
        assert_eq!(retired.as_deref(), Some(first.kid()));
        let second = SigningKeys::load_or_create(&path, &kek).unwrap();
        assert_eq!(second.kid(), new_kid);
        assert_ne!(second.kid(), first.kid());
        // the JWKS carries both, the new one first
        let kids: Vec<String> = second.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, vec![second.kid().to_owned(), first.kid().to_owned()]);
        // tokens signed before the rotation still verify; new ones too
        assert!(second.verify_access(&old_token).is_ok());
        assert!(second.verify_asset(&old_asset, "deck:1"));
        let (new_token, _) = second.sign_access(u, t, Role::Student, Utc::now()).unwrap();
        assert!(second.verify_access(&new_token).is_ok());
        assert_eq!(
            jsonwebtoken::decode_header(&new_token)
                .unwrap()
                .kid
                .as_deref(),
            Some(second.kid())
        );

        // the next rotation drops the first key
        SigningKeys::rotate(&path, &kek).unwrap();
        let third = SigningKeys::load_or_create(&path, &kek).unwrap();
        assert_eq!(third.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(third.verify_access(&old_token).is_err());
        assert!(!third.verify_asset(&old_asset, "deck:1"));
        assert!(third.verify_access(&new_token).is_ok());
        // under another KEK the files do not open
        let other = crate::privacy::kms::LocalKms::from_bytes(&[10u8; 32]).unwrap();
        assert!(SigningKeys::load_or_create(&path, &other).is_err());
    }

    #[test]
    fn a_plain_key_from_before_is_sealed_in_place_and_keeps_its_kid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let kek = crate::privacy::kms::LocalKms::from_bytes(&[9u8; 32]).unwrap();
        let loaded = SigningKeys::load_or_create(&path, &kek).unwrap();
        assert_eq!(loaded.kid(), SigningKeys::from_key(&key).unwrap().kid());
        let at_rest = std::fs::read_to_string(&path).unwrap();
        assert!(
            at_rest.starts_with("-----BEGIN CLASSROOM SEALED SECRET-----"),
            "{at_rest}"
        );
        let again = SigningKeys::load_or_create(&path, &kek).unwrap();
        assert_eq!(again.kid(), loaded.kid());
    }
}
