//! The Composite resource (`POST /composite`): up to 25 subrequests in one call, which counts
//! as one call against the daily limit. Each subrequest is answered as the same request sent
//! alone would be (the data API's own routes run it, as the calling user, without metering),
//! and the answer lists one `{"body", "httpHeaders", "httpStatusCode", "referenceId"}` per
//! subrequest, in order, with HTTP 200.
//!
//! The rules kept:
//! - at most 25 subrequests, and at most 5 of them sObject Collections or query operations
//!   (`/composite/sobjects…`, `/query…`, `/queryAll…`); past either limit nothing runs and the
//!   answer is one result, 400 `LIMIT_EXCEEDED`, with a null `referenceId`;
//! - a subrequest has a `method` (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), a `url` under
//!   `/services/data/`, and a `referenceId` of letters, digits and underscores that starts with
//!   a letter or digit and names no earlier subrequest; `httpHeaders` may not set `Accept`,
//!   `Authorization` or `Content-Type`; a request that breaks one of these is refused whole (400);
//! - `@{ref.field}` and `@{ref[n]}` (chained, e.g. `@{list.records[0].Id}`) in a later url or
//!   body stand for that value of an earlier answer; a subrequest whose reference names a failed
//!   subrequest or a value that is not there does not run: 400 `PROCESSING_HALTED`;
//! - subrequests run one after another in the order sent (collation never reorders them here);
//!   a failed one stops nothing that does not refer to it (`allOrNone: false`).
//!
//! `allOrNone: true` is refused (400 `INVALID_OPERATION`): this org cannot roll back the
//! subrequests that already ran. A nested Composite (or Batch, Tree, Graph) subrequest is
//! answered 404 `NOT_FOUND`, as those resources are not offered here.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use super::error::SimError;
use super::guard::{Caller, Inner};
use super::records::json_object;
use super::state::Shared;

/// The most subrequests one composite call holds.
pub(crate) const MAX_SUBREQUESTS: usize = 25;

/// The most sObject Collections or query subrequests one composite call holds.
pub(crate) const MAX_COLLECTIONS_OR_QUERIES: usize = 5;

/// Marks the answer of a composite call that ran at least one write (the guard may then drop
/// the connection after the commit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wrote;

/// One subrequest as sent.
struct Sub {
    method: Method,
    url: String,
    reference: String,
    body: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// One subrequest's answer.
struct Answer {
    reference: String,
    status: u16,
    body: Value,
    location: Option<String>,
}

impl Answer {
    fn to_json(&self) -> Value {
        let mut headers = Map::new();
        if let Some(l) = &self.location {
            headers.insert("Location".into(), json!(l));
        }
        json!({
            "body": self.body,
            "httpHeaders": headers,
            "httpStatusCode": self.status,
            "referenceId": self.reference,
        })
    }

