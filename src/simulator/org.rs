//! The records of the simulated org and the rules Salesforce applies when they change:
//! field validation, required fields, defaults and derived fields, soft deletes, merges and
//! lead conversion. Pure data: no I/O and no locking (the caller holds the lock).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::schema::{self, Kind, ObjectInfo};
use crate::domain::SalesforceId;

/// A record: field name → JSON value, system fields included, nothing for null.
pub(crate) type Record = Map<String, Value>;

/// A record that changed, for Outbound Messages.
pub(crate) type Changed = (&'static str, SalesforceId);

/// The pod part of every minted id.
const POD: &str = "5g";

/// REST's datetime format (`2013-05-20T20:49:32.000+0000`).
pub(crate) fn rest_datetime(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses any datetime spelling Salesforce accepts or emits.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// What a lead conversion should do; the defaults create an account, a contact and an opportunity.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ConvertOptions {
    /// Attach the contact (and opportunity) to this existing account instead of creating one.
    pub account_id: Option<String>,
    /// Do not create an opportunity.
    pub do_not_create_opportunity: bool,
}

/// The records a lead conversion produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConvertResult {
    /// The lead.
    pub lead_id: SalesforceId,
    /// The account the lead became (or was attached to).
    pub account_id: SalesforceId,
    /// The contact the lead became.
    pub contact_id: SalesforceId,
    /// The opportunity created, unless suppressed.
    pub opportunity_id: Option<SalesforceId>,
}

/// The org's records, by object and id.
#[derive(Debug)]
pub(crate) struct Org {
    records: BTreeMap<&'static str, BTreeMap<SalesforceId, Record>>,
    next_n: u64,
    last_now: DateTime<Utc>,
    user_id: SalesforceId,
}

impl Org {
    /// An empty org whose writes are attributed to `user_id`.
    pub(crate) fn new(user_id: SalesforceId) -> Self {
        Self {
            records: BTreeMap::new(),
            next_n: 1,
            last_now: DateTime::UNIX_EPOCH,
            user_id,
        }
    }

    /// The current time at Salesforce's precision (whole seconds), never going backwards.
    pub(crate) fn now(&mut self) -> DateTime<Utc> {
        let now = Utc::now().trunc_subsecs(0).max(self.last_now);
        self.last_now = now;
        now
    }

    /// A fresh id with this key prefix.
    pub(crate) fn mint(&mut self, prefix: &str) -> SalesforceId {
        let n = self.next_n;
        self.next_n += 1;
        SalesforceId::mint(prefix, POD, n)
    }

    /// Resolves `id` to its object and record, deleted rows included.
    pub(crate) fn find(&self, id: &SalesforceId) -> Option<(&'static ObjectInfo, &Record)> {
        let obj = schema::object_by_prefix(id.key_prefix())?;
        Some((obj, self.records.get(obj.name)?.get(id)?))
    }

    /// The live record `id` of `obj` (or of any object when `obj` is `None`):
    /// `NOT_FOUND` for an unknown id, `ENTITY_IS_DELETED` for a deleted one.
    pub(crate) fn live(
        &self,
        obj: Option<&ObjectInfo>,
        id: &str,
    ) -> Result<(&'static ObjectInfo, SalesforceId, &Record), SimError> {
        let id = SalesforceId::parse(id).map_err(|_| SimError::not_found())?;
        let (found, record) = self.find(&id).ok_or_else(SimError::not_found)?;
        if obj.is_some_and(|o| o.name != found.name) {
            return Err(SimError::not_found());
        }
        if is_deleted(record) {
            return Err(SimError::entity_is_deleted());
        }
        Ok((found, id, record))
    }

