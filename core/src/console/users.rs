//! Users of a tenant: the directory (admins and teachers read it, teachers to
//! enroll students), and the admin's changes: create, change role or name,
//! disable (which revokes every refresh token of the user at once), and
//! import from CSV.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use protocol::{Role, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::page_limit;
use super::rate_limit::Kind;
use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{IdempotencyKey, JsonBody, PathIds, QueryParams};
use crate::idempotency;
use crate::identity::{Auth, passwords};

/// A stored hash no password matches: the account of an imported user has
/// no password until an admin sets one.
const NO_PASSWORD: &str = "!no-password";
/// The biggest CSV import, in bytes and in data lines.
pub(crate) const MAX_IMPORT_BYTES: usize = 1024 * 1024;
const MAX_IMPORT_LINES: usize = 10_000;

/// A user as the console shows it; never the password.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct User {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    /// admin, teacher, assistant or student
    pub role: String,
    pub disabled: bool,
    /// A minor: parental-consent rules limit processing (no public viewing
    /// of their courses' classes; analytics no further than attendance).
    pub minor: bool,
    pub created_at: DateTime<Utc>,
}

const SELECT_USER: &str =
    "SELECT u.id, u.email, u.display_name, rb.role::text AS role, u.disabled, u.minor, u.created_at
     FROM users u JOIN role_bindings rb ON rb.tenant_id = u.tenant_id AND rb.user_id = u.id";

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserList {
    pub users: Vec<User>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// Part of the email or the display name.
    q: Option<String>,
    /// admin, teacher, assistant or student
    role: Option<String>,
    disabled: Option<bool>,
    /// 1 to 500; 100 when absent.
    limit: Option<i64>,
    /// The email after which the page starts (from `next_after`).
    after: Option<String>,
}

fn tenant_role(s: &str) -> ApiResult<Role> {
    match s.parse::<Role>() {
        Ok(r) if r != Role::Public => Ok(r),
        _ => Err(ApiError::bad_request(
            "invalid_role",
            "role is admin, teacher, assistant or student",
        )),
    }
}

/// The tenant's users, by email (admins and teachers).
#[utoipa::path(get, path = "/users", operation_id = "list_users", tag = "console", params(UserQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserList),
        (status = 400, description = "Bad query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin or teacher", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<UserQuery>,
) -> ApiResult<Json<UserList>> {
    auth.require_staff()?;
    let limit = page_limit(q.limit, 100, 500)?;
    let role = q.role.as_deref().map(tenant_role).transpose()?;
    if q.q.as_deref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q is at most 200 characters",
        ));
    }
    let pattern = q.q.as_deref().map(|s| {
        format!(
            "%{}%",
            s.trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let users: Vec<User> = sqlx::query_as(&format!(
        "{SELECT_USER}
         WHERE u.tenant_id = $1 AND u.erased_at IS NULL
           AND ($2::text IS NULL OR u.email LIKE $2 OR lower(u.display_name) LIKE $2)
           AND ($3::text IS NULL OR rb.role::text = $3)
           AND ($4::bool IS NULL OR u.disabled = $4)
           AND ($5::text IS NULL OR u.email > $5)
         ORDER BY u.email LIMIT $6"
    ))
    .bind(auth.tenant_id.as_uuid())
    .bind(pattern)
    .bind(role.map(Role::as_str))
    .bind(q.disabled)
    .bind(q.after)
    .bind(limit + 1)
    .fetch_all(app.db())
    .await?;
    Ok(Json(page(users, limit)))
}

fn page(mut users: Vec<User>, limit: i64) -> UserList {
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    let next_after = if more {
        users.last().map(|u| u.email.clone())
    } else {
        None
    };
    UserList { users, next_after }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    email: String,
    display_name: String,
    /// admin, teacher, assistant or student
    role: String,
    /// At least 8 characters.
    password: String,
}

fn email(raw: &str) -> ApiResult<String> {
    let e = raw.trim().to_lowercase();
    let at = e.find('@');
    let ok = e.len() <= 320
        && at.is_some_and(|i| i > 0 && i + 1 < e.len())
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if ok {
        Ok(e)
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "that is not an email address",
        ))
    }
}

fn display_name(raw: &str) -> ApiResult<String> {
    let n = raw.trim();
    let len = n.chars().count();
    if len == 0 || len > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_display_name",
            "display_name must be 1 to 100 printable characters",
        ));
    }
    Ok(n.to_owned())
}

