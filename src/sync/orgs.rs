//! The pull side's shared state: one Salesforce [`Client`] per connected org (and one per
//! application user who connected their own Salesforce user), and the pull [`Rules`], cheap to
//! clone, shared by the inbox worker, the sweep, imports, the outbox workers and the API. Every
//! connected org's client counts into the app's [`Telemetry`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::{AppUser, OrgId};
use crate::salesforce::Client;
use crate::telemetry::Telemetry;

use super::import::Imports;
use super::pull::Rules;

/// Connected orgs, by org id, and the application users' own connections, by org and user.
#[derive(Debug, Default)]
pub struct SalesforceOrgs {
    clients: RwLock<BTreeMap<OrgId, Client>>,
    users: RwLock<BTreeMap<(OrgId, AppUser), Client>>,
    telemetry: Telemetry,
}

impl SalesforceOrgs {
    /// No org yet; clients added later count into `telemetry`.
    pub fn new(telemetry: Telemetry) -> Self {
        Self {
            clients: RwLock::default(),
            users: RwLock::default(),
            telemetry,
        }
    }

    /// Where the connected orgs' calls and failures are counted.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Adds (or replaces) the connection of the client's org; its calls count into this
    /// app's telemetry from now on.
    pub fn insert(&self, client: Client) {
        client.attach_telemetry(self.telemetry.clone());
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
        client.attach_telemetry(self.telemetry.clone());
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
        Self::with_telemetry(rules, Telemetry::default())
    }

    /// [`PullContext::new`] whose orgs count into `telemetry`.
    pub fn with_telemetry(rules: Rules, telemetry: Telemetry) -> Self {
        Self {
            orgs: Arc::new(SalesforceOrgs::new(telemetry)),
            rules: Arc::new(rules),
            imports: Arc::default(),
            echoes: Arc::default(),
        }
    }
}
