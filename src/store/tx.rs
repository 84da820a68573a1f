//! The record transaction, [`Tx`]: one serializable sled transaction over every tree that must
//! move together (records, indexes, provenance, conflicts, the inbox's applied marks, the outbox
//! and metadata). The typed methods live with their trees (`records`, `outbox`, `meta`, `inbox`).

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::change_book::ChangeBook;
use super::keys::OrgKey;
use super::org_keys::OrgKeys;
use super::packed;
use super::pending::InboxMemory;
use super::sending::SendingMarks;
use super::{Store, StoreError};
use crate::domain::OrgId;

/// Errors inside a transaction closure: a store error, or the caller's own reason to abort.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The closure chose to abort; nothing was written.
    #[error("transaction aborted")]
    Abort(E),
}

impl TxError<std::convert::Infallible> {
    /// The store error of a transaction that cannot abort on its own.
    pub fn into_store(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Abort(never) => match never {},
        }
    }
}

/// The result type of [`Tx`] methods: `?` in a transaction closure propagates it.
pub type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// How a transaction closure fails: a store error (propagated with `?` from [`Tx`] methods) or the
/// caller's own reason.
#[derive(Debug)]
pub enum TxAbort<E> {
    /// From a [`Tx`] method.
    Store(ConflictableTransactionError<StoreError>),
    /// The caller's reason; returned as [`TxError::Abort`].
    User(E),
}

impl<E> From<ConflictableTransactionError<StoreError>> for TxAbort<E> {
    fn from(e: ConflictableTransactionError<StoreError>) -> Self {
        Self::Store(e)
    }
}

impl<E> From<sled::transaction::UnabortableTransactionError> for TxAbort<E> {
    fn from(e: sled::transaction::UnabortableTransactionError) -> Self {
        Self::Store(e.into())
    }
}

/// A decoding failure inside a transaction.
pub(super) fn corrupt(
    tree: &'static str,
    e: impl std::fmt::Display,
) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

/// A JSON value read outside a transaction.
pub(super) fn read_json<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(v) => Ok(Some(
            serde_json::from_slice(&packed::unpack(name, &v)?).map_err(|e| {
                StoreError::Corrupt {
                    tree: name,
                    reason: e.to_string(),
                }
            })?,
        )),
        None => Ok(None),
    }
}

/// The trees of one record transaction. Methods read and write through the transaction.
pub struct Tx<'a> {
    pub(super) records: &'a TransactionalTree,
    pub(super) index: &'a TransactionalTree,
    pub(super) provenance: &'a TransactionalTree,
    pub(super) conflicts: &'a TransactionalTree,
    /// Per pending key, the newest inbox journal record applied.
    pub(super) applied: &'a TransactionalTree,
    /// The inbox's pending queue (in memory; see `store::inbox`).
    pub(super) inbox: &'a std::sync::Mutex<InboxMemory>,
    /// The outbox tree, for `store::outbox` and `store::settle`.
    pub(super) outbox: &'a TransactionalTree,
    /// Small typed values: bookmarks, cursors, stamps (see `store::meta`).
    pub(super) meta: &'a TransactionalTree,
    /// Pending entries cleared in this run of the closure, with the journal record each covers.
    pub(super) cleared: RefCell<Vec<(Vec<u8>, u64)>>,
    /// The change log (see `store::changes`).
    pub(super) changes: &'a TransactionalTree,
    /// What this run of the closure logged and wrote, for the change log.
    pub(super) book: RefCell<ChangeBook>,
    /// The orgs' short keys.
    org_keys: &'a OrgKeys,
    /// The live sending marks of the outbox (see `store::outbox`).
    pub(super) sending: &'a SendingMarks,
    /// Outbox entries this run of the closure wrote or removed.
    pub(super) outbox_written: RefCell<BTreeSet<u64>>,
    /// An org this run needed the key of and that has none yet: the transaction gives it one
    /// outside sled's transaction and runs the closure again.
    keyless: &'a RefCell<Option<OrgId>>,
}

