//! The simulator's Composite resource held against Salesforce's rules, with raw `reqwest`: up
//! to 25 subrequests in one call counted once, at most 5 of them collections or queries,
//! per-subrequest answers in order, references between subrequests, and the refusals.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sfsync::simulator::{Faults, SimCredentials, Simulator, SimulatorConfig};

const DATA: &str = "/services/data/v62.0";

struct Org {
    sim: Simulator,
    http: reqwest::Client,
    creds: SimCredentials,
}

impl Org {
    async fn start() -> Org {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sim = Simulator::start(listener, SimulatorConfig::default())
            .await
            .expect("start");
        let creds = sim.credentials();
        Org {
            sim,
            http: reqwest::Client::new(),
            creds,
        }
    }

    /// Sends `POST /composite` with `body`; its status and JSON answer.
    async fn composite(&self, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{DATA}/composite", self.sim.instance_url()))
            .bearer_auth(&self.creds.access_token)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A subrequest `reference` of `method` on the data path `resource`, with `body`.
fn sub(reference: &str, method: &str, resource: &str, body: Option<Value>) -> Value {
    let mut v =
        json!({"method": method, "url": format!("{DATA}{resource}"), "referenceId": reference});
    if let Some(b) = body {
        v["body"] = b;
    }
    v
}

fn query(reference: &str, soql: &str) -> Value {
    let q: String = form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    sub(reference, "GET", &format!("/query?q={q}"), None)
}

fn request(subs: Vec<Value>) -> Value {
    json!({"allOrNone": false, "compositeRequest": subs})
}

#[tokio::test]
async fn subrequests_run_in_order_and_the_call_counts_once() {
    let org = Org::start().await;
    let before = org.sim.api_calls();
    let accounts = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Account"}, "Name": "One"},
        {"attributes": {"type": "Account"}},
    ]});

    let (status, v) = org
        .composite(request(vec![
            sub("write", "POST", "/composite/sobjects", Some(accounts)),
            query("read", "SELECT Id, Name FROM Account"),
        ]))
        .await;

    assert_eq!(status, StatusCode::OK);
    let answers = v["compositeResponse"].as_array().expect("answers");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["referenceId"], "write");
    assert_eq!(answers[0]["httpStatusCode"], 200);
    assert_eq!(answers[0]["body"][0]["success"], true);
    assert_eq!(
        answers[0]["body"][1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(answers[1]["referenceId"], "read");
    assert_eq!(answers[1]["httpStatusCode"], 200);
    assert_eq!(
        answers[1]["body"]["totalSize"], 1,
        "the query saw the write"
    );
    assert_eq!(answers[1]["body"]["records"][0]["Name"], "One");
    let after = org.sim.api_calls();
    assert_eq!(after.total - before.total, 1);
    assert_eq!(after.by_endpoint.get("POST /composite"), Some(&1));
    assert_eq!(
        after.by_subrequest.get("POST /composite/sobjects"),
        Some(&1)
    );
    assert_eq!(after.by_subrequest.get("GET /query"), Some(&1));
}

#[tokio::test]
async fn a_reference_carries_an_earlier_answer_and_a_broken_one_halts_only_its_subrequest() {
    let org = Org::start().await;

    let (_, v) = org
        .composite(request(vec![
            sub(
                "acct",
                "POST",
                "/sobjects/Account",
                Some(json!({"Name": "Ref"})),
            ),
            sub(
                "person",
                "POST",
                "/sobjects/Contact",
                Some(json!({"LastName": "Ref", "AccountId": "@{acct.id}"})),
            ),
            sub("bad", "POST", "/sobjects/Account", Some(json!({}))),
            sub(
                "orphan",
                "POST",
                "/sobjects/Contact",
                Some(json!({"LastName": "Orphan", "AccountId": "@{bad.id}"})),
            ),
            sub(
                "read",
                "GET",
                "/sobjects/Contact/@{person.id}?fields=AccountId",
                None,
            ),
        ]))
        .await;

    let answers = v["compositeResponse"].as_array().expect("answers");
    let account = answers[0]["body"]["id"].as_str().expect("account id");
    assert_eq!(answers[0]["httpStatusCode"], 201);
    assert!(
        answers[0]["httpHeaders"]["Location"]
            .as_str()
            .is_some_and(|l| l.ends_with(account))
    );
    assert_eq!(answers[1]["httpStatusCode"], 201);
    assert_eq!(answers[2]["httpStatusCode"], 400);
    assert_eq!(answers[2]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(answers[3]["httpStatusCode"], 400);
    assert_eq!(answers[3]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(answers[4]["httpStatusCode"], 200);
    assert_eq!(answers[4]["body"]["AccountId"], account);
    assert_eq!(org.sim.list("Contact").len(), 1, "the orphan never ran");
}

#[tokio::test]
async fn more_than_25_subrequests_or_5_collections_and_queries_run_nothing() {
    let org = Org::start().await;
    let create = |n: usize| {
        sub(
            &format!("a{n}"),
            "POST",
            "/sobjects/Account",
            Some(json!({"Name": format!("A{n}")})),
        )
    };

    let (status, v) = org.composite(request((0..26).map(create).collect())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["compositeResponse"],
        json!([{
            "body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can’t contain more than 25 operations."}],
            "httpHeaders": {}, "httpStatusCode": 400, "referenceId": null,
        }])
    );
    assert!(org.sim.list("Account").is_empty());

    let mut six: Vec<Value> = (0..6)
        .map(|n| query(&format!("q{n}"), "SELECT Id FROM Account"))
        .collect();
    six.push(create(0));
    let (_, v) = org.composite(request(six.clone())).await;
    assert_eq!(
        v["compositeResponse"][0]["body"][0]["errorCode"],
        "LIMIT_EXCEEDED"
    );
    assert_eq!(v["compositeResponse"][0]["referenceId"], Value::Null);
    assert!(org.sim.list("Account").is_empty());

    // Five collections and queries, with other subrequests up to 25, run.
    let mut mixed = six.split_off(1);
    mixed.extend((1..20).map(create));
    assert_eq!(mixed.len(), 25);
    let (_, v) = org.composite(request(mixed)).await;
    let answers = v["compositeResponse"].as_array().expect("answers");
    assert_eq!(answers.len(), 25);
    assert_eq!(org.sim.list("Account").len(), 20);
}

#[tokio::test]
async fn malformed_calls_are_refused_whole() {
    let org = Org::start().await;
    let fine = query("q", "SELECT Id FROM Account");
    let cases = [
        json!({"allOrNone": true, "compositeRequest": [fine.clone()]}),
        json!({"allOrNone": false}),
        request(vec![query("bad-ref", "SELECT Id FROM Account")]),
        request(vec![fine.clone(), fine.clone()]),
        request(vec![
            json!({"method": "GET", "url": "/limits", "referenceId": "x"}),
        ]),
        request(vec![
            json!({"method": "GET", "url": format!("{DATA}/limits"),
            "referenceId": "x", "httpHeaders": {"Authorization": "Bearer other"}}),
        ]),
    ];
    for body in cases {
        let (status, v) = org.composite(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(v[0]["errorCode"].is_string(), "{body}: {v}");
    }
}

#[tokio::test]
async fn a_row_lock_meets_a_write_subrequest_and_never_a_read() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        lock_row_rate: 1.0,
        ..Faults::default()
    });

    let (status, v) = org
        .composite(request(vec![
            query("read", "SELECT Id FROM Account"),
            sub(
                "write",
                "POST",
                "/sobjects/Account",
                Some(json!({"Name": "Locked"})),
            ),
        ]))
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["compositeResponse"][0]["httpStatusCode"], 200);
    assert_eq!(v["compositeResponse"][1]["httpStatusCode"], 400);
    assert_eq!(
        v["compositeResponse"][1]["body"][0]["errorCode"],
        "UNABLE_TO_LOCK_ROW"
    );
    assert!(org.sim.list("Account").is_empty());
}

#[tokio::test]
async fn a_nested_composite_and_an_unknown_resource_answer_not_found() {
    let org = Org::start().await;

    let (_, v) = org
        .composite(request(vec![
            sub("nested", "POST", "/composite", Some(request(vec![]))),
            sub("nothing", "GET", "/no/such/thing", None),
        ]))
        .await;

    for n in 0..2 {
        assert_eq!(v["compositeResponse"][n]["httpStatusCode"], 404, "{v}");
        assert_eq!(
            v["compositeResponse"][n]["body"][0]["errorCode"],
            "NOT_FOUND"
        );
    }
}
