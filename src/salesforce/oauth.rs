//! OAuth 2.0 with Salesforce: the web server flow with PKCE (S256) and `state`, the code
//! exchange, the refresh grant, and verification of the token response `signature`
//! (base64 HMAC-SHA256 of `id` followed by `issued_at`, keyed with the client secret).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use super::error::SalesforceError;
use crate::domain::{OrgId, SalesforceId};

/// The connected app and the API version sfsync speaks, as values (read from the environment
/// by `config`, never here).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The connected app's consumer key (`SALESFORCE_CLIENT_ID`).
    pub client_id: String,
    /// The connected app's consumer secret (`SALESFORCE_CLIENT_SECRET`); also the key of the
    /// token response signature.
    pub client_secret: SecretString,
    /// Where Salesforce sends the browser back with the code (`SALESFORCE_REDIRECT_URI`).
    pub redirect_uri: String,
    /// The login host: `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain,
    /// or a simulator's URL.
    pub login_url: String,
    /// The REST API version without the `v`, e.g. `62.0`.
    pub api_version: String,
}

impl OAuthSettings {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.login_url.trim_end_matches('/'))
    }
}

/// A token endpoint answer. Tokens are secret; `Debug` redacts them.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The session token for `Authorization: Bearer`.
    pub access_token: SecretString,
    /// A refresh token: on the code exchange, and on a refresh when rotation is on.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Where to call the API from now on.
    pub instance_url: String,
    /// The identity URL `https://login.salesforce.com/id/{org id}/{user id}`.
    pub id: String,
    /// Milliseconds since the epoch, as a string.
    pub issued_at: String,
    /// Base64 HMAC-SHA256 of `id + issued_at` keyed with the client secret.
    #[serde(default)]
    pub signature: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// Always `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
}

impl TokenResponse {
    /// The org id named in the identity URL, if it holds one.
    pub fn org_id(&self) -> Option<OrgId> {
        self.id
            .split('/')
            .filter(|s| s.starts_with("00D"))
            .find_map(|s| OrgId::parse(s).ok())
    }

    /// The user the token acts as: the last segment of the identity URL (`005…`).
    pub fn user_id(&self) -> Option<SalesforceId> {
        let last = self.id.trim_end_matches('/').rsplit('/').next()?;
        SalesforceId::parse(last)
            .ok()
            .filter(|id| id.key_prefix() == "005")
    }
}

/// Checks a token response signature: base64(HMAC-SHA256(key = client secret, id ‖ issued_at)),
/// compared in constant time.
pub fn verify_signature(
    client_secret: &SecretString,
    id: &str,
    issued_at: &str,
    signature: &str,
) -> Result<(), SalesforceError> {
    let expected = STANDARD
        .decode(signature.trim())
        .map_err(|_| SalesforceError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.expose_secret().as_bytes())
        .map_err(|_| SalesforceError::BadSignature)?;
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| SalesforceError::BadSignature)
}

/// A PKCE pair: the secret verifier kept until the exchange, and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// 43 base64url characters from 32 random bytes; kept secret until the code exchange.
    pub verifier: SecretString,
    /// base64url-nopad(SHA-256(verifier)).
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::from_verifier(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The pair for a given verifier.
    pub fn from_verifier(verifier: SecretString) -> Self {
        let challenge = challenge_for(verifier.expose_secret());
        Self {
            verifier,
            challenge,
        }
    }
}

/// The S256 challenge of a verifier: base64url, unpadded, of its SHA-256.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Everything needed to send a browser to Salesforce and to finish the flow when it returns.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The `/services/oauth2/authorize` URL to redirect the browser to.
    pub url: String,
    /// The `state` sent; the callback must carry the same value.
    pub state: String,
    /// The PKCE verifier to send with the code.
    pub code_verifier: SecretString,
}

/// Calls the token endpoint. Cheap to clone; holds the HTTP connection pool.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    settings: Arc<OAuthSettings>,
    token_requests: Arc<AtomicU64>,
}

