//! Pull: apply one Salesforce record locally (product.md 2).
//!
//! Everything here runs inside one [`Store::transact`](crate::store::Store::transact) closure
//! and does no I/O of its own: it reads and writes through the [`Tx`] it is given, so a record,
//! its indexes, its provenance, its `SystemModstamp` bookmark and the pending entry it clears
//! commit together. The inbox worker, the import and the conflicts API all apply through
//! [`apply_record`] and [`apply_gone`].
//!
//! The match ladder, per object:
//! - Account → Company: Salesforce id; then the domain of `Website`; then the normalized name.
//! - Contact / Lead → Contact: Salesforce id; then the normalized email, among contacts of the
//!   same Company (or of none).
//! - Opportunity → CompanyProduct: Salesforce id; else a new one on the Company of its Account.
//!
//! Rungs after the first only consider local records not yet linked to Salesforce (a linked
//! record is some other Salesforce record's copy). Two or more candidates at one rung: no guess;
//! the record is quarantined as a [`Conflict`] until a person resolves it.
//!
//! Conflict policy ([`ConflictPolicy`]): `salesforce_wins` overwrites the synced fields on every
//! pull; `ours_wins` links the Salesforce id and only fills fields that are empty locally. A
//! local record with a live outbox entry (a change Salesforce has not seen yet) is treated as
//! `ours_wins` whatever the policy, so an unsent local change is never overwritten.
//!
//! Links: a Contact's Company comes from `AccountId` (a Contact without one keeps its local
//! Company); a Lead's from a unique Company with its website's or email's domain, or its
//! `Company` name. Accounts a record points at that are not local yet are pulled first by the
//! inbox worker.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SyncConfig;
use crate::domain::{
    ChangeType, Company, CompanyProduct, ConflictPolicy, Contact, ObjectType, OrgId, SalesforceId,
    SalesforceKind, StageTable, normalize,
};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{
    LocalRef, PendingEntry, Provenance, RecordKind, Store, StoreError, Tx, TxResult,
};
pub use crate::store::{SAME_SECOND_MARGIN_MS, Seen};

/// Fields read for each pulled object.
pub fn fields_for(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Account => &[
            "Id",
            "Name",
            "Website",
            "Industry",
            "AnnualRevenue",
            "NumberOfEmployees",
            "SystemModstamp",
        ],
        ObjectType::Contact => &[
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Phone",
            "AccountId",
            "SystemModstamp",
        ],
        ObjectType::Lead => &[
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Phone",
            "Company",
            "Website",
            "IsConverted",
            "ConvertedAccountId",
            "ConvertedContactId",
            "SystemModstamp",
        ],
        ObjectType::Opportunity => &[
            "Id",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "AccountId",
            "IsClosed",
            "IsWon",
            "SystemModstamp",
        ],
    }
}

/// Whether the object has `MasterRecordId` (merges exist for it).
pub fn can_merge(object: ObjectType) -> bool {
    !matches!(object, ObjectType::Opportunity)
}

/// The documented pull rules, from `[sync]`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Contacts and Leads.
    pub conflict_contact: ConflictPolicy,
    /// Companies.
    pub conflict_company: ConflictPolicy,
    /// `StageName` → status and internal stage.
    pub stages: StageTable,
}

impl Rules {
    /// The rules of a `[sync]` section.
    pub fn from_config(sync: &SyncConfig) -> Self {
        Self {
            conflict_contact: sync.conflict_contact,
            conflict_company: sync.conflict_company,
            stages: StageTable::with_overrides(&sync.stages),
        }
    }
}

/// Parses a Salesforce datetime (`2013-05-20T20:49:32.000+0000` or RFC 3339).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A record's `SystemModstamp` in milliseconds.
pub fn stamp_ms(record: &Record) -> Option<i64> {
    record
        .str_field("SystemModstamp")
        .and_then(parse_datetime)
        .map(|d| d.timestamp_millis())
}

/// Where an applied change came from, for provenance.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The event: `notification`, `sweep`, `import:{id}`, `conflict:{id}`.
    pub event: String,
    /// When it is applied.
    pub now: DateTime<Utc>,
}

impl Origin {
    /// An origin stamped now.
    pub fn new(event: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            now: Utc::now(),
        }
    }

    fn provenance(&self, rule: impl Into<String>) -> Provenance {
        Provenance {
            side: "salesforce".into(),
            event: self.event.clone(),
            rule: rule.into(),
            at: self.now.to_rfc3339(),
        }
    }
}

