//! The Outbound Message deliverer: it takes one message's notifications off the queue at a
//! time, renders them into a SOAP 1.1 `notifications` message right before sending it (so a
//! record changed while its notification waited travels with its latest data), and POSTs it
//! until a `200` with `<Ack>true</Ack>` comes back, with exponential back-off and switchable
//! duplicate and out-of-order delivery. At most `SimulatorConfig::outbound_concurrency` messages
//! are in flight at once. Rules, queue and counters are in `outbound_state.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_xml::escape::escape;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::outbound_state::{Next, Pending};
use super::schema::{Kind, ObjectDef};
use super::state::{Shared, State};
use super::value::{Record, parse_datetime};

/// One message ready to POST.
struct Batch {
    object: String,
    items: Vec<Pending>,
    body: String,
}

/// What the deliverer does next.
enum Step {
    /// POST this message to this URL.
    Send(String, Batch),
    /// Wait until this moment, or until woken (`None`: until woken).
    Wait(Option<Instant>),
}

/// Delivers queued notifications until the simulator shuts down: each message goes out as soon
/// as a delivery lane is free and the queue has one ready.
pub(crate) async fn run(shared: Arc<Shared>) {
    let lanes = Arc::new(Semaphore::new(shared.config.outbound_concurrency.max(1)));
    loop {
        let lane = tokio::select! {
            () = shared.cancel.cancelled() => return,
            lane = lanes.clone().acquire_owned() => match lane {
                Ok(lane) => lane,
                Err(_) => return,
            },
        };
        match next_step(&shared) {
            Step::Send(url, batch) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    deliver(&shared, &url, batch).await;
                    drop(lane);
                });
            }
            Step::Wait(until) => {
                drop(lane);
                let wait = until.map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(Instant::now())
                });
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = shared.outbound_wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Takes the next message off the queue and renders it; a message whose records are all gone
/// is dropped and the next one taken.
fn next_step(shared: &Shared) -> Step {
    let mut st = shared.lock();
    let st = &mut *st;
    let Some(url) = st.outbound.url.clone() else {
        return Step::Wait(None);
    };
    loop {
        let now = Instant::now();
        let window = shared.config.outbound_batch_window;
        match st.outbound.next_message(now, window, &mut st.rng) {
            Next::Wait(until) => return Step::Wait(until),
            Next::Message(items) => {
                if let Some(batch) = render(shared, st, items) {
                    return Step::Send(url, batch);
                }
            }
        }
    }
}

