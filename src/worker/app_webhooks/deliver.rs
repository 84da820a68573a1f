//! Delivering one batch: the entries grouped by the record they concern, each group sent in
//! sequence order (a record's changes arrive in order), groups in parallel up to the webhook's
//! concurrency; every entry tried until it is delivered or out of attempts, then a dead letter.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;

use crate::app_webhooks::{Attempt, Hook, SendError, Sender};
use crate::domain::{ChangeKind, OrgId};
use crate::store::{AppDeadLetter, ChangeEntry, Store, StoreError};
use crate::worker::Backoff;

/// How a webhook's changes are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The wait between attempts.
    pub backoff: Backoff,
    /// Attempts per change before it becomes a dead letter.
    pub max_attempts: u32,
    /// Records whose changes are in flight at once.
    pub concurrency: usize,
    /// Entries read per step.
    pub batch: usize,
    /// How long a step under way at shutdown may go on: its POSTs may have reached the app, and
    /// only a finished step moves the cursor past them.
    pub finish_within: Duration,
}

impl DeliverySettings {
    /// The settings of `[changes]`, a step under way at shutdown finishing within `grace`.
    pub fn from_config(c: &crate::config::ChangesConfig, grace: Duration) -> Self {
        Self {
            backoff: Backoff {
                base: Duration::from_millis(c.retry_base_ms),
                cap: Duration::from_millis(c.retry_cap_ms),
            },
            max_attempts: c.max_attempts,
            concurrency: c.delivery_concurrency,
            batch: 256,
            finish_within: grace,
        }
    }
}

/// What became of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// The app took it.
    Delivered,
    /// Out of attempts: kept as a dead letter.
    Dead,
}

/// The entries of a batch grouped by the record they concern, each group in sequence order,
/// the groups in the order of their first entry.
pub(super) fn by_subject(entries: Vec<ChangeEntry>) -> Vec<Vec<ChangeEntry>> {
    let mut groups: Vec<Vec<ChangeEntry>> = Vec::new();
    let mut index: HashMap<(OrgId, ChangeKind, u64), usize> = HashMap::new();
    for e in entries {
        let key = (e.org_id.clone(), e.kind.kind, e.subject_id());
        match index.get(&key) {
            Some(&i) => groups[i].push(e),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![e]);
            }
        }
    }
    groups
}

/// One webhook's sending side.
#[derive(Clone)]
pub(super) struct Courier<'a> {
    pub(super) store: &'a Store,
    pub(super) hook: &'a Hook,
    pub(super) sender: &'a Sender,
    pub(super) settings: &'a DeliverySettings,
}

impl Courier<'_> {
    /// Delivers every group, in parallel up to the concurrency; the fate of each entry.
    pub(super) async fn deliver_all(
        &self,
        groups: Vec<Vec<ChangeEntry>>,
    ) -> Result<Vec<Fate>, StoreError> {
        let done: Vec<Result<Vec<Fate>, StoreError>> = futures::stream::iter(groups)
            .map(|g| self.deliver_in_order(g))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut fates = Vec::new();
        for d in done {
            fates.extend(d?);
        }
        Ok(fates)
    }

    async fn deliver_in_order(&self, group: Vec<ChangeEntry>) -> Result<Vec<Fate>, StoreError> {
        let mut fates = Vec::with_capacity(group.len());
        for entry in group {
            fates.push(self.deliver(entry).await?);
        }
        Ok(fates)
    }

    /// One POST of `entry`; counted in the webhook's state.
    pub(super) async fn attempt(&self, entry: &ChangeEntry) -> Result<(), SendError> {
        let now = Utc::now();
        let sent = self
            .sender
            .post(&self.hook.url, &self.hook.secret, entry, now.timestamp())
            .await;
        if sent.is_ok() {
            self.hook.attempted(Attempt::Delivered, None);
            let lag = (now - entry.timestamp).to_std().unwrap_or_default();
            tracing::debug!(
                seq = entry.seq,
                lag_ms = lag.as_millis() as u64,
                "delivered"
            );
        }
        sent
    }

    /// Tries `entry` until the app takes it or its attempts run out (then a dead letter).
    async fn deliver(&self, entry: ChangeEntry) -> Result<Fate, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Err(e) = self.attempt(&entry).await else {
                return Ok(Fate::Delivered);
            };
            if attempt >= self.settings.max_attempts {
                self.hook.attempted(Attempt::GaveUp, Some(&e));
                self.give_up(entry, attempt, &e)?;
                return Ok(Fate::Dead);
            }
            self.hook.attempted(Attempt::Failed, Some(&e));
            tokio::time::sleep(self.wait(attempt, &e)).await;
        }
    }

    /// The wait before retry `attempt`: the back-off's, or longer when the app asked, within
    /// the cap.
    fn wait(&self, attempt: u32, e: &SendError) -> Duration {
        let backoff = self.settings.backoff;
        let drawn = backoff.delay(attempt, &mut rand::rng());
        e.retry_after()
            .map_or(drawn, |asked| drawn.max(asked.min(backoff.cap)))
    }

    fn give_up(&self, entry: ChangeEntry, attempts: u32, e: &SendError) -> Result<(), StoreError> {
        tracing::warn!(
            webhook = %self.hook.url,
            seq = entry.seq,
            attempts,
            error = %e,
            "app webhook: change given up, kept as a dead letter"
        );
        self.store.put_app_dead_letter(&AppDeadLetter {
            webhook: self.hook.url.clone(),
            entry,
            attempts,
            last_error: e.to_string(),
            failed_at: Utc::now(),
            retry_requested: false,
        })
    }
}
