//! What is read of a pulled record: the fields per object, and their values as sfsync's types.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{ObjectType, SalesforceId};
use crate::salesforce::{Record, RecordExt as _};

/// How a Contact and a Lead both name a person: what is read of them and what sfsync writes.
pub(crate) const PERSON: [&str; 5] = ["FirstName", "LastName", "Email", "Title", "Phone"];

/// The lists `parts` joined into one of `N` fields; `N` must be their total length (a wrong
/// one fails the build where the constant is defined).
pub(crate) const fn join<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut at, mut part) = (0, 0);
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            out[at] = parts[part][i];
            (at, i) = (at + 1, i + 1);
        }
        part += 1;
    }
    assert!(at == N, "the parts do not add up to the length asked for");
    out
}

const CONTACT_READS: [&str; 8] = join(&[&["Id"], &PERSON, &["AccountId", "SystemModstamp"]]);
const LEAD_READS: [&str; 12] = join(&[
    &["Id"],
    &PERSON,
    &["Company", "Website", "IsConverted", "ConvertedAccountId"],
    &["ConvertedContactId", "SystemModstamp"],
]);

/// Fields read for each pulled object.
pub fn fields_for(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Account => &[
            "Id",
            "Name",
            "Website",
            "Industry",
            "AnnualRevenue",
            "NumberOfEmployees",
            "SystemModstamp",
        ],
        ObjectType::Contact => &CONTACT_READS,
        ObjectType::Lead => &LEAD_READS,
        ObjectType::Opportunity => &[
            "Id",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "AccountId",
            "IsClosed",
            "IsWon",
            "SystemModstamp",
        ],
    }
}

/// Whether the object has `MasterRecordId` (merges exist for it).
pub fn can_merge(object: ObjectType) -> bool {
    !matches!(object, ObjectType::Opportunity)
}

/// Parses a Salesforce datetime (`2013-05-20T20:49:32.000+0000` or RFC 3339).
///
/// Every applied record's stamps go through here, so the REST form (an offset without a colon)
/// is read by the fixed RFC 3339 reader with the colon put in, not by a format string parsed at
/// every call; anything else falls back to that format string.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let utc = |d: DateTime<chrono::FixedOffset>| d.with_timezone(&Utc);
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(utc(d));
    }
    let colonless = s
        .len()
        .checked_sub(5)
        .and_then(|at| s.split_at_checked(at))
        .filter(|(_, offset)| {
            offset.starts_with(['+', '-']) && offset[1..].bytes().all(|b| b.is_ascii_digit())
        });
    if let Some((head, offset)) = colonless {
        let fixed = format!("{head}{}:{}", &offset[..3], &offset[3..]);
        if let Ok(d) = DateTime::parse_from_rfc3339(&fixed) {
            return Some(utc(d));
        }
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(utc)
}

/// A record's `SystemModstamp` in milliseconds.
pub fn stamp_ms(record: &Record) -> Option<i64> {
    record
        .str_field("SystemModstamp")
        .and_then(parse_datetime)
        .map(|d| d.timestamp_millis())
}

pub(super) fn str_of(record: &Record, field: &str) -> Option<String> {
    record
        .str_field(field)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(super) fn f64_of(record: &Record, field: &str) -> Option<f64> {
    record.get(field).and_then(Value::as_f64)
}

pub(super) fn i64_of(record: &Record, field: &str) -> Option<i64> {
    record
        .get(field)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64)))
}

pub(super) fn id_of(record: &Record, field: &str) -> Option<SalesforceId> {
    record
        .str_field(field)
        .and_then(|s| SalesforceId::parse(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_and_outbound_datetimes_parse() {
        assert_eq!(
            parse_datetime("2013-05-20T20:49:32.000+0000").map(|d| d.timestamp()),
            Some(1_369_082_972)
        );
        assert_eq!(
            parse_datetime("2013-05-20T20:49:32.000Z").map(|d| d.timestamp()),
            Some(1_369_082_972)
        );
        assert_eq!(
            parse_datetime("2013-05-20T22:49:32.250+0200").map(|d| d.timestamp_millis()),
            Some(1_369_082_972_250)
        );
        assert_eq!(
            parse_datetime("2013-05-20T20:49:32-0130").map(|d| d.timestamp()),
            Some(1_369_082_972 + 5_400)
        );
        for bad in [
            "",
            "+0000",
            "2013-05-20T20:49:32.000+00x0",
            "2013-05-20T20:49:32.000é000",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad:?}");
        }
    }
}
