//! What the four record resources (companies, contacts, company products, activities) share:
//! the answer to a write, the list read, and "Sync to Salesforce".

use axum::Json;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::OrgId;
use crate::store::{LocalRef, RecordKind, Store, StoreError};
use crate::sync::local::{self, Saved};

/// The answer to a write: the record and the outbox entry that will push it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Written<T> {
    /// The record as stored.
    pub(crate) record: T,
    /// The outbox entry (absent when nothing needs pushing).
    pub(crate) outbox_id: Option<u64>,
}

impl<T> Written<T> {
    /// The view of a saved record.
    pub(super) fn of<R: Into<T>>(saved: Saved<R>) -> Self {
        Self {
            record: saved.record.into(),
            outbox_id: Some(saved.outbox_id),
        }
    }
}

/// 201 with the written record.
pub(super) fn created<V, R: Into<V>>(saved: Saved<R>) -> (StatusCode, Json<Written<V>>) {
    (StatusCode::CREATED, Json(Written::of(saved)))
}

/// The answer to "Sync to Salesforce": the outbox entry that will push the record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Queued {
    /// The outbox entry.
    pub(crate) outbox_id: u64,
}

/// Enqueues a record to be pushed now: 202 with its outbox entry.
pub(super) async fn sync_now(
    store: &Store,
    org: &OrgId,
    kind: RecordKind,
    id: u64,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let outbox_id = local::outbox::sync_now(store, org, LocalRef { kind, id }).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { outbox_id })))
}

/// One org's records of a kind, as their API views.
pub(super) fn list<T, V: From<T>>(
    store: &Store,
    org: &OrgId,
    read: impl Fn(&Store, &OrgId) -> Result<Vec<T>, StoreError>,
) -> Result<Json<Vec<V>>, ApiError> {
    Ok(Json(
        read(store, org)?.into_iter().map(Into::into).collect(),
    ))
}

/// The text of a unit enum variant as it serializes (`email_sent`, `OPPORTUNITY`).
pub(super) fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
