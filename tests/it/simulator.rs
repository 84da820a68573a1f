//! The simulator held against the documented examples of salesforce-protocol.md, with raw
//! `reqwest` (not sfsync's client) so the simulator cannot drift from Salesforce while agreeing
//! with our own client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sfsync::simulator::{
    DeliveryMode, DuplicateRuleSpec, Faults, FieldSpec, SimCredentials, Simulator, SimulatorConfig,
    UserSpec, ValidationRuleSpec, token_signature,
};

use crate::support::{self, sign_in};

struct Org {
    sim: Simulator,
    http: reqwest::Client,
    creds: SimCredentials,
    base: String,
}

impl Org {
    async fn start_with(config: SimulatorConfig) -> Org {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sim = Simulator::start(listener, config).await.expect("start");
        let creds = sim.credentials();
        let base = format!("{}/services/data/v62.0", sim.instance_url());
        Org {
            sim,
            http: reqwest::Client::new(),
            creds,
            base,
        }
    }

    async fn start() -> Org {
        Org::start_with(SimulatorConfig::default()).await
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
    }

    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
            .json(&body)
    }

    fn patch(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
            .json(&body)
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.creds.access_token)
    }

    /// A control-surface URL.
    fn ctl(&self, path: &str) -> String {
        format!("{}/__sim{path}", self.sim.instance_url())
    }

    /// Runs a SOQL query with the integration user's token.
    async fn query(&self, q: &str) -> (StatusCode, Value) {
        sent(self.get("/query").query(&[("q", q)])).await
    }

    async fn create(&self, object: &str, body: Value) -> String {
        let resp = self
            .post(&format!("/sobjects/{object}"), body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.expect("json");
        v["id"].as_str().expect("id").to_string()
    }
}

async fn body(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends `req` and reads its status and JSON body.
async fn sent(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    body(req.send().await.unwrap()).await
}

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

#[tokio::test]
async fn the_token_response_has_the_documented_fields_and_a_verifiable_signature() {
    let org = Org::start().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", org.creds.refresh_token.as_str()),
        ("client_id", org.creds.client_id.as_str()),
        ("client_secret", org.creds.client_secret.as_str()),
    ];

    let (status, v) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    for key in [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(v[key].is_string(), "{key} in {v}");
    }
    assert!(
        v.get("refresh_token").is_none(),
        "a refresh does not rotate the refresh token"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], org.sim.instance_url());
    let expected = token_signature(
        &org.creds.client_secret,
        v["id"].as_str().unwrap(),
        v["issued_at"].as_str().unwrap(),
    );
    assert_eq!(v["signature"], expected);
    let resp = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(v["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn the_signature_function_reproduces_the_documented_vector() {
    let id = "https://login.salesforce.com/id/00Dxx0000001gPFEAY/005xx000001SwiUAAS";
    assert_eq!(
        token_signature("TESTSECRET123", id, "1278448832702"),
        "RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw="
    );
}

#[tokio::test]
async fn an_unknown_refresh_token_answers_invalid_grant() {
    let org = Org::start().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "5AepNOPE"),
        ("client_id", org.creds.client_id.as_str()),
    ];

    let (status, v) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
}

#[tokio::test]
async fn the_web_server_flow_checks_the_pkce_verifier() {
    use base64::Engine;
    use sha2::Digest;
    let org = Org::start().await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghijk";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let authorize = |challenge: String| {
        let url = url::Url::parse_with_params(
            &format!("{}/services/oauth2/authorize", org.sim.instance_url()),
            &[
                ("response_type", "code"),
                ("client_id", org.creds.client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("state", "s-1"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let (username, password) = (org.creds.username.clone(), org.creds.password.clone());
        async move { sign_in(url.as_str(), &username, &password).await }
    };
    let exchange = |code: String, verifier: &'static str| {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("client_id", org.creds.client_id.clone()),
            ("client_secret", org.creds.client_secret.clone()),
            ("redirect_uri", "http://127.0.0.1:9/cb".to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form)
            .send()
    };
    let code_of = |resp: &reqwest::Response| -> (String, String) {
        let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<String, String> =
            location.query_pairs().into_owned().collect();
        (q["code"].clone(), q["state"].clone())
    };

    let resp = authorize(challenge.clone()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (code, state) = code_of(&resp);
    assert_eq!(state, "s-1");
    let (status, v) = body(exchange(code, verifier).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["refresh_token"].is_string());

    let (code, _) = code_of(&authorize(challenge).await);
    let (status, v) = body(
        exchange(code, "the-wrong-verifier-0123456789-abcdefghijklmnopq")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");
}

#[tokio::test]
async fn a_bad_token_answers_invalid_session_id() {
    let org = Org::start().await;

    let resp = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth("00Dnope!ARnope")
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, v) = body(resp).await;
    assert_eq!(
        v,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}

#[tokio::test]
async fn the_session_expires_after_n_calls_and_a_refresh_brings_a_working_token() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        session_expiry_after_calls: Some(2),
        ..Faults::default()
    });

    let statuses = [
        org.get("/limits").send().await.unwrap().status(),
        org.get("/limits").send().await.unwrap().status(),
        org.get("/limits").send().await.unwrap().status(),
    ];
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", org.creds.refresh_token.as_str()),
        ("client_id", org.creds.client_id.as_str()),
    ];
    let (_, token) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;
    let after = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::UNAUTHORIZED]
    );
    assert_eq!(after.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_daily_limit_answers_request_limit_exceeded_and_limits_reports_it() {
    let org = Org::start_with(SimulatorConfig {
        daily_api_limit: 3,
        ..SimulatorConfig::default()
    })
    .await;

    let (_, limits) = sent(org.get("/limits")).await;
    org.get("/limits").send().await.unwrap();
    let last_ok = org.get("/limits").send().await.unwrap();
    let refused = org.get("/limits").send().await.unwrap();

    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 3, "Remaining": 2})
    );
    assert_eq!(last_ok.headers()["Sforce-Limit-Info"], "api-usage=3/3");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (_, v) = body(refused).await;
    assert_eq!(
        v,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
}

