//! The HTTP face of the simulated org: OAuth (`/services/oauth2/…`) and the REST API
//! (`/services/data/vNN.0/…`: sObjects, upsert, query/queryAll with cursors, sObject
//! Collections, limits), behind a guard that authenticates, counts, meters and injects faults.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::error::SimError;
use super::org::{self, is_deleted};
use super::schema;
use super::soql;
use super::state::{CodeGrant, Shared, token_signature};
use crate::domain::SalesforceId;

type Shr = State<Arc<Shared>>;

/// The router of the whole simulator: OAuth, the data API and the control surface.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let data = Router::new()
        .route("/limits", get(limits))
        .route("/query", get(query))
        .route("/queryAll", get(query_all))
        .route("/query/{locator}", get(query_more))
        .route("/queryAll/{locator}", get(query_more))
        .route("/sobjects/{object}", post(create))
        .route("/sobjects/{object}/updated", get(updated))
        .route("/sobjects/{object}/updated/", get(updated))
        .route("/sobjects/{object}/deleted", get(deleted))
        .route("/sobjects/{object}/deleted/", get(deleted))
        .route(
            "/sobjects/{object}/{id}",
            get(read).patch(update).delete(delete),
        )
        .route(
            "/sobjects/{object}/{field}/{value}",
            get(read_by_external_id).patch(upsert),
        )
        .route(
            "/composite/sobjects",
            post(collection_create)
                .patch(collection_update)
                .delete(collection_delete),
        )
        .route(
            "/composite/sobjects/{object}",
            get(collection_retrieve).post(collection_retrieve_post),
        )
        .route(
            "/composite/sobjects/{object}/{field}",
            axum::routing::patch(collection_upsert),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));
    Router::new()
        .route("/services/oauth2/authorize", get(authorize))
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke))
        .nest("/services/data/{version}", data)
        .nest("/__sim", super::control::router())
        .with_state(shared)
}

// ---------------------------------------------------------------- connections that can be dropped

/// A switch that makes one connection fail, so it closes without an answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn killed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A TCP stream that starts failing once its [`ConnKill`] is pulled.
#[derive(Debug)]
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: ConnKill,
}

fn killed_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "dropped by the simulator",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        std::pin::Pin::new(&mut this.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.kill.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        std::pin::Pin::new(&mut this.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The simulator's listener: plain TCP whose connections can be dropped mid-request.
#[derive(Debug)]
pub(crate) struct SimListener(pub(crate) TcpListener);

impl axum::serve::Listener for SimListener {
    type Io = KillableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    return (
                        KillableStream {
                            inner,
                            kill: ConnKill::default(),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, SimListener>>
    for ConnKill
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, SimListener>) -> Self {
        stream.io().kill.clone()
    }
}

// ---------------------------------------------------------------- the guard

/// What the guard decided before the handler runs.
enum Verdict {
    Refuse(SimError),
    Drop,
    Proceed { drop_after: bool },
}

/// Authenticates, meters and counts every data call, injects faults and adds
/// `Sforce-Limit-Info` to the answer.
async fn guard(State(shared): Shr, request: Request, next: Next) -> Response {
    let latency = shared.lock().faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let kill = request
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|c| c.0.clone());
    let endpoint = endpoint_name(request.method(), request.extensions().get::<MatchedPath>());
    let is_write = request.method() != Method::GET;
    let token = bearer(request.headers());
    let verdict = {
        let mut st = shared.lock();
        let limit = st.limit(&shared.config);
        let expiry = st.faults.session_expiry_after_calls;
        match token
            .as_deref()
            .and_then(|t| st.auth.access.get(t).copied())
        {
            None => Verdict::Refuse(SimError::invalid_session()),
            Some(calls) if expiry.is_some_and(|n| calls >= n) => {
                if let Some(t) = &token {
                    st.auth.access.remove(t);
                }
                Verdict::Refuse(SimError::invalid_session())
            }
            Some(_) if st.used >= limit => Verdict::Refuse(SimError::request_limit_exceeded()),
            Some(_) => {
                if let Some(calls) = token.as_deref().and_then(|t| st.auth.access.get_mut(t)) {
                    *calls += 1;
                }
                st.used += 1;
                st.calls.total += 1;
                *st.calls.by_endpoint.entry(endpoint).or_default() += 1;
                let faults = st.faults.clone();
                if st.roll(faults.drop_connection_rate) {
                    Verdict::Drop
                } else if st.roll(faults.error_5xx_rate) {
                    Verdict::Refuse(SimError::server_unavailable())
                } else if is_write && st.roll(faults.lock_row_rate) {
                    Verdict::Refuse(SimError::unable_to_lock_row())
                } else {
                    Verdict::Proceed {
                        drop_after: is_write && st.roll(faults.drop_after_commit_rate),
                    }
                }
            }
        }
    };
    let mut response = match verdict {
        Verdict::Refuse(e) => error(e),
        Verdict::Drop => {
            if let Some(k) = &kill {
                k.kill();
            }
            error(SimError::server_unavailable())
        }
        Verdict::Proceed { drop_after } => {
            let response = next.run(request).await;
            if drop_after && response.status().is_success() {
                if let Some(k) = &kill {
                    k.kill();
                }
            }
            response
        }
    };
    let usage = {
        let st = shared.lock();
        format!("api-usage={}/{}", st.used, st.limit(&shared.config))
    };
    if let Ok(v) = HeaderValue::from_str(&usage) {
        response.headers_mut().insert("Sforce-Limit-Info", v);
    }
    response
}

fn endpoint_name(method: &Method, path: Option<&MatchedPath>) -> String {
    let path = path.map_or("", |p| p.as_str());
    let path = path
        .strip_prefix("/services/data/{version}")
        .unwrap_or(path);
    format!("{method} {path}")
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_string())
}

// ---------------------------------------------------------------- helpers

/// A single-record error answer.
pub(crate) fn error(e: SimError) -> Response {
    (e.status_code(), Json(e.rest_body())).into_response()
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SimError::bad_body(
            "Cannot deserialize instance of object from a non-object value",
        )),
        Err(e) => Err(SimError::bad_body(format!("Unexpected character: {e}"))),
    }
}

