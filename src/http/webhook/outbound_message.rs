//! Salesforce Outbound Messages: a SOAP 1.1 `notifications` envelope of up to 100 notifications
//! for one object type, unsigned, delivered at least once and out of order.
//!
//! Two passes, each linear in the body:
//! 1. A streaming scan (quick-xml, no tree, no namespace resolution) refuses a DTD, nesting past
//!    the depth limit, more nodes than allowed, more attributes on one element or more namespace
//!    declarations than an Outbound Message ever carries (tree parsers check attributes against
//!    each other, which is quadratic in their number), and collects every `OrganizationId`: there
//!    must be exactly one, and it must be the org that owns the URL's key. Outbound Messages are
//!    unsigned, so this is the earliest check the format allows.
//! 2. roxmltree builds the tree (DTDs off: only the five predefined entities) and the
//!    notifications are read; every record id must carry its object's key prefix and every
//!    timestamp sent must be one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Limits applied to every Outbound Message.
#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    /// Most elements, text and attribute nodes in a document.
    pub max_nodes: u32,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Longest text node, in bytes.
    pub max_text: usize,
    /// Most `<Notification>` elements (Salesforce sends at most 100).
    pub max_notifications: usize,
    /// Most attributes on one element (an Outbound Message element carries at most four).
    pub max_attributes: usize,
    /// Most namespace declarations in the whole document (Salesforce sends about six).
    pub max_namespace_declarations: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_nodes: 20_000,
            max_depth: 32,
            max_text: 128 * 1024,
            max_notifications: 100,
            max_attributes: 32,
            max_namespace_declarations: 256,
        }
    }
}

/// Why an Outbound Message was refused. The text is safe to send back: it names the problem,
/// never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundParseError {
    /// Not UTF-8, not well-formed, a DTD, an unknown entity or over the node limit.
    #[error("malformed xml: {0}")]
    Xml(String),
    /// Nested deeper than the limit.
    #[error("xml nested deeper than {0} levels")]
    TooDeep(usize),
    /// A text node over the limit.
    #[error("xml text node longer than {0} bytes")]
    TextTooLong(usize),
    /// Not a SOAP `notifications` envelope.
    #[error("not an outbound message: {0}")]
    Shape(&'static str),
    /// More notifications than allowed.
    #[error("more than {0} notifications in one message")]
    TooManyNotifications(usize),
    /// An element with more attributes than allowed.
    #[error("an xml element with more than {0} attributes")]
    TooManyAttributes(usize),
    /// More namespace declarations than allowed.
    #[error("more than {0} xml namespace declarations")]
    TooManyNamespaces(usize),
    /// The message names another org than the one that owns the endpoint.
    #[error("organization id does not match this endpoint")]
    OtherOrg,
    /// A field that must be a timestamp is not one.
    #[error("{0} is not a timestamp")]
    BadTimestamp(String),
    /// An id that is not a Salesforce id.
    #[error("bad {field}: {reason}")]
    BadId {
        /// Which element.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// One `<Notification>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundNotification {
    /// The notification id (`04l…`), normalized to 18 characters: the dedupe key.
    pub id: SalesforceId,
    /// The sObject's type from `xsi:type` (`Contact`, …).
    pub object_type: String,
    /// The record id (`sf:Id`), normalized.
    pub record_id: SalesforceId,
    /// Every field sent, by API name; `None` for `xsi:nil="true"`. Absent means null or not
    /// selected in the action, never "unchanged".
    pub fields: BTreeMap<String, Option<String>>,
}

impl OutboundNotification {
    /// The record's `SystemModstamp`, or failing that its `LastModifiedDate`, when sent and valid.
    pub fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        ["SystemModstamp", "LastModifiedDate"].iter().find_map(|f| {
            let v = self.fields.get(*f)?.as_deref()?;
            DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    /// The user who last modified the record (`LastModifiedById`), when sent and valid.
    pub fn modified_by(&self) -> Option<SalesforceId> {
        let v = self.fields.get("LastModifiedById")?.as_deref()?;
        SalesforceId::parse(v).ok()
    }

    /// As a domain notification, when sfsync pulls this object type.
    pub fn to_notification(&self) -> Option<Notification> {
        Some(Notification {
            object: ObjectType::from_api_name(&self.object_type)?,
            record_id: self.record_id.clone(),
            change: ChangeType::Update,
            system_modstamp: self.system_modstamp(),
            modified_by: self.modified_by(),
        })
    }
}

/// A parsed `notifications` message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// `OrganizationId` as sent (15 or 18 characters), unchecked.
    pub organization_id: String,
    /// `ActionId`.
    pub action_id: Option<String>,
    /// Whether a `SessionId` was sent (its value is never kept).
    pub has_session_id: bool,
    /// The notifications.
    pub notifications: Vec<OutboundNotification>,
}

fn bad_id(field: &'static str, e: impl std::fmt::Display) -> OutboundParseError {
    OutboundParseError::BadId {
        field,
        reason: e.to_string(),
    }
}

fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == Some(ns)
    })
}

fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.text().unwrap_or_default().trim().to_string()
}

/// Checks depth and text sizes in one pass, without recursion.
fn check_limits(
    doc: &roxmltree::Document<'_>,
    limits: &XmlLimits,
) -> Result<(), OutboundParseError> {
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for node in doc.descendants() {
        let d = node.parent().map_or(0, |p| depth[p.id().get_usize()] + 1);
        if d > limits.max_depth {
            return Err(OutboundParseError::TooDeep(limits.max_depth));
        }
        if let Some(slot) = depth.get_mut(node.id().get_usize()) {
            *slot = d;
        }
        if node.is_text() && node.text().is_some_and(|t| t.len() > limits.max_text) {
            return Err(OutboundParseError::TextTooLong(limits.max_text));
        }
    }
    Ok(())
}

/// Counts one element's attributes and namespace declarations, without comparing them.
fn count_attributes(
    element: &quick_xml::events::BytesStart<'_>,
    limits: &XmlLimits,
    declarations: &mut usize,
) -> Result<(), OutboundParseError> {
    let mut attributes = 0;
    for attribute in element.attributes().with_checks(false) {
        let attribute = attribute.map_err(|e| OutboundParseError::Xml(e.to_string()))?;
        attributes += 1;
        if attributes > limits.max_attributes {
            return Err(OutboundParseError::TooManyAttributes(limits.max_attributes));
        }
        let key = attribute.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            *declarations += 1;
            if *declarations > limits.max_namespace_declarations {
                return Err(OutboundParseError::TooManyNamespaces(
                    limits.max_namespace_declarations,
                ));
            }
        }
    }
    Ok(())
}

/// The streaming first pass: limits that a tree parser would enforce too late or too slowly, and
/// the text of every `OrganizationId` element.
fn scan(text: &str, limits: &XmlLimits) -> Result<Vec<String>, OutboundParseError> {
    use quick_xml::events::Event;
    let xml = |e: &dyn std::fmt::Display| OutboundParseError::Xml(e.to_string());
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut depth, mut nodes, mut declarations) = (0usize, 0u32, 0usize);
    let mut organization_ids: Vec<String> = Vec::new();
    let mut in_org = false;
    loop {
        let event = reader.read_event().map_err(|e| xml(&e))?;
        nodes = nodes.saturating_add(1);
        if nodes > limits.max_nodes {
            return Err(OutboundParseError::Xml("node limit reached".into()));
        }
        let opens = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                if depth + 1 > limits.max_depth {
                    return Err(OutboundParseError::TooDeep(limits.max_depth));
                }
                count_attributes(&e, limits, &mut declarations)?;
                in_org = e.local_name().as_ref() == b"OrganizationId";
                if in_org {
                    organization_ids.push(String::new());
                }
                if opens {
                    depth += 1;
                } else {
                    in_org = false;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_org = false;
            }
            Event::Text(t) if in_org => {
                let piece = t.decode().map_err(|e| xml(&e))?;
                if let Some(last) = organization_ids.last_mut() {
                    last.push_str(piece.trim());
                }
            }
            Event::DocType(_) => {
                return Err(OutboundParseError::Xml("a DTD is not allowed".into()));
            }
            Event::Eof => return Ok(organization_ids),
            _ => {}
        }
    }
}

