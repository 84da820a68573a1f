//! The records of the simulated org, its schema and rules, and the record operations every
//! surface shares: find, create, update, soft delete, with each write attributed to the user who
//! made it. The checks and derived fields of a save are in `save.rs`; merges and lead conversion
//! in `merge.rs`. Pure data: no I/O and no locking (the caller holds the lock).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::rules::Rules;
use super::schema::{ObjectDef, Schema};
use super::value::{Record, is_deleted, rest_datetime};
use crate::domain::SalesforceId;

/// A record that changed, for Outbound Messages: its object and id.
pub(crate) type Changed = (String, SalesforceId);

/// The pod part of every minted id.
const POD: &str = "5g";

/// Who saves, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Save<'a> {
    /// The user the write is attributed to; their field-level security applies.
    pub(crate) user: &'a SalesforceId,
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`: an alert-only duplicate rule lets it pass.
    pub(crate) allow_duplicates: bool,
    /// Validation and duplicate rules run (not for the records a merge or conversion makes).
    pub(crate) rules: bool,
}

impl<'a> Save<'a> {
    /// A save by `user` with every rule in force.
    pub(crate) fn by(user: &'a SalesforceId) -> Self {
        Self {
            user,
            allow_duplicates: false,
            rules: true,
        }
    }
}

/// What an opportunity stage implies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageInfo {
    pub(crate) probability: f64,
    pub(crate) closed: bool,
    pub(crate) won: bool,
    pub(crate) forecast_name: String,
}

/// The org's schema, rules and records.
#[derive(Debug)]
pub(crate) struct Org {
    pub(crate) schema: Schema,
    pub(crate) rules: Rules,
    /// Records by object name and id.
    pub(crate) records: BTreeMap<String, BTreeMap<SalesforceId, Record>>,
    next_n: u64,
    last_now: DateTime<Utc>,
    auto_numbers: BTreeMap<String, u64>,
    /// Live records by the value (lowercase) of each unique field: (object, field) → value → id,
    /// so a unique check or an upsert by a unique External ID reads no other record.
    unique: HashMap<(String, String), HashMap<String, SalesforceId>>,
    /// `/services/data/vNN.0`, for record URLs in error bodies.
    pub(crate) data_path: String,
}

/// A value as the unique index keys it: text in ASCII lowercase, numbers as written.
fn unique_key(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Org {
    /// An empty org with this schema.
    pub(crate) fn new(schema: Schema, data_path: String) -> Self {
        Self {
            schema,
            rules: Rules::default(),
            records: BTreeMap::new(),
            next_n: 1,
            last_now: DateTime::UNIX_EPOCH,
            auto_numbers: BTreeMap::new(),
            unique: HashMap::new(),
            data_path,
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

    /// The object named `name`, or `NOT_FOUND`.
    pub(crate) fn object(&self, name: &str) -> Result<Arc<ObjectDef>, SimError> {
        self.schema.object(name).ok_or_else(SimError::not_found)
    }

    /// Resolves `id` to its object and record, deleted rows included.
    pub(crate) fn find(&self, id: &SalesforceId) -> Option<(Arc<ObjectDef>, &Record)> {
        let obj = self.schema.object_by_prefix(id.key_prefix())?;
        let record = self.records.get(&obj.name)?.get(id)?;
        Some((obj, record))
    }

    /// The live record `id` of `obj` (or of any object when `obj` is `None`):
    /// `NOT_FOUND` for an unknown id, `ENTITY_IS_DELETED` for a deleted one.
    pub(crate) fn live(
        &self,
        obj: Option<&ObjectDef>,
        id: &str,
    ) -> Result<(Arc<ObjectDef>, SalesforceId, &Record), SimError> {
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
    pub(crate) fn all(&self, obj: &ObjectDef) -> impl Iterator<Item = &Record> {
        self.records
            .get(&obj.name)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Live records of `obj` whose `field` equals `value` (case-insensitive).
    pub(crate) fn find_by_field(
        &self,
        obj: &ObjectDef,
        field: &str,
        value: &str,
    ) -> Vec<SalesforceId> {
        if obj.field(field).is_some_and(|f| f.unique) {
            let key = (obj.name.clone(), field.to_string());
            let value = value.to_ascii_lowercase();
            return self
                .unique
                .get(&key)
                .and_then(|m| m.get(&value))
                .cloned()
                .into_iter()
                .collect();
        }
        self.records
            .get(&obj.name)
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

    /// The live record other than `id` holding `value` in the unique field `field` of `obj`.
    pub(crate) fn unique_holder(
        &self,
        obj: &ObjectDef,
        field: &str,
        value: Option<&Value>,
        id: Option<&SalesforceId>,
    ) -> Option<&SalesforceId> {
        let key = (obj.name.clone(), field.to_string());
        self.unique
            .get(&key)?
            .get(&unique_key(value)?)
            .filter(|holder| Some(*holder) != id)
    }

    /// Records the unique values of a live record.
    fn index(&mut self, obj: &ObjectDef, id: &SalesforceId, record: &Record) {
        for f in obj.fields.iter().filter(|f| f.unique) {
            if let Some(value) = unique_key(record.get(&f.name)) {
                let key = (obj.name.clone(), f.name.clone());
                self.unique
                    .entry(key)
                    .or_default()
                    .insert(value, id.clone());
            }
        }
    }

    /// Forgets the unique values `record` (the stored version of `id`) holds.
    pub(crate) fn unindex(&mut self, object: &str, id: &SalesforceId, record: &Record) {
        for ((o, field), values) in self.unique.iter_mut() {
            if o != object {
                continue;
            }
            if let Some(value) = unique_key(record.get(field)) {
                if values.get(&value) == Some(id) {
                    values.remove(&value);
                }
            }
        }
    }

    /// Stores `record` as the current version of `id`, keeping the unique index in step.
    fn store(&mut self, obj: &ObjectDef, id: &SalesforceId, record: Record) {
        let old = self.records.get(&obj.name).and_then(|m| m.get(id)).cloned();
        if let Some(old) = old {
            self.unindex(&obj.name, id, &old);
        }
        if !is_deleted(&record) {
            self.index(obj, id, &record);
        }
        self.records
            .entry(obj.name.clone())
            .or_default()
            .insert(id.clone(), record);
    }

    /// Validates a create body and returns the record to insert (without id and timestamps).
    pub(crate) fn prepare_create(
        &self,
        obj: &Arc<ObjectDef>,
        body: &Map<String, Value>,
        save: Save<'_>,
    ) -> Result<Record, SimError> {
        if !obj.createable {
            return Err(SimError::entity_refused("inserted", &obj.label));
        }
        let mut record = Record::new();
        for (field, value) in self.checked_fields(obj, body, save.user, true)? {
            if !value.is_null() {
                record.insert(field, value);
            }
        }
        self.apply_defaults(obj, &mut record, &Map::new(), true);
        self.finish(obj, &mut record, None, save)?;
        Ok(record)
    }

    /// Inserts a prepared record, minting its id and system fields, attributed to `user`.
    pub(crate) fn commit_create(
        &mut self,
        obj: &ObjectDef,
        mut record: Record,
        user: &SalesforceId,
    ) -> SalesforceId {
        let id = self.mint(&obj.key_prefix);
        let now = rest_datetime(self.now());
        let user = json!(user.as_str());
        record.insert("Id".into(), json!(id.as_str()));
        record.insert("IsDeleted".into(), json!(false));
        if obj.has("OwnerId") {
            record.entry("OwnerId").or_insert_with(|| user.clone());
        }
        record.insert("CreatedById".into(), user.clone());
        record.insert("LastModifiedById".into(), user);
        for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            record.insert(f.into(), json!(now));
        }
        if obj.fields.iter().any(|f| f.auto_number) {
            let n = self.auto_numbers.entry(obj.name.clone()).or_insert(0);
            *n += 1;
            record.insert("Name".into(), json!(format!("{:0>8}", *n)));
        }
        self.store(obj, &id, record);
        id
    }

    /// Inserts a record no caller may create (users, opportunity stages), without checks.
    pub(crate) fn insert_system(
        &mut self,
        obj: &ObjectDef,
        record: Record,
        user: &SalesforceId,
    ) -> SalesforceId {
        self.commit_create(obj, record, user)
    }

    /// Validates an update and returns the record as it will be.
    pub(crate) fn prepare_update(
        &self,
        obj: Option<&ObjectDef>,
        id: &str,
        body: &Map<String, Value>,
        save: Save<'_>,
    ) -> Result<(Arc<ObjectDef>, SalesforceId, Record), SimError> {
        let (obj, id, current) = self.live(obj, id)?;
        if !obj.updateable {
            return Err(SimError::entity_refused("updated", &obj.label));
        }
        if obj.name == "Lead" && current.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(SimError::converted_lead());
        }
        let changes = self.checked_fields(&obj, body, save.user, false)?;
        let mut record = current.clone();
        let body_fields: Map<String, Value> = changes.iter().cloned().collect();
        for (field, value) in changes {
            if value.is_null() {
                record.remove(&field);
            } else {
                record.insert(field, value);
            }
        }
        self.apply_defaults(&obj, &mut record, &body_fields, false);
        self.finish(&obj, &mut record, Some(&id), save)?;
        Ok((obj, id, record))
    }

    /// Stores an updated record and touches its modification times, attributed to `user`.
    pub(crate) fn commit_update(
        &mut self,
        obj: &ObjectDef,
        id: &SalesforceId,
        mut record: Record,
        user: &SalesforceId,
    ) {
        let now = rest_datetime(self.now());
        record.insert("LastModifiedDate".into(), json!(now));
        record.insert("SystemModstamp".into(), json!(now));
        record.insert("LastModifiedById".into(), json!(user.as_str()));
        self.store(obj, id, record);
    }

    /// Soft-deletes a live record.
    pub(crate) fn delete(
        &mut self,
        obj: Option<&ObjectDef>,
        id: &str,
    ) -> Result<SalesforceId, SimError> {
        let (obj, id, record) = self.live(obj, id)?;
        if !obj.deletable {
            return Err(SimError::entity_refused("deleted", &obj.label));
        }
        let mut record = record.clone();
        record.insert("IsDeleted".into(), json!(true));
        let now = rest_datetime(self.now());
        record.insert("SystemModstamp".into(), json!(now));
        self.store(&obj, &id, record);
        Ok(id)
    }

    /// What the stage named `name` (its API name or label) implies; an unknown stage is an open
    /// pipeline stage of 10%.
    pub(crate) fn stage(&self, name: &str) -> StageInfo {
        let stages = self.schema.object("OpportunityStage");
        let found = stages.as_ref().and_then(|obj| {
            self.all(obj).find(|r| {
                ["ApiName", "MasterLabel"]
                    .iter()
                    .any(|f| r.get(*f).and_then(Value::as_str) == Some(name))
            })
        });
        match found {
            Some(r) => StageInfo {
                probability: r
                    .get("DefaultProbability")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                closed: r.get("IsClosed") == Some(&Value::Bool(true)),
                won: r.get("IsWon") == Some(&Value::Bool(true)),
                forecast_name: r
                    .get("ForecastCategoryName")
                    .and_then(Value::as_str)
                    .unwrap_or("Pipeline")
                    .to_string(),
            },
            None => StageInfo {
                probability: 10.0,
                closed: false,
                won: false,
                forecast_name: "Pipeline".into(),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::simulator::standard::standard_objects;

    pub(crate) fn user() -> SalesforceId {
        SalesforceId::mint("005", POD, 999)
    }

    pub(crate) fn org() -> Org {
        Org::new(
            Schema::new(standard_objects(Some("Sfsync_Id__c"))),
            "/services/data/v62.0".into(),
        )
    }

    pub(crate) fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    pub(crate) fn create(o: &mut Org, object: &str, v: Value) -> Result<SalesforceId, SimError> {
        let obj = o.object(object)?;
        let u = user();
        let rec = o.prepare_create(&obj, &body(v), Save::by(&u))?;
        Ok(o.commit_create(&obj, rec, &u))
    }

    #[test]
    fn a_lead_without_last_name_and_company_names_both() {
        let err = create(&mut org(), "Lead", json!({"FirstName": "Ada"})).unwrap_err();
        assert_eq!(
            err.message,
            "Required fields are missing: [LastName, Company]"
        );
        assert_eq!(err.fields, Some(vec!["LastName".into(), "Company".into()]));
    }

    #[test]
    fn created_records_carry_system_fields_in_rest_format() {
        let mut o = org();
        let id = create(&mut o, "Account", json!({"Name": "Acme"})).unwrap();
        let (_, r) = o.find(&id).unwrap();
        let stamp = r["SystemModstamp"].as_str().unwrap();
        assert!(stamp.ends_with(".000+0000"), "{stamp}");
        assert_eq!(id.key_prefix(), "001");
        assert_eq!(r["IsDeleted"], json!(false));
        assert_eq!(r["CreatedById"], json!(user().as_str()));
    }

    #[test]
    fn a_unique_field_refuses_a_second_record_with_its_value() {
        let mut o = org();
        let first = create(&mut o, "Account", json!({"Name": "A", "Sfsync_Id__c": "k"})).unwrap();
        let err = create(&mut o, "Account", json!({"Name": "B", "Sfsync_Id__c": "K"})).unwrap_err();
        assert_eq!(err.code, "DUPLICATE_VALUE");
        assert!(err.message.ends_with(first.as_str()), "{}", err.message);
    }

    #[test]
    fn a_unique_value_is_free_again_once_its_record_changes_or_goes() {
        let mut o = org();
        let u = user();
        let a = create(&mut o, "Account", json!({"Name": "A", "Sfsync_Id__c": "k"})).unwrap();
        let (obj, _, rec) = o
            .prepare_update(
                None,
                a.as_str(),
                &body(json!({"Sfsync_Id__c": "k2"})),
                Save::by(&u),
            )
            .unwrap();
        o.commit_update(&obj, &a, rec, &u);
        let b = create(&mut o, "Account", json!({"Name": "B", "Sfsync_Id__c": "k"})).unwrap();
        o.delete(None, b.as_str()).unwrap();
        let c = create(&mut o, "Account", json!({"Name": "C", "Sfsync_Id__c": "K"}));
        let account = o.object("Account").unwrap();

        assert!(c.is_ok(), "{c:?}");
        assert_eq!(o.find_by_field(&account, "Sfsync_Id__c", "k2"), vec![a]);
        assert_eq!(
            o.find_by_field(&account, "Sfsync_Id__c", "k"),
            vec![c.unwrap()]
        );
    }

    #[test]
    fn a_field_the_object_lacks_is_invalid_field() {
        let err = create(&mut org(), "Account", json!({"Name": "A", "Nope__c": 1})).unwrap_err();
        assert_eq!(err.code, "INVALID_FIELD");
        assert_eq!(
            err.message,
            "No such column 'Nope__c' on sobject of type Account"
        );
    }
}
