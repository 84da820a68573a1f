//! End to end through real HTTP: a record changed in the simulated org → a real Outbound
//! Message → the intake → the inbox worker's pull → the local record, for Account, Contact,
//! Lead and Opportunity.

use std::time::Duration;

use serde_json::json;
use sfsync::domain::{OwnershipStatus, SalesforceKind};
use sfsync::store::{LocalRef, RecordKind};

use crate::support::env::start;
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_account_created_then_renamed_in_salesforce_becomes_and_stays_a_local_company() {
    let env = start().await;
    let id = env
        .sim
        .create(
            "Account",
            json!({"Name": "Acme", "Website": "https://www.acme.com/about", "Industry": "Energy",
                   "NumberOfEmployees": 120, "AnnualRevenue": 5000000.0}),
        )
        .expect("create");

    let company = eventually("the company", WAIT, || async { env.company_of(&id) }).await;
    assert_eq!(company.name, "Acme");
    assert_eq!(company.domain.as_deref(), Some("acme.com"));
    assert_eq!(company.industry.as_deref(), Some("Energy"));
    assert_eq!(company.employees, Some(120));
    assert_eq!(company.annual_revenue, Some(5_000_000.0));

    env.sim
        .update(&id, json!({"Name": "Acme Energy", "Industry": "Utilities"}))
        .expect("update");
    let renamed = eventually("the rename", WAIT, || async {
        env.company_of(&id).filter(|c| c.name == "Acme Energy")
    })
    .await;
    assert_eq!(renamed.id, company.id, "the same local company is updated");
    assert_eq!(renamed.industry.as_deref(), Some("Utilities"));
    let provenance = env
        .store()
        .provenance(
            &env.org,
            LocalRef {
                kind: RecordKind::Company,
                id: company.id,
            },
        )
        .expect("provenance");
    assert_eq!(provenance[0].rule, "create");
    assert_eq!(provenance[0].side, "salesforce");
    assert!(
        provenance[1].rule.starts_with("match:salesforce_id"),
        "{provenance:?}"
    );
    assert_eq!(env.store().companies(&env.org).expect("list").len(), 1);
}

#[tokio::test]
async fn a_contact_arrives_linked_to_the_company_of_its_account() {
    let env = start().await;
    let account = env
        .sim
        .create("Account", json!({"Name": "Globex"}))
        .expect("account");
    let contact = env
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Hank", "LastName": "Scorpio", "Email": "hank@globex.com",
                   "Title": "CEO", "AccountId": account.as_str()}),
        )
        .expect("contact");

    let local = eventually("the contact", WAIT, || async { env.contact_of(&contact) }).await;
    let company = env.company_of(&account).expect("the account came first");
    assert_eq!(local.company_id, Some(company.id));
    assert_eq!(local.first_name.as_deref(), Some("Hank"));
    assert_eq!(local.last_name, "Scorpio");
    assert_eq!(local.email.as_deref(), Some("hank@globex.com"));
    assert_eq!(local.title.as_deref(), Some("CEO"));
    assert_eq!(local.salesforce_kind, Some(SalesforceKind::Contact));

    env.sim
        .update(
            &contact,
            json!({"Title": "Founder", "Phone": "+1 555 0100"}),
        )
        .expect("update");
    let updated = eventually("the title change", WAIT, || async {
        env.contact_of(&contact)
            .filter(|c| c.title.as_deref() == Some("Founder"))
    })
    .await;
    assert_eq!(updated.phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(updated.id, local.id);
}

#[tokio::test]
async fn a_lead_becomes_a_local_contact_of_kind_lead() {
    let env = start().await;
    let lead = env
        .sim
        .create(
            "Lead",
            json!({"FirstName": "Ann", "LastName": "Perkins", "Company": "Pawnee Health",
                   "Email": "ann@pawnee.gov"}),
        )
        .expect("lead");
    let local = eventually("the lead", WAIT, || async { env.contact_of(&lead) }).await;
    assert_eq!(local.salesforce_kind, Some(SalesforceKind::Lead));
    assert_eq!(local.last_name, "Perkins");
    assert_eq!(local.email.as_deref(), Some("ann@pawnee.gov"));
    assert_eq!(local.company_id, None, "no company matches the lead");
}

