//! The org's setup, checked from what it says about itself: for each object sfsync syncs, what is
//! missing for sync to work (the marker field and its flags, the fields sfsync reads and writes,
//! the integration user's object permissions), and whether the org serves the configured API
//! version. Run on connect, by `sfsync doctor` and by `GET /api/v1/setup`. Activities are checked
//! on Task and Event, or on the custom activity object `[activities]` names, with its fields.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ActivityTarget;
use crate::domain::{ObjectType, OrgId};
use crate::salesforce::{Client, ErrorClass, ObjectDescribe, SalesforceError};
use crate::sync::pull::{self, PERSON, join};
use crate::telemetry::{ErrorSource, RecentErrors};

/// What the checks compare against, and the latest report of each org.
#[derive(Debug)]
pub struct Setup {
    api_version: String,
    needs: Vec<ObjectNeeds>,
    reports: RwLock<BTreeMap<OrgId, SetupReport>>,
    errors: std::sync::Arc<RecentErrors>,
}

impl Setup {
    /// Checks against `api_version` (`[salesforce] api_version`), `marker_field` (`[outbox]
    /// marker_field`) and where activities go (`[activities]`); what is missing is also listed
    /// in `errors`.
    pub fn new(
        api_version: impl Into<String>,
        marker_field: &str,
        activities: &ActivityTarget,
        errors: std::sync::Arc<RecentErrors>,
    ) -> Self {
        Self {
            api_version: api_version.into(),
            needs: needs(marker_field, activities),
            reports: RwLock::default(),
            errors,
        }
    }

    /// The latest report of `org`, when one has run.
    pub fn report(&self, org: &OrgId) -> Option<SetupReport> {
        self.reports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(org)
            .cloned()
    }

    /// Checks the org behind `client` now, keeps the report and logs what is missing.
    pub async fn run(&self, client: &Client) -> Result<SetupReport, SalesforceError> {
        let report = check(client, &self.api_version, &self.needs).await?;
        let org = client.org_id();
        if !report.api_version.served {
            tracing::warn!(org = %org, version = %report.api_version.configured, "the org does not serve the configured API version");
            let version = &report.api_version.configured;
            self.errors.record(
                org,
                ErrorSource::Setup,
                format_args!("the org does not serve API version {version}"),
            );
        }
        for object in report.objects.iter().filter(|o| !o.ok) {
            tracing::warn!(org = %org, object = %object.object, problems = %object.problems.join("; "), "salesforce setup incomplete");
            let problems = object.problems.join("; ");
            self.errors.record(
                org,
                ErrorSource::Setup,
                format_args!("{}: {problems}", object.object),
            );
        }
        if report.ok {
            tracing::info!(org = %org, "salesforce setup checked: nothing missing");
        }
        self.reports
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org.clone(), report.clone());
        Ok(report)
    }

    /// Runs [`Setup::run`] in the background, logging a failure to check.
    pub fn run_in_background(self: &std::sync::Arc<Self>, client: Client) {
        let setup = self.clone();
        tokio::spawn(async move {
            if let Err(e) = setup.run(&client).await {
                tracing::warn!(org = %client.org_id(), error = %e, "the salesforce setup could not be checked");
                setup.errors.record(
                    client.org_id(),
                    ErrorSource::Setup,
                    format_args!("the setup could not be checked: {e}"),
                );
            }
        });
    }
}

/// What one object needs from the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNeeds {
    /// The object's API name.
    pub object: String,
    /// Fields sfsync reads from it.
    pub reads: Vec<String>,
    /// Fields sfsync writes to it (create and update).
    pub writes: Vec<String>,
    /// Whether sfsync updates existing records of it (activities are only created).
    pub updates: bool,
    /// Its exactly-once marker field.
    pub marker: String,
}

fn owned(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| (*f).to_string()).collect()
}

