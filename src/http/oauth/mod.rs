//! Connecting an org: `GET /oauth/salesforce/authorize?org_id=…` (bearer token), or the
//! console's Connect button (session and CSRF token), redirects to Salesforce's web server flow
//! with PKCE; `GET /oauth/salesforce/callback` exchanges the code,
//! verifies the token response's signature, checks that the org is the one asked for, stores the
//! refresh token sealed and durable, and connects the org's workers.
//!
//! With `&user=…` (the application's user id) the same flow connects that person's own
//! Salesforce user instead: the refresh token is kept under (org, user), and what is written on
//! their behalf goes out with their token.

mod flow;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::domain::{AppUser, OrgId};
use crate::salesforce::{Client, OAuthClient, TokenStore};
use crate::sync::tokens::UserTokens;
pub use flow::OAuthFlow;
use flow::Pending;
pub(super) use flow::Starter;

/// How long an authorization may take from redirect to callback.
const STATE_TTL: Duration = Duration::from_secs(600);

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Query of the authorize route.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    org_id: String,
    /// The application user connecting their own Salesforce user; absent for the org's
    /// integration connection.
    user: Option<String>,
}

/// Why an authorization could not start: the status and a message safe to show.
#[derive(Debug)]
pub(super) struct NotStarted {
    status: StatusCode,
    message: String,
}

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Starts the web server flow for a configured org (for an application user connecting their own
/// Salesforce user, when `user` is given): keeps the PKCE verifier for the callback and returns
/// Salesforce's authorize URL to send the browser to.
pub(super) fn begin(
    state: &AppState,
    org_id: &str,
    user: Option<&str>,
    starter: Starter,
) -> Result<String, NotStarted> {
    let refuse = |status, message: String| NotStarted { status, message };
    let flow = state.oauth.clone().map_err(|reason| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the salesforce connected app is not configured: {reason}"),
        )
    })?;
    let Some(org) = OrgId::parse(org_id).ok().filter(|o| {
        state
            .connections
            .all()
            .iter()
            .any(|c| c.org_id.as_15() == o.as_15())
    }) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "org_id: not a configured connection".into(),
        ));
    };
    let user = user
        .map(AppUser::parse)
        .transpose()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("user: {e}")))?;
    // A user connecting their own is asked to sign in again, so that a browser already signed
    // in to Salesforce as someone else does not connect the wrong user.
    let request = OAuthClient::new(flow.settings().clone())
        .and_then(|c| c.authorize_with(user.is_some()))
        .map_err(|e| {
            tracing::error!(error = %e, "building the authorize url");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not build the authorize url".into(),
            )
        })?;
    let now = Instant::now();
    let mut pending = flow.pending();
    pending.retain(|_, p| now.duration_since(p.at) < STATE_TTL);
    pending.insert(
        request.state.clone(),
        Pending {
            org,
            user,
            verifier: request.code_verifier.clone(),
            at: now,
            starter,
        },
    );
    Ok(request.url.to_string())
}

/// `GET /oauth/salesforce/authorize?org_id=…[&user=…]`: 302 to Salesforce's authorize page
/// (which asks for credentials again when a user connects their own).
pub(super) async fn authorize(
    State(state): State<AppState>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    match begin(&state, &q.org_id, q.user.as_deref(), Starter::Api) {
        Ok(url) => (
            StatusCode::FOUND,
            [(header::LOCATION, url.clone())],
            format!("{url}\n"),
        )
            .into_response(),
        Err(e) => text(e.status, format!("{e}\n")),
    }
}

/// Query of the callback route.
#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oauth/salesforce/callback?code=…&state=…`.
pub(super) async fn callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Ok(flow) = state.oauth.clone() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the salesforce connected app is not configured\n".into(),
        );
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        tracing::warn!(error = %error, "salesforce refused the authorization");
        return text(
            StatusCode::BAD_REQUEST,
            format!("salesforce refused the authorization: {error} {detail}\n"),
        );
    }
    let (Some(code), Some(key)) = (q.code, q.state) else {
        return text(
            StatusCode::BAD_REQUEST,
            "code and state are required\n".into(),
        );
    };
    let Some(p) = flow.pending().remove(&key) else {
        return text(
            StatusCode::BAD_REQUEST,
            "unknown or already used state; start again at /oauth/salesforce/authorize\n".into(),
        );
    };
    if p.at.elapsed() > STATE_TTL {
        return text(
            StatusCode::BAD_REQUEST,
            "the authorization took too long; start again\n".into(),
        );
    }
    let connected = connect(&state, &flow, &p, &code).await;
    let Pending {
        org, user, starter, ..
    } = p;
    match (connected, user, starter) {
        (Ok(()), None, Starter::Api) => text(
            StatusCode::OK,
            format!("sfsync is connected to org {org}. You can close this window.\n"),
        ),
        (Ok(()), None, Starter::Console) => super::console::connected(&org),
        (Ok(()), Some(user), _) => text(
            StatusCode::OK,
            format!(
                "sfsync is connected to org {org} for user {user}: what is written on their \
                 behalf goes out as the Salesforce user who signed in. You can close this window.\n"
            ),
        ),
        (Err(reason), _, _) => {
            let errors = &state.telemetry.errors;
            errors.record(&org, crate::telemetry::ErrorSource::Auth, &reason);
            text(StatusCode::BAD_GATEWAY, format!("{reason}\n"))
        }
    }
}

/// Exchanges the code and connects what the authorization was for: the org's integration
/// connection (its workers start), or a user's own connection (kept for their writes).
async fn connect(
    state: &AppState,
    flow: &OAuthFlow,
    pending: &Pending,
    code: &str,
) -> Result<(), String> {
    let org = &pending.org;
    let oauth = OAuthClient::new(flow.settings().clone()).map_err(|e| e.to_string())?;
    let token = oauth
        .exchange_code(code, &pending.verifier)
        .await
        .map_err(|e| {
            tracing::warn!(org = %org, error = %e, "code exchange failed");
            format!("the code exchange failed: {e}")
        })?;
    if token.org_id().is_none_or(|o| o.as_15() != org.as_15()) {
        tracing::warn!(org = %org, "authorized for another org");
        return Err(format!(
            "the login was for another org than {org}; sign in to that org"
        ));
    }
    let tokens: Arc<dyn TokenStore> = match &pending.user {
        Some(user) => Arc::new(UserTokens::new(state.store.clone(), user.clone())),
        None => flow.tokens(),
    };
    let client = Client::from_token_response(flow.settings().clone(), token, flow.vault(), tokens)
        .map_err(|e| {
            tracing::error!(org = %org, error = %e, "storing the connection");
            "the connection could not be stored".to_string()
        })?
        .with_timeout(flow.request_timeout);
    if let Some(user) = &pending.user {
        tracing::info!(org = %org, user = %user, "salesforce user connection authorized");
        state.pull.orgs.insert_user(client);
        return Ok(());
    }
    tracing::info!(org = %org, "salesforce connection authorized");
    state.setup.run_in_background(client.clone());
    state.pull.orgs.insert(client);
    Ok(())
}