fn password(raw: &str) -> ApiResult<String> {
    let n = raw.chars().count();
    if n < passwords::MIN_PASSWORD_CHARS || raw.len() > 1024 {
        return Err(ApiError::bad_request(
            "weak_password",
            format!(
                "a password is {} to 1024 characters",
                passwords::MIN_PASSWORD_CHARS
            ),
        ));
    }
    Ok(raw.to_owned())
}

async fn hash(pw: String) -> ApiResult<String> {
    Ok(tokio::task::spawn_blocking(move || passwords::hash(&pw))
        .await
        .map_err(|e| anyhow::anyhow!(e))??)
}

/// Inserts a user and their role. `Ok(None)`: the email is taken.
async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    auth: &Auth,
    email: &str,
    name: &str,
    role: Role,
    hash: &str,
) -> ApiResult<Option<User>> {
    let id = Uuid::now_v7();
    let created: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "INSERT INTO users (id, tenant_id, email, display_name, password_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, email) DO NOTHING RETURNING created_at",
    )
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .bind(email)
    .bind(name)
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((created_at,)) = created else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO role_bindings (tenant_id, user_id, role) VALUES ($1, $2, $3::tenant_role)",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(id)
    .bind(role.as_str())
    .execute(&mut **tx)
    .await?;
    crate::audit::record_tx(
        tx,
        auth.tenant_id,
        Some(auth.user_id),
        "user.created",
        "user",
        &id.to_string(),
        // ids, not personal values: the audit chain outlives an erasure
        json!({ "role": role }),
    )
    .await?;
    Ok(Some(User {
        id,
        email: email.to_owned(),
        display_name: name.to_owned(),
        role: role.as_str().to_owned(),
        disabled: false,
        minor: false,
        created_at,
    }))
}

/// Adds a user to the tenant (admins).
#[utoipa::path(post, path = "/users", operation_id = "create_user", tag = "console", request_body = NewUser,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body")),
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "Invalid email, name, role or password", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 409, description = "The email is taken, or the key was used with another body", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes", body = ApiErrorBody),
    ))]
