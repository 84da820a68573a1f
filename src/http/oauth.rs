//! Connecting an org: `GET /oauth/salesforce/authorize?org_id=…` (bearer token) redirects to
//! Salesforce's web server flow with PKCE; `GET /oauth/salesforce/callback` exchanges the code,
//! verifies the token response's signature, checks that the org is the one asked for, stores the
//! refresh token sealed and durable, and connects the org's workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use crate::domain::OrgId;
use crate::salesforce::{Client, OAuthClient, OAuthSettings, TokenStore, TokenVault};

/// How long an authorization may take from redirect to callback.
const STATE_TTL: Duration = Duration::from_secs(600);

/// The connected app, the vault for refresh tokens, and the authorizations under way.
pub struct OAuthFlow {
    settings: OAuthSettings,
    vault: Arc<TokenVault>,
    tokens: Arc<dyn TokenStore>,
    request_timeout: Duration,
    pending: Mutex<HashMap<String, (OrgId, SecretString, Instant)>>,
}

impl std::fmt::Debug for OAuthFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthFlow")
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl OAuthFlow {
    /// A flow for this connected app.
    pub fn new(
        settings: OAuthSettings,
        vault: Arc<TokenVault>,
        tokens: Arc<dyn TokenStore>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            settings,
            vault,
            tokens,
            request_timeout,
            pending: Mutex::default(),
        }
    }

    /// The connected app's settings.
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// The vault refresh tokens are sealed with.
    pub fn vault(&self) -> Arc<TokenVault> {
        self.vault.clone()
    }

    /// Where refresh tokens are kept.
    pub fn tokens(&self) -> Arc<dyn TokenStore> {
        self.tokens.clone()
    }

    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (OrgId, SecretString, Instant)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

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
}

/// `GET /oauth/salesforce/authorize?org_id=…`: 302 to Salesforce's authorize page.
pub(super) async fn authorize(
    State(state): State<AppState>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let flow = match state.oauth.clone() {
        Ok(flow) => flow,
        Err(reason) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the salesforce connected app is not configured: {reason}\n"),
            );
        }
    };
    let Some(org) = OrgId::parse(&q.org_id).ok().filter(|o| {
        state
            .connections
            .all()
            .iter()
            .any(|c| c.org_id.as_15() == o.as_15())
    }) else {
        return text(
            StatusCode::BAD_REQUEST,
            "org_id: not a configured connection\n".into(),
        );
    };
    let request = match OAuthClient::new(flow.settings.clone()).and_then(|c| c.authorize()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "building the authorize url");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not build the authorize url\n".into(),
            );
        }
    };
    let now = Instant::now();
    let mut pending = flow.pending();
    pending.retain(|_, (_, _, at)| now.duration_since(*at) < STATE_TTL);
    pending.insert(
        request.state.clone(),
        (org, request.code_verifier.clone(), now),
    );
    drop(pending);
    (
        StatusCode::FOUND,
        [(header::LOCATION, request.url.to_string())],
        format!("{}\n", request.url),
    )
        .into_response()
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
    let Some((org, verifier, at)) = flow.pending().remove(&key) else {
        return text(
            StatusCode::BAD_REQUEST,
            "unknown or already used state; start again at /oauth/salesforce/authorize\n".into(),
        );
    };
    if at.elapsed() > STATE_TTL {
        return text(
            StatusCode::BAD_REQUEST,
            "the authorization took too long; start again\n".into(),
        );
    }
    match connect(&state, &flow, &org, &code, &verifier).await {
        Ok(()) => text(
            StatusCode::OK,
            format!("sfsync is connected to org {org}. You can close this window.\n"),
        ),
        Err(reason) => text(StatusCode::BAD_GATEWAY, format!("{reason}\n")),
    }
}

async fn connect(
    state: &AppState,
    flow: &OAuthFlow,
    org: &OrgId,
    code: &str,
    verifier: &SecretString,
) -> Result<(), String> {
    let oauth = OAuthClient::new(flow.settings.clone()).map_err(|e| e.to_string())?;
    let token = oauth.exchange_code(code, verifier).await.map_err(|e| {
        tracing::warn!(org = %org, error = %e, "code exchange failed");
        format!("the code exchange failed: {e}")
    })?;
    if token.org_id().is_none_or(|o| o.as_15() != org.as_15()) {
        tracing::warn!(org = %org, "authorized for another org");
        return Err(format!(
            "the login was for another org than {org}; sign in to that org"
        ));
    }
    let client =
        Client::from_token_response(flow.settings.clone(), token, flow.vault(), flow.tokens())
            .map_err(|e| {
                tracing::error!(org = %org, error = %e, "storing the connection");
                "the connection could not be stored".to_string()
            })?
            .with_timeout(flow.request_timeout);
    tracing::info!(org = %org, "salesforce connection authorized");
    state.setup.run_in_background(client.clone());
    state.pull.orgs.insert(client);
    Ok(())
}
