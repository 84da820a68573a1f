//! Reads that page: one page of an org's records of a kind, of its outbox entries, of its
//! conflicts or of a record's provenance, and single records by id.
//!
//! A page is a sled `range` scan from just after the cursor (the last id the previous page
//! examined) in key order, which is id order: ids only grow, so a walk from page to page meets
//! every record exactly once, records added meanwhile included. A page never reads the whole
//! tree: it stops at `limit` matches, or after examining [`SCAN_BUDGET`] times `limit` entries
//! when a filter matches few, and then says where to go on (`next`), so a page may hold fewer
//! items than asked while `next` is set. A Salesforce id filter is a lookup in the id index.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::keys;
use super::{OutboxEntry, OutboxState, RecordKind, Store, StoreError};
use crate::domain::{Activity, Company, CompanyProduct, Contact, OrgId, SalesforceId};

/// How many entries a page may examine per item asked for, when a filter matches few.
pub const SCAN_BUDGET: usize = 20;

/// Where a page starts and how many items it holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The last id of the previous page (`None`: from the start).
    pub after: Option<u64>,
    /// Items at most (at least 1 is read).
    pub limit: usize,
}

/// One page, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts (pass it as `after`), or `None` at the end.
    pub next: Option<u64>,
}

impl<T> Page<T> {
    /// No items, and no next page.
    pub(super) fn empty() -> Self {
        Self {
            items: Vec::new(),
            next: None,
        }
    }
}

/// A kind of local record as lists read it: its kind and the values list filters compare.
pub trait StoredRecord: DeserializeOwned {
    /// Its kind.
    const KIND: RecordKind;
    /// The last local change, where the record keeps one.
    fn updated_at(&self) -> Option<DateTime<Utc>>;
}

impl StoredRecord for Company {
    const KIND: RecordKind = RecordKind::Company;
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        Some(self.updated_at)
    }
}

impl StoredRecord for Contact {
    const KIND: RecordKind = RecordKind::Contact;
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        Some(self.updated_at)
    }
}

impl StoredRecord for CompanyProduct {
    const KIND: RecordKind = RecordKind::CompanyProduct;
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        Some(self.updated_at)
    }
}

impl StoredRecord for Activity {
    const KIND: RecordKind = RecordKind::Activity;
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// Which records of a kind a list wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only records changed after this instant (records without a change time never match).
    pub updated_after: Option<DateTime<Utc>>,
    /// Only the record linked to this Salesforce id.
    pub salesforce_id: Option<SalesforceId>,
}

impl RecordFilter {
    fn keeps<T: StoredRecord>(&self, r: &T) -> bool {
        self.updated_after
            .is_none_or(|after| r.updated_at().is_some_and(|at| at > after))
    }
}

/// A JSON value of `tree`; a record's JSON ends where what is kept beside it starts.
fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(&super::record_value::json_part(bytes)?).map_err(|e| {
        StoreError::Corrupt {
            tree,
            reason: e.to_string(),
        }
    })
}

/// The id a key ends with (every paged key ends with an 8-byte big-endian id).
fn id_of(tree: &'static str, key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            tree,
            reason: "a key shorter than its id".into(),
        })
}

/// Scans `tree` from the key of `after + 1` to the key of `u64::MAX` (`key` builds both) and
/// keeps what `keep` accepts, as the module describes.
fn scan<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: impl Fn(u64) -> Vec<u8>,
    page: PageRequest,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<(u64, T)>, StoreError> {
    let Some(first) = page.after.map_or(Some(0), |a| a.checked_add(1)) else {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    };
    let limit = page.limit.max(1);
    let budget = limit.saturating_mul(SCAN_BUDGET);
    let mut range = tree.range(key(first)..=key(u64::MAX));
    let (mut items, mut examined) = (Vec::new(), 0);
    while let Some(kv) = range.next() {
        let (k, v) = kv?;
        let id = id_of(name, &k)?;
        let item: T = decode(name, &v)?;
        examined += 1;
        if keep(&item) {
            items.push((id, item));
        }
        if items.len() == limit || examined == budget {
            let more = range.next().transpose()?.is_some();
            return Ok(Page {
                items,
                next: more.then_some(id),
            });
        }
    }
    Ok(Page { items, next: None })
}

fn without_ids<T>(page: Page<(u64, T)>) -> Page<T> {
    Page {
        items: page.items.into_iter().map(|(_, t)| t).collect(),
        next: page.next,
    }
}

