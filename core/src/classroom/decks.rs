//! Slide decks: a PDF uploaded to core, each page rendered to a PNG with
//! poppler's `pdftoppm` and its text kept (`pdftotext`) for chapter titles
//! and search. Page images are served under signed URLs so browsers and the
//! edge's composer can fetch them without an account token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use protocol::{CourseId, DeckId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{PathIds, QueryParams};
use crate::identity::Auth;

/// PDFs above this are refused with 413.
pub(crate) const MAX_PDF_BYTES: usize = 50 * 1024 * 1024;
/// Decks with more pages are refused.
pub(crate) const MAX_PAGES: usize = 400;
/// Page images are rendered at this resolution (a 16:9 slide → ~1280 px wide).
const RENDER_DPI: &str = "96";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// The course the deck belongs to; absent: every course of the tenant.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Uuid)]
    course_id: Option<CourseId>,
    /// The deck's title (at most 200 characters are kept); absent or blank:
    /// the first line of the first page.
    #[serde(default)]
    title: Option<String>,
}

/// Where deck files live under core's object directory.
fn deck_dir(app: &AppState, tenant: TenantId, deck: DeckId) -> PathBuf {
    app.config()
        .data_dir
        .join("objects")
        .join("decks")
        .join(tenant.to_string())
        .join(deck.to_string())
}

pub(crate) async fn page_count(
    app: &AppState,
    tenant: TenantId,
    deck: DeckId,
) -> ApiResult<Option<u32>> {
    let row: Option<(i32,)> =
        sqlx::query_as("SELECT page_count FROM decks WHERE id = $1 AND tenant_id = $2")
            .bind(deck.as_uuid())
            .bind(tenant.as_uuid())
            .fetch_optional(app.db())
            .await?;
    Ok(row.map(|r| r.0 as u32))
}

async fn run(cmd: &str, args: &[&str]) -> Result<std::process::Output, ApiError> {
    let fut = tokio::process::Command::new(cmd)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(120), fut).await {
        Err(_) => Err(ApiError::bad_request(
            "invalid_pdf",
            "rendering the PDF took too long",
        )),
        Ok(Err(e)) => {
            // poppler is missing or broken on this host: nothing was kept
            tracing::error!(error = %e, "{cmd} could not run");
            Err(ApiError::unavailable(
                "pdf_tools_unavailable",
                "this server cannot read PDFs right now",
            ))
        }
        Ok(Ok(out)) => Ok(out),
    }
}

/// Renders every page to `dir/page-<n>.png` (0-based) and returns each page's text.
async fn render(pdf: &Path, dir: &Path) -> ApiResult<Vec<String>> {
    let pdf_s = pdf.to_string_lossy().to_string();
    let text = run("pdftotext", &["-layout", &pdf_s, "-"]).await?;
    if !text.status.success() {
        return Err(ApiError::bad_request(
            "invalid_pdf",
            "the file is not a readable PDF",
        ));
    }
    // pdftotext ends every page with a form feed
    let mut pages: Vec<String> = String::from_utf8_lossy(&text.stdout)
        .split('\u{c}')
        // PostgreSQL text cannot hold NUL
        .map(|p| p.trim().replace('\0', ""))
        .collect();
    if pages.last().is_some_and(|p| p.is_empty()) {
        pages.pop();
    }
    if pages.is_empty() {
        return Err(ApiError::bad_request("invalid_pdf", "the PDF has no pages"));
    }
    if pages.len() > MAX_PAGES {
        return Err(ApiError::bad_request(
            "too_many_pages",
            format!("a deck has at most {MAX_PAGES} pages"),
        ));
    }
    let prefix = dir.join("raw").to_string_lossy().to_string();
    let out = run("pdftoppm", &["-png", "-r", RENDER_DPI, &pdf_s, &prefix]).await?;
    if !out.status.success() {
        return Err(ApiError::bad_request(
            "invalid_pdf",
            "the PDF could not be rendered",
        ));
    }
    // pdftoppm pads page numbers to the width of the page count: raw-1.png or raw-01.png
    let mut rendered: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name
                .strip_prefix("raw-")?
                .strip_suffix(".png")?
                .parse::<u32>()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    rendered.sort();
    if rendered.len() != pages.len() {
        return Err(ApiError::bad_request(
            "invalid_pdf",
            format!(
                "rendered {} pages but the text has {}",
                rendered.len(),
                pages.len()
            ),
        ));
    }
    for (i, (_, path)) in rendered.iter().enumerate() {
        std::fs::rename(path, dir.join(format!("page-{i}.png"))).map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(pages)
}

/// A PDF file (the body of an upload), for the OpenAPI document.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct PdfFile(Vec<u8>);

/// A PNG image (a rendered page), for the OpenAPI document.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct PngImage(Vec<u8>);

/// A page of a deck.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeckPage {
    /// 0-based.
    pub index: usize,
    /// The page's text (from `pdftotext`).
    pub text: String,
    /// The page as a PNG, under a signed URL valid a week.
    pub image_url: String,
}

