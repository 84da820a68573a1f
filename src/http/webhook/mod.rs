//! The webhook endpoints: `POST /webhooks/salesforce/outbound/{webhook_key}` (SOAP Outbound
//! Messages) and `POST /webhooks/salesforce/events/{webhook_key}` (Standard-Webhooks-signed JSON).
//!
//! Both follow one order: resolve the key to its org (401), check the media type (415), read the
//! body up to the limit (413), verify the signature before parsing (signed events, 401), parse
//! (400), check the org (403), then store every notification with its dedupe key in one
//! transaction and answer only once that write is on disk. Intake decides nothing about pulls:
//! the inbox worker skips what is already applied, sfsync's own writes included.

pub mod outbound_message;
pub mod signature;
pub mod signed_event;

use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::AppState;
use crate::config::Connection;
use crate::store::{DedupeSource, Delivery, IngestOutcome, StoreError};

/// Why a webhook request was refused. Every message is safe to send: none carries a secret, a
/// signature or request content.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The key in the path belongs to no connection.
    #[error("unknown webhook key")]
    UnknownKey,
    /// The org has no Standard Webhooks secret configured.
    #[error("signed events are not configured for this connection")]
    NoSecrets,
    /// The message names another org than the key's.
    #[error("organization id does not match this endpoint")]
    WrongOrg,
    /// The body is larger than allowed.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The media type is not the expected one.
    #[error("unsupported media type: expected {0}")]
    MediaType(&'static str),
    /// The body could not be read.
    #[error("request body could not be read")]
    BodyRead,
    /// Signature verification failed.
    #[error("signature verification failed: {0}")]
    Signature(#[from] signature::SignatureError),
    /// The SOAP body is malformed or hostile.
    #[error("{0}")]
    Outbound(#[from] outbound_message::OutboundParseError),
    /// The JSON body is malformed.
    #[error("{0}")]
    Event(#[from] signed_event::EventParseError),
    /// The store could not make the message durable; the sender must retry.
    #[error("temporarily unable to store the message")]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        use signature::SignatureError as S;
        match self {
            Self::UnknownKey | Self::NoSecrets => StatusCode::UNAUTHORIZED,
            Self::Signature(S::MissingHeader(_) | S::MalformedHeader(_)) => StatusCode::BAD_REQUEST,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::WrongOrg | Self::Outbound(outbound_message::OutboundParseError::OtherOrg) => {
                StatusCode::FORBIDDEN
            }
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyRead | Self::Outbound(_) | Self::Event(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The reason this refusal is counted under in `sfsync_inbox_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::NoSecrets => "not_configured",
            Self::WrongOrg | Self::Outbound(outbound_message::OutboundParseError::OtherOrg) => {
                "wrong_org"
            }
            Self::TooLarge(_) => "too_large",
            Self::MediaType(_) => "media_type",
            Self::BodyRead => "body_read",
            Self::Signature(_) => "signature",
            Self::Outbound(_) | Self::Event(_) => "malformed",
            Self::Store(_) => "store",
        }
    }

    fn log(&self, endpoint: &'static str) {
        match self {
            Self::Store(e) => tracing::error!(endpoint, error = %e, "webhook not stored"),
            other => {
                tracing::warn!(endpoint, status = other.status().as_u16(), reason = %other, "webhook rejected")
            }
        }
    }
}

/// A request at a webhook URL as intake takes it: the key in the path, the headers, the body
/// not read yet, and when it arrived (an ack's latency counts from here).
pub(super) struct Arrival {
    key: String,
    headers: HeaderMap,
    body: Body,
    at: Instant,
}

impl FromRequest<AppState> for Arrival {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let at = Instant::now();
        let (mut parts, body) = req.into_parts();
        let Path(key) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            key,
            headers: parts.headers,
            body,
            at,
        })
    }
}

impl Arrival {
    /// The key's connection and the whole body, checked in intake's order: the key (401), for
    /// a signed endpoint its secrets (401), the media type (415), the size (413).
    async fn receive<'a>(
        self,
        state: &'a AppState,
        media: &'static str,
        signed: bool,
    ) -> Result<(&'a Connection, HeaderMap, bytes::Bytes), WebhookError> {
        let conn = connection(state, &self.key)?;
        if signed && conn.webhook_secrets.is_empty() {
            return Err(WebhookError::NoSecrets);
        }
        if media_type(&self.headers) != media {
            return Err(WebhookError::MediaType(media));
        }
        let body = read_body(&self.headers, self.body, state.max_body).await?;
        Ok((conn, self.headers, body))
    }
}

/// Books an intake's answer: an ack's latency, or a refusal's log line and reason.
fn settle<T>(
    state: &AppState,
    endpoint: &'static str,
    arrived: Instant,
    result: Result<T, WebhookError>,
) -> Result<T, WebhookError> {
    match &result {
        Ok(_) => state.telemetry.metrics.inbox_acked(arrived.elapsed()),
        Err(e) => {
            e.log(endpoint);
            state.counters.rejected(e.reason());
        }
    }
    result
}

/// Finds the connection a path key belongs to.
fn connection<'a>(state: &'a AppState, key: &str) -> Result<&'a Connection, WebhookError> {
    state
        .connections
        .by_key(key)
        .ok_or(WebhookError::UnknownKey)
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, WebhookError> {
    use futures::StreamExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(WebhookError::TooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(8192, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| WebhookError::BodyRead)?;
        if buf.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Stores the deliveries and waits until they are durable.
async fn store_durably(
    state: &AppState,
    conn: &Connection,
    deliveries: Vec<Delivery>,
) -> Result<IngestOutcome, WebhookError> {
    if state.skip_store {
        return Ok(IngestOutcome {
            accepted: deliveries.len() as u64,
            ..IngestOutcome::default()
        });
    }
    // Duplicates wait too: the first copy's write may still be on its way to disk.
    let outcome = state
        .store
        .ingest_durably(&conn.org_id, deliveries, Utc::now())
        .await?;
    state.counters.record(&conn.org_id, &outcome);
    Ok(outcome)
}

/// Bodies above this size are parsed on the blocking pool, so a large message never holds an
/// async worker that other requests (and `/healthz`) are waiting on.
const PARSE_INLINE_MAX: usize = 64 * 1024;

async fn parse_outbound(
    state: &AppState,
    conn: &Connection,
    body: bytes::Bytes,
) -> Result<outbound_message::OutboundMessage, WebhookError> {
    let limits = state.xml_limits;
    if body.len() <= PARSE_INLINE_MAX {
        return Ok(outbound_message::parse(&body, &limits, &conn.org_id)?);
    }
    let org = conn.org_id.clone();
    tokio::task::spawn_blocking(move || outbound_message::parse(&body, &limits, &org))
        .await
        .map_err(|_| WebhookError::BodyRead)?
        .map_err(WebhookError::from)
}

fn soap(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `POST /webhooks/salesforce/outbound/{webhook_key}`.
pub(super) async fn outbound(State(state): State<AppState>, arrival: Arrival) -> Response {
    let arrived = arrival.at;
    match settle(
        &state,
        "outbound",
        arrived,
        handle_outbound(&state, arrival).await,
    ) {
        Ok(()) => soap(StatusCode::OK, outbound_message::ACK.to_string()),
        Err(e) => {
            let reason = match &e {
                WebhookError::Store(_) => "temporarily unable to store the message".to_string(),
                other => other.to_string(),
            };
            soap(e.status(), outbound_message::fault(&reason))
        }
    }
}

async fn handle_outbound(state: &AppState, arrival: Arrival) -> Result<(), WebhookError> {
    // SOAP 1.1, the only version Salesforce sends, is text/xml.
    let (conn, _, body) = arrival.receive(state, "text/xml", false).await?;
    let message = parse_outbound(state, conn, body.clone()).await?;
    let mut deliveries = Vec::with_capacity(message.notifications.len());
    for n in &message.notifications {
        match n.to_notification() {
            Some(note) => deliveries.push(Delivery {
                dedupe_id: n.id.to_string(),
                source: DedupeSource::OutboundNotification,
                notifications: vec![note],
                resync: vec![],
                digest: None,
            }),
            None => {
                state.counters.ignored(1);
                tracing::info!(org = %conn.org_id, object = %n.object_type, "notification for an object sfsync does not sync; acknowledged");
            }
        }
    }
    // Free the body and its parse on this thread, before the wait for the disk: the task may
    // resume on another worker, and freeing there costs glibc's allocator a lock that this
    // worker's allocations then wait on (measured: most of the durable path's context switches).
    drop(message);
    drop(body);
    let outcome = store_durably(state, conn, deliveries).await?;
    tracing::info!(org = %conn.org_id, accepted = outcome.accepted, duplicates = outcome.duplicates, "outbound message stored");
    Ok(())
}

/// `POST /webhooks/salesforce/events/{webhook_key}`.
pub(super) async fn events(State(state): State<AppState>, arrival: Arrival) -> Response {
    let arrived = arrival.at;
    match settle(
        &state,
        "events",
        arrived,
        handle_event(&state, arrival).await,
    ) {
        Ok((outcome, records)) => {
            let body = serde_json::json!({
                "status": "accepted",
                "duplicate": outcome.duplicates > 0,
                "records": records,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => {
            let body = serde_json::json!({"error": {"status": e.status().as_u16(), "message": e.to_string()}});
            (e.status(), axum::Json(body)).into_response()
        }
    }
}

async fn handle_event(
    state: &AppState,
    arrival: Arrival,
) -> Result<(IngestOutcome, usize), WebhookError> {
    let (conn, headers, body) = arrival.receive(state, "application/json", true).await?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = signature::SignedHeaders {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
    };
    let id = signature::verify(
        signed,
        &body,
        &conn.webhook_secrets,
        Utc::now().timestamp(),
        state.timestamp_tolerance_s,
    )?;
    let event = signed_event::parse(&body)?;
    if event
        .org_id
        .as_ref()
        .is_some_and(|o| o.as_15() != conn.org_id.as_15())
    {
        return Err(WebhookError::WrongOrg);
    }
    let records = event.notifications.len();
    if event.own_write {
        state.counters.ignored(1);
        tracing::info!(org = %conn.org_id, object = %event.object_type, "change event for sfsync's own write; acknowledged, nothing to pull");
    } else if records == 0 && !event.resync {
        state.counters.ignored(1);
        tracing::info!(org = %conn.org_id, object = %event.object_type, "event for an object sfsync does not sync; acknowledged");
    }
    let resync = match (
        event.resync,
        crate::domain::ObjectType::from_api_name(&event.object_type),
    ) {
        (true, Some(t)) => vec![t],
        _ => vec![],
    };
    let delivery = Delivery {
        dedupe_id: id.to_string(),
        source: DedupeSource::WebhookId,
        notifications: event.notifications,
        resync,
        digest: Some(Delivery::digest_of(&body)),
    };
    // As for Outbound Messages: free the body on this thread, before the wait for the disk.
    drop(body);
    let outcome = store_durably(state, conn, vec![delivery]).await?;
    if outcome.replayed_different > 0 {
        // Answered as a duplicate all the same: the first body is the one stored.
        tracing::warn!(org = %conn.org_id, webhook_id = id, "webhook-id replayed with a different body; answered as a duplicate");
    }
    tracing::info!(org = %conn.org_id, webhook_id = id, records, duplicate = outcome.duplicates > 0, "signed event stored");
    Ok((outcome, records))
}
