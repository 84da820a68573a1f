//! The pull side's shared state: one Salesforce [`Client`] per connected org (and one per
//! application user who connected their own Salesforce user), and the pull [`Rules`], cheap to
//! clone, shared by the inbox worker, the sweep, imports, the outbox workers and the API.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::{AppUser, OrgId};
use crate::salesforce::Client;

use super::import::Imports;
use super::pull::Rules;

/// Connected orgs, by org id, and the application users' own connections, by org and user.
#[derive(Debug, Default)]
pub struct SalesforceOrgs {
    clients: RwLock<BTreeMap<OrgId, Client>>,
    users: RwLock<BTreeMap<(OrgId, AppUser), Client>>,
}

impl SalesforceOrgs {
    /// Adds (or replaces) the connection of the client's org.
    pub fn insert(&self, client: Client) {
        self.clients
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(client.org_id().clone(), client);
    }

    /// The connection of an org.
    pub fn get(&self, org: &OrgId) -> Option<Client> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(org)
            .cloned()
    }

    /// Every connection, in org id order.
    pub fn all(&self) -> Vec<Client> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Adds (or replaces) an application user's own connection to the client's org; a client
    /// without an application user is the org's connection, and is [`insert`](Self::insert)ed.
    pub fn insert_user(&self, client: Client) {
        let Some(user) = client.app_user().cloned() else {
            return self.insert(client);
        };
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((client.org_id().clone(), user), client);
    }

    /// An application user's own connection to an org.
    pub fn user(&self, org: &OrgId, user: &AppUser) -> Option<Client> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org.clone(), user.clone()))
            .cloned()
    }

    /// The application users' own connections to an org, in user id order.
    pub fn users_of(&self, org: &OrgId) -> Vec<Client> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((o, _), _)| o == org)
            .map(|(_, c)| c.clone())
            .collect()
    }
}

/// What the pull side shares: connections, rules, running imports, counters.
#[derive(Debug, Clone, Default)]
pub struct PullContext {
    /// Connected orgs.
    pub orgs: Arc<SalesforceOrgs>,
    /// The `[sync]` rules.
    pub rules: Arc<Rules>,
    /// Imports started through the API, with their progress.
    pub imports: Arc<Imports>,
    /// Notifications recognised as the echo of sfsync's own write (nothing pulled), since
    /// start: the status API and the metrics read it.
    pub echoes: Arc<AtomicU64>,
}

impl PullContext {
    /// A context with these rules and no connection yet.
    pub fn new(rules: Rules) -> Self {
        Self {
            orgs: Arc::default(),
            rules: Arc::new(rules),
            imports: Arc::default(),
            echoes: Arc::default(),
        }
    }
}
