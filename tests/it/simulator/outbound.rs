//! Outbound Messages: their SOAP shape, retries, batching, ordering, and the org as a seed makes it.

use super::*;

/// The notification ids of one message.
fn notification_ids(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("Notification"))
        .filter_map(|n| {
            n.children()
                .find(|c| c.has_tag_name("Id"))
                .and_then(|c| c.text())
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn a_changed_record_sends_a_soap_message_of_the_documented_shape() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Jeraldine", "LastName": "Black & Co", "Title": "White"}),
        )
        .unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let (headers, xml) = receiver.messages().remove(0);
    assert_eq!(headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(headers["soapaction"], "\"\"");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let envelope = doc.root_element();
    assert_eq!(
        envelope.tag_name().namespace(),
        Some("http://schemas.xmlsoap.org/soap/envelope/")
    );
    let notifications = doc
        .descendants()
        .find(|n| n.has_tag_name("notifications"))
        .unwrap();
    assert_eq!(
        notifications.tag_name().namespace(),
        Some("http://soap.sforce.com/2005/09/outbound")
    );
    let children: Vec<_> = notifications
        .children()
        .filter(|n| n.is_element())
        .collect();
    let names: Vec<&str> = children.iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(
        names,
        [
            "OrganizationId",
            "ActionId",
            "SessionId",
            "EnterpriseUrl",
            "PartnerUrl",
            "Notification"
        ]
    );
    assert_eq!(children[0].text(), Some(org.sim.org_id().as_str()));
    assert!(children[1].text().unwrap().starts_with("04k"));
    assert_eq!(
        children[2].attribute(("http://www.w3.org/2001/XMLSchema-instance", "nil")),
        Some("true")
    );
    assert!(children[3].text().unwrap().ends_with(&format!(
        "/services/Soap/c/62.0/{}",
        org.sim.org_id().as_15()
    )));
    let notification_id = children[5]
        .children()
        .find(|c| c.has_tag_name("Id"))
        .and_then(|c| c.text())
        .unwrap();
    assert!(notification_id.starts_with("04l") && notification_id.len() == 18);
    let sobject = children[5]
        .children()
        .find(|c| c.has_tag_name("sObject"))
        .unwrap();
    assert_eq!(
        sobject.attribute(("http://www.w3.org/2001/XMLSchema-instance", "type")),
        Some("sf:Contact")
    );
    let fields: Vec<(&str, &str)> = sobject
        .children()
        .filter(|c| c.is_element())
        .map(|c| {
            assert_eq!(
                c.tag_name().namespace(),
                Some("urn:sobject.enterprise.soap.sforce.com")
            );
            (c.tag_name().name(), c.text().unwrap_or_default())
        })
        .collect();
    assert_eq!(fields[0], ("Id", id.as_str()));
    let rest: Vec<&str> = fields[1..].iter().map(|(n, _)| *n).collect();
    let mut sorted = rest.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(rest, sorted, "fields after sf:Id are alphabetical");
    assert!(!rest.contains(&"Email"), "null fields are left out");
    let field = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(field("LastName"), Some("Black & Co"));
    assert!(field("SystemModstamp").unwrap().ends_with(".000Z"));
    eventually("the ack counted", || {
        org.sim.outbound_stats().messages_acked == 1
    })
    .await;
}

#[tokio::test]
async fn numbers_and_booleans_travel_as_salesforce_writes_them() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    org.sim.create("Opportunity", json!({"Name": "Express Logistics SLA", "StageName": "Perception Analysis", "CloseDate": "2017-04-03", "Amount": 120000})).unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let xml = &receiver.messages()[0].1;
    assert!(xml.contains("<sf:Amount>120000.0</sf:Amount>"), "{xml}");
    assert!(
        xml.contains("<sf:CloseDate>2017-04-03</sf:CloseDate>"),
        "{xml}"
    );
    assert!(xml.contains("<sf:IsClosed>false</sf:IsClosed>"), "{xml}");
    assert!(
        xml.contains("<sf:Probability>70.0</sf:Probability>"),
        "{xml}"
    );
}

#[tokio::test]
async fn an_unacknowledged_message_is_retried_until_acked() {
    let (receiver, url) = Receiver::start(2).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    org.sim.create("Account", json!({"Name": "Retry"})).unwrap();
    eventually("the third delivery acked", || {
        org.sim.outbound_stats().messages_acked == 1
    })
    .await;

    let messages = receiver.messages();
    assert_eq!(messages.len(), 3);
    let ids: Vec<Vec<String>> = messages.iter().map(|(_, b)| notification_ids(b)).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same notification each time: {ids:?}"
    );
    let stats = org.sim.outbound_stats();
    assert_eq!(
        (
            stats.messages_failed,
            stats.pending,
            stats.notifications_acked
        ),
        (2, 0, 1)
    );
}

#[tokio::test]
async fn duplicate_mode_delivers_a_message_twice() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;
    org.sim.set_delivery_mode(DeliveryMode {
        duplicate: true,
        out_of_order: false,
    });

    org.sim
        .create("Lead", json!({"LastName": "Twice", "Company": "Dup"}))
        .unwrap();
    eventually("two deliveries", || receiver.messages().len() == 2).await;

    let messages = receiver.messages();
    assert_eq!(
        notification_ids(&messages[0].1),
        notification_ids(&messages[1].1)
    );
}

