//! Sessions and grants: access tokens (each belonging to a user and, when a refresh made it, to
//! that refresh token), refresh tokens, unused authorization codes and browser sessions of the
//! login page.

use std::collections::HashMap;

use crate::domain::SalesforceId;

/// A pending authorization code.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
    pub(crate) user: SalesforceId,
}

/// A live access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub(crate) user: SalesforceId,
    /// The refresh token it came from; revoking that revokes this.
    pub(crate) refresh: Option<String>,
    /// Data calls made with it.
    pub(crate) calls: u64,
}

/// Sessions and grants.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, SalesforceId>,
    codes: HashMap<String, CodeGrant>,
    /// Browser sessions of the login page (`sid` cookie) and their user.
    sessions: HashMap<String, SalesforceId>,
}

impl Auth {
    /// Records an access token of `user`, made from `refresh` when given.
    pub(crate) fn add_access(
        &mut self,
        token: String,
        user: SalesforceId,
        refresh: Option<String>,
    ) {
        let grant = AccessGrant {
            user,
            refresh,
            calls: 0,
        };
        self.access.insert(token, grant);
    }

    /// The live access token `token`.
    pub(crate) fn access(&mut self, token: &str) -> Option<&mut AccessGrant> {
        self.access.get_mut(token)
    }

    /// Ends one access token.
    pub(crate) fn drop_access(&mut self, token: &str) {
        self.access.remove(token);
    }

    /// Ends every access token (refresh tokens keep working).
    pub(crate) fn expire_all(&mut self) {
        self.access.clear();
    }

    /// Records a refresh token of `user`.
    pub(crate) fn add_refresh(&mut self, token: String, user: SalesforceId) {
        self.refresh.insert(token, user);
    }

    /// The user of a live refresh token.
    pub(crate) fn refresh_user(&self, token: &str) -> Option<SalesforceId> {
        self.refresh.get(token).cloned()
    }

    /// Records an authorization code.
    pub(crate) fn add_code(&mut self, code: String, grant: CodeGrant) {
        self.codes.insert(code, grant);
    }

    /// Takes an authorization code (a code works once).
    pub(crate) fn take_code(&mut self, code: &str) -> Option<CodeGrant> {
        self.codes.remove(code)
    }

    /// Records a login-page session of `user`.
    pub(crate) fn add_session(&mut self, sid: String, user: SalesforceId) {
        self.sessions.insert(sid, user);
    }

    /// The user of a login-page session.
    pub(crate) fn session_user(&self, sid: &str) -> Option<SalesforceId> {
        self.sessions.get(sid).cloned()
    }

    /// Revokes a token: a refresh token takes its access tokens with it. False when the token is
    /// not live.
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        if self.refresh.remove(token).is_some() {
            self.access
                .retain(|_, g| g.refresh.as_deref() != Some(token));
            true
        } else {
            self.access.remove(token).is_some()
        }
    }

    /// Revokes every token and session of `user`.
    pub(crate) fn revoke_user(&mut self, user: &SalesforceId) {
        self.refresh.retain(|_, u| u != user);
        self.access.retain(|_, g| g.user != *user);
        self.sessions.retain(|_, u| u != user);
    }
}