/// How the local target is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// By the match ladder.
    Ladder,
    /// This local record (a person resolved a conflict by picking it).
    Local(u64),
    /// A new local record (a person resolved a conflict by creating one).
    New,
}

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Applied {
    /// A local record was created.
    Created {
        /// It.
        target: LocalRef,
    },
    /// A local record was matched (by `rule`) and updated or linked.
    Updated {
        /// It.
        target: LocalRef,
        /// The rung and policy used.
        rule: String,
    },
    /// The local record already held these values.
    Unchanged {
        /// It.
        target: LocalRef,
    },
    /// Ambiguous or unplaceable: listed as a conflict.
    Quarantined {
        /// The conflict id.
        conflict: u64,
    },
    /// Deleted in Salesforce: the local record keeps its data, loses its link.
    Unlinked {
        /// It.
        target: LocalRef,
    },
    /// Merged or converted in Salesforce: local links now point at the survivor.
    Relinked {
        /// The local record now linked to the survivor.
        target: LocalRef,
        /// The survivor.
        survivor: SalesforceId,
    },
    /// Nothing local to do (e.g. a deleted record never synced).
    Ignored {
        /// Why.
        reason: String,
    },
}

/// A quarantined record: the Salesforce record and the local candidates a person picks from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The object type.
    pub object: ObjectType,
    /// The Salesforce record id.
    pub salesforce_id: SalesforceId,
    /// The rung that found several candidates (`domain`, `name`, `email`), or `no_company`.
    pub rung: String,
    /// Local ids of the candidates (Companies for Accounts, Contacts for Contacts and Leads).
    pub candidates: Vec<u64>,
    /// The record as pulled.
    pub record: Record,
    /// When it was quarantined (RFC 3339).
    pub at: String,
}

fn str_of(record: &Record, field: &str) -> Option<String> {
    record
        .str_field(field)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn f64_of(record: &Record, field: &str) -> Option<f64> {
    record.get(field).and_then(Value::as_f64)
}

fn i64_of(record: &Record, field: &str) -> Option<i64> {
    record
        .get(field)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64)))
}

fn id_of(record: &Record, field: &str) -> Option<SalesforceId> {
    record
        .str_field(field)
        .and_then(|s| SalesforceId::parse(s).ok())
}

/// Whether a local record has a change Salesforce has not seen yet (a live outbox entry). Its
/// fields are then kept as `ours_wins` would: the outbox is about to send them, and Salesforce's
/// older values must not overwrite the change before it is sent.
fn local_change_pending(tx: &Tx<'_>, org: &OrgId, kind: RecordKind, id: u64) -> TxResult<bool> {
    Ok(tx.outbox_entry_for(org, LocalRef { kind, id })?.is_some())
}

/// After a pulled record was written: its provenance (`create` for a new record, else `rule`)
/// and what the apply did.
fn record_applied(
    tx: &Tx<'_>,
    org: &OrgId,
    target: LocalRef,
    created: bool,
    rule: String,
    origin: &Origin,
) -> TxResult<Applied> {
    let rule = if created { "create".to_string() } else { rule };
    tx.add_provenance(org, target, &origin.provenance(rule.clone()))?;
    Ok(if created {
        Applied::Created { target }
    } else {
        Applied::Updated { target, rule }
    })
}

fn rule_text(rule: &str, policy: ConflictPolicy, pending: bool) -> String {
    if pending {
        format!("{rule};policy:local_change_pending")
    } else {
        format!("{rule};{}", policy_rule(policy))
    }
}

fn policy_rule(policy: ConflictPolicy) -> &'static str {
    match policy {
        ConflictPolicy::SalesforceWins => "policy:salesforce_wins",
        ConflictPolicy::OursWins => "policy:ours_wins",
    }
}

/// Sets `slot` to `value` when Salesforce wins, or fills it when it is empty.
fn take<T>(slot: &mut Option<T>, value: Option<T>, policy: ConflictPolicy) {
    match policy {
        ConflictPolicy::SalesforceWins => *slot = value,
        ConflictPolicy::OursWins => {
            if slot.is_none() {
                *slot = value;
            }
        }
    }
}