/// The connect timeout of every Salesforce call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection to Salesforce is kept open unused for the next call. An idle connection
/// keeps the read buffer its largest response grew to (up to about 1 MiB after a query page or a
/// 2,000-record retrieve), one per org host and per concurrent call, so a long wait multiplies
/// that by every org that was busy within it: at 90 s (reqwest's default) a 100-org import held
/// about 50 MiB in idle buffers. An org whose calls come in a burst still reuses its connection;
/// one whose calls come more than this apart pays a new handshake (tens of milliseconds), as it
/// mostly would anyway, servers often closing idle connections after 5 to 75 s themselves.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The overall timeout of a token call.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn http_client() -> Result<reqwest::Client, SalesforceError> {
    reqwest::Client::builder()
        .user_agent(concat!("sfsync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
        .map_err(SalesforceError::transport)
}

impl OAuthClient {
    /// A token client for `settings`.
    pub fn new(settings: OAuthSettings) -> Result<Self, SalesforceError> {
        Ok(Self::with_http(http_client()?, settings))
    }

    pub(crate) fn with_http(http: reqwest::Client, settings: OAuthSettings) -> Self {
        Self {
            http,
            settings: Arc::new(settings),
            token_requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// How many token requests this client (and its clones) has sent.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// Starts the web server flow: a fresh `state` and PKCE pair, and the authorize URL
    /// asking for `api refresh_token`.
    pub fn authorize(&self) -> Result<AuthorizeRequest, SalesforceError> {
        self.authorize_with(false)
    }

    /// [`authorize`](Self::authorize), with `prompt=login` when `prompt_login`: Salesforce then
    /// asks for credentials even when the browser is already signed in, so a person connects
    /// the user they sign in as, not whoever last used that browser.
    pub fn authorize_with(&self, prompt_login: bool) -> Result<AuthorizeRequest, SalesforceError> {
        let pkce = Pkce::generate();
        let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let mut url = url::Url::parse(&self.settings.endpoint("/services/oauth2/authorize"))
            .map_err(|_| SalesforceError::InvalidRequest("the login url is not a url"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri)
            .append_pair("scope", "api refresh_token")
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        if prompt_login {
            url.query_pairs_mut().append_pair("prompt", "login");
        }
        Ok(AuthorizeRequest {
            url: url.into(),
            state,
            code_verifier: pkce.verifier,
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens; the response
    /// signature is verified.
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &SecretString,
    ) -> Result<TokenResponse, SalesforceError> {
        let s = &self.settings;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose_secret()),
            ("redirect_uri", s.redirect_uri.as_str()),
            ("code_verifier", code_verifier.expose_secret()),
        ];
        self.token_call(&form)
            .instrument(tracing::info_span!(
                "sf.oauth",
                grant = "authorization_code"
            ))
            .await
    }

    /// Trades a refresh token for a new access token (and, with rotation, a new refresh token).
    /// `invalid_grant` comes back as [`SalesforceError::OAuth`], classed as needing re-auth.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, SalesforceError> {
        let s = &self.settings;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose_secret()),
        ];
        self.token_call(&form)
            .instrument(tracing::info_span!("sf.oauth", grant = "refresh_token"))
            .await
    }

    async fn token_call(&self, form: &[(&str, &str)]) -> Result<TokenResponse, SalesforceError> {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(self.settings.endpoint("/services/oauth2/token"))
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(TOKEN_TIMEOUT)
            .form(form)
            .send()
            .await
            .map_err(SalesforceError::transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(SalesforceError::transport)?;
        if !(200..300).contains(&status) {
            let err = SalesforceError::from_response(status, &body);
            tracing::warn!(status, code = err.code(), "token request refused");
            return Err(err);
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| SalesforceError::Unexpected {
                what: "token response",
                status,
            })?;
        match &token.signature {
            Some(sig) => verify_signature(
                &self.settings.client_secret,
                &token.id,
                &token.issued_at,
                sig,
            )?,
            None => tracing::debug!("token response carries no signature"),
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_ID: &str = "https://login.salesforce.com/id/00Dxx0000001gPFEAY/005xx000001SwiUAAS";

    #[test]
    fn the_identity_url_names_the_org_and_the_user() {
        let token: TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "instance_url": "https://x.example", "id": VECTOR_ID,
            "issued_at": "1278448832702"
        }))
        .expect("token");
        assert_eq!(
            token.org_id().map(|o| o.as_15().to_string()).as_deref(),
            Some("00Dxx0000001gPF")
        );
        assert_eq!(
            token.user_id().map(|u| u.as_15().to_string()).as_deref(),
            Some("005xx000001SwiU")
        );
        let bare: TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "instance_url": "https://x.example",
            "id": "https://login.salesforce.com/id/00Dxx0000001gPFEAY", "issued_at": "1"
        }))
        .expect("token");
        assert_eq!(bare.user_id(), None);
    }

    #[test]
    fn the_documented_signature_vector_verifies() {
        let secret = SecretString::from("TESTSECRET123");
        let sig = "RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw=";
        assert!(verify_signature(&secret, VECTOR_ID, "1278448832702", sig).is_ok());
    }

    #[test]
    fn a_signature_over_other_values_or_with_another_secret_fails() {
        let secret = SecretString::from("TESTSECRET123");
        let sig = "RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw=";
        let bad = [
            verify_signature(&secret, VECTOR_ID, "1278448832703", sig),
            verify_signature(
                &SecretString::from("OTHER"),
                VECTOR_ID,
                "1278448832702",
                sig,
            ),
            verify_signature(&secret, VECTOR_ID, "1278448832702", "RFh95Uv="),
            verify_signature(&secret, VECTOR_ID, "1278448832702", "not base64!"),
        ];
        for result in bad {
            assert!(matches!(result, Err(SalesforceError::BadSignature)));
        }
    }

    #[test]
    fn the_rfc_7636_pkce_vector_holds() {
        let pkce = Pkce::from_verifier(SecretString::from(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(
            pkce.challenge,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_generated_pkce_pair_is_well_formed_and_fresh() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_eq!(a.verifier.expose_secret().len(), 43);
        assert_eq!(a.challenge, challenge_for(a.verifier.expose_secret()));
        assert!(!a.challenge.contains(['=', '+', '/']));
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
    }

    fn settings() -> OAuthSettings {
        OAuthSettings {
            client_id: "3MVG9client".into(),
            client_secret: SecretString::from("TESTSECRET123"),
            redirect_uri: "https://app.example/oauth/salesforce/callback".into(),
            login_url: "https://login.salesforce.com/".into(),
            api_version: "62.0".into(),
        }
    }

    #[test]
    fn the_authorize_url_carries_every_parameter() {
        let client = OAuthClient::new(settings()).expect("client");
        let req = client.authorize().expect("authorize");
        let url = url::Url::parse(&req.url).expect("url");
        assert_eq!(url.path(), "/services/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "3MVG9client");
        assert_eq!(
            q["redirect_uri"],
            "https://app.example/oauth/salesforce/callback"
        );
        assert_eq!(q["scope"], "api refresh_token");
        assert_eq!(q["state"], req.state);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            challenge_for(req.code_verifier.expose_secret())
        );
        assert!(!req.url.contains(req.code_verifier.expose_secret()));
        assert!(!q.contains_key("prompt"));
        let forced = client.authorize_with(true).expect("authorize");
        assert!(forced.url.contains("prompt=login"), "{}", forced.url);
    }

    #[test]
    fn the_token_response_debug_redacts_and_the_org_id_is_read() {
        let body = format!(
            r#"{{"access_token":"00Dxx!AR.secretaccess","refresh_token":"5Aep.secretrefresh","signature":"RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw=","scope":"refresh_token api","instance_url":"https://na1.salesforce.com","id":"{VECTOR_ID}","token_type":"Bearer","issued_at":"1278448832702"}}"#
        );
        let token: TokenResponse = serde_json::from_str(&body).expect("parse");
        let debug = format!("{token:?}");
        assert!(!debug.contains("secretaccess") && !debug.contains("secretrefresh"));
        let org = token.org_id().expect("org id in the identity url");
        assert_eq!(org.as_str(), "00Dxx0000001gPFEAY");
    }

    /// Serves every request on a connection with an empty 200, keep-alive; counts the accepted
    /// connections and sends the time each was closed by the client.
    async fn keep_alive_server() -> (
        std::net::SocketAddr,
        Arc<AtomicU64>,
        tokio::sync::mpsc::UnboundedReceiver<std::time::Instant>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                    let _ = closed.send(std::time::Instant::now());
                });
            }
        });
        (addr, accepted, closed_rx)
    }

    #[tokio::test]
    async fn calls_in_a_burst_share_a_connection_and_an_idle_one_is_closed_soon_after() {
        let (addr, accepted, mut closed) = keep_alive_server().await;
        let http = http_client().expect("client");
        let url = format!("http://{addr}/services/data");
        for _ in 0..3 {
            let reply = http.get(&url).send().await.expect("call");
            assert_eq!(reply.status(), 200);
            reply.bytes().await.expect("body");
        }
        let idle_since = std::time::Instant::now();
        // The pool checks its idle connections about once per timeout, so one is closed between
        // one and two timeouts after its last call; reqwest's own default keeps it 90 s.
        let closed_at = tokio::time::timeout(POOL_IDLE_TIMEOUT * 3, closed.recv())
            .await
            .expect("the idle connection is closed within three idle timeouts")
            .expect("a close");
        assert!(
            closed_at.duration_since(idle_since) >= POOL_IDLE_TIMEOUT - Duration::from_millis(100),
            "not closed before the idle timeout"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the three calls used one connection"
        );
    }
}
