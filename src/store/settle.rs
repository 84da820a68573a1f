//! Settling sent outbox entries: what became of each send ([`OutboxChange`]) is written back to
//! its entry (done, due again, retrying, a dead letter, held, paused) and to its local record
//! (the Salesforce link, its provenance, the stamp sfsync wrote), in one transaction per step.

use chrono::{DateTime, Utc};

use super::change_book::Subject;
use super::outbox::{OutboxEntry, OutboxEntryView, OutboxState, abort, corrupt};
use super::refs::Provenance;
use super::tx::{Tx, TxResult};
use super::{Store, StoreError};
use crate::domain::{ChangeKind, ChangeWhat, OrgId, SalesforceId};

/// The Salesforce record a sent entry's local record is linked to.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The Salesforce record.
    pub id: SalesforceId,
    /// Why the link was made, kept with the local record.
    pub provenance: Provenance,
    /// The record's `SystemModstamp` (ms) read back after sfsync's write, when it was; the inbox
    /// recognises the Outbound Message for that write by it.
    pub written_stamp_ms: Option<i64>,
}

/// What became of one sent entry: the one way the outbox worker changes entries, applied by
/// [`Store::settle_outbox`].
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxChange {
    /// Salesforce has the record (created, found or updated): the local record is linked to
    /// it and the entry is done, unless its record changed while in flight (a newer version):
    /// then it is due again now, with a clean slate.
    Delivered {
        /// The record it landed as.
        link: Link,
    },
    /// An earlier attempt's create, unanswered, landed as `link`: linked, and due again now, as
    /// an update carrying the record as it is (that create carried it as it was then).
    DeliveredEarlier {
        /// The record it landed as.
        link: Link,
    },
    /// Nothing needed sending: done, like a delivery.
    Skipped,
    /// Failed for now: due again at `at_ms`. An attempt that `counts` is added to the entry's,
    /// and an entry that has used `max_attempts` becomes a dead letter instead.
    Retry {
        /// When to send again (ms since the epoch).
        at_ms: i64,
        /// Salesforce's message.
        error: String,
        /// Whether this counts as a failed attempt (waiting for the API budget does not).
        counts: bool,
        /// The attempts after which the entry is given up.
        max_attempts: u32,
    },
    /// Refused for good: a dead letter with Salesforce's message.
    Dead {
        /// Salesforce's message.
        error: String,
    },
    /// The Salesforce record merged or converted: the local record is linked to the survivor
    /// and the entry is due again now, aimed at it.
    Relinked {
        /// The survivor.
        link: Link,
    },
    /// Its create found several records in the org: held, not sent, until a person resolves
    /// `conflict`.
    Held {
        /// The open conflict.
        conflict: u64,
        /// Why, for the entry's `last_error`.
        reason: String,
    },
    /// The org's setup of `object` is broken: not sent before `until_ms`, or before a setup
    /// check passes; not an attempt.
    Paused {
        /// The object whose setup is broken.
        object: String,
        /// What the setup check found.
        reason: String,
        /// When to look again (ms since the epoch).
        until_ms: i64,
    },
}

/// What [`Store::settle_outbox`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Removed: done.
    Done,
    /// Done with what was sent, kept for the newer version of its record.
    SendAgain,
    /// Waiting for its retry.
    Retrying,
    /// Out of attempts: now a dead letter.
    GaveUp,
    /// A dead letter.
    Dead,
    /// Due again now, at the survivor.
    Relinked,
    /// Held until a person resolves a conflict.
    Held,
    /// Paused until the org's setup is fixed.
    Paused,
    /// The entry no longer exists (a person discarded it meanwhile).
    Missing,
}

