//! The metadata answers: describeGlobal's object list and sObject Describe, both as one user sees
//! the org (field-level security narrows `createable`/`updateable` and hides unreadable fields).

use serde_json::{Value, json};

use super::schema::{FieldDef, FieldType, ObjectDef, Schema};
use crate::domain::SalesforceId;

/// The object URLs of describe and describeGlobal.
fn urls(data_path: &str, obj: &ObjectDef) -> Value {
    let base = format!("{data_path}/sobjects/{}", obj.name);
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
        "listviews": format!("{base}/listviews"),
    })
}

/// One object in describeGlobal's `sobjects`.
pub(crate) fn global_entry(data_path: &str, obj: &ObjectDef) -> Value {
    json!({
        "activateable": false,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": false,
        "deletable": obj.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": !obj.custom && obj.createable,
        "hasSubtypes": false,
        "isSubtype": false,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": obj.createable,
        "mergeable": obj.mergeable,
        "mruEnabled": obj.createable,
        "name": obj.name,
        "queryable": obj.queryable,
        "replicateable": true,
        "retrieveable": true,
        "searchable": obj.createable,
        "triggerable": obj.createable,
        "undeletable": obj.deletable,
        "updateable": obj.updateable,
        "urls": urls(data_path, obj),
    })
}

/// describeGlobal: the encoding, the batch size and every object.
pub(crate) fn global(data_path: &str, schema: &Schema) -> Value {
    let sobjects: Vec<Value> = schema
        .objects()
        .map(|o| global_entry(data_path, o))
        .collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
}

fn picklist_json(values: &[(String, bool, bool)]) -> Value {
    let entries: Vec<Value> = values
        .iter()
        .map(|(v, active, default)| {
            json!({"active": active, "defaultValue": default, "label": v, "validFor": null, "value": v})
        })
        .collect();
    json!(entries)
}

/// One field of sObject Describe; `values` replaces the field's own picklist when given
/// (`StageName` lists the org's stages).
fn field_json(
    field: &FieldDef,
    createable: bool,
    updateable: bool,
    values: Option<&[(String, bool, bool)]>,
) -> Value {
    let own: Vec<(String, bool, bool)> = field
        .picklist
        .iter()
        .map(|p| (p.value.clone(), p.active, p.default))
        .collect();
    let t = field.ftype;
    let text = matches!(t.kind(), super::schema::Kind::Text);
    let relationship = (t == FieldType::Reference)
        .then(|| {
            field
                .name
                .strip_suffix("Id")
                .unwrap_or(&field.name)
                .to_string()
        })
        .map(|r| match r.strip_suffix("__c") {
            Some(stem) => format!("{stem}__r"),
            None => r,
        });
    json!({
        "aggregatable": t != FieldType::Textarea,
        "autoNumber": field.auto_number,
        "byteLength": if text { field.length * 3 } else { 0 },
        "calculated": false,
        "caseSensitive": false,
        "createable": createable,
        "custom": field.custom,
        "defaultValue": null,
        "defaultedOnCreate": field.defaulted_on_create,
        "dependentPicklist": false,
        "digits": if t == FieldType::Int { 9 } else { 0 },
        "externalId": field.external_id,
        "filterable": t != FieldType::Textarea,
        "groupable": text && t != FieldType::Textarea,
        "idLookup": t == FieldType::Id || field.external_id,
        "label": field.label,
        "length": if text { field.length } else { 0 },
        "name": field.name,
        "nameField": field.name_field,
        "nillable": field.nillable,
        "picklistValues": picklist_json(values.unwrap_or(&own)),
        "precision": if matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent) { 18 } else { 0 },
        "referenceTo": field.reference_to,
        "relationshipName": relationship,
        "restrictedPicklist": field.restricted,
        "scale": if matches!(t, FieldType::Currency | FieldType::Double) { 2 } else { 0 },
        "soapType": t.soap_type(),
        "sortable": t != FieldType::Textarea,
        "type": t.describe_name(),
        "unique": field.unique,
        "updateable": updateable,
    })
}

/// sObject Describe of `obj` as `user` sees it; `stages` are the stage picklist values
/// (value, active, default).
pub(crate) fn describe(
    data_path: &str,
    schema: &Schema,
    user: &SalesforceId,
    obj: &ObjectDef,
    stages: &[(String, bool, bool)],
) -> Value {
    let fields: Vec<Value> = obj
        .fields
        .iter()
        .filter_map(|f| {
            let access = schema.access(user, obj, f);
            let values = (obj.name == "Opportunity" && f.name == "StageName").then_some(stages);
            access
                .readable
                .then(|| field_json(f, access.createable, access.updateable, values))
        })
        .collect();
    let mut out = global_entry(data_path, obj);
    let extra = json!({
        "actionOverrides": [],
        "childRelationships": [],
        "compactLayoutable": obj.createable,
        "fields": fields,
        "listviewable": obj.createable,
        "lookupLayoutable": obj.createable,
        "namedLayoutInfos": [],
        "networkScopeFieldName": null,
        "recordTypeInfos": [],
        "searchLayoutable": obj.createable,
        "supportedScopes": [
            {"label": format!("All {}", obj.label_plural.to_lowercase()), "name": "everything"},
            {"label": format!("My {}", obj.label_plural.to_lowercase()), "name": "mine"},
        ],
    });
    if let (Some(out), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
        out.extend(extra.clone());
    }
    out
}
