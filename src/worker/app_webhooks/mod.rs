//! The app webhooks' delivery worker: one [`Deliverer`] per configured webhook, each in its own
//! task with its own cursor, so a slow or dead app holds back nothing but its own deliveries.
//!
//! A step reads the entries after the webhook's cursor, up to what is durable, at most a batch;
//! delivers them (each record's changes in order, records in parallel, see `deliver`); then moves
//! the cursor past them. A change is thus sent at least once: the cursor moves only once every
//! change before it was delivered or became a dead letter, and a cursor lost in a crash means a
//! change is sent again, never skipped. A step also sends again, once each, the dead letters a
//! person asked to retry. Between steps with nothing to do the worker sleeps until a change
//! commits.

mod deliver;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app_webhooks::{Hook, Hooks, Sender};
use crate::store::{ChangesRead, Store, StoreError};
use crate::worker::Outcome;

pub use deliver::DeliverySettings;
use deliver::{Courier, Fate, by_subject};

/// The longest sleep between steps when nothing commits (dead letters a person asked to retry
/// are picked up within it).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The pause after a step failed on the store.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Changes the app took.
    pub delivered: usize,
    /// Changes given up (now dead letters).
    pub dead: usize,
    /// Dead letters sent again on a person's request and taken.
    pub retried: usize,
    /// The cursor after the step.
    pub cursor: u64,
}

/// Delivers the change log to one app webhook.
pub struct Deliverer {
    store: Store,
    hook: Arc<Hook>,
    sender: Sender,
    settings: DeliverySettings,
}

impl Deliverer {
    /// A worker for `hook`, sending through `sender`.
    pub fn new(store: Store, hook: Arc<Hook>, sender: Sender, settings: DeliverySettings) -> Self {
        Self {
            store,
            hook,
            sender,
            settings,
        }
    }

    fn courier(&self) -> Courier<'_> {
        Courier {
            store: &self.store,
            hook: &self.hook,
            sender: &self.sender,
            settings: &self.settings,
        }
    }

    /// One step: the dead letters a person asked to retry, then the next batch after the cursor.
    pub async fn step(&self) -> Result<Outcome<Report>, StoreError> {
        let mut report = Report {
            retried: self.retry_requested().await?,
            ..Report::default()
        };
        let url = &self.hook.url;
        // A webhook never run before starts at the oldest change kept.
        let cursor = match self.store.delivery_cursor(url)? {
            Some(cursor) => cursor,
            None => self.store.compacted_through()?,
        };
        report.cursor = cursor;
        let head = self.store.durable_changes().await?;
        if head <= cursor {
            return Ok(match report.retried {
                0 => Outcome::Idle,
                _ => Outcome::Worked(report),
            });
        }
        let batch = self.settings.batch;
        let page = match self
            .store
            .read_changes(cursor, head, batch, &self.hook.filter)?
        {
            ChangesRead::Page(page) => page,
            ChangesRead::Gone { earliest } => return self.skip_compacted(cursor, earliest),
        };
        for fate in self.courier().deliver_all(by_subject(page.entries)).await? {
            match fate {
                Fate::Delivered => report.delivered += 1,
                Fate::Dead => report.dead += 1,
            }
        }
        self.store.set_delivery_cursor(url, page.next)?;
        report.cursor = page.next;
        Ok(Outcome::Worked(report))
    }

    /// The entries after the cursor were compacted before they could be sent: said, and skipped.
    fn skip_compacted(&self, cursor: u64, earliest: u64) -> Result<Outcome<Report>, StoreError> {
        let lost = format!(
            "changes {} to {} passed the retention before they were delivered",
            cursor + 1,
            earliest - 1
        );
        tracing::error!(webhook = %self.hook.url, "{lost}");
        self.hook.note(lost);
        self.store
            .set_delivery_cursor(&self.hook.url, earliest - 1)?;
        Ok(Outcome::Worked(Report {
            cursor: earliest - 1,
            ..Report::default()
        }))
    }

    /// Sends each dead letter a person asked to retry once: taken, it is removed; refused, it
    /// stays a dead letter with the new error. Returns how many were taken.
    async fn retry_requested(&self) -> Result<usize, StoreError> {
        let mut taken = 0;
        for mut dead in self.store.app_retries_requested(&self.hook.url)? {
            match self.courier().attempt(&dead.entry).await {
                Ok(()) => {
                    self.store
                        .remove_app_dead_letter(&self.hook.url, dead.entry.seq)?;
                    taken += 1;
                }
                Err(e) => {
                    dead.attempts += 1;
                    dead.last_error = e.to_string();
                    dead.failed_at = Utc::now();
                    dead.retry_requested = false;
                    self.store.put_app_dead_letter(&dead)?;
                }
            }
        }
        Ok(taken)
    }

    /// At shutdown, lets the step under way finish within [`DeliverySettings::finish_within`]:
    /// the app may already hold what it sent, and a step dropped before it moves the cursor
    /// sends all of it again after the restart. Past that, the step is dropped and its entries
    /// are sent again (the app tells them by their `webhook-id`).
    async fn finish(
        &self,
        step: impl std::future::Future<Output = Result<Outcome<Report>, StoreError>>,
    ) {
        let url = &self.hook.url;
        match tokio::time::timeout(self.settings.finish_within, step).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(webhook = %url, error = %e, "app webhook step failed at shutdown")
            }
            Err(_) => {
                tracing::warn!(webhook = %url, "app webhook step still under way at the end of the shutdown grace; its entries are sent again after the restart")
            }
        }
    }

    /// Steps until `token` is cancelled, sleeping while there is nothing to send.
    pub async fn run(self, token: CancellationToken) {
        let mut committed = self.store.watch_changes();
        loop {
            committed.borrow_and_update();
            let step = self.step();
            tokio::pin!(step);
            let stepped = tokio::select! {
                r = &mut step => r,
                () = token.cancelled() => {
                    self.finish(step).await;
                    break;
                }
            };
            let pause = match stepped {
                Ok(o) if o.worked() => continue,
                Ok(_) => IDLE_POLL,
                Err(e) => {
                    tracing::error!(webhook = %self.hook.url, error = %e, "app webhook step failed");
                    ERROR_PAUSE
                }
            };
            tokio::select! {
                _ = token.cancelled() => break,
                _ = committed.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Starts one delivery task per webhook on `tracker`.
pub fn spawn_all(
    tracker: &TaskTracker,
    store: &Store,
    hooks: &Hooks,
    settings: &DeliverySettings,
    timeout: Duration,
    token: &CancellationToken,
) {
    let sender = match Sender::new(timeout) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "app webhooks: no http client; nothing will be delivered");
            return;
        }
    };
    for hook in hooks.iter() {
        let worker = Deliverer::new(
            store.clone(),
            hook.clone(),
            sender.clone(),
            settings.clone(),
        );
        tracker.spawn(worker.run(token.clone()));
    }
}
