//! Write back: what became of each sent entry, one store transaction per chunk. Most verdicts
//! are a typed [`OutboxChange`]; a create that found its record in the org also links the local
//! record and takes the org's values as the conflict policy says (the pull side's apply, with
//! the entry's own change not counted as pending), and one that found several holds the entry
//! behind a conflict a person resolves.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::prepare::Item;
use super::verdict::Verdict;
use super::{OutboxError, OutboxWorker, StepReport};
use crate::domain::ObjectType;
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{Link, LocalRef, OutboxChange, Provenance, Settled, Tx, TxResult};
use crate::sync::pull::{self, Origin, Target};

/// What to write back for one entry.
#[derive(Debug, Clone)]
pub(super) enum WriteBack {
    /// A typed change of the entry.
    Change(OutboxChange),
    /// The record was found in the org: link it (`link`) after applying `record` to the local
    /// record as the conflict policy says.
    Adopt { record: Record, link: Link },
    /// Several records in the org match on `rung`: open a conflict and hold the entry.
    Hold {
        rung: &'static str,
        matches: Vec<Record>,
    },
}

/// The entry a write-back is for: id, version sent, local record.
pub(super) type Sent = (u64, u64, LocalRef);

impl OutboxWorker {
    /// The write-back a verdict on a sent item makes.
    pub(super) fn settlement(
        &self,
        item: &Item,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> WriteBack {
        let provenance = |side: &str, rule: &str| Provenance {
            side: side.into(),
            event: format!("outbox:{}", item.entry_id),
            rule: rule.into(),
            at: now.to_rfc3339(),
        };
        let change = match verdict {
            Verdict::Linked { id, rule, stamp_ms } => OutboxChange::Delivered {
                link: Link {
                    id,
                    provenance: provenance("local", rule),
                    written_stamp_ms: stamp_ms,
                },
            },
            Verdict::FoundEarlier { id, stamp_ms } => OutboxChange::DeliveredEarlier {
                link: Link {
                    id,
                    provenance: provenance("local", "push:found-earlier-create"),
                    written_stamp_ms: stamp_ms,
                },
            },
            Verdict::Adopt { record, rule } => {
                let Some(id) = record.sf_id() else {
                    return WriteBack::Change(OutboxChange::Dead {
                        error: "salesforce returned a match without an id".into(),
                    });
                };
                let link = Link {
                    id,
                    provenance: provenance("local", rule),
                    written_stamp_ms: None,
                };
                return WriteBack::Adopt { record, link };
            }
            Verdict::Ambiguous { rung, matches } => return WriteBack::Hold { rung, matches },
            Verdict::Retry { message, count } => self.retry(item, message, count, now),
            Verdict::Paused { object, reason } => OutboxChange::Paused {
                object,
                reason,
                until_ms: self.later(now, self.config.limit_pause_ms),
            },
            Verdict::Dead { message } => OutboxChange::Dead { error: message },
            Verdict::Repoint { id } => OutboxChange::Relinked {
                link: Link {
                    id,
                    provenance: provenance("salesforce", "push:repoint-survivor"),
                    written_stamp_ms: None,
                },
            },
        };
        WriteBack::Change(change)
    }

    /// `ms` milliseconds after `now`, as milliseconds since the epoch.
    fn later(&self, now: DateTime<Utc>, ms: u64) -> i64 {
        now.timestamp_millis()
            .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// A retry on the back-off schedule (an attempt) or after the budget pause (not one).
    fn retry(&self, item: &Item, message: String, count: bool, now: DateTime<Utc>) -> OutboxChange {
        let delay = if count {
            let attempt = item.attempts.saturating_add(1);
            self.backoff.delay(attempt, &mut rand::rng())
        } else {
            Duration::from_millis(self.config.limit_pause_ms)
        };
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        OutboxChange::Retry {
            at_ms: self.later(now, delay_ms),
            error: message,
            counts: count,
            max_attempts: self.config.max_attempts,
        }
    }

    /// Writes what became of each entry back, in one transaction, and counts it; ends the
    /// sending mark of the call they were sent in, if any, in the same transaction.
    pub(super) fn write_back(
        &self,
        changes: &[(Sent, WriteBack)],
        mark: Option<u64>,
        now: DateTime<Utc>,
        report: &mut StepReport,
    ) -> Result<(), OutboxError> {
        let settled = self.store.atomically(|tx| {
            let settled = changes
                .iter()
                .map(|(sent, what)| self.settle_one(tx, *sent, what, now))
                .collect::<TxResult<Vec<Settled>>>()?;
            if let Some(mark) = mark {
                tx.end_sending(mark)?;
            }
            Ok(settled)
        })?;
        if let Some(mark) = mark {
            self.store.forget_sending(mark);
        }
        for ((_, what), s) in changes.iter().zip(settled) {
            report.count(what, s);
        }
        Ok(())
    }

    fn settle_one(
        &self,
        tx: &Tx<'_>,
        (id, version, target): Sent,
        what: &WriteBack,
        now: DateTime<Utc>,
    ) -> TxResult<Settled> {
        let org = &self.org;
        match what {
            WriteBack::Change(change) => tx.settle_outbox_entry(org, id, version, change, now),
            WriteBack::Adopt { record, link } => {
                let origin = Origin {
                    event: format!("outbox:{id}"),
                    now,
                };
                let object = ObjectType::Account;
                let rules = &self.rules;
                pull::apply_record(
                    tx,
                    org,
                    rules,
                    object,
                    record,
                    &origin,
                    Target::Pushed(target.id),
                )?;
                let change = OutboxChange::Delivered { link: link.clone() };
                tx.settle_outbox_entry(org, id, version, &change, now)
            }
            WriteBack::Hold { rung, matches } => {
                let object = ObjectType::Account;
                let conflict =
                    pull::hold_push(tx, org, target, object, rung, matches.clone(), now)?;
                let ids: Vec<String> = matches
                    .iter()
                    .filter_map(|r| r.sf_id().map(|i| i.to_string()))
                    .collect();
                let reason = format!(
                    "held: {} Accounts in Salesforce match by {rung} ({}); resolve conflict {conflict}",
                    ids.len(),
                    ids.join(", ")
                );
                let change = OutboxChange::Held { conflict, reason };
                tx.settle_outbox_entry(org, id, version, &change, now)
            }
        }
    }
}
