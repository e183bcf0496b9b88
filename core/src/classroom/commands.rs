//! One handler for every class command route. The route table and the
//! body → command mapping live in `protocol::api`, shared with the edge's
//! campus API, so the two cannot drift apart. So are the answer
//! (`protocol::api::answer`) and the OpenAPI description of every route
//! (`protocol::api::openapi::class_routes`).

use axum::Json;
use axum::extract::{MatchedPath, State};
use protocol::SessionId;
use protocol::api::{answer, build};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::classroom::decks;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::identity::Auth;
use crate::orchestration::sessions::{actor_of, forward, load_session};

pub(crate) async fn class_command(
    State(app): State<AppState>,
    auth: Auth,
    route: MatchedPath,
    ids: PathIds,
    body: JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let session: SessionId = ids.get(0)?;
    let params = ids.rest();
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let mut built = build(route.as_str(), &params, &body.value, Uuid::now_v7())
        .map_err(ApiError::from_input)?;
    let row = load_session(&app, &auth, session).await?;
    if let Some(deck) = built.deck() {
        let pages = decks::page_count(&app, auth.tenant_id, deck)
            .await?
            .ok_or(ApiError::not_found("deck"))?;
        built = built.with_page_count(pages);
    }
    let done = forward(&app, &row, actor_of(&auth), built.command).await?;
    Ok(Json(answer(built.created, &done.events, done.seq)))
}
