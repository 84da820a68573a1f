//! Per-user connections at rest: an application user's sealed refresh token for an org and the
//! Salesforce user it acts as, kept beside the org's own connection in `oauth_tokens` and made
//! durable before the call that saved them returns (a rotated refresh token that is lost locks
//! the user out).

use super::{Store, StoreError, keys};
use crate::domain::{AppUser, OrgId, SalesforceId};

impl Store {
    /// An application user's sealed refresh token for an org, as stored.
    pub fn load_user_token(
        &self,
        org: &OrgId,
        user: &AppUser,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .tokens
            .get(keys::user_token(org, user))?
            .map(|v| v.to_vec()))
    }

    /// Stores an application user's sealed refresh token for an org, durably.
    pub fn save_user_token(
        &self,
        org: &OrgId,
        user: &AppUser,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.inner
            .tokens
            .insert(keys::user_token(org, user), sealed)?;
        self.flush_tokens()
    }

    /// The Salesforce user an application user's connection acts as, once a token named it.
    pub fn user_salesforce_user(
        &self,
        org: &OrgId,
        user: &AppUser,
    ) -> Result<Option<SalesforceId>, StoreError> {
        let Some(v) = self
            .inner
            .tokens
            .get(keys::user_salesforce_user(org, user))?
        else {
            return Ok(None);
        };
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| SalesforceId::parse(s).ok())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                tree: "oauth_tokens",
                reason: "a user connection's salesforce user is not an id".into(),
            })
    }

    /// Saves the Salesforce user an application user's connection acts as, durably.
    pub fn save_user_salesforce_user(
        &self,
        org: &OrgId,
        user: &AppUser,
        salesforce_user: &SalesforceId,
    ) -> Result<(), StoreError> {
        self.inner.tokens.insert(
            keys::user_salesforce_user(org, user),
            salesforce_user.as_str().as_bytes(),
        )?;
        self.flush_tokens()
    }

    /// The application users with a stored connection to an org, in id order.
    pub fn connected_users(&self, org: &OrgId) -> Result<Vec<AppUser>, StoreError> {
        let mut users = Vec::new();
        for kv in self.inner.tokens.scan_prefix(keys::user_connections(org)) {
            let (k, _) = kv?;
            users.extend(keys::user_of_token_key(org, &k));
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).expect("org")
    }

    #[test]
    fn each_users_token_is_kept_apart_from_the_orgs_and_from_other_orgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let (a, b) = (org("00D7F00000107XsUAI"), org("00D1I000003qqqEUAQ"));
        let alice = AppUser::parse("alice").expect("user");
        let bob = AppUser::parse("bob@example.com").expect("user");
        store.save_sealed_token(&a, b"org").expect("save");
        store.save_user_token(&a, &alice, b"alice").expect("save");
        store.save_user_token(&a, &bob, b"bob").expect("save");
        store.save_user_token(&b, &alice, b"alice-b").expect("save");
        let rep = SalesforceId::parse("0055g0000000002AAA").expect("id");
        store
            .save_user_salesforce_user(&a, &alice, &rep)
            .expect("save");

        assert_eq!(
            store.connected_users(&a).expect("users"),
            vec![alice.clone(), bob]
        );
        assert_eq!(
            store.connected_users(&b).expect("users"),
            vec![alice.clone()]
        );
        assert_eq!(
            store.load_user_token(&a, &alice).expect("load").as_deref(),
            Some(&b"alice"[..])
        );
        assert_eq!(
            store.load_sealed_token(&a).expect("load").as_deref(),
            Some(&b"org"[..])
        );
        assert_eq!(
            store.user_salesforce_user(&a, &alice).expect("load"),
            Some(rep)
        );
        assert_eq!(store.connection_user(&a).expect("load"), None);
    }
}
