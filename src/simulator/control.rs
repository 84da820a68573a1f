//! The control surface under `/__sim` (JSON, no auth, not counted, no faults): change records as
//! a Salesforce user would (`?as=` a username or user id; the first sales rep by default), merge,
//! convert, switch faults and delivery, read counters. Org setup is in `control_setup.rs`; the
//! router joins both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::merge::ConvertOptions;
use super::outbound_state::DeliveryMode;
use super::seed::{SeedSpec, seed};
use super::state::{Faults, Shared, Writer};

type Shr = State<Arc<Shared>>;
type Params = HashMap<String, String>;

/// The `/__sim` routes.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/credentials", get(credentials))
        .route("/records/{object}", get(list).post(create))
        .route(
            "/records/{object}/{id}",
            get(read).patch(update).delete(delete),
        )
        .route("/merge", post(merge))
        .route("/convert", post(convert))
        .route("/faults", get(faults).put(set_faults))
        .route("/outbound", get(outbound_stats).put(set_outbound))
        .route("/api-calls", get(api_calls))
        .route("/expire-sessions", post(expire_sessions))
        .route("/seed", post(seed_org))
        .route("/reset-usage", post(reset_usage))
}

/// A JSON object body.
pub(crate) fn body_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(SimError::bad_body("expected a JSON object")),
    }
}

/// A JSON body of type `T`.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::bad_body(e.to_string()))
}

/// The user a control-surface change acts as: `?as=`, else the first sales rep.
fn writer(shared: &Shared, params: &Params) -> Result<Writer, SimError> {
    shared
        .actor(params.get("as").map(String::as_str))
        .map(Writer::user)
}

async fn credentials(State(shared): Shr) -> Response {
    let mut body = json!(shared.credentials);
    body["org_id"] = json!(shared.org_id.as_str());
    body["users"] = json!(shared.users());
    Json(body).into_response()
}

async fn list(State(shared): Shr, Path(object): Path<String>) -> Result<Response, SimError> {
    Ok(Json(json!(shared.list(&object)?)).into_response())
}

async fn create(
    State(shared): Shr,
    Path(object): Path<String>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = body_object(&body)?;
    let id = shared.create(&object, &body, &writer(&shared, &params)?, true)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn read(
    State(shared): Shr,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let record = shared.raw(&id).ok_or_else(SimError::not_found)?;
    Ok(Json(Value::Object(record)).into_response())
}

async fn update(
    State(shared): Shr,
    Path((object, id)): Path<(String, String)>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = body_object(&body)?;
    let who = writer(&shared, &params)?;
    shared.update(Some(&object), &id, &body, &who, true)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete(
    State(shared): Shr,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, SimError> {
    shared.delete(Some(&object), &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct MergeRequest {
    master_id: String,
    loser_ids: Vec<String>,
}

async fn merge(
    State(shared): Shr,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, SimError> {
    let req: MergeRequest = parse(&body)?;
    let who = writer(&shared, &params)?;
    shared.merge(&req.master_id, &req.loser_ids, &who.user)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ConvertRequest {
    lead_id: String,
    #[serde(flatten)]
    options: ConvertOptions,
}

async fn convert(
    State(shared): Shr,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, SimError> {
    let req: ConvertRequest = parse(&body)?;
    let who = writer(&shared, &params)?;
    let result = shared.convert(&req.lead_id, &req.options, &who.user)?;
    Ok(Json(json!(result)).into_response())
}

async fn faults(State(shared): Shr) -> Response {
    Json(json!(shared.lock().faults)).into_response()
}

async fn set_faults(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    shared.lock().faults = parse::<Faults>(&body)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /__sim/outbound`: any of `url` (null to stop delivering), `rules`, `mode`.
#[derive(Deserialize)]
struct OutboundRequest {
    #[serde(default, with = "double_option")]
    url: Option<Option<String>>,
    #[serde(default)]
    rules: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    mode: Option<DeliveryMode>,
}

/// Tells an absent key from an explicit null.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn set_outbound(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    let req: OutboundRequest = parse(&body)?;
    if let Some(rules) = req.rules {
        shared.set_outbound_rules(rules)?;
    }
    {
        let mut st = shared.lock();
        if let Some(url) = req.url {
            st.outbound.url = url;
        }
        if let Some(mode) = req.mode {
            st.outbound.mode = mode;
        }
    }
    shared.outbound_wake.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn outbound_stats(State(shared): Shr) -> Response {
    let st = shared.lock();
    Json(json!({
        "url": st.outbound.url,
        "rules": st.outbound.rules,
        "mode": st.outbound.mode,
        "stats": st.outbound.stats(),
    }))
    .into_response()
}

async fn api_calls(State(shared): Shr) -> Response {
    let st = shared.lock();
    let limit = st.limit(&shared.config);
    Json(json!({
        "total": st.calls.total, "by_endpoint": st.calls.by_endpoint,
        "by_subrequest": st.calls.by_subrequest,
        "token_requests": st.calls.token_requests, "used": st.used, "limit": limit,
    }))
    .into_response()
}

async fn expire_sessions(State(shared): Shr) -> Response {
    shared.lock().auth.expire_all();
    StatusCode::NO_CONTENT.into_response()
}

async fn reset_usage(State(shared): Shr) -> Response {
    shared.lock().used = 0;
    StatusCode::NO_CONTENT.into_response()
}

async fn seed_org(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    let spec: SeedSpec = parse(&body)?;
    Ok(Json(json!(seed(&shared, &spec)?)).into_response())
}
