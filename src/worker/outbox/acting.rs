//! Whose connection a write goes out with. A write made for an application user who connected
//! their own Salesforce user goes out with that connection, so the org records them as its
//! owner and last modifier; a write for anyone else, or for a user whose connection needs
//! re-authorization, goes out with the org's integration connection. A call their connection
//! could not authenticate wrote nothing, so sending it again with the org's connection cannot
//! make a second record. The query of the stamps a write made goes out in the same call, so with
//! the same connection; every other read (look-ups, survivors, a stamps read the call could not
//! carry or that failed) uses the org's connection.

use std::future::Future;

use super::OutboxWorker;
use crate::domain::AppUser;
use crate::salesforce::{Client, ConnectionState, ErrorClass, SalesforceError};

impl OutboxWorker {
    /// `owner`'s own connection to this worker's org, while it can make calls.
    fn own_connection(&self, owner: Option<&AppUser>) -> Option<Client> {
        let client = self.users.as_ref()?.user(&self.org, owner?)?;
        (client.state() == ConnectionState::Connected).then_some(client)
    }

    /// Runs one write `call` with `owner`'s own connection, or with the org's when they have
    /// none that works; a refusal of their credentials (revoked, expired) sends it again with
    /// the org's, and their connection stays `needs_reauth` until they connect again.
    pub(super) async fn write_as<T, F, Fut>(
        &self,
        owner: Option<&AppUser>,
        call: F,
    ) -> Result<T, SalesforceError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, SalesforceError>>,
    {
        if let Some(own) = self.own_connection(owner) {
            match call(own).await {
                Err(e) if matches!(e.class(), ErrorClass::Auth { .. }) => {
                    tracing::warn!(
                        org = %self.org,
                        user = ?owner.map(AppUser::as_str),
                        error = %e,
                        "the user's salesforce connection was refused; writing with the org's"
                    );
                }
                done => return done,
            }
        }
        call(self.client.clone()).await
    }
}
