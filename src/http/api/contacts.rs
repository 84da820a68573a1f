//! `/api/v1/contacts`: list, create, change, and push now. A contact is pushed as a Contact or a
//! Lead (`push_as`, default from `[sync] push_as`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, InOrg, OrgQuery, Params, QueryOrg};
use super::page::Page;
use super::records::{self, Queued, RecordQuery, Written};
use crate::domain::Contact;
use crate::domain::view::ContactView;
use crate::http::state::AppState;
use crate::store::RecordKind;
use crate::sync::local::contacts::{self, ContactChanges, NewContact};

/// The routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/{id}", get(one).patch(update))
        .route("/contacts/{id}/sync", post(sync))
}

/// A page of contacts, oldest first.
#[utoipa::path(get, path = "/api/v1/contacts", params(RecordQuery),
    responses((status = 200, body = Page<ContactView>), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(AppState {
        store, connections, ..
    }): State<AppState>,
    Params(q): Params<RecordQuery>,
) -> Result<Json<Page<ContactView>>, ApiError> {
    records::page::<Contact, _>(&store, q.resolve(&connections)?)
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}",
    params(("id" = u64, Path, description = "Local contact id"), OrgQuery),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
async fn one(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<Json<ContactView>, ApiError> {
    records::one::<Contact, _>(&store, &org, id, "contact")
}

#[utoipa::path(post, path = "/api/v1/contacts", request_body = InOrg<NewContact>,
    responses((status = 201, body = Written<ContactView>), (status = 422, body = ErrorBody)))]
async fn create(
    State(AppState { store, push_as, .. }): State<AppState>,
    InOrg { org, body }: InOrg<NewContact>,
) -> Result<(StatusCode, Json<Written<ContactView>>), ApiError> {
    let saved = contacts::create(&store, &org, body, push_as).await?;
    Ok(records::created(saved))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", request_body = InOrg<ContactChanges>,
    params(("id" = u64, Path, description = "Local contact id")),
    responses((status = 200, body = Written<ContactView>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(AppState { store, push_as, .. }): State<AppState>,
    Id(id): Id,
    InOrg { org, body }: InOrg<ContactChanges>,
) -> Result<Json<Written<ContactView>>, ApiError> {
    let saved = contacts::update(&store, &org, id, body, push_as).await?;
    Ok(Json(Written::of(saved)))
}

/// Pushes the contact's current state now.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/sync", params(("id" = u64, Path), OrgQuery),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody)))]
async fn sync(
    State(AppState { store, .. }): State<AppState>,
    Id(id): Id,
    QueryOrg(org): QueryOrg,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    records::sync_now(&store, &org, RecordKind::Contact, id).await
}

/// This resource's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, one, create, update, sync),
    components(schemas(ContactView, NewContact, ContactChanges))
)]
pub(super) struct ContactsDoc;