#[tokio::test]
async fn reading_a_merged_loser_answers_entity_is_deleted_and_query_all_finds_its_master() {
    let org = Org::start().await;
    let master = org
        .sim
        .create("Contact", json!({"LastName": "Keep"}))
        .unwrap();
    let loser = org
        .sim
        .create("Contact", json!({"LastName": "Lose"}))
        .unwrap();
    let task = org
        .sim
        .create("Task", json!({"Subject": "Call", "WhoId": loser.as_str()}))
        .unwrap();

    org.sim
        .merge(&master, std::slice::from_ref(&loser))
        .unwrap();

    let (status, v) = sent(org.get(&format!("/sobjects/Contact/{loser}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v[0]["errorCode"], "ENTITY_IS_DELETED");
    let q = [(
        "q",
        "SELECT Id, MasterRecordId FROM Contact WHERE IsDeleted = true AND MasterRecordId != null",
    )];
    let (_, all) = sent(org.get("/queryAll").query(&q)).await;
    assert_eq!(all["records"][0]["MasterRecordId"], master.as_str());
    assert_eq!(org.sim.get(&task).unwrap()["WhoId"], master.as_str());
}

#[tokio::test]
async fn a_converted_lead_is_read_only() {
    let org = Org::start().await;
    let lead = org
        .sim
        .create(
            "Lead",
            json!({"LastName": "Black", "Company": "Acme", "Email": "b@acme.test"}),
        )
        .unwrap();

    let converted = org.sim.convert_lead(&lead, Default::default()).unwrap();

    let (_, l) = sent(org.get(&format!("/sobjects/Lead/{lead}?fields=IsConverted,ConvertedContactId,ConvertedAccountId,ConvertedOpportunityId,ConvertedDate"))).await;
    assert_eq!(l["IsConverted"], true);
    assert_eq!(l["ConvertedContactId"], converted.contact_id.as_str());
    assert_eq!(l["ConvertedAccountId"], converted.account_id.as_str());
    assert_eq!(
        l["ConvertedOpportunityId"],
        converted
            .opportunity_id
            .as_ref()
            .map(|o| o.as_str())
            .unwrap()
    );
    assert!(l["ConvertedDate"].is_string());
    let contact = org.sim.get(&converted.contact_id).unwrap();
    assert_eq!(contact["Email"], "b@acme.test");
    assert_eq!(contact["AccountId"], converted.account_id.as_str());

    let (status, v) =
        sent(org.patch(&format!("/sobjects/Lead/{lead}"), json!({"Title": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "CANNOT_UPDATE_CONVERTED_LEAD");
}

#[tokio::test]
async fn a_lock_row_fault_refuses_writes_with_unable_to_lock_row() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        lock_row_rate: 1.0,
        ..Faults::default()
    });

    let (status, v) = sent(org.post("/sobjects/Account", json!({"Name": "A"}))).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v[0]["errorCode"], "UNABLE_TO_LOCK_ROW");
    assert!(org.sim.list("Account").is_empty());
    assert_eq!(
        org.get("/limits").send().await.unwrap().status(),
        StatusCode::OK,
        "reads are not locked"
    );
}

#[tokio::test]
async fn a_5xx_fault_answers_server_unavailable() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });

    let resp = org.get("/limits").send().await.unwrap();

    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("Sforce-Limit-Info"));
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_and_writes_nothing() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        drop_connection_rate: 1.0,
        ..Faults::default()
    });

    let result = org
        .post("/sobjects/Account", json!({"Name": "A"}))
        .send()
        .await;

    assert!(result.is_err(), "{result:?}");
    assert!(org.sim.list("Account").is_empty());
}