/// `org(18) ‖ id(8, BE)`: a conflict's key.
impl Store {
    /// One record of an org by local id.
    pub fn record<T: StoredRecord>(&self, org: &OrgId, id: u64) -> Result<Option<T>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(None);
        };
        match self
            .inner
            .records
            .get(keys::record(org, T::KIND.code(), id))?
        {
            Some(v) => Ok(Some(decode("records", &v)?)),
            None => Ok(None),
        }
    }

    /// One page of an org's records of a kind, in id order.
    pub fn record_page<T: StoredRecord>(
        &self,
        org: &OrgId,
        page: PageRequest,
        filter: &RecordFilter,
    ) -> Result<Page<T>, StoreError> {
        if let Some(sf) = &filter.salesforce_id {
            let linked = self
                .local_by_salesforce_id(org, sf)?
                .filter(|r| r.kind == T::KIND && page.after.is_none_or(|a| r.id > a));
            let record = match linked {
                Some(r) => self.record::<T>(org, r.id)?,
                None => None,
            };
            return Ok(Page {
                items: record.into_iter().filter(|r| filter.keeps(r)).collect(),
                next: None,
            });
        }
        let Some(org) = self.known_org_key(org) else {
            return Ok(Page::empty());
        };
        let key = |id| keys::record(org, T::KIND.code(), id);
        let keep = |r: &T| filter.keeps(r);
        scan(&self.inner.records, "records", key, page, keep).map(without_ids)
    }

    /// One outbox entry of an org by id.
    pub fn outbox_entry(&self, org: &OrgId, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(None);
        };
        match self.inner.outbox.get(keys::outbox_entry(org, id))? {
            Some(v) => Ok(Some(decode("outbox", &v)?)),
            None => Ok(None),
        }
    }

    /// One page of an org's outbox entries in enqueue order, optionally only those in `state`
    /// or changed after `updated_after`.
    pub fn outbox_page(
        &self,
        org: &OrgId,
        page: PageRequest,
        state: Option<OutboxState>,
        updated_after: Option<DateTime<Utc>>,
    ) -> Result<Page<OutboxEntry>, StoreError> {
        let keep = |e: &OutboxEntry| {
            state.is_none_or(|s| s == e.state) && updated_after.is_none_or(|t| e.updated_at > t)
        };
        let Some(org) = self.known_org_key(org) else {
            return Ok(Page::empty());
        };
        let key = |id| keys::outbox_entry(org, id);
        scan(&self.inner.outbox, "outbox", key, page, keep).map(without_ids)
    }

    /// One page of an org's open conflicts as `(id, document)`, oldest first, keeping those
    /// `keep` accepts.
    pub fn conflict_page<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        page: PageRequest,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<(u64, T)>, StoreError> {
        let key = |id| keys::conflict(org, id);
        scan(&self.inner.conflicts, "conflicts", key, page, keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TxAbort;
    use std::convert::Infallible;

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107Xs").expect("org")
    }

    fn company(id: u64, name: &str, at: DateTime<Utc>) -> Company {
        Company::named(id, org(), name.into(), at)
    }

    fn store_with(companies: &[Company]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        store
            .transact(|tx| -> Result<_, TxAbort<Infallible>> {
                for c in companies {
                    tx.put_company(c)?;
                }
                Ok(())
            })
            .expect("write");
        (dir, store)
    }

    #[test]
    fn a_filter_that_matches_little_reads_bounded_pages_that_say_where_to_go_on() {
        let old = Utc::now() - chrono::Duration::days(1);
        let mut all: Vec<Company> = (1..=50).map(|i| company(i, "old", old)).collect();
        all.push(company(51, "new", Utc::now()));
        let (_dir, store) = store_with(&all);
        let filter = RecordFilter {
            updated_after: Some(old),
            salesforce_id: None,
        };

        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .record_page::<Company>(&org(), PageRequest { after, limit: 1 }, &filter)
                .expect("page");
            after = page.next;
            pages.push(page.items.iter().map(|c| c.id).collect::<Vec<_>>());
            if after.is_none() {
                break;
            }
        }

        // 50 non-matching records at 20 examined per page: two empty pages, then the match.
        assert_eq!(pages, vec![vec![], vec![], vec![51]]);
    }

    #[test]
    fn a_page_of_another_kind_or_org_is_empty() {
        let (_dir, store) = store_with(&[company(1, "only", Utc::now())]);
        let other = OrgId::parse("00D7F00000107Xt").expect("org");
        let all = PageRequest {
            after: None,
            limit: 10,
        };

        let contacts = store
            .record_page::<Contact>(&org(), all, &RecordFilter::default())
            .expect("page");
        let elsewhere = store
            .record_page::<Company>(&other, all, &RecordFilter::default())
            .expect("page");

        assert!(contacts.items.is_empty() && contacts.next.is_none());
        assert!(elsewhere.items.is_empty() && elsewhere.next.is_none());
        assert!(store.record::<Company>(&org(), 1).expect("get").is_some());
        assert!(store.record::<Contact>(&org(), 1).expect("get").is_none());
    }
}
