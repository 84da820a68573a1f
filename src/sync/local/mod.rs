//! What the application or a person asks of sfsync, as use cases that know nothing of HTTP:
//! write a company, contact, company product or activity; push a record now; retry or discard
//! a dead letter; list and resolve conflicts; start an import; read a record's history; read
//! the change log; retry or discard a change an app webhook never took.
//!
//! Every write stores the local record, its outbox entry and its provenance in one store
//! transaction, and returns only once that transaction is durable. Nothing here calls
//! Salesforce: the outbox worker sends what these use cases enqueue. Each use case takes a typed
//! command and returns a typed result or a [`LocalError`].
//!
//! The commands are what the application sends: they deserialize as they arrive and carry their
//! own schema, so the contract is written once, here, next to the rules that check it. Nothing
//! here knows of routes, extractors or status codes.

pub mod activities;
pub mod changes;
pub mod companies;
pub mod company_products;
pub mod conflicts;
pub mod contacts;
pub mod deliveries;
pub mod history;
pub mod imports;
pub mod outbox;
pub mod setup;

use chrono::{DateTime, Utc};

use crate::domain::{AppUser, OrgId, PushAs, normalize};
use crate::store::{LocalRef, Provenance, RecordKind, Store, StoreError, Tx, TxAbort, TxError};

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A value of the command is wrong; `field` names it as the caller sent it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No such record, entry, conflict or import.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request does not fit the current state (a dead letter that is no longer dead).
    #[error("{0}")]
    WrongState(&'static str),
    /// The change-log entries asked for were compacted away; `earliest` is the first kept.
    #[error(
        "the changes after that number are past the retention; the earliest kept is {earliest}"
    )]
    Gone {
        /// The first sequence number still in the log.
        earliest: u64,
    },
    /// The org has no Salesforce connection yet.
    #[error("org {0} is not connected to salesforce")]
    NotConnected(OrgId),
    /// Salesforce refused or failed a call the use case needed.
    #[error("salesforce: {0}")]
    Salesforce(#[from] crate::salesforce::SalesforceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TxError<LocalError>> for LocalError {
    fn from(e: TxError<LocalError>) -> Self {
        match e {
            TxError::Store(s) => Self::Store(s),
            TxError::Abort(e) => e,
        }
    }
}

/// A written record and the outbox entry that will push it.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved<T> {
    /// The record as stored.
    pub record: T,
    /// The outbox entry.
    pub outbox_id: u64,
}

/// A use case's result.
pub type LocalResult<T> = Result<T, LocalError>;

/// The result of a transaction step: a store error, or the use case's refusal.
type TxStep<T> = Result<T, TxAbort<LocalError>>;

/// A field error.
fn invalid(field: &'static str, message: impl Into<String>) -> LocalError {
    LocalError::Invalid {
        field,
        message: message.into(),
    }
}

/// Aborts the transaction with `e`; nothing is written.
fn refuse<T>(e: LocalError) -> TxStep<T> {
    Err(TxAbort::User(e))
}

fn non_empty(field: &'static str, v: &str) -> LocalResult<()> {
    if v.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(())
}

fn non_negative(field: &'static str, v: Option<f64>) -> LocalResult<()> {
    if v.is_some_and(|x| !x.is_finite() || x < 0.0) {
        return Err(invalid(field, "must be a number of at least 0"));
    }
    Ok(())
}

fn check_email(v: Option<&str>) -> LocalResult<()> {
    if v.is_some_and(|e| normalize::email(e).is_none()) {
        return Err(invalid("email", "is not an email address"));
    }
    Ok(())
}

/// A local change's provenance: `local`, the event, the rule, when.
fn provenance(event: &str, rule: &str, now: DateTime<Utc>) -> Provenance {
    Provenance {
        side: "local".into(),
        event: event.into(),
        rule: rule.into(),
        at: now.to_rfc3339(),
    }
}

/// Enqueues the record's push and records where the change came from (`rule`).
fn enqueue(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    push_as: Option<PushAs>,
    user: Option<&AppUser>,
    rule: &str,
    now: DateTime<Utc>,
) -> TxStep<u64> {
    tx.add_provenance(org, target, &provenance("api", rule, now))?;
    Ok(tx.enqueue_push(org, target, push_as, user, now)?)
}

/// Enqueues the push of an unlinked company that is about to be needed as an Account (for a
/// contact or an opportunity), unless it is linked or already waiting; `user` is whom the
/// record that needs it is written for.
fn enqueue_account(
    tx: &Tx<'_>,
    company: &crate::domain::Company,
    user: Option<&AppUser>,
    rule: &str,
    now: DateTime<Utc>,
) -> TxStep<()> {
    let target = local_ref(RecordKind::Company, company.id);
    if company.salesforce_id.is_none() && tx.outbox_entry_for(&company.org_id, target)?.is_none() {
        enqueue(tx, &company.org_id, target, None, user, rule, now)?;
    }
    Ok(())
}

/// Commits `f` and waits until it is durable.
async fn write<R>(store: &Store, f: impl Fn(&Tx<'_>) -> TxStep<R>) -> LocalResult<R> {
    let r = store.transact(f)?;
    store.make_durable().await?;
    Ok(r)
}

/// A reference to a local record.
pub fn local_ref(kind: RecordKind, id: u64) -> LocalRef {
    LocalRef { kind, id }
}
