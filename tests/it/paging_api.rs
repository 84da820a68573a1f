//! The local API's lists page: `limit` (default 100, at most 1,000), an opaque cursor that walks
//! every record once in order while records are added, filters, one record by id, and a 400
//! naming the parameter at fault.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sfsync::domain::{Company, OrgId, SalesforceId};
use sfsync::store::{Store, TxAbort};

use crate::support::{ORG, OTHER_ORG, TOKEN, TestApp, spawn_app};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}/api/v1{path}", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn org() -> OrgId {
    OrgId::parse(ORG).expect("org")
}

/// Stores companies named `{prefix}{n}`, each changed at `at`; returns their ids in order.
fn companies(store: &Store, prefix: &str, n: usize, at: DateTime<Utc>) -> Vec<u64> {
    store
        .transact(|tx| {
            let mut ids = Vec::new();
            for i in 0..n {
                let c = Company {
                    id: tx.next_id()?,
                    org_id: org(),
                    name: format!("{prefix}{i}"),
                    domain: None,
                    website: None,
                    industry: None,
                    annual_revenue: None,
                    employees: None,
                    salesforce_id: None,
                    updated_at: at,
                };
                tx.put_company(&c)?;
                ids.push(c.id);
            }
            Ok::<_, TxAbort<()>>(ids)
        })
        .expect("companies")
}

fn ids(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect()
}

fn org_query() -> String {
    format!("org_id={ORG}")
}

#[tokio::test]
async fn a_page_holds_a_hundred_records_by_default_and_at_most_a_thousand() {
    let app = spawn_app().await;
    let all = companies(app.store(), "Bulk ", 1_050, Utc::now());

    let (default_status, default) = get(&app, &format!("/companies?{}", org_query())).await;
    let (max_status, max) = get(&app, &format!("/companies?{}&limit=1000", org_query())).await;
    let (over_status, over) = get(&app, &format!("/companies?{}&limit=1001", org_query())).await;

    assert_eq!(default_status, 200, "{default}");
    assert_eq!(ids(&default), all[..100].to_vec());
    assert!(default["next"].is_string(), "{}", default["next"]);
    assert_eq!(max_status, 200);
    assert_eq!(ids(&max), all[..1000].to_vec());
    assert_eq!(
        (over_status, &over["error"]["field"]),
        (400, &json!("limit"))
    );
}

#[tokio::test]
async fn a_cursor_walks_every_record_exactly_once_in_order_while_records_are_added() {
    let app = spawn_app().await;
    let mut expected = companies(app.store(), "Early ", 25, Utc::now());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;

    for round in 0.. {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (status, page) = get(&app, &format!("/companies?{}&limit=7{after}", org_query())).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        cursor = page["next"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
        if round < 4 {
            expected.extend(companies(
                app.store(),
                &format!("Late {round} "),
                3,
                Utc::now(),
            ));
        }
    }

    assert_eq!(seen, expected, "every record once, in id order");
    assert_eq!(seen.len(), 25 + 4 * 3);
}

#[tokio::test]
async fn filters_keep_records_changed_after_an_instant_and_the_one_linked_to_a_salesforce_id() {
    let app = spawn_app().await;
    let then = Utc::now() - Duration::days(2);
    let old = companies(app.store(), "Old ", 3, then);
    let new = companies(app.store(), "New ", 2, then + Duration::days(1));
    let account = SalesforceId::parse("001000000000001").expect("id");
    app.store()
        .transact(|tx| {
            let mut c = tx.company(&org(), old[1])?.expect("company");
            c.salesforce_id = Some(account.clone());
            tx.put_company(&c)?;
            Ok::<_, TxAbort<()>>(())
        })
        .expect("link");
    let instant = (then + Duration::hours(12))
        .to_rfc3339()
        .replace('+', "%2B");

    let (_, changed) = get(
        &app,
        &format!("/companies?{}&updated_after={instant}", org_query()),
    )
    .await;
    let (_, by_15) = get(
        &app,
        &format!(
            "/companies?{}&salesforce_id={}",
            org_query(),
            account.as_15()
        ),
    )
    .await;
    let (_, by_18) = get(
        &app,
        &format!("/companies?{}&salesforce_id={}", org_query(), account),
    )
    .await;
    let (_, as_contact) = get(
        &app,
        &format!("/contacts?{}&salesforce_id={}", org_query(), account),
    )
    .await;

    assert_eq!(ids(&changed), new);
    assert_eq!(changed["next"], Value::Null);
    assert_eq!(ids(&by_15), vec![old[1]]);
    assert_eq!(ids(&by_18), vec![old[1]]);
    assert_eq!(
        ids(&as_contact),
        Vec::<u64>::new(),
        "an Account id names no contact"
    );
}

#[tokio::test]
async fn one_record_is_read_by_id_and_an_absent_one_is_a_404() {
    let app = spawn_app().await;
    let id = companies(app.store(), "Single", 1, Utc::now())[0];

    let (found_status, found) = get(&app, &format!("/companies/{id}?{}", org_query())).await;
    let (absent_status, absent) =
        get(&app, &format!("/companies/{}?{}", id + 1000, org_query())).await;
    let (other_kind, _) = get(&app, &format!("/contacts/{id}?{}", org_query())).await;
    let (other_org, _) = get(&app, &format!("/companies/{id}?org_id={OTHER_ORG}")).await;
    let (no_entry, _) = get(&app, &format!("/outbox/{id}?{}", org_query())).await;
    let (no_conflict, _) = get(&app, &format!("/conflicts/{id}?org={ORG}")).await;

    assert_eq!(found_status, 200, "{found}");
    assert_eq!(found["name"], "Single0");
    assert_eq!(found["org_id"], ORG);
    assert_eq!(absent_status, 404);
    assert_eq!(absent["error"]["message"], "company not found");
    assert_eq!(
        (other_kind, other_org, no_entry, no_conflict),
        (404, 404, 404, 404)
    );
}

#[tokio::test]
async fn a_bad_limit_cursor_updated_after_or_salesforce_id_is_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let org = org_query();
    let cases = [
        (format!("/companies?{org}&limit=0"), "limit"),
        (format!("/companies?{org}&limit=ten"), "limit"),
        (format!("/contacts?{org}&limit=-1"), "limit"),
        (
            format!("/company-products?{org}&cursor=not-a-cursor"),
            "cursor",
        ),
        (format!("/outbox?{org}&cursor=AAAA"), "cursor"),
        (
            format!("/companies?{org}&updated_after=yesterday"),
            "updated_after",
        ),
        (
            format!("/outbox?{org}&updated_after=2024-13-01T00:00:00Z"),
            "updated_after",
        ),
        (
            format!("/activities?{org}&updated_after=2024-01-01T00:00:00Z"),
            "updated_after",
        ),
        (
            format!("/contacts?{org}&salesforce_id=003abc"),
            "salesforce_id",
        ),
        ("/conflicts?limit=5000".to_string(), "limit"),
        (format!("/companies?{org}&colour=red"), "colour"),
    ];

    for (path, field) in cases {
        let (status, body) = get(&app, &path).await;

        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
        assert_eq!(body["error"]["status"], 400);
    }
}

