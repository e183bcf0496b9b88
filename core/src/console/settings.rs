//! Tenant settings: what every class of the tenant starts with (copied into
//! the class at its start, so a change applies from the next class on).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::rate_limit::Kind;
use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::JsonBody;
use crate::identity::Auth;

const MAX_BLOCKED_WORDS: usize = 500;
const MAX_WORD_CHARS: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub(crate) struct TenantSettings {
    /// The tenant's display name.
    #[serde(default)]
    pub name: String,
    /// A class whose recorder cannot arm does not start.
    #[serde(default)]
    pub recording_required: bool,
    /// Staff may hand out public links to watch a class's program.
    #[serde(default)]
    pub public_viewing: bool,
    /// Chat and questions holding one of these words are refused.
    #[serde(default)]
    pub blocked_words: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsPatch {
    name: Option<String>,
    recording_required: Option<bool>,
    public_viewing: Option<bool>,
    /// Replaces the list (at most 500 words of at most 64 characters).
    blocked_words: Option<Vec<String>>,
}

async fn load(app: &AppState, auth: &Auth) -> ApiResult<(String, Value)> {
    let row: Option<(String, Value)> =
        sqlx::query_as("SELECT name, settings FROM tenants WHERE id = $1")
            .bind(auth.tenant_id.as_uuid())
            .fetch_optional(app.db())
            .await?;
    row.ok_or(ApiError::not_found("tenant"))
}

fn view(name: String, stored: &Value) -> TenantSettings {
    let mut s: TenantSettings = serde_json::from_value(stored.clone()).unwrap_or_default();
    s.name = name;
    s
}

/// The tenant's settings (admins).
#[utoipa::path(get, path = "/tenant/settings", operation_id = "get_tenant_settings", tag = "console",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings", body = TenantSettings),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
    ))]
pub(crate) async fn get(
    State(app): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<TenantSettings>> {
    auth.require_admin()?;
    let (name, stored) = load(&app, &auth).await?;
    Ok(Json(view(name, &stored)))
}

/// Changes some of the tenant's settings (admins); the rest stay.
#[utoipa::path(patch, path = "/tenant/settings", operation_id = "update_tenant_settings", tag = "console", request_body = SettingsPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings after the change", body = TenantSettings),
        (status = 400, description = "Invalid value", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes", body = ApiErrorBody),
    ))]
pub(crate) async fn update(
    State(app): State<AppState>,
    auth: Auth,
    body: JsonBody<SettingsPatch>,
) -> ApiResult<Json<TenantSettings>> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let p = body.value;
    let name = match p.name.as_deref().map(str::trim) {
        Some(n) if n.is_empty() || n.chars().count() > 200 => {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name is 1 to 200 characters",
            ));
        }
        other => other.map(str::to_owned),
    };
    let words = match p.blocked_words {
        Some(list) => {
            if list.len() > MAX_BLOCKED_WORDS {
                return Err(ApiError::bad_request(
                    "invalid_blocked_words",
                    format!("at most {MAX_BLOCKED_WORDS} blocked words"),
                ));
            }
            let mut out: Vec<String> = Vec::new();
            for w in list {
                let w = w.trim().to_lowercase();
                if w.is_empty()
                    || w.chars().count() > MAX_WORD_CHARS
                    || w.chars().any(char::is_control)
                {
                    return Err(ApiError::bad_request(
                        "invalid_blocked_words",
                        format!("a blocked word is 1 to {MAX_WORD_CHARS} printable characters"),
                    ));
                }
                if !out.contains(&w) {
                    out.push(w);
                }
            }
            Some(out)
        }
        None => None,
    };
    let mut tx = app.db().begin().await?;
    let (old_name, mut stored): (String, Value) =
        sqlx::query_as("SELECT name, settings FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(auth.tenant_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::not_found("tenant"))?;
    let before = view(old_name.clone(), &stored);
    if !stored.is_object() {
        stored = json!({});
    }
    if let Some(v) = p.recording_required {
        stored["recording_required"] = json!(v);
    }
    if let Some(v) = p.public_viewing {
        stored["public_viewing"] = json!(v);
    }
    if let Some(v) = &words {
        stored["blocked_words"] = json!(v);
    }
    let new_name = name.unwrap_or(old_name);
    sqlx::query("UPDATE tenants SET name = $2, settings = $3 WHERE id = $1")
        .bind(auth.tenant_id.as_uuid())
        .bind(&new_name)
        .bind(&stored)
        .execute(&mut *tx)
        .await?;
    let after = view(new_name, &stored);
    if after != before {
        crate::audit::record_tx(
            &mut tx,
            auth.tenant_id,
            Some(auth.user_id),
            "tenant.settings_changed",
            "tenant",
            &auth.tenant_id.as_uuid().to_string(),
            json!({ "from": before, "to": after }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}
