//! sObject rows: create, read (with `fields=` and `If-Modified-Since`), update, delete, read and
//! upsert by external id, and the getUpdated / getDeleted replication windows. Every call acts as
//! its token's user.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::guard::Caller;
use super::org::Org;
use super::schema::{ObjectDef, Schema};
use super::state::{Shared, Writer, external_id_field};
use super::value::{Record, is_deleted, parse_datetime, rest_datetime};
use crate::domain::SalesforceId;

type Shr = State<Arc<Shared>>;
type Params = HashMap<String, String>;

/// A JSON object body, or `JSON_PARSER_ERROR`.
pub(crate) fn json_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SimError::bad_body(
            "Cannot deserialize instance of object from a non-object value",
        )),
        Err(e) => Err(SimError::bad_body(format!("Unexpected character: {e}"))),
    }
}

/// A record as the REST API shows it to `user`: `attributes` plus the chosen fields, or every
/// field the user can see.
pub(crate) fn present(
    data_path: &str,
    schema: &Schema,
    user: &SalesforceId,
    obj: &ObjectDef,
    record: &Record,
    fields: Option<&[String]>,
) -> Value {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    let url = format!("{data_path}/sobjects/{}/{id}", obj.name);
    out.insert("attributes".into(), json!({"type": obj.name, "url": url}));
    let mut put = |f: &str| {
        out.insert(f.to_string(), record.get(f).cloned().unwrap_or(Value::Null));
    };
    match fields {
        Some(fields) => fields.iter().for_each(|f| put(f)),
        None => obj
            .fields
            .iter()
            .filter(|f| schema.access(user, obj, f).readable)
            .for_each(|f| put(&f.name)),
    }
    Value::Object(out)
}

/// Resolves a `fields=` list as `user` sees the object; `INVALID_FIELD` for unknown names.
/// Record reads answer the `Id` as well, as Salesforce does.
pub(crate) fn field_list(
    schema: &Schema,
    user: &SalesforceId,
    obj: &ObjectDef,
    fields: Option<&String>,
) -> Result<Option<Vec<String>>, SimError> {
    let Some(fields) = fields.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = vec!["Id".to_string()];
    for name in fields.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = schema
            .visible_field(user, obj, name)
            .ok_or_else(|| SimError::invalid_field(&obj.name, name))?;
        if !out.contains(&f.name) {
            out.push(f.name.clone());
        }
    }
    Ok(Some(out))
}