#[tokio::test]
async fn a_drop_after_commit_writes_the_record_but_never_answers() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        drop_after_commit_rate: 1.0,
        ..Faults::default()
    });

    let result = org
        .post("/sobjects/Account", json!({"Name": "A"}))
        .send()
        .await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(org.sim.list("Account").len(), 1);
}

#[tokio::test]
async fn api_calls_are_counted_per_endpoint() {
    let org = Org::start().await;
    let id = org.create("Account", json!({"Name": "A"})).await;
    org.get(&format!("/sobjects/Account/{id}"))
        .send()
        .await
        .unwrap();
    org.get(&format!("/sobjects/Account/{id}"))
        .send()
        .await
        .unwrap();

    let calls = org.sim.api_calls();

    assert_eq!(calls.total, 3);
    assert_eq!(
        calls.by_endpoint.get("GET /sobjects/{object}/{id}"),
        Some(&2)
    );
    assert_eq!(calls.by_endpoint.get("POST /sobjects/{object}"), Some(&1));
}

#[tokio::test]
async fn the_control_surface_changes_records_and_reads_counters_over_http() {
    let org = Org::start().await;
    let ctl = format!("{}/__sim", org.sim.instance_url());

    let (status, created) = sent(
        org.http
            .post(format!("{ctl}/records/Account"))
            .json(&json!({"Name": "Ctl"})),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let patched = org
        .http
        .patch(format!("{ctl}/records/Account/{id}"))
        .json(&json!({"Phone": "1"}))
        .send()
        .await
        .unwrap();
    let (_, raw) = sent(org.http.get(format!("{ctl}/records/Account/{id}"))).await;
    let faults = org
        .http
        .put(format!("{ctl}/faults"))
        .json(&json!({"latency_ms": 1}))
        .send()
        .await
        .unwrap();
    let (_, calls) = sent(org.http.get(format!("{ctl}/api-calls"))).await;

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert_eq!(raw["Phone"], "1");
    assert_eq!(faults.status(), StatusCode::NO_CONTENT);
    assert_eq!(org.sim.faults().latency_ms, 1);
    assert_eq!(calls["total"], 0, "control calls are not API calls");
}

/// A tiny Outbound Message receiver on 127.0.0.1:0 that records every POST and nacks the first
/// `nacks` of them.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    nacks: Arc<std::sync::atomic::AtomicUsize>,
}

const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

