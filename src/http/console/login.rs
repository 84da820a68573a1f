//! Signing in and out of the console: `GET /login` shows the form, `POST /login` with the API
//! token in field `token` starts a session, `POST /logout` ends it.
//!
//! The login form carries its own CSRF token, checked against a short-lived cookie set with the
//! form (double submit), since there is no session yet. A wrong token is answered after a
//! second's pause, and an address with [`MAX_FAILURES`](super::state::MAX_FAILURES) wrong tokens
//! in [`FAILURE_WINDOW`] is
//! refused (429) until the window passes, so guessing is slow whatever the concurrency.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::Checked;
use super::pages::{LoginPage, html};
use super::session;
use super::state::FAILURE_WINDOW;
use crate::http::state::AppState;

/// The login form's CSRF cookie.
const LOGIN_COOKIE: &str = "sfsync_login";
/// How long a login form stays valid.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(600);
/// How long a wrong token waits for its answer.
const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// The address failures are counted under: the peer, or behind a TLS proxy the client the
/// proxy reports (the last `X-Forwarded-For` entry, which the proxy itself added).
fn client_address(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    let forwarded = state
        .console
        .behind_tls_proxy
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|a| a.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    forwarded
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The peer address of the connection a request came on, when the server loop recorded it.
pub(super) struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(peer.map(|ConnectInfo(p)| *p)))
    }
}

/// `GET /login`: the form, with a fresh CSRF token in it and in its cookie.
pub(super) async fn form(State(state): State<AppState>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = session::random_token();
    let cookie = session::set_cookie(
        LOGIN_COOKIE,
        &csrf,
        "/login",
        LOGIN_FORM_TTL,
        state.console.behind_tls_proxy,
    );
    let page = LoginPage {
        csrf,
        error: error.map(str::to_string),
    };
    let mut resp = html(status, &page);
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /login`'s fields.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: the API token starts a session and goes to `/`; a wrong one shows the form
/// again with an error.
pub(super) async fn login(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !session::same_secret(&form.csrf, &expected) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("The form expired. Enter the token again."),
        );
    }
    let addr = client_address(&state, &headers, peer);
    let guard = &state.console.guard;
    if guard.blocked(addr) {
        tracing::warn!(%addr, "console sign-in refused: too many wrong tokens");
        let minutes = FAILURE_WINDOW.as_secs() / 60;
        let message =
            format!("Too many wrong tokens from your address. Try again in {minutes} minutes.");
        return login_page(&state, StatusCode::TOO_MANY_REQUESTS, Some(&message));
    }
    if !crate::http::api::is_api_token(&state, &form.token) {
        guard.failed(addr);
        tracing::warn!(%addr, "console sign-in with a wrong token");
        tokio::time::sleep(FAILURE_DELAY).await;
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That is not the API token."),
        );
    }
    guard.succeeded(addr);
    tracing::info!(%addr, "console sign-in");
    let id = state.console.sessions.start();
    signed_in_redirect(&state, &id)
}

/// 303 to `/` with the new session's cookie, the login cookie removed.
fn signed_in_redirect(state: &AppState, id: &str) -> Response {
    let secure = state.console.behind_tls_proxy;
    let ttl = state.console.sessions.ttl();
    let cookies = [
        session::set_cookie(session::COOKIE, id, "/", ttl, secure),
        session::set_cookie(LOGIN_COOKIE, "", "/login", Duration::ZERO, secure),
    ];
    let mut resp = Redirect::to("/").into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `POST /logout`: ends the session and removes its cookie.
pub(super) async fn logout(
    State(state): State<AppState>,
    checked: Checked<super::actions::NoFields>,
) -> Response {
    state.console.sessions.end(&checked.signed);
    let gone = session::set_cookie(
        session::COOKIE,
        "",
        "/",
        Duration::ZERO,
        state.console.behind_tls_proxy,
    );
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = gone.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::console::state::{LoginGuard, MAX_FAILURES};

    #[test]
    fn an_address_is_blocked_after_its_wrong_tokens_and_freed_by_a_sign_in() {
        let guard = LoginGuard::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..MAX_FAILURES {
            assert!(!guard.blocked(a));
            guard.failed(a);
        }

        assert!(guard.blocked(a));
        assert!(!guard.blocked(b));
        guard.succeeded(a);
        assert!(!guard.blocked(a));
    }
}
