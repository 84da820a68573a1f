//! Records as the org stores them and the datetime spellings Salesforce reads and writes.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

/// A record: field name → JSON value, system fields included, nothing for null.
pub(crate) type Record = Map<String, Value>;

/// REST's datetime format (`2013-05-20T20:49:32.000+0000`).
pub(crate) fn rest_datetime(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses any datetime spelling Salesforce accepts or emits: the same reader the service uses,
/// which reads the REST form without parsing a format string at every value.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    crate::sync::pull::parse_datetime(s)
}

/// Parses a `YYYY-MM-DD` date (a datetime's date part is accepted too).
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

/// Whether a record is soft-deleted.
pub(crate) fn is_deleted(record: &Record) -> bool {
    record.get("IsDeleted") == Some(&Value::Bool(true))
}
