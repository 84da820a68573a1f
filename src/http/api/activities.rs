//! `/api/v1/activities`: emails sent and meetings booked; list, record, and push now. An email
//! becomes a completed Task, a meeting an Event.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::{self, Cursor, Page};
use super::records::{self, Listing, Queued, Written};
use crate::domain::view::ActivityView;
use crate::domain::{Activity, SalesforceId};
use crate::http::state::{AppState, Connections};
use crate::store::{RecordFilter, RecordKind};
use crate::sync::local::activities::{self, NewActivity};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/activities", get(list).post(create))
        .route("/activities/{id}", get(one))
        .route("/activities/{id}/sync", post(sync))
}

/// `GET /api/v1/activities`: which page, which activities (they keep no change time, so there
/// is no `updated_after`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActivityQuery {
    /// The org (optional when one org is configured).
    org_id: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Only the activity linked to this Task or Event id (15 or 18 characters).
    #[param(value_type = Option<String>)]
    salesforce_id: Option<SalesforceId>,
}

impl ActivityQuery {
    fn resolve(self, connections: &Connections) -> Result<Listing, ApiError> {
        let org = extract::org(connections, self.org_id.as_deref(), "org_id")?;
        let filter = RecordFilter {
            updated_after: None,
            salesforce_id: self.salesforce_id,
        };
        Ok((org, page::request(self.limit, self.cursor)?, filter))
    }
}

/// A page of activities, oldest first.
#[utoipa::path(get, path = "/api/v1/activities", params(ActivityQuery),
    responses((status = 200, body = Page<ActivityView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<ActivityQuery>,
) -> Result<Json<Page<ActivityView>>, ApiError> {
    records::page::<Activity, _>(&store, q.resolve(&connections)?)
}

/// One activity.
#[utoipa::path(get, path = "/api/v1/activities/{id}",
    params(("id" = u64, Path, description = "Local activity id"), OrgQuery),
    responses((status = 200, body = ActivityView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<ActivityView>, ApiError> {
    records::one::<Activity, _>(&store, &org, id, "activity")
}

#[utoipa::path(post, path = "/api/v1/activities", request_body = InOrg<NewActivity>,
    responses((status = 201, body = Written<ActivityView>), (status = 422, body = ErrorBody)))]
async fn create(
    State(AppState { store, .. }): State<AppState>,
    InOrg { org, body }: InOrg<NewActivity>,
) -> Result<(StatusCode, Json<Written<ActivityView>>), ApiError> {
    let saved = activities::create(&store, &org, body).await?;
    Ok(records::created(saved))
}

/// Pushes the activity now.
#[utoipa::path(post, path = "/api/v1/activities/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
async fn sync(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    records::sync_now(&store, &org, RecordKind::Activity, id).await
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, one, create, sync),
    components(schemas(ActivityView, NewActivity))
)]
pub(super) struct ActivitiesDoc;
