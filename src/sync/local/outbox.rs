//! A person's hand on the outbox: push a record now ("Sync to Salesforce"), and retry or
//! discard a dead letter. Each step records its provenance on the record it concerns.

use chrono::{DateTime, Utc};

use super::{LocalError, LocalResult, TxStep, enqueue, provenance, refuse, write};
use crate::domain::{ChangeKind, ChangeWhat, OrgId};
use crate::store::{
    LocalRef, OutboxEntry, OutboxEntryView, OutboxState, RecordKind, Store, Subject, Tx,
};

/// What to do with a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterAction {
    /// Send it again now, its attempts reset.
    Retry,
    /// Drop it; the record stays as it is locally.
    Discard,
}

/// An outbox entry as the change log shows it.
fn outbox_subject(e: &OutboxEntry) -> Subject {
    let data = serde_json::to_value(OutboxEntryView::from(e.clone())).unwrap_or_default();
    Subject::Shown {
        kind: ChangeKind::Outbox,
        id: e.id,
        data,
    }
}

fn exists(tx: &Tx<'_>, org: &OrgId, target: LocalRef) -> TxStep<bool> {
    Ok(match target.kind {
        RecordKind::Company => tx.company(org, target.id)?.is_some(),
        RecordKind::Contact => tx.contact(org, target.id)?.is_some(),
        RecordKind::CompanyProduct => tx.company_product(org, target.id)?.is_some(),
        RecordKind::Activity => tx.activity(org, target.id)?.is_some(),
    })
}

/// Makes an entry due now with its attempts reset (a dead letter becomes pending again).
fn due_now(e: &mut OutboxEntry, now: DateTime<Utc>) {
    e.state = OutboxState::Pending;
    e.attempts = 0;
    e.next_attempt_ms = now.timestamp_millis();
}

fn enqueue_now(tx: &Tx<'_>, org: &OrgId, target: LocalRef, now: DateTime<Utc>) -> TxStep<u64> {
    if !exists(tx, org, target)? {
        return refuse(LocalError::NotFound("record"));
    }
    let id = enqueue(tx, org, target, None, None, "api:sync", now)?;
    if let Some(mut e) = tx.outbox_entry(org, id)? {
        due_now(&mut e, now);
        tx.put_outbox_entry(&e)?;
    }
    Ok(id)
}

/// Enqueues a record's current state to go out now: past any back-off, and a dead letter gets
/// another chance. Returns the outbox entry id.
pub async fn sync_now(store: &Store, org: &OrgId, target: LocalRef) -> LocalResult<u64> {
    let now = Utc::now();
    write(store, |tx| enqueue_now(tx, org, target, now)).await
}

fn resolve(
    tx: &Tx<'_>,
    org: &OrgId,
    id: u64,
    action: DeadLetterAction,
    now: DateTime<Utc>,
) -> TxStep<OutboxEntry> {
    let Some(mut e) = tx.outbox_entry(org, id)? else {
        return refuse(LocalError::NotFound("outbox entry"));
    };
    if e.state != OutboxState::Dead {
        return refuse(LocalError::WrongState(
            "only dead entries can be retried or discarded",
        ));
    }
    let rule = match action {
        DeadLetterAction::Retry => "api:retry-dead-letter",
        DeadLetterAction::Discard => "api:discard-dead-letter",
    };
    tx.add_provenance(
        org,
        e.target,
        &provenance(&format!("outbox:{id}"), rule, now),
    )?;
    match action {
        DeadLetterAction::Retry => {
            due_now(&mut e, now);
            e.updated_at = now;
            tx.put_outbox_entry(&e)?;
        }
        DeadLetterAction::Discard => tx.remove_outbox_entry(&e)?,
    }
    tx.record_change(org, ChangeWhat::Resolved, outbox_subject(&e))?;
    Ok(e)
}

/// Retries or discards a dead letter; returns the entry as it now stands (as it stood, when
/// discarded).
pub async fn resolve_dead_letter(
    store: &Store,
    org: &OrgId,
    id: u64,
    action: DeadLetterAction,
) -> LocalResult<OutboxEntry> {
    let now = Utc::now();
    write(store, |tx| resolve(tx, org, id, action, now)).await
}
