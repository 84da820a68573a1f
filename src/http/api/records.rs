//! What the four record resources (companies, contacts, company products, activities) share:
//! the answer to a write, the list and single-record reads, "Sync to Salesforce", and the
//! routes and handlers of each ([`record_resource`]).

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract;
use super::page::{self, Cursor, Page};
use crate::domain::{OrgId, SalesforceId};
use crate::http::state::Connections;
use crate::store::{LocalRef, PageRequest, RecordFilter, RecordKind, Store, StoredRecord};
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

/// `GET /api/v1/{companies,contacts,company-products}`: which page, which records.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecordQuery {
    /// The org (optional when one org is configured).
    org_id: Option<String>,
    /// Items per page, 1 to 1,000 (default 100).
    limit: Option<u32>,
    /// Where to go on: the previous page's `next`.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Only records changed after this instant (RFC 3339).
    updated_after: Option<DateTime<Utc>>,
    /// Only the record linked to this Salesforce id (15 or 18 characters).
    #[param(value_type = Option<String>)]
    salesforce_id: Option<SalesforceId>,
}

/// A list request resolved: the org, the page and the filter.
pub(super) type Listing = (OrgId, PageRequest, RecordFilter);

impl RecordQuery {
    /// The org (see [`extract::org`]), the page and the filter asked for.
    pub(super) fn resolve(self, connections: &Connections) -> Result<Listing, ApiError> {
        let org = extract::org(connections, self.org_id.as_deref(), "org_id")?;
        let filter = RecordFilter {
            updated_after: self.updated_after,
            salesforce_id: self.salesforce_id,
        };
        Ok((org, page::request(self.limit, self.cursor)?, filter))
    }
}

/// One page of an org's records of a kind, as their API views.
pub(super) fn page<T: StoredRecord, V: From<T>>(
    store: &Store,
    (org, page, filter): Listing,
) -> Result<Json<Page<V>>, ApiError> {
    Ok(Json(Page::of(store.record_page::<T>(&org, page, &filter)?)))
}

/// One record of an org, as its API view; `what` names it in the 404.
pub(super) fn one<T: StoredRecord, V: From<T>>(
    store: &Store,
    org: &OrgId,
    id: u64,
    what: &'static str,
) -> Result<Json<V>, ApiError> {
    let record = store
        .record::<T>(org, id)?
        .ok_or(ApiError::NotFound(what))?;
    Ok(Json(record.into()))
}

/// A record resource's routes and handlers with their OpenAPI paths: a page (`GET`), one record
/// (`GET …/{id}`), a create (`POST`), a change when the resource has one (`PATCH …/{id}`), and
/// "Sync to Salesforce" (`POST …/{id}/sync`); and the resource's part of the document. A macro
/// because `#[utoipa::path]` cannot describe a generic handler and takes a summary only from a
/// literal doc comment: the handlers' work is in the functions above and the use cases of
/// `sync::local`. A use case's extra arguments (`[push_as]`) are fields of `AppState`.
macro_rules! record_resource {
    (
        $doc:ident: $record:ident as $view:ident, kind $kind:ident, query $query:ident, at $at:tt,
        what $what:tt $id_doc:tt,
        docs $list_doc:tt $one_doc:tt $sync_doc:tt,
        $create:ident = $create_case:path [$($create_arg:ident),*] ($new:ident),
        $($update:ident = $update_case:path [$($update_arg:ident),*] ($changes:ident),)?
    ) => {
        /// The routes, nested under `/api/v1` behind the bearer token.
        pub(super) fn routes() -> axum::Router<crate::http::state::AppState> {
            use axum::routing::{get, post};
            axum::Router::new()
                .route($at, get(list).post($create))
                .route(concat!($at, "/{id}"), get(one)$(.patch($update))?)
                .route(concat!($at, "/{id}/sync"), post(sync))
        }

        #[doc = $list_doc]
        #[utoipa::path(get, path = concat!("/api/v1", $at), params($query),
            responses((status = 200, body = Page<$view>), (status = 400, body = ErrorBody),
                (status = 422, body = ErrorBody)))]
        async fn list(
            State(AppState {
                store, connections, ..
            }): State<AppState>,
            Params(q): Params<$query>,
        ) -> Result<Json<Page<$view>>, ApiError> {
            records::page::<$record, _>(&store, q.resolve(&connections)?)
        }

        #[doc = $one_doc]
        #[utoipa::path(get, path = concat!("/api/v1", $at, "/{id}"),
            params(("id" = u64, Path, description = $id_doc), OrgQuery),
            responses((status = 200, body = $view), (status = 404, body = ErrorBody)))]
        async fn one(
            State(AppState { store, .. }): State<AppState>,
            Id(id): Id,
            QueryOrg(org): QueryOrg,
        ) -> Result<Json<$view>, ApiError> {
            records::one::<$record, _>(&store, &org, id, $what)
        }

        #[utoipa::path(post, path = concat!("/api/v1", $at), request_body = InOrg<$new>,
            responses((status = 201, body = Written<$view>), (status = 422, body = ErrorBody)))]
        async fn $create(
            State(state): State<AppState>,
            InOrg { org, body }: InOrg<$new>,
        ) -> Result<(StatusCode, Json<Written<$view>>), ApiError> {
            let saved = $create_case(&state.store, &org, body $(, state.$create_arg)*).await?;
            Ok(records::created(saved))
        }

        $(
        #[utoipa::path(patch, path = concat!("/api/v1", $at, "/{id}"), request_body = InOrg<$changes>,
            params(("id" = u64, Path, description = $id_doc)),
            responses((status = 200, body = Written<$view>), (status = 404, body = ErrorBody),
                (status = 422, body = ErrorBody)))]
        async fn $update(
            State(state): State<AppState>,
            Id(id): Id,
            InOrg { org, body }: InOrg<$changes>,
        ) -> Result<Json<Written<$view>>, ApiError> {
            let saved = $update_case(&state.store, &org, id, body $(, state.$update_arg)*).await?;
            Ok(Json(Written::of(saved)))
        }
        )?

        #[doc = $sync_doc]
        #[utoipa::path(post, path = concat!("/api/v1", $at, "/{id}/sync"), params(("id" = u64, Path), OrgQuery),
            responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
        async fn sync(
            State(AppState { store, .. }): State<AppState>,
            Id(id): Id,
            QueryOrg(org): QueryOrg,
        ) -> Result<(StatusCode, Json<Queued>), ApiError> {
            records::sync_now(&store, &org, RecordKind::$kind, id).await
        }

        /// This resource's part of the OpenAPI document.
        #[derive(utoipa::OpenApi)]
        #[openapi(
            paths(list, one, $create, $($update,)? sync),
            components(schemas($view, $new $(, $changes)?))
        )]
        pub(super) struct $doc;
    };
}
pub(super) use record_resource;