pub(crate) async fn create(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<NewUser>,
) -> ApiResult<Response> {
    auth.require_admin()?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = &body.value;
    let (email, name, role, pw) = (
        email(&b.email)?,
        display_name(&b.display_name)?,
        tenant_role(&b.role)?,
        password(&b.password)?,
    );
    idempotency::run(&app, &auth, key, "POST /users", &body.raw, || async {
        let hash = hash(pw).await?;
        let mut tx = app.db().begin().await?;
        let Some(user) = insert(&mut tx, &auth, &email, &name, role, &hash).await? else {
            return Err(ApiError::conflict(
                "email_taken",
                "a user with this email exists",
            ));
        };
        tx.commit().await?;
        Ok((
            StatusCode::CREATED,
            serde_json::to_value(user).map_err(anyhow::Error::new)?,
        ))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    display_name: Option<String>,
    /// admin, teacher, assistant or student
    role: Option<String>,
    /// Disabling refuses the user's logins and refreshes at once.
    disabled: Option<bool>,
    /// A new password (at least 8 characters).
    password: Option<String>,
    /// Mark or unmark a minor (parental-consent rules).
    minor: Option<bool>,
}

/// Changes a user's name, role, password, disabled or minor flag (admins).
#[utoipa::path(patch, path = "/users/{id}", operation_id = "update_user", tag = "console", request_body = UserPatch,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The user")),
    responses(
        (status = 200, description = "The user after the change", body = User),
        (status = 400, description = "Invalid field", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such user in the tenant", body = ApiErrorBody),
        (status = 409, description = "An admin cannot disable or demote themselves", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many changes", body = ApiErrorBody),
    ))]
pub(crate) async fn update(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody<UserPatch>,
) -> ApiResult<Json<User>> {
    auth.require_admin()?;
    let id: UserId = ids.get(0)?;
    app.console_limits().take(auth.user_id, Kind::Write)?;
    let b = body.value;
    let name = b.display_name.as_deref().map(display_name).transpose()?;
    let role = b.role.as_deref().map(tenant_role).transpose()?;
    let pw = match b.password.as_deref().map(password).transpose()? {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    if id == auth.user_id && (b.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin)) {
        // the console would lock its last pair of hands out
        return Err(ApiError::conflict(
            "own_access",
            "you cannot disable yourself or give up your own admin role",
        ));
    }
    let mut tx = app.db().begin().await?;
    let before: Option<User> = sqlx::query_as(&format!(
        "{SELECT_USER} WHERE u.id = $1 AND u.tenant_id = $2 FOR UPDATE OF u"
    ))
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let before = before.ok_or(ApiError::not_found("user"))?;
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($3, display_name),
                          disabled = COALESCE($4, disabled),
                          password_hash = COALESCE($5, password_hash),
                          minor = COALESCE($6, minor)
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .bind(&name)
    .bind(b.disabled)
    .bind(&pw)
    .bind(b.minor)
    .execute(&mut *tx)
    .await?;
    if let Some(r) = role {
        sqlx::query(
            "UPDATE role_bindings SET role = $3::tenant_role WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(auth.tenant_id.as_uuid())
        .bind(id.as_uuid())
        .bind(r.as_str())
        .execute(&mut *tx)
        .await?;
    }
    let revoked = if b.disabled == Some(true) {
        // every session of the user ends now: no refresh token survives
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(auth.tenant_id.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        0
    };
    let mut changes = serde_json::Map::new();
    if name.is_some() {
        // that it changed, not the names: the audit chain outlives an erasure
        changes.insert("display_name".into(), json!("changed"));
    }
    if let Some(r) = role {
        changes.insert("role".into(), json!({ "from": before.role, "to": r }));
    }
    if let Some(d) = b.disabled {
        changes.insert(
            "disabled".into(),
            json!({ "from": before.disabled, "to": d }),
        );
    }
    if pw.is_some() {
        changes.insert("password_changed".into(), json!(true));
    }
    if let Some(m) = b.minor {
        changes.insert("minor".into(), json!({ "from": before.minor, "to": m }));
    }
    if revoked > 0 {
        changes.insert("refresh_tokens_revoked".into(), json!(revoked));
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "user.updated",
        "user",
        &id.to_string(),
        serde_json::Value::Object(changes),
    )
    .await?;
    let after: User = sqlx::query_as(&format!(
        "{SELECT_USER} WHERE u.id = $1 AND u.tenant_id = $2"
    ))
    .bind(id.as_uuid())
    .bind(auth.tenant_id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportedUser {
    /// 1-based line of the CSV (the header is line 1).
    pub line: usize,
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkippedLine {
    pub line: usize,
    pub email: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LineError {
    pub line: usize,
    pub message: String,
}

/// What an import did, line by line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportReport {
    pub created: Vec<ImportedUser>,
    /// Lines whose email already has an account (nothing changed).
    pub skipped: Vec<SkippedLine>,
    /// Lines that were not imported, and why.
    pub errors: Vec<LineError>,
}

/// A row of the import, checked.
struct Row {
    line: usize,
    email: String,
    name: String,
    role: Role,
}

/// The lines of a CSV upload after its header, which must be `header`
/// (case-insensitive). Each line comes with its 1-based number (the header
/// is line 1) and its fields, or why it could not be read; blank lines are
/// skipped.
pub(crate) fn csv_records(
    bytes: &[u8],
    header: &[&str],
) -> ApiResult<Vec<(usize, Result<Vec<String>, String>)>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("invalid_csv", "the CSV is not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let found: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::bad_request("invalid_csv", format!("unreadable header: {e}")))?
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    if found != header {
        return Err(ApiError::bad_request(
            "invalid_csv_header",
            format!("the first line must be the header {}", header.join(",")),
        ));
    }
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        // The reader's own line count skips blank lines, and a record's
        // position is where the blank lines before it begin: count the
        // newlines up to its first character.
        let line = rec
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| line_at(text.as_bytes(), p.byte() as usize));
        if i >= MAX_IMPORT_LINES {
            return Err(ApiError::bad_request(
                "too_many_lines",
                format!("an upload holds at most {MAX_IMPORT_LINES} lines"),
            ));
        }
        let fields = match rec {
            Ok(r) if r.iter().all(str::is_empty) => continue,
            Ok(r) if r.len() != header.len() => Err(format!(
                "expected {} fields ({}), found {}",
                header.len(),
                header.join(","),
                r.len()
            )),
            Ok(r) => Ok(r.iter().map(str::to_owned).collect()),
            Err(e) => Err(format!("unreadable line: {e}")),
        };
        out.push((line, fields));
    }
    Ok(out)
}

/// The 1-based line of the first non-blank character at or after `byte`.
fn line_at(text: &[u8], byte: usize) -> usize {
    let start = text
        .iter()
        .enumerate()
        .skip(byte)
        .find(|(_, b)| !matches!(b, b'\n' | b'\r'))
        .map_or(text.len(), |(i, _)| i);
    1 + text[..start].iter().filter(|b| **b == b'\n').count()
}

/// The body of a CSV upload: `text/csv`, at most `MAX_IMPORT_BYTES`.
pub(crate) fn csv_body(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Bytes> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("unreadable_body", e.body_text())
        }
    })?;
    let csv_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/csv"));
    if !csv_type {
        return Err(ApiError::bad_request(
            "unsupported_content_type",
            "send the file as text/csv",
        ));
    }
    if body.len() > MAX_IMPORT_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if body.contains(&0) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the file holds a NUL character",
        ));
    }
    Ok(body)
}

