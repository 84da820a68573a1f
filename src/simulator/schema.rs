//! What the simulated org knows about its objects and fields: types, lengths, which fields are
//! required, read-only, unique or external ids, picklist values, and the field-level security of
//! each user. Standard objects are defined in `standard.rs`; custom objects and fields are added
//! at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::SimError;
use crate::domain::SalesforceId;

/// A field's type, spelled as sObject describe spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// The record id.
    Id,
    /// A lookup to another record.
    Reference,
    /// Text up to `length` characters.
    String,
    /// Long text.
    Textarea,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// One value of a list.
    Picklist,
    /// A checkbox.
    Boolean,
    /// An integer.
    Int,
    /// A number.
    Double,
    /// An amount of money.
    Currency,
    /// A percentage.
    Percent,
    /// `YYYY-MM-DD`.
    Date,
    /// A date and time.
    Datetime,
}

/// How a field's value is typed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Free text, picklists and ids.
    Text,
    /// `true`/`false`.
    Boolean,
    /// An integer (`NumberOfEmployees`).
    Integer,
    /// A double, currency or percent (`Amount`).
    Double,
    /// `YYYY-MM-DD`.
    Date,
    /// `2013-05-20T20:49:32.000+0000` in REST.
    DateTime,
}

impl FieldType {
    /// The JSON kind of the values of this type.
    pub(crate) fn kind(self) -> Kind {
        match self {
            FieldType::Boolean => Kind::Boolean,
            FieldType::Int => Kind::Integer,
            FieldType::Double | FieldType::Currency | FieldType::Percent => Kind::Double,
            FieldType::Date => Kind::Date,
            FieldType::Datetime => Kind::DateTime,
            _ => Kind::Text,
        }
    }

    /// The `type` of describe.
    pub(crate) fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
        }
    }

    /// The `soapType` of describe.
    pub(crate) fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    fn default_length(self) -> u32 {
        match self {
            FieldType::Id | FieldType::Reference => 18,
            FieldType::Textarea => 32000,
            FieldType::Email => 80,
            FieldType::Phone => 40,
            FieldType::String | FieldType::Url | FieldType::Picklist => 255,
            _ => 0,
        }
    }
}

/// One value of a picklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PicklistEntry {
    pub(crate) value: String,
    pub(crate) active: bool,
    pub(crate) default: bool,
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldDef {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) ftype: FieldType,
    pub(crate) length: u32,
    pub(crate) nillable: bool,
    pub(crate) createable: bool,
    pub(crate) updateable: bool,
    pub(crate) defaulted_on_create: bool,
    pub(crate) external_id: bool,
    pub(crate) unique: bool,
    pub(crate) custom: bool,
    /// The object's name field (`Name`).
    pub(crate) name_field: bool,
    /// Numbered by the org on create.
    pub(crate) auto_number: bool,
    pub(crate) picklist: Vec<PicklistEntry>,
    /// Only listed picklist values are accepted.
    pub(crate) restricted: bool,
    pub(crate) reference_to: Vec<String>,
}

impl FieldDef {
    /// A nillable, writable field labelled from its name.
    pub(crate) fn new(name: &str, ftype: FieldType) -> Self {
        Self {
            name: name.to_string(),
            label: label_of(name),
            ftype,
            length: ftype.default_length(),
            nillable: true,
            createable: true,
            updateable: true,
            defaulted_on_create: false,
            external_id: false,
            unique: false,
            custom: name.ends_with("__c"),
            name_field: false,
            auto_number: false,
            picklist: Vec::new(),
            restricted: false,
            reference_to: Vec::new(),
        }
    }

