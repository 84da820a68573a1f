//! The simulator held against the documented examples of salesforce-protocol.md, with raw
//! `reqwest` (not sfsync's client) so the simulator cannot drift from Salesforce while agreeing
//! with our own client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sfsync::simulator::{
    DeliveryMode, Faults, SimCredentials, Simulator, SimulatorConfig, token_signature,
};

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

    let (status, v) = body(
        org.get(&format!(
            "/sobjects/Account/{id}?fields=Name,SystemModstamp"
        ))
        .send()
        .await
        .unwrap(),
    )
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

    let (status, v) = body(
        org.post("/sobjects/Contact", json!({"FirstName": "Ada"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );

    let (_, v) = body(
        org.post("/sobjects/Lead", json!({"LastName": "Black"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v[0]["message"], "Required fields are missing: [Company]");

    let (_, v) = body(
        org.post("/sobjects/Opportunity", json!({"Name": "Deal"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
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
    let (status, v) = body(
        org.delete(&format!("/sobjects/Account/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
}
