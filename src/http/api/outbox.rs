//! `/api/v1/outbox`: the entries waiting to be pushed and the dead letters, and a person's retry
//! or discard of a dead letter.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Id, OrgQuery, Params, QueryOrg};
use super::page::{self, Cursor, Page};
use crate::http::state::AppState;
use crate::store::{OutboxCounts, OutboxEntryView, OutboxState};
use crate::sync::local::outbox::{self, DeadLetterAction};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/outbox", get(list))
        .route("/outbox/{id}", get(one))
        .route("/outbox/{id}/retry", post(retry))
        .route("/outbox/{id}/discard", post(discard))
}

/// `GET /api/v1/outbox`: which page, which entries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutboxQuery {
    /// The org (optional when one org is configured).
    org_id: Option<String>,
    /// `pending` or `dead` (default: both).
    state: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Only entries changed after this instant (RFC 3339).
    updated_after: Option<DateTime<Utc>>,
}

/// The `state` filter; anything else than `pending` or `dead` is refused naming `state`.
fn wanted_state(s: Option<&str>) -> Result<Option<OutboxState>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some("pending") => Ok(Some(OutboxState::Pending)),
        Some("dead") => Ok(Some(OutboxState::Dead)),
        Some(_) => Err(ApiError::invalid("state", "must be pending or dead")),
    }
}

/// A page of outbox entries in the order they were enqueued.
#[utoipa::path(get, path = "/api/v1/outbox", params(OutboxQuery),
    responses((status = 200, body = Page<OutboxEntryView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<OutboxQuery>,
) -> Result<Json<Page<OutboxEntryView>>, ApiError> {
    let org = extract::org(&connections, q.org_id.as_deref(), "org_id")?;
    let wanted = wanted_state(q.state.as_deref())?;
    let page = page::request(q.limit, q.cursor)?;
    let entries = store.outbox_page(&org, page, wanted, q.updated_after)?;
    Ok(Json(Page::of(entries)))
}

/// One outbox entry.
#[utoipa::path(get, path = "/api/v1/outbox/{id}", params(("id" = u64, Path), OrgQuery),
    responses((status = 200, body = OutboxEntryView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<OutboxEntryView>, ApiError> {
    let entry = store
        .outbox_entry(&org, id)?
        .ok_or(ApiError::NotFound("outbox entry"))?;
    Ok(Json(entry.into()))
}

/// Sends a dead letter again now, its attempts reset.
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", params(("id" = u64, Path), OrgQuery),
    responses((status = 200, body = OutboxEntryView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn retry(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<OutboxEntryView>, ApiError> {
    let entry = outbox::resolve_dead_letter(&store, &org, id, DeadLetterAction::Retry).await?;
    Ok(Json(entry.into()))
}

/// Drops a dead letter.
#[utoipa::path(post, path = "/api/v1/outbox/{id}/discard", params(("id" = u64, Path), OrgQuery),
    responses((status = 200, body = OutboxEntryView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn discard(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<OutboxEntryView>, ApiError> {
    let entry = outbox::resolve_dead_letter(&store, &org, id, DeadLetterAction::Discard).await?;
    Ok(Json(entry.into()))
}

/// Pending entries and dead letters over every configured org, for `GET /api/v1/status`; an
/// org whose count fails is logged and left out.
pub(super) fn totals(state: &AppState) -> OutboxCounts {
    let mut total = OutboxCounts::default();
    for c in state.connections.all() {
        match state.store.outbox_counts(&c.org_id) {
            Ok(n) => {
                total.pending += n.pending;
                total.dead += n.dead;
            }
            Err(e) => tracing::error!(org = %c.org_id, error = %e, "counting the outbox failed"),
        }
    }
    total
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, one, retry, discard), components(schemas(OutboxEntryView)))]
pub(super) struct OutboxDoc;
