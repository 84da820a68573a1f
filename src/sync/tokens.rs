//! Where connections keep their refresh tokens: the store, through the [`TokenStore`] the
//! Salesforce client asks. [`StoreTokens`] keeps each org's integration connection;
//! [`UserTokens`] keeps one application user's own connection to an org.

use crate::domain::{AppUser, OrgId, SalesforceId};
use crate::salesforce::{TokenStore, TokenStoreError};
use crate::store::Store;

/// Refresh tokens kept in the store, sealed by the Salesforce vault, and each connection's user:
/// the [`TokenStore`] of the orgs' integration connections.
#[derive(Clone)]
pub struct StoreTokens(pub Store);

impl TokenStore for StoreTokens {
    fn load_sealed(&self, org: &OrgId) -> Result<Option<Vec<u8>>, TokenStoreError> {
        Ok(self.0.load_sealed_token(org)?)
    }

    fn save_sealed(&self, org: &OrgId, sealed: &[u8]) -> Result<(), TokenStoreError> {
        Ok(self.0.save_sealed_token(org, sealed)?)
    }

    fn load_user(&self, org: &OrgId) -> Result<Option<SalesforceId>, TokenStoreError> {
        Ok(self.0.connection_user(org)?)
    }

    fn save_user(&self, org: &OrgId, user: &SalesforceId) -> Result<(), TokenStoreError> {
        Ok(self.0.save_connection_user(org, user)?)
    }
}

/// One application user's own connection to an org, kept in the store: its sealed refresh
/// token (bound to that user) and the Salesforce user it acts as.
#[derive(Clone)]
pub struct UserTokens {
    store: Store,
    user: AppUser,
}

impl UserTokens {
    /// `user`'s connections, kept in `store`.
    pub fn new(store: Store, user: AppUser) -> Self {
        Self { store, user }
    }
}

impl TokenStore for UserTokens {
    fn load_sealed(&self, org: &OrgId) -> Result<Option<Vec<u8>>, TokenStoreError> {
        Ok(self.store.load_user_token(org, &self.user)?)
    }

    fn save_sealed(&self, org: &OrgId, sealed: &[u8]) -> Result<(), TokenStoreError> {
        Ok(self.store.save_user_token(org, &self.user, sealed)?)
    }

    fn load_user(&self, org: &OrgId) -> Result<Option<SalesforceId>, TokenStoreError> {
        Ok(self.store.user_salesforce_user(org, &self.user)?)
    }

    fn save_user(&self, org: &OrgId, user: &SalesforceId) -> Result<(), TokenStoreError> {
        Ok(self
            .store
            .save_user_salesforce_user(org, &self.user, user)?)
    }

    fn owner(&self) -> Option<&AppUser> {
        Some(&self.user)
    }
}