    fn refused(reference: &str, e: &SimError) -> Self {
        Self {
            reference: reference.to_string(),
            status: e.status,
            body: e.rest_body(),
            location: None,
        }
    }
}

/// The data path of a subrequest's url: what follows `/services/data/vNN.0`, without the query.
fn resource(url: &str) -> &str {
    let path = url.split('?').next().unwrap_or("");
    let rest = path.strip_prefix("/services/data/").unwrap_or("");
    rest.find('/').map_or("", |i| &rest[i..])
}

/// Whether a subrequest is an sObject Collections or query operation.
fn collection_or_query(url: &str) -> bool {
    let r = resource(url);
    r.starts_with("/composite/sobjects")
        || r == "/query"
        || r.starts_with("/query/")
        || r == "/queryAll"
        || r.starts_with("/queryAll/")
}

/// Whether a subrequest changes data (a collections retrieve by `POST` is a read).
fn writes(sub: &Sub) -> bool {
    let r = resource(&sub.url);
    let retrieve = sub.method == Method::POST
        && r.strip_prefix("/composite/sobjects/")
            .is_some_and(|t| !t.is_empty() && !t.contains('/'));
    sub.method != Method::GET && !retrieve
}

fn valid_reference(r: &str) -> bool {
    r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads one subrequest, refusing the call for a malformed one.
fn parse_sub(v: &Value, seen: &mut HashSet<String>) -> Result<Sub, SimError> {
    let o = v
        .as_object()
        .ok_or_else(|| SimError::bad_body("a subrequest must be an object"))?;
    let text = |k: &str| o.get(k).and_then(Value::as_str);
    let method = match text("method") {
        Some(m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE")) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| SimError::bad_body("method"))?
        }
        _ => {
            return Err(SimError::bad_body(
                "method must be GET, POST, PUT, PATCH or DELETE",
            ));
        }
    };
    let url = text("url")
        .filter(|u| u.starts_with("/services/data/"))
        .ok_or_else(|| SimError::bad_body("url must be a path under /services/data/"))?;
    let reference = text("referenceId").unwrap_or_default();
    if !valid_reference(reference) {
        return Err(SimError::bad_body(format!(
            "Provided referenceId ('{reference}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_')."
        )));
    }
    if !seen.insert(reference.to_string()) {
        return Err(SimError::bad_body(format!(
            "Duplicate referenceId provided in the request: {reference}"
        )));
    }
    let mut headers = Vec::new();
    for (k, v) in o
        .get("httpHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| SimError::bad_body(format!("bad header name {k}")))?;
        if [header::ACCEPT, header::AUTHORIZATION, header::CONTENT_TYPE].contains(&name) {
            return Err(SimError::bad_body(format!(
                "the {k} header of a subrequest comes from the composite request"
            )));
        }
        let value = HeaderValue::from_str(v.as_str().unwrap_or_default())
            .map_err(|_| SimError::bad_body(format!("bad value of header {k}")))?;
        headers.push((name, value));
    }
    Ok(Sub {
        method,
        url: url.to_string(),
        reference: reference.to_string(),
        body: o.get("body").cloned(),
        headers,
    })
}

/// The single result of a call refused for a limit: nothing ran.
fn over_limit(subs: &[Sub]) -> Option<Value> {
    let heavy = subs.iter().filter(|s| collection_or_query(&s.url)).count();
    let message = if subs.len() > MAX_SUBREQUESTS {
        format!("The request can’t contain more than {MAX_SUBREQUESTS} operations.")
    } else if heavy > MAX_COLLECTIONS_OR_QUERIES {
        format!(
            "The request can’t contain more than {MAX_COLLECTIONS_OR_QUERIES} sObject Collections or query operations."
        )
    } else {
        return None;
    };
    Some(json!({
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": null,
    }))
}

/// The value `expr` (`ref.field[0]…`, without `@{}`) names in the earlier answers, or the
/// error that halts the subrequest.
fn lookup(expr: &str, answers: &[Answer]) -> Result<Value, SimError> {
    let split = expr.find(['.', '[']).unwrap_or(expr.len());
    let (reference, mut path) = expr.split_at(split);
    let halted = || SimError::processing_halted(expr, reference);
    let answer = answers
        .iter()
        .find(|a| a.reference == reference && (200..300).contains(&a.status))
        .ok_or_else(halted)?;
    let mut at = &answer.body;
    while !path.is_empty() {
        if let Some(rest) = path.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            at = at.get(&rest[..end]).ok_or_else(halted)?;
            path = &rest[end..];
        } else if let Some(rest) = path.strip_prefix('[') {
            let end = rest.find(']').ok_or_else(halted)?;
            let n: usize = rest[..end].trim().parse().map_err(|_| halted())?;
            at = at.get(n).ok_or_else(halted)?;
            path = &rest[end + 1..];
        } else {
            return Err(halted());
        }
    }
    if at.is_null() {
        return Err(halted());
    }
    Ok(at.clone())
}

/// `text` with every `@{…}` replaced by the value it names (strings as they are, anything else
/// as JSON text).
fn resolve_text(text: &str, answers: &[Answer]) -> Result<String, SimError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let value = lookup(&rest[start + 2..start + len], answers)?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `v` with the references in every string resolved.
fn resolve_value(v: &Value, answers: &[Answer]) -> Result<Value, SimError> {
    Ok(match v {
        Value::String(s) if s.contains("@{") => Value::String(resolve_text(s, answers)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, answers))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_value(x, answers)?)))
                .collect::<Result<_, SimError>>()?,
        ),
        other => other.clone(),
    })
}

