//! `/api/v1/activities`: emails sent and meetings booked; list, record, and push now. An email
//! becomes a completed Task, a meeting an Event.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::extract::{self, Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::{self, Cursor, Page};
use super::records::{self, Listing, Queued, Written, record_resource};
use crate::domain::view::ActivityView;
use crate::domain::{Activity, SalesforceId};
use crate::http::state::{AppState, Connections};
use crate::store::{RecordFilter, RecordKind};
use crate::sync::local::activities::{self, NewActivity};

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

record_resource! {
    ActivitiesDoc: Activity as ActivityView, kind Activity, query ActivityQuery, at "/activities",
    what "activity" "Local activity id",
    docs "A page of activities, oldest first." "One activity." "Pushes the activity now.",
    create = activities::create [] (NewActivity),
}