impl Receiver {
    async fn start(nacks: usize) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .nacks
            .store(nacks, std::sync::atomic::Ordering::SeqCst);
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/om",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    r.seen.lock().unwrap().push((headers, body));
                    let nack = r
                        .nacks
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok();
                    let text = if nack {
                        ACK.replace("true", "false")
                    } else {
                        ACK.to_string()
                    };
                    ([("content-type", "text/xml; charset=utf-8")], text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/om", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn messages(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Polls `check` until it holds or five seconds pass.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fast_outbound(url: Option<String>) -> SimulatorConfig {
    SimulatorConfig {
        outbound_url: url,
        outbound_retry_base: Duration::from_millis(20),
        outbound_batch_window: Duration::from_millis(5),
        ..SimulatorConfig::default()
    }
}

/// The notification ids of one message.
fn notification_ids(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("Notification"))
        .filter_map(|n| {
            n.children()
                .find(|c| c.has_tag_name("Id"))
                .and_then(|c| c.text())
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn a_changed_record_sends_a_soap_message_of_the_documented_shape() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Jeraldine", "LastName": "Black & Co", "Title": "White"}),
        )
        .unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let (headers, xml) = receiver.messages().remove(0);
    assert_eq!(headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(headers["soapaction"], "\"\"");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let envelope = doc.root_element();
    assert_eq!(
        envelope.tag_name().namespace(),
        Some("http://schemas.xmlsoap.org/soap/envelope/")
    );
    let notifications = doc
        .descendants()
        .find(|n| n.has_tag_name("notifications"))
        .unwrap();
    assert_eq!(
        notifications.tag_name().namespace(),
        Some("http://soap.sforce.com/2005/09/outbound")
    );
    let children: Vec<_> = notifications
        .children()
        .filter(|n| n.is_element())
        .collect();
    let names: Vec<&str> = children.iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(
        names,
        [
            "OrganizationId",
            "ActionId",
            "SessionId",
            "EnterpriseUrl",
            "PartnerUrl",
            "Notification"
        ]
    );
    assert_eq!(children[0].text(), Some(org.sim.org_id().as_str()));
    assert!(children[1].text().unwrap().starts_with("04k"));
    assert_eq!(
        children[2].attribute(("http://www.w3.org/2001/XMLSchema-instance", "nil")),
        Some("true")
    );
    assert!(children[3].text().unwrap().ends_with(&format!(
        "/services/Soap/c/62.0/{}",
        org.sim.org_id().as_15()
    )));
    let notification_id = children[5]
        .children()
        .find(|c| c.has_tag_name("Id"))
        .and_then(|c| c.text())
        .unwrap();
    assert!(notification_id.starts_with("04l") && notification_id.len() == 18);
    let sobject = children[5]
        .children()
        .find(|c| c.has_tag_name("sObject"))
        .unwrap();
    assert_eq!(
        sobject.attribute(("http://www.w3.org/2001/XMLSchema-instance", "type")),
        Some("sf:Contact")
    );
    let fields: Vec<(&str, &str)> = sobject
        .children()
        .filter(|c| c.is_element())
        .map(|c| {
            assert_eq!(
                c.tag_name().namespace(),
                Some("urn:sobject.enterprise.soap.sforce.com")
            );
            (c.tag_name().name(), c.text().unwrap_or_default())
        })
        .collect();
    assert_eq!(fields[0], ("Id", id.as_str()));
    let rest: Vec<&str> = fields[1..].iter().map(|(n, _)| *n).collect();
    let mut sorted = rest.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(rest, sorted, "fields after sf:Id are alphabetical");
    assert!(!rest.contains(&"Email"), "null fields are left out");
    let field = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(field("LastName"), Some("Black & Co"));
    assert!(field("SystemModstamp").unwrap().ends_with(".000Z"));
    eventually("the ack counted", || {
        org.sim.outbound_stats().messages_acked == 1
    })
    .await;
}

#[tokio::test]
async fn numbers_and_booleans_travel_as_salesforce_writes_them() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    org.sim.create("Opportunity", json!({"Name": "Express Logistics SLA", "StageName": "Perception Analysis", "CloseDate": "2017-04-03", "Amount": 120000})).unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let xml = &receiver.messages()[0].1;
    assert!(xml.contains("<sf:Amount>120000.0</sf:Amount>"), "{xml}");
    assert!(
        xml.contains("<sf:CloseDate>2017-04-03</sf:CloseDate>"),
        "{xml}"
    );
    assert!(xml.contains("<sf:IsClosed>false</sf:IsClosed>"), "{xml}");
    assert!(
        xml.contains("<sf:Probability>70.0</sf:Probability>"),
        "{xml}"
    );
}

#[tokio::test]
async fn an_unacknowledged_message_is_retried_until_acked() {
    let (receiver, url) = Receiver::start(2).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    org.sim.create("Account", json!({"Name": "Retry"})).unwrap();
    eventually("the third delivery acked", || {
        org.sim.outbound_stats().messages_acked == 1
    })
    .await;

    let messages = receiver.messages();
    assert_eq!(messages.len(), 3);
    let ids: Vec<Vec<String>> = messages.iter().map(|(_, b)| notification_ids(b)).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same notification each time: {ids:?}"
    );
    let stats = org.sim.outbound_stats();
    assert_eq!(
        (
            stats.messages_failed,
            stats.pending,
            stats.notifications_acked
        ),
        (2, 0, 1)
    );
}

#[tokio::test]
async fn duplicate_mode_delivers_a_message_twice() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;
    org.sim.set_delivery_mode(DeliveryMode {
        duplicate: true,
        out_of_order: false,
    });

    org.sim
        .create("Lead", json!({"LastName": "Twice", "Company": "Dup"}))
        .unwrap();
    eventually("two deliveries", || receiver.messages().len() == 2).await;

    let messages = receiver.messages();
    assert_eq!(
        notification_ids(&messages[0].1),
        notification_ids(&messages[1].1)
    );
}

#[tokio::test]
async fn a_message_holds_at_most_100_notifications_of_one_type() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;
    org.sim
        .seed_org(&sfsync::simulator::SeedSpec {
            accounts: 150,
            contacts_per_account: 1,
            fire_outbound: true,
            ..Default::default()
        })
        .unwrap();

    org.sim.set_outbound_url(Some(url));
    eventually("300 notifications acked", || {
        org.sim.outbound_stats().notifications_acked == 300
    })
    .await;

    let messages = receiver.messages();
    let mut total = 0;
    for (_, xml) in &messages {
        let n = notification_ids(xml).len();
        assert!((1..=100).contains(&n), "{n} notifications in one message");
        let types: std::collections::BTreeSet<&str> = xml
            .match_indices("xsi:type=\"sf:")
            .map(|(i, _)| &xml[i + 13..i + 17])
            .collect();
        assert_eq!(types.len(), 1, "one object type per message");
        total += n;
    }
    assert_eq!(total, 300);
    assert_eq!(messages.len(), 4);
}

