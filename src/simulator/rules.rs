//! Rules an admin switches on per object: a duplicate rule (`DUPLICATES_DETECTED` with the
//! rule's finding) and a validation rule (`FIELD_CUSTOM_VALIDATION_EXCEPTION` with the admin's
//! message). Both run on every save of the object, through the API or as a user.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::SimError;
use super::schema::ObjectDef;
use super::soql::{Cond, parse_condition};
use super::soql_eval::matches;
use super::value::Record;
use crate::domain::SalesforceId;

/// A duplicate rule: a save whose `match_fields` all equal another live record's (ignoring
/// case) is refused with `DUPLICATES_DETECTED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateRuleSpec {
    /// The rule's API name (`Standard_<Object>_Duplicate_Rule` when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// The fields that must all match.
    pub match_fields: Vec<String>,
    /// The rule only alerts: a save with `Sforce-Duplicate-Rule-Header: allowSave=true` goes
    /// through.
    #[serde(default)]
    pub allow_save: bool,
    /// The alert text (`Use one of these records?` when absent).
    #[serde(default)]
    pub message: Option<String>,
}

/// A validation rule: a save whose record satisfies `condition` (a SOQL `WHERE` condition over
/// the object's fields; always, when absent) is refused with the admin's `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRuleSpec {
    /// The rule's name.
    #[serde(default)]
    pub name: Option<String>,
    /// When the rule fires; every save when absent.
    #[serde(default)]
    pub condition: Option<String>,
    /// The error message the admin wrote.
    pub message: String,
    /// The field the error is shown on (listed in `fields`).
    #[serde(default)]
    pub field: Option<String>,
}

/// A duplicate rule in force.
#[derive(Debug, Clone)]
pub(crate) struct DuplicateRule {
    name: String,
    match_rule: String,
    fields: Vec<String>,
    pub(crate) allow_save: bool,
    message: String,
}

/// A validation rule in force.
#[derive(Debug, Clone)]
struct ValidationRule {
    condition: Option<Cond>,
    message: String,
    field: Option<String>,
}

/// The rules in force, per object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    duplicate: BTreeMap<String, DuplicateRule>,
    validation: BTreeMap<String, ValidationRule>,
}

impl Rules {
    /// Switches the duplicate rule of `obj` on (`Some`) or off.
    pub(crate) fn set_duplicate(
        &mut self,
        obj: &ObjectDef,
        spec: Option<DuplicateRuleSpec>,
    ) -> Result<(), SimError> {
        let Some(spec) = spec else {
            self.duplicate.remove(&obj.name);
            return Ok(());
        };
        if spec.match_fields.is_empty() {
            return Err(SimError::invalid_operation(
                "a duplicate rule needs match_fields",
            ));
        }
        let fields = spec
            .match_fields
            .iter()
            .map(|f| {
                obj.field(f)
                    .map(|d| d.name.clone())
                    .ok_or_else(|| SimError::invalid_field(&obj.name, f))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rule = DuplicateRule {
            name: spec
                .name
                .unwrap_or_else(|| format!("Standard_{}_Duplicate_Rule", obj.name)),
            match_rule: format!("Standard_{}_Match_Rule_v1_0", obj.name),
            fields,
            allow_save: spec.allow_save,
            message: spec
                .message
                .unwrap_or_else(|| "Use one of these records?".into()),
        };
        self.duplicate.insert(obj.name.clone(), rule);
        Ok(())
    }

    /// Switches the validation rule of `obj` on (`Some`) or off.
    pub(crate) fn set_validation(
        &mut self,
        obj: &Arc<ObjectDef>,
        spec: Option<ValidationRuleSpec>,
    ) -> Result<(), SimError> {
        let Some(spec) = spec else {
            self.validation.remove(&obj.name);
            return Ok(());
        };
        let condition = spec
            .condition
            .as_deref()
            .map(|c| parse_condition(c, obj))
            .transpose()?;
        let field = spec
            .field
            .as_deref()
            .map(|f| {
                obj.field(f)
                    .map(|d| d.name.clone())
                    .ok_or_else(|| SimError::invalid_field(&obj.name, f))
            })
            .transpose()?;
        let rule = ValidationRule {
            condition,
            message: spec.message,
            field,
        };
        self.validation.insert(obj.name.clone(), rule);
        Ok(())
    }

    /// `FIELD_CUSTOM_VALIDATION_EXCEPTION` when the object's validation rule fires on `record`.
    pub(crate) fn validate(&self, obj: &ObjectDef, record: &Record) -> Result<(), SimError> {
        let Some(rule) = self.validation.get(&obj.name) else {
            return Ok(());
        };
        if rule.condition.as_ref().is_none_or(|c| matches(c, record)) {
            let fields = rule.field.iter().cloned().collect();
            return Err(SimError::validation(&rule.message, fields));
        }
        Ok(())
    }

    /// The duplicate rule of `obj`, if one is on.
    pub(crate) fn duplicate_rule(&self, obj: &ObjectDef) -> Option<&DuplicateRule> {
        self.duplicate.get(&obj.name)
    }
}

fn comparable(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl DuplicateRule {
    /// Whether `other` duplicates `record`: every match field set on `record` and equal.
    pub(crate) fn matches(&self, record: &Record, other: &Record) -> bool {
        self.fields.iter().all(|f| {
            let mine = comparable(record.get(f));
            mine.is_some() && mine == comparable(other.get(f))
        })
    }

    /// The `DUPLICATES_DETECTED` error naming the matches (`data_path` is `/services/data/vNN.0`).
    pub(crate) fn error(&self, object: &str, found: &[SalesforceId], data_path: &str) -> SimError {
        let records: Vec<Value> = found
            .iter()
            .map(|id| {
                json!({
                    "additionalInformation": [],
                    "fieldDiffs": [],
                    "matchConfidence": 100.0,
                    "record": {
                        "attributes": {"type": object, "url": format!("{data_path}/sobjects/{object}/{id}")},
                        "Id": id.as_str(),
                    },
                })
            })
            .collect();
        let result = json!({
            "allowSave": self.allow_save,
            "duplicateRule": self.name,
            "duplicateRuleEntityType": object,
            "errorMessage": self.message,
            "matchResults": [{
                "entityType": object,
                "errors": [],
                "matchEngine": "ExactMatchEngine",
                "matchRecords": records,
                "rule": self.match_rule,
                "size": found.len(),
                "success": true,
            }],
        });
        SimError::duplicates_detected(&self.message, result)
    }
}