/// Reads the users CSV: a header `email,display_name,role`, then one user a
/// line. Good lines are returned; each bad line is reported with its number.
fn read_csv(bytes: &[u8]) -> ApiResult<(Vec<Row>, Vec<LineError>)> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, rec) in csv_records(bytes, &["email", "display_name", "role"])? {
        let rec = match rec {
            Ok(r) => r,
            Err(message) => {
                errors.push(LineError { line, message });
                continue;
            }
        };
        let checked = (|| -> ApiResult<Row> {
            Ok(Row {
                line,
                email: email(&rec[0])?,
                name: display_name(&rec[1])?,
                role: tenant_role(&rec[2].to_lowercase())?,
            })
        })();
        match checked {
            Ok(row) if !seen.insert(row.email.clone()) => errors.push(LineError {
                line,
                message: format!("{} appears earlier in the file", row.email),
            }),
            Ok(row) => rows.push(row),
            Err(e) => errors.push(LineError {
                line,
                message: e.to_string(),
            }),
        }
    }
    Ok((rows, errors))
}

/// Imports users from CSV (admins). Good lines are created, existing
/// emails skipped, bad lines reported; imported accounts have no password
/// until an admin sets one.
#[utoipa::path(post, path = "/users/import", operation_id = "import_users", tag = "console",
    request_body(content = String, content_type = "text/csv",
        description = "A header `email,display_name,role`, then one user a line"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was created, skipped and refused, per line", body = ImportReport),
        (status = 400, description = "Not CSV, a wrong header or too many lines", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 429, description = "Too many imports", body = ApiErrorBody),
    ))]
pub(crate) async fn import(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<ImportReport>> {
    auth.require_admin()?;
    let body = csv_body(&headers, body)?;
    app.console_limits().take(auth.user_id, Kind::Import)?;
    let (rows, errors) = read_csv(&body)?;
    let mut report = ImportReport {
        created: Vec::new(),
        skipped: Vec::new(),
        errors,
    };
    let mut tx = app.db().begin().await?;
    for row in rows {
        match insert(&mut tx, &auth, &row.email, &row.name, row.role, NO_PASSWORD).await? {
            Some(u) => report.created.push(ImportedUser {
                line: row.line,
                id: u.id,
                email: u.email,
            }),
            None => report.skipped.push(SkippedLine {
                line: row.line,
                email: row.email,
                reason: "an account with this email exists".into(),
            }),
        }
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "user.import",
        "tenant",
        &auth.tenant_id.to_string(),
        json!({
            "created": report.created.len(),
            "skipped": report.skipped.len(),
            "errors": report.errors.len(),
        }),
    )
    .await?;
    tx.commit().await?;
    report.errors.sort_by_key(|e| e.line);
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_are_checked_one_by_one() {
        let csv = "email,display_name,role\n\
                   a@x.test,Ann,student\n\
                   not-an-email,Bob,student\n\
                   c@x.test,Cy,wizard\n\
                   d@x.test,Di\n\
                   A@X.test,Ann again,student\n\
                   \n\
                   e@x.test,\"Eve, the second\",Teacher\n";
        let (rows, errors) = read_csv(csv.as_bytes()).expect("readable");
        let ok: Vec<_> = rows
            .iter()
            .map(|r| (r.line, r.email.as_str(), r.role))
            .collect();
        assert_eq!(
            ok,
            vec![
                (2, "a@x.test", Role::Student),
                (8, "e@x.test", Role::Teacher)
            ]
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6], "{errors:?}");
        assert!(errors[0].message.contains("email"), "{:?}", errors[0]);
        assert!(errors[1].message.contains("role"), "{:?}", errors[1]);
        assert!(
            errors[2].message.contains("expected 3 fields"),
            "{:?}",
            errors[2]
        );
        assert!(errors[3].message.contains("earlier"), "{:?}", errors[3]);
    }

    #[test]
    fn a_wrong_header_refuses_the_file() {
        assert!(read_csv(b"name,email\nx,y@z.test\n").is_err());
        assert!(read_csv(b"\xff\xfe").is_err());
    }
}
