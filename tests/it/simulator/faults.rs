//! Merged and converted records, the fault modes, call counting and the control surface.

use super::*;

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
