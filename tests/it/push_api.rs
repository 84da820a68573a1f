//! The push side's local API: validation names the field, writes and their outbox entries commit
//! together, nothing is sent from a request, and the OpenAPI document lists the routes.

use serde_json::{Value, json};
use sfsync::store::OutboxState;

use crate::push_support::*;
use crate::support::TOKEN;

#[tokio::test]
async fn validation_errors_answer_422_and_name_the_field() {
    let env = push_env().await;
    let company = env.company("Valid").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/contacts",
            json!({"first_name": "No last name"}),
            "last_name",
        ),
        ("/contacts", json!({"last_name": " "}), "last_name"),
        (
            "/contacts",
            json!({"last_name": "X", "email": "not-an-email"}),
            "email",
        ),
        (
            "/contacts",
            json!({"last_name": "X", "company_id": 999999}),
            "company_id",
        ),
        (
            "/contacts",
            json!({"last_name": "X", "push_as": "account"}),
            "push_as",
        ),
        (
            "/contacts",
            json!({"last_name": "X", "shoe_size": 9}),
            "shoe_size",
        ),
        (
            "/companies",
            json!({"name": "Y", "employees": "many"}),
            "employees",
        ),
        ("/companies", json!({"name": ""}), "name"),
        (
            "/companies",
            json!({"name": "Z", "org_id": "00D000000000001"}),
            "org_id",
        ),
        (
            "/company-products",
            json!({"company_id": company, "product": "P", "status": "MAYBE"}),
            "status",
        ),
        (
            "/company-products",
            json!({"company_id": company, "product": "P", "status": "OPPORTUNITY", "opportunity_size": -5}),
            "opportunity_size",
        ),
        (
            "/company-products",
            json!({"company_id": company, "product": "P", "status": "OPPORTUNITY", "close_date": "next week"}),
            "close_date",
        ),
        (
            "/activities",
            json!({"kind": "call_made", "subject": "S"}),
            "kind",
        ),
        ("/activities", json!({"kind": "email_sent"}), "subject"),
        (
            "/activities",
            json!({"kind": "meeting_booked", "subject": "S", "starts_at": "2024-01-01T10:00:00Z",
                   "ends_at": "2024-01-01T09:00:00Z"}),
            "ends_at",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = env.post(path, body.clone()).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        assert!(answer["error"]["message"].is_string());
    }
    let (status, answer) = env.get("/outbox?state=sideways").await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (422, json!("state"))
    );
    // Only the valid company was written.
    let (_, companies) = env.get("/companies").await;
    let companies = companies["items"].clone();
    assert_eq!(companies.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_write_and_its_outbox_entry_commit_together_and_nothing_is_sent_from_the_request() {
    let env = push_env().await;
    let calls = env.sim.api_calls().total;

    let company = env.company("Quiet").await;
    let (status, body) = env
        .post(
            "/contacts",
            json!({"company_id": company, "last_name": "Silent", "email": "s@quiet.example"}),
        )
        .await;

    assert_eq!(status, 201);
    let outbox_id = body["outbox_id"].as_u64().expect("outbox id");
    assert_eq!(
        env.sim.api_calls().total,
        calls,
        "a request called Salesforce"
    );
    let entries = env
        .app
        .store()
        .outbox_entries(&env.org, Some(OutboxState::Pending))
        .expect("entries");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().any(|e| e.id == outbox_id));
    assert_eq!(
        env.app.status().await["outbox"],
        json!({"pending": 2, "dead": 0})
    );
}

#[tokio::test]
async fn changes_to_a_record_waiting_in_the_outbox_share_its_entry_and_the_latest_state_goes_out() {
    let mut env = push_env().await;
    let company = env.company("Versioned").await;
    let contact = env
        .create(
            "/contacts",
            json!({"company_id": company, "last_name": "First"}),
        )
        .await;
    env.patch(&format!("/contacts/{contact}"), json!({"title": "Second"}))
        .await;
    env.patch(&format!("/contacts/{contact}"), json!({"title": "Third"}))
        .await;
    let (_, entries) = env.get("/outbox").await;
    let entries = entries["items"].clone();
    assert_eq!(entries.as_array().map(Vec::len), Some(2), "{entries}");

    drain(&mut env.worker).await;

    let c = env.record(&env.sf_id("/contacts", contact, "salesforce_id").await);
    assert_eq!(c["Title"], "Third");
    assert_eq!(env.live("Contact").len(), 1);
}

#[tokio::test]
async fn the_api_needs_the_bearer_token() {
    let env = push_env().await;
    let r = env
        .app
        .client
        .post(format!("{}/api/v1/contacts", env.app.base))
        .json(&json!({"last_name": "X"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_openapi_document_is_served_and_lists_the_routes() {
    let env = push_env().await;
    let r = env
        .app
        .client
        .get(format!("{}/api/v1/openapi.json", env.app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/companies", "post"),
        ("/api/v1/companies/{id}", "patch"),
        ("/api/v1/contacts", "post"),
        ("/api/v1/contacts", "get"),
        ("/api/v1/company-products", "post"),
        ("/api/v1/activities", "post"),
        ("/api/v1/contacts/{id}/sync", "post"),
        ("/api/v1/outbox", "get"),
        ("/api/v1/outbox/{id}/retry", "post"),
        ("/api/v1/outbox/{id}/discard", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.contains_key("NewContact"));
    assert!(
        schemas["NewContact"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("last_name")))
    );
}

fn cli(env: &PushEnv, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sfsync"))
        .args(["outbox", "--url", &env.app.base, "--token", TOKEN])
        .args(args)
        .output()
        .expect("run sfsync outbox");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_command_lists_dead_letters_and_retries_them() {
    let mut env = push_env().await;
    env.create(
        "/contacts",
        json!({"last_name": "Orphan", "push_as": "lead"}),
    )
    .await;
    drain(&mut env.worker).await;
    let (_, dead) = env.get("/outbox?state=dead").await;
    let dead = dead["items"].clone();
    let id = dead[0]["id"].as_u64().expect("id").to_string();

    let (ok, listed) = cli(&env, &["list", "--state", "dead"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("REQUIRED_FIELD_MISSING"), "{listed}");
    let (ok, out) = cli(&env, &["retry", &id]);
    assert!(ok, "{out}");
    let (_, pending) = env.get("/outbox?state=pending").await;
    let pending = pending["items"].clone();
    assert_eq!(pending[0]["id"].to_string(), id);
    let (ok, out) = cli(&env, &["discard", &id]);
    assert!(!ok, "a pending entry is not discarded: {out}");
}
