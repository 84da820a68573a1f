//! Local records (Companies, Contacts, CompanyProducts, Activities), their match indexes, their
//! provenance and the conflict queue, written through the record transaction, [`Tx`].
//!
//! Index keys hold a JSON list of local ids, so lookups are plain `get`s that work inside a sled
//! transaction; the Salesforce id index holds the one [`LocalRef`] linked to an id and what the
//! last pull of that id saw ([`Seen`]), so a linked record costs no key of its own for its stamp.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, Index};
use super::meta::Seen;
use super::outbox::abort;
use super::record_value::{json_part, with_parts_of};
use super::refs::{LocalRef, RecordKind};
use super::tx::{Tx, TxResult, corrupt as tx_corrupt, read_json};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};

use crate::domain::{
    Activity, Company, CompanyProduct, Contact, OrgId, SalesforceId, SalesforceKind, normalize,
};

/// The Salesforce id index's value: the linked record and what sfsync keeps about the id beside
/// it, so that a linked record costs no key of its own for them: what the last pull saw, the
/// inbox's applied mark (the newest inbox journal record a pull covered) and the
/// `SystemModstamp` the outbox read back after its last write. A reader of the link alone
/// decodes it as a [`LocalRef`] (unknown fields are ignored). A link written without them (a new
/// link) leaves them empty, which only ever makes a change look not yet applied or not sfsync's
/// own, so that it is pulled.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct SfLink {
    kind: RecordKind,
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) seen: Option<Seen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) applied: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) written_ms: Option<i64>,
}

/// The inbox's applied mark a Salesforce id index value holds, if any (`None` too for a value
/// that is not a link).
pub(super) fn link_applied(value: &[u8]) -> Option<u64> {
    let json = super::packed::unpack("records_index", value).ok()?;
    serde_json::from_slice::<SfLink>(&json).ok()?.applied
}

