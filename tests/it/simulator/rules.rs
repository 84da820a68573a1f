//! Duplicate and validation rules.

use super::*;

#[tokio::test]
async fn a_duplicate_rule_refuses_single_and_collection_saves_naming_the_match() {
    let org = Org::start().await;
    let rule = org
        .http
        .put(org.ctl("/duplicate-rules/Contact"))
        .json(&json!({"match_fields": ["Email"]}))
        .send()
        .await
        .unwrap();
    let first = org
        .sim
        .create(
            "Contact",
            json!({"LastName": "Black", "Email": "b@acme.test"}),
        )
        .unwrap();

    let (status, single) = sent(org.post(
        "/sobjects/Contact",
        json!({"LastName": "Black 2", "Email": "B@ACME.test"}),
    ))
    .await;
    let (_, collection) = sent(org.post(
        "/composite/sobjects",
        json!({"records": [
            {"attributes": {"type": "Contact"}, "LastName": "Other", "Email": "o@acme.test"},
            {"attributes": {"type": "Contact"}, "LastName": "Black 3", "Email": "b@acme.test"},
        ]}),
    ))
    .await;
    let cleared = org
        .http
        .delete(org.ctl("/duplicate-rules/Contact"))
        .send()
        .await
        .unwrap();
    let after = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "Black 4", "Email": "b@acme.test"}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(rule.status(), StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let e = &single[0];
    assert_eq!(e["errorCode"], "DUPLICATES_DETECTED");
    assert_eq!(e["message"], "Use one of these records?");
    assert!(
        e.get("duplicateResult").is_none(),
        "single records spell it duplicateResut"
    );
    let found = &e["duplicateResut"];
    assert_eq!(found["allowSave"], false);
    assert_eq!(found["duplicateRule"], "Standard_Contact_Duplicate_Rule");
    assert_eq!(found["duplicateRuleEntityType"], "Contact");
    assert_eq!(found["matchResults"][0]["entityType"], "Contact");
    assert_eq!(found["matchResults"][0]["size"], 1);
    assert_eq!(
        found["matchResults"][0]["matchRecords"][0]["record"]["Id"],
        first.as_str()
    );
    assert_eq!(collection[0]["success"], true);
    let ce = &collection[1]["errors"][0];
    assert_eq!(ce["statusCode"], "DUPLICATES_DETECTED");
    assert_eq!(
        ce["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]["Id"],
        first.as_str()
    );
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(after.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_alert_only_duplicate_rule_lets_a_save_with_allow_save_through() {
    let org = Org::start().await;
    org.sim
        .set_duplicate_rule(
            "Account",
            Some(DuplicateRuleSpec {
                name: Some("Accounts_By_Site".into()),
                match_fields: vec!["Name".into(), "Site".into()],
                allow_save: true,
                message: Some("You're creating a duplicate record.".into()),
            }),
        )
        .unwrap();
    org.create("Account", json!({"Name": "Acme", "Site": "HQ"}))
        .await;
    let twin = json!({"Name": "acme", "Site": "hq"});

    let (refused, v) = sent(org.post("/sobjects/Account", twin.clone())).await;
    let other_site = org
        .post(
            "/sobjects/Account",
            json!({"Name": "Acme", "Site": "Branch"}),
        )
        .send()
        .await
        .unwrap();
    let allowed = org
        .post("/sobjects/Account", twin)
        .header("Sforce-Duplicate-Rule-Header", "allowSave=true")
        .send()
        .await
        .unwrap();

    assert_eq!(refused, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["message"], "You're creating a duplicate record.");
    assert_eq!(v[0]["duplicateResut"]["allowSave"], true);
    assert_eq!(v[0]["duplicateResut"]["duplicateRule"], "Accounts_By_Site");
    assert_eq!(
        other_site.status(),
        StatusCode::CREATED,
        "every match field must match"
    );
    assert_eq!(allowed.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_validation_rule_refuses_saves_with_the_admins_message() {
    let org = Org::start().await;
    org.sim
        .set_validation_rule(
            "Opportunity",
            Some(ValidationRuleSpec {
                name: Some("Amount_Required_When_Closing".into()),
                condition: Some("Amount = null AND IsClosed = true".into()),
                message: "Enter an amount before closing the deal.".into(),
                field: Some("Amount".into()),
            }),
        )
        .unwrap();
    let open = json!({"Name": "D", "StageName": "Prospecting", "CloseDate": "2025-01-31"});
    let closing = json!({"Name": "D", "StageName": "Closed Won", "CloseDate": "2025-01-31"});

    let allowed = org
        .post("/sobjects/Opportunity", open)
        .send()
        .await
        .unwrap();
    let (status, refused) = sent(org.post("/sobjects/Opportunity", closing.clone())).await;
    let mut records = closing.clone();
    records["attributes"] = json!({"type": "Opportunity"});
    let (_, collection) =
        sent(org.post("/composite/sobjects", json!({"records": [records]}))).await;
    let by_hand = org.sim.create("Opportunity", closing.clone());
    let always = org
        .http
        .put(org.ctl("/validation-rules/Account"))
        .json(&json!({"message": "Accounts are created in the ERP."}))
        .send()
        .await
        .unwrap();
    let (_, account) = sent(org.post("/sobjects/Account", json!({"Name": "A"}))).await;

    assert_eq!(allowed.status(), StatusCode::CREATED);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused,
        json!([{"message": "Enter an amount before closing the deal.", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Amount"]}])
    );
    assert_eq!(
        collection[0]["errors"][0],
        json!({"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Enter an amount before closing the deal.", "fields": ["Amount"]})
    );
    assert_eq!(
        by_hand.unwrap_err().code,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "rules hold for people too"
    );
    assert_eq!(always.status(), StatusCode::NO_CONTENT);
    assert_eq!(account[0]["message"], "Accounts are created in the ERP.");
    assert_eq!(account[0]["fields"], json!([]));
}
