//! `/api/v1/company-products`: the pipeline; list, create, change, and push now. A product with
//! status OPPORTUNITY and a size becomes an Opportunity on its company's Account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written};
use crate::domain::CompanyProduct;
use crate::domain::view::ProductView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::company_products::{self, CompanyProductChanges, NewCompanyProduct};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/company-products", get(list).post(create))
        .route("/company-products/{id}", get(one).patch(update))
        .route("/company-products/{id}/sync", post(sync))
}

/// A page of company products, oldest first.
#[utoipa::path(get, path = "/api/v1/company-products", params(RecordQuery),
    responses((status = 200, body = Page<ProductView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<RecordQuery>,
) -> Result<Json<Page<ProductView>>, ApiError> {
    records::page::<CompanyProduct, _>(&store, q.resolve(&connections)?)
}

/// One company product.
#[utoipa::path(get, path = "/api/v1/company-products/{id}",
    params(("id" = u64, Path, description = "Local company product id"), OrgQuery),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<ProductView>, ApiError> {
    records::one::<CompanyProduct, _>(&store, &org, id, "company product")
}

#[utoipa::path(post, path = "/api/v1/company-products", request_body = InOrg<NewCompanyProduct>,
    responses((status = 201, body = Written<ProductView>), (status = 422, body = ErrorBody)))]
async fn create(
    State(AppState { store, .. }): State<AppState>,
    InOrg { org, body }: InOrg<NewCompanyProduct>,
) -> Result<(StatusCode, Json<Written<ProductView>>), ApiError> {
    let saved = company_products::create(&store, &org, body).await?;
    Ok(records::created(saved))
}

#[utoipa::path(patch, path = "/api/v1/company-products/{id}", request_body = InOrg<CompanyProductChanges>,
    params(("id" = u64, Path, description = "Local company product id")),
    responses((status = 200, body = Written<ProductView>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    InOrg { org, body }: InOrg<CompanyProductChanges>,
) -> Result<Json<Written<ProductView>>, ApiError> {
    let saved = company_products::update(&store, &org, id, body).await?;
    Ok(Json(Written::of(saved)))
}

/// Pushes the company product's current state now.
#[utoipa::path(post, path = "/api/v1/company-products/{id}/sync",
    params(("id" = u64, Path), OrgQuery),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
async fn sync(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    records::sync_now(&store, &org, RecordKind::CompanyProduct, id).await
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, one, create, update, sync),
    components(schemas(ProductView, NewCompanyProduct, CompanyProductChanges))
)]
pub(super) struct CompanyProductsDoc;
