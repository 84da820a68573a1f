//! Activities as a custom object: with `[activities]` naming one, emails and meetings become its
//! records with their parts in the mapped fields (and land once when answers are lost), and the
//! setup check looks at that object instead of Task and Event.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use sfsync::config::{ActivitiesConfig, ActivityFields, Config};
use sfsync::simulator::{CustomObjectSpec, Faults, SimulatorConfig};

use crate::push_support::*;
use crate::support::env::{self, MARKER};

const OBJECT: &str = "Sales_Activity__c";

/// `[activities]` for the simulator's `Sales_Activity__c`.
fn custom(config: &mut Config) {
    config.activities = ActivitiesConfig {
        object: OBJECT.into(),
        fields: ActivityFields {
            subject: Some("Subject__c".into()),
            description: Some("Description__c".into()),
            kind: Some("Type__c".into()),
            occurred_at: Some("Occurred_At__c".into()),
            contact: Some("Contact__c".into()),
            company: Some("Account__c".into()),
            marker: Some(MARKER.into()),
        },
        ..ActivitiesConfig::default()
    };
}

#[tokio::test]
async fn with_a_custom_activity_object_emails_and_meetings_become_its_records_once() {
    let mut env = push_env_with(custom).await;
    let mut config = Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"0123456789abcdef\"\n[store]\npath = \"x\"\n",
    )
    .expect("config");
    custom(&mut config);
    env.worker = env
        .outbox_worker()
        .with_activities(Arc::new(config.activity_target()));
    env.sim
        .add_custom_object(&CustomObjectSpec::sales_activity(Some(MARKER)))
        .expect("custom object");
    let company = env.company("Initrode").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Waddams", "email": "milton@initrode.example"}),
        )
        .await;
    let email = env
        .create(
            "/activities",
            json!({"kind": "email_sent", "contact_id": contact, "subject": "Stapler",
                   "description": "About the stapler", "occurred_at": "2024-05-06T07:08:09Z"}),
        )
        .await;
    let meeting = env
        .create(
            "/activities",
            json!({"kind": "meeting_booked", "contact_id": contact, "subject": "Basement",
                   "starts_at": "2024-05-10T15:00:00Z", "ends_at": "2024-05-10T15:45:00Z"}),
        )
        .await;
    // Every write commits in the org and its answer is lost: the retry finds it by its marker.
    env.sim.set_faults(Faults {
        drop_after_commit_rate: 1.0,
        ..Faults::default()
    });
    let first = env.worker.step().await.expect("step").into_report();
    assert!(first.retrying > 0, "{first:?}");
    env.sim.set_faults(Faults::default());

    drain(&mut env.worker).await;

    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let who = env.sf_id("/contacts", contact, "salesforce_id").await;
    let e = env.record(&env.sf_id("/activities", email, "salesforce_id").await);
    assert_eq!(e["Sfsync_Id__c"], format!("sfsync:activity:{email}"), "{e}");
    assert_eq!(e["Subject__c"], "Stapler");
    assert_eq!(e["Description__c"], "About the stapler");
    assert_eq!(e["Type__c"], "Email");
    assert_eq!(e["Contact__c"], json!(who));
    assert_eq!(e["Account__c"], json!(account));
    assert!(
        e["Occurred_At__c"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-06T07:08:09")),
        "{e}"
    );
    let m = env.record(&env.sf_id("/activities", meeting, "salesforce_id").await);
    assert_eq!(m["Type__c"], "Meeting");
    assert!(
        m["Occurred_At__c"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-10T15:00:00")),
        "{m}"
    );
    assert_eq!(env.live(OBJECT).len(), 2);
    assert_eq!(assert_no_duplicates(&env.sim, OBJECT), 2);
    assert!(env.live("Task").is_empty() && env.live("Event").is_empty());
}

#[tokio::test]
async fn the_setup_check_looks_at_the_custom_activity_object_instead_of_task_and_event() {
    let env = env::start_with(SimulatorConfig::default(), custom).await;
    let (_, report) = env.api(Method::GET, "/setup", None).await;
    let objects: Vec<Value> = report["objects"]
        .as_array()
        .map(|all| all.iter().map(|o| o["object"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        json!(objects),
        json!(["Account", "Contact", "Lead", "Opportunity", OBJECT]),
        "{report}"
    );
    assert_eq!(
        report["ok"], false,
        "the org has no such object yet: {report}"
    );
    assert!(
        report["objects"][4]["problems"]
            .to_string()
            .contains("does not exist"),
        "{report}"
    );

    env.sim
        .add_custom_object(&CustomObjectSpec::sales_activity(Some(MARKER)))
        .expect("custom object");
    let (_, report) = env.api(Method::GET, "/setup", None).await;
    assert_eq!(report["ok"], true, "{report}");

    env.sim
        .remove_field(OBJECT, "Type__c")
        .expect("remove a mapped field");
    let (_, report) = env.api(Method::GET, "/setup", None).await;
    let problems = report["objects"][4]["problems"].to_string();
    assert!(problems.contains("Type__c"), "{report}");
}
