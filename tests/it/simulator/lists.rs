//! List views and custom objects.

use super::*;

#[tokio::test]
async fn list_views_have_the_documented_shape_and_run_their_query_for_the_caller() {
    let org = Org::start().await;
    let integration = org.sim.integration_user().unwrap();
    org.create("Account", json!({"Name": "Mine", "Industry": "Energy"}))
        .await;
    org.sim
        .create("Account", json!({"Name": "A rep's", "Industry": "Banking"}))
        .unwrap();
    org.sim
        .create(
            "Account",
            json!({"Name": "Also energy", "Industry": "Energy"}),
        )
        .unwrap();

    let (status, list) = sent(org.get("/sobjects/Account/listviews")).await;
    let views = list["listviews"].as_array().unwrap().clone();
    let by_name = |dev: &str| {
        views
            .iter()
            .find(|v| v["developerName"] == dev)
            .cloned()
            .unwrap()
    };
    let all = by_name("AllAccounts");
    let mine = by_name("MyAccounts");
    let all_id = all["id"].as_str().unwrap().to_string();
    let (_, describe) =
        sent(org.get(&format!("/sobjects/Account/listviews/{all_id}/describe"))).await;
    let (_, results) = sent(org.get(&format!(
        "/sobjects/Account/listviews/{all_id}/results?limit=2"
    )))
    .await;
    let mine_id = mine["id"].as_str().unwrap();
    let (_, my_results) =
        sent(org.get(&format!("/sobjects/Account/listviews/{mine_id}/results"))).await;
    let (_, run) = org.query(describe["query"].as_str().unwrap()).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["done"], true);
    assert!(views.iter().any(|v| v["label"] == "New This Week"));
    let url = format!("/services/data/v62.0/sobjects/Account/listviews/{all_id}");
    assert_eq!(
        all,
        json!({
            "describeUrl": format!("{url}/describe"),
            "developerName": "AllAccounts",
            "id": all_id,
            "label": "All Accounts",
            "resultsUrl": format!("{url}/results"),
            "soqlCompatible": true,
            "url": url,
        })
    );
    assert!(all_id.starts_with("00B") && all_id.len() == 18);
    assert_eq!(describe["sobjectType"], "Account");
    assert_eq!(describe["id"], all_id);
    let query = describe["query"].as_str().unwrap();
    assert!(query.starts_with("SELECT Name, "), "{query}");
    assert!(
        query.ends_with("FROM Account ORDER BY Name ASC NULLS FIRST, Id ASC NULLS FIRST"),
        "{query}"
    );
    assert_eq!(describe["columns"][0]["fieldNameOrPath"], "Name");
    assert_eq!(describe["columns"][0]["sortDirection"], "ascending");
    assert_eq!(
        describe["orderBy"][0],
        json!({"fieldNameOrPath": "Name", "nullsPosition": "first", "sortDirection": "ascending"})
    );
    assert_eq!(run["totalSize"], 3, "the describe's query runs as SOQL");
    assert_eq!(results["size"], 3);
    assert_eq!(results["done"], false);
    assert_eq!(results["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        results["records"][0]["columns"][0],
        json!({"fieldNameOrPath": "Name", "value": "A rep's"})
    );
    assert_eq!(my_results["size"], 1, "My Accounts is the caller's");
    let owner = my_results["records"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fieldNameOrPath"] == "OwnerId")
        .cloned()
        .unwrap();
    assert_eq!(owner["value"], integration.id.as_str());
}

#[tokio::test]
async fn a_list_view_added_with_a_filter_shows_only_what_it_selects() {
    let org = Org::start().await;
    for (name, industry) in [("E1", "Energy"), ("B1", "Banking"), ("E2", "Energy")] {
        org.create("Account", json!({"Name": name, "Industry": industry}))
            .await;
    }

    let (status, added) = sent(org.http
            .post(org.ctl("/listviews/Account"))
            .json(&json!({"label": "Energy Accounts", "filter": "Industry = 'Energy'", "columns": ["Name", "Industry"]}))).await;
    let id = added["id"].as_str().unwrap();
    let (_, one) = sent(org.get(&format!("/sobjects/Account/listviews/{id}"))).await;
    let (_, describe) = sent(org.get(&format!("/sobjects/Account/listviews/{id}/describe"))).await;
    let (_, results) = sent(org.get(&format!("/sobjects/Account/listviews/{id}/results"))).await;
    let bad = org
        .http
        .post(org.ctl("/listviews/Account"))
        .json(&json!({"label": "Broken", "filter": "Colour__c = 'red'"}))
        .send()
        .await
        .unwrap();

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(one["developerName"], "EnergyAccounts");
    assert!(
        describe["query"]
            .as_str()
            .unwrap()
            .contains("FROM Account WHERE Industry = 'Energy' ORDER BY"),
        "{describe}"
    );
    assert_eq!(
        describe["whereCondition"],
        json!({"field": "Industry", "operator": "equals", "values": ["'Energy'"]})
    );
    let names: Vec<&Value> = results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["columns"][0]["value"])
        .collect();
    assert_eq!(names, [&json!("E1"), &json!("E2")]);
    assert_eq!(results["columns"][1]["fieldNameOrPath"], "Industry");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_custom_activity_object_works_like_a_standard_one() {
    let org = Org::start().await;
    let added = org
        .http
        .post(org.ctl("/objects"))
        .json(&json!(sfsync::simulator::CustomObjectSpec::sales_activity(
            Some("Sfsync_Id__c")
        )))
        .send()
        .await
        .unwrap();
    let contact = org.create("Contact", json!({"LastName": "Black"})).await;

    let (_, describe) = sent(org.get("/sobjects/Sales_Activity__c/describe")).await;
    let id = org
        .create(
            "Sales_Activity__c",
            json!({"Subject__c": "Intro call", "Type__c": "Call", "Contact__c": contact,
                "Occurred_At__c": "2024-05-01T10:00:00.000+0000", "Sfsync_Id__c": "sfsync:activity:1"}),
        )
        .await;
    let updated = org
        .patch(
            &format!("/sobjects/Sales_Activity__c/{id}"),
            json!({"Description__c": "went well"}),
        )
        .send()
        .await
        .unwrap();
    let (_, read) = sent(org.get(&format!("/sobjects/Sales_Activity__c/{id}"))).await;
    let (_, missing) =
        sent(org.post("/sobjects/Sales_Activity__c", json!({"Type__c": "Email"}))).await;
    let (_, collection) = sent(org.patch(
            "/composite/sobjects/Sales_Activity__c/Sfsync_Id__c",
            json!({"records": [
                {"attributes": {"type": "Sales_Activity__c"}, "Sfsync_Id__c": "sfsync:activity:1", "Subject__c": "Intro call (edited)"},
                {"attributes": {"type": "Sales_Activity__c"}, "Sfsync_Id__c": "sfsync:activity:2", "Subject__c": "Follow-up"},
            ]}),
        )).await;
    let (_, queried) = org
        .query(&format!(
            "SELECT Id, Name, Subject__c FROM Sales_Activity__c WHERE Contact__c = '{contact}' ORDER BY Name"
        ))
        .await;
    let deleted = org
        .delete(&format!("/sobjects/Sales_Activity__c/{id}"))
        .send()
        .await
        .unwrap();

    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(describe["custom"], true);
    assert_eq!(describe["label"], "Sales Activity");
    assert!(describe["keyPrefix"].as_str().unwrap().starts_with("a0"));
    assert!(id.starts_with(describe["keyPrefix"].as_str().unwrap()));
    let contact_field = field_of(&describe, "Contact__c").unwrap();
    assert_eq!(contact_field["type"], "reference");
    assert_eq!(contact_field["referenceTo"], json!(["Contact"]));
    assert_eq!(contact_field["relationshipName"], "Contact__r");
    assert_eq!(
        field_of(&describe, "Type__c").unwrap()["picklistValues"][0]["value"],
        "Call"
    );
    assert_eq!(
        field_of(&describe, "Sfsync_Id__c").unwrap()["externalId"],
        true
    );
    assert_eq!(field_of(&describe, "Name").unwrap()["autoNumber"], true);
    assert_eq!(updated.status(), StatusCode::NO_CONTENT);
    assert_eq!(read["Description__c"], "went well");
    assert_eq!(read["Occurred_At__c"], "2024-05-01T10:00:00.000+0000");
    assert_eq!(
        read["OwnerId"],
        org.sim.integration_user().unwrap().id.as_str()
    );
    assert!(read["Name"].is_string(), "the org numbers the name");
    assert_eq!(missing[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(missing[0]["fields"], json!(["Subject__c"]));
    assert_eq!(
        (&collection[0]["created"], &collection[1]["created"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(queried["totalSize"], 1);
    assert_eq!(queried["records"][0]["Subject__c"], "Intro call (edited)");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn custom_objects_can_exist_from_the_start() {
    let org = Org::start_with(SimulatorConfig {
        custom_objects: vec![sfsync::simulator::CustomObjectSpec::sales_activity(None)],
        ..SimulatorConfig::default()
    })
    .await;

    let (_, global) = sent(org.get("/sobjects")).await;
    let id = org
        .create("Sales_Activity__c", json!({"Subject__c": "Hello"}))
        .await;

    let entry = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Sales_Activity__c")
        .cloned()
        .unwrap();
    assert_eq!(entry["custom"], true);
    assert_eq!(entry["keyPrefix"], "a01");
    assert!(id.starts_with("a01"));
    let (status, _) = sent(org.post(
        "/sobjects/Sales_Activity__c",
        json!({"Subject__c": "x", "Sfsync_Id__c": "m"}),
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no marker unless the spec has one"
    );
}

#[tokio::test]
async fn an_outbound_message_carries_who_last_changed_the_record() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;
    let grace = org
        .sim
        .users()
        .into_iter()
        .find(|u| u.username.starts_with("grace"))
        .unwrap();
    let integration = org.sim.integration_user().unwrap();

    let id = org
        .sim
        .create_as(&grace.id, "Account", json!({"Name": "By Grace"}))
        .unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;
    org.patch(&format!("/sobjects/Account/{id}"), json!({"Phone": "2"}))
        .send()
        .await
        .unwrap();
    eventually("two messages", || receiver.messages().len() == 2).await;
    org.sim
        .set_outbound_rule("Task", &["Id", "Subject", "LastModifiedById"])
        .unwrap();
    let unknown = org.sim.set_outbound_rule("Task", &["Nope__c"]);
    org.sim
        .create("Task", json!({"Subject": "Call back"}))
        .unwrap();
    eventually("three messages", || receiver.messages().len() == 3).await;

    let messages = receiver.messages();
    let by = |xml: &str| {
        let start = xml
            .find("<sf:LastModifiedById>")
            .expect("LastModifiedById sent")
            + 21;
        xml[start..start + 18].to_string()
    };
    assert_eq!(by(&messages[0].1), grace.id.as_str());
    assert_eq!(by(&messages[1].1), integration.id.as_str());
    assert!(messages[2].1.contains("xsi:type=\"sf:Task\""));
    assert!(messages[2].1.contains("<sf:Subject>Call back</sf:Subject>"));
    assert_eq!(unknown.unwrap_err().code, "INVALID_FIELD");
}
