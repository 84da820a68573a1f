//! The change log's book: what a running transaction logged and which records it wrote. The
//! transaction ([`Tx`](super::tx::Tx)) carries it; the change log (`store::changes`) fills it and
//! writes it out when the transaction ends.

use serde_json::Value;

use super::refs::LocalRef;
use crate::domain::{ChangeKind, ChangeWhat, OrgId};

/// What a change concerns.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// A local record; its data is rendered from the record when the transaction ends.
    Record(LocalRef),
    /// A conflict or an outbox entry, with the data as its API view shows it.
    Shown {
        /// `conflict` or `outbox`.
        kind: ChangeKind,
        /// Its id.
        id: u64,
        /// Its view.
        data: Value,
    },
}

/// A change logged in the running transaction.
#[derive(Debug)]
pub(super) struct Logged {
    pub(super) org: OrgId,
    pub(super) what: ChangeWhat,
    pub(super) subject: Subject,
    /// A record's view just before it was removed in this transaction (it is gone by the end).
    pub(super) snapshot: Option<Value>,
}

/// What the running transaction logged and which records it wrote.
#[derive(Debug, Default)]
pub(super) struct ChangeBook {
    pub(super) logged: Vec<Logged>,
    pub(super) touched: Vec<(OrgId, LocalRef)>,
}
