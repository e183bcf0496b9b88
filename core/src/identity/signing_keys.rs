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

pub struct SigningKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    x: String,
}

impl SigningKeys {
    /// Loads the key from `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SigningKeys> {
        let key = if path.exists() {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading signing key {}", path.display()))?;
            SigningKey::from_pkcs8_pem(&pem).context("signing key is not an Ed25519 PKCS#8 PEM")?
        } else {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .context("encoding signing key")?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, pem.as_bytes())?;
            tracing::info!(path = %path.display(), "created a new signing key");
            key
        };
        Self::from_key(&key)
    }

    pub fn from_key(key: &SigningKey) -> anyhow::Result<SigningKeys> {
        let der = key.to_pkcs8_der().context("encoding signing key")?;
        let public = key.verifying_key().to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        Ok(SigningKeys {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&x).context("public key")?,
            kid,
            x,
        })
    }

    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
                "x": self.x,
            }]
        })
    }

    fn header(&self) -> Header {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(self.kid.clone());
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
        let token = jsonwebtoken::encode(&self.header(), &claims, &self.encoding)?;
        Ok((token, ACCESS_TTL_SECS))
    }

    pub fn sign_join(&self, claims: &JoinClaims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &self.header(),
            claims,
            &self.encoding,
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
            &self.encoding,
        )?)
    }

    /// Signs a capability for one asset (a deck page, a recording segment):
    /// a short EdDSA JWT whose audience is the asset's scope.
    pub fn sign_asset(&self, scope: &str, exp: i64) -> anyhow::Result<String> {
        let claims = serde_json::json!({ "iss": ISSUER, "aud": format!("asset:{scope}"), "exp": exp, "sub": scope });
        Ok(jsonwebtoken::encode(
            &self.header(),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify_asset(&self, token: &str, scope: &str) -> bool {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[format!("asset:{scope}")]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &v).is_ok()
    }

    /// Verifies an access token: signature (EdDSA only, so `alg: none` and
    /// HMAC forgeries fail), issuer, audience, expiry and token type.
    pub fn verify_access(&self, token: &str) -> Result<Auth, ApiError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[ACCESS_AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        v.leeway = 5;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &v).map_err(|e| {
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
            &EncodingKey::from_secret(k.x.as_bytes()),
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
}
