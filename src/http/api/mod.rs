//! The local API under `/api/v1`, behind the bearer token: one file per resource (companies,
//! contacts, company products, activities, outbox, imports, conflicts, status, history, the
//! change feed, the app webhooks' dead letters), one
//! error type ([`ApiError`]), and the OpenAPI document generated from the handlers.
//!
//! A handler reads its request (`extract`), calls one use case of `sync::local` (or one store
//! read), and maps the result or the one error type; the rules live in the use cases.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use super::state::AppState;

mod activities;
mod app_webhooks;
mod changes;
mod companies;
mod company_products;
mod conflicts;
mod contacts;
mod error;
mod extract;
mod history;
mod imports;
mod outbox;
mod page;
mod records;
mod setup;
mod status;

pub use changes::longest_wait;
pub use error::ApiError;
pub(crate) use extract::org as configured_org;
pub(crate) use status::{ConnectionStatus, connection as connection_status};

/// Refuses a request without the API's bearer token (401).
pub(super) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or_default();
    if !is_api_token(&state, given) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// Whether `given` is the API token. Digests are compared, so the comparison's timing says
/// nothing about the token.
pub(crate) fn is_api_token(state: &AppState, given: &str) -> bool {
    let expected = Sha256::digest(state.api_token.expose_secret().as_bytes());
    !given.is_empty() && Sha256::digest(given.as_bytes()) == expected
}

/// The token of an `Authorization: Bearer <token>` value; the scheme's name is
/// case-insensitive, as every HTTP authentication scheme's is.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// The `/api/v1` routes.
pub(super) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(companies::routes())
        .merge(contacts::routes())
        .merge(company_products::routes())
        .merge(activities::routes())
        .merge(outbox::routes())
        .merge(imports::routes())
        .merge(conflicts::routes())
        .merge(status::routes())
        .merge(setup::routes())
        .merge(history::routes())
        .merge(changes::routes())
        .merge(app_webhooks::routes())
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// The document's title, the shared schemas, and the route that serves it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sfsync local API",
        description = "Local records, their outbox to Salesforce, dead letters, imports, conflicts and status. Bearer token required."
    ),
    paths(openapi),
    components(schemas(error::ErrorBody, error::ErrorDetail, records::Queued))
)]
struct ApiDoc;

/// The whole local API's OpenAPI document, generated from the handlers.
pub(super) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi()
        .merge_from(companies::CompaniesDoc::openapi())
        .merge_from(contacts::ContactsDoc::openapi())
        .merge_from(company_products::CompanyProductsDoc::openapi())
        .merge_from(activities::ActivitiesDoc::openapi())
        .merge_from(outbox::OutboxDoc::openapi())
        .merge_from(imports::ImportsDoc::openapi())
        .merge_from(conflicts::ConflictsDoc::openapi())
        .merge_from(status::StatusDoc::openapi())
        .merge_from(setup::SetupDoc::openapi())
        .merge_from(history::HistoryDoc::openapi())
        .merge_from(changes::ChangesDoc::openapi())
        .merge_from(app_webhooks::AppWebhooksDoc::openapi());
    extract::merge_in_org_schemas(&mut doc);
    doc
}

/// `GET /api/v1/openapi.json`: this API, generated from the code.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
