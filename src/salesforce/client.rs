//! One org's connection: the session token, the single-flight refresh, the connection state,
//! the call counter and the latest API budget. Every REST call goes through [`Client::send`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tracing::Instrument as _;

use super::error::SalesforceError;
use super::limits::{ApiUsage, LIMIT_INFO_HEADER};
use super::oauth::{OAuthClient, OAuthSettings, TokenResponse, http_client};
use super::vault::{TokenStore, TokenVault};
use crate::domain::{AppUser, OrgId, SalesforceId};
use crate::telemetry::{ErrorSource, Telemetry};

/// The loop-prevention tag sent on every write (`Sforce-Call-Options: client=sfsync`); it shows
/// up in CDC `changeOrigin`, so sfsync can drop its own echoes.
pub const CALL_OPTIONS: &str = "client=sfsync";

/// The default timeout of one REST call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a connection can make calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Calls go out; an expired session is refreshed on the way.
    Connected,
    /// The refresh token was refused (`invalid_grant`) or is missing: no call goes out until a
    /// person authorizes again ([`Client::reauthorized`]).
    NeedsReauth,
}

/// A Salesforce connection for one org. Cheap to clone: clones share the session, the
/// single-flight refresh, the state and the counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    oauth: OAuthClient,
    org_id: OrgId,
    vault: Arc<TokenVault>,
    store: Arc<dyn TokenStore>,
    session: RwLock<Session>,
    /// Guards refreshes; holds a rotated refresh token whose save failed, to be saved (and
    /// used) by the next refresh instead of being lost.
    refresh_lock: tokio::sync::Mutex<Option<SecretString>>,
    needs_reauth: AtomicBool,
    api_calls: AtomicU64,
    usage: Mutex<Option<ApiUsage>>,
    timeout_ms: AtomicU64,
    /// The Salesforce user the connection acts as (from the identity URL of its tokens).
    user: RwLock<Option<SalesforceId>>,
    /// Where calls, refreshes and authorization failures are counted, once attached.
    telemetry: OnceLock<Telemetry>,
}

struct Session {
    access_token: Option<SecretString>,
    generation: u64,
    instance_url: String,
}

