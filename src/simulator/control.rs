//! The control surface under `/__sim` (JSON, no auth, not counted, no faults): change records as
//! a Salesforce user would, merge, convert, switch faults and delivery, read counters.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::org::ConvertOptions;
use super::outbound::DeliveryMode;
use super::rest::error;
use super::state::{Faults, Shared};

type Shr = State<Arc<Shared>>;

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
        .route("/seed", post(seed))
        .route("/reset-usage", post(reset_usage))
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(SimError::bad_body("expected a JSON object")),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::bad_body(e.to_string()))
}

async fn credentials(State(shared): Shr) -> Response {
    Json(json!(shared.credentials)).into_response()
}

async fn list(State(shared): Shr, Path(object): Path<String>) -> Response {
    match shared.list(&object) {
        Ok(records) => Json(json!(records)).into_response(),
        Err(e) => error(e),
    }
}

async fn create(State(shared): Shr, Path(object): Path<String>, body: Bytes) -> Response {
    match body_object(&body).and_then(|b| shared.create(&object, &b, true)) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => error(e),
    }
}

async fn read(State(shared): Shr, Path((_, id)): Path<(String, String)>) -> Response {
    match shared.raw(&id) {
        Some(r) => Json(Value::Object(r)).into_response(),
        None => error(SimError::not_found()),
    }
}

async fn update(
    State(shared): Shr,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match body_object(&body).and_then(|b| shared.update(Some(&object), &id, &b, true)) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn delete(State(shared): Shr, Path((object, id)): Path<(String, String)>) -> Response {
    match shared.delete(Some(&object), &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct MergeRequest {
    master_id: String,
    loser_ids: Vec<String>,
}

async fn merge(State(shared): Shr, body: Bytes) -> Response {
    let req: MergeRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match shared.merge(&req.master_id, &req.loser_ids) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct ConvertRequest {
    lead_id: String,
    #[serde(flatten)]
    options: ConvertOptions,
}

async fn convert(State(shared): Shr, body: Bytes) -> Response {
    let req: ConvertRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    match shared.convert(&req.lead_id, &req.options) {
        Ok(result) => Json(json!(result)).into_response(),
        Err(e) => error(e),
    }
}

async fn faults(State(shared): Shr) -> Response {
    Json(json!(shared.lock().faults)).into_response()
}

async fn set_faults(State(shared): Shr, body: Bytes) -> Response {
    match parse::<Faults>(&body) {
        Ok(f) => {
            shared.lock().faults = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(e),
    }
}

/// `PUT /__sim/outbound`: any of `url` (null to stop delivering), `rules`, `mode`.
#[derive(Deserialize)]
struct OutboundRequest {
    #[serde(default, with = "double_option")]
    url: Option<Option<String>>,
    #[serde(default)]
    rules: Option<std::collections::BTreeMap<String, Vec<String>>>,
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

async fn set_outbound(State(shared): Shr, body: Bytes) -> Response {
    let req: OutboundRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    {
        let mut st = shared.lock();
        if let Some(url) = req.url {
            st.outbound.url = url;
        }
        if let Some(rules) = req.rules {
            st.outbound.rules = rules;
        }
        if let Some(mode) = req.mode {
            st.outbound.mode = mode;
        }
    }
    shared.outbound_wake.notify_one();
    StatusCode::NO_CONTENT.into_response()
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
    Json(
        json!({"total": st.calls.total, "by_endpoint": st.calls.by_endpoint, "used": st.used,
        "limit": st.limit(&shared.config)}),
    )
    .into_response()
}

async fn expire_sessions(State(shared): Shr) -> Response {
    shared.lock().auth.access.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn reset_usage(State(shared): Shr) -> Response {
    shared.lock().used = 0;
    StatusCode::NO_CONTENT.into_response()
}

async fn seed(State(shared): Shr, body: Bytes) -> Response {
    let spec: super::SeedSpec = match parse(&body) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    match super::seed(&shared, &spec) {
        Ok(summary) => Json(json!(summary)).into_response(),
        Err(e) => error(e),
    }
}
