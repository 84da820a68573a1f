//! The state of the OAuth flow the app holds: the connected app, the vault refresh tokens are
//! sealed with, where they are kept, and the authorizations under way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::domain::{AppUser, OrgId};
use crate::salesforce::{OAuthSettings, TokenStore, TokenVault};

/// The connected app, the vault for refresh tokens, and the authorizations under way.
pub struct OAuthFlow {
    settings: OAuthSettings,
    vault: Arc<TokenVault>,
    tokens: Arc<dyn TokenStore>,
    pub(super) request_timeout: Duration,
    pending: Mutex<HashMap<String, Pending>>,
}

/// An authorization under way, by its `state`: for which org and user, the PKCE verifier, when
/// it started, and who started it.
pub(super) struct Pending {
    pub(super) org: OrgId,
    pub(super) user: Option<AppUser>,
    pub(super) verifier: SecretString,
    pub(super) at: Instant,
    pub(super) starter: Starter,
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

    pub(super) fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Who started an authorization, so that the callback answers in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Starter {
    /// `GET /oauth/salesforce/authorize` with the API token: the callback answers plain text.
    Api,
    /// The console's Connect button: the callback answers a page that leads back to the org.
    Console,
}
