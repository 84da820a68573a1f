//! `/api/v1/conflicts`: records quarantined because several records matched, for a person to
//! resolve. A pull conflict is a Salesforce record several local records matched (resolved by
//! picking a local candidate or creating a new local record); a push conflict is a local record
//! whose create found several records in the org (resolved by picking one of them by its
//! Salesforce id, or creating a new record in the org).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Body, Id, Params};
use super::page::{self, Cursor, Page};
use crate::domain::SalesforceId;
use crate::http::state::AppState;
use crate::sync::local::conflicts::{self, Resolution};
use crate::sync::pull::{Applied, ConflictView};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/conflicts", get(list))
        .route("/conflicts/{id}", get(one))
        .route("/conflicts/{id}/resolve", post(resolve))
}

/// `GET /api/v1/conflicts`: which orgs, which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConflictQuery {
    /// Only this org (default: every configured org).
    org: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Only the conflict open for this Salesforce id (15 or 18 characters).
    #[param(value_type = Option<String>)]
    salesforce_id: Option<SalesforceId>,
}

/// `?org=` on a single conflict.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConflictOrg {
    /// The org (optional when one org is configured).
    org: Option<String>,
}

/// `POST /api/v1/conflicts/{id}/resolve`: `{"candidate": 12}` (pull), `{"salesforce_id":
/// "001…"}` (push) or `{"create": true}`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Resolve {
    /// The org (optional when one org is configured).
    org: Option<String>,
    /// Pull: the local candidate to link and update.
    candidate: Option<u64>,
    /// Push: the record in the org to link the local record to.
    #[schema(value_type = Option<String>)]
    salesforce_id: Option<SalesforceId>,
    /// Create a new record instead (local for a pull conflict, in the org for a push one).
    #[serde(default)]
    create: bool,
}

impl Resolve {
    fn choice(&self) -> Result<Resolution, ApiError> {
        match (self.candidate, &self.salesforce_id, self.create) {
            (Some(c), None, false) => Ok(Resolution::Candidate(c)),
            (None, Some(id), false) => Ok(Resolution::Record(id.clone())),
            (None, None, true) => Ok(Resolution::Create),
            _ => Err(ApiError::invalid(
                "candidate",
                "give one of a candidate, a salesforce_id or \"create\": true",
            )),
        }
    }
}

/// A page of open conflicts with their candidates, oldest first.
#[utoipa::path(get, path = "/api/v1/conflicts", params(ConflictQuery),
    responses((status = 200, body = Page<ConflictView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<ConflictQuery>,
) -> Result<Json<Page<ConflictView>>, ApiError> {
    let orgs = extract::orgs(&connections, q.org.as_deref(), "org")?;
    let page = page::request(q.limit, q.cursor)?;
    let open = conflicts::page(&store, &orgs, page, q.salesforce_id.as_ref())?;
    Ok(Json(Page::of(open)))
}

/// One open conflict with its candidates.
#[utoipa::path(get, path = "/api/v1/conflicts/{id}",
    params(("id" = u64, Path, description = "Conflict id"), ConflictOrg),
    responses((status = 200, body = ConflictView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Id(id): Id,
    Params(q): Params<ConflictOrg>,
) -> Result<Json<ConflictView>, ApiError> {
    let org = extract::org(&connections, q.org.as_deref(), "org")?;
    Ok(Json(conflicts::one(&store, &org, id)?.into()))
}

/// Applies the record to the picked candidate (or a new record) and closes the conflict.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve",
    params(("id" = u64, Path, description = "Conflict id")), request_body = Resolve,
    responses((status = 200, description = "what was applied (`outcome`, `target`)", body = Object),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn resolve(
    State(AppState {
        store,
        connections,
        pull,
        ..
    }): State<AppState>,
    Id(id): Id,
    Body(body): Body<Resolve>,
) -> Result<Json<Applied>, ApiError> {
    let org = extract::org(&connections, body.org.as_deref(), "org")?;
    let choice = body.choice()?;
    Ok(Json(
        conflicts::resolve(&store, &pull.rules, &org, id, choice).await?,
    ))
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, one, resolve), components(schemas(ConflictView, Resolve)))]
pub(super) struct ConflictsDoc;
