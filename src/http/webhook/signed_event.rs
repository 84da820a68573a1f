//! Signed JSON change events: the body shapes accepted after the Standard Webhooks signature has
//! been verified.
//!
//! Two shapes are accepted:
//!
//! 1. sfsync's documented envelope, for Apex triggers and Flow HTTP callouts:
//!    ```json
//!    {"org_id": "00D7F00000107XsUAI", "object": "Contact", "change_type": "UPDATE",
//!     "record_ids": ["0031I0000081tbPQAQ"], "system_modstamp": "2024-05-01T10:00:00.000Z"}
//!    ```
//!    `change_type` is one of `CREATE`, `UPDATE`, `DELETE`, `UNDELETE` (default `UPDATE`);
//!    `system_modstamp` is optional.
//! 2. A Change Data Capture event as a relay forwards it: an object holding `ChangeEventHeader`,
//!    either at the top level, under `payload`, or under `data.payload` (the CometD envelope).
//!    `commitTimestamp` stands in for `SystemModstamp`; `GAP_*` events re-read the records;
//!    wildcard record ids (`001*`) and `GAP_OVERFLOW` request a full re-read of the object.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

/// Why a signed event body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventParseError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("invalid event body: {0}")]
    Json(String),
    /// A field has a bad value.
    #[error("invalid {field}: {reason}")]
    Field {
        /// The JSON field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedEvent {
    /// The org the body names (the envelope shape); CDC bodies name none.
    pub org_id: Option<OrgId>,
    /// The object type as sent.
    pub object_type: String,
    /// Notifications for sfsync's object types (empty when the type is ignored).
    pub notifications: Vec<Notification>,
    /// Whether every record of the object must be re-read.
    pub resync: bool,
    /// The event reports sfsync's own write (a Change Data Capture `changeOrigin` with
    /// `client=sfsync`): acknowledged, nothing to pull.
    pub own_write: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    org_id: String,
    object: String,
    #[serde(default)]
    change_type: Option<String>,
    record_ids: Vec<String>,
    #[serde(default)]
    system_modstamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeEventHeader {
    entity_name: String,
    record_ids: Vec<String>,
    change_type: String,
    #[serde(default)]
    commit_timestamp: Option<i64>,
    #[serde(default)]
    change_origin: Option<String>,
}

/// Whether a Change Data Capture `changeOrigin` names sfsync's own API client: sfsync tags its
/// writes with `Sforce-Call-Options: client=sfsync`, and Salesforce reports that tag back as
/// `…;client=sfsync`, so the event is the echo of sfsync's own write and needs no pull.
fn is_own_write(origin: &str) -> bool {
    origin
        .split(';')
        .any(|part| part.trim() == crate::salesforce::CALL_OPTIONS)
}

fn field(field: &'static str, reason: impl Into<String>) -> EventParseError {
    EventParseError::Field {
        field,
        reason: reason.into(),
    }
}

fn change_type(s: &str) -> Option<(ChangeType, bool)> {
    Some(match s {
        "CREATE" => (ChangeType::Create, false),
        "UPDATE" => (ChangeType::Update, false),
        "DELETE" => (ChangeType::Delete, false),
        "UNDELETE" => (ChangeType::Undelete, false),
        "GAP_CREATE" | "GAP_UPDATE" | "GAP_DELETE" | "GAP_UNDELETE" => (ChangeType::Gap, false),
        "GAP_OVERFLOW" => (ChangeType::Gap, true),
        _ => return None,
    })
}

fn build(
    org_id: Option<OrgId>,
    object_type: String,
    ids: &[String],
    change: ChangeType,
    mut resync: bool,
    stamp: Option<DateTime<Utc>>,
    ids_field: &'static str,
) -> Result<SignedEvent, EventParseError> {
    let object = ObjectType::from_api_name(&object_type);
    let mut notifications = Vec::with_capacity(ids.len());
    for raw in ids {
        if raw.ends_with('*') {
            resync = true;
            continue;
        }
        let record_id = SalesforceId::parse(raw).map_err(|e| field(ids_field, e.to_string()))?;
        if object.is_some() && record_id.object_type() != Some(object_type.as_str()) {
            return Err(field(
                ids_field,
                format!(
                    "the key prefix {} is not a {object_type}'s",
                    record_id.key_prefix()
                ),
            ));
        }
        if let Some(object) = object {
            notifications.push(Notification {
                object,
                record_id,
                change,
                system_modstamp: stamp,
                modified_by: None,
            });
        }
    }
    if ids.is_empty() && !resync {
        return Err(field(ids_field, "no record ids"));
    }
    Ok(SignedEvent {
        org_id,
        object_type,
        notifications,
        resync: resync && object.is_some(),
        own_write: false,
    })
}

fn find_header(v: &Value) -> Option<&Value> {
    v.get("ChangeEventHeader")
        .or_else(|| v.get("payload")?.get("ChangeEventHeader"))
        .or_else(|| v.get("data")?.get("payload")?.get("ChangeEventHeader"))
}

/// Parses a verified body.
pub fn parse(body: &[u8]) -> Result<SignedEvent, EventParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EventParseError::Json(e.to_string()))?;
    if let Some(header) = find_header(&value) {
        let h: ChangeEventHeader = serde_json::from_value(header.clone())
            .map_err(|e| field("ChangeEventHeader", e.to_string()))?;
        let (change, resync) = change_type(&h.change_type)
            .ok_or_else(|| field("changeType", "unknown change type"))?;
        let stamp = h
            .commit_timestamp
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        let mut event = build(
            None,
            h.entity_name,
            &h.record_ids,
            change,
            resync,
            stamp,
            "recordIds",
        )?;
        if h.change_origin.as_deref().is_some_and(is_own_write) && !event.resync {
            event.notifications.clear();
            event.own_write = true;
        }
        return Ok(event);
    }
    let e: Envelope =
        serde_json::from_value(value).map_err(|e| EventParseError::Json(e.to_string()))?;
    let org = OrgId::parse(&e.org_id).map_err(|err| field("org_id", err.to_string()))?;
    let (change, resync) = match e.change_type.as_deref() {
        None => (ChangeType::Update, false),
        Some(c) => change_type(c).ok_or_else(|| field("change_type", "unknown change type"))?,
    };
    let stamp = match e.system_modstamp.as_deref() {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z"))
                .map_err(|err| field("system_modstamp", err.to_string()))?
                .with_timezone(&Utc),
        ),
    };
    build(
        Some(org),
        e.object,
        &e.record_ids,
        change,
        resync,
        stamp,
        "record_ids",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_names_org_object_ids_change_and_stamp() {
        let body = br#"{"org_id":"00D7F00000107Xs","object":"Contact","change_type":"DELETE",
            "record_ids":["0031I0000081tbP","0031I0000081tb0QAA"],"system_modstamp":"2024-05-01T10:00:00.000+0000"}"#;
        let e = parse(body).expect("parse");
        assert_eq!(
            e.org_id.map(|o| o.to_string()),
            Some("00D7F00000107XsUAI".into())
        );
        assert_eq!(e.notifications.len(), 2);
        assert_eq!(e.notifications[0].record_id.as_str(), "0031I0000081tbPQAQ");
        assert_eq!(e.notifications[0].change, ChangeType::Delete);
        assert!(e.notifications[0].system_modstamp.is_some());
    }

    #[test]
    fn a_cdc_event_is_accepted_as_is_from_the_pubsub_readme() {
        let body = br#"{"replayId":18098167,"payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["0014H00002LbR7QQAV"],
 "changeType":"UPDATE","changeOrigin":"com/salesforce/api/soap/58.0;client=SfdcInternalAPI/",
 "transactionKey":"000046c7-a642-11e2-c29b-229c6786473e","sequenceNumber":1,"commitTimestamp":1696444513000,
 "commitNumber":11657372702432,"commitUser":"00558000000yFyDAAU","nulledFields":[],"diffFields":[],
 "changedFields":["LastModifiedDate","BillingAddress.City","BillingAddress.State"]},
 "Name":null,"BillingAddress":{"Street":null,"City":"San Francisco","State":"CA","PostalCode":null,"Country":null},
 "LastModifiedDate":1696444513000,"OwnerId":null}}"#;
        let e = parse(body).expect("parse");
        assert_eq!(e.org_id, None);
        assert_eq!(e.notifications[0].object, ObjectType::Account);
        assert_eq!(
            e.notifications[0]
                .system_modstamp
                .map(|t| t.timestamp_millis()),
            Some(1_696_444_513_000)
        );
    }

    #[test]
    fn the_echo_of_sfsyncs_own_write_names_nothing_to_pull() {
        let own = br#"{"ChangeEventHeader":{"entityName":"Contact","recordIds":["0031I0000081tbPQAQ"],"changeType":"UPDATE","changeOrigin":"com/salesforce/api/rest/62.0;client=sfsync"}}"#;
        let e = parse(own).expect("parse");
        assert!(e.own_write && e.notifications.is_empty());
        let other = br#"{"ChangeEventHeader":{"entityName":"Contact","recordIds":["0031I0000081tbPQAQ"],"changeType":"UPDATE","changeOrigin":"com/salesforce/api/rest/62.0;client=sfsync-other"}}"#;
        let e = parse(other).expect("parse");
        assert!(!e.own_write && e.notifications.len() == 1);
    }

    #[test]
    fn a_wildcard_or_overflow_asks_for_a_resync() {
        let body = br#"{"ChangeEventHeader":{"entityName":"Account","recordIds":["001*"],"changeType":"UPDATE"}}"#;
        let e = parse(body).expect("parse");
        assert!(e.resync && e.notifications.is_empty());
        let body = br#"{"ChangeEventHeader":{"entityName":"Contact","recordIds":[],"changeType":"GAP_OVERFLOW"}}"#;
        assert!(parse(body).expect("parse").resync);
    }

    #[test]
    fn an_ignored_object_parses_to_no_notifications() {
        let body =
            br#"{"org_id":"00D7F00000107Xs","object":"Case","record_ids":["5001I0000081tbP"]}"#;
        let e = parse(body).expect("parse");
        assert!(e.notifications.is_empty() && !e.resync);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, needle) in [
            (&br#"{"org_id":"00D7F00000107Xs","object":"Contact","record_ids":["nope"]}"#[..], "record_ids"),
            (br#"{"org_id":"00D7F00000107Xs","object":"Contact","record_ids":[]}"#, "record_ids"),
            (br#"{"org_id":"x","object":"Contact","record_ids":["0031I0000081tbP"]}"#, "org_id"),
            (br#"{"org_id":"00D7F00000107Xs","object":"Contact","change_type":"MOVE","record_ids":["0031I0000081tbP"]}"#, "change_type"),
            (br#"{"org_id":"00D7F00000107Xs","object":"Contact","record_ids":["0031I0000081tbP"],"system_modstamp":"yesterday"}"#, "system_modstamp"),
            (br#"[1,2"#, "invalid event body"),
        ] {
            let e = parse(body).expect_err("must fail").to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
