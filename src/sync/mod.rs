//! Sync rules: `pull` applies Salesforce records locally (match ladder, conflict policy), `push`
//! builds the payloads that local changes send to Salesforce.

pub mod import;
pub mod orgs;
pub mod pull;
pub mod push;
pub mod setup;
pub mod sweep;
