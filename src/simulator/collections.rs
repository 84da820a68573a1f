//! sObject Collections: create, update, upsert by external id and delete up to 200 records,
//! retrieve up to 2,000 by `POST` (by `GET` as many as fit in the URI, about 800); per-record
//! results in request order with `statusCode` errors, and
//! `allOrNone` validating every record before any is written.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::guard::Caller;
use super::org::{Changed, Org};
use super::records::{field_list, json_object, present};
use super::schema::ObjectDef;
use super::state::{Shared, Writer, external_id_field};
use super::value::Record;
use crate::domain::SalesforceId;

type Shr = State<Arc<Shared>>;

/// The most records one retrieve returns.
const MAX_RETRIEVE: usize = 2_000;
type Params = HashMap<String, String>;

/// The `{"allOrNone", "records"}` body of a collection write.
fn collection_body(body: &Bytes) -> Result<(bool, Vec<Map<String, Value>>), SimError> {
    let body = json_object(body)?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| SimError::bad_body("records is required"))?;
    if records.len() > 200 {
        return Err(SimError::too_many_records());
    }
    let records = records
        .iter()
        .map(|r| r.as_object().cloned().unwrap_or_default())
        .collect();
    Ok((all_or_none, records))
}

fn record_type(record: &Map<String, Value>) -> Option<String> {
    record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn success(id: &SalesforceId) -> Value {
    json!({"id": id.as_str(), "success": true, "errors": []})
}

fn failure(id: Option<&str>, e: &SimError) -> Value {
    let mut v = json!({"success": false, "errors": [e.collection_entry()]});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

/// One planned write of a collection call; `created` marks upserts.
enum Planned {
    Create(Arc<ObjectDef>, Record, Option<bool>),
    Update(Arc<ObjectDef>, SalesforceId, Record, Option<bool>),
    Delete(SalesforceId),
}

/// One record's id (for its result) and plan.
type Plan = (Option<String>, Result<Planned, SimError>);

/// Runs a collection write: with `allOrNone` every record is validated before any is written.
fn run_collection(
    shared: &Shared,
    who: &Writer,
    all_or_none: bool,
    n: usize,
    plan: impl Fn(&Org, usize) -> Plan,
) -> Response {
    let mut st = shared.lock();
    let mut results = Vec::with_capacity(n);
    let mut changed = Vec::new();
    if all_or_none {
        let plans: Vec<_> = (0..n).map(|i| plan(&st.org, i)).collect();
        if plans.iter().any(|(_, p)| p.is_err()) {
            let rolled_back = SimError::rolled_back();
            for (id, p) in &plans {
                let e = p.as_ref().err().unwrap_or(&rolled_back);
                results.push(failure(id.as_deref(), e));
            }
            return Json(json!(results)).into_response();
        }
        for p in plans.into_iter().filter_map(|(_, p)| p.ok()) {
            results.push(commit(&mut st.org, p, &who.user, &mut changed));
        }
    } else {
        for i in 0..n {
            let (id, p) = plan(&st.org, i);
            results.push(match p {
                Ok(p) => commit(&mut st.org, p, &who.user, &mut changed),
                Err(e) => failure(id.as_deref(), &e),
            });
        }
    }
    if shared.config.outbound_on_api_writes {
        shared.notify_changes(&mut st, &changed);
    }
    Json(json!(results)).into_response()
}

fn commit(o: &mut Org, p: Planned, user: &SalesforceId, changed: &mut Vec<Changed>) -> Value {
    let (id, created) = match p {
        Planned::Create(obj, record, created) => {
            let id = o.commit_create(&obj, record, user);
            changed.push((obj.name.clone(), id.clone()));
            (id, created)
        }
        Planned::Update(obj, id, record, created) => {
            o.commit_update(&obj, &id, record, user);
            changed.push((obj.name.clone(), id.clone()));
            (id, created)
        }
        Planned::Delete(id) => match o.delete(None, id.as_str()) {
            Ok(id) => (id, None),
            Err(e) => return failure(Some(id.as_str()), &e),
        },
    };
    let mut v = success(&id);
    if let Some(c) = created {
        v["created"] = json!(c);
    }
    v
}

/// `POST /composite/sobjects` (create) and `PATCH /composite/sobjects` (update): each record
/// planned by the method's rule.
pub(crate) async fn write(
    State(shared): Shr,
    method: Method,
    who: Writer,
    body: Bytes,
) -> Result<Response, SimError> {
    let (all_or_none, records) = collection_body(&body)?;
    let plan = if method == Method::POST {
        plan_create
    } else {
        plan_update
    };
    Ok(run_collection(
        &shared,
        &who,
        all_or_none,
        records.len(),
        |o, i| plan(o, &records[i], &who),
    ))
}

/// Plans one record of a collection create: its type names the object; it carries no id.
fn plan_create(o: &Org, r: &Map<String, Value>, who: &Writer) -> Plan {
    let plan = record_type(r)
        .ok_or_else(|| SimError::bad_body("attributes.type is required"))
        .and_then(|t| o.object(&t))
        .and_then(|obj| {
            if r.contains_key("Id") || r.contains_key("id") {
                let message = "cannot specify Id in an insert call";
                return Err(SimError::invalid_operation(message));
            }
            let record = o.prepare_create(&obj, r, who.save())?;
            Ok(Planned::Create(obj, record, None))
        });
    (None, plan)
}

/// Plans one record of a collection update: its `id` names it, its type (if any) must match.
fn plan_update(o: &Org, r: &Map<String, Value>, who: &Writer) -> Plan {
    let mut r = r.clone();
    let id = r
        .remove("id")
        .or_else(|| r.remove("Id"))
        .and_then(|v| v.as_str().map(String::from));
    let plan = match &id {
        None => Err(SimError::missing_id()),
        Some(id) => {
            let obj = record_type(&r).and_then(|t| o.schema.object(&t));
            o.prepare_update(obj.as_deref(), id, &r, who.save())
                .map(|(obj, id, rec)| Planned::Update(obj, id, rec, None))
        }
    };
    (id, plan)
}

fn ids_param(params: &Params) -> Vec<String> {
    params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `DELETE /composite/sobjects?ids=…&allOrNone=…`.
pub(crate) async fn delete(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
) -> Result<Response, SimError> {
    let ids = ids_param(&params);
    if ids.len() > 200 {
        return Err(SimError::too_many_records());
    }
    let all_or_none = params.get("allOrNone").is_some_and(|v| v == "true");
    let who = Writer::user(caller.user);
    Ok(run_collection(
        &shared,
        &who,
        all_or_none,
        ids.len(),
        |o, i| {
            let plan = o.live(None, &ids[i]).map(|(_, id, _)| Planned::Delete(id));
            (Some(ids[i].clone()), plan)
        },
    ))
}

/// Plans one record of an upsert: create or update by its external id value.
fn plan_upsert(
    o: &Org,
    obj: &Arc<ObjectDef>,
    field: &str,
    r: &Map<String, Value>,
    who: &Writer,
) -> Result<Planned, SimError> {
    let value = r
        .get(field)
        .and_then(|v| v.as_str().map(String::from).or_else(|| Some(v.to_string())))
        .filter(|v| v != "null")
        .ok_or_else(|| SimError::required_missing(vec![field.to_string()]))?;
    let mut body = r.clone();
    body.remove("attributes");
    let ids: Vec<SalesforceId> = if field == "Id" {
        SalesforceId::parse(&value)
            .ok()
            .filter(|id| o.find(id).is_some())
            .into_iter()
            .collect()
    } else {
        o.find_by_field(obj, field, &value)
    };
    match ids.as_slice() {
        [] if field == "Id" => Err(SimError::not_found()),
        [] => {
            let record = o.prepare_create(obj, &body, who.save())?;
            Ok(Planned::Create(obj.clone(), record, Some(true)))
        }
        [one] => {
            body.remove(field);
            let (obj, id, rec) = o.prepare_update(Some(obj), one.as_str(), &body, who.save())?;
            Ok(Planned::Update(obj, id, rec, Some(false)))
        }
        _ => Err(SimError::multiple_external_ids(field, &value)),
    }
}

/// `PATCH /composite/sobjects/{Type}/{ExtIdField}`: each record created or updated by its
/// external id, with `created` in its result.
pub(crate) async fn upsert(
    State(shared): Shr,
    who: Writer,
    Path((_, object, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let (all_or_none, records) = collection_body(&body)?;
    let (obj, field) = {
        let st = shared.lock();
        let obj = st.org.object(&object)?;
        let field = external_id_field(&st.org.schema, &who.user, &obj, &field)?;
        (obj, field)
    };
    Ok(run_collection(
        &shared,
        &who,
        all_or_none,
        records.len(),
        |o, i| (None, plan_upsert(o, &obj, &field, &records[i], &who)),
    ))
}

fn retrieve(
    shared: &Shared,
    caller: &Caller,
    object: &str,
    ids: &[String],
    fields: Option<&String>,
) -> Result<Response, SimError> {
    let st = shared.lock();
    let obj = st.org.object(object)?;
    let schema = &st.org.schema;
    let fields = field_list(schema, &caller.user, &obj, fields)?
        .ok_or_else(|| SimError::bad_body("fields is required"))?;
    let data_path = shared.data_path();
    let records: Vec<Value> = ids
        .iter()
        .map(|id| match st.org.live(Some(&obj), id) {
            Ok((_, _, record)) => present(
                &data_path,
                schema,
                &caller.user,
                &obj,
                record,
                Some(&fields),
            ),
            Err(_) => Value::Null,
        })
        .collect();
    // Serialized after the org's lock is let go: Outbound Messages and every other call wait on
    // that lock, and 2,000 records take milliseconds to write out.
    drop(st);
    Ok(Json(records).into_response())
}

/// `GET /composite/sobjects/{Type}?ids=…&fields=…`.
pub(crate) async fn retrieve_get(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, SimError> {
    let ids = ids_param(&params);
    if ids.len() > MAX_RETRIEVE {
        return Err(SimError::too_many_ids(MAX_RETRIEVE));
    }
    retrieve(&shared, &caller, &object, &ids, params.get("fields"))
}

/// `POST /composite/sobjects/{Type}` `{"ids": […], "fields": […]}`.
pub(crate) async fn retrieve_post(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = json_object(&body)?;
    let list = |k: &str| -> Vec<String> {
        body.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ids = list("ids");
    if ids.len() > MAX_RETRIEVE {
        return Err(SimError::too_many_ids(MAX_RETRIEVE));
    }
    let fields = list("fields").join(",");
    retrieve(&shared, &caller, &object, &ids, Some(&fields))
}
