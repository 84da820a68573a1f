//! Deliveries of the change log to the app's webhooks: each webhook's cursor (the last entry it
//! has settled, delivered or given up) and its dead letters (entries it never took, kept whole so
//! that a retry works even after the log has been compacted past them).
//!
//! A webhook is named by its URL. A cursor is written after the entries before it settled; one
//! lost in a crash only means those entries are delivered again (at-least-once).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::changes::{ChangeEntry, last_seq};
use super::keys;
use super::{Page, Store, StoreError};

/// A change an app's webhook did not take within its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppDeadLetter {
    /// The webhook's URL.
    pub webhook: String,
    /// The change, whole.
    pub entry: ChangeEntry,
    /// Attempts made.
    pub attempts: u32,
    /// What the last attempt got (a status, a timeout, a refused connection).
    pub last_error: String,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
    /// A person asked for it to be sent again.
    pub retry_requested: bool,
}

fn decode(v: &[u8]) -> Result<AppDeadLetter, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        tree: "deliveries",
        reason: e.to_string(),
    })
}

impl Store {
    /// The last entry a webhook has settled; `None` for a webhook never run.
    pub fn delivery_cursor(&self, webhook: &str) -> Result<Option<u64>, StoreError> {
        let raw = self.inner.deliveries.get(keys::delivery_cursor(webhook))?;
        Ok(raw.map(|v| last_seq(Some(&v))))
    }

    /// Moves a webhook's cursor to `seq`.
    pub fn set_delivery_cursor(&self, webhook: &str, seq: u64) -> Result<(), StoreError> {
        self.inner
            .deliveries
            .insert(keys::delivery_cursor(webhook), &seq.to_be_bytes())?;
        Ok(())
    }

    /// Keeps a dead letter (replacing one for the same entry).
    pub fn put_app_dead_letter(&self, d: &AppDeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(d).map_err(|e| StoreError::Corrupt {
            tree: "deliveries",
            reason: e.to_string(),
        })?;
        let key = keys::delivery_dead(&d.webhook, d.entry.seq);
        self.inner.deliveries.insert(key, bytes)?;
        Ok(())
    }

    /// One dead letter of a webhook, by the entry's sequence number.
    pub fn app_dead_letter(
        &self,
        webhook: &str,
        seq: u64,
    ) -> Result<Option<AppDeadLetter>, StoreError> {
        let key = keys::delivery_dead(webhook, seq);
        self.inner
            .deliveries
            .get(key)?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Removes a dead letter; returns it as it was.
    pub fn remove_app_dead_letter(
        &self,
        webhook: &str,
        seq: u64,
    ) -> Result<Option<AppDeadLetter>, StoreError> {
        let key = keys::delivery_dead(webhook, seq);
        let removed = self.inner.deliveries.remove(key)?;
        removed.map(|v| decode(&v)).transpose()
    }

    /// A page of a webhook's dead letters, oldest entry first, after entry `after`.
    pub fn app_dead_letters(
        &self,
        webhook: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<AppDeadLetter>, StoreError> {
        let start = keys::delivery_dead(webhook, after.map_or(0, |a| a.saturating_add(1)));
        let end = keys::delivery_dead(webhook, u64::MAX);
        let mut items = Vec::new();
        for kv in self.inner.deliveries.range(start..=end) {
            items.push(decode(&kv?.1)?);
            if items.len() > limit {
                break;
            }
        }
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|d| d.entry.seq)
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    /// How many dead letters a webhook has.
    pub fn app_dead_letter_count(&self, webhook: &str) -> Result<u64, StoreError> {
        let prefix = keys::delivery_dead_all(webhook);
        let mut n = 0;
        for kv in self.inner.deliveries.scan_prefix(prefix) {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    /// The dead letters of a webhook a person asked to send again, oldest entry first.
    pub fn app_retries_requested(&self, webhook: &str) -> Result<Vec<AppDeadLetter>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .inner
            .deliveries
            .scan_prefix(keys::delivery_dead_all(webhook))
        {
            let d = decode(&kv?.1)?;
            if d.retry_requested {
                out.push(d);
            }
        }
        Ok(out)
    }
}
