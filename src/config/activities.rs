//! `[activities]`: what an activity becomes in Salesforce. By default an email sent is a Task and
//! a meeting booked an Event; an org that keeps its activities in a custom object names it and
//! maps the activity's parts to its fields:
//!
//! ```toml
//! [activities]
//! object = "Sales_Activity__c"
//! [activities.fields]
//! subject = "Subject__c"
//! description = "Description__c"
//! kind = "Type__c"
//! occurred_at = "Occurred_At__c"
//! contact = "Contact__c"
//! company = "Account__c"
//! marker = "Sfsync_Id__c"
//! [activities.kinds]
//! email_sent = "Email"
//! meeting_booked = "Meeting"
//! ```

use serde::Deserialize;

use super::{ConfigError, invalid};

/// The value of `object` that keeps the standard Task and Event.
pub const STANDARD_OBJECTS: &str = "Task/Event";

/// `[activities]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitiesConfig {
    /// `Task/Event` (default: emails are Tasks, meetings Events), or the API name of a custom
    /// object (`…__c`) that holds both, its fields named in `fields`.
    #[serde(default = "standard_objects")]
    pub object: String,
    /// The custom object's fields, by what they hold.
    #[serde(default)]
    pub fields: ActivityFields,
    /// The values the custom object's `kind` field takes.
    #[serde(default)]
    pub kinds: ActivityKinds,
}

fn standard_objects() -> String {
    STANDARD_OBJECTS.into()
}

impl Default for ActivitiesConfig {
    fn default() -> Self {
        Self {
            object: standard_objects(),
            fields: ActivityFields::default(),
            kinds: ActivityKinds::default(),
        }
    }
}

/// `[activities.fields]`: a custom activity object's field for each part of an activity; only
/// `subject` is required, a part without a field is not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityFields {
    /// The subject line (required).
    pub subject: Option<String>,
    /// The body or description.
    pub description: Option<String>,
    /// What happened, as `[activities.kinds]` names it.
    pub kind: Option<String>,
    /// When it happened (a meeting: when it starts); a date/time field.
    pub occurred_at: Option<String>,
    /// A lookup to Contact (left empty when the person is a Lead).
    pub contact: Option<String>,
    /// A lookup to Account.
    pub company: Option<String>,
    /// The exactly-once marker field on the custom object (default: `[outbox] marker_field`).
    pub marker: Option<String>,
}

/// `[activities.kinds]`: the `kind` field's value for each kind of activity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityKinds {
    /// An email sent (default `Email`).
    #[serde(default = "email")]
    pub email_sent: String,
    /// A meeting booked (default `Meeting`).
    #[serde(default = "meeting")]
    pub meeting_booked: String,
}

fn email() -> String {
    "Email".into()
}
fn meeting() -> String {
    "Meeting".into()
}

impl Default for ActivityKinds {
    fn default() -> Self {
        Self {
            email_sent: email(),
            meeting_booked: meeting(),
        }
    }
}

/// Where activities go, resolved from `[activities]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ActivityTarget {
    /// Emails are Tasks, meetings Events.
    #[default]
    Standard,
    /// Both are records of one custom object.
    Custom(Box<CustomActivity>),
}

/// A custom activity object and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomActivity {
    /// The object's API name.
    pub object: String,
    /// Its fields.
    pub fields: ActivityFields,
    /// The `kind` field's values.
    pub kinds: ActivityKinds,
    /// Its marker field.
    pub marker: String,
}

