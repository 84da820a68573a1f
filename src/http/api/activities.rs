//! `/api/v1/activities`: emails sent and meetings booked; list, record, and push now. An email
//! becomes a completed Task, a meeting an Event.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, QueryOrg};
use super::records::{self, Queued, Written, enum_text};
use crate::domain::Activity;
use crate::http::state::AppState;
use crate::store::{RecordKind, Store};
use crate::sync::local::activities::{self, NewActivity};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/activities", get(list).post(create))
        .route("/activities/{id}/sync", post(sync))
}

/// An activity.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActivityView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// `email_sent` or `meeting_booked`.
    kind: String,
    /// Local contact id.
    contact_id: Option<u64>,
    /// Local company id.
    company_id: Option<u64>,
    /// Subject.
    subject: String,
    /// Body or description.
    description: Option<String>,
    /// When it happened.
    occurred_at: DateTime<Utc>,
    /// Meeting start.
    starts_at: Option<DateTime<Utc>>,
    /// Meeting end.
    ends_at: Option<DateTime<Utc>>,
    /// The Task or Event id, once pushed.
    salesforce_id: Option<String>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id,
            org_id: a.org_id.to_string(),
            kind: enum_text(&a.kind),
            contact_id: a.contact_id,
            company_id: a.company_id,
            subject: a.subject,
            description: a.description,
            occurred_at: a.occurred_at,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            salesforce_id: a.salesforce_id.map(|s| s.to_string()),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/activities", params(OrgQuery),
    responses((status = 200, body = Vec<ActivityView>), (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState { store, .. }): State<AppState>,
    QueryOrg(org): QueryOrg,
) -> Result<Json<Vec<ActivityView>>, ApiError> {
    records::list(&store, &org, Store::activities)
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
    paths(list, create, sync),
    components(schemas(ActivityView, NewActivity))
)]
pub(super) struct ActivitiesDoc;