/// Fields sfsync writes, per object: what `sync::push` puts in a payload.
const ACCOUNT_WRITES: &[&str] = &[
    "Name",
    "Website",
    "Industry",
    "AnnualRevenue",
    "NumberOfEmployees",
];
const CONTACT_WRITES: &[&str] = &join::<6>(&[&PERSON, &["AccountId"]]);
const LEAD_WRITES: &[&str] = &join::<6>(&[&PERSON, &["Company"]]);
const OPPORTUNITY_WRITES: &[&str] = &["Name", "StageName", "CloseDate", "Amount", "AccountId"];
const TASK_WRITES: &[&str] = &[
    "Subject",
    "Description",
    "WhoId",
    "WhatId",
    "Status",
    "ActivityDate",
    "TaskSubtype",
];
const EVENT_WRITES: &[&str] = &[
    "Subject",
    "Description",
    "WhoId",
    "WhatId",
    "StartDateTime",
    "EndDateTime",
];

/// Every object sfsync reads or writes, with what it needs: the four pulled objects, then Task
/// and Event or the custom activity object.
pub fn needs(marker_field: &str, activities: &ActivityTarget) -> Vec<ObjectNeeds> {
    let object = |object: &str, reads: &[&str], writes: &[&str], updates: bool| ObjectNeeds {
        object: object.to_string(),
        reads: owned(reads),
        writes: owned(writes),
        updates,
        marker: marker_field.to_string(),
    };
    let pulled =
        |o: ObjectType, writes: &[&str]| object(o.api_name(), pull::fields_for(o), writes, true);
    let mut out = vec![
        pulled(ObjectType::Account, ACCOUNT_WRITES),
        pulled(ObjectType::Contact, CONTACT_WRITES),
        pulled(ObjectType::Lead, LEAD_WRITES),
        pulled(ObjectType::Opportunity, OPPORTUNITY_WRITES),
    ];
    match activities {
        ActivityTarget::Standard => {
            out.push(object("Task", &["Id"], TASK_WRITES, false));
            out.push(object("Event", &["Id"], EVENT_WRITES, false));
        }
        ActivityTarget::Custom(c) => out.push(ObjectNeeds {
            object: c.object.clone(),
            reads: owned(&["Id"]),
            writes: c.written_fields(),
            updates: false,
            marker: c.marker.clone(),
        }),
    }
    out
}

/// The org's setup as last checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SetupReport {
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    /// Whether nothing is missing.
    pub ok: bool,
    /// The configured REST version and whether the org serves it.
    pub api_version: VersionCheck,
    /// One entry per object, in sync order.
    pub objects: Vec<ObjectCheck>,
}

impl SetupReport {
    /// The problems of `object` (empty when it is set up, or was not checked).
    pub fn problems_of(&self, object: &str) -> &[String] {
        self.objects
            .iter()
            .find(|o| o.object == object)
            .map_or(&[], |o| o.problems.as_slice())
    }
}

/// The REST version check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct VersionCheck {
    /// The version sfsync calls (`[salesforce] api_version`).
    pub configured: String,
    /// Whether the org serves it.
    pub served: bool,
    /// The newest version the org serves.
    pub latest: Option<String>,
}

/// One object's check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ObjectCheck {
    /// The object's API name.
    pub object: String,
    /// Whether nothing is missing.
    pub ok: bool,
    /// What is missing, each a sentence an admin can act on.
    pub problems: Vec<String>,
}

/// Checks the org behind `client`: its versions, then each object's describe.
pub async fn check(
    client: &Client,
    api_version: &str,
    needs: &[ObjectNeeds],
) -> Result<SetupReport, SalesforceError> {
    let versions = client.api_versions().await?;
    let api_version = VersionCheck {
        configured: api_version.to_string(),
        served: versions.iter().any(|v| v.version == api_version),
        latest: versions.last().map(|v| v.version.clone()),
    };
    let mut objects = Vec::new();
    for needs in needs {
        let problems = match client.describe(&needs.object).await {
            Ok(describe) => problems(&describe, needs),
            Err(e) if e.class() == ErrorClass::Permanent => vec![format!(
                "the integration user cannot see {}s ({e})",
                needs.object
            )],
            // An object the org lacks (a custom activity object not deployed) is not found.
            Err(e) if e.class() == ErrorClass::Gone => vec![format!(
                "the object {} does not exist or the integration user cannot see it ({e})",
                needs.object
            )],
            Err(e) => return Err(e),
        };
        objects.push(ObjectCheck {
            object: needs.object.clone(),
            ok: problems.is_empty(),
            problems,
        });
    }
    Ok(SetupReport {
        checked_at: Utc::now(),
        ok: api_version.served && objects.iter().all(|o| o.ok),
        api_version,
        objects,
    })
}

