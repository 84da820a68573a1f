//! `/api/v1/companies`: list, create, change, and push now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written};
use crate::domain::Company;
use crate::domain::view::CompanyView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::companies::{self, CompanyChanges, NewCompany};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/companies", get(list).post(create))
        .route("/companies/{id}", get(one).patch(update))
        .route("/companies/{id}/sync", post(sync))
}

/// A page of companies, oldest first.
#[utoipa::path(get, path = "/api/v1/companies", params(RecordQuery),
    responses((status = 200, body = Page<CompanyView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<RecordQuery>,
) -> Result<Json<Page<CompanyView>>, ApiError> {
    records::page::<Company, _>(&store, q.resolve(&connections)?)
}

/// One company.
#[utoipa::path(get, path = "/api/v1/companies/{id}",
    params(("id" = u64, Path, description = "Local company id"), OrgQuery),
    responses((status = 200, body = CompanyView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<CompanyView>, ApiError> {
    records::one::<Company, _>(&store, &org, id, "company")
}

#[utoipa::path(post, path = "/api/v1/companies", request_body = InOrg<NewCompany>,
    responses((status = 201, body = Written<CompanyView>), (status = 422, body = ErrorBody)))]
async fn create(
    State(AppState { store, .. }): State<AppState>,
    InOrg { org, body }: InOrg<NewCompany>,
) -> Result<(StatusCode, Json<Written<CompanyView>>), ApiError> {
    Ok(records::created(
        companies::create(&store, &org, body).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/companies/{id}", request_body = InOrg<CompanyChanges>,
    params(("id" = u64, Path, description = "Local company id")),
    responses((status = 200, body = Written<CompanyView>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    InOrg { org, body }: InOrg<CompanyChanges>,
) -> Result<Json<Written<CompanyView>>, ApiError> {
    Ok(Json(Written::of(
        companies::update(&store, &org, id, body).await?,
    )))
}

/// Pushes the company's current state now.
#[utoipa::path(post, path = "/api/v1/companies/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
async fn sync(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    records::sync_now(&store, &org, RecordKind::Company, id).await
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, one, create, update, sync),
    components(schemas(CompanyView, NewCompany, CompanyChanges))
)]
pub(super) struct CompaniesDoc;
