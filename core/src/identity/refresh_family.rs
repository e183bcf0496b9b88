//! Rotating refresh tokens. Each login starts a family; each refresh retires
//! the presented token and issues its successor. A retired token presented
//! again means it was copied: the whole family is revoked, so the thief and
//! the owner both have to log in again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use protocol::{Role, TenantId, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::http::error::ApiError;

pub const REFRESH_TTL_DAYS: i64 = 30;

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn fresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Issues a token in `family` and returns it; only its hash is stored.
pub async fn issue(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    user: UserId,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let token = fresh_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, token_hash, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(family)
    .bind(hash(&token))
    .bind(now)
    .bind(now + Duration::days(REFRESH_TTL_DAYS))
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

pub struct Rotated {
    pub user: UserId,
    pub tenant: TenantId,
    pub role: Role,
    pub refresh_token: String,
}

/// Exchanges a live refresh token for its successor.
pub async fn rotate(db: &PgPool, token: &str, now: DateTime<Utc>) -> Result<Rotated, ApiError> {
    let mut tx = db.begin().await?;
    // FOR UPDATE: two concurrent refreshes with one token cannot both win.
    let row: Option<(
        Uuid,
        Uuid,
        Uuid,
        Uuid,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    )> = sqlx::query_as(
        "SELECT id, tenant_id, user_id, family_id, expires_at, rotated_at, revoked_at
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, tenant, user, family, expires_at, rotated_at, revoked_at)) = row else {
        return Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "unknown refresh token",
        ));
    };
    if revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token was revoked",
        ));
    }
    if rotated_at.is_some() {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::audit::record_tx(
            &mut tx,
            tenant.into(),
            Some(user.into()),
            "auth.refresh_reuse_detected",
            "refresh_family",
            &family.to_string(),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(family = %family, "refresh token reuse: family revoked");
        return Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; every session of this login was signed out",
        ));
    }
    if expires_at <= now {
        return Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token has expired",
        ));
    }
    let role: Option<(String, bool)> = sqlx::query_as(
        "SELECT rb.role::text, u.disabled FROM users u
         JOIN role_bindings rb ON rb.tenant_id = u.tenant_id AND rb.user_id = u.id
         WHERE u.id = $1 AND u.tenant_id = $2",
    )
    .bind(user)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let role = match role {
        Some((r, false)) => r.parse::<Role>().map_err(|e| anyhow::anyhow!(e))?,
        Some((_, true)) | None => {
            return Err(ApiError::unauthorized(
                "account_disabled",
                "the account is disabled",
            ));
        }
    };
    sqlx::query("UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let next = issue(&mut tx, tenant.into(), user.into(), family, now).await?;
    tx.commit().await?;
    Ok(Rotated {
        user: user.into(),
        tenant: tenant.into(),
        role,
        refresh_token: next,
    })
}

/// Revokes the family of `token`. Unknown tokens are ignored: logout is
/// idempotent and says nothing about which tokens exist.
pub async fn revoke_family_of(
    db: &PgPool,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
           AND revoked_at IS NULL",
    )
    .bind(hash(token))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
