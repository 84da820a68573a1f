//! `/api/v1/imports`: "Import from Salesforce" on request, and its progress. An import runs in
//! the background; `GET /api/v1/imports/{id}` follows it. `GET /api/v1/imports/list-views`
//! lists the list views of an object an import can name.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Body, Id, Params};
use crate::domain::{ObjectType, SalesforceId};
use crate::http::state::AppState;
use crate::sync::import::{ImportKind, ImportState, ImportStatus};
use crate::sync::local::imports;

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/imports", post(start))
        .route("/imports/list-views", get(list_views))
        .route("/imports/{id}", get(progress))
}

/// `POST /api/v1/imports`: what to import, by `kind`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum NewImport {
    /// Accounts matching a SOQL condition.
    Accounts {
        /// The org (optional when one org is configured).
        org: Option<String>,
        /// The `WHERE` condition, e.g. `Industry = 'Energy'` (empty: every Account).
        #[serde(default)]
        filter: String,
    },
    /// The Account, its Contacts, and the open Leads whose `Company` is its name.
    Contacts {
        /// The org (optional when one org is configured).
        org: Option<String>,
        /// The Account id (15 or 18 characters).
        #[schema(value_type = String)]
        account: SalesforceId,
    },
    /// The Account and its Opportunities.
    Opportunities {
        /// The org (optional when one org is configured).
        org: Option<String>,
        /// The Account id (15 or 18 characters).
        #[schema(value_type = String)]
        account: SalesforceId,
    },
    /// The records of one list view (`GET /api/v1/imports/list-views` lists them).
    ListView {
        /// The org (optional when one org is configured).
        org: Option<String>,
        /// `Account`, `Contact`, `Lead` or `Opportunity`.
        #[schema(value_type = String, example = "Account")]
        object: ObjectType,
        /// The list view's id (15 or 18 characters, `00B…`).
        #[schema(value_type = String)]
        list_view: SalesforceId,
    },
}

impl NewImport {
    fn command(self) -> (Option<String>, ImportKind) {
        match self {
            Self::Accounts { org, filter } => (org, ImportKind::Accounts { filter }),
            Self::Contacts { org, account } => (org, ImportKind::Contacts { account }),
            Self::Opportunities { org, account } => (org, ImportKind::Opportunities { account }),
            Self::ListView {
                org,
                object,
                list_view,
            } => (org, ImportKind::ListView { object, list_view }),
        }
    }
}

/// An import's progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportView {
    /// The import id.
    id: u64,
    /// The org.
    org: String,
    /// What is imported: `{"kind", "filter"}` or `{"kind", "account"}`.
    #[schema(value_type = Object)]
    what: ImportKind,
    /// `running`, `done` or `failed`.
    #[schema(value_type = String)]
    state: ImportState,
    /// Rows to apply, once the first page of each query told.
    total: u64,
    /// Rows applied so far.
    processed: u64,
    /// Local records created.
    created: u64,
    /// Local records matched and updated or linked.
    updated: u64,
    /// Rows whose local copy already held these values, or newer ones: those of sfsync's own
    /// write to the org after the row was read.
    unchanged: u64,
    /// Rows quarantined as conflicts.
    quarantined: u64,
    /// Why it failed.
    error: Option<String>,
}

impl From<ImportStatus> for ImportView {
    fn from(s: ImportStatus) -> Self {
        Self {
            id: s.id,
            org: s.org.to_string(),
            what: s.what,
            state: s.state,
            total: s.total,
            processed: s.processed,
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            quarantined: s.quarantined,
            error: s.error,
        }
    }
}

/// Starts an import; it runs in the background.
#[utoipa::path(post, path = "/api/v1/imports", request_body = NewImport,
    responses((status = 202, description = "the import's first status", body = ImportView),
        (status = 409, description = "the org is not connected", body = ErrorBody),
        (status = 422, description = "a field is wrong", body = ErrorBody)))]
async fn start(
    State(AppState {
        store,
        connections,
        pull,
        ..
    }): State<AppState>,
    Body(body): Body<NewImport>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let (org, what) = body.command();
    let org = extract::org(&connections, org.as_deref(), "org")?;
    let status = imports::start(&store, &pull, org, what)?;
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

/// `GET /api/v1/imports/list-views`: which object, which org.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListViewQuery {
    /// `Account`, `Contact`, `Lead` or `Opportunity`.
    #[param(value_type = String, example = "Account")]
    object: ObjectType,
    /// The org (optional when one org is configured).
    org_id: Option<String>,
}

/// A list view an import can name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListViewItem {
    /// Its id: the `list_view` of an import.
    id: String,
    /// Its label.
    label: String,
    /// Its API name.
    developer_name: String,
    /// Whether its records can be imported (a view that is not SOQL-compatible cannot).
    importable: bool,
}

/// The list views of an object in the org.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListViews {
    /// The views, as the org lists them.
    items: Vec<ListViewItem>,
}

/// The list views of an object, read from the org (one call).
#[utoipa::path(get, path = "/api/v1/imports/list-views", params(ListViewQuery),
    responses((status = 200, body = ListViews), (status = 400, body = ErrorBody),
        (status = 409, description = "the org is not connected", body = ErrorBody)))]
async fn list_views(
    State(AppState {
        connections, pull, ..
    }): State<AppState>,
    Params(q): Params<ListViewQuery>,
) -> Result<Json<ListViews>, ApiError> {
    let org = extract::org(&connections, q.org_id.as_deref(), "org_id")?;
    let views = imports::list_views(&pull, org, q.object).await?;
    let items = views
        .into_iter()
        .map(|v| ListViewItem {
            id: v.id,
            label: v.label,
            developer_name: v.developer_name,
            importable: v.soql_compatible,
        })
        .collect();
    Ok(Json(ListViews { items }))
}

/// An import's progress.
#[utoipa::path(get, path = "/api/v1/imports/{id}", params(("id" = u64, Path, description = "Import id")),
    responses((status = 200, body = ImportView), (status = 404, body = ErrorBody)))]
async fn progress(
    State(AppState { pull, .. }): State<AppState>,
    Id(id): Id,
) -> Result<Json<ImportView>, ApiError> {
    Ok(Json(imports::status(&pull, id)?.into()))
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(start, list_views, progress),
    components(schemas(NewImport, ImportView, ListViews, ListViewItem))
)]
pub(super) struct ImportsDoc;
