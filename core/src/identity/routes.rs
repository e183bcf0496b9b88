//! `POST /auth/login|refresh|logout`, `GET /.well-known/jwks.json`, `GET /me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use protocol::Role;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::identity::{Auth, passwords, refresh_family};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    /// Tenant slug; needed only when the email exists in several tenants.
    #[serde(default)]
    tenant: Option<String>,
}

pub async fn login(
    State(app): State<AppState>,
    body: JsonBody<LoginBody>,
) -> ApiResult<Json<Value>> {
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
    let ok = tokio::task::spawn_blocking(move || passwords::verify(&pw, &stored))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let Some((user, tenant_id, _, role, disabled, display_name, slug)) = row.filter(|_| ok) else {
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
    Ok(Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": ttl,
        "user": {
            "id": user, "tenant_id": tenant_id, "tenant": slug,
            "role": role, "email": email, "display_name": display_name
        }
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh(
    State(app): State<AppState>,
    body: JsonBody<RefreshBody>,
) -> ApiResult<Json<Value>> {
    let now = Utc::now();
    let r = refresh_family::rotate(app.db(), &body.value.refresh_token, now).await?;
    let (access, ttl) = app.keys().sign_access(r.user, r.tenant, r.role, now)?;
    Ok(Json(json!({
        "access_token": access,
        "refresh_token": r.refresh_token,
        "token_type": "Bearer",
        "expires_in": ttl,
    })))
}

pub async fn logout(
    State(app): State<AppState>,
    body: JsonBody<RefreshBody>,
) -> ApiResult<StatusCode> {
    refresh_family::revoke_family_of(app.db(), &body.value.refresh_token, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(app.keys().jwks()),
    )
}

pub async fn me(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT u.email, u.display_name, t.slug FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.id = $1 AND u.tenant_id = $2",
    )
    .bind(auth.user_id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(app.db())
    .await?;
    let (email, display_name, slug) = row.ok_or(ApiError::not_found("user"))?;
    Ok(Json(json!({
        "id": auth.user_id, "tenant_id": auth.tenant_id, "tenant": slug,
        "role": auth.role, "email": email, "display_name": display_name
    })))
}
