//! `Idempotency-Key` on creating POSTs: the first answer is stored and
//! returned again for the same key and body; the work runs once.
//!
//! A key is claimed by inserting its row before the work starts (the primary
//! key makes concurrent claims lose), so a retry that races the first call
//! gets a 409 instead of doing the work twice. A call that fails releases its
//! key: nothing was created, and the client may retry.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::identity::Auth;

pub(crate) async fn run<F, Fut>(
    app: &AppState,
    auth: &Auth,
    key: Option<String>,
    route: &str,
    body: &[u8],
    work: F,
) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<(StatusCode, Value)>>,
{
    let Some(key) = key else {
        let (status, value) = work().await?;
        return Ok((status, Json(value)).into_response());
    };
    let hash = Sha256::digest(body).to_vec();
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, user_id, key, route, request_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.user_id.as_uuid())
    .bind(&key)
    .bind(route)
    .bind(&hash)
    .execute(app.db())
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let (stored_route, stored_hash, status, response): (
            String,
            Vec<u8>,
            Option<i16>,
            Option<Value>,
        ) = sqlx::query_as(
            "SELECT route, request_hash, status_code, response FROM idempotency_keys
                 WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
        )
        .bind(auth.tenant_id.as_uuid())
        .bind(auth.user_id.as_uuid())
        .bind(&key)
        .fetch_one(app.db())
        .await?;
        if stored_route != route || stored_hash != hash {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        return match (status, response) {
            (Some(code), Some(value)) => {
                let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::OK);
                let mut resp = (status, Json(value)).into_response();
                resp.headers_mut().insert(
                    "idempotent-replay",
                    axum::http::HeaderValue::from_static("true"),
                );
                Ok(resp)
            }
            _ => Err(ApiError::conflict(
                "request_in_progress",
                "a request with this Idempotency-Key is still running",
            )),
        };
    }
    match work().await {
        Ok((status, value)) => {
            sqlx::query(
                "UPDATE idempotency_keys SET status_code = $4, response = $5
                 WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
            )
            .bind(auth.tenant_id.as_uuid())
            .bind(auth.user_id.as_uuid())
            .bind(&key)
            .bind(status.as_u16() as i16)
            .bind(&value)
            .execute(app.db())
            .await?;
            Ok((status, Json(value)).into_response())
        }
        Err(e) => {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
            )
            .bind(auth.tenant_id.as_uuid())
            .bind(auth.user_id.as_uuid())
            .bind(&key)
            .execute(app.db())
            .await?;
            Err(e)
        }
    }
}