#[tokio::test]
async fn rest_writes_fire_outbound_messages_too() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org.create("Account", json!({"Name": "Via API"})).await;
    eventually("one message", || receiver.messages().len() == 1).await;

    assert!(
        receiver.messages()[0]
            .1
            .contains(&format!("<sf:Id>{id}</sf:Id>"))
    );
}

#[tokio::test]
async fn out_of_order_mode_shuffles_the_notifications() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;
    org.sim.set_delivery_mode(DeliveryMode {
        duplicate: false,
        out_of_order: true,
    });
    for n in 0..20 {
        org.sim
            .create("Account", json!({"Name": format!("A{n}")}))
            .unwrap();
    }

    org.sim.set_outbound_url(Some(url));
    eventually("20 notifications acked", || {
        org.sim.outbound_stats().notifications_acked == 20
    })
    .await;

    let ids: Vec<String> = receiver
        .messages()
        .iter()
        .flat_map(|(_, xml)| notification_ids(xml))
        .collect();
    let mut queued_order = ids.clone();
    queued_order.sort();
    assert_eq!(ids.len(), 20);
    assert_ne!(
        ids, queued_order,
        "notification ids are minted in queue order"
    );
}

#[tokio::test]
async fn without_an_outbound_url_notifications_wait_in_the_queue() {
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(None)).await;

    org.sim
        .create("Account", json!({"Name": "Waiting"}))
        .unwrap();
    tokio::task::yield_now().await;
    assert_eq!(org.sim.outbound_stats().pending, 1);
    assert!(receiver.messages().is_empty());

    org.sim.set_outbound_url(Some(url));
    eventually("the held message delivered", || {
        receiver.messages().len() == 1
    })
    .await;
}

#[tokio::test]
async fn the_intake_parser_reads_a_simulator_message_unchanged() {
    use sfsync::http::webhook::outbound_message::{XmlLimits, parse};
    let (receiver, url) = Receiver::start(0).await;
    let org = Org::start_with(fast_outbound(Some(url))).await;

    let id = org
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Doug", "LastName": "Bunting", "Email": "drb24@cornell.edu"}),
        )
        .unwrap();
    eventually("one message", || receiver.messages().len() == 1).await;

    let parsed = parse(
        receiver.messages()[0].1.as_bytes(),
        &XmlLimits::default(),
        &org.sim.org_id(),
    )
    .expect("the intake parser accepts it");
    assert_eq!(parsed.organization_id, org.sim.org_id().as_str());
    assert!(!parsed.has_session_id);
    assert_eq!(parsed.notifications.len(), 1);
    let n = &parsed.notifications[0];
    assert_eq!(n.object_type, "Contact");
    assert_eq!(n.record_id, id);
    assert_eq!(
        n.fields.get("Email").cloned().flatten().as_deref(),
        Some("drb24@cornell.edu")
    );
    assert!(n.system_modstamp().is_some());
}

#[tokio::test]
async fn the_same_seed_gives_the_same_org_and_credentials() {
    let a = Org::start_with(SimulatorConfig {
        seed: 7,
        ..SimulatorConfig::default()
    })
    .await;
    let b = Org::start_with(SimulatorConfig {
        seed: 7,
        ..SimulatorConfig::default()
    })
    .await;
    let c = Org::start_with(SimulatorConfig {
        seed: 8,
        ..SimulatorConfig::default()
    })
    .await;

    assert_eq!(a.sim.org_id(), b.sim.org_id());
    assert_eq!(
        (a.creds.client_secret.clone(), a.creds.refresh_token.clone()),
        (b.creds.client_secret.clone(), b.creds.refresh_token.clone())
    );
    assert_ne!(a.sim.org_id(), c.sim.org_id());
}

