//! `/api/v1/app-webhooks`: the app's webhooks in the order they are configured (`{n}` counts
//! from 0), how their deliveries go, and the changes each never took (dead letters), which a
//! person retries or discards.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, Params};
use super::page::{self, Cursor, Page};
use crate::app_webhooks::{self, Hook, HookStatus};
use crate::http::state::AppState;
use crate::store::{AppDeadLetter, ChangeEntry};
use crate::sync::local::deliveries;
use crate::sync::local::outbox::DeadLetterAction;

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/app-webhooks", get(list))
        .route("/app-webhooks/{id}/dead-letters", get(dead_letters))
        .route("/app-webhooks/{id}/dead-letters/{seq}/retry", post(retry))
        .route(
            "/app-webhooks/{id}/dead-letters/{seq}/discard",
            post(discard),
        )
}

/// `GET /api/v1/app-webhooks/{n}/dead-letters`: which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterQuery {
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
}

fn hook(state: &AppState, n: u64) -> Result<&Hook, ApiError> {
    usize::try_from(n)
        .ok()
        .and_then(|n| state.app_webhooks.get(n))
        .map(|h| h.as_ref())
        .ok_or(ApiError::NotFound("app webhook"))
}

/// Each configured webhook's deliveries, in configuration order.
pub(super) fn statuses(state: &AppState) -> Result<Vec<HookStatus>, ApiError> {
    let hooks = state.app_webhooks.iter();
    Ok(hooks
        .map(|h| app_webhooks::status(&state.store, h))
        .collect::<Result<_, _>>()?)
}

/// Every app webhook and how its deliveries go (as in `GET /api/v1/status`).
#[utoipa::path(get, path = "/api/v1/app-webhooks",
    responses((status = 200, body = Vec<HookStatus>)))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<HookStatus>>, ApiError> {
    Ok(Json(statuses(&state)?))
}

/// A page of the changes webhook `n` never took, oldest first.
#[utoipa::path(get, path = "/api/v1/app-webhooks/{id}/dead-letters",
    params(("id" = u64, Path, description = "The webhook's place in the config, from 0"),
        DeadLetterQuery),
    responses((status = 200, body = Page<AppDeadLetter>), (status = 404, body = ErrorBody)))]
async fn dead_letters(
    State(state): State<AppState>,
    Id(n): Id,
    Params(q): Params<DeadLetterQuery>,
) -> Result<Json<Page<AppDeadLetter>>, ApiError> {
    let hook = hook(&state, n)?;
    let page = page::request(q.limit, q.cursor)?;
    let found = state
        .store
        .app_dead_letters(&hook.url, page.after, page.limit)?;
    Ok(Json(Page::of(found)))
}

/// `{id}` and `{seq}` of a dead letter's path; a failure is 400.
fn path(p: Result<Path<(u64, u64)>, PathRejection>) -> Result<(u64, u64), ApiError> {
    p.map(|Path(ids)| ids)
        .map_err(|e| ApiError::bad_request("seq", e.body_text()))
}

async fn resolve(
    state: &AppState,
    (n, seq): (u64, u64),
    action: DeadLetterAction,
) -> Result<AppDeadLetter, ApiError> {
    let hook = hook(state, n)?;
    Ok(deliveries::resolve_dead_letter(&state.store, &hook.url, seq, action).await?)
}

/// Sends a dead letter again at the worker's next step (once; refused, it stays).
#[utoipa::path(post, path = "/api/v1/app-webhooks/{id}/dead-letters/{seq}/retry",
    params(("id" = u64, Path), ("seq" = u64, Path, description = "The change's sequence number")),
    responses((status = 202, body = AppDeadLetter), (status = 404, body = ErrorBody)))]
async fn retry(
    State(state): State<AppState>,
    p: Result<Path<(u64, u64)>, PathRejection>,
) -> Result<(StatusCode, Json<AppDeadLetter>), ApiError> {
    let dead = resolve(&state, path(p)?, DeadLetterAction::Retry).await?;
    Ok((StatusCode::ACCEPTED, Json(dead)))
}

/// Drops a dead letter.
#[utoipa::path(post, path = "/api/v1/app-webhooks/{id}/dead-letters/{seq}/discard",
    params(("id" = u64, Path), ("seq" = u64, Path, description = "The change's sequence number")),
    responses((status = 200, body = AppDeadLetter), (status = 404, body = ErrorBody)))]
async fn discard(
    State(state): State<AppState>,
    p: Result<Path<(u64, u64)>, PathRejection>,
) -> Result<Json<AppDeadLetter>, ApiError> {
    Ok(Json(
        resolve(&state, path(p)?, DeadLetterAction::Discard).await?,
    ))
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, dead_letters, retry, discard),
    components(schemas(HookStatus, AppDeadLetter, ChangeEntry))
)]
pub(super) struct AppWebhooksDoc;
