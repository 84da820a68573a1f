//! Opportunity stages, userinfo and limits.

use super::*;

#[tokio::test]
async fn opportunity_stages_answer_soql_with_the_standard_picklist_and_take_custom_stages() {
    let org = Org::start().await;
    let q = "SELECT MasterLabel, ApiName, IsWon, IsClosed, IsActive, DefaultProbability, SortOrder FROM OpportunityStage ORDER BY SortOrder";

    let (status, before) = org.query(q).await;
    let added = org
        .http
        .post(org.ctl("/opportunity-stages"))
        .json(&json!({"label": "Verbal Yes", "probability": 95.0, "forecast_category": "BestCase"}))
        .send()
        .await
        .unwrap();
    let (_, after) = org.query(q).await;
    let opp = org
        .create(
            "Opportunity",
            json!({"Name": "D", "StageName": "Verbal Yes", "CloseDate": "2025-01-31"}),
        )
        .await;
    let (_, describe) = sent(org.get("/sobjects/Opportunity/describe")).await;

    assert_eq!(status, StatusCode::OK);
    let labels: Vec<&str> = before["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["MasterLabel"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "Prospecting",
            "Qualification",
            "Needs Analysis",
            "Value Proposition",
            "Id. Decision Makers",
            "Perception Analysis",
            "Proposal/Price Quote",
            "Negotiation/Review",
            "Closed Won",
            "Closed Lost"
        ]
    );
    let won = &before["records"][8];
    assert_eq!(won["attributes"]["type"], "OpportunityStage");
    assert_eq!(
        (
            &won["ApiName"],
            &won["IsWon"],
            &won["IsClosed"],
            &won["IsActive"]
        ),
        (
            &json!("Closed Won"),
            &json!(true),
            &json!(true),
            &json!(true)
        )
    );
    assert_eq!(won["DefaultProbability"], 100.0);
    assert_eq!(before["records"][9]["IsWon"], false);
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(after["totalSize"], 11);
    assert_eq!(after["records"][10]["MasterLabel"], "Verbal Yes");
    assert_eq!(after["records"][10]["SortOrder"], 11);
    let sid = sfsync::domain::SalesforceId::parse(&opp).unwrap();
    assert_eq!(org.sim.get(&sid).unwrap()["Probability"], 95.0);
    assert_eq!(
        org.sim.get(&sid).unwrap()["ForecastCategoryName"],
        "Best Case"
    );
    let stages = field_of(&describe, "StageName").unwrap()["picklistValues"].clone();
    assert!(
        stages
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"] == "Verbal Yes")
    );
    let (refused, v) =
        sent(org.post("/sobjects/OpportunityStage", json!({"MasterLabel": "X"}))).await;
    assert_eq!(
        refused,
        StatusCode::BAD_REQUEST,
        "stages are Setup, not data"
    );
    assert_eq!(
        v[0],
        json!({"message": "entity type cannot be inserted: Opportunity Stage", "errorCode": "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "fields": []})
    );
}

#[tokio::test]
async fn userinfo_describes_the_user_whose_token_it_is() {
    let org = Org::start().await;
    let me = org.sim.integration_user().unwrap();
    let url = format!("{}/services/oauth2/userinfo", org.sim.instance_url());

    let (status, info) = sent(org.http.get(&url).bearer_auth(&org.creds.access_token)).await;
    let bad = org
        .http
        .get(&url)
        .bearer_auth("00Dx!nope")
        .send()
        .await
        .unwrap();
    let missing = org.http.get(&url).send().await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info["sub"],
        format!(
            "{}/id/{}/{}",
            org.sim.instance_url(),
            org.sim.org_id().as_str(),
            me.id.as_str()
        )
    );
    assert_eq!(info["user_id"], me.id.as_str());
    assert_eq!(info["organization_id"], org.sim.org_id().as_str());
    assert_eq!(info["preferred_username"], org.creds.username);
    assert_eq!(info["name"], "Integration User");
    assert_eq!(info["email"], me.email);
    assert_eq!(info["active"], true);
    assert_eq!(
        info["urls"]["rest"],
        format!("{}/services/data/v{{version}}/", org.sim.instance_url())
    );
    assert!(info["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    assert_eq!(bad.text().await.unwrap(), "Bad_OAuth_Token");
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(org.sim.api_calls().total, 0, "userinfo is not an API call");
}

#[tokio::test]
async fn limits_list_the_documented_limits_each_with_max_and_remaining() {
    let org = Org::start().await;

    let (_, limits) = sent(org.get("/limits")).await;
    let (_, slash) = sent(org.get("/limits/")).await;

    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 100000, "Remaining": 99999})
    );
    assert_eq!(slash["DailyApiRequests"]["Remaining"], 99998);
    for key in [
        "ConcurrentAsyncGetReportInstances",
        "DailyAsyncApexExecutions",
        "DailyBulkApiBatches",
        "DailyStreamingApiEvents",
        "DataStorageMB",
        "FileStorageMB",
        "SingleEmail",
    ] {
        assert!(limits[key]["Max"].is_u64(), "{key}");
        assert!(limits[key]["Remaining"].is_u64(), "{key}");
    }
}
