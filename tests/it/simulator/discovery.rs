//! Discovery and describe: versions, resources, describe global and per object, the marker field, field-level security.

use super::*;

#[tokio::test]
async fn the_versions_list_needs_no_token_and_names_each_release() {
    let org = Org::start().await;

    let resp = org
        .http
        .get(format!("{}/services/data", org.sim.instance_url()))
        .send()
        .await
        .unwrap();
    let slash = org
        .http
        .get(format!("{}/services/data/", org.sim.instance_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.headers().contains_key("Sforce-Limit-Info"));
    assert_eq!(slash.status(), StatusCode::OK);
    let (_, versions) = body(resp).await;
    let versions = versions.as_array().unwrap();
    assert!(versions.contains(
        &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    ));
    assert!(versions.contains(
        &json!({"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"})
    ));
    assert_eq!(versions.last().unwrap()["version"], "62.0");
    assert_eq!(
        org.sim.api_calls().total,
        0,
        "the versions list is not an API call"
    );
}

#[tokio::test]
async fn the_resources_of_a_version_are_paths_under_it() {
    let org = Org::start().await;

    let (status, resources) = sent(org.get("")).await;
    let anonymous = org.http.get(&org.base).send().await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(resources["sobjects"], "/services/data/v62.0/sobjects");
    assert_eq!(resources["query"], "/services/data/v62.0/query");
    assert_eq!(resources["limits"], "/services/data/v62.0/limits");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn describe_global_lists_every_object_with_its_key_prefix() {
    let org = Org::start().await;

    let (status, global) = sent(org.get("/sobjects")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(global["encoding"], "UTF-8");
    assert_eq!(global["maxBatchSize"], 200);
    let entry = |name: &str| {
        global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    for (name, prefix) in [
        ("Account", "001"),
        ("Contact", "003"),
        ("Lead", "00Q"),
        ("Opportunity", "006"),
        ("Task", "00T"),
        ("Event", "00U"),
        ("User", "005"),
        ("OpportunityStage", "01J"),
    ] {
        let e = entry(name);
        assert_eq!(e["keyPrefix"], prefix, "{name}");
        assert_eq!(e["custom"], false);
        assert_eq!(e["queryable"], true);
        assert_eq!(
            e["urls"]["describe"],
            format!("/services/data/v62.0/sobjects/{name}/describe")
        );
    }
    assert_eq!(entry("Account")["createable"], true);
    assert_eq!(entry("OpportunityStage")["createable"], false);
    assert_eq!(entry("User")["updateable"], false);
}

#[tokio::test]
async fn an_sobject_describe_shows_each_field_as_salesforce_describes_it() {
    let org = Org::start().await;

    let (status, account) = sent(org.get("/sobjects/Account/describe")).await;
    let (_, lead) = sent(org.get("/sobjects/Lead/describe/")).await;
    let (_, opportunity) = sent(org.get("/sobjects/Opportunity/describe")).await;

    assert_eq!(status, StatusCode::OK);
    for (key, want) in [
        ("name", json!("Account")),
        ("label", json!("Account")),
        ("keyPrefix", json!("001")),
        ("custom", json!(false)),
        ("createable", json!(true)),
        ("updateable", json!(true)),
        ("deletable", json!(true)),
        ("queryable", json!(true)),
    ] {
        assert_eq!(account[key], want, "{key}");
    }
    let name = field_of(&account, "Name").unwrap();
    assert_eq!(
        (
            &name["type"],
            &name["length"],
            &name["nillable"],
            &name["createable"]
        ),
        (&json!("string"), &json!(255), &json!(false), &json!(true))
    );
    let id = field_of(&account, "Id").unwrap();
    assert_eq!(
        (&id["type"], &id["createable"]),
        (&json!("id"), &json!(false))
    );
    let marker = field_of(&account, "Sfsync_Id__c").unwrap();
    for (key, want) in [
        ("type", json!("string")),
        ("length", json!(255)),
        ("externalId", json!(true)),
        ("unique", json!(true)),
        ("custom", json!(true)),
        ("nillable", json!(true)),
        ("updateable", json!(true)),
    ] {
        assert_eq!(marker[key], want, "Sfsync_Id__c {key}");
    }
    let industry = field_of(&account, "Industry").unwrap();
    assert_eq!(industry["type"], "picklist");
    assert!(industry["picklistValues"].as_array().unwrap().contains(
        &json!({"active": true, "defaultValue": false, "label": "Energy", "validFor": null, "value": "Energy"})
    ));
    let status_field = field_of(&lead, "Status").unwrap();
    let default: Vec<&Value> = status_field["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["defaultValue"] == true)
        .map(|p| &p["value"])
        .collect();
    assert_eq!(default, [&json!("Open - Not Contacted")]);
    assert_eq!(field_of(&lead, "Company").unwrap()["nillable"], false);
    let stages: Vec<Value> = field_of(&opportunity, "StageName").unwrap()["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].clone())
        .collect();
    assert_eq!(stages.len(), 10);
    assert_eq!(stages[0], "Prospecting");
    assert_eq!(stages[9], "Closed Lost");
    let account_id = field_of(&opportunity, "AccountId").unwrap();
    assert_eq!(account_id["referenceTo"], json!(["Account"]));
    assert_eq!(account_id["relationshipName"], "Account");
    for object in ["Contact", "Lead", "Opportunity", "Task", "Event"] {
        let (_, d) = sent(org.get(&format!("/sobjects/{object}/describe"))).await;
        assert_eq!(
            field_of(&d, "Sfsync_Id__c").unwrap()["externalId"],
            true,
            "{object}"
        );
    }
}

#[tokio::test]
async fn an_org_without_the_marker_field_refuses_it_like_any_unknown_field() {
    let org = Org::start_with(SimulatorConfig {
        marker_field: None,
        ..SimulatorConfig::default()
    })
    .await;

    let (_, describe) = sent(org.get("/sobjects/Contact/describe")).await;
    let (status, create) = sent(org.post(
        "/sobjects/Contact",
        json!({"LastName": "Black", "Sfsync_Id__c": "sfsync:contact:1"}),
    ))
    .await;
    let (query_status, query) = org.query("SELECT Id, Sfsync_Id__c FROM Contact").await;
    let (_, collection) = sent(org.post(
            "/composite/sobjects",
            json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "B", "Sfsync_Id__c": "k"}]}),
        )).await;
    let (upsert_status, _) =
        sent(org.patch("/sobjects/Contact/Sfsync_Id__c/k", json!({"LastName": "B"}))).await;

    assert!(field_of(&describe, "Sfsync_Id__c").is_none());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        create,
        json!([{"message": "No such column 'Sfsync_Id__c' on sobject of type Contact", "errorCode": "INVALID_FIELD", "fields": []}])
    );
    assert_eq!(query_status, StatusCode::BAD_REQUEST);
    assert_eq!(query[0]["errorCode"], "INVALID_FIELD");
    assert_eq!(collection[0]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(upsert_status, StatusCode::NOT_FOUND);
    assert!(org.sim.list("Contact").is_empty());
}

#[tokio::test]
async fn removing_the_marker_through_the_control_surface_takes_it_out_of_the_org() {
    let org = Org::start().await;
    org.create("Account", json!({"Name": "Before", "Sfsync_Id__c": "a-1"}))
        .await;

    let removed = org
        .http
        .delete(org.ctl("/fields/Account/Sfsync_Id__c"))
        .send()
        .await
        .unwrap();
    let (status, v) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "After", "Sfsync_Id__c": "a-2"}),
    ))
    .await;
    let (_, describe) = sent(org.get("/sobjects/Account/describe")).await;

    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
    assert!(field_of(&describe, "Sfsync_Id__c").is_none());
    assert!(field_of(&describe, "Name").is_some());
}

