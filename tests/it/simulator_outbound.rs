//! The simulated org's Outbound Message deliverer under a backlog: how many messages it has in
//! flight at once, and that each message carries its records as they are when it is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sfsync::domain::SalesforceId;
use sfsync::simulator::{SeedSpec, Simulator, SimulatorConfig};

const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

/// An Outbound Message endpoint on 127.0.0.1:0 that answers each POST after `hold`, keeping
/// every body and the most POSTs it ever had open at once.
#[derive(Clone, Default)]
struct SlowEndpoint {
    bodies: Arc<std::sync::Mutex<Vec<String>>>,
    open: Arc<AtomicUsize>,
    most_open: Arc<AtomicUsize>,
}

impl SlowEndpoint {
    async fn start(hold: Duration) -> (SlowEndpoint, String) {
        let endpoint = SlowEndpoint::default();
        let e = endpoint.clone();
        let app = axum::Router::new().route(
            "/om",
            axum::routing::post(move |body: String| {
                let e = e.clone();
                async move {
                    let now = e.open.fetch_add(1, Ordering::SeqCst) + 1;
                    e.most_open.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    e.bodies.lock().unwrap().push(body);
                    e.open.fetch_sub(1, Ordering::SeqCst);
                    ([("content-type", "text/xml; charset=utf-8")], ACK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/om", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, url)
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A simulated org with `accounts` Accounts whose creation queued one notification each, not
/// sent until [`Simulator::set_outbound_url`].
async fn org_with_backlog(accounts: usize, concurrency: usize) -> (Simulator, Vec<SalesforceId>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimulatorConfig {
        outbound_batch_window: Duration::from_millis(5),
        outbound_concurrency: concurrency,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(listener, config).await.unwrap();
    let seeded = sim
        .seed_org(&SeedSpec {
            accounts,
            fire_outbound: true,
            ..SeedSpec::default()
        })
        .unwrap();
    (sim, seeded.accounts)
}

async fn until_acked(sim: &Simulator, notifications: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.outbound_stats().notifications_acked < notifications {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {:?}",
            sim.outbound_stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most messages the endpoint had open at once while `accounts` notifications (of 100 a
/// message) were delivered with `concurrency` lanes.
async fn most_open(concurrency: usize) -> usize {
    let (endpoint, url) = SlowEndpoint::start(Duration::from_millis(60)).await;
    let (sim, _) = org_with_backlog(800, concurrency).await;
    sim.set_outbound_url(Some(url));
    until_acked(&sim, 800).await;
    assert_eq!(endpoint.bodies().len(), 8, "eight full messages");
    endpoint.most_open.load(Ordering::SeqCst)
}

#[tokio::test]
async fn one_message_is_in_flight_at_a_time_by_default() {
    assert_eq!(SimulatorConfig::default().outbound_concurrency, 1);
    assert_eq!(most_open(1).await, 1);
}

#[tokio::test]
async fn outbound_concurrency_bounds_the_messages_in_flight() {
    assert_eq!(most_open(3).await, 3);
}

#[tokio::test]
async fn a_record_changed_while_its_notification_waits_goes_with_its_latest_data() {
    let (endpoint, url) = SlowEndpoint::start(Duration::from_millis(150)).await;
    let (sim, ids) = org_with_backlog(300, 1).await;
    sim.set_outbound_url(Some(url));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sim.outbound_stats().messages_sent == 0 && endpoint.open.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no message sent");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The first message is on its way; the last Account's notification waits for a later one.
    let last = ids.last().unwrap();
    sim.update(last, json!({"NumberOfEmployees": 4242}))
        .unwrap();
    until_acked(&sim, 300).await;
    let carrying: Vec<String> = endpoint
        .bodies()
        .into_iter()
        .filter(|b| b.contains(&format!("<sf:Id>{last}</sf:Id>")))
        .collect();
    assert!(!carrying.is_empty(), "the last Account was notified");
    for body in &carrying {
        let at = body.find(&format!("<sf:Id>{last}</sf:Id>")).unwrap();
        let sobject = &body[at..at + body[at..].find("</sObject>").unwrap()];
        assert!(
            sobject.contains("<sf:NumberOfEmployees>4242</sf:NumberOfEmployees>"),
            "sent with the value it had when queued: {sobject}"
        );
    }
}