/// The message of one object's notifications, with each record as it is now; a notification
/// whose record is gone is dropped (`None` when none is left).
fn render(shared: &Shared, st: &mut State, items: Vec<Pending>) -> Option<Batch> {
    let object = items.first()?.object.clone();
    let fields = st.outbound.rules.get(&object).cloned().unwrap_or_default();
    let action_id = st.outbound.action_id(&object);
    let soap_url = |kind: char| {
        let (base, version) = (&shared.instance_url, &shared.config.api_version);
        format!(
            "{base}/services/Soap/{kind}/{version}/{}",
            shared.org_id.as_15()
        )
    };
    let (enterprise_url, partner_url) = (soap_url('c'), soap_url('u'));
    let envelope = Envelope {
        org_id: shared.org_id.as_str(),
        action_id: action_id.as_str(),
        session_id: None,
        enterprise_url: &enterprise_url,
        partner_url: &partner_url,
    };
    // The records are read in place (the org's lock is held): rendering is on the path of every
    // message, and a copy of each record cost more than writing it out.
    let org = &st.org;
    let def = org.schema.object(&object);
    let found: Vec<(Pending, &Record)> = items
        .into_iter()
        .filter_map(|p| {
            let record = org.find(&p.record_id).map(|(_, r)| r)?;
            Some((p, record))
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let listed: Vec<(&str, &Record)> = found.iter().map(|(p, r)| (p.id.as_str(), *r)).collect();
    let body = soap_message(&envelope, &object, &fields, &listed, |f| {
        kind(def.as_deref(), f)
    });
    let items: Vec<Pending> = found.into_iter().map(|(p, _)| p).collect();
    st.outbound.in_flight += items.len() as u64;
    Some(Batch {
        object,
        items,
        body,
    })
}

/// The value kind of a field of `obj` (text when unknown).
fn kind(obj: Option<&ObjectDef>, field: &str) -> Kind {
    obj.and_then(|o| o.field(field))
        .map_or(Kind::Text, |f| f.ftype.kind())
}

/// POSTs one message; on failure its notifications go back on the queue with back-off.
async fn deliver(shared: &Shared, url: &str, batch: Batch) {
    let acked = post(shared, url, &batch.body).await;
    let duplicate = {
        let mut st = shared.lock();
        st.outbound.in_flight = st
            .outbound
            .in_flight
            .saturating_sub(batch.items.len() as u64);
        st.outbound.stats.messages_sent += 1;
        if acked {
            st.outbound.stats.messages_acked += 1;
            st.outbound.stats.notifications_acked += batch.items.len() as u64;
        } else {
            st.outbound.stats.messages_failed += 1;
            let base = shared.config.outbound_retry_base;
            let max = shared.config.outbound_retry_max;
            for mut p in batch.items.clone() {
                p.attempts += 1;
                let backoff = base
                    .saturating_mul(1u32 << p.attempts.saturating_sub(1).min(20))
                    .min(max);
                st.outbound.retry_at(p, Instant::now() + backoff);
            }
            tracing::debug!(object = %batch.object, "outbound message not acknowledged, will retry");
        }
        acked && st.outbound.mode.duplicate
    };
    if !acked {
        // The deliverer may be waiting with nothing due: it has a retry to schedule now.
        shared.outbound_wake.notify_one();
    }
    if duplicate {
        let again = post(shared, url, &batch.body).await;
        let mut st = shared.lock();
        st.outbound.stats.messages_sent += 1;
        if again {
            st.outbound.stats.messages_acked += 1;
        } else {
            st.outbound.stats.messages_failed += 1;
        }
    }
}

/// One POST; true when the answer is 200 with `<Ack>true</Ack>`.
async fn post(shared: &Shared, url: &str, body: &str) -> bool {
    let response = shared
        .http
        .post(url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(body.to_string())
        .send()
        .await;
    let Ok(response) = response else { return false };
    if response.status().as_u16() != 200 {
        return false;
    }
    response.text().await.is_ok_and(|text| is_ack(&text))
}

/// Whether a response body is a SOAP `notificationsResponse` with `Ack` true.
pub(crate) fn is_ack(text: &str) -> bool {
    let Ok(doc) = roxmltree::Document::parse(text.trim_start_matches('\u{feff}')) else {
        return false;
    };
    doc.descendants()
        .find(|n| n.has_tag_name("Ack"))
        .and_then(|n| n.text())
        .is_some_and(|t| t.trim() == "true" || t.trim() == "1")
}

/// The envelope-level values of one message.
pub(crate) struct Envelope<'a> {
    pub(crate) org_id: &'a str,
    pub(crate) action_id: &'a str,
    pub(crate) session_id: Option<&'a str>,
    pub(crate) enterprise_url: &'a str,
    pub(crate) partner_url: &'a str,
}

/// Renders a SOAP 1.1 `notifications` message in the shape of sample C: `sf:Id` first, then the
/// rule's fields in alphabetical order, nulls left out.
pub(crate) fn soap_message(
    env: &Envelope<'_>,
    object: &str,
    fields: &[String],
    notifications: &[(&str, &Record)],
    kind: impl Fn(&str) -> Kind,
) -> String {
    let mut sorted: Vec<&String> = fields.iter().filter(|f| f.as_str() != "Id").collect();
    sorted.sort_by_key(|f| f.to_ascii_lowercase());
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>\
         <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">",
    );
    element(&mut out, "OrganizationId", env.org_id);
    element(&mut out, "ActionId", env.action_id);
    match env.session_id {
        Some(s) => element(&mut out, "SessionId", s),
        None => out.push_str("<SessionId xsi:nil=\"true\"/>"),
    }
    element(&mut out, "EnterpriseUrl", env.enterprise_url);
    element(&mut out, "PartnerUrl", env.partner_url);
    for (id, record) in notifications {
        out.push_str("<Notification>");
        element(&mut out, "Id", id);
        out.push_str(&format!(
            "<sObject xsi:type=\"sf:{}\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">",
            escape(object)
        ));
        if let Some(Value::String(record_id)) = record.get("Id") {
            element(&mut out, "sf:Id", record_id);
        }
        for field in &sorted {
            if let Some(text) = record
                .get(field.as_str())
                .and_then(|v| soap_value(kind(field), v))
            {
                prefixed_element(&mut out, "sf:", field, &text);
            }
        }
        out.push_str("</sObject></Notification>");
    }
    out.push_str("</notifications></soapenv:Body></soapenv:Envelope>");
    out
}

fn element(out: &mut String, name: &str, text: &str) {
    prefixed_element(out, "", name, text);
}

fn prefixed_element(out: &mut String, prefix: &str, name: &str, text: &str) {
    for part in [
        "<",
        prefix,
        name,
        ">",
        &escape(text),
        "</",
        prefix,
        name,
        ">",
    ] {
        out.push_str(part);
    }
}

/// A field value as Outbound Message XML text: `true`/`false`, `120000.0`, `…000Z`.
fn soap_value(kind: Kind, value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match kind {
            Kind::Integer => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
            _ => {
                let f = n.as_f64()?;
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            }
        },
        Value::String(s) if kind == Kind::DateTime => match parse_datetime(s) {
            // The fixed RFC 3339 writer, not a format string parsed at every value.
            Some(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => s.clone(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::simulator::schema::Schema;
    use crate::simulator::standard::standard_objects;

    fn kind_of(object: &str) -> impl Fn(&str) -> Kind {
        let def = Schema::new(standard_objects(None)).object(object);
        move |f| kind(def.as_deref(), f)
    }

    #[test]
    fn a_message_matches_sample_c_byte_for_byte() {
        let record = json!({"Id": "0067F000003pmdWQAQ", "AccountId": "0017F000007ydJmQAI", "Amount": 120000.0,
            "CloseDate": "2017-04-03", "LeadSource": "Phone Inquiry", "Name": "Express Logistics SLA",
            "StageName": "Perception Analysis", "Type": null});
        let record = record.as_object().cloned().unwrap_or_default();
        let fields: Vec<String> = [
            "StageName",
            "Name",
            "Id",
            "Amount",
            "LeadSource",
            "AccountId",
            "CloseDate",
            "Type",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let env = Envelope {
            org_id: "00D7F00000107XsUAI",
            action_id: "04k7F0000008V3hQAE",
            session_id: None,
            enterprise_url: "https://ap5.salesforce.com/services/Soap/c/47.0/00D7F00000107Xs",
            partner_url: "https://ap5.salesforce.com/services/Soap/u/47.0/00D7F00000107Xs",
        };
        let xml = soap_message(
            &env,
            "Opportunity",
            &fields,
            &[("04l7F000008aeAyQAI", &record)],
            kind_of("Opportunity"),
        );
        let sample_c = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D7F00000107XsUAI</OrganizationId><ActionId>04k7F0000008V3hQAE</ActionId><SessionId xsi:nil="true"/><EnterpriseUrl>https://ap5.salesforce.com/services/Soap/c/47.0/00D7F00000107Xs</EnterpriseUrl><PartnerUrl>https://ap5.salesforce.com/services/Soap/u/47.0/00D7F00000107Xs</PartnerUrl><Notification><Id>04l7F000008aeAyQAI</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0067F000003pmdWQAQ</sf:Id><sf:AccountId>0017F000007ydJmQAI</sf:AccountId><sf:Amount>120000.0</sf:Amount><sf:CloseDate>2017-04-03</sf:CloseDate><sf:LeadSource>Phone Inquiry</sf:LeadSource><sf:Name>Express Logistics SLA</sf:Name><sf:StageName>Perception Analysis</sf:StageName></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(xml, sample_c);
    }

    #[test]
    fn text_is_escaped_and_datetimes_end_in_z() {
        let record = json!({"Id": "0015g00000000001AAA", "Name": "A & B <x>", "SystemModstamp": "2024-01-02T03:04:05.000+0000"});
        let record = record.as_object().cloned().unwrap_or_default();
        let env = Envelope {
            org_id: "o",
            action_id: "a",
            session_id: None,
            enterprise_url: "e",
            partner_url: "p",
        };
        let xml = soap_message(
            &env,
            "Account",
            &["Name".into(), "SystemModstamp".into()],
            &[("n", &record)],
            kind_of("Account"),
        );
        assert!(
            xml.contains("<sf:Name>A &amp; B &lt;x&gt;</sf:Name>"),
            "{xml}"
        );
        assert!(
            xml.contains("<sf:SystemModstamp>2024-01-02T03:04:05.000Z</sf:SystemModstamp>"),
            "{xml}"
        );
    }

    #[test]
    fn only_a_true_ack_counts() {
        let ack = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;
        assert!(is_ack(ack));
        assert!(!is_ack(&ack.replace("true", "false")));
        assert!(!is_ack("not xml"));
    }
}