#[tokio::test]
async fn get_updated_and_get_deleted_cover_the_window() {
    let org = Org::start().await;
    let kept = org.create("Account", json!({"Name": "Kept"})).await;
    let gone = org.create("Account", json!({"Name": "Gone"})).await;
    org.delete(&format!("/sobjects/Account/{gone}"))
        .send()
        .await
        .unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let window = [("start", start.as_str()), ("end", end.as_str())];

    let (s1, up) = sent(org.get("/sobjects/Account/updated/").query(&window)).await;
    let (s2, del) = sent(org.get("/sobjects/Account/deleted/").query(&window)).await;

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(up["ids"], json!([kept]));
    assert!(
        up["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    assert_eq!(del["deletedRecords"][0]["id"], gone);
    assert!(
        del["deletedRecords"][0]["deletedDate"]
            .as_str()
            .unwrap()
            .ends_with(".000+0000")
    );
}

// ---------------------------------------------------------------- discovery and describe

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

/// The describe entry of one field.
fn field_of(describe: &Value, name: &str) -> Option<Value> {
    describe["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
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

// ---------------------------------------------------------------- stages, userinfo, limits

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

// ---------------------------------------------------------------- INVALID_FIELD, SOQL, upsert

#[tokio::test]
async fn a_field_the_object_lacks_is_invalid_field_in_every_write_and_in_soql() {
    let org = Org::start().await;
    let id = org.create("Account", json!({"Name": "A"})).await;

    let (s1, update) = sent(org.patch(
        &format!("/sobjects/Account/{id}"),
        json!({"Colour__c": "red"}),
    ))
    .await;
    let (s2, upsert) = sent(org.patch(
        "/sobjects/Account/Sfsync_Id__c/k-1",
        json!({"Name": "B", "Colour__c": "red"}),
    ))
    .await;
    let (_, collection) = sent(org.patch(
        "/composite/sobjects",
        json!({"records": [{"attributes": {"type": "Account"}, "id": id, "Colour__c": "red"}]}),
    ))
    .await;
    let (_, upserts) = sent(org.patch(
            "/composite/sobjects/Account/Sfsync_Id__c",
            json!({"records": [{"attributes": {"type": "Account"}, "Sfsync_Id__c": "k-2", "Name": "C", "Colour__c": "red"}]}),
        )).await;
    let (s3, soql) = org
        .query("SELECT Id FROM Account WHERE Colour__c = 'red'")
        .await;

    let expected = json!([{"message": "No such column 'Colour__c' on sobject of type Account", "errorCode": "INVALID_FIELD", "fields": []}]);
    assert_eq!((s1, &update), (StatusCode::BAD_REQUEST, &expected));
    assert_eq!((s2, &upsert), (StatusCode::BAD_REQUEST, &expected));
    assert_eq!(
        collection[0]["errors"][0],
        json!({"statusCode": "INVALID_FIELD", "message": "No such column 'Colour__c' on sobject of type Account", "fields": []})
    );
    assert_eq!(upserts[0]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(s3, StatusCode::BAD_REQUEST);
    assert_eq!(soql[0]["errorCode"], "INVALID_FIELD");
    let message = soql[0]["message"].as_str().unwrap();
    assert!(
        message
            .contains("ERROR at Row:1:Column:30\nNo such column 'Colour__c' on entity 'Account'."),
        "{message}"
    );
    assert_eq!(org.sim.list("Account").len(), 1);
}

#[tokio::test]
async fn soql_filters_sorts_counts_and_limits_as_salesforce_does() {
    let org = Org::start().await;
    for (name, industry, employees) in [
        ("Acme", Some("Energy"), 10),
        ("acme_2", Some("Banking"), 30),
        ("Beta", None, 20),
        ("Gamma", Some("Energy"), 40),
    ] {
        let mut body = json!({"Name": name, "NumberOfEmployees": employees});
        if let Some(i) = industry {
            body["Industry"] = json!(i);
        }
        org.create("Account", body).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Name"].as_str().unwrap().to_string())
            .collect()
    };

    let (_, like) = org
        .query("SELECT Name FROM Account WHERE Name LIKE 'ACME%' ORDER BY Name")
        .await;
    let (_, underscore) = org
        .query("SELECT Name FROM Account WHERE Name LIKE 'acme\\_%'")
        .await;
    let (_, one_char) = org
        .query("SELECT Name FROM Account WHERE Name LIKE '_eta'")
        .await;
    let (_, ordered) = org
        .query("SELECT Name FROM Account ORDER BY Industry DESC NULLS LAST, NumberOfEmployees ASC")
        .await;
    let (_, nulls_first) = org
        .query("SELECT Name FROM Account ORDER BY Industry ASC NULLS FIRST, Name DESC")
        .await;
    let (_, count) = org
        .query("SELECT COUNT() FROM Account WHERE Industry = 'Energy'")
        .await;
    let (_, count_field) = org.query("SELECT COUNT(Industry) FROM Account").await;
    let (_, limited) = org
        .query("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")
        .await;
    let (_, within) = org
        .query("SELECT Name FROM Account WHERE Industry IN ('Banking', 'energy') AND NOT Name = 'Gamma' ORDER BY Name")
        .await;
    let (_, grouped) = org
        .query("SELECT Name FROM Account WHERE (Industry = 'Energy' OR Industry = null) AND NumberOfEmployees > 15 ORDER BY Name")
        .await;
    let (_, today) = org
        .query("SELECT Name FROM Account WHERE CreatedDate = TODAY AND CreatedDate > LAST_WEEK")
        .await;

    assert_eq!(names(&like), ["Acme", "acme_2"], "LIKE ignores case");
    assert_eq!(
        names(&underscore),
        ["acme_2"],
        "\\_ is a literal underscore"
    );
    assert_eq!(names(&one_char), ["Beta"], "_ is one character");
    assert_eq!(names(&ordered), ["Acme", "Gamma", "acme_2", "Beta"]);
    assert_eq!(names(&nulls_first), ["Beta", "acme_2", "Gamma", "Acme"]);
    assert_eq!(count, json!({"totalSize": 2, "done": true, "records": []}));
    assert_eq!(count_field["records"][0]["expr0"], 3);
    assert_eq!(
        count_field["records"][0]["attributes"]["type"],
        "AggregateResult"
    );
    assert_eq!(names(&limited), ["acme_2", "Beta"]);
    assert_eq!(limited["totalSize"], 2);
    assert_eq!(names(&within), ["Acme", "acme_2"]);
    assert_eq!(names(&grouped), ["Beta", "Gamma"]);
    assert_eq!(today["totalSize"], 4);
}

#[tokio::test]
async fn upsert_only_uses_external_ids_and_update_only_never_creates() {
    let org = Org::start().await;

    let (not_ext, v) =
        sent(org.patch("/sobjects/Account/Name/Acme", json!({"Website": "x"}))).await;
    let (update_only, _) = sent(org.patch(
        "/sobjects/Account/Sfsync_Id__c/none?updateOnly=true",
        json!({"Name": "X"}),
    ))
    .await;
    let (by_id, created) =
        sent(org.post("/sobjects/Account/Id", json!({"Name": "Made through Id"}))).await;
    let (clash, _) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "Twin", "Sfsync_Id__c": "same"}),
    ))
    .await;
    let (_, second) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "Twin 2", "Sfsync_Id__c": "SAME"}),
    ))
    .await;

    assert_eq!(not_ext, StatusCode::NOT_FOUND, "Name is not an External ID");
    assert_eq!(v[0]["errorCode"], "NOT_FOUND");
    assert_eq!(update_only, StatusCode::NOT_FOUND);
    assert_eq!(by_id, StatusCode::CREATED);
    assert!(created["id"].as_str().unwrap().starts_with("001"));
    assert_eq!(clash, StatusCode::CREATED);
    assert_eq!(second[0]["errorCode"], "DUPLICATE_VALUE");
    assert!(
        second[0]["message"].as_str().unwrap().starts_with(
            "duplicate value found: Sfsync_Id__c duplicates value on record with id: 001"
        ),
        "the marker is Unique: {second}"
    );
    assert_eq!(org.sim.list("Account").len(), 2);
}