impl Tx<'_> {
    /// Applies one [`OutboxChange`] to entry `id`, which was sent at `sent_version`.
    pub fn settle_outbox_entry(
        &self,
        org: &OrgId,
        id: u64,
        sent_version: u64,
        change: &OutboxChange,
        now: DateTime<Utc>,
    ) -> TxResult<Settled> {
        let Some(mut entry) = self.outbox_entry(org, id)? else {
            return Ok(Settled::Missing);
        };
        entry.updated_at = now;
        if !matches!(change, OutboxChange::Paused { .. }) {
            entry.paused_on = None;
        }
        match change {
            OutboxChange::Delivered { link } => {
                self.link_entry(&entry, link)?;
                self.record_change(org, ChangeWhat::Pushed, Subject::Record(entry.target))?;
                self.finish(entry, sent_version, now)
            }
            OutboxChange::DeliveredEarlier { link } => {
                self.link_entry(&entry, link)?;
                self.record_change(org, ChangeWhat::Pushed, Subject::Record(entry.target))?;
                self.send_again(entry, now)
            }
            OutboxChange::Skipped => self.finish(entry, sent_version, now),
            OutboxChange::Retry {
                at_ms,
                error,
                counts,
                max_attempts,
            } => {
                if *counts {
                    entry.attempts = entry.attempts.saturating_add(1);
                }
                let settled = if entry.attempts >= *max_attempts {
                    entry.state = OutboxState::Dead;
                    let n = entry.attempts;
                    entry.last_error = Some(format!("gave up after {n} attempts: {error}"));
                    self.record_dead_letter(&entry)?;
                    Settled::GaveUp
                } else {
                    entry.next_attempt_ms = *at_ms;
                    entry.last_error = Some(error.clone());
                    Settled::Retrying
                };
                self.put_outbox_entry(&entry)?;
                Ok(settled)
            }
            OutboxChange::Dead { error } => {
                entry.state = OutboxState::Dead;
                entry.last_error = Some(error.clone());
                self.record_dead_letter(&entry)?;
                self.put_outbox_entry(&entry)?;
                Ok(Settled::Dead)
            }
            OutboxChange::Relinked { link } => {
                self.link_entry(&entry, link)?;
                self.record_change(org, ChangeWhat::Updated, Subject::Record(entry.target))?;
                entry.next_attempt_ms = now.timestamp_millis();
                self.put_outbox_entry(&entry)?;
                Ok(Settled::Relinked)
            }
            OutboxChange::Held { conflict, reason } => {
                entry.held_by_conflict = Some(*conflict);
                entry.next_attempt_ms = i64::MAX;
                entry.last_error = Some(reason.clone());
                self.put_outbox_entry(&entry)?;
                Ok(Settled::Held)
            }
            OutboxChange::Paused {
                object,
                reason,
                until_ms,
            } => {
                entry.paused_on = Some(object.clone());
                entry.next_attempt_ms = *until_ms;
                entry.last_error = Some(reason.clone());
                self.put_outbox_entry(&entry)?;
                Ok(Settled::Paused)
            }
        }
    }

    /// Logs that `entry` became a dead letter, with its view.
    fn record_dead_letter(&self, entry: &OutboxEntry) -> TxResult<()> {
        let data = serde_json::to_value(OutboxEntryView::from(entry.clone()))
            .map_err(|e| abort(corrupt(e)))?;
        let (kind, id) = (ChangeKind::Outbox, entry.id);
        let subject = Subject::Shown { kind, id, data };
        self.record_change(&entry.org_id, ChangeWhat::DeadLetter, subject)
    }

    fn link_entry(&self, entry: &OutboxEntry, link: &Link) -> TxResult<()> {
        let org = &entry.org_id;
        self.set_salesforce_link(org, entry.target, Some(&link.id), None)?;
        self.add_provenance(org, entry.target, &link.provenance)?;
        if let Some(ms) = link.written_stamp_ms {
            self.set_written_stamp(org, &link.id, ms)?;
        }
        Ok(())
    }

    /// A sent entry is done: removed, or due again now when its record changed in flight.
    fn finish(
        &self,
        entry: OutboxEntry,
        sent_version: u64,
        now: DateTime<Utc>,
    ) -> TxResult<Settled> {
        if entry.version == sent_version {
            self.remove_outbox_entry(&entry)?;
            return Ok(Settled::Done);
        }
        self.send_again(entry, now)
    }

    /// Due again now, as a fresh send: no attempts counted, nothing maybe sent.
    fn send_again(&self, mut entry: OutboxEntry, now: DateTime<Utc>) -> TxResult<Settled> {
        entry.maybe_sent = false;
        entry.attempts = 0;
        entry.last_error = None;
        entry.next_attempt_ms = now.timestamp_millis();
        self.put_outbox_entry(&entry)?;
        Ok(Settled::SendAgain)
    }
}

impl Store {
    /// Applies what became of sent entries, `(entry id, version sent, change)` each, in one
    /// transaction.
    pub fn settle_outbox(
        &self,
        org: &OrgId,
        changes: &[(u64, u64, OutboxChange)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Settled>, StoreError> {
        self.atomically(|tx| {
            changes
                .iter()
                .map(|(id, version, change)| {
                    tx.settle_outbox_entry(org, *id, *version, change, now)
                })
                .collect()
        })
    }
}