/// Parses an Outbound Message body sent to the endpoint of `org`.
pub fn parse(
    body: &[u8],
    limits: &XmlLimits,
    org: &OrgId,
) -> Result<OutboundMessage, OutboundParseError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| OutboundParseError::Xml("body is not utf-8".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match scan(text, limits)?.as_slice() {
        [] => return Err(OutboundParseError::Shape("no OrganizationId")),
        [one] => {
            let claimed = SalesforceId::parse(one).map_err(|_| OutboundParseError::OtherOrg)?;
            if claimed.as_15() != org.as_15() {
                return Err(OutboundParseError::OtherOrg);
            }
        }
        _ => return Err(OutboundParseError::Shape("more than one OrganizationId")),
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| OutboundParseError::Xml(e.to_string()))?;
    check_limits(&doc, limits)?;

    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope" || envelope.tag_name().namespace() != Some(SOAP_ENV)
    {
        return Err(OutboundParseError::Shape("root is not a soap envelope"));
    }
    let body =
        child(envelope, SOAP_ENV, "Body").ok_or(OutboundParseError::Shape("no soap body"))?;
    let n = child(body, OUTBOUND_NS, "notifications")
        .ok_or(OutboundParseError::Shape("no notifications element"))?;
    let organization_id = child(n, OUTBOUND_NS, "OrganizationId")
        .map(text_of)
        .filter(|s| !s.is_empty())
        .ok_or(OutboundParseError::Shape("no OrganizationId"))?;
    let action_id = child(n, OUTBOUND_NS, "ActionId").map(text_of);
    let has_session_id = child(n, OUTBOUND_NS, "SessionId")
        .is_some_and(|s| s.attribute((XSI, "nil")) != Some("true") && !text_of(s).is_empty());

    let elements: Vec<_> = n
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Notification")
        .collect();
    if elements.len() > limits.max_notifications {
        return Err(OutboundParseError::TooManyNotifications(
            limits.max_notifications,
        ));
    }
    if elements.is_empty() {
        return Err(OutboundParseError::Shape("no Notification"));
    }
    let notifications = elements
        .into_iter()
        .map(read_notification)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OutboundMessage {
        organization_id,
        action_id,
        has_session_id,
        notifications,
    })
}

/// One `<Notification>`: its id, its sObject's type, id and fields, each checked.
fn read_notification(
    el: roxmltree::Node<'_, '_>,
) -> Result<OutboundNotification, OutboundParseError> {
    let id =
        child(el, OUTBOUND_NS, "Id").ok_or(OutboundParseError::Shape("notification without Id"))?;
    let id = SalesforceId::parse(&text_of(id)).map_err(|e| bad_id("Notification/Id", e))?;
    let sobject = child(el, OUTBOUND_NS, "sObject")
        .ok_or(OutboundParseError::Shape("notification without sObject"))?;
    let object_type = sobject
        .attribute((XSI, "type"))
        .map(|t| t.rsplit(':').next().unwrap_or(t).to_string())
        .filter(|t| !t.is_empty())
        .ok_or(OutboundParseError::Shape("sObject without xsi:type"))?;
    let mut fields = BTreeMap::new();
    for f in sobject.children().filter(|c| c.is_element()) {
        let value = if f.attribute((XSI, "nil")) == Some("true") {
            None
        } else {
            Some(text_of(f))
        };
        fields.insert(f.tag_name().name().to_string(), value);
    }
    let record_id = fields
        .get("Id")
        .and_then(|v| v.as_deref())
        .ok_or(OutboundParseError::Shape("sObject without Id"))?;
    let record_id = SalesforceId::parse(record_id).map_err(|e| bad_id("sObject/Id", e))?;
    check_prefix(&object_type, &record_id)?;
    check_timestamps(&fields)?;
    Ok(OutboundNotification {
        id,
        object_type,
        record_id,
        fields,
    })
}

