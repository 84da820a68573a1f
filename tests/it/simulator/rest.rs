//! The data API: creates, reads, updates, deletes, upserts, queries and sObject Collections.

use super::*;

#[tokio::test]
async fn a_create_answers_201_with_id_success_and_errors() {
    let org = Org::start().await;

    let resp = org
        .post("/sobjects/Account", json!({"Name": "Acme"}))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::CREATED);
    let limit = resp
        .headers()
        .get("Sforce-Limit-Info")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (_, v) = body(resp).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(v, json!({"id": id, "success": true, "errors": []}));
    assert!(id.starts_with("001") && id.len() == 18, "{id}");
    assert!(sfsync::domain::SalesforceId::parse(id).is_ok());
    assert_eq!(limit.as_deref(), Some("api-usage=1/100000"));
}

#[tokio::test]
async fn a_read_shows_attributes_and_the_chosen_fields_in_rest_datetime_format() {
    let org = Org::start().await;
    let id = org
        .create(
            "Account",
            json!({"Name": "Acme", "Website": "https://acme.test"}),
        )
        .await;

    let (status, v) = sent(org.get(&format!(
        "/sobjects/Account/{id}?fields=Name,SystemModstamp"
    )))
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["attributes"],
        json!({"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")})
    );
    assert_eq!(v["Name"], "Acme");
    let stamp = v["SystemModstamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3f%z").is_ok()
            && stamp.ends_with(".000+0000"),
        "{stamp}"
    );
    assert_eq!(v["Id"], id, "a record read answers its Id as well");
    assert!(v.get("Website").is_none());
}