#[tokio::test]
async fn conflicts_of_every_org_page_in_id_order() {
    let app = spawn_app().await;
    let other = OrgId::parse(OTHER_ORG).expect("org");
    let conflict = |n: u64| {
        json!({"object": "Account", "salesforce_id": format!("0010000000000{n:02}"),
               "rung": "domain", "candidates": [], "record": {}, "at": "2024-05-01T10:00:00Z"})
    };
    let made = app
        .store()
        .transact(|tx| {
            let mut made = Vec::new();
            for n in 0..9u64 {
                let at = if n % 3 == 0 { &other } else { &org() };
                made.push(tx.add_conflict(at, &conflict(n))?);
            }
            Ok::<_, TxAbort<()>>(made)
        })
        .expect("conflicts");

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(&app, &format!("/conflicts?limit=2{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let (_, one_org) = get(&app, &format!("/conflicts?org={OTHER_ORG}")).await;

    assert_eq!(seen, made);
    let others: BTreeSet<u64> = made.iter().step_by(3).copied().collect();
    assert_eq!(ids(&one_org).into_iter().collect::<BTreeSet<_>>(), others);
}

#[tokio::test]
async fn the_openapi_document_describes_paging_and_the_single_record_routes() {
    let app = spawn_app().await;

    let (_, doc) = get(&app, "/openapi.json").await;

    for (path, list) in [
        ("/api/v1/companies", "CompanyView"),
        ("/api/v1/contacts", "ContactView"),
        ("/api/v1/company-products", "ProductView"),
        ("/api/v1/activities", "ActivityView"),
        ("/api/v1/outbox", "OutboxEntryView"),
        ("/api/v1/conflicts", "ConflictView"),
    ] {
        let get = &doc["paths"][path]["get"];
        let params: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"))
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            params.contains(&"limit") && params.contains(&"cursor"),
            "{path}: {params:?}"
        );
        let page = format!("Page_{list}");
        let schema = &doc["components"]["schemas"][&page];
        assert!(
            schema["properties"]["items"].is_object(),
            "{page}: {schema}"
        );
        assert!(schema["properties"]["next"].is_object(), "{page}: {schema}");
        assert!(
            doc["paths"][format!("{path}/{{id}}")]["get"].is_object(),
            "{path}/{{id}}"
        );
    }
    let history = &doc["paths"]["/api/v1/{kind}/{id}/history"]["get"];
    assert!(history.is_object(), "no history route");
    assert!(doc["components"]["schemas"]["Page_ChangeView"].is_object());
}
