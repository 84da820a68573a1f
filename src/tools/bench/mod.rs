//! `sfsync bench`: the figures the README reports, each a ratio or count from one command.
//!
//! - `ingest`: durable acknowledgements against the HTTP floor ([`ingest`]).
//! - `pull`: API calls per record, change-to-local latency and bytes written ([`pull`]).
//! - `push`: API calls per record (the echoes' included), drain rate and bytes written
//!   ([`push`]).
//! - `feed`: from a change in the org to the app holding its verified event ([`feed`]).
//! - `scale`: the service as its own process over many records and orgs: peak RSS, store size,
//!   start-up time, pull and read p99 ([`scale`]).
//! - `soak`: nothing acknowledged lost or duplicated through faults and SIGKILLs ([`soak`]).

pub mod dedupe;
pub mod feed;
pub mod ingest;
pub mod loopback;
pub mod measure;
pub mod pull;
pub mod push;
pub mod scale;
pub mod soak;

use crate::domain::{OrgId, SalesforceId};

/// An Outbound Message of Contact notifications, shaped as Salesforce sends them.
pub fn outbound_message_xml(org: &OrgId, notes: &[(SalesforceId, SalesforceId)]) -> String {
    let mut xml = String::with_capacity(600 + notes.len() * 420);
    xml.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#);
    xml.push_str(&format!(
        "<OrganizationId>{org}</OrganizationId><ActionId>04k7F0000008V3hQAE</ActionId><SessionId xsi:nil=\"true\"/><EnterpriseUrl>https://ap5.salesforce.com/services/Soap/c/47.0/{o15}</EnterpriseUrl><PartnerUrl>https://ap5.salesforce.com/services/Soap/u/47.0/{o15}</PartnerUrl>",
        o15 = org.as_15()
    ));
    for (notification, record) in notes {
        xml.push_str(&format!(
            "<Notification><Id>{notification}</Id><sObject xsi:type=\"sf:Contact\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>{record}</sf:Id><sf:Email>bench@example.com</sf:Email><sf:FirstName>Bench</sf:FirstName><sf:LastName>Sender</sf:LastName><sf:SystemModstamp>2024-05-01T10:00:00.000Z</sf:SystemModstamp></sObject></Notification>"
        ));
    }
    xml.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    xml
}