/// 201 with the new record's id, and its address in `Location`.
fn created(shared: &Shared, object: &str, id: &SalesforceId) -> Response {
    let body = json!({"id": id.as_str(), "success": true, "errors": []});
    let location = format!("{}/sobjects/{object}/{}", shared.data_path(), id.as_str());
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// `POST /sobjects/{Type}`.
pub(crate) async fn create(
    State(shared): Shr,
    who: Writer,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = json_object(&body)?;
    let id = shared.create(&object, &body, &who, shared.config.outbound_on_api_writes)?;
    Ok(created(&shared, &object, &id))
}

/// `POST /sobjects/{Type}/Id`: a create through the `Id` "external id" (v37.0+).
pub(crate) async fn create_by_null_id(
    shared: Shr,
    who: Writer,
    Path((version, object, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    if !field.eq_ignore_ascii_case("Id") {
        return Err(SimError::not_found());
    }
    create(shared, who, Path((version, object)), body).await
}

/// `If-Modified-Since`: `EEE, dd MMM yyyy HH:mm:ss z` (RFC 2822 zones, `GMT` included).
fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `GET /sobjects/{Type}/{Id}`.
pub(crate) async fn read(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object, id)): Path<(String, String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let obj = st.org.object(&object)?;
    let fields = field_list(&st.org.schema, &caller.user, &obj, params.get("fields"))?;
    let (_, _, record) = st.org.live(Some(&obj), &id)?;
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    if let (Some(since), Some(stamp)) = (since, stamp(record)) {
        if stamp <= since {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
    }
    let shown = present(
        &shared.data_path(),
        &st.org.schema,
        &caller.user,
        &obj,
        record,
        fields.as_deref(),
    );
    Ok(Json(shown).into_response())
}

/// `PATCH /sobjects/{Type}/{Id}`.
pub(crate) async fn update(
    State(shared): Shr,
    who: Writer,
    Path((_, object, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = json_object(&body)?;
    let fire = shared.config.outbound_on_api_writes;
    shared.update(Some(&object), &id, &body, &who, fire)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /sobjects/{Type}/{Id}`.
pub(crate) async fn delete(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
) -> Result<Response, SimError> {
    shared.delete(Some(&object), &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 300 with the URL of every match.
fn multiple_choices(shared: &Shared, object: &str, ids: &[SalesforceId]) -> Response {
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{}/sobjects/{}/{}", shared.data_path(), object, id))
        .collect();
    (StatusCode::MULTIPLE_CHOICES, Json(json!(urls))).into_response()
}

/// `GET /sobjects/{Type}/{ExtIdField}/{value}`.
pub(crate) async fn read_by_external_id(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let schema = &st.org.schema;
    let obj = st.org.object(&object)?;
    let fields = field_list(schema, &caller.user, &obj, params.get("fields"))?;
    let field = external_id_field(schema, &caller.user, &obj, &field)?;
    let ids = st.org.find_by_field(&obj, &field, &value);
    match ids.as_slice() {
        [] => Err(SimError::not_found()),
        [one] => {
            let (_, _, record) = st.org.live(Some(&obj), one.as_str())?;
            let data_path = shared.data_path();
            let shown = present(
                &data_path,
                schema,
                &caller.user,
                &obj,
                record,
                fields.as_deref(),
            );
            Ok(Json(shown).into_response())
        }
        _ => Ok(multiple_choices(&shared, &obj.name, &ids)),
    }
}

/// `PATCH /sobjects/{Type}/{ExtIdField}/{value}[?updateOnly=true]`: 201 created, 200 updated
/// (both with `created`), 300 for several matches.
pub(crate) async fn upsert(
    State(shared): Shr,
    who: Writer,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = json_object(&body)?;
    let update_only = params.get("updateOnly").is_some_and(|v| v == "true");
    match shared.upsert(&object, &field, &value, &body, &who, update_only)? {
        Ok((id, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body =
                json!({"id": id.as_str(), "success": true, "errors": [], "created": created});
            Ok((status, Json(body)).into_response())
        }
        Err(ids) => Ok(multiple_choices(&shared, &object, &ids)),
    }
}

/// The `start`/`end` window of getUpdated/getDeleted, seconds truncated as Salesforce does.
fn window(params: &Params) -> Result<(DateTime<Utc>, DateTime<Utc>), SimError> {
    let at = |k: &str| -> Result<DateTime<Utc>, SimError> {
        let raw = params
            .get(k)
            .ok_or_else(|| SimError::bad_body(format!("missing {k}")))?;
        // An unencoded `+` in the offset arrives as a space.
        parse_datetime(&raw.replace(' ', "+"))
            .map(|d| {
                d.with_second(0)
                    .unwrap_or(d)
                    .with_nanosecond(0)
                    .unwrap_or(d)
            })
            .ok_or_else(|| SimError::bad_body(format!("{k} is not a datetime: {raw}")))
    };
    Ok((at("start")?, at("end")?))
}

fn stamp(record: &Record) -> Option<DateTime<Utc>> {
    record
        .get("SystemModstamp")
        .and_then(Value::as_str)
        .and_then(parse_datetime)
}

/// What getUpdated and getDeleted ask about: an object and a `start`/`end` window. The object
/// is looked up first, so an unknown one is a 404 whatever the window says.
pub(crate) struct Replication {
    obj: Arc<ObjectDef>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl FromRequestParts<Arc<Shared>> for Replication {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let Path((_, object)) = Path::<(String, String)>::from_request_parts(parts, shared)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(params) = Query::<Params>::from_request_parts(parts, shared)
            .await
            .map_err(IntoResponse::into_response)?;
        let obj = shared
            .lock()
            .org
            .object(&object)
            .map_err(IntoResponse::into_response)?;
        let (start, end) = window(&params).map_err(IntoResponse::into_response)?;
        Ok(Self { obj, start, end })
    }
}

impl Replication {
    /// The id and `SystemModstamp` of each deleted (or each live) record stamped in the window.
    fn stamped(&self, org: &Org, deleted: bool) -> Vec<(Value, DateTime<Utc>)> {
        org.all(&self.obj)
            .filter(|r| is_deleted(r) == deleted)
            .filter_map(|r| Some((r.get("Id")?.clone(), stamp(r)?)))
            .filter(|(_, s)| *s >= self.start && *s < self.end)
            .collect()
    }
}

/// `GET /sobjects/{Type}/updated/?start=…&end=…`.
pub(crate) async fn updated(State(shared): Shr, asked: Replication) -> Response {
    let live = asked.stamped(&shared.lock().org, false);
    let ids: Vec<Value> = live.into_iter().map(|(id, _)| id).collect();
    Json(json!({"ids": ids, "latestDateCovered": rest_datetime(asked.end)})).into_response()
}

/// `GET /sobjects/{Type}/deleted/?start=…&end=…`.
pub(crate) async fn deleted(State(shared): Shr, asked: Replication) -> Response {
    let gone = asked.stamped(&shared.lock().org, true);
    let records: Vec<Value> = gone
        .into_iter()
        .map(|(id, s)| json!({"id": id, "deletedDate": rest_datetime(s)}))
        .collect();
    Json(json!({
        "deletedRecords": records,
        "earliestDateAvailable": rest_datetime(asked.start),
        "latestDateCovered": rest_datetime(asked.end),
    }))
    .into_response()
}
