//! The documented sync choices: who wins a conflict, and what a new contact becomes in Salesforce.

use serde::{Deserialize, Serialize};

/// What happens when a Salesforce record matches a local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Salesforce's values overwrite ours and the `salesforce_id` is set (the default).
    #[default]
    SalesforceWins,
    /// Only the `salesforce_id` is linked; our field values stay.
    OursWins,
}

/// What a local contact without a `salesforce_id` is pushed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAs {
    /// A Contact on the Company's Account (the default).
    #[default]
    Contact,
    /// A Lead carrying `Company`.
    Lead,
}