    /// Sets the label.
    pub(crate) fn label(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    /// A create must carry it (or a default fills it).
    pub(crate) fn required(mut self) -> Self {
        self.nillable = false;
        self
    }

    /// Computed by the org: no caller writes it.
    pub(crate) fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    /// Writable on create only.
    pub(crate) fn create_only(mut self) -> Self {
        self.updateable = false;
        self
    }

    /// The org fills it when a create leaves it out.
    pub(crate) fn defaulted(mut self) -> Self {
        self.defaulted_on_create = true;
        self
    }

    /// Picklist values, the first `default` one being the default.
    pub(crate) fn values(mut self, values: &[&str], default: Option<&str>) -> Self {
        self.picklist = values
            .iter()
            .map(|v| PicklistEntry {
                value: (*v).to_string(),
                active: true,
                default: Some(*v) == default,
            })
            .collect();
        if default.is_some() {
            self.defaulted_on_create = true;
        }
        self
    }

    /// Only listed values are accepted.
    pub(crate) fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }

    /// A lookup to these objects.
    pub(crate) fn refs(mut self, to: &[&str]) -> Self {
        self.reference_to = to.iter().map(|t| (*t).to_string()).collect();
        self
    }

    /// An External ID (usable for upserts and reads by external id).
    pub(crate) fn external_id(mut self) -> Self {
        self.external_id = true;
        self
    }

    /// No two records may hold the same value (compared case-insensitively).
    pub(crate) fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The object's name field.
    pub(crate) fn name_field(mut self) -> Self {
        self.name_field = true;
        self
    }

    /// The picklist's default value, if it has one.
    pub(crate) fn default_value(&self) -> Option<&str> {
        self.picklist
            .iter()
            .find(|p| p.default)
            .map(|p| p.value.as_str())
    }

    /// Whether a value must be present once a save's defaults are applied.
    pub(crate) fn must_have_value(&self) -> bool {
        !self.nillable
            && (self.createable || self.updateable)
            && self.ftype != FieldType::Boolean
            && self.name != "OwnerId"
    }
}

/// A label from an API name: `BillingCity` → `Billing City`, `AccountId` → `Account ID`.
fn label_of(name: &str) -> String {
    let base = name.strip_suffix("__c").unwrap_or(name).replace('_', " ");
    let mut out = String::new();
    let chars: Vec<char> = base.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let after_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        if c.is_ascii_uppercase() && after_lower {
            out.push(' ');
        }
        out.push(*c);
    }
    match out.strip_suffix(" Id") {
        Some(stem) if !stem.is_empty() => format!("{stem} ID"),
        _ => out,
    }
}

/// One object of the org.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectDef {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) label_plural: String,
    pub(crate) key_prefix: String,
    pub(crate) custom: bool,
    pub(crate) createable: bool,
    pub(crate) updateable: bool,
    pub(crate) deletable: bool,
    pub(crate) queryable: bool,
    pub(crate) mergeable: bool,
    pub(crate) fields: Vec<FieldDef>,
}

impl ObjectDef {
    /// The field named `name` (case-insensitive, as Salesforce resolves names).
    pub(crate) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Whether the object has this field.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }
}

/// What one user may do with one field (field-level security); everything by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldAccess {
    /// The field is visible (in describe, queries, reads).
    pub readable: bool,
    /// Creates may set it.
    pub createable: bool,
    /// Updates may set it.
    pub updateable: bool,
}

impl Default for FieldAccess {
    fn default() -> Self {
        Self {
            readable: true,
            createable: true,
            updateable: true,
        }
    }
}

/// The org's objects and the field-level security of its users.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    objects: Vec<Arc<ObjectDef>>,
    /// Restrictions by (user, object, field), names in lowercase.
    security: BTreeMap<(SalesforceId, String, String), FieldAccess>,
}

impl Schema {
    /// A schema of these objects.
    pub(crate) fn new(objects: Vec<ObjectDef>) -> Self {
        Self {
            objects: objects.into_iter().map(Arc::new).collect(),
            security: BTreeMap::new(),
        }
    }

