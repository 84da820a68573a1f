//! No echo storms: the Outbound Message Salesforce sends back for sfsync's own write costs no
//! pull, while a user's change that follows it is pulled.

use std::time::{Duration, Instant};

use serde_json::json;
use sfsync::domain::ObjectType;

use crate::push_support::{drain, push_env};

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_outbound_message_for_sfsyncs_own_write_costs_no_pull() {
    let mut env = push_env().await;
    env.sim.set_outbound_url(Some(format!(
        "{}/webhooks/salesforce/outbound/push-test-webhook-key-1",
        env.app.base
    )));
    let company = env
        .create(
            "/companies",
            json!({"name": "Echo Labs", "website": "https://echolabs.example", "industry": "Energy",
                   "annual_revenue": 1250000.0, "employees": 40}),
        )
        .await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "first_name": "Mara", "last_name": "Quinn",
                   "email": "mara@echolabs.example", "title": "Head of Ops", "phone": "+1 555 0100"}),
        )
        .await;
    drain(&mut env.worker).await;
    let contact_sf = env.sf_id("/contacts", contact, "salesforce_id").await;
    let account_sf = env.sf_id("/companies", company, "salesforce_id").await;

    // Salesforce reports both writes back; sfsync acknowledges them and queues nothing.
    until("the org's messages to be acknowledged", || {
        let s = env.sim.outbound_stats();
        s.pending == 0 && s.notifications_acked >= 2
    })
    .await;
    let store = env.app.store();
    let org = env.org.clone();
    assert_eq!(
        store
            .pending_record(&org, ObjectType::Contact, &contact_sf)
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .pending_record(&org, ObjectType::Account, &account_sf)
            .expect("read"),
        None
    );
    let status = env.app.status().await;
    assert!(
        status["inbox"]["echoes_total"].as_u64().expect("echoes") >= 2,
        "{status}"
    );

    // A person then changes the record in Salesforce: that message is not an echo.
    env.sim
        .update(&contact_sf, json!({"Title": "COO"}))
        .expect("user change");
    until("the user's change to be queued", || {
        store
            .pending_record(&org, ObjectType::Contact, &contact_sf)
            .ok()
            .flatten()
            .is_some()
    })
    .await;
}