/// A deck with its pages.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deck {
    #[schema(value_type = String, format = Uuid)]
    pub id: DeckId,
    pub title: String,
    /// Null: a deck of every course of the tenant.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub course_id: Option<CourseId>,
    pub page_count: usize,
    pub pages: Vec<DeckPage>,
}

/// Uploads a PDF deck (staff): every page is rendered and its text kept.
#[utoipa::path(post, path = "/decks", operation_id = "upload_deck", tag = "decks",
    security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = PdfFile, content_type = "application/pdf",
        description = "The PDF, at most 50 MiB and 400 pages"),
    responses(
        (status = 201, description = "The deck, its pages rendered", body = Deck),
        (status = 400, description = "Not application/pdf, not a readable PDF, too many pages, bad title or query", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not a teacher or admin", body = ApiErrorBody),
        (status = 404, description = "No such course in the tenant", body = ApiErrorBody),
        (status = 413, description = "The PDF is larger than 50 MiB", body = ApiErrorBody),
        (status = 503, description = "The PDF tools are not available on this server", body = ApiErrorBody),
    ))]
pub(crate) async fn upload(
    State(app): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<UploadQuery>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    auth.require_staff()?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("unreadable_body", e.body_text())
        }
    })?;
    if q.title.as_deref().is_some_and(|t| t.contains('\0')) {
        // PostgreSQL text cannot hold NUL
        return Err(ApiError::bad_request(
            "invalid_title",
            "the title must not contain NUL characters",
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/pdf") {
        return Err(ApiError::bad_request(
            "unsupported_content_type",
            "send the deck as application/pdf",
        ));
    }
    if !body.starts_with(b"%PDF-") {
        return Err(ApiError::bad_request(
            "invalid_pdf",
            "the body is not a PDF",
        ));
    }
    if let Some(c) = q.course_id {
        let ok: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM courses WHERE id = $1 AND tenant_id = $2")
                .bind(c.as_uuid())
                .bind(auth.tenant_id.as_uuid())
                .fetch_optional(app.db())
                .await?;
        ok.ok_or(ApiError::not_found("course"))?;
    }
    let deck = DeckId::from_uuid(Uuid::now_v7());
    let dir = deck_dir(&app, auth.tenant_id, deck);
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!(e))?;
    let pdf = dir.join("deck.pdf");
    std::fs::write(&pdf, &body).map_err(|e| anyhow::anyhow!(e))?;
    let texts = match render(&pdf, &dir).await {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let title = q
        .title
        .filter(|t| !t.trim().is_empty())
        .or_else(|| {
            texts
                .first()
                .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| "Untitled deck".to_owned());
    let title: String = title.chars().take(200).collect();
    let mut tx = app.db().begin().await?;
    sqlx::query("INSERT INTO decks (id, tenant_id, course_id, title, page_count, created_by) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(deck.as_uuid())
        .bind(auth.tenant_id.as_uuid())
        .bind(q.course_id.map(|c| c.as_uuid()))
        .bind(&title)
        .bind(texts.len() as i32)
        .bind(auth.user_id.as_uuid())
        .execute(&mut *tx)
        .await?;
    for (i, text) in texts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deck_pages (deck_id, tenant_id, idx, text) VALUES ($1, $2, $3, $4)",
        )
        .bind(deck.as_uuid())
        .bind(auth.tenant_id.as_uuid())
        .bind(i as i32)
        .bind(text)
        .execute(&mut *tx)
        .await?;
    }
    crate::audit::record_tx(
        &mut tx,
        auth.tenant_id,
        Some(auth.user_id),
        "deck.uploaded",
        "deck",
        &deck.to_string(),
        json!({"pages": texts.len()}),
    )
    .await?;
    tx.commit().await?;
    announce(&app, auth.tenant_id, deck, texts.len() as u32).await;
    let body = deck_json(&app, deck, &title, q.course_id, &texts);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Tells every edge the deck's tenant may use about a new deck (another
/// tenant's campus box never sees its page URLs), so slide commands reach them
/// with its page count even while core is away later. Best effort: an edge
/// that missed it learns decks again at each session start.
async fn announce(app: &AppState, tenant: TenantId, deck: DeckId, pages: u32) {
    let edges: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM edges WHERE tenant_id IS NULL OR tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_all(app.db())
            .await
            .unwrap_or_default();
    for (id,) in edges {
        let Ok(edge) = protocol::EdgeId::new(id) else {
            continue;
        };
        let req = protocol::control::EdgeRequest::Decks {
            decks: vec![protocol::control::DeckInfo {
                deck_id: deck,
                tenant_id: tenant,
                page_count: pages,
                page_urls: page_urls(app, deck, pages),
            }],
        };
        let _ = app
            .edge_link()
            .request_within(&edge, &req, Duration::from_millis(500))
            .await;
    }
}

/// The decks an edge should know when a class of `course` starts there.
pub(crate) async fn for_start(
    app: &AppState,
    tenant: TenantId,
    course: Uuid,
) -> ApiResult<Vec<protocol::control::DeckInfo>> {
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, page_count FROM decks WHERE tenant_id = $1 AND (course_id = $2 OR course_id IS NULL)
         ORDER BY created_at DESC LIMIT 500",
    )
    .bind(tenant.as_uuid())
    .bind(course)
    .fetch_all(app.db())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| protocol::control::DeckInfo {
            deck_id: id.into(),
            tenant_id: tenant,
            page_count: n as u32,
            page_urls: page_urls(app, id.into(), n as u32),
        })
        .collect())
}