    /// The object named `name` (case-insensitive).
    pub(crate) fn object(&self, name: &str) -> Option<Arc<ObjectDef>> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The object an id's key prefix names.
    pub(crate) fn object_by_prefix(&self, prefix: &str) -> Option<Arc<ObjectDef>> {
        self.objects
            .iter()
            .find(|o| o.key_prefix == prefix)
            .cloned()
    }

    /// Every object, standard ones first, in a stable order.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &Arc<ObjectDef>> {
        self.objects.iter()
    }

    /// Adds an object; its name must be new.
    pub(crate) fn add_object(&mut self, def: ObjectDef) -> Result<(), SimError> {
        if self.object(&def.name).is_some() {
            return Err(SimError::invalid_operation(format!(
                "an object named {} exists",
                def.name
            )));
        }
        self.objects.push(Arc::new(def));
        Ok(())
    }

    /// The next free custom-object key prefix (`a01`, `a02`, …).
    pub(crate) fn next_custom_prefix(&self) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let custom = self.objects.iter().filter(|o| o.custom).count() + 1;
        format!("a0{}", DIGITS[custom % DIGITS.len()] as char)
    }

    fn object_mut(&mut self, name: &str) -> Result<&mut ObjectDef, SimError> {
        self.objects
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
            .map(Arc::make_mut)
            .ok_or_else(SimError::not_found)
    }

    /// Adds a field to an object; its name must be new there.
    pub(crate) fn add_field(&mut self, object: &str, def: FieldDef) -> Result<(), SimError> {
        let obj = self.object_mut(object)?;
        if obj.has(&def.name) {
            return Err(SimError::invalid_operation(format!(
                "{} already has a field {}",
                obj.name, def.name
            )));
        }
        obj.fields.push(def);
        Ok(())
    }

    /// Removes a custom field from an object.
    pub(crate) fn remove_field(&mut self, object: &str, field: &str) -> Result<(), SimError> {
        let obj = self.object_mut(object)?;
        let before = obj.fields.len();
        obj.fields
            .retain(|f| !(f.custom && f.name.eq_ignore_ascii_case(field)));
        if obj.fields.len() == before {
            return Err(SimError::invalid_field(&obj.name, field));
        }
        Ok(())
    }

    /// Sets what `user` may do with a field.
    pub(crate) fn set_access(
        &mut self,
        user: &SalesforceId,
        object: &str,
        field: &str,
        access: FieldAccess,
    ) -> Result<(), SimError> {
        let obj = self.object(object).ok_or_else(SimError::not_found)?;
        let def = obj
            .field(field)
            .ok_or_else(|| SimError::invalid_field(&obj.name, field))?;
        let key = (
            user.clone(),
            obj.name.to_ascii_lowercase(),
            def.name.to_ascii_lowercase(),
        );
        self.security.insert(key, access);
        Ok(())
    }

    /// What `user` may do with `field` of `obj`: the field's own rules narrowed by security.
    pub(crate) fn access(
        &self,
        user: &SalesforceId,
        obj: &ObjectDef,
        field: &FieldDef,
    ) -> FieldAccess {
        let key = (
            user.clone(),
            obj.name.to_ascii_lowercase(),
            field.name.to_ascii_lowercase(),
        );
        let granted = self.security.get(&key).copied().unwrap_or_default();
        FieldAccess {
            readable: granted.readable,
            createable: granted.readable && granted.createable && field.createable,
            updateable: granted.readable && granted.updateable && field.updateable,
        }
    }

    /// The field `name` of `obj` if `user` can see it.
    pub(crate) fn visible_field<'a>(
        &self,
        user: &SalesforceId,
        obj: &'a ObjectDef,
        name: &str,
    ) -> Option<&'a FieldDef> {
        obj.field(name)
            .filter(|f| self.access(user, obj, f).readable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_api_names() {
        assert_eq!(label_of("BillingCity"), "Billing City");
        assert_eq!(label_of("AccountId"), "Account ID");
        assert_eq!(label_of("Sfsync_Id__c"), "Sfsync ID");
        assert_eq!(label_of("Name"), "Name");
    }
}
