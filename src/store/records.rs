//! Local records (Companies, Contacts, CompanyProducts, Activities), their match indexes, their
//! provenance and the conflict queue, written through one transaction type, [`Tx`].
//!
//! Everything that must move together goes through [`Store::transact`]: a record, its index
//! entries, its provenance, the pending inbox entry it clears and any outbox entry it creates
//! commit together or not at all. Index keys hold a JSON list of local ids, so lookups are plain
//! `get`s that work inside a sled transaction.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{Store, StoreError, keys};
use crate::domain::{
    Activity, Company, CompanyProduct, Contact, ObjectType, OrgId, SalesforceId, normalize,
};

/// Which kind of local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A Company.
    Company,
    /// A Contact (linked to a Salesforce Contact or Lead).
    Contact,
    /// A CompanyProduct (linked to an Opportunity).
    CompanyProduct,
    /// An Activity (linked to a Task or Event).
    Activity,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            Self::Company => b'c',
            Self::Contact => b'p',
            Self::CompanyProduct => b'o',
            Self::Activity => b'a',
        }
    }

    /// The kind whose [`code`](Self::code) this is.
    pub(super) fn from_code(code: u8) -> Option<Self> {
        [
            Self::Company,
            Self::Contact,
            Self::CompanyProduct,
            Self::Activity,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A reference to a local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LocalRef {
    /// Its kind.
    pub kind: RecordKind,
    /// Its local id.
    pub id: u64,
}

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

/// The result type of [`Tx`] methods: `?` in a transaction closure propagates it.
pub type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn corrupt(
    tree: &'static str,
    e: impl std::fmt::Display,
) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

const IDX_SF: u8 = b'S';
const IDX_EMAIL: u8 = b'E';
const IDX_DOMAIN: u8 = b'D';
const IDX_NAME: u8 = b'N';

pub(super) fn record_key(org: &OrgId, kind: RecordKind, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(27);
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(kind.code());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn index_key(org: &OrgId, index: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(19 + value.len());
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(index);
    k.extend_from_slice(value.as_bytes());
    k
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
    pub(super) inbox: &'a std::sync::Mutex<super::inbox::InboxMemory>,
    /// The outbox tree, for `store::outbox`.
    pub(super) outbox: &'a TransactionalTree,
    /// Small keyed values: cursors, connection state.
    pub(super) meta: &'a TransactionalTree,
    /// Pending entries cleared in this run of the closure, with the journal record each covers.
    cleared: std::cell::RefCell<Vec<(Vec<u8>, u64)>>,
}

/// One applied change's origin: which side, which event, which rule, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// `salesforce` or `local`.
    pub side: String,
    /// The event that caused it (a notification id, an import id, an API request).
    pub event: String,
    /// The rule applied (`match:salesforce_id`, `policy:salesforce_wins`, `create`, …).
    pub rule: String,
    /// When, in RFC 3339.
    pub at: String,
}

impl Tx<'_> {
    fn get_json<T: DeserializeOwned>(
        &self,
        tree: &TransactionalTree,
        name: &'static str,
        key: &[u8],
    ) -> TxResult<Option<T>> {
        match tree.get(key)? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt(name, e))?,
            )),
            None => Ok(None),
        }
    }

    fn put_json<T: Serialize>(
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

    /// A fresh local id (unique across the store, never reused).
    pub fn next_id(&self) -> TxResult<u64> {
        Ok(self.records.generate_id()? + 1)
    }

    fn index_ids(&self, key: &[u8]) -> TxResult<Vec<u64>> {
        Ok(self.get_json(self.index, "index", key)?.unwrap_or_default())
    }

    fn index_add(&self, key: Vec<u8>, id: u64) -> TxResult<()> {
        let mut ids = self.index_ids(&key)?;
        if !ids.contains(&id) {
            ids.push(id);
            ids.sort_unstable();
            self.put_json(self.index, "index", key, &ids)?;
        }
        Ok(())
    }

    fn index_remove(&self, key: Vec<u8>, id: u64) -> TxResult<()> {
        let mut ids = self.index_ids(&key)?;
        if let Some(pos) = ids.iter().position(|x| *x == id) {
            ids.remove(pos);
            if ids.is_empty() {
                self.index.remove(key)?;
            } else {
                self.put_json(self.index, "index", key, &ids)?;
            }
        }
        Ok(())
    }

    /// Moves `id` from the `old` value's index entry to the `new` one's.
    fn reindex(
        &self,
        org: &OrgId,
        index: u8,
        old: Option<String>,
        new: Option<String>,
        id: u64,
    ) -> TxResult<()> {
        if old != new {
            if let Some(o) = old {
                self.index_remove(index_key(org, index, &o), id)?;
            }
        }
        if let Some(n) = new {
            self.index_add(index_key(org, index, &n), id)?;
        }
        Ok(())
    }

    fn sf_link(
        &self,
        org: &OrgId,
        old: Option<&SalesforceId>,
        new: Option<&SalesforceId>,
        target: LocalRef,
    ) -> TxResult<()> {
        if old == new {
            return Ok(());
        }
        if let Some(old) = old {
            let key = index_key(org, IDX_SF, old.as_str());
            if self.get_json::<LocalRef>(self.index, "index", &key)? == Some(target) {
                self.index.remove(key)?;
            }
        }
        if let Some(new) = new {
            self.put_json(
                self.index,
                "index",
                index_key(org, IDX_SF, new.as_str()),
                &target,
            )?;
        }
        Ok(())
    }

    /// The local record linked to a Salesforce id, if any.
    pub fn by_salesforce_id(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<LocalRef>> {
        self.get_json(self.index, "index", &index_key(org, IDX_SF, id.as_str()))
    }

    /// Contacts whose normalized email is `email`.
    pub fn contacts_by_email(&self, org: &OrgId, email: &str) -> TxResult<Vec<u64>> {
        match normalize::email(email) {
            Some(e) => self.index_ids(&index_key(org, IDX_EMAIL, &e)),
            None => Ok(vec![]),
        }
    }

    /// Companies whose domain is `domain` (already normalized or a website).
    pub fn companies_by_domain(&self, org: &OrgId, domain: &str) -> TxResult<Vec<u64>> {
        match normalize::domain(domain) {
            Some(d) => self.index_ids(&index_key(org, IDX_DOMAIN, &d)),
            None => Ok(vec![]),
        }
    }

    /// Companies whose normalized name equals that of `name`.
    pub fn companies_by_name(&self, org: &OrgId, name: &str) -> TxResult<Vec<u64>> {
        match normalize::company_name(name) {
            Some(n) => self.index_ids(&index_key(org, IDX_NAME, &n)),
            None => Ok(vec![]),
        }
    }

    /// A company.
    pub fn company(&self, org: &OrgId, id: u64) -> TxResult<Option<Company>> {
        self.get_json(
            self.records,
            "records",
            &record_key(org, RecordKind::Company, id),
        )
    }

    /// Writes a company and keeps its indexes (Account id, domain, name) in step.
    pub fn put_company(&self, c: &Company) -> TxResult<()> {
        let org = &c.org_id;
        let old = self.company(org, c.id)?;
        let me = LocalRef {
            kind: RecordKind::Company,
            id: c.id,
        };
        self.sf_link(
            org,
            old.as_ref().and_then(|o| o.salesforce_id.as_ref()),
            c.salesforce_id.as_ref(),
            me,
        )?;
        let dom = |x: &Company| {
            x.domain
                .as_deref()
                .or(x.website.as_deref())
                .and_then(normalize::domain)
        };
        self.reindex(org, IDX_DOMAIN, old.as_ref().and_then(dom), dom(c), c.id)?;
        self.reindex(
            org,
            IDX_NAME,
            old.as_ref().and_then(|o| normalize::company_name(&o.name)),
            normalize::company_name(&c.name),
            c.id,
        )?;
        self.put_json(
            self.records,
            "records",
            record_key(org, RecordKind::Company, c.id),
            c,
        )
    }

    /// A contact.
    pub fn contact(&self, org: &OrgId, id: u64) -> TxResult<Option<Contact>> {
        self.get_json(
            self.records,
            "records",
            &record_key(org, RecordKind::Contact, id),
        )
    }

    /// Writes a contact and keeps its indexes (Contact/Lead id, email) in step.
    pub fn put_contact(&self, c: &Contact) -> TxResult<()> {
        let org = &c.org_id;
        let old = self.contact(org, c.id)?;
        let me = LocalRef {
            kind: RecordKind::Contact,
            id: c.id,
        };
        self.sf_link(
            org,
            old.as_ref().and_then(|o| o.salesforce_id.as_ref()),
            c.salesforce_id.as_ref(),
            me,
        )?;
        let email = |x: &Contact| x.email.as_deref().and_then(normalize::email);
        self.reindex(org, IDX_EMAIL, old.as_ref().and_then(email), email(c), c.id)?;
        self.put_json(
            self.records,
            "records",
            record_key(org, RecordKind::Contact, c.id),
            c,
        )
    }

    /// A company product.
    pub fn company_product(&self, org: &OrgId, id: u64) -> TxResult<Option<CompanyProduct>> {
        self.get_json(
            self.records,
            "records",
            &record_key(org, RecordKind::CompanyProduct, id),
        )
    }

    /// Writes a company product and keeps its Opportunity link in step.
    pub fn put_company_product(&self, p: &CompanyProduct) -> TxResult<()> {
        let old = self.company_product(&p.org_id, p.id)?;
        let me = LocalRef {
            kind: RecordKind::CompanyProduct,
            id: p.id,
        };
        self.sf_link(
            &p.org_id,
            old.as_ref()
                .and_then(|o| o.salesforce_opportunity_id.as_ref()),
            p.salesforce_opportunity_id.as_ref(),
            me,
        )?;
        self.put_json(
            self.records,
            "records",
            record_key(&p.org_id, RecordKind::CompanyProduct, p.id),
            p,
        )
    }

    /// An activity.
    pub fn activity(&self, org: &OrgId, id: u64) -> TxResult<Option<Activity>> {
        self.get_json(
            self.records,
            "records",
            &record_key(org, RecordKind::Activity, id),
        )
    }

    /// Writes an activity and keeps its Task/Event link in step.
    pub fn put_activity(&self, a: &Activity) -> TxResult<()> {
        let old = self.activity(&a.org_id, a.id)?;
        let me = LocalRef {
            kind: RecordKind::Activity,
            id: a.id,
        };
        self.sf_link(
            &a.org_id,
            old.as_ref().and_then(|o| o.salesforce_id.as_ref()),
            a.salesforce_id.as_ref(),
            me,
        )?;
        self.put_json(
            self.records,
            "records",
            record_key(&a.org_id, RecordKind::Activity, a.id),
            a,
        )
    }

    /// Appends a provenance entry for a record.
    pub fn add_provenance(&self, org: &OrgId, target: LocalRef, p: &Provenance) -> TxResult<()> {
        let mut key = record_key(org, target.kind, target.id);
        key.extend_from_slice(&self.provenance.generate_id()?.to_be_bytes());
        self.put_json(self.provenance, "provenance", key, p)
    }

    /// Stores a conflict document under a fresh id and returns the id.
    pub fn add_conflict<T: Serialize>(&self, org: &OrgId, conflict: &T) -> TxResult<u64> {
        let id = self.conflicts.generate_id()? + 1;
        let mut key = org.as_str().as_bytes().to_vec();
        key.extend_from_slice(&id.to_be_bytes());
        self.put_json(self.conflicts, "conflicts", key, conflict)?;
        Ok(id)
    }

    /// Removes a conflict once resolved.
    pub fn remove_conflict(&self, org: &OrgId, id: u64) -> TxResult<()> {
        let mut key = org.as_str().as_bytes().to_vec();
        key.extend_from_slice(&id.to_be_bytes());
        self.conflicts.remove(key)?;
        Ok(())
    }

    /// Clears a record's pending inbox entry (after it has been applied).
    pub fn clear_pending(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> TxResult<bool> {
        let key = keys::pending(org, object, id);
        let seq = self
            .inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .get(&key)
            .map(|slot| slot.last_seq);
        let Some(seq) = seq else {
            return Ok(false);
        };
        // Durable with the transaction: replaying the journal skips what this covers. The
        // in-memory entry goes once the transaction commits, and only if no newer journal record
        // named the record meanwhile.
        self.applied.insert(key.clone(), &seq.to_be_bytes())?;
        self.cleared.borrow_mut().push((key, seq));
        Ok(true)
    }

    /// Reads a small JSON value by name (cursors, connection state).
    pub fn meta<T: DeserializeOwned>(&self, org: &OrgId, name: &str) -> TxResult<Option<T>> {
        self.get_json(self.meta, "meta", &index_key(org, b'M', name))
    }

    /// Writes a small JSON value by name.
    pub fn set_meta<T: Serialize>(&self, org: &OrgId, name: &str, value: &T) -> TxResult<()> {
        self.put_json(self.meta, "meta", index_key(org, b'M', name), value)
    }
}

impl Store {
    /// Runs `f` in one serializable transaction over the record, index, provenance, conflict,
    /// pending, outbox and meta trees. `f` may run more than once (optimistic concurrency), so it
    /// must do no I/O of its own. Not durable until [`Store::make_durable`] returns.
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
        );
        let user_error: std::cell::RefCell<Option<E>> = std::cell::RefCell::new(None);
        let cleared: std::cell::RefCell<Vec<(Vec<u8>, u64)>> = std::cell::RefCell::default();
        let result = trees.transaction(
            |(records, index, provenance, conflicts, applied, outbox, meta)| {
                let tx = Tx {
                    records,
                    index,
                    provenance,
                    conflicts,
                    applied,
                    inbox: &i.inbox.memory,
                    outbox,
                    meta,
                    cleared: std::cell::RefCell::default(),
                };
                match f(&tx) {
                    Ok(r) => {
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
        match result {
            Ok(r) => {
                let cleared = cleared.into_inner();
                if !cleared.is_empty() {
                    let mut mem = i.inbox.memory();
                    for (key, seq) in cleared {
                        if mem
                            .pending
                            .get(&key)
                            .is_some_and(|slot| slot.last_seq == seq)
                        {
                            mem.pending.remove(&key);
                        }
                    }
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

    fn scan_kind<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        kind: RecordKind,
    ) -> Result<Vec<T>, StoreError> {
        let mut prefix = org.as_str().as_bytes().to_vec();
        prefix.push(kind.code());
        self.inner
            .records
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "records",
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Every company of an org, by id.
    pub fn companies(&self, org: &OrgId) -> Result<Vec<Company>, StoreError> {
        self.scan_kind(org, RecordKind::Company)
    }
    /// Every contact of an org, by id.
    pub fn contacts(&self, org: &OrgId) -> Result<Vec<Contact>, StoreError> {
        self.scan_kind(org, RecordKind::Contact)
    }
    /// Every company product of an org, by id.
    pub fn company_products(&self, org: &OrgId) -> Result<Vec<CompanyProduct>, StoreError> {
        self.scan_kind(org, RecordKind::CompanyProduct)
    }
    /// Every activity of an org, by id.
    pub fn activities(&self, org: &OrgId) -> Result<Vec<Activity>, StoreError> {
        self.scan_kind(org, RecordKind::Activity)
    }

    /// A record's provenance, oldest first.
    pub fn provenance(&self, org: &OrgId, target: LocalRef) -> Result<Vec<Provenance>, StoreError> {
        self.inner
            .provenance
            .scan_prefix(record_key(org, target.kind, target.id))
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "provenance",
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Every open conflict of an org as `(id, document)`.
    pub fn conflicts<T: DeserializeOwned>(&self, org: &OrgId) -> Result<Vec<(u64, T)>, StoreError> {
        self.inner
            .conflicts
            .scan_prefix(org.as_str().as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                let id = k
                    .get(18..26)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let doc = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "conflicts",
                    reason: e.to_string(),
                })?;
                Ok((id, doc))
            })
            .collect()
    }
}

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

// ---------------------------------------------------------------- pull side (inbox worker, sweep,
// conflicts API): reads of the pending entry inside a record transaction, removal of a duplicate
// contact, and plain reads outside transactions.

impl Tx<'_> {
    /// A record's pending inbox entry as it is now, read inside the transaction: the inbox worker
    /// re-checks it before clearing, so a notification that arrived during the pull is kept.
    pub fn pending_entry(
        &self,
        org: &OrgId,
        object: ObjectType,
        id: &SalesforceId,
    ) -> TxResult<Option<super::PendingEntry>> {
        Ok(self
            .inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .get(&keys::pending(org, object, id))
            .map(|slot| slot.entry.clone()))
    }

    /// Removes a contact and its index entries (a duplicate left by a lead conversion).
    pub fn delete_contact(&self, org: &OrgId, id: u64) -> TxResult<()> {
        let Some(old) = self.contact(org, id)? else {
            return Ok(());
        };
        let me = LocalRef {
            kind: RecordKind::Contact,
            id,
        };
        self.sf_link(org, old.salesforce_id.as_ref(), None, me)?;
        if let Some(e) = old.email.as_deref().and_then(normalize::email) {
            self.index_remove(index_key(org, IDX_EMAIL, &e), id)?;
        }
        self.records
            .remove(record_key(org, RecordKind::Contact, id))?;
        Ok(())
    }

    /// Removes a small value written with [`Tx::set_meta`].
    pub fn remove_meta(&self, org: &OrgId, name: &str) -> TxResult<()> {
        self.meta.remove(index_key(org, b'M', name))?;
        Ok(())
    }

    /// A conflict document.
    pub fn conflict<T: DeserializeOwned>(&self, org: &OrgId, id: u64) -> TxResult<Option<T>> {
        let mut key = org.as_str().as_bytes().to_vec();
        key.extend_from_slice(&id.to_be_bytes());
        self.get_json(self.conflicts, "conflicts", &key)
    }
}

impl Store {
    /// Reads a small JSON value by name outside a transaction (see [`Tx::meta`]).
    pub fn read_meta<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.inner.meta.get(index_key(org, b'M', name))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                StoreError::Corrupt {
                    tree: "meta",
                    reason: e.to_string(),
                }
            })?)),
            None => Ok(None),
        }
    }

    /// The local record linked to a Salesforce id, read outside a transaction.
    pub fn local_by_salesforce_id(
        &self,
        org: &OrgId,
        id: &SalesforceId,
    ) -> Result<Option<LocalRef>, StoreError> {
        match self.inner.index.get(index_key(org, IDX_SF, id.as_str()))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                StoreError::Corrupt {
                    tree: "index",
                    reason: e.to_string(),
                }
            })?)),
            None => Ok(None),
        }
    }

    /// One open conflict of an org, read outside a transaction.
    pub fn conflict<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        let mut key = org.as_str().as_bytes().to_vec();
        key.extend_from_slice(&id.to_be_bytes());
        match self.inner.conflicts.get(key)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| {
                StoreError::Corrupt {
                    tree: "conflicts",
                    reason: e.to_string(),
                }
            })?)),
            None => Ok(None),
        }
    }
}

impl Store {
    /// Object types of an org waiting for a full re-read, each with the value that
    /// [`Store::clear_resync`] compares (so a request made during the re-read stays).
    pub fn resync_tokens(&self, org: &OrgId) -> Result<Vec<(ObjectType, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.inbox.resync.scan_prefix(org.as_str().as_bytes()) {
            let (k, v) = kv?;
            if let Some(t) = k.get(18).copied().and_then(ObjectType::from_code) {
                out.push((t, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Clears a full re-read request if it still holds `token`; returns whether it did.
    pub fn clear_resync(
        &self,
        org: &OrgId,
        object: ObjectType,
        token: &[u8],
    ) -> Result<bool, StoreError> {
        let cleared = self
            .inner
            .inbox
            .resync
            .compare_and_swap(keys::resync(org, object), Some(token), None::<&[u8]>)?
            .is_ok();
        Ok(cleared)
    }
}
