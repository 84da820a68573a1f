//! Custom fields and custom objects as an admin defines them in Setup: what a test or the control
//! surface asks for ([`FieldSpec`], [`CustomObjectSpec`]) and the schema entries they become.

use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::schema::{FieldDef, FieldType, ObjectDef};
use super::standard::system_fields;

/// A custom field to add to an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// The API name; it must end in `__c`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// The label (derived from the name when absent).
    #[serde(default)]
    pub label: Option<String>,
    /// The length of text fields (255 when absent).
    #[serde(default)]
    pub length: Option<u32>,
    /// An External ID: usable for upserts and reads by external id.
    #[serde(default)]
    pub external_id: bool,
    /// No two records may hold the same value.
    #[serde(default)]
    pub unique: bool,
    /// Every save must give it a value.
    #[serde(default)]
    pub required: bool,
    /// The values of a picklist.
    #[serde(default)]
    pub picklist: Vec<String>,
    /// The objects a reference (lookup) points to.
    #[serde(default)]
    pub reference_to: Vec<String>,
}

impl FieldSpec {
    /// A field of this name and type, optional, not an external id.
    pub fn new(name: &str, field_type: FieldType) -> Self {
        Self {
            name: name.to_string(),
            field_type,
            label: None,
            length: None,
            external_id: false,
            unique: false,
            required: false,
            picklist: Vec::new(),
            reference_to: Vec::new(),
        }
    }

    /// A Text(255) field.
    pub fn text(name: &str) -> Self {
        Self::new(name, FieldType::String)
    }

    /// A Text(255) External ID, Unique: the exactly-once marker's shape.
    pub fn marker(name: &str) -> Self {
        Self::text(name).external_id().unique()
    }

    /// Makes it an External ID.
    pub fn external_id(mut self) -> Self {
        self.external_id = true;
        self
    }

    /// Makes it unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// A picklist of these values.
    pub fn picklist(name: &str, values: &[&str]) -> Self {
        let mut spec = Self::new(name, FieldType::Picklist);
        spec.picklist = values.iter().map(|v| (*v).to_string()).collect();
        spec
    }

    /// A lookup to `object`.
    pub fn lookup(name: &str, object: &str) -> Self {
        let mut spec = Self::new(name, FieldType::Reference);
        spec.reference_to = vec![object.to_string()];
        spec
    }
}

/// A custom object to add to the org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomObjectSpec {
    /// The API name; it must end in `__c`.
    pub name: String,
    /// The label (derived from the name when absent).
    #[serde(default)]
    pub label: Option<String>,
    /// The plural label (the label plus `s` when absent).
    #[serde(default)]
    pub label_plural: Option<String>,
    /// The `Name` field is an auto-number the org fills (otherwise a required text field).
    #[serde(default = "yes")]
    pub auto_number_name: bool,
    /// Its custom fields.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

fn yes() -> bool {
    true
}

impl CustomObjectSpec {
    /// A custom activity object, `Sales_Activity__c`: subject, description, type, the contact
    /// and account it concerns, when it happened and, given a name, the exactly-once marker.
    pub fn sales_activity(marker: Option<&str>) -> Self {
        let mut subject = FieldSpec::text("Subject__c");
        subject.required = true;
        let mut fields = vec![
            subject,
            FieldSpec::new("Description__c", FieldType::Textarea),
            FieldSpec::picklist("Type__c", &["Call", "Email", "Meeting", "Other"]),
            FieldSpec::lookup("Contact__c", "Contact"),
            FieldSpec::lookup("Account__c", "Account"),
            FieldSpec::new("Occurred_At__c", FieldType::Datetime),
        ];
        if let Some(marker) = marker {
            fields.push(FieldSpec::marker(marker));
        }
        Self {
            name: "Sales_Activity__c".into(),
            label: Some("Sales Activity".into()),
            label_plural: Some("Sales Activities".into()),
            auto_number_name: true,
            fields,
        }
    }
}

fn custom_name(name: &str) -> Result<(), SimError> {
    let ok = name.len() > 3
        && name.ends_with("__c")
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SimError::invalid_operation(format!(
            "{name} is not a custom API name (letters, digits and _, ending in __c)"
        )))
    }
}

/// The schema entry of a custom field.
pub(crate) fn field_def(spec: &FieldSpec) -> Result<FieldDef, SimError> {
    custom_name(&spec.name)?;
    let mut def = FieldDef::new(&spec.name, spec.field_type);
    if let Some(label) = &spec.label {
        def = def.label(label);
    }
    if let Some(length) = spec.length {
        def.length = length;
    }
    match spec.field_type {
        FieldType::Id => {
            return Err(SimError::invalid_operation(
                "a custom field cannot be an id",
            ));
        }
        FieldType::Picklist if spec.picklist.is_empty() => {
            return Err(SimError::invalid_operation("a picklist needs values"));
        }
        FieldType::Reference if spec.reference_to.is_empty() => {
            return Err(SimError::invalid_operation("a lookup needs reference_to"));
        }
        _ => {}
    }
    let values: Vec<&str> = spec.picklist.iter().map(String::as_str).collect();
    def = def.values(&values, None);
    def.reference_to = spec.reference_to.clone();
    def.external_id = spec.external_id;
    def.unique = spec.unique;
    def.nillable = !spec.required;
    Ok(def)
}

/// The schema entry of a custom object with key prefix `prefix`.
pub(crate) fn object_def(spec: &CustomObjectSpec, prefix: String) -> Result<ObjectDef, SimError> {
    custom_name(&spec.name)?;
    let label = spec
        .label
        .clone()
        .unwrap_or_else(|| spec.name.trim_end_matches("__c").replace('_', " "));
    let mut fields = system_fields(&label, true);
    let name = FieldDef::new("Name", FieldType::String)
        .label(&format!("{label} Name"))
        .name_field();
    fields.push(if spec.auto_number_name {
        let mut n = name.read_only().defaulted().required();
        n.auto_number = true;
        n.length = 30;
        n
    } else {
        let mut n = name.required();
        n.length = 80;
        n
    });
    for f in &spec.fields {
        fields.push(field_def(f)?);
    }
    Ok(ObjectDef {
        name: spec.name.clone(),
        label_plural: spec
            .label_plural
            .clone()
            .unwrap_or_else(|| format!("{label}s")),
        label,
        key_prefix: prefix,
        custom: true,
        createable: true,
        updateable: true,
        deletable: true,
        queryable: true,
        mergeable: false,
        fields,
    })
}