/// A record id of a standard object must carry that object's key prefix.
fn check_prefix(object_type: &str, id: &SalesforceId) -> Result<(), OutboundParseError> {
    let standard = matches!(
        object_type,
        "Account" | "Contact" | "Lead" | "Opportunity" | "Task" | "Event" | "User"
    );
    if standard && id.object_type() != Some(object_type) {
        return Err(bad_id(
            "sObject/Id",
            format!(
                "the key prefix {} is not a {object_type}'s",
                id.key_prefix()
            ),
        ));
    }
    Ok(())
}

/// The timestamps sfsync reads must be timestamps when they are sent at all.
fn check_timestamps(fields: &BTreeMap<String, Option<String>>) -> Result<(), OutboundParseError> {
    for name in ["SystemModstamp", "LastModifiedDate"] {
        if let Some(Some(value)) = fields.get(name) {
            if DateTime::parse_from_rfc3339(value).is_err() {
                return Err(OutboundParseError::BadTimestamp(name.to_string()));
            }
        }
    }
    Ok(())
}

/// The acknowledgement Salesforce requires: a `notificationsResponse` with `<Ack>true</Ack>`;
/// anything else (another status, a fault, `false`) makes it retry the whole message.
pub const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">
   <Ack>true</Ack>
  </notificationsResponse>
 </soapenv:Body>
</soapenv:Envelope>
"#;

/// A SOAP 1.1 fault with `soapenv:Client` and the given reason, XML-escaped.
pub fn fault(reason: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <soapenv:Fault>
   <faultcode>soapenv:{code}</faultcode>
   <faultstring>{reason}</faultstring>
   <detail />
  </soapenv:Fault>
 </soapenv:Body>
</soapenv:Envelope>
"#,
        code = "Client",
        reason = quick_xml::escape::escape(reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_A: &str = include_str!("../../../fixtures/outbound/contact_two_notifications.xml");

    fn org() -> OrgId {
        OrgId::parse("00D7F00000107XsUAI").expect("org")
    }

    #[test]
    fn sample_a_yields_two_contacts_with_an_omitted_email() {
        let m = parse(SAMPLE_A.as_bytes(), &XmlLimits::default(), &org()).expect("parse");
        assert_eq!(m.notifications.len(), 2);
        assert!(m.has_session_id);
        let first = &m.notifications[0];
        assert_eq!(first.object_type, "Contact");
        assert_eq!(first.id.as_str(), "04l1I000000fztEQAQ");
        assert_eq!(first.record_id.as_str(), "0031I0000081tbPQAQ");
        assert!(!first.fields.contains_key("Email"));
        assert_eq!(
            m.notifications[1].fields.get("Email"),
            Some(&Some("drb24@cornell.edu".into()))
        );
    }

    #[test]
    fn a_doctype_is_refused() {
        let body = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]>{}",
            &SAMPLE_A[..0]
        );
        assert!(matches!(
            parse(body.as_bytes(), &XmlLimits::default(), &org()),
            Err(OutboundParseError::Xml(_))
        ));
    }

    #[test]
    fn the_fault_escapes_its_reason() {
        assert!(fault("a<b&c").contains("a&lt;b&amp;c"));
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert_eq!(
            parse(deep.as_bytes(), &XmlLimits::default(), &org()),
            Err(OutboundParseError::TooDeep(32))
        );
    }
}
