//! What Salesforce checks and computes when a record is saved: every body field known, visible and
//! writable for the user, of the right type (restricted picklists included); picklist and stage
//! defaults; required fields; derived fields (names, stage flags, activity accounts, event
//! times); then validation rules, duplicate rules and unique fields.

use chrono::{NaiveDate, SubsecRound, Utc};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::org::{Org, Save};
use super::schema::{FieldDef, FieldType, Kind, ObjectDef};
use super::value::{Record, is_deleted, parse_datetime, rest_datetime};
use crate::domain::SalesforceId;

impl Org {
    /// Checks every field of a write body: known and visible to `user`, writable by them, of the
    /// right kind. Returns canonical names with normalized values (null kept, meaning "clear").
    pub(crate) fn checked_fields(
        &self,
        obj: &ObjectDef,
        body: &Map<String, Value>,
        user: &SalesforceId,
        creating: bool,
    ) -> Result<Vec<(String, Value)>, SimError> {
        let mut out = Vec::new();
        for (name, value) in body {
            if name == "attributes" {
                continue;
            }
            let field = self
                .schema
                .visible_field(user, obj, name)
                .ok_or_else(|| SimError::invalid_field(&obj.name, name))?;
            let access = self.schema.access(user, obj, field);
            if !(if creating {
                access.createable
            } else {
                access.updateable
            }) {
                return Err(SimError::read_only_field(&field.name));
            }
            out.push((field.name.clone(), normalize(field, value)?));
        }
        Ok(out)
    }

    /// Picklist defaults on create and stage-derived values; `body` holds the fields the write
    /// named.
    pub(crate) fn apply_defaults(
        &self,
        obj: &ObjectDef,
        record: &mut Record,
        body: &Map<String, Value>,
        creating: bool,
    ) {
        if creating {
            for f in &obj.fields {
                if let Some(default) = f.default_value() {
                    record
                        .entry(f.name.clone())
                        .or_insert_with(|| json!(default));
                } else if f.ftype == FieldType::Boolean {
                    // A checkbox is false until set, never null.
                    record.entry(f.name.clone()).or_insert(json!(false));
                }
            }
        }
        if obj.name == "Opportunity" {
            let stage_name = record
                .get("StageName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let stage = self.stage(stage_name);
            let stage_changed = body.contains_key("StageName");
            if (stage_changed && !body.contains_key("Probability"))
                || !record.contains_key("Probability")
            {
                record.insert("Probability".into(), json!(stage.probability));
            }
            if stage_changed && !body.contains_key("ForecastCategoryName") {
                record.remove("ForecastCategoryName");
            }
        }
    }

    /// Required fields, derived fields, then (as the save asks) rules and unique fields.
    pub(crate) fn finish(
        &self,
        obj: &ObjectDef,
        record: &mut Record,
        id: Option<&SalesforceId>,
        save: Save<'_>,
    ) -> Result<(), SimError> {
        check_required(obj, record)?;
        self.derive(obj, record);
        if save.rules {
            self.rules.validate(obj, record)?;
            self.check_duplicates(obj, record, id, save)?;
        }
        self.check_unique(obj, record, id)
    }

    /// `DUPLICATE_VALUE` when a unique field's value is held by another live record.
    fn check_unique(
        &self,
        obj: &ObjectDef,
        record: &Record,
        id: Option<&SalesforceId>,
    ) -> Result<(), SimError> {
        for f in obj.fields.iter().filter(|f| f.unique) {
            if let Some(other) = self.unique_holder(obj, &f.name, record.get(&f.name), id) {
                return Err(SimError::duplicate_value(&f.name, other.as_str()));
            }
        }
        Ok(())
    }

    /// `DUPLICATES_DETECTED` when the object's duplicate rule matches other live records.
    fn check_duplicates(
        &self,
        obj: &ObjectDef,
        record: &Record,
        id: Option<&SalesforceId>,
        save: Save<'_>,
    ) -> Result<(), SimError> {
        let Some(rule) = self.rules.duplicate_rule(obj) else {
            return Ok(());
        };
        if rule.allow_save && save.allow_duplicates {
            return Ok(());
        }
        let found: Vec<SalesforceId> = self
            .records
            .get(&obj.name)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(other, r)| Some(*other) != id && !is_deleted(r))
            .filter(|(_, r)| rule.matches(record, r))
            .map(|(other, _)| other.clone())
            .collect();
        if found.is_empty() {
            Ok(())
        } else {
            Err(rule.error(&obj.name, &found, &self.data_path))
        }
    }

    /// Fields the org computes from others.
    fn derive(&self, obj: &ObjectDef, record: &mut Record) {
        match obj.name.as_str() {
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
                let stage = self.stage(stage_name);
                record.insert("IsClosed".into(), json!(stage.closed));
                record.insert("IsWon".into(), json!(stage.won));
                record
                    .entry("ForecastCategoryName")
                    .or_insert_with(|| json!(stage.forecast_name));
            }
            "Task" => {
                derive_task_closed(record);
                self.derive_account(record);
            }
            "Event" => {
                derive_event_times(record);
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

fn derive_task_closed(record: &mut Record) {
    let closed = record.get("Status").and_then(Value::as_str) == Some("Completed");
    let was_closed = record.get("IsClosed") == Some(&Value::Bool(true));
    record.insert("IsClosed".into(), json!(closed));
    if closed && !was_closed {
        let now = rest_datetime(Utc::now().trunc_subsecs(0));
        record.insert("CompletedDateTime".into(), json!(now));
    } else if !closed {
        record.remove("CompletedDateTime");
    }
}

/// An event's start spelled every way, and its end from the duration (or the reverse).
fn derive_event_times(record: &mut Record) {
    let start = record
        .get("StartDateTime")
        .or_else(|| record.get("ActivityDateTime"))
        .and_then(Value::as_str)
        .and_then(parse_datetime);
    let Some(start) = start else { return };
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
            let minutes = (end - start).num_minutes();
            record.insert("DurationInMinutes".into(), json!(minutes));
        }
        (None, None) => {}
    }
}

/// A body value in the form the org stores.
fn normalize(field: &FieldDef, value: &Value) -> Result<Value, SimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let bad = || SimError::bad_value(&field.name, value);
    let normalized = match field.ftype.kind() {
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
            let at = parse_datetime(s).ok_or_else(bad)?.trunc_subsecs(0);
            json!(rest_datetime(at))
        }
    };
    if field.restricted {
        let text = normalized.as_str().unwrap_or_default();
        if !field.picklist.iter().any(|p| p.active && p.value == text) {
            return Err(SimError::restricted_picklist(&field.name, text));
        }
    }
    Ok(normalized)
}

/// `REQUIRED_FIELD_MISSING` when a field that must have a value is absent or blank.
fn check_required(obj: &ObjectDef, record: &Record) -> Result<(), SimError> {
    let missing: Vec<String> = obj
        .fields
        .iter()
        .filter(|f| f.must_have_value())
        .filter(|f| match record.get(&f.name) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        })
        .map(|f| f.name.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SimError::required_missing(missing))
    }
}
