//! The recent errors an operator should see without reading logs: failed pushes, failed pulls,
//! failed sweeps, setup problems and authorization failures, newest first. A bounded ring in
//! memory: the oldest entry goes when a new one comes, and nothing survives a restart (the logs
//! keep the full story). Reasons are the errors' own messages, which never carry a token.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::domain::OrgId;

/// How many errors are kept.
pub const CAPACITY: usize = 500;

/// The longest reason kept, in characters; longer ones are cut.
const MAX_REASON: usize = 600;

/// Where an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// Sending an outbox entry to Salesforce.
    Push,
    /// Reading or applying a notified record.
    Pull,
    /// The catch-up sweep.
    Sweep,
    /// The org's setup check.
    Setup,
    /// The org's authorization (refresh token refused or missing).
    Auth,
}

impl ErrorSource {
    /// The lowercase name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
            Self::Sweep => "sweep",
            Self::Setup => "setup",
            Self::Auth => "auth",
        }
    }
}

/// One error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentError {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The org it concerns.
    pub org: OrgId,
    /// Where it happened.
    pub source: ErrorSource,
    /// Why, as the error said it.
    pub reason: String,
}

/// The ring of recent errors.
#[derive(Debug, Default)]
pub struct RecentErrors {
    ring: Mutex<VecDeque<RecentError>>,
}

impl RecentErrors {
    /// Records an error of `org` now.
    pub fn record(&self, org: &OrgId, source: ErrorSource, reason: impl std::fmt::Display) {
        let mut reason = reason.to_string();
        if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON) {
            reason.truncate(cut);
            reason.push('…');
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == CAPACITY {
            ring.pop_back();
        }
        ring.push_front(RecentError {
            at: Utc::now(),
            org: org.clone(),
            source,
            reason,
        });
    }

    /// The newest `limit` errors, of `org` only when given.
    pub fn latest(&self, org: Option<&OrgId>, limit: usize) -> Vec<RecentError> {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| org.is_none_or(|o| &e.org == o))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).expect("org")
    }

    #[test]
    fn the_newest_errors_come_first_and_the_oldest_go_past_the_capacity() {
        let errors = RecentErrors::default();
        let a = org("00D7F00000107Xs");
        for i in 0..CAPACITY + 3 {
            errors.record(&a, ErrorSource::Push, format!("failure {i}"));
        }

        let latest = errors.latest(None, CAPACITY + 10);

        assert_eq!(latest.len(), CAPACITY);
        assert_eq!(latest[0].reason, format!("failure {}", CAPACITY + 2));
        assert_eq!(latest[CAPACITY - 1].reason, "failure 3");
    }

    #[test]
    fn errors_are_listed_per_org_and_long_reasons_are_cut() {
        let errors = RecentErrors::default();
        let (a, b) = (org("00D7F00000107Xs"), org("00D1I000003qqqE"));
        errors.record(&a, ErrorSource::Auth, "x".repeat(5_000));
        errors.record(&b, ErrorSource::Sweep, "timeout");

        let of_a = errors.latest(Some(&a), 10);

        assert_eq!(of_a.len(), 1);
        assert_eq!(of_a[0].source.as_str(), "auth");
        assert_eq!(of_a[0].reason.chars().count(), MAX_REASON + 1);
    }
}