    /// Every record of `obj`, in creation order, deleted rows included.
    pub(crate) fn all(&self, obj: &ObjectInfo) -> impl Iterator<Item = &Record> {
        self.records
            .get(obj.name)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Live records of `obj` whose `field` equals `value` (case-insensitive).
    pub(crate) fn find_by_field(
        &self,
        obj: &ObjectInfo,
        field: &str,
        value: &str,
    ) -> Vec<SalesforceId> {
        self.records
            .get(obj.name)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(_, r)| !is_deleted(r))
            .filter(|(_, r)| match r.get(field) {
                Some(Value::String(s)) => s.eq_ignore_ascii_case(value),
                Some(Value::Number(n)) => n.to_string() == value,
                _ => false,
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Validates a create body and returns the record to insert (without id and timestamps).
    pub(crate) fn prepare_create(
        &self,
        obj: &'static ObjectInfo,
        body: &Map<String, Value>,
    ) -> Result<Record, SimError> {
        let mut record = Record::new();
        for (field, value) in checked_fields(obj, body)? {
            if !value.is_null() {
                record.insert(field, value);
            }
        }
        apply_defaults(obj, &mut record, &Map::new());
        check_required(obj, &record)?;
        self.derive(obj, &mut record);
        Ok(record)
    }

    /// Inserts a prepared record, minting its id and system fields.
    pub(crate) fn commit_create(
        &mut self,
        obj: &'static ObjectInfo,
        mut record: Record,
    ) -> SalesforceId {
        let id = self.mint(obj.prefix);
        let now = rest_datetime(self.now());
        let user = json!(self.user_id.as_str());
        record.insert("Id".into(), json!(id.as_str()));
        record.insert("IsDeleted".into(), json!(false));
        record.entry("OwnerId").or_insert_with(|| user.clone());
        record.insert("CreatedById".into(), user.clone());
        record.insert("LastModifiedById".into(), user);
        for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            record.insert(f.into(), json!(now));
        }
        self.records
            .entry(obj.name)
            .or_default()
            .insert(id.clone(), record);
        id
    }

    /// Validates an update and returns the record as it will be.
    pub(crate) fn prepare_update(
        &self,
        obj: Option<&ObjectInfo>,
        id: &str,
        body: &Map<String, Value>,
    ) -> Result<(&'static ObjectInfo, SalesforceId, Record), SimError> {
        let (obj, id, current) = self.live(obj, id)?;
        if obj.name == "Lead" && current.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(SimError::converted_lead());
        }
        let changes = checked_fields(obj, body)?;
        let mut record = current.clone();
        let body_fields: Map<String, Value> = changes.iter().cloned().collect();
        for (field, value) in changes {
            if value.is_null() {
                record.remove(&field);
            } else {
                record.insert(field, value);
            }
        }
        apply_defaults(obj, &mut record, &body_fields);
        check_required(obj, &record)?;
        self.derive(obj, &mut record);
        Ok((obj, id, record))
    }

    /// Stores an updated record and touches its modification times.
    pub(crate) fn commit_update(
        &mut self,
        obj: &'static ObjectInfo,
        id: &SalesforceId,
        record: Record,
    ) {
        let user = self.user_id.clone();
        self.commit_update_by(obj, id, record, &user);
    }

    /// [`Org::commit_update`] by another user of the org (`LastModifiedById`).
    pub(crate) fn commit_update_by(
        &mut self,
        obj: &'static ObjectInfo,
        id: &SalesforceId,
        mut record: Record,
        user: &SalesforceId,
    ) {
        let now = rest_datetime(self.now());
        record.insert("LastModifiedDate".into(), json!(now));
        record.insert("SystemModstamp".into(), json!(now));
        record.insert("LastModifiedById".into(), json!(user.as_str()));
        self.records
            .entry(obj.name)
            .or_default()
            .insert(id.clone(), record);
    }

    /// Soft-deletes a live record.
    pub(crate) fn delete(
        &mut self,
        obj: Option<&ObjectInfo>,
        id: &str,
    ) -> Result<SalesforceId, SimError> {
        let (obj, id, record) = self.live(obj, id)?;
        let mut record = record.clone();
        record.insert("IsDeleted".into(), json!(true));
        let now = rest_datetime(self.now());
        record.insert("SystemModstamp".into(), json!(now));
        self.records
            .entry(obj.name)
            .or_default()
            .insert(id.clone(), record);
        Ok(id)
    }

    /// Merges `losers` into `master`: losers become deleted with `MasterRecordId`, records that
    /// pointed at a loser point at the master. Returns the master (the one changed record that
    /// fires workflow).
    pub(crate) fn merge(
        &mut self,
        master: &str,
        losers: &[String],
    ) -> Result<Vec<Changed>, SimError> {
        let (obj, master_id, _) = self.live(None, master)?;
        if !matches!(obj.name, "Account" | "Contact" | "Lead") {
            return Err(SimError::invalid_operation(format!(
                "cannot merge {} records",
                obj.name
            )));
        }
        if losers.is_empty() || losers.len() > 2 {
            return Err(SimError::invalid_operation(
                "a merge takes one or two records to merge into the master",
            ));
        }
        let mut loser_ids = Vec::new();
        for loser in losers {
            let (lobj, lid, _) = self.live(Some(obj), loser)?;
            if lid == master_id {
                return Err(SimError::invalid_operation(
                    "cannot merge a record with itself",
                ));
            }
            loser_ids.push((lobj, lid));
        }
        let now = rest_datetime(self.now());
        for (lobj, lid) in &loser_ids {
            if let Some(r) = self.records.get_mut(lobj.name).and_then(|m| m.get_mut(lid)) {
                r.insert("IsDeleted".into(), json!(true));
                r.insert("MasterRecordId".into(), json!(master_id.as_str()));
                r.insert("SystemModstamp".into(), json!(now));
            }
        }
        let losers: Vec<&str> = loser_ids.iter().map(|(_, id)| id.as_str()).collect();
        for table in self.records.values_mut() {
            for record in table.values_mut() {
                if is_deleted(record) {
                    continue;
                }
                let mut touched = false;
                for value in record.values_mut() {
                    if value.as_str().is_some_and(|s| losers.contains(&s)) {
                        *value = json!(master_id.as_str());
                        touched = true;
                    }
                }
                if touched {
                    record.insert("SystemModstamp".into(), json!(now));
                }
            }
        }
        if let Some(r) = self
            .records
            .get_mut(obj.name)
            .and_then(|m| m.get_mut(&master_id))
        {
            r.insert("LastModifiedDate".into(), json!(now));
            r.insert("SystemModstamp".into(), json!(now));
        }
        Ok(vec![(obj.name, master_id)])
    }

    /// Converts a lead: creates (or reuses) an account, creates a contact and, unless suppressed,
    /// an opportunity, then marks the lead converted. Returns the result and the changed records.
    pub(crate) fn convert(
        &mut self,
        lead: &str,
        options: &ConvertOptions,
    ) -> Result<(ConvertResult, Vec<Changed>), SimError> {
        let lead_obj = schema::object("Lead").ok_or_else(SimError::not_found)?;
        let (_, lead_id, lead_rec) = self.live(Some(lead_obj), lead)?;
        if lead_rec.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(SimError::converted_lead());
        }
        let lead_rec = lead_rec.clone();
        let text = |f: &str| lead_rec.get(f).cloned().unwrap_or(Value::Null);
        let company = lead_rec
            .get("Company")
            .and_then(Value::as_str)
            .unwrap_or("Company")
            .to_string();
        let mut changed = Vec::new();

        let account_obj = schema::object("Account").ok_or_else(SimError::not_found)?;
        let account_id = match &options.account_id {
            Some(existing) => self.live(Some(account_obj), existing)?.1,
            None => {
                let body = Map::from_iter([
                    ("Name".to_string(), json!(company)),
                    ("Phone".to_string(), text("Phone")),
                    ("Website".to_string(), text("Website")),
                    ("Industry".to_string(), text("Industry")),
                ]);
                let record = self.prepare_create(account_obj, &body)?;
                let id = self.commit_create(account_obj, record);
                changed.push((account_obj.name, id.clone()));
                id
            }
        };
        let contact_obj = schema::object("Contact").ok_or_else(SimError::not_found)?;
        let body = Map::from_iter([
            ("FirstName".to_string(), text("FirstName")),
            ("LastName".to_string(), text("LastName")),
            ("Email".to_string(), text("Email")),
            ("Title".to_string(), text("Title")),
            ("Phone".to_string(), text("Phone")),
            ("LeadSource".to_string(), text("LeadSource")),
            ("AccountId".to_string(), json!(account_id.as_str())),
        ]);
        let record = self.prepare_create(contact_obj, &body)?;
        let contact_id = self.commit_create(contact_obj, record);
        changed.push((contact_obj.name, contact_id.clone()));

        let opportunity_id = if options.do_not_create_opportunity {
            None
        } else {
            let opp_obj = schema::object("Opportunity").ok_or_else(SimError::not_found)?;
            let close = (self.now() + chrono::Duration::days(30)).date_naive();
            let body = Map::from_iter([
                ("Name".to_string(), json!(format!("{company}-"))),
                ("StageName".to_string(), json!("Prospecting")),
                ("CloseDate".to_string(), json!(close.to_string())),
                ("AccountId".to_string(), json!(account_id.as_str())),
                ("LeadSource".to_string(), text("LeadSource")),
            ]);
            let record = self.prepare_create(opp_obj, &body)?;
            let id = self.commit_create(opp_obj, record);
            changed.push((opp_obj.name, id.clone()));
            Some(id)
        };

        let mut record = lead_rec;
        let today = self.now().date_naive().to_string();
        record.insert("IsConverted".into(), json!(true));
        record.insert("ConvertedDate".into(), json!(today));
        record.insert("Status".into(), json!("Closed - Converted"));
        record.insert("ConvertedAccountId".into(), json!(account_id.as_str()));
        record.insert("ConvertedContactId".into(), json!(contact_id.as_str()));
        if let Some(opp) = &opportunity_id {
            record.insert("ConvertedOpportunityId".into(), json!(opp.as_str()));
        }
        self.commit_update(lead_obj, &lead_id, record);
        changed.push((lead_obj.name, lead_id.clone()));
        Ok((
            ConvertResult {
                lead_id,
                account_id,
                contact_id,
                opportunity_id,
            },
            changed,
        ))
    }