/// What `describe` lacks against `needs`.
pub fn problems(describe: &ObjectDescribe, needs: &ObjectNeeds) -> Vec<String> {
    let object = &needs.object;
    let marker_field = needs.marker.as_str();
    let mut out = Vec::new();
    if !describe.queryable {
        out.push(format!("the integration user cannot read {object}s"));
    }
    if !describe.createable {
        out.push(format!("the integration user cannot create {object}s"));
    }
    if needs.updates && !describe.updateable {
        out.push(format!("the integration user cannot edit {object}s"));
    }
    match describe.field(marker_field) {
        None => out.push(format!(
            "the marker field {marker_field} is missing (or hidden from the integration user)"
        )),
        Some(marker) => {
            if !marker.external_id {
                out.push(format!("{marker_field} is not marked External ID"));
            }
            if !marker.unique {
                out.push(format!("{marker_field} is not marked Unique"));
            }
            if !marker.createable || (needs.updates && !marker.updateable) {
                out.push(format!(
                    "the integration user cannot write {marker_field} (field-level security)"
                ));
            }
        }
    }
    for field in &needs.reads {
        if describe.field(field).is_none() {
            out.push(format!(
                "field {field} is missing or hidden from the integration user"
            ));
        }
    }
    for field in &needs.writes {
        match describe.field(field) {
            None if needs.reads.contains(field) => {}
            None => out.push(format!(
                "field {field} is missing or hidden from the integration user"
            )),
            Some(f) if !f.createable => out.push(format!(
                "the integration user cannot write {field} (field-level security)"
            )),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(json: serde_json::Value) -> ObjectDescribe {
        serde_json::from_value(json).expect("describe")
    }

    fn field(name: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "type": "string", "createable": true, "updateable": true})
    }

    fn contact_needs() -> ObjectNeeds {
        needs("Sfsync_Id__c", &ActivityTarget::Standard)
            .into_iter()
            .find(|n| n.object == "Contact")
            .expect("contact")
    }

    #[test]
    fn a_complete_object_has_no_problems() {
        let mut fields: Vec<serde_json::Value> = CONTACT_WRITES
            .iter()
            .chain(crate::sync::pull::fields_for(ObjectType::Contact))
            .map(|f| field(f))
            .collect();
        fields.push(
            serde_json::json!({"name": "Sfsync_Id__c", "type": "string", "externalId": true,
            "unique": true, "createable": true, "updateable": true}),
        );
        let d = describe(serde_json::json!({"name": "Contact", "createable": true,
            "updateable": true, "queryable": true, "fields": fields}));
        assert_eq!(problems(&d, &contact_needs()), Vec::<String>::new());
    }

    #[test]
    fn each_gap_is_named() {
        let fields = vec![
            field("Id"),
            serde_json::json!({"name": "Sfsync_Id__c", "externalId": false, "unique": false,
                "createable": false, "updateable": false}),
            serde_json::json!({"name": "Email", "createable": false}),
        ];
        let d = describe(serde_json::json!({"name": "Contact", "createable": false,
            "updateable": true, "queryable": true, "fields": fields}));
        let p = problems(&d, &contact_needs()).join("\n");
        for expected in [
            "cannot create Contacts",
            "Sfsync_Id__c is not marked External ID",
            "Sfsync_Id__c is not marked Unique",
            "cannot write Sfsync_Id__c",
            "field LastName is missing",
            "cannot write Email",
        ] {
            assert!(p.contains(expected), "{expected} not in:\n{p}");
        }
    }

    #[test]
    fn a_missing_marker_field_is_reported() {
        let d = describe(serde_json::json!({"name": "Contact", "createable": true,
            "updateable": true, "queryable": true, "fields": [field("Id")]}));
        let p = problems(&d, &contact_needs()).join("\n");
        assert!(
            p.contains("the marker field Sfsync_Id__c is missing"),
            "{p}"
        );
    }
}
