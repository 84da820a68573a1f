//! The push rules end to end: local API → outbox → worker → the simulated org, and the links and
//! stamps written back.

use serde_json::json;
use sfsync::domain::SalesforceId;
use sfsync::simulator::ConvertOptions;

use crate::push_support::*;

fn stamp(env: &PushEnv, id: &SalesforceId) -> Option<i64> {
    env.app
        .store()
        .transact(|tx| -> Result<Option<i64>, sfsync::store::TxAbort<()>> {
            Ok(tx.written_stamp(&env.org, id)?)
        })
        .expect("read meta")
}

#[tokio::test]
async fn a_new_contact_becomes_a_contact_on_its_companys_new_account() {
    let mut env = push_env().await;
    let company = env.company("Acme").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "first_name": "Ada", "last_name": "Lovelace",
                   "email": "ada@acme.example", "title": "CTO"}),
        )
        .await;

    drain(&mut env.worker).await;

    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let person = env.sf_id("/contacts", contact, "salesforce_id").await;
    assert_eq!(
        env.listed("/contacts", contact).await["salesforce_kind"],
        "contact"
    );
    let a = env.record(&account);
    assert_eq!(a["Name"], "Acme");
    assert_eq!(a["Website"], "https://acme.example");
    let c = env.record(&person);
    assert_eq!(c["LastName"], "Lovelace");
    assert_eq!(c["Email"], "ada@acme.example");
    assert_eq!(c["AccountId"], json!(account));
    assert_eq!(env.live("Contact").len(), 1);
    assert_eq!(env.live("Account").len(), 1);
    // The written SystemModstamp is kept so the inbox can skip the echo.
    assert!(stamp(&env, &person).is_some(), "no stamp for the contact");
    assert!(stamp(&env, &account).is_some(), "no stamp for the account");
    let (_, outbox) = env.get("/outbox").await;
    let outbox = outbox["items"].clone();
    assert_eq!(outbox, json!([]));
}

#[tokio::test]
async fn a_contact_pushed_as_a_lead_carries_its_company_name() {
    let mut env = push_env().await;
    let company = env.company("Globex").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Hopper", "email": "grace@globex.example",
                   "push_as": "lead"}),
        )
        .await;

    drain(&mut env.worker).await;

    let lead = env.sf_id("/contacts", contact, "salesforce_id").await;
    assert_eq!(lead.key_prefix(), "00Q");
    assert_eq!(
        env.listed("/contacts", contact).await["salesforce_kind"],
        "lead"
    );
    let l = env.record(&lead);
    assert_eq!(l["Company"], "Globex");
    assert_eq!(l["LastName"], "Hopper");
    assert!(env.live("Contact").is_empty());
}

#[tokio::test]
async fn the_configured_default_makes_leads_too() {
    let mut env = push_env_as(sfsync::domain::PushAs::Lead).await;
    let company = env.company("Initech").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Lumbergh"}),
        )
        .await;
    drain(&mut env.worker).await;
    assert_eq!(
        env.sf_id("/contacts", contact, "salesforce_id")
            .await
            .key_prefix(),
        "00Q"
    );
}

#[tokio::test]
async fn a_person_both_sides_have_is_linked_and_not_created_again() {
    let mut env = push_env().await;
    let company = env.company("Umbrella").await;
    drain(&mut env.worker).await;
    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let theirs = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Wesker", "Email": "Albert@Umbrella.example", "AccountId": account.as_str()}),
        )
        .expect("create in salesforce");
    // Same email at another Account is someone else's record: not a match.
    env.sim
        .create(
            "Contact",
            json!({"LastName": "Other", "Email": "x@umbrella.example"}),
        )
        .expect("create");

    let ours = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Wesker", "email": "albert@umbrella.example"}),
        )
        .await;
    let other = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Other", "email": "x@umbrella.example"}),
        )
        .await;
    drain(&mut env.worker).await;

    assert_eq!(env.sf_id("/contacts", ours, "salesforce_id").await, theirs);
    // Their record was linked, not written: its next notification must still be pulled.
    assert_eq!(stamp(&env, &theirs), None);
    assert_ne!(env.sf_id("/contacts", other, "salesforce_id").await, theirs);
    let wesker: Vec<_> = env
        .live("Contact")
        .into_iter()
        .filter(|c| c["LastName"] == "Wesker")
        .collect();
    assert_eq!(wesker.len(), 1, "a duplicate was made: {wesker:?}");
    assert_eq!(env.live("Contact").len(), 3);
}