/// Signed URLs of a deck's page images (valid a week).
pub(crate) fn page_urls(app: &AppState, deck: DeckId, pages: u32) -> Vec<String> {
    let exp = Utc::now().timestamp() + 7 * 24 * 3600;
    (0..pages)
        .map(|i| {
            let sig = app
                .keys()
                .sign_asset(&format!("deck/{deck}/{i}"), exp)
                .unwrap_or_default();
            format!(
                "{}/decks/{deck}/pages/{i}.png?sig={sig}",
                app.config().public_url.trim_end_matches('/')
            )
        })
        .collect()
}

fn deck_json(
    app: &AppState,
    deck: DeckId,
    title: &str,
    course: Option<CourseId>,
    texts: &[String],
) -> Deck {
    let exp = Utc::now().timestamp() + 7 * 24 * 3600;
    let pages: Vec<DeckPage> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let sig = app
                .keys()
                .sign_asset(&format!("deck/{deck}/{i}"), exp)
                .unwrap_or_default();
            DeckPage {
                index: i,
                text: text.clone(),
                image_url: format!(
                    "{}/decks/{deck}/pages/{i}.png?sig={sig}",
                    app.config().public_url.trim_end_matches('/')
                ),
            }
        })
        .collect();
    Deck {
        id: deck,
        title: title.to_owned(),
        course_id: course,
        page_count: texts.len(),
        pages,
    }
}

/// A deck of the caller's tenant, with signed URLs of its page images.
#[utoipa::path(get, path = "/decks/{id}", operation_id = "get_deck", tag = "decks",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The deck")),
    responses(
        (status = 200, description = "The deck and its pages", body = Deck),
        (status = 400, description = "Invalid deck id", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 404, description = "No such deck in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn get(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<Deck>> {
    let deck: DeckId = ids.get(0)?;
    let row: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT title, course_id FROM decks WHERE id = $1 AND tenant_id = $2")
            .bind(deck.as_uuid())
            .bind(auth.tenant_id.as_uuid())
            .fetch_optional(app.db())
            .await?;
    let (title, course) = row.ok_or(ApiError::not_found("deck"))?;
    let texts: Vec<(String,)> =
        sqlx::query_as("SELECT text FROM deck_pages WHERE deck_id = $1 ORDER BY idx")
            .bind(deck.as_uuid())
            .fetch_all(app.db())
            .await?;
    let texts: Vec<String> = texts.into_iter().map(|t| t.0).collect();
    Ok(Json(deck_json(
        &app,
        deck,
        &title,
        course.map(Into::into),
        &texts,
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The signature from the page's `image_url`.
    sig: String,
}

/// A page image, by signed URL.
#[utoipa::path(get, path = "/decks/{id}/pages/{page}", operation_id = "deck_page_image", tag = "decks",
    params(
        ("id" = String, Path, format = Uuid, description = "The deck"),
        ("page" = String, Path, description = "The 0-based page and `.png`, e.g. `0.png`"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "The page as a PNG", body = PngImage, content_type = "image/png"),
        (status = 400, description = "Invalid deck id or page, or missing sig", body = ApiErrorBody),
        (status = 401, description = "The URL is not signed for this page or has expired", body = ApiErrorBody),
        (status = 404, description = "No such deck or page", body = ApiErrorBody),
    ))]
pub(crate) async fn page_image(
    State(app): State<AppState>,
    ids: PathIds,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Response> {
    let deck: DeckId = ids.get(0)?;
    let page = ids
        .rest()
        .first()
        .and_then(|p| p.strip_suffix(".png"))
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_page", "pages are /decks/{id}/pages/{n}.png")
        })?;
    if !app
        .keys()
        .verify_asset(&q.sig, &format!("deck/{deck}/{page}"))
    {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "the page URL is not signed for this page or has expired",
        ));
    }
    let row: Option<(Uuid,)> = sqlx::query_as("SELECT tenant_id FROM decks WHERE id = $1")
        .bind(deck.as_uuid())
        .fetch_optional(app.db())
        .await?;
    let (tenant,) = row.ok_or(ApiError::not_found("deck"))?;
    let path = deck_dir(&app, tenant.into(), deck).join(format!("page-{page}.png"));
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found("page"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        Body::from(bytes),
    )
        .into_response())
}
