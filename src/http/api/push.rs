//! Local API routes of the push side: companies, contacts, products, activities, outbox (being written).

use axum::Router;

use crate::http::AppState;

/// The push side's routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
