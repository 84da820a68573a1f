//! Opportunities both ways: the stage table maps stages to `StageName` on push, an unchanged
//! stage keeps the org's own `StageName`, and the Opportunity's name is set once and stays.

use serde_json::json;
use sfsync::domain::{ObjectType, OwnershipStatus, SalesforceId, StageRule};
use sfsync::simulator::StageSpec;
use sfsync::sync::pull::{self, Origin, Target};

use crate::push_support::*;

/// Pulls one Opportunity as the inbox would, through the pull side's apply.
async fn pull_opportunity(env: &PushEnv, id: &SalesforceId) {
    let client = client_for(&env.sim, env.store());
    let record = client
        .get_record("Opportunity", id, pull::fields_for(ObjectType::Opportunity))
        .await
        .expect("read the opportunity");
    pull::commit_record(
        env.store(),
        &env.org,
        &env.app.state.pull.rules,
        ObjectType::Opportunity,
        &record,
        &Origin::new("test-pull"),
        Target::Ladder,
        None,
    )
    .expect("apply");
}

fn stage(label: &str, closed: bool, won: bool) -> StageSpec {
    StageSpec {
        label: label.into(),
        api_name: None,
        probability: if won { 100.0 } else { 40.0 },
        closed,
        won,
        forecast_category: None,
        active: true,
        sort_order: None,
    }
}

#[tokio::test]
async fn a_stage_of_the_configured_table_goes_out_as_its_stage_name() {
    let mut env = push_env_with(|c| {
        c.sync.stages = vec![StageRule {
            stage_name: "Pilot".into(),
            status: OwnershipStatus::Opportunity,
            stage: "pilot".into(),
        }];
    })
    .await;
    env.sim
        .add_opportunity_stage(&stage("Pilot", false, false))
        .expect("stage");
    let company = env.company("Tyrell").await;
    let deal = env
        .create(
            "/company-products",
            json!({"company_id": company, "product": "Replicants", "status": "OPPORTUNITY",
                   "opportunity_size": 900.0, "stage": "pilot"}),
        )
        .await;

    drain(&mut env.worker).await;

    let opp = env
        .sf_id("/company-products", deal, "salesforce_opportunity_id")
        .await;
    assert_eq!(env.record(&opp)["StageName"], "Pilot");
}

#[tokio::test]
async fn an_unchanged_stage_keeps_the_orgs_own_stage_name() {
    let mut env = push_env().await;
    env.sim
        .add_opportunity_stage(&stage("Signed Contract", true, true))
        .expect("stage");
    let company = env.company("Wonka").await;
    drain(&mut env.worker).await;
    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let opp = env
        .sim
        .create(
            "Opportunity",
            json!({"Name": "Wonka - Chocolate", "AccountId": account.as_str(), "Amount": 100.0,
                   "StageName": "Signed Contract", "CloseDate": "2025-01-31"}),
        )
        .expect("opportunity");
    pull_opportunity(&env, &opp).await;
    let (_, list) = env.get("/company-products").await;
    let product = list["items"][0].clone();
    assert_eq!(product["status"], "CUSTOMER", "{product}");
    let id = product["id"].as_u64().expect("id");

    let (code, _) = env
        .patch(
            &format!("/company-products/{id}"),
            json!({"opportunity_size": 250.0}),
        )
        .await;
    assert_eq!(code, 200);
    drain(&mut env.worker).await;

    let r = env.record(&opp);
    assert_eq!(r["Amount"], json!(250.0));
    assert_eq!(r["StageName"], "Signed Contract");

    // A changed stage goes out through the table.
    env.patch(
        &format!("/company-products/{id}"),
        json!({"status": "OPPORTUNITY", "stage": "negotiation"}),
    )
    .await;
    drain(&mut env.worker).await;
    assert_eq!(env.record(&opp)["StageName"], "Negotiation/Review");
}

#[tokio::test]
async fn the_opportunity_name_is_set_once_and_stays_across_pulls_and_pushes() {
    let mut env = push_env().await;
    let company = env.company("Acme").await;
    let deal = env
        .create(
            "/company-products",
            json!({"company_id": company, "product": "Widgets", "status": "OPPORTUNITY",
                   "opportunity_size": 10.0, "stage": "qualification"}),
        )
        .await;
    drain(&mut env.worker).await;
    let opp = env
        .sf_id("/company-products", deal, "salesforce_opportunity_id")
        .await;
    assert_eq!(env.record(&opp)["Name"], "Acme - Widgets");

    for size in [20.0, 30.0] {
        pull_opportunity(&env, &opp).await;
        assert_eq!(
            env.listed("/company-products", deal).await["product"],
            "Widgets"
        );
        env.patch(
            &format!("/company-products/{deal}"),
            json!({"opportunity_size": size}),
        )
        .await;
        drain(&mut env.worker).await;
        let r = env.record(&opp);
        assert_eq!(r["Name"], "Acme - Widgets");
        assert_eq!(r["Amount"], json!(size));
        assert_eq!(r["StageName"], "Qualification");
    }
    assert_eq!(env.live("Opportunity").len(), 1);
}
