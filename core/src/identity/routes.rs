//! `POST /auth/login|refresh|logout`, `GET /.well-known/jwks.json`, `GET /me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use protocol::Role;
use protocol::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::throttle::ClientAddr;
use crate::identity::{Auth, passwords, refresh_family};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    /// Tenant slug; needed only when the email exists in several tenants.
    #[serde(default)]
    tenant: Option<String>,
}

/// The caller as `/me` and a login tell it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: UserId,
    pub tenant_id: TenantId,
    /// The tenant's slug.
    pub tenant: String,
    pub role: Role,
    pub email: String,
    pub display_name: String,
}

/// A fresh access token and its refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    /// Single use: a refresh returns its successor.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Login {
    pub access_token: String,
    /// Single use: a refresh returns its successor.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    pub user: Me,
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "auth_login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = Login),
        (status = 400, description = "Bad body, empty email or password, or the tenant is needed", body = ApiErrorBody),
        (status = 401, description = "Wrong email or password, or the account is disabled", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many failed sign-ins for the account (5, then one a minute) or from the address (100, then one a second); see `Retry-After`", body = ApiErrorBody),
        (status = 503, description = "Too many sign-ins at once (`sign_in_busy`): password checks are capped", body = ApiErrorBody),
    ))]
pub async fn login(
    State(app): State<AppState>,
    ClientAddr(from): ClientAddr,
    body: JsonBody<LoginBody>,
) -> ApiResult<Json<Login>> {
    let LoginBody {
        email,
        password,
        tenant,
    } = body.value;
    let email = email.trim().to_lowercase();
    if email.is_empty() || password.is_empty() || email.len() > 320 || password.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid_credentials_format",
            "email and password are required",
        ));
    }
    let throttles = app.throttles();
    throttles.login_admit(&email, from)?;
    let rows: Vec<(Uuid, Uuid, String, String, bool, String, String)> = sqlx::query_as(
        "SELECT u.id, u.tenant_id, u.password_hash, rb.role::text, u.disabled, u.display_name, t.slug
         FROM users u
         JOIN tenants t ON t.id = u.tenant_id
         JOIN role_bindings rb ON rb.tenant_id = u.tenant_id AND rb.user_id = u.id
         WHERE u.email = $1 AND ($2::text IS NULL OR t.slug = $2)",
    )
    .bind(&email)
    .bind(&tenant)
    .fetch_all(app.db())
    .await?;
    if rows.len() > 1 {
        return Err(ApiError::bad_request(
            "tenant_required",
            "this email exists in several tenants: add \"tenant\" (the tenant's slug)",
        ));
    }
    let row = rows.into_iter().next();
    let stored = row
        .as_ref()
        .map(|r| r.2.clone())
        .unwrap_or_else(|| passwords::decoy_hash().to_owned());
    let pw = password.clone();
    let slot = throttles.verify_slot().await?;
    let ok = tokio::task::spawn_blocking(move || passwords::verify(&pw, &stored))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    drop(slot);
    let Some((user, tenant_id, _, role, disabled, display_name, slug)) = row.filter(|_| ok) else {
        throttles.login_failed(&email, from);
        tracing::info!(client = ?from, "sign-in failed");
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "wrong email or password",
        ));
    };
    if disabled {
        return Err(ApiError::unauthorized(
            "account_disabled",
            "the account is disabled",
        ));
    }
    let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let (access, ttl) = app
        .keys()
        .sign_access(user.into(), tenant_id.into(), role, now)?;
    let mut tx = app.db().begin().await?;
    let refresh =
        refresh_family::issue(&mut tx, tenant_id.into(), user.into(), Uuid::now_v7(), now).await?;
    crate::audit::record_tx(
        &mut tx,
        tenant_id.into(),
        Some(user.into()),
        "auth.login",
        "user",
        &user.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Login {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
        user: Me {
            id: user.into(),
            tenant_id: tenant_id.into(),
            tenant: slug,
            role,
            email,
            display_name,
        },
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// Exchanges a refresh token for a new access token and its successor.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "auth_refresh",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New tokens; the presented one is used up", body = Tokens),
        (status = 400, description = "Bad body", body = ApiErrorBody),
        (status = 401, description = "Unknown, revoked, expired or reused token, or the account is disabled", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub async fn refresh(
    State(app): State<AppState>,
    body: JsonBody<RefreshBody>,
) -> ApiResult<Json<Tokens>> {
    let now = Utc::now();
    let r = refresh_family::rotate(app.db(), &body.value.refresh_token, now).await?;
    let (access, ttl) = app.keys().sign_access(r.user, r.tenant, r.role, now)?;
    Ok(Json(Tokens {
        access_token: access,
        refresh_token: r.refresh_token,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
    }))
}

/// Revokes the refresh token's whole family (every token of that login).
/// An unknown token is ignored.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "auth_logout",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "Bad body", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
    ))]
pub async fn logout(
    State(app): State<AppState>,
    body: JsonBody<RefreshBody>,
) -> ApiResult<StatusCode> {
    refresh_family::revoke_family_of(app.db(), &body.value.refresh_token, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A public key of the JWKS (Ed25519).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    /// The public key, base64url.
    pub x: String,
}

/// The keys tokens are signed with (for the document; the handler passes
/// on what the key ring makes).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The public keys access and join tokens are signed with.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "system", operation_id = "jwks",
    responses(
        (status = 200, description = "The signing keys", body = Jwks,
            headers(("Cache-Control" = String, description = "public, max-age=300"))),
    ))]
pub async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(app.keys().jwks()),
    )
}

/// The caller.
#[utoipa::path(get, path = "/me", tag = "auth", operation_id = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 404, description = "The token's user no longer exists", body = ApiErrorBody),
    ))]
pub async fn me(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Me>> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT u.email, u.display_name, t.slug FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.id = $1 AND u.tenant_id = $2",
    )
    .bind(auth.user_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (email, display_name, slug) = row.ok_or(ApiError::not_found("user"))?;
    Ok(Json(Me {
        id: auth.user_id,
        tenant_id: auth.tenant_id,
        tenant: slug,
        role: auth.role,
        email,
        display_name,
    }))
}
