//! `GET /api/v1/setup`: the org's setup checked now from its describe: per object, what is
//! missing for sync to work.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use utoipa::OpenApi;

use super::error::{ApiError, ErrorBody};
use super::extract::{OrgQuery, QueryOrg};
use crate::http::state::AppState;
use crate::sync::local::setup;
use crate::sync::setup::{ObjectCheck, SetupReport, VersionCheck};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/setup", get(check))
}

/// Checks the org's setup now (one call for the versions, one describe per object).
#[utoipa::path(get, path = "/api/v1/setup", params(OrgQuery),
    responses((status = 200, body = SetupReport),
        (status = 409, description = "the org is not connected", body = ErrorBody),
        (status = 502, description = "salesforce refused or failed the describe", body = ErrorBody)))]
async fn check(
    State(AppState { pull, setup, .. }): State<AppState>,
    QueryOrg(org): QueryOrg,
) -> Result<Json<SetupReport>, ApiError> {
    Ok(Json(setup::check(&pull, &setup, org).await?))
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(check),
    components(schemas(SetupReport, VersionCheck, ObjectCheck))
)]
pub(super) struct SetupDoc;