/// Applies a pulled record of `object` (Account, Contact, Lead or Opportunity), records its
/// [`Seen`] bookmark and its provenance. `pulled_ms` is when it was read.
pub fn apply_record(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    record: &Record,
    origin: &Origin,
    target: Target,
) -> TxResult<Applied> {
    let Some(id) = record.sf_id() else {
        return Ok(Applied::Ignored {
            reason: "record without an Id".into(),
        });
    };
    let applied = match object {
        ObjectType::Account => apply_account(tx, org, rules, &id, record, origin, target)?,
        ObjectType::Contact | ObjectType::Lead => {
            apply_person(tx, org, rules, object, &id, record, origin, target)?
        }
        ObjectType::Opportunity => apply_opportunity(tx, org, rules, &id, record, origin)?,
    };
    if let Some(stamp) = stamp_ms(record) {
        let seen = Seen {
            stamp_ms: stamp,
            pulled_ms: origin.now.timestamp_millis(),
        };
        tx.set_seen(org, &id, &seen)?;
    }
    if !matches!(applied, Applied::Quarantined { .. }) {
        if let Some(conflict) = tx.conflict_for(org, &id)? {
            tx.remove_conflict(org, conflict)?;
            tx.clear_conflict_for(org, &id)?;
        }
    }
    Ok(applied)
}

#[allow(clippy::too_many_arguments)]
fn quarantine(
    tx: &Tx<'_>,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    rung: &str,
    candidates: Vec<u64>,
    record: &Record,
    origin: &Origin,
) -> TxResult<Applied> {
    if let Some(old) = tx.conflict_for(org, id)? {
        tx.remove_conflict(org, old)?;
    }
    let conflict = Conflict {
        object,
        salesforce_id: id.clone(),
        rung: rung.into(),
        candidates,
        record: record.clone(),
        at: origin.now.to_rfc3339(),
    };
    let cid = tx.add_conflict(org, &conflict)?;
    tx.set_conflict_for(org, id, cid)?;
    tracing::info!(org = %org, id = %id, rung, conflict = cid, "record quarantined");
    Ok(Applied::Quarantined { conflict: cid })
}