fn object_info(object: &str) -> Result<&'static schema::ObjectInfo, SimError> {
    schema::object(object).ok_or_else(SimError::not_found)
}

/// A record as the REST API shows it: `attributes` plus the chosen (or all) fields.
fn present(
    shared: &Shared,
    obj: &schema::ObjectInfo,
    record: &Map<String, Value>,
    fields: Option<&[String]>,
) -> Value {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": obj.name, "url": format!("{}/sobjects/{}/{}", shared.data_path(), obj.name, id)}),
    );
    match fields {
        Some(fields) => {
            for f in fields {
                out.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
            }
        }
        None => {
            for f in obj.all_fields() {
                out.insert(f.to_string(), record.get(f).cloned().unwrap_or(Value::Null));
            }
            for (k, v) in record {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Resolves a `fields=` list against an object; `INVALID_FIELD` for unknown names. Record
/// reads answer the `Id` as well, as Salesforce does.
fn field_list(
    obj: &schema::ObjectInfo,
    fields: Option<&String>,
) -> Result<Option<Vec<String>>, SimError> {
    let Some(fields) = fields.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = vec!["Id".to_string()];
    for name in fields.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = obj
            .field(name)
            .ok_or_else(|| SimError::invalid_field(obj.name, name))?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(Some(out))
}

fn fire_on_api(shared: &Shared) -> bool {
    shared.config.outbound_on_api_writes
}

// ---------------------------------------------------------------- OAuth

async fn authorize(State(shared): Shr, Query(params): Query<HashMap<String, String>>) -> Response {
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            "error=redirect_uri_mismatch&error_description=redirect_uri must be absolute",
        )
            .into_response();
    };
    if params.get("client_id") != Some(&shared.credentials.client_id) {
        target
            .query_pairs_mut()
            .append_pair("error", "invalid_client_id")
            .append_pair("error_description", "client identifier invalid");
    } else if params.get("response_type").map(String::as_str) != Some("code") {
        target
            .query_pairs_mut()
            .append_pair("error", "unsupported_response_type")
            .append_pair("error_description", "response type not supported");
    } else {
        let code = {
            let mut st = shared.lock();
            let code = format!("aPrx{}==", st.token(60));
            let grant = CodeGrant {
                redirect_uri: redirect_uri.clone(),
                code_challenge: params.get("code_challenge").cloned(),
            };
            st.auth.codes.insert(code.clone(), grant);
            code
        };
        target.query_pairs_mut().append_pair("code", &code);
    }
    if let Some(state) = params.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(shared): Shr, Form(form): Form<HashMap<String, String>>) -> Response {
    shared.lock().calls.token_requests += 1;
    let creds = &shared.credentials;
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("client_id") != Some(creds.client_id.as_str()) {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if get("client_secret").is_some_and(|s| s != creds.client_secret) {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let mut st = shared.lock();
    let new_refresh = match get("grant_type") {
        Some("authorization_code") => {
            let Some(grant) = get("code").and_then(|c| st.auth.codes.remove(c)) else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = &grant.code_challenge {
                let Some(verifier) = get("code_verifier") else {
                    return oauth_error("invalid_grant", "invalid code verifier");
                };
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if computed != *challenge {
                    return oauth_error("invalid_request", "invalid code verifier");
                }
            }
            let refresh = format!("5Aep{}", st.token(83));
            st.auth.refresh.push(refresh.clone());
            Some(refresh)
        }
        Some("refresh_token") => {
            if !get("refresh_token").is_some_and(|r| st.auth.refresh.iter().any(|k| k == r)) {
                return oauth_error("invalid_grant", "expired access/refresh token");
            }
            None
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    };
    let access = st.new_access_token(&shared.org_id);
    drop(st);
    let id = format!(
        "{}/id/{}/{}",
        shared.instance_url,
        shared.org_id.as_str(),
        shared.user_id.as_str()
    );
    let issued_at = Utc::now().timestamp_millis().to_string();
    let mut body = json!({
        "access_token": access,
        "signature": token_signature(&creds.client_secret, &id, &issued_at),
        "scope": "refresh_token api full",
        "instance_url": shared.instance_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(refresh) = new_refresh {
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

async fn revoke(State(shared): Shr, Form(form): Form<HashMap<String, String>>) -> Response {
    let Some(token) = form.get("token") else {
        return oauth_error("unsupported_token_type", "missing token");
    };
    let mut st = shared.lock();
    let was_refresh = st.auth.refresh.iter().any(|r| r == token);
    if was_refresh {
        st.auth.refresh.retain(|r| r != token);
        st.auth.access.clear();
    } else if st.auth.access.remove(token).is_none() {
        return oauth_error("invalid_token", "invalid token");
    }
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------- records

async fn limits(State(shared): Shr) -> Response {
    let st = shared.lock();
    let max = st.limit(&shared.config);
    Json(json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(st.used)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
    }))
    .into_response()
}

async fn create(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = json_object(&body).and_then(|b| shared.create(&object, &b, fire_on_api(&shared)));
    match result {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({"id": id.as_str(), "success": true, "errors": []})),
        )
            .into_response(),
        Err(e) => error(e),
    }
}

async fn read(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = (|| {
        let obj = object_info(&object)?;
        let fields = field_list(obj, params.get("fields"))?;
        let st = shared.lock();
        let (_, _, record) = st.org.live(Some(obj), &id)?;
        let since = headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let stamp = record
            .get("SystemModstamp")
            .and_then(Value::as_str)
            .and_then(org::parse_datetime);
        if let (Some(since), Some(stamp)) = (since, stamp) {
            if stamp <= since {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            }
        }
        Ok(Json(present(&shared, obj, record, fields.as_deref())).into_response())
    })();
    result.unwrap_or_else(error)
}

/// `If-Modified-Since`: `EEE, dd MMM yyyy HH:mm:ss z` (RFC 2822 zones, `GMT` included).
fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

async fn update(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    match json_object(&body)
        .and_then(|b| shared.update(Some(&object), &id, &b, fire_on_api(&shared)))
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn delete(
    State(shared): Shr,
    Path((_, object, id)): Path<(String, String, String)>,
) -> Response {
    match shared.delete(Some(&object), &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

fn multiple_choices(shared: &Shared, object: &str, ids: &[SalesforceId]) -> Response {
    let urls: Vec<String> = ids
        .iter()
        .map(|id| format!("{}/sobjects/{}/{}", shared.data_path(), object, id))
        .collect();
    (StatusCode::MULTIPLE_CHOICES, Json(json!(urls))).into_response()
}

async fn read_by_external_id(
    State(shared): Shr,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = (|| {
        let obj = object_info(&object)?;
        let fields = field_list(obj, params.get("fields"))?;
        let field = super::state::external_id_field(obj, &field)?;
        let st = shared.lock();
        let ids = st.org.find_by_field(obj, &field, &value);
        match ids.as_slice() {
            [] => Err(SimError::not_found()),
            [one] => {
                let (_, _, record) = st.org.live(Some(obj), one.as_str())?;
                Ok(Json(present(&shared, obj, record, fields.as_deref())).into_response())
            }
            _ => Ok(multiple_choices(&shared, obj.name, &ids)),
        }
    })();
    result.unwrap_or_else(error)
}

async fn upsert(
    State(shared): Shr,
    Path((_, object, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let result = json_object(&body)
        .and_then(|b| shared.upsert(&object, &field, &value, &b, fire_on_api(&shared)));
    match result {
        Ok(Ok((id, created))) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                status,
                Json(json!({"id": id.as_str(), "success": true, "errors": [], "created": created})),
            )
                .into_response()
        }
        Ok(Err(ids)) => multiple_choices(&shared, &object, &ids),
        Err(e) => error(e),
    }
}

// ---------------------------------------------------------------- replication

/// The `start`/`end` window of getUpdated/getDeleted, seconds truncated as Salesforce does.
fn window(params: &HashMap<String, String>) -> Result<(DateTime<Utc>, DateTime<Utc>), SimError> {
    let at = |k: &str| -> Result<DateTime<Utc>, SimError> {
        let raw = params
            .get(k)
            .ok_or_else(|| SimError::bad_body(format!("missing {k}")))?;
        // An unencoded `+` in the offset arrives as a space.
        org::parse_datetime(&raw.replace(' ', "+"))
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

fn stamp(record: &Map<String, Value>) -> Option<DateTime<Utc>> {
    record
        .get("SystemModstamp")
        .and_then(Value::as_str)
        .and_then(org::parse_datetime)
}

async fn updated(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = (|| {
        let obj = object_info(&object)?;
        let (start, end) = window(&params)?;
        let st = shared.lock();
        let ids: Vec<&str> = st
            .org
            .all(obj)
            .filter(|r| !is_deleted(r))
            .filter(|r| stamp(r).is_some_and(|s| s >= start && s < end))
            .filter_map(|r| r.get("Id").and_then(Value::as_str))
            .collect();
        Ok(Json(json!({"ids": ids, "latestDateCovered": org::rest_datetime(end)})).into_response())
    })();
    result.unwrap_or_else(error)
}

async fn deleted(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = (|| {
        let obj = object_info(&object)?;
        let (start, end) = window(&params)?;
        let st = shared.lock();
        let records: Vec<Value> = st
            .org
            .all(obj)
            .filter(|r| is_deleted(r))
            .filter_map(|r| Some((r.get("Id")?.clone(), stamp(r)?)))
            .filter(|(_, s)| *s >= start && *s < end)
            .map(|(id, s)| json!({"id": id, "deletedDate": org::rest_datetime(s)}))
            .collect();
        Ok(Json(json!({
            "deletedRecords": records,
            "earliestDateAvailable": org::rest_datetime(start),
            "latestDateCovered": org::rest_datetime(end),
        }))
        .into_response())
    })();
    result.unwrap_or_else(error)
}

// ---------------------------------------------------------------- query

async fn query(
    State(shared): Shr,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    run_query(&shared, params.get("q"), &headers, false)
}

async fn query_all(
    State(shared): Shr,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    run_query(&shared, params.get("q"), &headers, true)
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

fn run_query(shared: &Shared, q: Option<&String>, headers: &HeaderMap, all: bool) -> Response {
    let Some(q) = q else {
        return error(SimError::malformed_query("missing q"));
    };
    let parsed = match soql::parse(q) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let mut st = shared.lock();
    let rows: Vec<Value> = {
        let matched = parsed.run(st.org.all(parsed.object).filter(|r| all || !is_deleted(r)));
        if parsed.count {
            return Json(json!({"totalSize": matched.len(), "done": true, "records": []}))
                .into_response();
        }
        matched
            .into_iter()
            .map(|r| present(shared, parsed.object, r, Some(&parsed.fields)))
            .collect()
    };
    let total = rows.len();
    st.cursors_opened += 1;
    let cursor = super::state::Cursor {
        opened: st.cursors_opened,
        rows,
        total,
        batch: batch_size(headers),
    };
    Json(page(shared, &mut st, cursor)).into_response()
}

/// The next batch of a cursor; a new locator is kept when rows remain.
fn page(shared: &Shared, st: &mut super::state::State, mut cursor: super::state::Cursor) -> Value {
    let take = cursor.batch.min(cursor.rows.len());
    let records: Vec<Value> = cursor.rows.drain(..take).collect();
    let mut body =
        json!({"totalSize": cursor.total, "done": cursor.rows.is_empty(), "records": records});
    if !cursor.rows.is_empty() {
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
fn close_old_cursors(st: &mut super::state::State) {
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

async fn query_more(State(shared): Shr, Path((_, locator)): Path<(String, String)>) -> Response {
    let mut st = shared.lock();
    match st.cursors.remove(&locator) {
        Some(cursor) => Json(page(&shared, &mut st, cursor)).into_response(),
        None => error(SimError::invalid_locator()),
    }
}

// ---------------------------------------------------------------- sObject Collections

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

fn success(id: &SalesforceId, created: Option<bool>) -> Value {
    let mut v = json!({"id": id.as_str(), "success": true, "errors": []});
    if let Some(c) = created {
        v["created"] = json!(c);
    }
    v
}

fn failure(id: Option<&str>, e: &SimError) -> Value {
    let mut v = json!({"success": false, "errors": [e.collection_entry()]});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

/// One planned write of a collection call.
enum Planned {
    Create(&'static schema::ObjectInfo, org::Record),
    Update(&'static schema::ObjectInfo, SalesforceId, org::Record),
    Delete(SalesforceId),
}

/// Runs a collection write: with `allOrNone` every record is validated before any is written.
fn run_collection(
    shared: &Shared,
    all_or_none: bool,
    n: usize,
    plan: impl Fn(&org::Org, usize) -> (Option<String>, Result<Planned, SimError>),
) -> Response {
    let mut st = shared.lock();
    let mut results = Vec::with_capacity(n);
    let mut changed = Vec::new();
    if all_or_none {
        let plans: Vec<_> = (0..n).map(|i| plan(&st.org, i)).collect();
        if plans.iter().any(|(_, p)| p.is_err()) {
            let rolled_back = SimError::rolled_back();
            for (id, p) in &plans {
                results.push(failure(
                    id.as_deref(),
                    p.as_ref().err().unwrap_or(&rolled_back),
                ));
            }
            return Json(json!(results)).into_response();
        }
        for (_, p) in plans {
            if let Ok(p) = p {
                results.push(commit(&mut st.org, p, &mut changed));
            }
        }
    } else {
        for i in 0..n {
            let (id, p) = plan(&st.org, i);
            match p {
                Ok(p) => results.push(commit(&mut st.org, p, &mut changed)),
                Err(e) => results.push(failure(id.as_deref(), &e)),
            }
        }
    }
    if fire_on_api(shared) {
        shared.notify_changes(&mut st, &changed);
    }
    Json(json!(results)).into_response()
}

fn commit(o: &mut org::Org, p: Planned, changed: &mut Vec<org::Changed>) -> Value {
    match p {
        Planned::Create(obj, record) => {
            let id = o.commit_create(obj, record);
            changed.push((obj.name, id.clone()));
            success(&id, None)
        }
        Planned::Update(obj, id, record) => {
            o.commit_update(obj, &id, record);
            changed.push((obj.name, id.clone()));
            success(&id, None)
        }
        Planned::Delete(id) => match o.delete(None, id.as_str()) {
            Ok(id) => success(&id, None),
            Err(e) => failure(Some(id.as_str()), &e),
        },
    }
}

async fn collection_create(State(shared): Shr, body: Bytes) -> Response {
    let (all_or_none, records) = match collection_body(&body) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    run_collection(&shared, all_or_none, records.len(), |o, i| {
        let r = &records[i];
        let plan = record_type(r)
            .ok_or_else(|| SimError::bad_body("attributes.type is required"))
            .and_then(|t| object_info(&t))
            .and_then(|obj| {
                if r.contains_key("Id") || r.contains_key("id") {
                    return Err(SimError::invalid_operation(
                        "cannot specify Id in an insert call",
                    ));
                }
                Ok(Planned::Create(obj, o.prepare_create(obj, r)?))
            });
        (None, plan)
    })
}

async fn collection_update(State(shared): Shr, body: Bytes) -> Response {
    let (all_or_none, records) = match collection_body(&body) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    run_collection(&shared, all_or_none, records.len(), |o, i| {
        let mut r = records[i].clone();
        let id = r
            .remove("id")
            .or_else(|| r.remove("Id"))
            .and_then(|v| v.as_str().map(String::from));
        let plan = match &id {
            None => Err(SimError::missing_id()),
            Some(id) => {
                let obj = record_type(&r).and_then(|t| schema::object(&t));
                o.prepare_update(obj, id, &r)
                    .map(|(obj, id, rec)| Planned::Update(obj, id, rec))
            }
        };
        (id, plan)
    })
}

async fn collection_delete(
    State(shared): Shr,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids: Vec<String> = params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > 200 {
        return error(SimError::too_many_records());
    }
    let all_or_none = params.get("allOrNone").is_some_and(|v| v == "true");
    run_collection(&shared, all_or_none, ids.len(), |o, i| {
        let plan = o.live(None, &ids[i]).map(|(_, id, _)| Planned::Delete(id));
        (Some(ids[i].clone()), plan)
    })
}

async fn collection_upsert(
    State(shared): Shr,
    Path((_, object, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (all_or_none, records) = match collection_body(&body) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    let obj = match object_info(&object)
        .and_then(|o| Ok((o, super::state::external_id_field(o, &field)?)))
    {
        Ok(o) => o,
        Err(e) => return error(e),
    };
    let (obj, field) = obj;
    // Upserts decide create-or-update per record; allOrNone validates them all first.
    let plan = |o: &org::Org, r: &Map<String, Value>| -> Result<(Planned, bool), SimError> {
        let value = r
            .get(&field)
            .and_then(|v| v.as_str().map(String::from).or_else(|| Some(v.to_string())));
        let Some(value) = value.filter(|v| v != "null") else {
            return Err(SimError::required_missing(vec![field.clone()]));
        };
        let mut body = r.clone();
        body.remove("attributes");
        let ids = if field == "Id" {
            SalesforceId::parse(&value)
                .ok()
                .filter(|id| o.find(id).is_some())
                .into_iter()
                .collect()
        } else {
            o.find_by_field(obj, &field, &value)
        };
        match ids.as_slice() {
            [] if field == "Id" => Err(SimError::not_found()),
            [] => Ok((Planned::Create(obj, o.prepare_create(obj, &body)?), true)),
            [one] => {
                body.remove(&field);
                let (obj, id, rec) = o.prepare_update(Some(obj), one.as_str(), &body)?;
                Ok((Planned::Update(obj, id, rec), false))
            }
            _ => Err(SimError {
                status: 300,
                code: "DUPLICATE_EXTERNAL_ID".into(),
                message: format!(
                    "{field}: more than one record found for external id field: {value}"
                ),
                fields: Some(vec![field.clone()]),
            }),
        }
    };
    let mut st = shared.lock();
    let mut results = Vec::new();
    let mut changed = Vec::new();
    let plans: Vec<_> = if all_or_none {
        records.iter().map(|r| plan(&st.org, r)).collect()
    } else {
        Vec::new()
    };
    if all_or_none && plans.iter().any(Result::is_err) {
        let rolled_back = SimError::rolled_back();
        for p in &plans {
            results.push(failure(None, p.as_ref().err().unwrap_or(&rolled_back)));
        }
        return Json(json!(results)).into_response();
    }
    for r in &records {
        match plan(&st.org, r) {
            Ok((p, created)) => {
                let mut v = commit(&mut st.org, p, &mut changed);
                v["created"] = json!(created);
                results.push(v);
            }
            Err(e) => results.push(failure(None, &e)),
        }
    }
    if fire_on_api(&shared) {
        shared.notify_changes(&mut st, &changed);
    }
    Json(json!(results)).into_response()
}

fn retrieve(shared: &Shared, object: &str, ids: &[String], fields: Option<&String>) -> Response {
    let result = (|| {
        let obj = object_info(object)?;
        let fields =
            field_list(obj, fields)?.ok_or_else(|| SimError::bad_body("fields is required"))?;
        let st = shared.lock();
        Ok(ids
            .iter()
            .map(|id| match st.org.live(Some(obj), id) {
                Ok((_, _, record)) => present(shared, obj, record, Some(&fields)),
                Err(_) => Value::Null,
            })
            .collect::<Vec<_>>())
    })();
    match result {
        Ok(records) => Json(json!(records)).into_response(),
        Err(e) => error(e),
    }
}

async fn collection_retrieve(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids: Vec<String> = params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > 2000 {
        return error(SimError::too_many_records());
    }
    retrieve(&shared, &object, &ids, params.get("fields"))
}

async fn collection_retrieve_post(
    State(shared): Shr,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match json_object(&body) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
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
    let fields = list("fields").join(",");
    retrieve(&shared, &object, &list("ids"), Some(&fields))
}
