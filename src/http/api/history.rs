//! `GET /api/v1/{kind}/{id}/history`: each change applied to a company, contact, company
//! product or activity, oldest first: from which side, which event, which rule and policy.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Params};
use super::page::{self, Cursor, Page};
use crate::http::state::AppState;
use crate::store::{LocalRef, RecordKind};
use crate::sync::local::history;

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/{kind}/{id}/history", get(list))
}

/// The kinds of record with a history, as their paths name them.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    /// Companies.
    Companies,
    /// Contacts.
    Contacts,
    /// Company products.
    CompanyProducts,
    /// Activities.
    Activities,
}

/// The record a history route names; another resource's path is not found, an id that is not
/// a number is 400.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target(LocalRef);

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path((kind, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("path", e.body_text()))?;
        let kind = match kind.as_str() {
            "companies" => RecordKind::Company,
            "contacts" => RecordKind::Contact,
            "company-products" => RecordKind::CompanyProduct,
            "activities" => RecordKind::Activity,
            _ => return Err(ApiError::NotFound("resource")),
        };
        let id = id
            .parse()
            .map_err(|_| ApiError::bad_request("id", "must be a local record id (a number)"))?;
        Ok(Self(LocalRef { kind, id }))
    }
}

/// `?org_id=&limit=&cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// The org (optional when one org is configured).
    org_id: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
}

/// One change applied to a record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeView {
    /// `salesforce` or `local`.
    side: String,
    /// What caused it: `notification`, `sweep`, `import:{id}`, `conflict:{id}`, `api`
    /// (a request to this API), `outbox:{id}` (a push and what Salesforce answered).
    event: String,
    /// The rule applied: `create`, `match:salesforce_id`, `match:email_company`,
    /// `api:update`, ….
    rule: String,
    /// The conflict policy that decided, when one did: `salesforce_wins`, `ours_wins` or
    /// `local_change_pending`.
    policy: Option<String>,
    /// When (RFC 3339).
    at: String,
}

impl From<history::Change> for ChangeView {
    fn from(c: history::Change) -> Self {
        Self {
            side: c.side,
            event: c.event,
            rule: c.rule,
            policy: c.policy,
            at: c.at,
        }
    }
}

/// Each change applied to the record, oldest first.
#[utoipa::path(get, path = "/api/v1/{kind}/{id}/history",
    params(("kind" = Kind, Path), ("id" = u64, Path, description = "Local record id"),
        HistoryQuery),
    responses((status = 200, body = Page<ChangeView>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Target(target): Target,
    Params(q): Params<HistoryQuery>,
) -> Result<Json<Page<ChangeView>>, ApiError> {
    let org = extract::org(&connections, q.org_id.as_deref(), "org_id")?;
    let page = page::request(q.limit, q.cursor)?;
    Ok(Json(Page::of(history::page(&store, &org, target, page)?)))
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list), components(schemas(Kind, ChangeView)))]
pub(super) struct HistoryDoc;