/// Unlinked local ids among `ids`, read through `get`.
fn unlinked<T>(
    ids: Vec<u64>,
    get: impl Fn(u64) -> TxResult<Option<T>>,
    linked: impl Fn(&T) -> bool,
) -> TxResult<Vec<u64>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(r) = get(id)? {
            if !linked(&r) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

enum Rung {
    Found(u64, &'static str),
    Ambiguous(&'static str, Vec<u64>),
    Missing,
}

fn company_ladder(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    website: Option<&str>,
    name: Option<&str>,
) -> TxResult<Rung> {
    if let Some(local) = tx.by_salesforce_id(org, id)? {
        if local.kind == RecordKind::Company {
            return Ok(Rung::Found(local.id, "match:salesforce_id"));
        }
    }
    let get = |i| tx.company(org, i);
    let linked = |c: &Company| c.salesforce_id.is_some();
    if let Some(w) = website {
        let c = unlinked(tx.companies_by_domain(org, w)?, get, linked)?;
        match c.len() {
            0 => {}
            1 => return Ok(Rung::Found(c[0], "match:domain")),
            _ => return Ok(Rung::Ambiguous("domain", c)),
        }
    }
    if let Some(n) = name {
        let c = unlinked(tx.companies_by_name(org, n)?, get, linked)?;
        match c.len() {
            0 => {}
            1 => return Ok(Rung::Found(c[0], "match:name")),
            _ => return Ok(Rung::Ambiguous("name", c)),
        }
    }
    Ok(Rung::Missing)
}

#[allow(clippy::too_many_arguments)]
fn apply_account(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    id: &SalesforceId,
    record: &Record,
    origin: &Origin,
    target: Target,
) -> TxResult<Applied> {
    let name = str_of(record, "Name");
    let website = str_of(record, "Website");
    let rung = match target {
        Target::Local(local) => Rung::Found(local, "resolve:picked"),
        Target::New => Rung::Missing,
        Target::Ladder => company_ladder(tx, org, id, website.as_deref(), name.as_deref())?,
    };
    let policy = rules.conflict_company;
    let (mut company, rule) = match rung {
        Rung::Ambiguous(rung, candidates) => {
            return quarantine(
                tx,
                org,
                ObjectType::Account,
                id,
                rung,
                candidates,
                record,
                origin,
            );
        }
        Rung::Found(local, rule) => match tx.company(org, local)? {
            Some(c) => (c, rule),
            None => {
                return Ok(Applied::Ignored {
                    reason: format!("company {local} does not exist"),
                });
            }
        },
        Rung::Missing => {
            let c = Company {
                id: tx.next_id()?,
                org_id: org.clone(),
                name: name.clone().unwrap_or_default(),
                domain: None,
                website: None,
                industry: None,
                annual_revenue: None,
                employees: None,
                salesforce_id: None,
                updated_at: origin.now,
            };
            (c, "create")
        }
    };
    let created = rule == "create";
    let before = company.clone();
    let pending = !created && local_change_pending(tx, org, RecordKind::Company, company.id)?;
    let policy = if created {
        ConflictPolicy::SalesforceWins
    } else if pending {
        ConflictPolicy::OursWins
    } else {
        policy
    };
    match policy {
        ConflictPolicy::SalesforceWins => company.name = name.unwrap_or(company.name),
        ConflictPolicy::OursWins if company.name.is_empty() => {
            company.name = name.unwrap_or_default();
        }
        ConflictPolicy::OursWins => {}
    }
    take(&mut company.website, website, policy);
    company.domain = company.website.as_deref().and_then(normalize::domain);
    take(&mut company.industry, str_of(record, "Industry"), policy);
    take(
        &mut company.annual_revenue,
        f64_of(record, "AnnualRevenue"),
        policy,
    );
    take(
        &mut company.employees,
        i64_of(record, "NumberOfEmployees"),
        policy,
    );
    company.salesforce_id = Some(id.clone());
    let target = LocalRef {
        kind: RecordKind::Company,
        id: company.id,
    };
    if !created && company == before {
        return Ok(Applied::Unchanged { target });
    }
    company.updated_at = origin.now;
    tx.put_company(&company)?;
    record_applied(
        tx,
        org,
        target,
        created,
        rule_text(rule, policy, pending),
        origin,
    )
}

/// The local Company of a Contact or Lead: by `AccountId` (Contacts), else a unique Company
/// with the domain of the Lead's `Website` or of the email, else (Leads) a unique Company with
/// the Lead's normalized `Company` name.
fn person_company(
    tx: &Tx<'_>,
    org: &OrgId,
    object: ObjectType,
    record: &Record,
) -> TxResult<Option<u64>> {
    if let Some(account) = id_of(record, "AccountId") {
        if let Some(local) = tx.by_salesforce_id(org, &account)? {
            if local.kind == RecordKind::Company {
                return Ok(Some(local.id));
            }
        }
        return Ok(None);
    }
    let mut domains = Vec::new();
    if object == ObjectType::Lead {
        domains.extend(str_of(record, "Website"));
    }
    domains.extend(record.str_field("Email").and_then(normalize::email_domain));
    for d in domains {
        let c = tx.companies_by_domain(org, &d)?;
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
    }
    if object == ObjectType::Lead {
        if let Some(name) = str_of(record, "Company") {
            let c = tx.companies_by_name(org, &name)?;
            if c.len() == 1 {
                return Ok(Some(c[0]));
            }
        }
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn apply_person(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    id: &SalesforceId,
    record: &Record,
    origin: &Origin,
    target: Target,
) -> TxResult<Applied> {
    if object == ObjectType::Lead && record.bool_field("IsConverted") == Some(true) {
        return apply_conversion(tx, org, rules, id, record, origin);
    }
    let kind = if object == ObjectType::Lead {
        SalesforceKind::Lead
    } else {
        SalesforceKind::Contact
    };
    let company = person_company(tx, org, object, record)?;
    let email = str_of(record, "Email");
    let rung = match target {
        Target::Local(local) => Rung::Found(local, "resolve:picked"),
        Target::New => Rung::Missing,
        Target::Ladder => person_ladder(tx, org, id, email.as_deref(), company)?,
    };
    let (contact, rule) = match rung {
        Rung::Ambiguous(rung, candidates) => {
            return quarantine(tx, org, object, id, rung, candidates, record, origin);
        }
        Rung::Found(local, rule) => match tx.contact(org, local)? {
            Some(c) => (c, rule),
            None => {
                return Ok(Applied::Ignored {
                    reason: format!("contact {local} does not exist"),
                });
            }
        },
        Rung::Missing => {
            let c = Contact {
                id: tx.next_id()?,
                org_id: org.clone(),
                company_id: None,
                first_name: None,
                last_name: String::new(),
                email: None,
                title: None,
                phone: None,
                salesforce_id: None,
                salesforce_kind: None,
                updated_at: origin.now,
            };
            (c, "create")
        }
    };
    write_person(
        tx,
        org,
        rules.conflict_contact,
        contact,
        rule,
        id,
        kind,
        record,
        company,
        origin,
    )
}

fn person_ladder(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    email: Option<&str>,
    company: Option<u64>,
) -> TxResult<Rung> {
    if let Some(local) = tx.by_salesforce_id(org, id)? {
        if local.kind == RecordKind::Contact {
            return Ok(Rung::Found(local.id, "match:salesforce_id"));
        }
    }
    let Some(email) = email else {
        return Ok(Rung::Missing);
    };
    let mut candidates = Vec::new();
    for local in tx.contacts_by_email(org, email)? {
        if let Some(c) = tx.contact(org, local)? {
            let same_company = match (company, c.company_id) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            };
            if c.salesforce_id.is_none() && same_company {
                candidates.push(local);
            }
        }
    }
    Ok(match candidates.len() {
        0 => Rung::Missing,
        1 => Rung::Found(candidates[0], "match:email_company"),
        _ => Rung::Ambiguous("email", candidates),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_person(
    tx: &Tx<'_>,
    org: &OrgId,
    policy: ConflictPolicy,
    mut contact: Contact,
    rule: &str,
    id: &SalesforceId,
    kind: SalesforceKind,
    record: &Record,
    company: Option<u64>,
    origin: &Origin,
) -> TxResult<Applied> {
    let created = rule == "create";
    let pending = !created && local_change_pending(tx, org, RecordKind::Contact, contact.id)?;
    let policy = if created {
        ConflictPolicy::SalesforceWins
    } else if pending {
        ConflictPolicy::OursWins
    } else {
        policy
    };
    let before = contact.clone();
    take(&mut contact.first_name, str_of(record, "FirstName"), policy);
    let last = str_of(record, "LastName");
    match policy {
        ConflictPolicy::SalesforceWins => contact.last_name = last.unwrap_or_default(),
        ConflictPolicy::OursWins if contact.last_name.is_empty() => {
            contact.last_name = last.unwrap_or_default();
        }
        ConflictPolicy::OursWins => {}
    }
    take(&mut contact.email, str_of(record, "Email"), policy);
    take(&mut contact.title, str_of(record, "Title"), policy);
    take(&mut contact.phone, str_of(record, "Phone"), policy);
    if company.is_some() {
        take(&mut contact.company_id, company, policy);
    }
    contact.salesforce_id = Some(id.clone());
    contact.salesforce_kind = Some(kind);
    let target = LocalRef {
        kind: RecordKind::Contact,
        id: contact.id,
    };
    if !created && contact == before {
        return Ok(Applied::Unchanged { target });
    }
    contact.updated_at = origin.now;
    tx.put_contact(&contact)?;
    record_applied(
        tx,
        org,
        target,
        created,
        rule_text(rule, policy, pending),
        origin,
    )
}

/// A converted Lead: the local contact linked to the Lead is re-linked to the Contact it became
/// (`ConvertedContactId`) and to the Company of `ConvertedAccountId`. When that Contact was
/// already pulled as a separate local contact, the two are folded into the Lead's (older) one.
fn apply_conversion(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    lead: &SalesforceId,
    record: &Record,
    origin: &Origin,
) -> TxResult<Applied> {
    let Some(contact_id) = id_of(record, "ConvertedContactId") else {
        return Ok(Applied::Ignored {
            reason: "converted lead without a ConvertedContactId".into(),
        });
    };
    let company = match id_of(record, "ConvertedAccountId") {
        Some(a) => tx
            .by_salesforce_id(org, &a)?
            .filter(|l| l.kind == RecordKind::Company)
            .map(|l| l.id),
        None => None,
    };
    let from_lead = tx
        .by_salesforce_id(org, lead)?
        .filter(|l| l.kind == RecordKind::Contact);
    let from_contact = tx
        .by_salesforce_id(org, &contact_id)?
        .filter(|l| l.kind == RecordKind::Contact);
    let Some(mine) = from_lead else {
        return Ok(match from_contact {
            Some(target) => Applied::Unchanged { target },
            None => Applied::Ignored {
                reason: "converted lead was never synced".into(),
            },
        });
    };
    let Some(mut contact) = tx.contact(org, mine.id)? else {
        return Ok(Applied::Ignored {
            reason: "local contact vanished".into(),
        });
    };
    let mut rule = "convert:relink".to_string();
    if let Some(dup) = from_contact.filter(|d| d.id != mine.id) {
        if let Some(other) = tx.contact(org, dup.id)? {
            // The Contact's own pull created a second local contact: keep ours, take its
            // Salesforce values as the contact policy says, drop the duplicate.
            let policy = rules.conflict_contact;
            take(&mut contact.first_name, other.first_name, policy);
            if policy == ConflictPolicy::SalesforceWins || contact.last_name.is_empty() {
                contact.last_name = other.last_name;
            }
            take(&mut contact.email, other.email, policy);
            take(&mut contact.title, other.title, policy);
            take(&mut contact.phone, other.phone, policy);
            if other.company_id.is_some() {
                take(&mut contact.company_id, other.company_id, policy);
            }
            tx.delete_contact(org, dup.id)?;
            rule = format!("convert:merged_duplicate_{}", dup.id);
        }
    }
    if company.is_some() {
        contact.company_id = company;
    }
    contact.salesforce_id = Some(contact_id.clone());
    contact.salesforce_kind = Some(SalesforceKind::Contact);
    contact.updated_at = origin.now;
    tx.put_contact(&contact)?;
    tx.add_provenance(
        org,
        mine,
        &origin.provenance(format!("{rule}:lead_{lead}_to_contact_{contact_id}")),
    )?;
    Ok(Applied::Relinked {
        target: mine,
        survivor: contact_id,
    })
}

fn apply_opportunity(
    tx: &Tx<'_>,
    org: &OrgId,
    rules: &Rules,
    id: &SalesforceId,
    record: &Record,
    origin: &Origin,
) -> TxResult<Applied> {
    let company = match id_of(record, "AccountId") {
        Some(a) => tx
            .by_salesforce_id(org, &a)?
            .filter(|l| l.kind == RecordKind::Company)
            .map(|l| l.id),
        None => None,
    };
    let existing = match tx.by_salesforce_id(org, id)? {
        Some(l) if l.kind == RecordKind::CompanyProduct => tx.company_product(org, l.id)?,
        _ => None,
    };
    let (mut product, created) = match (existing, company) {
        (Some(p), _) => (p, false),
        (None, Some(company_id)) => (
            CompanyProduct {
                id: tx.next_id()?,
                org_id: org.clone(),
                company_id,
                product: String::new(),
                status: crate::domain::OwnershipStatus::Opportunity,
                opportunity_size: None,
                stage: None,
                close_date: None,
                salesforce_opportunity_id: None,
                updated_at: origin.now,
            },
            true,
        ),
        (None, None) => {
            return quarantine(
                tx,
                org,
                ObjectType::Opportunity,
                id,
                "no_company",
                Vec::new(),
                record,
                origin,
            );
        }
    };
    let before = product.clone();
    if !created && local_change_pending(tx, org, RecordKind::CompanyProduct, product.id)? {
        // The local change goes out first; only the link is kept in step.
        product.salesforce_opportunity_id = Some(id.clone());
        let target = LocalRef {
            kind: RecordKind::CompanyProduct,
            id: product.id,
        };
        if product == before {
            return Ok(Applied::Unchanged { target });
        }
        tx.put_company_product(&product)?;
        let rule = "match:salesforce_id;policy:local_change_pending";
        tx.add_provenance(org, target, &origin.provenance(rule))?;
        return Ok(Applied::Updated {
            target,
            rule: rule.into(),
        });
    }
    let (status, stage) = rules.stages.map(
        record.str_field("StageName").unwrap_or_default(),
        record.bool_field("IsClosed"),
        record.bool_field("IsWon"),
    );
    product.status = status;
    product.stage = Some(stage);
    product.product = str_of(record, "Name").unwrap_or_default();
    product.opportunity_size = f64_of(record, "Amount");
    product.close_date = record
        .str_field("CloseDate")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    if let Some(c) = company {
        product.company_id = c;
    }
    product.salesforce_opportunity_id = Some(id.clone());
    let target = LocalRef {
        kind: RecordKind::CompanyProduct,
        id: product.id,
    };
    if !created && product == before {
        return Ok(Applied::Unchanged { target });
    }
    product.updated_at = origin.now;
    tx.put_company_product(&product)?;
    record_applied(
        tx,
        org,
        target,
        created,
        "match:salesforce_id".into(),
        origin,
    )
}

/// Local records that point at a local record: what a merge re-points to the survivor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children {
    /// Contacts whose `company_id` is the record.
    pub contacts: Vec<u64>,
    /// CompanyProducts whose `company_id` is the record.
    pub products: Vec<u64>,
    /// Activities whose `company_id` or `contact_id` is the record.
    pub activities: Vec<u64>,
}

/// Scans the store for the records pointing at `target` (outside a transaction: candidates are
/// re-checked inside it).
pub fn children_of(store: &Store, org: &OrgId, target: LocalRef) -> Result<Children, StoreError> {
    let mut out = Children::default();
    match target.kind {
        RecordKind::Company => {
            out.contacts = store
                .contacts(org)?
                .into_iter()
                .filter(|c| c.company_id == Some(target.id))
                .map(|c| c.id)
                .collect();
            out.products = store
                .company_products(org)?
                .into_iter()
                .filter(|p| p.company_id == target.id)
                .map(|p| p.id)
                .collect();
            out.activities = store
                .activities(org)?
                .into_iter()
                .filter(|a| a.company_id == Some(target.id))
                .map(|a| a.id)
                .collect();
        }
        RecordKind::Contact => {
            out.activities = store
                .activities(org)?
                .into_iter()
                .filter(|a| a.contact_id == Some(target.id))
                .map(|a| a.id)
                .collect();
        }
        RecordKind::CompanyProduct | RecordKind::Activity => {}
    }
    Ok(out)
}

fn repoint(
    tx: &Tx<'_>,
    org: &OrgId,
    from: LocalRef,
    to: u64,
    children: &Children,
    origin: &Origin,
) -> TxResult<()> {
    let rule = format!("merge:repointed_from_{}", from.id);
    if from.kind == RecordKind::Company {
        for &id in &children.contacts {
            if let Some(mut c) = tx.contact(org, id)? {
                if c.company_id == Some(from.id) {
                    c.company_id = Some(to);
                    c.updated_at = origin.now;
                    tx.put_contact(&c)?;
                    let me = LocalRef {
                        kind: RecordKind::Contact,
                        id,
                    };
                    tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
                }
            }
        }
        for &id in &children.products {
            if let Some(mut p) = tx.company_product(org, id)? {
                if p.company_id == from.id {
                    p.company_id = to;
                    p.updated_at = origin.now;
                    tx.put_company_product(&p)?;
                    let me = LocalRef {
                        kind: RecordKind::CompanyProduct,
                        id,
                    };
                    tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
                }
            }
        }
    }
    for &id in &children.activities {
        if let Some(mut a) = tx.activity(org, id)? {
            let mut touched = false;
            if from.kind == RecordKind::Company && a.company_id == Some(from.id) {
                a.company_id = Some(to);
                touched = true;
            }
            if from.kind == RecordKind::Contact && a.contact_id == Some(from.id) {
                a.contact_id = Some(to);
                touched = true;
            }
            if touched {
                tx.put_activity(&a)?;
                let me = LocalRef {
                    kind: RecordKind::Activity,
                    id,
                };
                tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
            }
        }
    }
    Ok(())
}

/// Applies a record that is gone from Salesforce (deleted, or merged away when `master` is
/// set). Merged: records pointing at the loser's local copy are re-pointed to the survivor's
/// copy and the loser's copy is unlinked; when the survivor has no local copy yet, the loser's
/// copy is re-linked to it. Deleted: the local record stays, its link is cleared, and the
/// provenance says why.
pub fn apply_gone(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    master: Option<&SalesforceId>,
    children: &Children,
    origin: &Origin,
) -> TxResult<Applied> {
    let Some(local) = tx.by_salesforce_id(org, id)? else {
        return Ok(Applied::Ignored {
            reason: "gone from salesforce and never synced".into(),
        });
    };
    let Some(master) = master.filter(|m| *m != id) else {
        tx.set_salesforce_link(org, local, None, Some(origin.now))?;
        tx.add_provenance(
            org,
            local,
            &origin.provenance(format!("unlink:deleted_in_salesforce:{id}")),
        )?;
        return Ok(Applied::Unlinked { target: local });
    };
    match tx
        .by_salesforce_id(org, master)?
        .filter(|s| s.kind == local.kind)
    {
        Some(survivor) if survivor.id != local.id => {
            repoint(tx, org, local, survivor.id, children, origin)?;
            tx.set_salesforce_link(org, local, None, Some(origin.now))?;
            tx.add_provenance(
                org,
                local,
                &origin.provenance(format!("unlink:merged_into:{master}")),
            )?;
            Ok(Applied::Relinked {
                target: survivor,
                survivor: master.clone(),
            })
        }
        Some(survivor) => Ok(Applied::Unchanged { target: survivor }),
        None => {
            tx.set_salesforce_link(org, local, Some(master), Some(origin.now))?;
            tx.add_provenance(
                org,
                local,
                &origin.provenance(format!("merge:relinked_to_survivor:{master}")),
            )?;
            Ok(Applied::Relinked {
                target: local,
                survivor: master.clone(),
            })
        }
    }
}

/// Clears a pending entry after its record was applied, but only if nothing newer arrived
/// meanwhile: the entry must be unchanged since `snapshot` was read before the pull, or its
/// newest stamp must be covered by what was applied (`seen`). Otherwise it stays pending.
pub fn clear_if_covered(
    tx: &Tx<'_>,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    snapshot: &PendingEntry,
    seen: Option<Seen>,
) -> TxResult<bool> {
    let clear = match tx.pending_entry(org, object, id)? {
        None => false,
        Some(now) if now == *snapshot => true,
        Some(now) => {
            now.change != ChangeType::Delete
                && matches!((now.system_modstamp_ms, seen), (Some(s), Some(seen)) if seen.covers(s))
        }
    };
    if clear {
        tx.clear_pending(org, object, id)?;
    }
    Ok(clear)
}

/// Applies a pulled record in one transaction and, when `clear` holds the pending entry as it
/// was before the pull, clears that entry in the same transaction (see [`clear_if_covered`]).
#[allow(clippy::too_many_arguments)]
pub fn commit_record(
    store: &Store,
    org: &OrgId,
    rules: &Rules,
    object: ObjectType,
    record: &Record,
    origin: &Origin,
    target: Target,
    clear: Option<&PendingEntry>,
) -> Result<Applied, StoreError> {
    let seen = stamp_ms(record).map(|stamp_ms| Seen {
        stamp_ms,
        pulled_ms: origin.now.timestamp_millis(),
    });
    store.write(|tx| {
        let applied = apply_record(tx, org, rules, object, record, origin, target)?;
        if let (Some(snapshot), Some(id)) = (clear, record.sf_id()) {
            clear_if_covered(tx, org, object, &id, snapshot, seen)?;
        }
        Ok(applied)
    })
}

/// [`apply_gone`] in one transaction, clearing the pending entry as [`commit_record`] does.
#[allow(clippy::too_many_arguments)]
pub fn commit_gone(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    master: Option<&SalesforceId>,
    origin: &Origin,
    clear: Option<&PendingEntry>,
) -> Result<Applied, StoreError> {
    let children = match store.local_by_salesforce_id(org, id)? {
        Some(local) if master.is_some() => children_of(store, org, local)?,
        _ => Children::default(),
    };
    store.write(|tx| {
        let applied = apply_gone(tx, org, id, master, &children, origin)?;
        if let Some(snapshot) = clear {
            clear_if_covered(tx, org, object, id, snapshot, None)?;
        }
        Ok(applied)
    })
}

/// Clears a pending entry whose change is already applied (its stamp is covered by the stored
/// [`Seen`]) without a pull. Returns whether it was cleared.
pub fn skip_covered(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
    id: &SalesforceId,
    snapshot: &PendingEntry,
    seen: Seen,
) -> Result<bool, StoreError> {
    store.write(|tx| clear_if_covered(tx, org, object, id, snapshot, Some(seen)))
}

/// The stored [`Seen`] bookmark of a record.
pub fn seen(store: &Store, org: &OrgId, id: &SalesforceId) -> Result<Option<Seen>, StoreError> {
    store.seen(org, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_covers_older_stamps_and_its_own_second_only_once_that_second_is_over() {
        let seen = Seen {
            stamp_ms: 10_000,
            pulled_ms: 10_400,
        };
        assert!(seen.covers(9_000));
        assert!(!seen.covers(10_000), "a change later in the same second");
        assert!(!seen.covers(11_000));
        let later = Seen {
            stamp_ms: 10_000,
            pulled_ms: 12_000,
        };
        assert!(later.covers(10_000));
    }

    #[test]
    fn rest_and_outbound_datetimes_parse() {
        assert_eq!(
            parse_datetime("2013-05-20T20:49:32.000+0000").map(|d| d.timestamp()),
            Some(1_369_082_972)
        );
        assert_eq!(
            parse_datetime("2013-05-20T20:49:32.000Z").map(|d| d.timestamp()),
            Some(1_369_082_972)
        );
    }

    #[test]
    fn ours_wins_fills_only_empty_fields() {
        let mut kept = Some("ours".to_string());
        take(&mut kept, Some("theirs".into()), ConflictPolicy::OursWins);
        assert_eq!(kept.as_deref(), Some("ours"));
        let mut empty = None;
        take(
            &mut empty,
            Some("theirs".to_string()),
            ConflictPolicy::OursWins,
        );
        assert_eq!(empty.as_deref(), Some("theirs"));
        take(&mut kept, None, ConflictPolicy::SalesforceWins);
        assert_eq!(kept, None);
    }
}
