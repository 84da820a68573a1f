//! Properties over generated input: the two webhook parsers never panic and read back what a
//! sender wrote, Salesforce ids keep their checksum rules, and the config loader refuses bad
//! input by name without panicking.

use proptest::prelude::*;
use sfsync::domain::{OrgId, SalesforceId};
use sfsync::http::webhook::{outbound_message, signed_event};

const ORG: &str = "00D7F00000107XsUAI";

fn org() -> OrgId {
    OrgId::parse(ORG).expect("org")
}

/// Text as an admin's data might hold it, markup characters included.
fn field_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 &<>\"'é.,;:/-]{0,40}"
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

prop_compose! {
    fn notification()(n in 0u64..1_000_000, r in 0u64..1_000_000, name in field_text(),
                       email in proptest::option::of(field_text())) -> (u64, u64, String, Option<String>) {
        (n, r, name, email)
    }
}

fn outbound_xml(notes: &[(u64, u64, String, Option<String>)]) -> String {
    let body: String = notes
        .iter()
        .map(|(n, r, name, email)| {
            let email = match email {
                Some(e) => format!("<sf:Email>{}</sf:Email>", xml_escape(e)),
                None => "<sf:Email xsi:nil=\"true\"/>".into(),
            };
            format!(
                r#"<Notification><Id>{}</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{}</sf:Id><sf:LastName>{}</sf:LastName>{email}</sObject></Notification>"#,
                SalesforceId::mint("04l", "P", *n),
                SalesforceId::mint("003", "P", *r),
                xml_escape(name),
            )
        })
        .collect();
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{ORG}</OrganizationId>{body}</notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_give_the_outbound_parser_an_error_or_a_message(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = outbound_message::parse(&body, &outbound_message::XmlLimits::default(), &org());
    }

    #[test]
    fn any_text_with_envelope_pieces_never_panics(pieces in proptest::collection::vec(
        prop_oneof![
            Just("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">".to_string()),
            Just("<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">".to_string()),
            Just(format!("<OrganizationId>{ORG}</OrganizationId>")),
            Just("<Notification><Id>04l7F000008aeC1QAI</Id>".to_string()),
            Just("<sObject xsi:type=\"sf:Contact\">".to_string()),
            Just("</sObject></Notification>".to_string()),
            Just("<!DOCTYPE x>".to_string()),
            Just("&amp;&#x41;&bogus;".to_string()),
            "[<>/=\"a-z:]{0,12}",
        ], 0..24)) {
        let body = pieces.concat();
        let _ = outbound_message::parse(body.as_bytes(), &outbound_message::XmlLimits::default(), &org());
    }

    #[test]
    fn generated_outbound_messages_parse_back_to_what_was_sent(notes in proptest::collection::vec(notification(), 1..20)) {
        let xml = outbound_xml(&notes);
        let parsed = outbound_message::parse(xml.as_bytes(), &outbound_message::XmlLimits::default(), &org())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.notifications.len(), notes.len());
        for (got, (n, r, name, email)) in parsed.notifications.iter().zip(&notes) {
            prop_assert_eq!(&got.id, &SalesforceId::mint("04l", "P", *n));
            prop_assert_eq!(&got.record_id, &SalesforceId::mint("003", "P", *r));
            prop_assert_eq!(got.fields.get("LastName"), Some(&Some(name.trim().to_string())));
            prop_assert_eq!(got.fields.get("Email"), Some(&email.as_ref().map(|e| e.trim().to_string())));
        }
    }

    #[test]
    fn any_bytes_give_the_event_parser_an_error_or_an_event(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = signed_event::parse(&body);
    }

    #[test]
    fn any_json_value_gives_the_event_parser_an_error_or_an_event(v in arbitrary_json()) {
        let _ = signed_event::parse(v.to_string().as_bytes());
    }

    #[test]
    fn generated_envelopes_parse_back_to_their_records(ids in proptest::collection::vec(0u64..1_000_000, 1..50),
                                                       ms in 0i64..4_000_000_000_000) {
        let stamp = chrono::DateTime::from_timestamp_millis(ms).expect("time");
        let record_ids: Vec<String> = ids.iter().map(|n| SalesforceId::mint("001", "E", *n).to_string()).collect();
        let body = serde_json::json!({"org_id": ORG, "object": "Account", "change_type": "UPDATE",
            "record_ids": record_ids, "system_modstamp": stamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
        let event = signed_event::parse(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(event.notifications.len(), ids.len());
        for (n, id) in event.notifications.iter().zip(&ids) {
            prop_assert_eq!(&n.record_id, &SalesforceId::mint("001", "E", *id));
            prop_assert_eq!(n.system_modstamp, Some(stamp));
        }
    }

    #[test]
    fn a_15_character_id_and_its_18_character_form_are_one_id(id in "[A-Za-z0-9]{15}") {
        let short = SalesforceId::parse(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(short.as_15(), id.as_str());
        let long = SalesforceId::parse(short.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&long, &short);
        // The suffix is compared without regard to case, as Salesforce does.
        let lower_suffix = format!("{}{}", &id, short.as_str()[15..].to_ascii_lowercase());
        prop_assert_eq!(SalesforceId::parse(&lower_suffix).ok(), Some(short.clone()));
    }

    #[test]
    fn changing_the_case_of_one_letter_makes_another_id(id in "[A-Za-z]{15}", at in 0usize..15) {
        let mut other: Vec<char> = id.chars().collect();
        other[at] = if other[at].is_ascii_uppercase() { other[at].to_ascii_lowercase() } else { other[at].to_ascii_uppercase() };
        let other: String = other.into_iter().collect();
        let a = SalesforceId::parse(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = SalesforceId::parse(&other).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_ne!(&a, &b);
        // An 18-character id whose suffix belongs to the other casing is refused.
        let forged = format!("{}{}", a.as_15(), &b.as_str()[15..]);
        prop_assert!(SalesforceId::parse(&forged).is_err());
    }

    #[test]
    fn any_string_is_an_id_or_an_error(s in ".{0,20}") {
        if let Ok(id) = SalesforceId::parse(&s) {
            prop_assert_eq!(id.as_str().len(), 18);
        }
    }

    #[test]
    fn any_config_text_loads_or_fails_without_panicking(text in "[\\[\\]a-z_=\"0-9. \n]{0,200}") {
        let _ = sfsync::config::Config::from_toml(&text);
    }

    #[test]
    fn any_override_variable_is_applied_or_named_in_the_error(section in "[A-Z_]{1,12}", key in "[A-Z_]{1,16}", value in ".{0,20}") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sfsync.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"0123456789abcdef0123\"\n[store]\npath = \"./data\"\n").expect("write");
        let name = format!("SFSYNC_{section}__{key}");
        if let Err(e) = sfsync::config::Config::load_with_env(&path, [(name.clone(), value)]) {
            let text = e.to_string();
            prop_assert!(text.contains(&name) || text.contains("server.") || text.contains("store."), "{}", text);
        }
    }
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[A-Za-z0-9_*]{0,20}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("00D7F00000107XsUAI"),
            Just("0017F000007ydJmQAI"),
            Just("Account"),
            Just("UPDATE"),
            Just("GAP_OVERFLOW")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("org_id".to_string()),
                    Just("object".to_string()),
                    Just("record_ids".to_string()),
                    Just("change_type".to_string()),
                    Just("system_modstamp".to_string()),
                    Just("ChangeEventHeader".to_string()),
                    Just("entityName".to_string()),
                    Just("recordIds".to_string()),
                    Just("changeType".to_string()),
                    Just("payload".to_string()),
                    Just("data".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