#[tokio::test]
async fn the_simulator_command_without_the_marker_field_starts_such_an_org() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sfsync"))
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--without-marker-field",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read");
        line
    })
    .await
    .expect("join");
    let printed: Value = serde_json::from_str(&line).expect("one JSON line");
    let instance = printed["instance_url"].as_str().unwrap().to_string();
    let token = printed["access_token"].as_str().unwrap().to_string();

    let (status, v) = body(
        reqwest::Client::new()
            .post(format!("{instance}/services/data/v62.0/sobjects/Lead"))
            .bearer_auth(&token)
            .json(&json!({"LastName": "B", "Company": "C", "Sfsync_Id__c": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let authorize = url::Url::parse_with_params(
        &format!("{instance}/services/oauth2/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", printed["client_id"].as_str().unwrap()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ],
    )
    .unwrap();
    let signed_in = sign_in(
        authorize.as_str(),
        printed["username"].as_str().unwrap(),
        printed["password"].as_str().unwrap(),
    )
    .await;
    child.kill().expect("kill");
    child.wait().expect("reap");

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
    assert_eq!(
        signed_in.status(),
        StatusCode::FOUND,
        "the printed user signs in"
    );
    assert!(printed["users"].as_array().is_some_and(|u| u.len() >= 3));
}

#[tokio::test]
async fn field_level_security_narrows_describe_and_refuses_writes_both_ways() {
    let org = Org::start().await;
    let restrict = |access: Value| {
        let mut body = json!({"object": "Account", "field": "Sfsync_Id__c"});
        body.as_object_mut()
            .unwrap()
            .extend(access.as_object().unwrap().clone());
        org.http.put(org.ctl("/field-security")).json(&body).send()
    };

    let read_only = restrict(json!({"createable": false, "updateable": false}))
        .await
        .unwrap();
    let (_, describe) = sent(org.get("/sobjects/Account/describe")).await;
    let (status, v) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "A", "Sfsync_Id__c": "a-1"}),
    ))
    .await;
    let by_rep = org
        .sim
        .create("Account", json!({"Name": "B", "Sfsync_Id__c": "b-1"}));
    restrict(json!({"readable": false})).await.unwrap();
    let (_, hidden) = sent(org.get("/sobjects/Account/describe")).await;
    let (query_status, _) = org.query("SELECT Sfsync_Id__c FROM Account").await;
    restrict(json!({})).await.unwrap();
    let (_, restored) = sent(org.get("/sobjects/Account/describe")).await;

    assert_eq!(read_only.status(), StatusCode::NO_CONTENT);
    let marker = field_of(&describe, "Sfsync_Id__c").unwrap();
    assert_eq!(
        (&marker["createable"], &marker["updateable"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(v[0]["fields"], json!(["Sfsync_Id__c"]));
    assert!(
        by_rep.is_ok(),
        "the restriction is the integration user's only"
    );
    assert!(field_of(&hidden, "Sfsync_Id__c").is_none());
    assert_eq!(query_status, StatusCode::BAD_REQUEST);
    assert_eq!(
        field_of(&restored, "Sfsync_Id__c").unwrap()["createable"],
        true
    );
}