impl Tx<'_> {
    /// The link of a Salesforce id to a local record, with what is kept beside it.
    pub(super) fn link(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<SfLink>> {
        let key = keys::index(self.org_key(org)?, Index::SalesforceId, id.as_str());
        self.get_json(self.index, "index", &key)
    }

    /// Changes what is kept beside a Salesforce id's link (written only when `change` changed
    /// it); `false` when the id is linked to no local record (nothing written).
    pub(super) fn update_link(
        &self,
        org: &OrgId,
        id: &SalesforceId,
        change: impl FnOnce(&mut SfLink),
    ) -> TxResult<bool> {
        let key = keys::index(self.org_key(org)?, Index::SalesforceId, id.as_str());
        let Some(link) = self.get_json::<SfLink>(self.index, "index", &key)? else {
            return Ok(false);
        };
        let mut changed = link.clone();
        change(&mut changed);
        if changed != link {
            self.put_index(key, &changed)?;
        }
        Ok(true)
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
            self.put_index(key, &ids)?;
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
                self.put_index(key, &ids)?;
            }
        }
        Ok(())
    }

    /// Moves `id` from the `old` value's index entry to the `new` one's.
    fn reindex(
        &self,
        org: &OrgId,
        index: Index,
        old: Option<String>,
        new: Option<String>,
        id: u64,
    ) -> TxResult<()> {
        if old != new {
            if let Some(o) = old {
                self.index_remove(keys::index(self.org_key(org)?, index, &o), id)?;
            }
        }
        if let Some(n) = new {
            self.index_add(keys::index(self.org_key(org)?, index, &n), id)?;
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
            let key = keys::index(self.org_key(org)?, Index::SalesforceId, old.as_str());
            if self.get_json::<LocalRef>(self.index, "index", &key)? == Some(target) {
                self.index.remove(key)?;
            }
        }
        if let Some(new) = new {
            let key = keys::index(self.org_key(org)?, Index::SalesforceId, new.as_str());
            self.put_index(key, &target)?;
        }
        Ok(())
    }

    fn record<T: DeserializeOwned>(&self, org: &OrgId, target: LocalRef) -> TxResult<Option<T>> {
        match self.records.get(target.key(self.org_key(org)?))? {
            Some(v) => {
                let json = json_part(&v).map_err(abort)?;
                Ok(Some(decode("records", &json).map_err(abort)?))
            }
            None => Ok(None),
        }
    }

    /// Writes a record, keeping what its stored value holds beside its JSON.
    fn put_record<T: Serialize>(&self, org: &OrgId, target: LocalRef, value: &T) -> TxResult<()> {
        self.touch(org, target);
        let key = target.key(self.org_key(org)?);
        let json = serde_json::to_vec(value).map_err(|e| tx_corrupt("records", e))?;
        let old = self.records.get(&key)?;
        let value = with_parts_of(&json, old.as_deref()).map_err(abort)?;
        self.records.insert(key, value)?;
        Ok(())
    }

    /// Writes a record whose Salesforce link moves from `old` to `new`.
    fn put_linked<T: Serialize>(
        &self,
        org: &OrgId,
        me: LocalRef,
        (old, new): (Option<&SalesforceId>, Option<&SalesforceId>),
        value: &T,
    ) -> TxResult<()> {
        self.sf_link(org, old, new, me)?;
        self.put_record(org, me, value)
    }

    /// The local record linked to a Salesforce id, if any.
    pub fn by_salesforce_id(&self, org: &OrgId, id: &SalesforceId) -> TxResult<Option<LocalRef>> {
        let key = keys::index(self.org_key(org)?, Index::SalesforceId, id.as_str());
        self.get_json(self.index, "index", &key)
    }

    /// Contacts whose normalized email is `email`.
    pub fn contacts_by_email(&self, org: &OrgId, email: &str) -> TxResult<Vec<u64>> {
        match normalize::email(email) {
            Some(e) => self.index_ids(&keys::index(self.org_key(org)?, Index::Email, &e)),
            None => Ok(vec![]),
        }
    }

    /// Companies whose domain is `domain` (already normalized or a website).
    pub fn companies_by_domain(&self, org: &OrgId, domain: &str) -> TxResult<Vec<u64>> {
        match normalize::domain(domain) {
            Some(d) => self.index_ids(&keys::index(self.org_key(org)?, Index::Domain, &d)),
            None => Ok(vec![]),
        }
    }

    /// Companies whose normalized name equals that of `name`.
    pub fn companies_by_name(&self, org: &OrgId, name: &str) -> TxResult<Vec<u64>> {
        match normalize::company_name(name) {
            Some(n) => self.index_ids(&keys::index(self.org_key(org)?, Index::Name, &n)),
            None => Ok(vec![]),
        }
    }

    /// A company.
    pub fn company(&self, org: &OrgId, id: u64) -> TxResult<Option<Company>> {
        self.record(org, LocalRef::new(RecordKind::Company, id))
    }

    /// Writes a company and keeps its indexes (Account id, domain, name) in step.
    pub fn put_company(&self, c: &Company) -> TxResult<()> {
        let org = &c.org_id;
        let old = self.company(org, c.id)?;
        let dom = |x: &Company| {
            x.domain
                .as_deref()
                .or(x.website.as_deref())
                .and_then(normalize::domain)
        };
        self.reindex(org, Index::Domain, old.as_ref().and_then(dom), dom(c), c.id)?;
        self.reindex(
            org,
            Index::Name,
            old.as_ref().and_then(|o| normalize::company_name(&o.name)),
            normalize::company_name(&c.name),
            c.id,
        )?;
        let old_link = old.as_ref().and_then(|o| o.salesforce_id.as_ref());
        let me = LocalRef::new(RecordKind::Company, c.id);
        self.put_linked(org, me, (old_link, c.salesforce_id.as_ref()), c)
    }

    /// A contact.
    pub fn contact(&self, org: &OrgId, id: u64) -> TxResult<Option<Contact>> {
        self.record(org, LocalRef::new(RecordKind::Contact, id))
    }

    /// Writes a contact and keeps its indexes (Contact/Lead id, email) in step.
    pub fn put_contact(&self, c: &Contact) -> TxResult<()> {
        let org = &c.org_id;
        let old = self.contact(org, c.id)?;
        let email = |x: &Contact| x.email.as_deref().and_then(normalize::email);
        let old_email = old.as_ref().and_then(email);
        self.reindex(org, Index::Email, old_email, email(c), c.id)?;
        let old_link = old.as_ref().and_then(|o| o.salesforce_id.as_ref());
        let me = LocalRef::new(RecordKind::Contact, c.id);
        self.put_linked(org, me, (old_link, c.salesforce_id.as_ref()), c)
    }

    /// Removes a contact and its index entries (a duplicate left by a lead conversion).
    pub fn delete_contact(&self, org: &OrgId, id: u64) -> TxResult<()> {
        let Some(old) = self.contact(org, id)? else {
            return Ok(());
        };
        let me = LocalRef::new(RecordKind::Contact, id);
        self.sf_link(org, old.salesforce_id.as_ref(), None, me)?;
        if let Some(e) = old.email.as_deref().and_then(normalize::email) {
            self.index_remove(keys::index(self.org_key(org)?, Index::Email, &e), id)?;
        }
        self.keep_history(org, me)?;
        self.keep_view_before_removal(org, me)?;
        self.records.remove(me.key(self.org_key(org)?))?;
        self.touch(org, me);
        Ok(())
    }

    /// A company product.
    pub fn company_product(&self, org: &OrgId, id: u64) -> TxResult<Option<CompanyProduct>> {
        self.record(org, LocalRef::new(RecordKind::CompanyProduct, id))
    }

    /// Writes a company product and keeps its Opportunity link in step.
    pub fn put_company_product(&self, p: &CompanyProduct) -> TxResult<()> {
        let old = self.company_product(&p.org_id, p.id)?;
        let old_link = old
            .as_ref()
            .and_then(|o| o.salesforce_opportunity_id.as_ref());
        let me = LocalRef::new(RecordKind::CompanyProduct, p.id);
        let link = (old_link, p.salesforce_opportunity_id.as_ref());
        self.put_linked(&p.org_id, me, link, p)
    }

    /// An activity.
    pub fn activity(&self, org: &OrgId, id: u64) -> TxResult<Option<Activity>> {
        self.record(org, LocalRef::new(RecordKind::Activity, id))
    }

    /// Writes an activity and keeps its Task/Event link in step.
    pub fn put_activity(&self, a: &Activity) -> TxResult<()> {
        let old = self.activity(&a.org_id, a.id)?;
        let old_link = old.as_ref().and_then(|o| o.salesforce_id.as_ref());
        let me = LocalRef::new(RecordKind::Activity, a.id);
        self.put_linked(&a.org_id, me, (old_link, a.salesforce_id.as_ref()), a)
    }

    /// Links a local record to a Salesforce record, or clears its link (`None`). A contact
    /// also records whether it is linked to a Lead (key prefix `00Q`) or a Contact. `touched`,
    /// when given, becomes the record's `updated_at` (activities have none).
    pub fn set_salesforce_link(
        &self,
        org: &OrgId,
        target: LocalRef,
        link: Option<&SalesforceId>,
        touched: Option<DateTime<Utc>>,
    ) -> TxResult<()> {
        let link = link.cloned();
        match target.kind {
            RecordKind::Company => {
                if let Some(mut c) = self.company(org, target.id)? {
                    c.salesforce_id = link;
                    c.updated_at = touched.unwrap_or(c.updated_at);
                    self.put_company(&c)?;
                }
            }
            RecordKind::Contact => {
                if let Some(mut c) = self.contact(org, target.id)? {
                    c.salesforce_kind = link.as_ref().map(|l| match l.key_prefix() {
                        "00Q" => SalesforceKind::Lead,
                        _ => SalesforceKind::Contact,
                    });
                    c.salesforce_id = link;
                    c.updated_at = touched.unwrap_or(c.updated_at);
                    self.put_contact(&c)?;
                }
            }
            RecordKind::CompanyProduct => {
                if let Some(mut p) = self.company_product(org, target.id)? {
                    p.salesforce_opportunity_id = link;
                    p.updated_at = touched.unwrap_or(p.updated_at);
                    self.put_company_product(&p)?;
                }
            }
            RecordKind::Activity => {
                if let Some(mut a) = self.activity(org, target.id)? {
                    a.salesforce_id = link;
                    self.put_activity(&a)?;
                }
            }
        }
        Ok(())
    }

    /// Stores a conflict document under a fresh id and returns the id.
    pub fn add_conflict<T: Serialize>(&self, org: &OrgId, conflict: &T) -> TxResult<u64> {
        let id = self.conflicts.generate_id()? + 1;
        self.put_json(
            self.conflicts,
            "conflicts",
            keys::conflict(org, id),
            conflict,
        )?;
        Ok(id)
    }

    /// A conflict document.
    pub fn conflict<T: DeserializeOwned>(&self, org: &OrgId, id: u64) -> TxResult<Option<T>> {
        self.get_json(self.conflicts, "conflicts", &keys::conflict(org, id))
    }

    /// Removes a conflict once resolved.
    pub fn remove_conflict(&self, org: &OrgId, id: u64) -> TxResult<()> {
        self.conflicts.remove(keys::conflict(org, id))?;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(tree: &'static str, v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

impl Store {
    fn scan_kind<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        kind: RecordKind,
    ) -> Result<Vec<T>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(Vec::new());
        };
        self.inner
            .records
            .scan_prefix(keys::records_of(org, kind.code()))
            .map(|kv| decode("records", &json_part(&kv?.1)?))
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

    /// Every open conflict of an org as `(id, document)`.
    pub fn conflicts<T: DeserializeOwned>(&self, org: &OrgId) -> Result<Vec<(u64, T)>, StoreError> {
        self.inner
            .conflicts
            .scan_prefix(keys::org(org))
            .map(|kv| {
                let (k, v) = kv?;
                Ok((keys::conflict_id(&k).unwrap_or(0), decode("conflicts", &v)?))
            })
            .collect()
    }

    /// One open conflict of an org, read outside a transaction.
    pub fn conflict<T: DeserializeOwned>(
        &self,
        org: &OrgId,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        read_json(&self.inner.conflicts, "conflicts", &keys::conflict(org, id))
    }

    /// The link of a Salesforce id to a local record, with what is kept beside it, read outside
    /// a transaction.
    pub(super) fn link(
        &self,
        org: &OrgId,
        id: &SalesforceId,
    ) -> Result<Option<SfLink>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(None);
        };
        let key = keys::index(org, Index::SalesforceId, id.as_str());
        read_json(&self.inner.index, "index", &key)
    }

    /// The local record linked to a Salesforce id, read outside a transaction.
    pub fn local_by_salesforce_id(
        &self,
        org: &OrgId,
        id: &SalesforceId,
    ) -> Result<Option<LocalRef>, StoreError> {
        let Some(org) = self.known_org_key(org) else {
            return Ok(None);
        };
        let key = keys::index(org, Index::SalesforceId, id.as_str());
        read_json(&self.inner.index, "index", &key)
    }
}
