//! `/api/v1/companies`: list, create, change, and push now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written, record_resource};
use crate::domain::Company;
use crate::domain::view::CompanyView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::companies::{self, CompanyChanges, NewCompany};

record_resource! {
    CompaniesDoc: Company as CompanyView, kind Company, query RecordQuery, at "/companies",
    what "company" "Local company id",
    docs "A page of companies, oldest first." "One company."
        "Pushes the company's current state now.",
    create = companies::create [] (NewCompany),
    update = companies::update [] (CompanyChanges),
}
