//! Local API routes of the pull side: imports and conflicts (being written).

use axum::Router;

use crate::http::AppState;

/// The pull side's routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