/// Runs one subrequest through the data API as `caller`.
async fn run(router: &Router, caller: &Caller, sub: &Sub, answers: &[Answer]) -> Answer {
    let resolved = resolve_text(&sub.url, answers).and_then(|url| {
        let body = sub
            .body
            .as_ref()
            .map(|b| resolve_value(b, answers))
            .transpose()?;
        Ok((url, body))
    });
    let (url, body) = match resolved {
        Ok(r) => r,
        Err(e) => return Answer::refused(&sub.reference, &e),
    };
    let target = resource(&url);
    let nested = target == "/composite"
        || (target.starts_with("/composite/") && !target.starts_with("/composite/sobjects"));
    if nested {
        return Answer::refused(&sub.reference, &SimError::not_found());
    }
    let mut request = Request::builder().method(sub.method.clone()).uri(&url);
    for (k, v) in &sub.headers {
        request = request.header(k, v);
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request
        .header(header::CONTENT_TYPE, "application/json")
        .extension(Inner {
            caller: caller.clone(),
            write: writes(sub),
        })
        .body(Body::from(bytes));
    let Ok(request) = request else {
        return Answer::refused(&sub.reference, &SimError::not_found());
    };
    let Ok(response) = router.clone().oneshot(request).await;
    answer(&sub.reference, response).await
}

/// A subrequest's answer read from its response.
async fn answer(reference: &str, response: Response) -> Answer {
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() && status == StatusCode::NOT_FOUND {
        SimError::not_found().rest_body()
    } else if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer {
        reference: reference.to_string(),
        status: status.as_u16(),
        body,
        location,
    }
}

/// `POST /composite`.
pub(crate) async fn composite(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, SimError> {
    let body = json_object(&body)?;
    if body.get("allOrNone").and_then(Value::as_bool) == Some(true) {
        return Err(SimError::invalid_operation(
            "allOrNone true is not supported by this org: send allOrNone false",
        ));
    }
    let list = body
        .get("compositeRequest")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| SimError::bad_body("compositeRequest is required"))?;
    let mut seen = HashSet::new();
    let subs = list
        .iter()
        .map(|v| parse_sub(v, &mut seen))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(refusal) = over_limit(&subs) {
        return Ok(Json(json!({"compositeResponse": [refusal]})).into_response());
    }
    let router = super::router::data_api(shared);
    let mut answers: Vec<Answer> = Vec::with_capacity(subs.len());
    for sub in &subs {
        let a = run(&router, &caller, sub, &answers).await;
        answers.push(a);
    }
    let wrote = subs
        .iter()
        .zip(&answers)
        .any(|(s, a)| writes(s) && (200..300).contains(&a.status));
    let results: Vec<Value> = answers.iter().map(Answer::to_json).collect();
    let mut response = Json(json!({"compositeResponse": results})).into_response();
    if wrote {
        response.extensions_mut().insert(Wrote);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reference: &str, status: u16, body: Value) -> Answer {
        Answer {
            reference: reference.into(),
            status,
            body,
            location: None,
        }
    }

    #[test]
    fn references_name_fields_and_entries_of_earlier_answers() {
        let answers = [
            answer("acct", 201, json!({"id": "001000000000001AAA"})),
            answer(
                "list",
                200,
                json!({"records": [{"Id": "003000000000001AAA"}]}),
            ),
        ];
        let url = "/services/data/v62.0/sobjects/Account/@{acct.id}";
        assert_eq!(
            resolve_text(url, &answers).expect("resolved"),
            "/services/data/v62.0/sobjects/Account/001000000000001AAA"
        );
        let body = json!({"ContactId": "@{list.records[0].Id}", "n": 1});
        assert_eq!(
            resolve_value(&body, &answers).expect("resolved"),
            json!({"ContactId": "003000000000001AAA", "n": 1})
        );
    }

    #[test]
    fn a_reference_to_a_failed_answer_or_a_missing_value_halts() {
        let answers = [
            answer("bad", 400, json!([{"errorCode": "X", "message": "no"}])),
            answer("ok", 200, json!([{"success": false}])),
        ];
        for expr in ["bad.id", "ok[0].id", "ok[3]", "nobody.id", "ok[x]"] {
            let e = lookup(expr, &answers).expect_err(expr);
            assert_eq!(e.code, "PROCESSING_HALTED", "{expr}");
        }
    }

    #[test]
    fn collections_and_queries_are_told_from_other_resources() {
        for url in [
            "/services/data/v62.0/composite/sobjects",
            "/services/data/v62.0/composite/sobjects/Contact/Ext__c",
            "/services/data/v62.0/query?q=SELECT+Id+FROM+Account",
            "/services/data/v62.0/queryAll/01g-2000",
        ] {
            assert!(collection_or_query(url), "{url}");
        }
        for url in [
            "/services/data/v62.0/sobjects/Account",
            "/services/data/v62.0/limits",
            "/services/data/v62.0/queryish",
        ] {
            assert!(!collection_or_query(url), "{url}");
        }
    }

    #[test]
    fn reference_ids_are_letters_digits_and_underscores() {
        assert!(valid_reference("refAccount_1"));
        assert!(valid_reference("0ref"));
        assert!(!valid_reference("_ref"));
        assert!(!valid_reference("ref-1"));
        assert!(!valid_reference(""));
    }
}
