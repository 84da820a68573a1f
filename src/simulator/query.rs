//! `query` and `queryAll`: a SOQL query answered in batches of up to 2,000
//! (`Sforce-Query-Options: batchSize`), each further batch behind a `nextRecordsUrl` that is a
//! path on the instance (`/services/data/vNN.0/query/01g…-2000`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::SimError;
use super::guard::Caller;
use super::records::present;
use super::soql::{self, Aggregate};
use super::state::{Cursor, Shared, State as SimState};
use super::value::is_deleted;

type Shr = State<Arc<Shared>>;
type Params = HashMap<String, String>;

/// `GET /query?q=…`.
pub(crate) async fn query(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    run_query(&shared, &caller, params.get("q"), &headers, false)
}

/// `GET /queryAll?q=…`: deleted and merged rows too.
pub(crate) async fn query_all(
    State(shared): Shr,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    run_query(&shared, &caller, params.get("q"), &headers, true)
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|kv| {
                let (k, val) = kv.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize"))
                    .then(|| val.trim().parse::<usize>().ok())?
            })
        })
        .map_or(2000, |n| n.clamp(200, 2000))
}

fn run_query(
    shared: &Shared,
    caller: &Caller,
    q: Option<&String>,
    headers: &HeaderMap,
    all: bool,
) -> Result<Response, SimError> {
    let q = q.ok_or_else(|| SimError::malformed_query("missing q"))?;
    let mut st = shared.lock();
    let parsed = soql::parse(q, &st.org.schema, &caller.user)?;
    let records = st.org.all(&parsed.object).filter(|r| all || !is_deleted(r));
    let matched = parsed.run(records, &caller.user);
    match &parsed.aggregate {
        Some(Aggregate::Rows) => {
            let body = json!({"totalSize": matched.len(), "done": true, "records": []});
            return Ok(Json(body).into_response());
        }
        Some(Aggregate::Field(field)) => {
            let n = matched
                .iter()
                .filter(|r| r.get(field).is_some_and(|v| !v.is_null()))
                .count();
            let row = json!({"attributes": {"type": "AggregateResult"}, "expr0": n});
            let body = json!({"totalSize": 1, "done": true, "records": [row]});
            return Ok(Json(body).into_response());
        }
        None => {}
    }
    let data_path = shared.data_path();
    let rows: Vec<Value> = matched
        .into_iter()
        .map(|r| {
            let schema = &st.org.schema;
            present(
                &data_path,
                schema,
                &caller.user,
                &parsed.object,
                r,
                Some(&parsed.fields),
            )
        })
        .collect();
    let total = rows.len();
    st.cursors_opened += 1;
    let cursor = Cursor {
        opened: st.cursors_opened,
        rows,
        total,
        batch: batch_size(headers),
    };
    let body = page(shared, &mut st, cursor);
    // Serialized after the org's lock is let go (a page is up to 2,000 records).
    drop(st);
    Ok(Json(body).into_response())
}

/// The next batch of a cursor; a new locator is kept when rows remain.
fn page(shared: &Shared, st: &mut SimState, mut cursor: Cursor) -> Value {
    let take = cursor.batch.min(cursor.rows.len());
    let records: Vec<Value> = cursor.rows.drain(..take).collect();
    let done = cursor.rows.is_empty();
    let mut body = json!({"totalSize": cursor.total, "done": done, "records": records});
    if !done {
        let served = cursor.total - cursor.rows.len();
        let locator = format!("{}-{}", st.org.mint("01g").as_str(), served);
        body["nextRecordsUrl"] = json!(format!("{}/query/{}", shared.data_path(), locator));
        st.cursors.insert(locator, cursor);
        close_old_cursors(st);
    }
    body
}

/// Open cursors are capped; past the cap the oldest is closed (its locator then answers
/// `INVALID_QUERY_LOCATOR`), as Salesforce caps open cursors per user.
fn close_old_cursors(st: &mut SimState) {
    const MAX_OPEN_CURSORS: usize = 200;
    while st.cursors.len() > MAX_OPEN_CURSORS {
        let oldest = st
            .cursors
            .iter()
            .min_by_key(|(_, c)| c.opened)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => st.cursors.remove(&k),
            None => break,
        };
    }
}

/// `GET /query/{locator}` (and `/queryAll/{locator}`).
pub(crate) async fn query_more(
    State(shared): Shr,
    Path((_, locator)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let mut st = shared.lock();
    let cursor = st
        .cursors
        .remove(&locator)
        .ok_or_else(SimError::invalid_locator)?;
    let body = page(&shared, &mut st, cursor);
    drop(st);
    Ok(Json(body).into_response())
}