/// A response read to the end: status and body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The error this reply stands for, or the reply itself when the status is 2xx.
    pub(crate) fn success(self) -> Result<Self, SalesforceError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(SalesforceError::from_response(
                self.status.as_u16(),
                &self.body,
            ))
        }
    }

    /// Decodes a JSON body.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
    ) -> Result<T, SalesforceError> {
        serde_json::from_slice(&self.body).map_err(|_| SalesforceError::Unexpected {
            what,
            status: self.status.as_u16(),
        })
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("org_id", &self.inner.org_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A connection to `org_id` at `instance_url`. Its refresh token is read, sealed, from
    /// `store` when the first call needs a session (or after a 401).
    pub fn new(
        settings: OAuthSettings,
        org_id: OrgId,
        instance_url: impl Into<String>,
        vault: Arc<TokenVault>,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, SalesforceError> {
        let http = http_client()?;
        let oauth = OAuthClient::with_http(http.clone(), settings);
        let user = store.load_user(&org_id).unwrap_or_else(|err| {
            tracing::warn!(org = %org_id, error = %err, "the connection's user could not be read");
            None
        });
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                oauth,
                org_id,
                vault,
                store,
                session: RwLock::new(Session {
                    access_token: None,
                    generation: 0,
                    instance_url: instance_url.into().trim_end_matches('/').to_string(),
                }),
                refresh_lock: tokio::sync::Mutex::new(None),
                needs_reauth: AtomicBool::new(false),
                api_calls: AtomicU64::new(0),
                usage: Mutex::new(None),
                timeout_ms: AtomicU64::new(millis(DEFAULT_TIMEOUT)),
                user: RwLock::new(user),
                telemetry: OnceLock::new(),
            }),
        })
    }

    /// A connection built from a fresh code exchange: the org comes from the identity URL, the
    /// refresh token is sealed and saved before the access token is used.
    pub fn from_token_response(
        settings: OAuthSettings,
        token: TokenResponse,
        vault: Arc<TokenVault>,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, SalesforceError> {
        let org_id = token.org_id().ok_or(SalesforceError::Unexpected {
            what: "identity url of the token response",
            status: 200,
        })?;
        let client = Self::new(settings, org_id, token.instance_url.clone(), vault, store)?;
        client.reauthorized(token)?;
        Ok(client)
    }

    /// Starts with a known access token instead of refreshing on the first call.
    pub fn with_access_token(self, access_token: SecretString) -> Self {
        self.write_session(|s| {
            s.access_token = Some(access_token);
            s.generation += 1;
        });
        self
    }

    /// Sets the timeout of each REST call (default 60 s); a call that takes longer fails as a
    /// retryable [`TransportKind::Timeout`](super::TransportKind).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.inner
            .timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
        self
    }

    /// Counts this connection's calls and refreshes, and reports its authorization failures,
    /// into `telemetry` from now on (the first attached stays).
    pub fn attach_telemetry(&self, telemetry: Telemetry) {
        let _ = self.inner.telemetry.set(telemetry);
    }

    /// Where this connection counts its calls and reports its failures, once attached.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.inner.telemetry.get()
    }

    /// Records that the connection needs a new authorization, and why.
    fn mark_needs_reauth(&self, why: impl std::fmt::Display) {
        self.inner.needs_reauth.store(true, Ordering::Release);
        if let Some(t) = self.inner.telemetry.get() {
            t.errors.record(&self.inner.org_id, ErrorSource::Auth, why);
        }
    }

    /// Installs tokens from a new authorization (after `NeedsReauth`): the refresh token, if
    /// any, is sealed and saved first, then the session is replaced and the state is
    /// `Connected` again.
    pub fn reauthorized(&self, token: TokenResponse) -> Result<(), SalesforceError> {
        if token.org_id().is_some_and(|org| org != self.inner.org_id) {
            return Err(SalesforceError::InvalidRequest(
                "the token belongs to another org",
            ));
        }
        if let Some(refresh) = &token.refresh_token {
            self.save_refresh_token(refresh)?;
            if let Ok(mut unsaved) = self.inner.refresh_lock.try_lock() {
                *unsaved = None;
            }
        }
        self.install(token);
        self.inner.needs_reauth.store(false, Ordering::Release);
        Ok(())
    }

    /// Seals and saves a refresh token for this org.
    pub fn save_refresh_token(&self, refresh_token: &SecretString) -> Result<(), SalesforceError> {
        let owner = self.inner.store.owner();
        let sealed = self
            .inner
            .vault
            .seal_for(&self.inner.org_id, owner, refresh_token)?;
        self.inner
            .store
            .save_sealed(&self.inner.org_id, &sealed)
            .map_err(SalesforceError::Store)
    }

    /// The application user whose own connection this is; `None` for the org's integration
    /// connection.
    pub fn app_user(&self) -> Option<&AppUser> {
        self.inner.store.owner()
    }

    /// The org this connection talks to.
    pub fn org_id(&self) -> &OrgId {
        &self.inner.org_id
    }

    /// The Salesforce user this connection acts as, once a token named it (kept across
    /// restarts): Outbound Messages whose `LastModifiedById` is this user report sfsync's own
    /// writes.
    pub fn user_id(&self) -> Option<SalesforceId> {
        self.inner
            .user
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The instance URL calls go to (updated from each token response).
    pub fn instance_url(&self) -> String {
        self.read_session(|s| s.instance_url.clone())
    }

    /// The OAuth settings (API version, connected app).
    pub fn settings(&self) -> &OAuthSettings {
        self.inner.oauth.settings()
    }

    /// Whether calls can go out.
    pub fn state(&self) -> ConnectionState {
        if self.inner.needs_reauth.load(Ordering::Acquire) {
            ConnectionState::NeedsReauth
        } else {
            ConnectionState::Connected
        }
    }

    /// The latest `Sforce-Limit-Info: api-usage` seen on a response of this org.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self
            .inner
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// REST calls sent by this connection (token calls not included).
    pub fn api_calls(&self) -> u64 {
        self.inner.api_calls.load(Ordering::Relaxed)
    }

    /// Token endpoint calls sent by this connection.
    pub fn token_requests(&self) -> u64 {
        self.inner.oauth.token_requests()
    }

    /// `/services/data/vNN.0` followed by `rest`.
    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}{rest}", self.settings().api_version)
    }

    fn read_session<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        f(&self
            .inner
            .session
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn write_session(&self, f: impl FnOnce(&mut Session)) {
        f(&mut self
            .inner
            .session
            .write()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn install(&self, token: TokenResponse) {
        if let Some(user) = token.user_id() {
            self.remember_user(user);
        }
        self.write_session(|s| {
            s.access_token = Some(token.access_token);
            s.instance_url = token.instance_url.trim_end_matches('/').to_string();
            s.generation += 1;
        });
    }

    /// Keeps the user a token names, and saves it when it is new, so it survives a restart. A
    /// failed save costs only the pulls of sfsync's own echoes, so it is logged.
    fn remember_user(&self, user: SalesforceId) {
        {
            let mut known = self
                .inner
                .user
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if known.as_ref() == Some(&user) {
                return;
            }
            *known = Some(user.clone());
        }
        let org = &self.inner.org_id;
        if let Err(err) = self.inner.store.save_user(org, &user) {
            tracing::warn!(org = %org, error = %err, "the connection's user could not be saved");
        }
    }

    fn record_usage(&self, headers: &HeaderMap) {
        let usage = headers
            .get(LIMIT_INFO_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse_header);
        if let Some(usage) = usage {
            *self
                .inner
                .usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(usage);
        }
    }

    /// Sends one REST call to `path` (absolute, e.g. `/services/data/v62.0/…`, or a
    /// `nextRecordsUrl`), reads the whole response and records the budget. A 401 refreshes the
    /// session once (single-flight across clones) and repeats the call; every other status is
    /// returned for the caller to interpret. `write` adds the loop-prevention tag.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        write: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Reply, SalesforceError> {
        let span = tracing::debug_span!(
            "sf.request",
            org = %self.inner.org_id,
            method = %method,
            status = tracing::field::Empty,
        );
        async {
            let mut refreshed = false;
            loop {
                if self.inner.needs_reauth.load(Ordering::Acquire) {
                    return Err(SalesforceError::NeedsReauth);
                }
                let (token, generation, base) = self.read_session(|s| {
                    (s.access_token.clone(), s.generation, s.instance_url.clone())
                });
                let Some(token) = token else {
                    self.refresh_after(generation).await?;
                    continue;
                };
                let request = self.prepare(method.clone(), &base, path, &token, write)?;
                self.inner.api_calls.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = self.inner.telemetry.get() {
                    t.metrics.api_call(
                        &self.inner.org_id,
                        crate::telemetry::metrics::call_kind(path),
                    );
                }
                let response = build(request)
                    .send()
                    .await
                    .map_err(SalesforceError::transport)?;
                let status = response.status();
                tracing::Span::current().record("status", status.as_u16());
                self.record_usage(response.headers());
                let body = response.bytes().await.map_err(SalesforceError::transport)?;
                if status == StatusCode::UNAUTHORIZED && !refreshed {
                    tracing::info!("session refused, refreshing once");
                    refreshed = true;
                    self.refresh_after(generation).await?;
                    continue;
                }
                return Ok(Reply { status, body });
            }
        }
        .instrument(span)
        .await
    }

    /// The request every REST call starts from: the bearer token, JSON, the timeout and, on
    /// writes, the loop-prevention tag. `path` must be a path on the instance, never a full URL,
    /// so the token cannot be sent to another host.
    fn prepare(
        &self,
        method: Method,
        base: &str,
        path: &str,
        token: &SecretString,
        write: bool,
    ) -> Result<RequestBuilder, SalesforceError> {
        if !path.starts_with('/') || path.starts_with("//") {
            return Err(SalesforceError::InvalidRequest(
                "a salesforce path must start with one slash",
            ));
        }
        let mut request = self
            .inner
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token.expose_secret())
            .header(ACCEPT, "application/json")
            .timeout(Duration::from_millis(
                self.inner.timeout_ms.load(Ordering::Relaxed),
            ));
        if write {
            request = request.header("Sforce-Call-Options", CALL_OPTIONS);
        }
        Ok(request)
    }

    /// Refreshes the session unless another caller already replaced the one at `seen`.
    /// Concurrent callers queue on one lock; the first refreshes, the rest see a newer
    /// generation and return, so N callers cost one token call.
    async fn refresh_after(&self, seen: u64) -> Result<(), SalesforceError> {
        let mut unsaved = self.inner.refresh_lock.lock().await;
        if self.inner.needs_reauth.load(Ordering::Acquire) {
            return Err(SalesforceError::NeedsReauth);
        }
        if self.read_session(|s| s.generation) != seen {
            return Ok(());
        }
        if let Some(pending) = unsaved.as_ref() {
            self.save_refresh_token(pending)?;
            *unsaved = None;
        }
        let org = &self.inner.org_id;
        let Some(sealed) = self
            .inner
            .store
            .load_sealed(org)
            .map_err(SalesforceError::Store)?
        else {
            tracing::warn!(org = %org, user = ?self.app_user(), "no refresh token stored; the connection needs re-authorization");
            self.mark_needs_reauth("no refresh token is stored; connect the org again");
            return Err(SalesforceError::NeedsReauth);
        };
        let owner = self.inner.store.owner();
        let refresh_token = match self.inner.vault.open_for(org, owner, &sealed) {
            Ok(token) => token,
            Err(err) => {
                tracing::warn!(org = %org, error = %err, "the stored refresh token does not open; the connection needs re-authorization");
                self.mark_needs_reauth(format_args!(
                    "the stored refresh token does not open ({err}); connect the org again"
                ));
                return Err(err.into());
            }
        };
        let refreshed = self.inner.oauth.refresh(&refresh_token).await;
        if let Some(t) = self.inner.telemetry.get() {
            t.metrics.token_refreshed();
        }
        match refreshed {
            Ok(token) => {
                if let Some(rotated) = &token.refresh_token {
                    if let Err(err) = self.save_refresh_token(rotated) {
                        tracing::error!(org = %org, error = %err, "a rotated refresh token could not be saved; keeping it to save on the next refresh");
                        *unsaved = Some(rotated.clone());
                        return Err(err);
                    }
                }
                self.install(token);
                Ok(())
            }
            Err(err) if err.code() == Some("invalid_grant") => {
                tracing::warn!(org = %org, user = ?self.app_user(), "refresh token refused; the connection needs re-authorization");
                self.mark_needs_reauth(format_args!(
                    "salesforce refused the refresh token ({err}); connect the org again"
                ));
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::vault::{TokenKey, TokenStoreError};
    use secrecy::SecretBox;

    #[derive(Default)]
    struct MemoryStore(Mutex<Option<Vec<u8>>>, Mutex<Option<SalesforceId>>);

    impl TokenStore for MemoryStore {
        fn load_sealed(&self, _: &OrgId) -> Result<Option<Vec<u8>>, TokenStoreError> {
            Ok(self.0.lock().map_err(|_| "poisoned")?.clone())
        }
        fn save_sealed(&self, _: &OrgId, sealed: &[u8]) -> Result<(), TokenStoreError> {
            *self.0.lock().map_err(|_| "poisoned")? = Some(sealed.to_vec());
            Ok(())
        }
        fn load_user(&self, _: &OrgId) -> Result<Option<SalesforceId>, TokenStoreError> {
            Ok(self.1.lock().map_err(|_| "poisoned")?.clone())
        }
        fn save_user(&self, _: &OrgId, user: &SalesforceId) -> Result<(), TokenStoreError> {
            *self.1.lock().map_err(|_| "poisoned")? = Some(user.clone());
            Ok(())
        }
    }

    fn client() -> Client {
        let settings = OAuthSettings {
            client_id: "id".into(),
            client_secret: SecretString::from("secret"),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            login_url: "http://127.0.0.1:1".into(),
            api_version: "62.0".into(),
        };
        let vault = TokenVault::new(TokenKey::new(1, SecretBox::new(Box::new([1; 32]))));
        Client::new(
            settings,
            OrgId::parse("00D7F00000107XsUAI").expect("org"),
            "http://127.0.0.1:1/",
            Arc::new(vault),
            Arc::new(MemoryStore::default()),
        )
        .expect("client")
    }

    fn headers(write: bool) -> reqwest::Request {
        client()
            .prepare(
                Method::PATCH,
                "http://127.0.0.1:1",
                "/services/data/v62.0/sobjects/Account/001",
                &SecretString::from("TOKEN"),
                write,
            )
            .expect("prepare")
            .build()
            .expect("request")
    }

    #[test]
    fn writes_carry_the_loop_prevention_tag_and_reads_do_not() {
        let write = headers(true);
        let read = headers(false);
        assert_eq!(
            write
                .headers()
                .get("sforce-call-options")
                .and_then(|v| v.to_str().ok()),
            Some("client=sfsync")
        );
        assert!(read.headers().get("sforce-call-options").is_none());
        assert_eq!(
            write
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer TOKEN")
        );
        assert_eq!(
            write.url().as_str(),
            "http://127.0.0.1:1/services/data/v62.0/sobjects/Account/001"
        );
    }

    #[test]
    fn a_full_url_is_refused_so_the_token_stays_on_the_instance() {
        for path in ["https://evil.example/x", "//evil.example/x", "x"] {
            let result = client().prepare(
                Method::GET,
                "http://127.0.0.1:1",
                path,
                &SecretString::from("TOKEN"),
                false,
            );
            assert!(result.is_err(), "{path}");
        }
    }

    #[test]
    fn the_data_path_carries_the_configured_version() {
        assert_eq!(client().data_path("/query"), "/services/data/v62.0/query");
        assert_eq!(client().instance_url(), "http://127.0.0.1:1");
    }

    #[test]
    fn the_state_serializes_as_the_status_api_names_it() {
        assert_eq!(
            serde_json::to_string(&ConnectionState::NeedsReauth)
                .ok()
                .as_deref(),
            Some("\"needs_reauth\"")
        );
    }
}
