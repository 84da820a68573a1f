//! `/api/v1/company-products`: the pipeline; list, create, change, and push now. A product with
//! status OPPORTUNITY and a size becomes an Opportunity on its company's Account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written, enum_text};
use crate::domain::CompanyProduct;
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

/// A company product.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// Local company id.
    company_id: u64,
    /// Product name.
    product: String,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    status: String,
    /// Deal size.
    opportunity_size: Option<f64>,
    /// Internal funnel stage.
    stage: Option<String>,
    /// Expected close date.
    close_date: Option<NaiveDate>,
    /// The Opportunity id, once pushed.
    salesforce_opportunity_id: Option<String>,
    /// Last local change.
    updated_at: DateTime<Utc>,
}

impl From<CompanyProduct> for ProductView {
    fn from(p: CompanyProduct) -> Self {
        Self {
            id: p.id,
            org_id: p.org_id.to_string(),
            company_id: p.company_id,
            product: p.product,
            status: enum_text(&p.status),
            opportunity_size: p.opportunity_size,
            stage: p.stage,
            close_date: p.close_date,
            salesforce_opportunity_id: p.salesforce_opportunity_id.map(|s| s.to_string()),
            updated_at: p.updated_at,
        }
    }
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
