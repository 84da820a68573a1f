//! Sync rules: `pull` applies Salesforce records locally (match ladder, conflict policy), `push`
//! builds the payloads that local changes send to Salesforce, and `local` holds the use cases
//! the local API calls (writes with their outbox entry, dead letters, conflicts, imports).

pub mod import;
pub mod local;
pub mod orgs;
pub mod pull;
pub mod push;
pub mod setup;
pub mod sweep;
pub mod tokens;
