//! The operator console at `/`: server-rendered pages (templates in `templates/console/`, one
//! stylesheet, no script) where an operator sees each org and fixes what is stuck.
//!
//! - `GET /login`, `POST /login` (field `token`: the API token), `POST /logout`.
//! - `GET /`: every org at a glance (connection, setup check, API budget, inbox, outbox, sweep)
//!   and the recent errors.
//! - `GET /orgs/{org}`: one org: its setup report, dead letters (retry, discard), conflicts with
//!   their candidates (resolve), its latest applied changes and its recent errors.
//! - `POST /orgs/{org}/connect` (the OAuth flow), `POST /orgs/{org}/setup` (check again),
//!   `POST /orgs/{org}/dead-letters/{id}/retry|discard`, `POST /orgs/{org}/conflicts/{id}/resolve`.
//!
//! Every page but the login form needs a session (see [`session`]); without one, a request is
//! sent to `/login` and learns nothing about any org. Every form carries the session's CSRF
//! token, and a post without it is refused with 403. Actions call the same use cases as the
//! local API (`sync::local`), and the Connect button starts the same flow as
//! `GET /oauth/salesforce/authorize`.

mod actions;
mod guard;
mod login;
mod pages;
mod session;
mod state;
mod view;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};

use crate::domain::OrgId;
use crate::http::state::AppState;
pub use state::Console;

/// The console's routes; none when it is turned off.
pub(super) fn router(state: AppState) -> Router<AppState> {
    if !state.console.enabled {
        return Router::new();
    }
    let signed_in = Router::new()
        .route("/", get(pages::overview))
        .route("/orgs/{org}", get(pages::org))
        .route("/orgs/{org}/connect", post(actions::connect))
        .route("/orgs/{org}/setup", post(actions::check_setup))
        .route("/orgs/{org}/dead-letters/{id}/retry", post(actions::retry))
        .route(
            "/orgs/{org}/dead-letters/{id}/discard",
            post(actions::discard),
        )
        .route("/orgs/{org}/conflicts/{id}/resolve", post(actions::resolve))
        .route("/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            state,
            guard::require_session,
        ));
    Router::new()
        .route("/login", get(login::form).post(login::login))
        .route("/console.css", get(pages::stylesheet))
        .merge(signed_in)
        .layer(middleware::map_response(guarded))
}

/// Headers every console answer carries: no framing, no scripts, nothing cached, no referrer.
async fn guarded(resp: Response) -> Response {
    with_console_headers(resp)
}

fn with_console_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// What the OAuth callback answers when the console started the flow: the org is connected,
/// and a link back to it.
pub(super) fn connected(org: &OrgId) -> Response {
    with_console_headers(pages::connected(org))
}
