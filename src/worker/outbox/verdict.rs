//! What became of one outbox entry in a step ([`Verdict`]), from a send, a look-up or a failed
//! call.

use crate::domain::SalesforceId;
use crate::salesforce::{ErrorClass, Record, SalesforceError};

/// What happened to one entry.
#[derive(Debug, Clone)]
pub(super) enum Verdict {
    /// The record exists in Salesforce under `id` (created, found, or updated).
    Linked {
        id: SalesforceId,
        rule: &'static str,
        stamp_ms: Option<i64>,
    },
    /// An earlier attempt's create, unanswered, is in Salesforce as `id` (found by the record's
    /// marker). It carried the record as it was then, perhaps older than what this attempt sent.
    FoundEarlier {
        id: SalesforceId,
        stamp_ms: Option<i64>,
    },
    /// Try again later; `count` says whether it counts as an attempt.
    Retry { message: String, count: bool },
    /// Refused for good.
    Dead { message: String },
    /// The Salesforce record merged or converted into `id`.
    Repoint { id: SalesforceId },
    /// The record is already in the org (`record`, found by `rule`): link it, and take its
    /// values as the conflict policy says.
    Adopt { record: Record, rule: &'static str },
    /// Several records in the org match on `rung`: hold it for a person.
    Ambiguous {
        rung: &'static str,
        matches: Vec<Record>,
    },
    /// The org's setup of the object is broken: wait, not an attempt.
    Paused { object: String, reason: String },
}

/// The outcome every entry of a failed call gets, by the call's error class.
pub(super) fn call_failure(err: &SalesforceError) -> Verdict {
    match err.class() {
        ErrorClass::Retryable
        | ErrorClass::Auth {
            needs_reauth: false,
        } => Verdict::Retry {
            message: err.to_string(),
            count: true,
        },
        // Waiting for the budget or for a person to authorize again is not the entry's failure.
        ErrorClass::Limit | ErrorClass::Auth { needs_reauth: true } => Verdict::Retry {
            message: err.to_string(),
            count: false,
        },
        ErrorClass::Permanent | ErrorClass::Gone => Verdict::Dead {
            message: err.to_string(),
        },
    }
}