#[tokio::test]
async fn a_message_holds_at_most_100_notifications_of_one_type() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;
    org.sim
        .seed_org(&sfsync::simulator::SeedSpec {
            accounts: 150,
            contacts_per_account: 1,
            fire_outbound: true,
            ..Default::default()
        })
        .unwrap();

    org.sim.set_outbound_url(Some(url));
    eventually("300 notifications acked", || {
        org.sim.outbound_stats().notifications_acked == 300
    })
    .await;

    let messages = receiver.messages();
    let mut total = 0;
    for (_, xml) in &messages {
        let n = notification_ids(xml).len();
        assert!((1..=100).contains(&n), "{n} notifications in one message");
        let types: std::collections::BTreeSet<&str> = xml
            .match_indices("xsi:type=\"sf:")
            .map(|(i, _)| &xml[i + 13..i + 17])
            .collect();
        assert_eq!(types.len(), 1, "one object type per message");
        total += n;
    }
    assert_eq!(total, 300);
    assert_eq!(messages.len(), 4);
}

#[tokio::test]
async fn rest_writes_fire_outbound_messages_too() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org.create("Account", json!({"Name": "Via API"})).await;
    eventually("one message", || receiver.messages().len() == 1).await;

    assert!(
        receiver.messages()[0]
            .1
            .contains(&format!("<sf:Id>{id}</sf:Id>"))
    );
}

#[tokio::test]
async fn out_of_order_mode_shuffles_the_notifications() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;
    org.sim.set_delivery_mode(DeliveryMode {
        duplicate: false,
        out_of_order: true,
    });
    for n in 0..20 {
        org.sim
            .create("Account", json!({"Name": format!("A{n}")}))
            .unwrap();
    }

    org.sim.set_outbound_url(Some(url));
    eventually("20 notifications acked", || {
        org.sim.outbound_stats().notifications_acked == 20
    })
    .await;

    let ids: Vec<String> = receiver
        .messages()
        .iter()
        .flat_map(|(_, xml)| notification_ids(xml))
        .collect();
    let mut queued_order = ids.clone();
    queued_order.sort();
    assert_eq!(ids.len(), 20);
    assert_ne!(
        ids, queued_order,
        "notification ids are minted in queue order"
    );
}

#[tokio::test]
async fn without_an_outbound_url_notifications_wait_in_the_queue() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;

    org.sim
        .create("Account", json!({"Name": "Waiting"}))
        .unwrap();
    tokio::task::yield_now().await;
    assert_eq!(org.sim.outbound_stats().pending, 1);
    assert!(receiver.messages().is_empty());

    org.sim.set_outbound_url(Some(url));
    eventually("the held message delivered", || {
        receiver.messages().len() == 1
    })
    .await;
}

#[tokio::test]
async fn the_intake_parser_reads_a_simulator_message_unchanged() {
    use sfsync::http::webhook::outbound_message::{XmlLimits, parse};
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Doug", "LastName": "Bunting", "Email": "drb24@cornell.edu"}),
        )
        .unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let parsed = parse(
        receiver.messages()[0].1.as_bytes(),
        &XmlLimits::default(),
        &org.sim.org_id(),
    )
    .expect("the intake parser accepts it");
    assert_eq!(parsed.organization_id, org.sim.org_id().as_str());
    assert!(!parsed.has_session_id);
    assert_eq!(parsed.notifications.len(), 1);
    let n = &parsed.notifications[0];
    assert_eq!(n.object_type, "Contact");
    assert_eq!(n.record_id, id);
    assert_eq!(
        n.fields.get("Email").cloned().flatten().as_deref(),
        Some("drb24@cornell.edu")
    );
    assert!(n.system_modstamp().is_some());
}

#[tokio::test]
async fn the_same_seed_gives_the_same_org_and_credentials() {
    let a = Org::start_with(SimulatorConfig {
        seed: 7,
        ..SimulatorConfig::default()
    })
    .await;
    let b = Org::start_with(SimulatorConfig {
        seed: 7,
        ..SimulatorConfig::default()
    })
    .await;
    let c = Org::start_with(SimulatorConfig {
        seed: 8,
        ..SimulatorConfig::default()
    })
    .await;

    assert_eq!(a.sim.org_id(), b.sim.org_id());
    assert_eq!(
        (a.creds.client_secret.clone(), a.creds.refresh_token.clone()),
        (b.creds.client_secret.clone(), b.creds.refresh_token.clone())
    );
    assert_ne!(a.sim.org_id(), c.sim.org_id());
}

#[tokio::test]
async fn get_updated_and_get_deleted_cover_the_window() {
    let org = Org::start().await;
    let kept = org.create("Account", json!({"Name": "Kept"})).await;
    let gone = org.create("Account", json!({"Name": "Gone"})).await;
    org.delete(&format!("/sobjects/Account/{gone}"))
        .send()
        .await
        .unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let window = [("start", start.as_str()), ("end", end.as_str())];

    let (s1, up) = sent(org.get("/sobjects/Account/updated/").query(&window)).await;
    let (s2, del) = sent(org.get("/sobjects/Account/deleted/").query(&window)).await;

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(up["ids"], json!([kept]));
    assert!(
        up["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    assert_eq!(del["deletedRecords"][0]["id"], gone);
    assert!(
        del["deletedRecords"][0]["deletedDate"]
            .as_str()
            .unwrap()
            .ends_with(".000+0000")
    );
}
