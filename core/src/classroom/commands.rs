//! One handler for every class command route. The route table and the
//! body → command mapping live in `protocol::api`, shared with the edge's
//! campus API, so the two cannot drift apart. So are the answer
//! (`protocol::api::answer`) and the OpenAPI description of every route
//! (`protocol::api::openapi::class_routes`).

use axum::Json;
use axum::extract::{MatchedPath, State};
use protocol::api::{InputError, answer, build};
use protocol::{Command, SessionId};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::classroom::decks;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, PathIds};
use crate::identity::Auth;
use crate::orchestration::sessions::{actor_of, forward, load_session};

pub async fn class_command(
    State(app): State<AppState>,
    auth: Auth,
    route: MatchedPath,
    ids: PathIds,
    body: JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let session: SessionId = ids.get(0)?;
    let params = ids.rest();
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let built =
        build(route.as_str(), &params, &body.value, Uuid::now_v7()).map_err(|e| match e {
            InputError::Body(m) => {
                ApiError::bad_request("invalid_body", format!("invalid JSON body: {m}"))
            }
            InputError::Id => {
                ApiError::bad_request("invalid_id", "an id in the path is not a valid UUID")
            }
            InputError::Route => ApiError::not_found("route"),
        })?;
    let row = load_session(&app, &auth, session).await?;
    let mut command = built.command;
    if let Command::ShowSlide {
        deck_id,
        page_count,
        ..
    } = &mut command
    {
        *page_count = decks::page_count(&app, auth.tenant_id, *deck_id)
            .await?
            .ok_or(ApiError::not_found("deck"))?;
    }
    let done = forward(&app, &row, actor_of(&auth), command).await?;
    Ok(Json(answer(built.created, &done.events, done.seq)))
}
