//! The client's composite calls against the simulator: several collections writes and queries
//! in one call, each answer read as if it had been sent alone, one subrequest sent plainly, and
//! queries spread over as few calls as the limits allow.

use serde_json::json;
use sfsync::salesforce::{ErrorClass, RecordExt as _, Subrequest};
use sfsync::simulator::Faults;

use crate::salesforce_client::{harness, record};

#[tokio::test]
async fn writes_and_queries_go_out_in_one_call_and_each_answer_reads_as_if_sent_alone() {
    let h = harness().await;
    let existing = h
        .sim
        .create("Account", json!({"Name": "Old"}))
        .expect("account");
    let new = vec![
        record(json!({"Name": "One"})),
        record(json!({"Website": "x"})),
    ];
    let changed = vec![record(json!({"Id": existing, "Name": "Renamed"}))];
    let before = h.sim.api_calls().total;

    let answers = h
        .client
        .composite(&[
            Subrequest::create_collection("Account", &new).expect("create"),
            Subrequest::update_collection("Account", &changed).expect("update"),
            Subrequest::query("SELECT Id, Name FROM Account ORDER BY Name"),
            Subrequest::query("SELECT Nope FROM Account"),
        ])
        .await
        .expect("one call");

    assert_eq!(h.sim.api_calls().total - before, 1);
    let mut answers = answers.into_iter();
    let created = answers
        .next()
        .expect("a")
        .record_results(2)
        .expect("results");
    assert!(created[0].success);
    assert_eq!(created[1].errors[0].error_code, "REQUIRED_FIELD_MISSING");
    let updated = answers
        .next()
        .expect("b")
        .record_results(1)
        .expect("results");
    assert!(updated[0].success);
    let page = answers.next().expect("c").query_page().expect("page");
    let names: Vec<&str> = page
        .records
        .iter()
        .filter_map(|r| r.str_field("Name"))
        .collect();
    assert_eq!(names, ["One", "Renamed"], "the query saw both writes");
    let failed = answers
        .next()
        .expect("d")
        .query_page()
        .expect_err("a bad column");
    assert_eq!(failed.code(), Some("INVALID_FIELD"));
    assert_eq!(failed.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn one_subrequest_goes_out_as_the_plain_request() {
    let h = harness().await;
    h.sim
        .create("Account", json!({"Name": "Solo"}))
        .expect("account");

    let answers = h
        .client
        .composite(&[Subrequest::query("SELECT Name FROM Account")])
        .await
        .expect("call");

    let calls = h.sim.api_calls();
    assert_eq!(calls.by_endpoint.get("GET /query"), Some(&1));
    assert_eq!(calls.by_endpoint.get("POST /composite"), None);
    let page = answers
        .into_iter()
        .next()
        .expect("answer")
        .query_page()
        .expect("page");
    assert_eq!(page.records[0].str_field("Name"), Some("Solo"));
}

#[tokio::test]
async fn seven_queries_cost_two_calls_and_answer_in_order() {
    let h = harness().await;
    for n in 0..7 {
        h.sim
            .create("Account", json!({"Name": format!("N{n}")}))
            .expect("account");
    }
    let queries: Vec<String> = (0..7)
        .map(|n| format!("SELECT Name FROM Account WHERE Name = 'N{n}'"))
        .collect();

    let before = h.sim.api_calls().total;

    let rows = h.client.query_each(&queries).await.expect("queries");

    let calls = h.sim.api_calls();
    assert_eq!(calls.total - before, 2, "five, then two: {calls:?}");
    assert_eq!(calls.by_endpoint.get("POST /composite"), Some(&2));
    assert_eq!(calls.by_subrequest.get("GET /query"), Some(&7));
    for (n, found) in rows.iter().enumerate() {
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].str_field("Name"), Some(format!("N{n}").as_str()));
    }
}

#[tokio::test]
async fn a_call_over_the_daily_limit_fails_whole_as_a_limit() {
    let h = harness().await;
    h.sim.set_faults(Faults {
        daily_api_limit: Some(h.sim.api_usage()),
        ..Faults::default()
    });
    let new = vec![record(json!({"Name": "Late"}))];

    let err = h
        .client
        .composite(&[
            Subrequest::create_collection("Account", &new).expect("create"),
            Subrequest::query("SELECT Id FROM Account"),
        ])
        .await
        .expect_err("over the limit");

    assert_eq!(err.class(), ErrorClass::Limit);
    assert!(h.sim.list("Account").is_empty());
}