impl Tx<'_> {
    /// The short key of `org` in the record trees. An org without one aborts this run of the
    /// closure; the transaction gives it one and runs the closure again.
    pub(super) fn org_key(&self, org: &OrgId) -> TxResult<OrgKey> {
        match self.org_keys.get(org) {
            Some(key) => Ok(key),
            None => {
                *self.keyless.borrow_mut() = Some(org.clone());
                Err(ConflictableTransactionError::Abort(StoreError::Write(
                    "an org without a short key".into(),
                )))
            }
        }
    }

    pub(super) fn get_json<T: DeserializeOwned>(
        &self,
        tree: &TransactionalTree,
        name: &'static str,
        key: &[u8],
    ) -> TxResult<Option<T>> {
        match tree.get(key)? {
            Some(v) => Ok(Some(
                serde_json::from_slice(
                    &packed::unpack(name, &v).map_err(ConflictableTransactionError::Abort)?,
                )
                .map_err(|e| corrupt(name, e))?,
            )),
            None => Ok(None),
        }
    }

    pub(super) fn put_json<T: Serialize>(
        &self,
        tree: &TransactionalTree,
        name: &'static str,
        key: Vec<u8>,
        value: &T,
    ) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| corrupt(name, e))?;
        tree.insert(key, bytes)?;
        Ok(())
    }

    /// A JSON value of the index tree, packed (see `packed`): every record write touches it.
    pub(super) fn put_index<T: Serialize>(&self, key: Vec<u8>, value: &T) -> TxResult<()> {
        let json = serde_json::to_vec(value).map_err(|e| corrupt("index", e))?;
        self.index.insert(key, packed::pack(&json))?;
        Ok(())
    }
}

impl Store {
    /// Runs `f` in one serializable transaction over the record, index, provenance, conflict,
    /// pending, outbox, meta and change-log trees; the changes `f` logged are written at its end,
    /// in the same transaction. `f` may run more than once (optimistic concurrency), so it must
    /// do no I/O of its own. Not durable until [`Store::make_durable`] returns.
    pub fn transact<R, E>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>,
    ) -> Result<R, TxError<E>> {
        let i = &self.inner;
        let trees = (
            &i.records,
            &i.index,
            &i.provenance,
            &i.conflicts,
            &i.inbox.applied,
            &i.outbox,
            &i.meta,
            &i.changes,
        );
        let user_error: RefCell<Option<E>> = RefCell::new(None);
        let cleared: RefCell<Vec<(Vec<u8>, u64)>> = RefCell::default();
        let logged: RefCell<Option<u64>> = RefCell::default();
        let keyless: RefCell<Option<OrgId>> = RefCell::default();
        let result = loop {
            let result = trees.transaction(
                |(records, index, provenance, conflicts, applied, outbox, meta, changes)| {
                    let tx = Tx {
                        records,
                        index,
                        provenance,
                        conflicts,
                        applied,
                        inbox: &i.inbox.memory,
                        outbox,
                        meta,
                        cleared: RefCell::default(),
                        changes,
                        book: RefCell::default(),
                        org_keys: &i.org_keys,
                        keyless: &keyless,
                        sending: &i.sending,
                        outbox_written: RefCell::default(),
                    };
                    match f(&tx) {
                        Ok(r) => {
                            *logged.borrow_mut() = tx.write_changes()?;
                            *cleared.borrow_mut() = tx.cleared.take();
                            Ok(r)
                        }
                        Err(TxAbort::Store(e)) => Err(e),
                        Err(TxAbort::User(e)) => {
                            *user_error.borrow_mut() = Some(e);
                            Err(ConflictableTransactionError::Abort(StoreError::Flush(
                                "aborted by caller".into(),
                            )))
                        }
                    }
                },
            );
            // An org's first write: its key is given (and made durable) outside sled's
            // transaction, and the closure runs again; nothing of the aborted run was written.
            match (&result, keyless.take()) {
                (Err(_), Some(org)) => {
                    i.org_keys.get_or_give(&org).map_err(TxError::Store)?;
                    user_error.take();
                }
                _ => break result,
            }
        };
        match result {
            Ok(r) => {
                if let Some(seq) = logged.into_inner() {
                    i.marks.committed(seq);
                }
                let cleared = cleared.into_inner();
                if !cleared.is_empty() {
                    i.inbox.memory().forget_cleared(cleared);
                }
                Ok(r)
            }
            Err(TransactionError::Abort(e)) => match user_error.into_inner() {
                Some(u) => Err(TxError::Abort(u)),
                None => Err(TxError::Store(e)),
            },
            Err(TransactionError::Storage(e)) => Err(TxError::Store(e.into())),
        }
    }

    /// Runs `f` in one transaction ([`Store::transact`]) that has no reason of its own to abort:
    /// its reads see one state, its writes commit together.
    pub fn atomically<R>(&self, f: impl Fn(&Tx<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        self.transact(|tx| Ok::<_, TxAbort<std::convert::Infallible>>(f(tx)?))
            .map_err(TxError::into_store)
    }
}