    /// Fields the org computes from others.
    fn derive(&self, obj: &ObjectInfo, record: &mut Record) {
        match obj.name {
            "Contact" | "Lead" => {
                let name = [record.get("FirstName"), record.get("LastName")]
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
                record.insert("Name".into(), json!(name));
            }
            "Opportunity" => {
                let stage_name = record
                    .get("StageName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let (_, closed, won, forecast) = schema::stage(stage_name);
                record.insert("IsClosed".into(), json!(closed));
                record.insert("IsWon".into(), json!(won));
                record
                    .entry("ForecastCategoryName")
                    .or_insert_with(|| json!(forecast));
            }
            "Task" => {
                let closed = record.get("Status").and_then(Value::as_str) == Some("Completed");
                let was_closed = record.get("IsClosed") == Some(&Value::Bool(true));
                record.insert("IsClosed".into(), json!(closed));
                if closed && !was_closed {
                    record.insert(
                        "CompletedDateTime".into(),
                        json!(rest_datetime(Utc::now().trunc_subsecs(0))),
                    );
                } else if !closed {
                    record.remove("CompletedDateTime");
                }
                self.derive_account(record);
            }
            "Event" => {
                let start = record
                    .get("StartDateTime")
                    .or_else(|| record.get("ActivityDateTime"))
                    .and_then(Value::as_str)
                    .and_then(parse_datetime);
                if let Some(start) = start {
                    record.insert("StartDateTime".into(), json!(rest_datetime(start)));
                    record.insert("ActivityDateTime".into(), json!(rest_datetime(start)));
                    record.insert("ActivityDate".into(), json!(start.date_naive().to_string()));
                    let end = record
                        .get("EndDateTime")
                        .and_then(Value::as_str)
                        .and_then(parse_datetime);
                    match (record.get("DurationInMinutes").and_then(Value::as_i64), end) {
                        (Some(minutes), _) => {
                            let end = start + chrono::Duration::minutes(minutes);
                            record.insert("EndDateTime".into(), json!(rest_datetime(end)));
                        }
                        (None, Some(end)) => {
                            record.insert(
                                "DurationInMinutes".into(),
                                json!((end - start).num_minutes()),
                            );
                        }
                        (None, None) => {}
                    }
                }
                self.derive_account(record);
            }
            _ => {}
        }
    }

    /// An activity's `AccountId`: the `WhatId` account (or its opportunity's), else the
    /// `WhoId` contact's account.
    fn derive_account(&self, record: &mut Record) {
        let lookup = |field: &str| -> Option<Record> {
            let id = SalesforceId::parse(record.get(field)?.as_str()?).ok()?;
            self.find(&id).map(|(_, r)| r.clone())
        };
        let account = match lookup("WhatId") {
            Some(what)
                if what
                    .get("Id")
                    .and_then(Value::as_str)
                    .is_some_and(|i| i.starts_with("001")) =>
            {
                what.get("Id").cloned()
            }
            Some(what) if what.contains_key("AccountId") => what.get("AccountId").cloned(),
            _ => lookup("WhoId").and_then(|who| who.get("AccountId").cloned()),
        };
        match account {
            Some(a) => record.insert("AccountId".into(), a),
            None => record.remove("AccountId"),
        };
    }
}

/// Whether a record is soft-deleted.
pub(crate) fn is_deleted(record: &Record) -> bool {
    record.get("IsDeleted") == Some(&Value::Bool(true))
}

/// Checks every field of a write body: known, writable, of the right kind. Returns canonical
/// names with normalized values (null kept, meaning "clear").
fn checked_fields(
    obj: &ObjectInfo,
    body: &Map<String, Value>,
) -> Result<Vec<(String, Value)>, SimError> {
    let mut out = Vec::new();
    for (name, value) in body {
        if name == "attributes" {
            continue;
        }
        let field = obj
            .field(name)
            .ok_or_else(|| SimError::invalid_field(obj.name, name))?;
        if obj.is_read_only(&field) {
            return Err(SimError::read_only_field(&field));
        }
        out.push((field.clone(), normalize(&field, value)?));
    }
    Ok(out)
}

/// A body value in the form the org stores.
fn normalize(field: &str, value: &Value) -> Result<Value, SimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bad = || SimError::bad_value(field, value);
    Ok(match schema::kind(field) {
        Kind::Text => match value {
            Value::String(_) => value.clone(),
            Value::Number(n) => json!(n.to_string()),
            Value::Bool(b) => json!(b.to_string()),
            _ => return Err(bad()),
        },
        Kind::Boolean => match value {
            Value::Bool(_) => value.clone(),
            Value::String(s) if s == "true" || s == "false" => json!(s == "true"),
            _ => return Err(bad()),
        },
        Kind::Integer => match value {
            Value::Number(n) => json!(n.as_f64().ok_or_else(bad)? as i64),
            Value::String(s) => json!(s.parse::<i64>().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        Kind::Double => match value {
            Value::Number(n) => json!(n.as_f64().ok_or_else(bad)?),
            Value::String(s) => json!(s.parse::<f64>().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        Kind::Date => {
            let s = value.as_str().ok_or_else(bad)?;
            let date = NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                .map_err(|_| bad())?;
            json!(date.to_string())
        }
        Kind::DateTime => {
            let s = value.as_str().ok_or_else(bad)?;
            json!(rest_datetime(
                parse_datetime(s).ok_or_else(bad)?.trunc_subsecs(0)
            ))
        }
    })
}

/// Picklist defaults and stage-derived values; `body` holds the fields the write named.
fn apply_defaults(obj: &ObjectInfo, record: &mut Record, body: &Map<String, Value>) {
    match obj.name {
        "Lead" => {
            record
                .entry("Status")
                .or_insert_with(|| json!("Open - Not Contacted"));
            // A checkbox: false until the lead is converted, never null.
            record.entry("IsConverted").or_insert(json!(false));
        }
        "Task" => {
            record
                .entry("Status")
                .or_insert_with(|| json!("Not Started"));
            record.entry("Priority").or_insert_with(|| json!("Normal"));
        }
        "Opportunity" => {
            let stage_name = record
                .get("StageName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (probability, ..) = schema::stage(stage_name);
            let stage_changed = body.contains_key("StageName");
            if (stage_changed && !body.contains_key("Probability"))
                || !record.contains_key("Probability")
            {
                record.insert("Probability".into(), json!(probability));
            }
            if stage_changed && !body.contains_key("ForecastCategoryName") {
                record.remove("ForecastCategoryName");
            }
        }
        _ => {}
    }
}

/// `REQUIRED_FIELD_MISSING` when a required field is absent or blank.
fn check_required(obj: &ObjectInfo, record: &Record) -> Result<(), SimError> {
    let missing: Vec<String> = obj
        .required
        .iter()
        .filter(|f| match record.get(**f) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        })
        .map(|f| (*f).to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SimError::required_missing(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> Org {
        Org::new(SalesforceId::mint("005", POD, 1))
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_lead_without_last_name_and_company_names_both() {
        let o = org();
        let lead = schema::object("Lead").unwrap();
        let err = o
            .prepare_create(lead, &body(json!({"FirstName": "Ada"})))
            .unwrap_err();
        assert_eq!(
            err.message,
            "Required fields are missing: [LastName, Company]"
        );
        assert_eq!(err.fields, Some(vec!["LastName".into(), "Company".into()]));
    }

    #[test]
    fn created_records_carry_system_fields_in_rest_format() {
        let mut o = org();
        let acc = schema::object("Account").unwrap();
        let rec = o
            .prepare_create(acc, &body(json!({"Name": "Acme"})))
            .unwrap();
        let id = o.commit_create(acc, rec);
        let (_, r) = o.find(&id).unwrap();
        let stamp = r["SystemModstamp"].as_str().unwrap();
        assert!(stamp.ends_with(".000+0000"), "{stamp}");
        assert_eq!(id.key_prefix(), "001");
        assert_eq!(r["IsDeleted"], json!(false));
    }

    #[test]
    fn an_opportunity_takes_its_probability_from_the_stage() {
        let mut o = org();
        let opp = schema::object("Opportunity").unwrap();
        let b = body(json!({"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2024-05-01"}));
        let rec = o.prepare_create(opp, &b).unwrap();
        let id = o.commit_create(opp, rec);
        let (_, r) = o.find(&id).unwrap();
        assert_eq!(r["Probability"], json!(100.0));
        assert_eq!(r["IsWon"], json!(true));
    }
}