#[tokio::test]
async fn an_email_sent_is_a_completed_email_task_and_a_meeting_an_event() {
    let mut env = push_env().await;
    let company = env.company("Hooli").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Belson", "email": "gavin@hooli.example"}),
        )
        .await;
    let email = env
        .create(
            "/activities",
            json!({"kind": "email_sent", "contact_id": contact, "subject": "Intro",
                   "description": "Hi Gavin", "occurred_at": "2024-05-06T07:08:09Z"}),
        )
        .await;
    let meeting = env
        .create(
            "/activities",
            json!({"kind": "meeting_booked", "contact_id": contact, "subject": "Demo",
                   "starts_at": "2024-05-10T15:00:00Z", "ends_at": "2024-05-10T15:45:00Z"}),
        )
        .await;

    drain(&mut env.worker).await;

    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let who = env.sf_id("/contacts", contact, "salesforce_id").await;
    let task = env.record(&env.sf_id("/activities", email, "salesforce_id").await);
    assert_eq!(task["TaskSubtype"], "Email");
    assert_eq!(task["Status"], "Completed");
    assert_eq!(task["Subject"], "Intro");
    assert_eq!(task["Description"], "Hi Gavin");
    assert_eq!(task["ActivityDate"], "2024-05-06");
    assert_eq!(task["WhoId"], json!(who));
    assert_eq!(task["WhatId"], json!(account));
    let event = env.record(&env.sf_id("/activities", meeting, "salesforce_id").await);
    assert_eq!(event["Subject"], "Demo");
    assert_eq!(event["WhoId"], json!(who));
    assert_eq!(event["WhatId"], json!(account));
    assert!(
        event["StartDateTime"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-10T15:00:00")),
        "{event}"
    );
    assert!(
        event["EndDateTime"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-10T15:45:00")),
        "{event}"
    );
}

#[tokio::test]
async fn an_opportunity_is_created_with_the_mapped_stage_then_updated_in_place() {
    let mut env = push_env().await;
    let company = env.company("Stark").await;
    let prospect = env
        .create(
            "/company-products",
            json!({"company_id": company, "product": "Armor", "status": "PROSPECT", "opportunity_size": 10.0}),
        )
        .await;
    let deal = env
        .create(
            "/company-products",
            json!({"company_id": company, "product": "Reactor", "status": "OPPORTUNITY",
                   "opportunity_size": 250000.0, "stage": "negotiation", "close_date": "2025-03-31"}),
        )
        .await;

    drain(&mut env.worker).await;

    let account = env.sf_id("/companies", company, "salesforce_id").await;
    let opp_id = env
        .sf_id("/company-products", deal, "salesforce_opportunity_id")
        .await;
    let opp = env.record(&opp_id);
    assert_eq!(opp["StageName"], "Negotiation/Review");
    assert_eq!(opp["Amount"], json!(250000.0));
    assert_eq!(opp["CloseDate"], "2025-03-31");
    assert_eq!(opp["AccountId"], json!(account));
    assert!(
        env.listed("/company-products", prospect).await["salesforce_opportunity_id"].is_null(),
        "a prospect is not an opportunity"
    );

    let (status, _) = env
        .patch(
            &format!("/company-products/{deal}"),
            json!({"status": "CUSTOMER"}),
        )
        .await;
    assert_eq!(status, 200);
    drain(&mut env.worker).await;

    assert_eq!(env.record(&opp_id)["StageName"], "Closed Won");
    assert_eq!(env.live("Opportunity").len(), 1);
}

#[tokio::test]
async fn an_update_aimed_at_a_merged_contact_goes_to_the_survivor() {
    let mut env = push_env().await;
    let company = env.company("Wayne").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Wayne"}),
        )
        .await;
    drain(&mut env.worker).await;
    let loser = env.sf_id("/contacts", contact, "salesforce_id").await;
    let master = env
        .sim
        .create("Contact", json!({"LastName": "Wayne (master)"}))
        .expect("create");
    env.sim
        .merge(&master, std::slice::from_ref(&loser))
        .expect("merge");

    let (status, _) = env
        .patch(
            &format!("/contacts/{contact}"),
            json!({"title": "Chairman"}),
        )
        .await;
    assert_eq!(status, 200);
    let reports = drain(&mut env.worker).await;

    assert!(reports.iter().any(|r| r.repointed == 1), "{reports:?}");
    assert_eq!(
        env.sf_id("/contacts", contact, "salesforce_id").await,
        master
    );
    assert_eq!(env.record(&master)["Title"], "Chairman");
    let (_, dead) = env.get("/outbox?state=dead").await;
    let dead = dead["items"].clone();
    assert_eq!(dead, json!([]));
}