#[tokio::test]
async fn an_update_answers_204_and_changes_the_record() {
    let org = Org::start().await;
    let id = org.create("Contact", json!({"LastName": "Black"})).await;

    let resp = org
        .patch(
            &format!("/sobjects/Contact/{id}"),
            json!({"Title": "CTO", "Email": null}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let sid = sfsync::domain::SalesforceId::parse(&id).unwrap();
    assert_eq!(org.sim.get(&sid).unwrap()["Title"], "CTO");
}

#[tokio::test]
async fn a_missing_required_field_answers_the_documented_error_body() {
    let org = Org::start().await;

    let (status, v) = sent(org.post("/sobjects/Contact", json!({"FirstName": "Ada"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );

    let (_, v) = sent(org.post("/sobjects/Lead", json!({"LastName": "Black"}))).await;
    assert_eq!(v[0]["message"], "Required fields are missing: [Company]");

    let (_, v) = sent(org.post("/sobjects/Opportunity", json!({"Name": "Deal"}))).await;
    assert_eq!(v[0]["fields"], json!(["StageName", "CloseDate"]));
}

#[tokio::test]
async fn a_second_delete_answers_entity_is_deleted() {
    let org = Org::start().await;
    let id = org.create("Account", json!({"Name": "Gone"})).await;

    let first = org
        .delete(&format!("/sobjects/Account/{id}"))
        .send()
        .await
        .unwrap();
    let (status, v) = sent(org.delete(&format!("/sobjects/Account/{id}"))).await;

    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
}

#[tokio::test]
async fn an_upsert_creates_201_then_updates_200_and_several_matches_answer_300() {
    let org = Org::start().await;
    org.sim
        .add_field("Account", &FieldSpec::text("Ext_Id__c").external_id())
        .unwrap();

    let (s1, created) =
        sent(org.patch("/sobjects/Account/Ext_Id__c/A-1", json!({"Name": "Acme"}))).await;
    let (s2, updated) =
        sent(org.patch("/sobjects/Account/Ext_Id__c/A-1", json!({"Name": "Acme 2"}))).await;

    assert_eq!(s1, StatusCode::CREATED);
    assert_eq!(created["created"], true);
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(updated["created"], false);
    assert_eq!(updated["id"], created["id"]);

    org.create("Account", json!({"Name": "Twin 1", "Ext_Id__c": "T"}))
        .await;
    org.create("Account", json!({"Name": "Twin 2", "Ext_Id__c": "T"}))
        .await;
    let (s3, many) = sent(org.patch("/sobjects/Account/Ext_Id__c/T", json!({"Name": "X"}))).await;
    assert_eq!(s3, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(many.as_array().map(Vec::len), Some(2));

    let (s4, unknown) = sent(org.patch("/sobjects/Account/Nope/1", json!({"Name": "X"}))).await;
    assert_eq!(s4, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
}

#[tokio::test]
async fn if_modified_since_answers_304_unless_the_record_changed_later() {
    let org = Org::start().await;
    let id = org.create("Account", json!({"Name": "Acme"})).await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let earlier = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();

    let not_modified = org
        .get(&format!("/sobjects/Account/{id}"))
        .header("If-Modified-Since", later)
        .send()
        .await
        .unwrap();
    let modified = org
        .get(&format!("/sobjects/Account/{id}"))
        .header("If-Modified-Since", earlier)
        .send()
        .await
        .unwrap();

    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(modified.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_query_over_2001_records_pages_with_next_records_url() {
    let org = Org::start().await;
    let seeded = org
        .sim
        .seed_org(&sfsync::simulator::SeedSpec {
            accounts: 2001,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(seeded.accounts.len(), 2001);

    let q = "SELECT Id, Name, SystemModstamp FROM Account WHERE SystemModstamp > 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id";
    let (status, first) = sent(org.get("/query").query(&[("q", q)])).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["totalSize"], 2001);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().map(Vec::len), Some(2000));
    assert_eq!(first["records"][0]["attributes"]["type"], "Account");
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(
        next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-2000"),
        "{next}"
    );

    let resp = org
        .http
        .get(format!("{}{next}", org.sim.instance_url()))
        .bearer_auth(&org.creds.access_token)
        .send()
        .await
        .unwrap();
    let (_, second) = body(resp).await;
    assert_eq!(second["done"], true);
    assert_eq!(second["records"].as_array().map(Vec::len), Some(1));
    assert!(second.get("nextRecordsUrl").is_none());
}

#[tokio::test]
async fn the_batch_size_query_option_is_honoured() {
    let org = Org::start().await;
    org.sim
        .seed_org(&sfsync::simulator::SeedSpec {
            accounts: 450,
            ..Default::default()
        })
        .unwrap();

    let resp = org
        .get("/query")
        .query(&[("q", "SELECT Id FROM Account")])
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    let (_, v) = body(resp).await;

    assert_eq!(v["records"].as_array().map(Vec::len), Some(200));
    assert!(v["nextRecordsUrl"].as_str().unwrap().ends_with("-200"));
}

#[tokio::test]
async fn query_all_returns_deleted_rows_that_query_hides() {
    let org = Org::start().await;
    let id = org.create("Contact", json!({"LastName": "Gone"})).await;
    org.delete(&format!("/sobjects/Contact/{id}"))
        .send()
        .await
        .unwrap();
    let q = [(
        "q",
        "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
    )];

    let (_, live) = sent(org.get("/query").query(&q)).await;
    let (_, all) = sent(org.get("/queryAll").query(&q)).await;

    assert_eq!(live["totalSize"], 0);
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["records"][0]["Id"], id);
}

#[tokio::test]
async fn an_unknown_column_answers_invalid_field() {
    let org = Org::start().await;

    let (status, v) = sent(
        org.get("/query")
            .query(&[("q", "SELECT Nope FROM Account")]),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
}

#[tokio::test]
async fn collections_answer_per_record_results_with_status_code() {
    let org = Org::start().await;
    let records = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Account"}, "Name": "Good"},
        {"attributes": {"type": "Account"}, "Website": "x"},
    ]});

    let (status, v) = sent(org.post("/composite/sobjects", records)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[0]["errors"], json!([]));
    assert_eq!(
        v[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]", "fields": ["Name"]}]})
    );
}

#[tokio::test]
async fn all_or_none_rolls_back_the_valid_records() {
    let org = Org::start().await;
    let records = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Account"}, "Name": "Good"},
        {"attributes": {"type": "Account"}},
    ]});

    let (_, v) = sent(org.post("/composite/sobjects", records)).await;

    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(v[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert!(org.sim.list("Account").is_empty());
}

#[tokio::test]
async fn collections_update_delete_and_retrieve_in_id_order() {
    let org = Org::start().await;
    let a = org.create("Account", json!({"Name": "A"})).await;
    let b = org.create("Account", json!({"Name": "B"})).await;

    let update = json!({"records": [{"attributes": {"type": "Account"}, "id": a, "Name": "A2"}]});
    let (_, updated) = sent(org.patch("/composite/sobjects", update)).await;
    let (_, deleted) =
        sent(org.delete(&format!("/composite/sobjects?ids={b}&allOrNone=false"))).await;
    let (status, got) = sent(org.get(&format!(
        "/composite/sobjects/Account?ids={b},{a}&fields=Name"
    )))
    .await;

    assert_eq!(updated, json!([{"id": a, "success": true, "errors": []}]));
    assert_eq!(deleted, json!([{"id": b, "success": true, "errors": []}]));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got[0], Value::Null);
    assert_eq!(got[1]["Name"], "A2");
}

#[tokio::test]
async fn a_retrieve_by_post_takes_up_to_2000_ids_and_is_a_read() {
    let org = Org::start().await;
    let a = org.create("Account", json!({"Name": "A"})).await;
    // A row lock only ever meets a write: a retrieve carried by POST is a read.
    org.sim.set_faults(Faults {
        lock_row_rate: 1.0,
        ..Faults::default()
    });
    let ids = vec![a.clone(); 2_000];
    let (status, got) = sent(org.post(
        "/composite/sobjects/Account",
        json!({"ids": ids, "fields": ["Name"]}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.as_array().map(Vec::len), Some(2_000));
    assert_eq!(got[1_999]["Name"], "A");

    let too_many = vec![a.clone(); 2_001];
    let (status, refused) = sent(org.post(
        "/composite/sobjects/Account",
        json!({"ids": too_many, "fields": ["Name"]}),
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused[0]["errorCode"], "EXCEEDED_ID_LIMIT");
}

#[tokio::test]
async fn a_uri_over_16_kib_is_refused_414_before_it_is_counted() {
    let org = Org::start().await;
    let a = org.create("Account", json!({"Name": "A"})).await;
    let before = org.sim.api_calls().total;
    // 1,000 ids of 18 characters and their commas: about 19,000 bytes of URI.
    let ids = vec![a.as_str(); 1_000].join(",");
    let response = org
        .get(&format!(
            "/composite/sobjects/Account?ids={ids}&fields=Name"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(org.sim.api_calls().total, before);
}

#[tokio::test]
async fn a_collection_upsert_reports_the_created_flag() {
    let org = Org::start().await;
    org.sim
        .add_field("Contact", &FieldSpec::marker("Ext__c"))
        .unwrap();
    org.create("Contact", json!({"LastName": "Old", "Ext__c": "k1"}))
        .await;
    let records = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Contact"}, "Ext__c": "k1", "LastName": "Updated"},
        {"attributes": {"type": "Contact"}, "Ext__c": "k2", "LastName": "New"},
    ]});

    let (_, v) = sent(org.patch("/composite/sobjects/Contact/Ext__c", records)).await;

    assert_eq!(v[0]["created"], false);
    assert_eq!(v[1]["created"], true);
    assert_eq!(org.sim.list("Contact").len(), 2);
}
