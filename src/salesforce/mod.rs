//! Salesforce REST and OAuth client: the only module that names reqwest.
//!
//! - [`oauth`]: the web server flow with PKCE, code exchange, refresh, signature check.
//! - [`Client`]: one org's connection; single-flight refresh on 401, connection state, API
//!   budget, and the REST operations ([`rest`]), queries as streams ([`query`]), sObject
//!   Collections ([`composite`]) and several of those in one call ([`composite_call`]).
//! - [`error`]: [`SalesforceError`] and the one classification ([`ErrorClass`]) every caller uses.
//! - [`soql`]: every query's text, with the one quoting function for string literals.
//! - [`limits`]: `Sforce-Limit-Info` parsing.
//! - [`listviews`]: an object's list views and the query each runs.
//! - [`vault`]: refresh tokens sealed at rest and the [`TokenStore`] that keeps them.
//!
//! The wire shapes are Salesforce's REST and OAuth ones, as each module says. Retry schedules belong to
//! callers; the client itself only refreshes an expired session once.

mod client;
pub mod composite;
pub mod composite_call;
pub mod describe;
pub mod error;
pub mod limits;
pub mod listviews;
pub mod oauth;
pub mod query;
pub mod rest;
pub mod soql;
pub mod vault;

pub use client::{CALL_OPTIONS, Client, ConnectionState};
pub use composite::{MAX_COLLECTION, MAX_RETRIEVE, RecordResult};
pub use composite_call::{MAX_COLLECTIONS_OR_QUERIES, MAX_SUBREQUESTS, SubResult, Subrequest};
pub use describe::{ApiVersion, FieldDescribe, ObjectDescribe, UserInfo};
pub use error::{ApiErrorItem, DuplicateResult, ErrorClass, SalesforceError, TransportKind};
pub use limits::ApiUsage;
pub use listviews::{ListView, ListViewDescribe};
pub use oauth::{AuthorizeRequest, OAuthClient, OAuthSettings, Pkce, TokenResponse};
pub use query::QueryPage;
pub use rest::{Fetched, RecordExt, UpsertOutcome};
pub use soql::{Condition, Soql, reselect};
pub use vault::{TokenKey, TokenStore, TokenStoreError, TokenVault, VaultError};

/// A record as Salesforce sends it: field name → JSON value, `attributes` included on reads.
pub type Record = serde_json::Map<String, serde_json::Value>;
