//! `/api/v1/company-products`: the pipeline; list, create, change, and push now. A product with
//! status OPPORTUNITY and a size becomes an Opportunity on its company's Account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written, record_resource};
use crate::domain::CompanyProduct;
use crate::domain::view::ProductView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::company_products::{self, CompanyProductChanges, NewCompanyProduct};

record_resource! {
    CompanyProductsDoc: CompanyProduct as ProductView, kind CompanyProduct, query RecordQuery,
    at "/company-products",
    what "company product" "Local company product id",
    docs "A page of company products, oldest first." "One company product."
        "Pushes the company product's current state now.",
    create = company_products::create [] (NewCompanyProduct),
    update = company_products::update [] (CompanyProductChanges),
}