#[tokio::test]
async fn an_update_aimed_at_a_converted_lead_goes_to_its_contact() {
    let mut env = push_env().await;
    let company = env.company("Cyberdyne").await;
    let person = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "Dyson", "push_as": "lead"}),
        )
        .await;
    drain(&mut env.worker).await;
    let lead = env.sf_id("/contacts", person, "salesforce_id").await;
    let converted = env
        .sim
        .convert_lead(&lead, ConvertOptions::default())
        .expect("convert");

    env.patch(&format!("/contacts/{person}"), json!({"title": "Director"}))
        .await;
    drain(&mut env.worker).await;

    assert_eq!(
        env.sf_id("/contacts", person, "salesforce_id").await,
        converted.contact_id
    );
    assert_eq!(
        env.listed("/contacts", person).await["salesforce_kind"],
        "contact"
    );
    assert_eq!(env.record(&converted.contact_id)["Title"], "Director");
}

#[tokio::test]
async fn a_refused_record_becomes_a_dead_letter_and_a_retry_after_the_fix_delivers_it() {
    let mut env = push_env().await;
    // A Lead needs a Company: Salesforce refuses one without.
    let person = env
        .create(
            "/contacts",
            json!({"last_name": "Nobody", "push_as": "lead"}),
        )
        .await;
    drain(&mut env.worker).await;

    let (_, dead) = env.get("/outbox?state=dead").await;
    let dead = dead["items"].clone();
    let dead = dead.as_array().expect("list").clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let message = dead[0]["last_error"].as_str().expect("message");
    assert!(message.contains("REQUIRED_FIELD_MISSING"), "{message}");
    assert!(message.contains("Company"), "{message}");
    assert_eq!(
        env.app.status().await["outbox"],
        json!({"pending": 0, "dead": 1})
    );
    assert!(env.live("Lead").is_empty());

    // The fix: the contact gets a company. The entry stays dead until a person retries it.
    let company = env.company("Tyrell").await;
    env.patch(
        &format!("/contacts/{person}"),
        json!({"company_id": company}),
    )
    .await;
    drain(&mut env.worker).await;
    assert!(env.listed("/contacts", person).await["salesforce_id"].is_null());

    let id = dead[0]["id"].as_u64().expect("id");
    let (status, _) = env.post(&format!("/outbox/{id}/retry"), json!({})).await;
    assert_eq!(status, 200);
    drain(&mut env.worker).await;

    let lead = env.record(&env.sf_id("/contacts", person, "salesforce_id").await);
    assert_eq!(lead["Company"], "Tyrell");
    assert_eq!(
        env.app.status().await["outbox"],
        json!({"pending": 0, "dead": 0})
    );
}

#[tokio::test]
async fn a_dead_letter_can_be_discarded_and_only_dead_letters_can() {
    let mut env = push_env().await;
    env.create(
        "/contacts",
        json!({"last_name": "Ghost", "push_as": "lead"}),
    )
    .await;
    let (_, pending) = env.get("/outbox?state=pending").await;
    let pending = pending["items"].clone();
    let id = pending[0]["id"].as_u64().expect("id");
    let (status, _) = env.post(&format!("/outbox/{id}/discard"), json!({})).await;
    assert_eq!(status, 409, "a pending entry is not a dead letter");

    drain(&mut env.worker).await;
    let (status, _) = env.post(&format!("/outbox/{id}/discard"), json!({})).await;
    assert_eq!(status, 200);
    let (_, all) = env.get("/outbox").await;
    let all = all["items"].clone();
    assert_eq!(all, json!([]));
    let (status, _) = env.post(&format!("/outbox/{id}/retry"), json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn sync_now_pushes_a_records_current_state_again() {
    let mut env = push_env().await;
    let company = env.company("Soylent").await;
    drain(&mut env.worker).await;
    let account = env.sf_id("/companies", company, "salesforce_id").await;
    // Someone changes the Account in Salesforce; "Sync to Salesforce" puts ours back.
    env.sim
        .update(&account, json!({"Name": "Soylent (edited)"}))
        .expect("update");

    let (status, body) = env
        .post(&format!("/companies/{company}/sync"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    drain(&mut env.worker).await;

    assert_eq!(env.record(&account)["Name"], "Soylent");
    let (status, _) = env.post("/contacts/999999/sync", json!({})).await;
    assert_eq!(status, 404);
}
