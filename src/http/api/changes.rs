//! `/api/v1/changes`: the change log as a feed. `GET /changes?after=&limit=&wait=&types=` is a
//! page (a long poll with `wait`); `GET /changes/stream` is the same as server-sent events, one
//! event per entry (`id:` its sequence number, `event:` its type, `data:` the entry), resumed
//! from `Last-Event-ID`, with a keep-alive comment while nothing happens. Entries past the
//! retention answer 410 with the earliest still kept.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::Params;
use super::page::MAX_LIMIT;
use crate::domain::TypeFilter;
use crate::http::state::AppState;
use crate::store::{ChangeEntry, Store};
use crate::sync::local::changes::{self, FeedRequest};

/// The longest wait a reader may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long the stream waits before each keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Entries the stream reads at once.
const STREAM_BATCH: usize = 256;

/// The longest `wait` a long poll may ask for: 60 seconds, and a second less than the request
/// timeout, so the answer comes before the timeout cuts the request.
pub fn longest_wait(request_timeout: Duration) -> Duration {
    MAX_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1)))
}

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/changes", get(list))
        .route("/changes/stream", get(stream))
}

/// `GET /api/v1/changes`: where to start, how many, how long to wait, which types.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChangesQuery {
    /// The last sequence number the reader has: entries after it (default: from the oldest
    /// entry kept).
    after: Option<u64>,
    /// Entries at most, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Seconds to wait for an entry when there is none yet (default 0; at most 60, and less
    /// than `server.request_timeout_s`).
    wait: Option<u64>,
    /// Only these types, comma-separated: `kind.what` or `kind.*` (default: every type).
    types: Option<String>,
}

/// `GET /api/v1/changes/stream`: where to start and which types; `Last-Event-ID`, when sent,
/// wins over `after`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// The last sequence number the reader has (default: from the oldest entry kept).
    after: Option<u64>,
    /// Only these types, comma-separated: `kind.what` or `kind.*`.
    types: Option<String>,
}

/// A page of the change log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Changes {
    /// The entries, in sequence order.
    changes: Vec<ChangeEntry>,
    /// Pass as `after` to read on (past entries of unwanted types too).
    next: u64,
}

fn filter(types: Option<&str>) -> Result<TypeFilter, ApiError> {
    let patterns: Vec<&str> = types
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    TypeFilter::parse(&patterns).map_err(|e| ApiError::bad_request("types", e.to_string()))
}

impl ChangesQuery {
    fn request(self, max_wait: Duration) -> Result<FeedRequest, ApiError> {
        let limit = match self.limit {
            None => 100,
            Some(n @ 1..) if n as usize <= MAX_LIMIT => n as usize,
            Some(_) => {
                let msg = format!("must be between 1 and {MAX_LIMIT}");
                return Err(ApiError::bad_request("limit", msg));
            }
        };
        let wait = Duration::from_secs(self.wait.unwrap_or(0));
        if wait > max_wait {
            let msg = format!("must be at most {} seconds", max_wait.as_secs());
            return Err(ApiError::bad_request("wait", msg));
        }
        Ok(FeedRequest {
            after: self.after,
            limit,
            wait,
            filter: filter(self.types.as_deref())?,
        })
    }
}

/// The entries after `after`; with `wait`, answers as soon as one lands (a long poll).
#[utoipa::path(get, path = "/api/v1/changes", params(ChangesQuery),
    responses((status = 200, body = Changes), (status = 400, body = ErrorBody),
        (status = 410, description = "past the retention; `error.earliest` is the first kept",
            body = ErrorBody)))]
async fn list(
    State(AppState {
        store, feed_wait, ..
    }): State<AppState>,
    Params(q): Params<ChangesQuery>,
) -> Result<Json<Changes>, ApiError> {
    let page = changes::read(&store, &q.request(feed_wait)?).await?;
    Ok(Json(Changes {
        changes: page.entries,
        next: page.next,
    }))
}

/// The change log as server-sent events: each entry once, in order, as it lands.
#[utoipa::path(get, path = "/api/v1/changes/stream", params(StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this entry")),
    responses((status = 200, content_type = "text/event-stream",
            description = "`id:` the sequence number, `event:` the type, `data:` the entry"),
        (status = 400, body = ErrorBody),
        (status = 410, description = "past the retention", body = ErrorBody)))]
async fn stream(
    State(AppState { store, .. }): State<AppState>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
        .map(|id| id.ok_or_else(|| ApiError::bad_request("Last-Event-ID", "not a number")))
        .transpose()?;
    let req = FeedRequest {
        after: resume.or(q.after),
        limit: STREAM_BATCH,
        wait: Duration::ZERO,
        filter: filter(q.types.as_deref())?,
    };
    // A position past the retention is refused before the stream starts.
    changes::read(&store, &req).await?;
    let events = entries(store, req).map(|e| Ok(event(&e)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// Every entry after `req.after`, as it lands; ends when the reader falls behind the retention
/// or the store fails (the client reconnects with `Last-Event-ID`).
fn entries(store: Store, req: FeedRequest) -> impl Stream<Item = ChangeEntry> {
    let req = FeedRequest {
        wait: MAX_WAIT,
        ..req
    };
    futures::stream::unfold(Some((store, req)), |state| async move {
        let (store, mut req) = state?;
        match changes::read(&store, &req).await {
            Ok(page) => {
                req.after = Some(page.next);
                Some((page.entries, Some((store, req))))
            }
            Err(e) => {
                tracing::info!(error = %e, "change stream ends");
                None
            }
        }
    })
    .flat_map(futures::stream::iter)
}

fn event(e: &ChangeEntry) -> Event {
    let data = serde_json::to_string(e).unwrap_or_default();
    Event::default()
        .id(e.seq.to_string())
        .event(e.kind.to_string())
        .data(data)
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, stream), components(schemas(Changes, ChangeEntry)))]
pub(super) struct ChangesDoc;
