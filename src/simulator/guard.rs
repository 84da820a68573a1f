//! The guard in front of every data call: it authenticates the bearer token (the call then acts
//! as the token's user, a [`Caller`]), meters the daily limit, counts the call, injects faults and
//! adds `Sforce-Limit-Info` to the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::composite::Wrote;
use super::error::{MAX_URI_BYTES, SimError};
use super::listener::ConnKill;
use super::state::{Shared, Writer};
use crate::domain::SalesforceId;

/// The user a data call acts as: the owner of its access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: SalesforceId,
}

impl Caller {
    /// The write this call makes: as the caller, letting an alert-only duplicate rule pass when
    /// `Sforce-Duplicate-Rule-Header: allowSave=true` is sent.
    pub(crate) fn writer(&self, headers: &HeaderMap) -> Writer {
        let allow = headers
            .get("Sforce-Duplicate-Rule-Header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split([';', ',']).any(|kv| {
                    kv.split_once('=').is_some_and(|(k, val)| {
                        k.trim().eq_ignore_ascii_case("allowSave")
                            && val.trim().eq_ignore_ascii_case("true")
                    })
                })
            });
        Writer {
            user: self.user.clone(),
            allow_duplicates: allow,
        }
    }
}

/// The endpoint name of a collections retrieve by `POST` (a read).
const RETRIEVE_BY_POST: &str = "POST /composite/sobjects/{object}";

/// The endpoint name of the Composite resource: a write when one of its subrequests writes.
const COMPOSITE: &str = "POST /composite";

/// Marks a subrequest of a composite call: it acts as the composite's caller and is neither
/// metered nor slowed; a write among them may meet a row lock, as a write call may.
#[derive(Debug, Clone)]
pub(crate) struct Inner {
    pub(crate) caller: Caller,
    pub(crate) write: bool,
}

/// A write handler's writer: the [`Caller`] the guard authenticated, with the duplicate-rule
/// header of the request. A request the guard did not pass has no caller: 401.
impl<S: Send + Sync> FromRequestParts<S> for Writer {
    type Rejection = SimError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, SimError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or_else(SimError::invalid_session)?;
        Ok(caller.writer(&parts.headers))
    }
}

/// What the guard decided before the handler runs.
enum Verdict {
    Refuse(SimError),
    Drop,
    Proceed { caller: Caller, drop_after: bool },
}

/// The bearer token of a request (`Bearer` or the older `OAuth` scheme).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_string())
}

fn endpoint_name(method: &Method, path: Option<&MatchedPath>) -> String {
    let path = path.map_or("", |p| p.as_str());
    let path = path
        .strip_prefix("/services/data/{version}")
        .unwrap_or(path);
    format!("{method} {path}")
}

/// Checks the token and the limit, counts the call and rolls the faults.
fn decide(shared: &Shared, token: Option<&str>, endpoint: String, is_write: bool) -> Verdict {
    let mut st = shared.lock();
    let limit = st.limit(&shared.config);
    let expiry = st.faults.session_expiry_after_calls;
    let Some(token) = token else {
        return Verdict::Refuse(SimError::invalid_session());
    };
    let Some((user, calls)) = st.auth.access(token).map(|g| (g.user.clone(), g.calls)) else {
        return Verdict::Refuse(SimError::invalid_session());
    };
    if expiry.is_some_and(|n| calls >= n) {
        st.auth.drop_access(token);
        return Verdict::Refuse(SimError::invalid_session());
    }
    if st.used >= limit {
        return Verdict::Refuse(SimError::request_limit_exceeded());
    }
    if let Some(grant) = st.auth.access(token) {
        grant.calls += 1;
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
        let drop_after = is_write && st.roll(faults.drop_after_commit_rate);
        Verdict::Proceed {
            caller: Caller { user },
            drop_after,
        }
    }
}

/// Runs a composite call's subrequest as its caller, counted per endpoint as a subrequest.
async fn subrequest(shared: &Shared, inner: Inner, mut request: Request, next: Next) -> Response {
    let endpoint = endpoint_name(request.method(), request.extensions().get::<MatchedPath>());
    let locked = {
        let mut st = shared.lock();
        *st.calls.by_subrequest.entry(endpoint).or_default() += 1;
        let rate = st.faults.lock_row_rate;
        inner.write && st.roll(rate)
    };
    if locked {
        return SimError::unable_to_lock_row().into_response();
    }
    request.extensions_mut().insert(inner.caller);
    next.run(request).await
}

/// Whether a write's connection is closed after its commit (for a composite call: one that
/// wrote something).
fn drops_after(shared: &Shared, decided: bool, composite: bool, response: &Response) -> bool {
    if !response.status().is_success() {
        return false;
    }
    if composite && response.extensions().get::<Wrote>().is_some() {
        let mut st = shared.lock();
        let rate = st.faults.drop_after_commit_rate;
        return st.roll(rate);
    }
    decided
}

/// Authenticates, meters and counts every data call, injects faults and adds
/// `Sforce-Limit-Info` to the answer.
pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(inner) = request.extensions_mut().remove::<Inner>() {
        return subrequest(&shared, inner, request, next).await;
    }
    let latency = shared.lock().faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let kill = request
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|c| c.0.clone());
    let uri_len = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().to_string().len(),
        |u| u.0.to_string().len(),
    );
    if uri_len > MAX_URI_BYTES {
        // Refused at the door, before the call is counted.
        return SimError::uri_too_long(uri_len).into_response();
    }
    let endpoint = endpoint_name(request.method(), request.extensions().get::<MatchedPath>());
    // A collections retrieve is a read, whichever method carries its ids; a composite call is
    // judged by what its subrequests did.
    let composite = endpoint == COMPOSITE;
    let is_write = request.method() != Method::GET && endpoint != RETRIEVE_BY_POST && !composite;
    let token = bearer(request.headers());
    let mut response = match decide(&shared, token.as_deref(), endpoint, is_write) {
        Verdict::Refuse(e) => e.into_response(),
        Verdict::Drop => {
            if let Some(k) = &kill {
                k.kill();
            }
            SimError::server_unavailable().into_response()
        }
        Verdict::Proceed { caller, drop_after } => {
            request.extensions_mut().insert(caller);
            let response = next.run(request).await;
            if drops_after(&shared, drop_after, composite, &response) {
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