// ---------------------------------------------------------------- duplicate and validation rules

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

// ---------------------------------------------------------------- users, tokens, the login page

/// The authorize URL of the web server flow (no PKCE) with this state.
fn authorize_url(org: &Org, state: &str) -> String {
    url::Url::parse_with_params(
        &format!("{}/services/oauth2/authorize", org.sim.instance_url()),
        &[
            ("response_type", "code"),
            ("client_id", org.creds.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("state", state),
        ],
    )
    .unwrap()
    .to_string()
}

/// The code of a redirect back to the client.
fn code_in(resp: &reqwest::Response) -> String {
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

impl Org {
    /// Posts a form to the token endpoint with the connected app's credentials.
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        form.push(("client_id", &self.creds.client_id));
        form.push(("client_secret", &self.creds.client_secret));
        let url = format!("{}/services/oauth2/token", self.sim.instance_url());
        sent(self.http.post(url).form(&form)).await
    }

    /// Refreshes with `token`.
    async fn refresh(&self, token: &str) -> (StatusCode, Value) {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .await
    }

    /// Signs `user` in through the login page and exchanges the code: the token response.
    async fn sign_in_as(&self, username: &str, password: &str) -> Value {
        let back = sign_in(&authorize_url(self, "s"), username, password).await;
        assert_eq!(back.status(), StatusCode::FOUND);
        let code = code_in(&back);
        let (status, token) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{token}");
        token
    }
}

#[tokio::test]
async fn each_user_signs_in_writes_as_themselves_and_loses_only_their_own_tokens() {
    let org = Org::start().await;
    let (_, creds) = sent(org.http.get(org.ctl("/credentials"))).await;
    let users = creds["users"].as_array().unwrap().clone();
    let integration = users.iter().find(|u| u["integration"] == true).unwrap();
    let rep = users.iter().find(|u| u["integration"] == false).unwrap();
    let rep_id = rep["id"].as_str().unwrap();

    let rep_token = org
        .sign_in_as(
            rep["username"].as_str().unwrap(),
            rep["password"].as_str().unwrap(),
        )
        .await;
    let rep_access = rep_token["access_token"].as_str().unwrap();
    let (_, created) = sent(
        org.http
            .post(format!("{}/sobjects/Account", org.base))
            .bearer_auth(rep_access)
            .json(&json!({"Name": "Rep's"})),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    org.patch(&format!("/sobjects/Account/{id}"), json!({"Phone": "1"}))
        .send()
        .await
        .unwrap();
    let (_, read) = sent(org.get(&format!(
        "/sobjects/Account/{id}?fields=OwnerId,CreatedById,LastModifiedById"
    )))
    .await;
    let revoked = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.sim.instance_url()))
        .form(&[("token", org.creds.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    let rep_refresh = rep_token["refresh_token"].as_str().unwrap();
    let (integration_after, error) = org.refresh(&org.creds.refresh_token).await;
    let (rep_after, _) = org.refresh(rep_refresh).await;
    let rep_still = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(rep_access)
        .send()
        .await
        .unwrap();
    org.http
        .post(org.ctl(&format!("/users/{rep_id}/revoke")))
        .send()
        .await
        .unwrap();
    let (rep_revoked, _) = org.refresh(rep_refresh).await;

    assert_eq!(read["OwnerId"], rep_id);
    assert_eq!(read["CreatedById"], rep_id);
    assert_eq!(read["LastModifiedById"], integration["id"]);
    assert!(
        rep_token["id"].as_str().unwrap().ends_with(rep_id),
        "the identity URL names the user"
    );
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(integration_after, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
    assert_eq!(rep_after, StatusCode::OK);
    assert_eq!(rep_still.status(), StatusCode::OK);
    assert_eq!(rep_revoked, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_surface_writes_act_as_the_user_they_name() {
    let org = Org::start().await;
    let users = org.sim.users();
    let grace = users
        .iter()
        .find(|u| u.username.starts_with("grace"))
        .unwrap();
    let ada = users
        .iter()
        .find(|u| u.username.starts_with("ada"))
        .unwrap();

    let (_, created) = sent(
        org.http
            .post(org.ctl(&format!("/records/Lead?as={}", grace.username)))
            .json(&json!({"LastName": "L", "Company": "C"})),
    )
    .await;
    let id = sfsync::domain::SalesforceId::parse(created["id"].as_str().unwrap()).unwrap();
    org.sim.update(&id, json!({"Title": "CEO"})).unwrap();
    let unknown = org
        .http
        .post(org.ctl("/records/Lead?as=nobody@example.com"))
        .json(&json!({"LastName": "L", "Company": "C"}))
        .send()
        .await
        .unwrap();
    let added = org
        .sim
        .add_user(&UserSpec {
            username: "linus@sim.example.com".into(),
            first_name: Some("Linus".into()),
            last_name: "Torvalds".into(),
            email: None,
            password: Some("kernel-1991".into()),
        })
        .unwrap();
    let linus = org.sign_in_as("linus@sim.example.com", "kernel-1991").await;
    let (_, users_q) = org
        .query("SELECT Id, Username, Name FROM User ORDER BY Username")
        .await;

    let lead = org.sim.get(&id).unwrap();
    assert_eq!(lead["OwnerId"], grace.id.as_str());
    assert_eq!(lead["CreatedById"], grace.id.as_str());
    assert_eq!(
        lead["LastModifiedById"],
        ada.id.as_str(),
        "the first rep by default"
    );
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(linus["access_token"].is_string());
    assert_eq!(added.name, "Linus Torvalds");
    assert_eq!(users_q["totalSize"], 4);
    assert!(
        users_q["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["Username"] == "linus@sim.example.com" && u["Id"] == added.id.as_str())
    );
}

#[tokio::test]
async fn the_login_page_is_a_form_that_refuses_a_wrong_password_and_remembers_the_session() {
    let org = Org::start().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!(
        "{}&login_hint={}",
        authorize_url(&org, "st-9"),
        org.creds.username
    );

    let page = no_redirect.get(&url).send().await.unwrap();
    let content_type = page.headers()["content-type"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    let inputs = support::form_inputs(&html);
    let wrong = sign_in(&url, &org.creds.username, "not-the-password").await;
    let wrong_status = wrong.status();
    let wrong_html = wrong.text().await.unwrap();
    let right = sign_in(&url, &org.creds.username, &org.creds.password).await;
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    let sid = cookie.split(';').next().unwrap().to_string();
    let again = no_redirect
        .get(authorize_url(&org, "st-10"))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();
    let forced = no_redirect
        .get(format!("{}&prompt=login", authorize_url(&org, "st-11")))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();

    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("method=\"post\""), "{html}");
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "username",
        "pw",
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(
        inputs.contains(&("username".into(), org.creds.username.clone())),
        "login_hint fills the username"
    );
    assert_eq!(wrong_status, StatusCode::OK);
    assert!(wrong_html.contains("Please check your username and password"));
    assert_eq!(right.status(), StatusCode::FOUND);
    let location = right.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=st-9"), "{location}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert_eq!(
        again.status(),
        StatusCode::FOUND,
        "a session skips the form"
    );
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .contains("state=st-10")
    );
    assert_eq!(
        forced.status(),
        StatusCode::OK,
        "prompt=login shows the form"
    );
}

// ---------------------------------------------------------------- list views, custom objects

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
