//! The org's discovery resources: Versions (`/services/data`, no authentication), Resources by
//! Version, describeGlobal, sObject Basic Information and Describe, Limits, and the List Views
//! resources (list, one view, describe, results).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::describe;
use super::error::SimError;
use super::guard::Caller;
use super::listviews::ListView;
use super::schema::ObjectDef;
use super::soql::{self, parse_condition};
use super::stages::stages;
use super::state::Shared;
use super::value::is_deleted;

type Shr = State<Arc<Shared>>;

/// The release label of an API version: 62 → `Winter '25` (three releases a year from v32,
/// Winter '15).
fn release_label(major: u32) -> String {
    if major < 32 {
        return format!("Summer '{}", 14 - (31 - major) / 3);
    }
    let season = ["Winter", "Spring", "Summer"][((major - 32) % 3) as usize];
    format!("{season} '{:02}", 15 + (major - 32) / 3)
}

/// `GET /services/data`: every version from 31.0 to the org's.
pub(crate) async fn versions(State(shared): Shr) -> Response {
    let newest: u32 = shared
        .config
        .api_version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(62);
    let list: Vec<Value> = (31..=newest)
        .map(|v| {
            json!({"label": release_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")})
        })
        .collect();
    Json(list).into_response()
}

/// `GET /services/data/vNN.0`: the resources this org serves.
pub(crate) async fn resources(Path(version): Path<String>) -> Response {
    let base = format!("/services/data/{version}");
    let names = ["sobjects", "query", "queryAll", "limits", "composite"];
    let map: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| ((*n).to_string(), json!(format!("{base}/{n}"))))
        .collect();
    Json(map).into_response()
}

/// `GET /sobjects`: describeGlobal.
pub(crate) async fn describe_global(State(shared): Shr) -> Response {
    let st = shared.lock();
    Json(describe::global(&shared.data_path(), &st.org.schema)).into_response()
}

/// `GET /sobjects/{Type}`: the object's summary and recent items.
pub(crate) async fn basic_info(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let obj = st.org.object(&object)?;
    let entry = describe::global_entry(&shared.data_path(), &obj);
    Ok(Json(json!({"objectDescribe": entry, "recentItems": []})).into_response())
}

/// `GET /sobjects/{Type}/describe`.
pub(crate) async fn describe_object(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let obj = st.org.object(&object)?;
    let stage_values: Vec<(String, bool, bool)> = stages(&st.org)
        .iter()
        .filter_map(|r| {
            let api = r.get("ApiName")?.as_str()?.to_string();
            let active = r.get("IsActive").and_then(Value::as_bool).unwrap_or(true);
            Some((api, active, false))
        })
        .collect();
    let body = describe::describe(
        &shared.data_path(),
        &st.org.schema,
        &caller.user,
        &obj,
        &stage_values,
    );
    Ok(Json(body).into_response())
}

/// `GET /limits`.
pub(crate) async fn limits(State(shared): Shr) -> Response {
    let st = shared.lock();
    let max = st.limit(&shared.config);
    let records: usize = st.org.records.values().map(|m| m.len()).sum();
    // Salesforce counts about 2 KB of data storage per record.
    let data_mb = 5u64.saturating_sub((records as u64 * 2) / 1024);
    let same = |n: u64| json!({"Max": n, "Remaining": n});
    Json(json!({
        "ConcurrentAsyncGetReportInstances": same(200),
        "ConcurrentSyncReportRuns": same(20),
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(st.used)},
        "DailyAsyncApexExecutions": same(250_000),
        "DailyBulkApiBatches": same(15_000),
        "DailyBulkV2QueryFileStorageMB": same(976_562),
        "DailyBulkV2QueryJobs": same(10_000),
        "DailyDurableGenericStreamingApiEvents": same(10_000),
        "DailyDurableStreamingApiEvents": same(10_000),
        "DailyGenericStreamingApiEvents": same(10_000),
        "DailyStandardVolumePlatformEvents": same(10_000),
        "DailyStreamingApiEvents": same(10_000),
        "DailyWorkflowEmails": same(390),
        "DataStorageMB": {"Max": 5, "Remaining": data_mb},
        "FileStorageMB": same(20),
        "HourlyTimeBasedWorkflow": same(50),
        "MassEmail": same(10),
        "SingleEmail": same(15),
    }))
    .into_response()
}

/// `GET /sobjects/{Type}/listviews`.
pub(crate) async fn list_views(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let (_, views) = shared.list_views(&object)?;
    let data_path = shared.data_path();
    let list: Vec<Value> = views.iter().map(|v| v.summary(&data_path)).collect();
    Ok(
        Json(json!({"done": true, "listviews": list, "nextRecordsUrl": null, "size": list.len()}))
            .into_response(),
    )
}

fn view(shared: &Shared, object: &str, id: &str) -> Result<(Arc<ObjectDef>, ListView), SimError> {
    let (obj, views) = shared.list_views(object)?;
    let view = views
        .into_iter()
        .find(|v| v.id.as_str() == id || v.id.as_15() == id || v.developer_name == id)
        .ok_or_else(SimError::not_found)?;
    Ok((obj, view))
}

/// `GET /sobjects/{Type}/listviews/{id}`.
pub(crate) async fn list_view(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
) -> Result<Response, SimError> {
    let (_, view) = view(&shared, &object, &id)?;
    Ok(Json(view.summary(&shared.data_path())).into_response())
}

/// `GET /sobjects/{Type}/listviews/{id}/describe`.
pub(crate) async fn list_view_describe(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
) -> Result<Response, SimError> {
    let (obj, view) = view(&shared, &object, &id)?;
    let filter = view
        .filter
        .as_deref()
        .map(|f| parse_condition(f, &obj))
        .transpose()?;
    Ok(Json(view.describe(&obj, filter.as_ref())).into_response())
}

/// `GET /sobjects/{Type}/listviews/{id}/results[?limit=&offset=]`: the view's query run as the
/// caller, 25 rows by default.
pub(crate) async fn list_view_results(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, SimError> {
    let (obj, view) = view(&shared, &object, &id)?;
    let number = |k: &str, default: usize| {
        params
            .get(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let limit = number("limit", 25).clamp(1, 2000);
    let offset = number("offset", 0);
    let st = shared.lock();
    let query = soql::parse(&view.query(&obj), &st.org.schema, &caller.user)?;
    let live = st.org.all(&obj).filter(|r| !is_deleted(r));
    let rows = query.run(live, &caller.user);
    let end = (offset + limit).min(rows.len());
    let page = rows.get(offset.min(end)..end).unwrap_or_default();
    Ok(Json(view.results(&obj, page, rows.len(), end)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_labels_follow_the_three_releases_a_year() {
        assert_eq!(release_label(62), "Winter '25");
        assert_eq!(release_label(63), "Spring '25");
        assert_eq!(release_label(64), "Summer '25");
        assert_eq!(release_label(32), "Winter '15");
        assert_eq!(release_label(31), "Summer '14");
    }
}