#[tokio::test]
async fn an_opportunity_becomes_a_company_product_with_its_stage_mapped() {
    let env = start().await;
    let account = env
        .sim
        .create("Account", json!({"Name": "Initech"}))
        .expect("account");
    let opp = env
        .sim
        .create(
            "Opportunity",
            json!({"Name": "TPS Reports", "StageName": "Negotiation/Review", "CloseDate": "2025-03-31",
                   "Amount": 25000.0, "AccountId": account.as_str()}),
        )
        .expect("opportunity");
    let product = eventually("the product", WAIT, || async { env.product_of(&opp) }).await;
    let company = env.company_of(&account).expect("company");
    assert_eq!(product.company_id, company.id);
    assert_eq!(product.status, OwnershipStatus::Opportunity);
    assert_eq!(product.stage.as_deref(), Some("negotiation"));
    assert_eq!(product.opportunity_size, Some(25_000.0));
    assert_eq!(product.product, "TPS Reports");
    assert_eq!(
        product.close_date.map(|d| d.to_string()).as_deref(),
        Some("2025-03-31")
    );

    env.sim
        .update(&opp, json!({"StageName": "Closed Won", "Amount": 30000.0}))
        .expect("won");
    let won = eventually("the win", WAIT, || async {
        env.product_of(&opp)
            .filter(|p| p.status == OwnershipStatus::Customer)
    })
    .await;
    assert_eq!(won.opportunity_size, Some(30_000.0));
    assert_eq!(won.id, product.id);

    env.sim
        .update(&opp, json!({"StageName": "Closed Lost"}))
        .expect("lost");
    eventually("the loss", WAIT, || async {
        env.product_of(&opp)
            .filter(|p| p.status == OwnershipStatus::Lost)
    })
    .await;
}

#[tokio::test]
async fn many_notifications_for_one_record_cost_one_pull_not_one_each() {
    let env = start().await;
    let id = env
        .sim
        .create("Account", json!({"Name": "Burst Co"}))
        .expect("create");
    for i in 0..20 {
        env.sim
            .update(&id, json!({"NumberOfEmployees": i}))
            .expect("update");
    }
    eventually("the last value", WAIT, || async {
        env.company_of(&id).filter(|c| c.employees == Some(19))
    })
    .await;
    env.settle(WAIT).await;
    let calls = env.client().api_calls();
    assert!(
        calls <= 6,
        "21 notifications should collapse into a few pulls, took {calls} calls"
    );
}

#[tokio::test]
async fn an_org_specific_stage_table_from_config_maps_its_own_stages() {
    let rule = |name: &str, status, stage: &str| sfsync::domain::StageRule {
        stage_name: name.into(),
        status,
        stage: stage.into(),
    };
    let env = crate::support::env::start_with(sfsync::simulator::SimulatorConfig::default(), |c| {
        c.sync.stages = vec![
            rule("Pilot", sfsync::domain::OwnershipStatus::Prospect, "pilot"),
            rule(
                "Closed Won",
                sfsync::domain::OwnershipStatus::Customer,
                "won",
            ),
        ]
    })
    .await;
    let account = env
        .sim
        .create("Account", json!({"Name": "Staged"}))
        .expect("account");
    let opp = env
        .sim
        .create(
            "Opportunity",
            json!({"Name": "Pilot deal", "StageName": "Pilot", "CloseDate": "2025-01-31",
                   "AccountId": account.as_str()}),
        )
        .expect("opportunity");
    let product = eventually("the product", WAIT, || async { env.product_of(&opp) }).await;
    assert_eq!(product.status, OwnershipStatus::Prospect);
    assert_eq!(product.stage.as_deref(), Some("pilot"));
    env.sim
        .update(&opp, json!({"StageName": "Closed Won"}))
        .expect("won");
    let won = eventually("the win", WAIT, || async {
        env.product_of(&opp)
            .filter(|p| p.status == OwnershipStatus::Customer)
    })
    .await;
    assert_eq!(won.stage.as_deref(), Some("won"));
}