impl CustomActivity {
    /// The fields sfsync writes on it, marker excluded.
    pub fn written_fields(&self) -> Vec<String> {
        let f = &self.fields;
        [
            &f.subject,
            &f.description,
            &f.kind,
            &f.occurred_at,
            &f.contact,
            &f.company,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// An API name: a letter, then letters, digits and underscores.
fn api_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ActivitiesConfig {
    /// Where activities go; a custom object's marker defaults to `marker_field`.
    pub fn target(&self, marker_field: &str) -> ActivityTarget {
        if self.object == STANDARD_OBJECTS {
            return ActivityTarget::Standard;
        }
        ActivityTarget::Custom(Box::new(CustomActivity {
            object: self.object.clone(),
            fields: self.fields.clone(),
            kinds: self.kinds.clone(),
            marker: self
                .fields
                .marker
                .clone()
                .unwrap_or_else(|| marker_field.to_string()),
        }))
    }

    /// Checks the section and names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.fields;
        let named = [
            ("subject", &f.subject),
            ("description", &f.description),
            ("kind", &f.kind),
            ("occurred_at", &f.occurred_at),
            ("contact", &f.contact),
            ("company", &f.company),
            ("marker", &f.marker),
        ];
        if self.object == STANDARD_OBJECTS {
            if let Some((key, _)) = named.iter().find(|(_, v)| v.is_some()) {
                return Err(invalid(
                    format!("activities.fields.{key}"),
                    "field mappings apply to a custom object only: set activities.object",
                ));
            }
            return Ok(());
        }
        if !(api_name(&self.object) && self.object.ends_with("__c")) {
            return Err(invalid(
                "activities.object",
                format!("must be {STANDARD_OBJECTS} or a custom object's API name ending in __c"),
            ));
        }
        if f.subject.is_none() {
            return Err(invalid(
                "activities.fields.subject",
                "a custom activity object needs the field that holds the subject",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (key, value) in named {
            let Some(v) = value else { continue };
            if !api_name(v) {
                return Err(invalid(
                    format!("activities.fields.{key}"),
                    "must be a field's API name",
                ));
            }
            if key != "marker" && !seen.insert(v.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("activities.fields.{key}"),
                    "names a field already mapped",
                ));
            }
        }
        for (key, value) in [
            ("email_sent", &self.kinds.email_sent),
            ("meeting_booked", &self.kinds.meeting_booked),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(
                    format!("activities.kinds.{key}"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:8080\"\napi_token = \"0123456789abcdef0123\"\n[store]\npath = \"./data\"\n";

    fn load(section: &str) -> Result<ActivitiesConfig, String> {
        Config::from_toml(&format!("{BASE}[activities]\n{section}"))
            .map(|c| c.activities)
            .map_err(|e| e.to_string())
    }

    fn custom(fields: &str) -> Result<ActivitiesConfig, String> {
        load(&format!(
            "object = \"Sales_Activity__c\"\n[activities.fields]\n{fields}"
        ))
    }

    #[test]
    fn task_and_event_are_the_default() {
        let c = Config::from_toml(BASE).expect("valid").activities;
        assert_eq!(c, ActivitiesConfig::default());
        assert_eq!(c.target("Sfsync_Id__c"), ActivityTarget::Standard);
    }

    #[test]
    fn a_custom_object_maps_its_fields_and_takes_the_marker_field_by_default() {
        let c = custom("subject = \"Subject__c\"\ncontact = \"Contact__c\"").expect("valid");
        let ActivityTarget::Custom(t) = c.target("Sfsync_Id__c") else {
            panic!("custom")
        };
        assert_eq!(t.object, "Sales_Activity__c");
        assert_eq!(t.marker, "Sfsync_Id__c");
        assert_eq!(t.written_fields(), ["Subject__c", "Contact__c"]);
        assert_eq!(t.kinds.email_sent, "Email");
    }

    #[test]
    fn a_bad_mapping_is_named_by_its_key() {
        for (fields, key) in [
            ("contact = \"Contact__c\"", "activities.fields.subject"),
            ("subject = \"Subject c\"", "activities.fields.subject"),
            (
                "subject = \"Subject__c\"\ndescription = \"subject__c\"",
                "activities.fields.description",
            ),
        ] {
            let e = custom(fields).expect_err(fields);
            assert!(e.contains(key), "{fields}: {e}");
        }
        let e = load("[activities.fields]\nsubject = \"Subject__c\"").expect_err("no object");
        assert!(e.contains("activities.fields.subject"), "{e}");
        let e = load("object = \"Activity\"").expect_err("not custom");
        assert!(e.contains("activities.object"), "{e}");
    }
}
