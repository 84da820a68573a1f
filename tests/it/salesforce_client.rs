//! The Salesforce client against the real simulator on 127.0.0.1: every operation, every error
//! class, session expiry and single-flight refresh, `invalid_grant`, merges, lead conversion, a
//! 2,001-record query, and the OAuth web server flow with PKCE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use serde_json::{Value, json};

use sfsync::domain::{OrgId, SalesforceId};
use sfsync::salesforce::{
    Client, ConnectionState, ErrorClass, Fetched, OAuthClient, OAuthSettings, Record,
    RecordExt as _, SalesforceError, TokenKey, TokenStore, TokenStoreError, TokenVault,
    TransportKind,
};
use sfsync::simulator::{ConvertOptions, Faults, FieldSpec, SeedSpec, Simulator, SimulatorConfig};

use crate::support::sign_in;

/// Sealed refresh tokens in memory, as the sled store keeps them.
#[derive(Default)]
struct MemoryStore {
    sealed: Mutex<HashMap<String, Vec<u8>>>,
    users: Mutex<HashMap<String, SalesforceId>>,
}

impl TokenStore for MemoryStore {
    fn load_sealed(&self, org: &OrgId) -> Result<Option<Vec<u8>>, TokenStoreError> {
        Ok(self
            .sealed
            .lock()
            .map_err(|_| "poisoned")?
            .get(org.as_str())
            .cloned())
    }

    fn save_sealed(&self, org: &OrgId, sealed: &[u8]) -> Result<(), TokenStoreError> {
        self.sealed
            .lock()
            .map_err(|_| "poisoned")?
            .insert(org.as_str().to_string(), sealed.to_vec());
        Ok(())
    }

    fn load_user(&self, org: &OrgId) -> Result<Option<SalesforceId>, TokenStoreError> {
        Ok(self
            .users
            .lock()
            .map_err(|_| "poisoned")?
            .get(org.as_str())
            .cloned())
    }

    fn save_user(&self, org: &OrgId, user: &SalesforceId) -> Result<(), TokenStoreError> {
        self.users
            .lock()
            .map_err(|_| "poisoned")?
            .insert(org.as_str().to_string(), user.clone());
        Ok(())
    }
}

/// A simulated org and a connected client of it.
pub(crate) struct Harness {
    pub(crate) sim: Simulator,
    pub(crate) client: Client,
    settings: OAuthSettings,
    vault: Arc<TokenVault>,
    store: Arc<MemoryStore>,
}

fn vault() -> Arc<TokenVault> {
    Arc::new(TokenVault::new(TokenKey::new(
        1,
        SecretBox::new(Box::new([42u8; 32])),
    )))
}

async fn start_sim() -> Simulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    Simulator::start(listener, SimulatorConfig::default())
        .await
        .expect("start simulator")
}

fn settings_for(sim: &Simulator) -> OAuthSettings {
    let creds = sim.credentials();
    OAuthSettings {
        client_id: creds.client_id,
        client_secret: SecretString::from(creds.client_secret),
        redirect_uri: creds.redirect_uri,
        login_url: creds.login_url,
        api_version: "62.0".into(),
    }
}

/// A simulator and a client holding the simulator's refresh token (sealed in the store) and a
/// live access token.
pub(crate) async fn harness() -> Harness {
    let sim = start_sim().await;
    let settings = settings_for(&sim);
    let vault = vault();
    let store = Arc::new(MemoryStore::default());
    let creds = sim.credentials();
    let sealed = vault
        .seal(
            &sim.org_id(),
            &SecretString::from(creds.refresh_token.clone()),
        )
        .expect("seal");
    store.save_sealed(&sim.org_id(), &sealed).expect("save");
    let client = Client::new(
        settings.clone(),
        sim.org_id(),
        sim.instance_url(),
        vault.clone(),
        store.clone(),
    )
    .expect("client")
    .with_access_token(SecretString::from(creds.access_token));
    Harness {
        sim,
        client,
        settings,
        vault,
        store,
    }
}

pub(crate) fn record(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn calls(sim: &Simulator, endpoint: &str) -> u64 {
    sim.api_calls()
        .by_endpoint
        .get(endpoint)
        .copied()
        .unwrap_or(0)
}

async fn revoke(sim: &Simulator, token: &str) {
    let status = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", sim.instance_url()))
        .form(&[("token", token)])
        .send()
        .await
        .expect("revoke")
        .status();
    assert_eq!(status, 200);
}

// ------------------------------------------------------------------ records

#[tokio::test]
async fn a_created_record_reads_back_with_only_the_chosen_fields() {
    let h = harness().await;

    let id = h
        .client
        .create(
            "Account",
            &record(
                json!({"Name": "Acme", "Website": "https://acme.example", "Industry": "Energy"}),
            ),
        )
        .await
        .expect("create");
    let read = h
        .client
        .get_record("Account", &id, &["Name", "Website"])
        .await
        .expect("read");

    assert_eq!(id.key_prefix(), "001");
    assert_eq!(read.sobject_type(), Some("Account"));
    assert_eq!(read.str_field("Name"), Some("Acme"));
    assert_eq!(read.str_field("Website"), Some("https://acme.example"));
    assert!(!read.contains_key("Industry"));
    assert_eq!(h.sim.get(&id).expect("stored")["Industry"], "Energy");
}

#[tokio::test]
async fn an_update_changes_the_sent_fields_and_null_clears_one() {
    let h = harness().await;
    let id = h
        .client
        .create(
            "Account",
            &record(json!({"Name": "Acme", "Phone": "555-0100"})),
        )
        .await
        .expect("create");

    h.client
        .update(
            "Account",
            &id,
            &record(json!({"Name": "Acme Corp", "Phone": null})),
        )
        .await
        .expect("update");

    let read = h
        .client
        .get_record("Account", &id, &["Name", "Phone"])
        .await
        .expect("read");
    assert_eq!(read.str_field("Name"), Some("Acme Corp"));
    assert_eq!(read.get("Phone"), Some(&Value::Null));
}

#[tokio::test]
async fn a_conditional_read_is_not_modified_until_the_record_changes_after_the_date() {
    let h = harness().await;
    let id = h
        .client
        .create("Account", &record(json!({"Name": "Acme"})))
        .await
        .expect("create");
    let future = Utc::now() + chrono::Duration::hours(1);
    let past = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("date");

    let unchanged = h
        .client
        .get_record_if_modified_since("Account", &id, &["Name"], future)
        .await
        .expect("conditional read");
    let changed = h
        .client
        .get_record_if_modified_since("Account", &id, &["Name"], past)
        .await
        .expect("conditional read");

    assert_eq!(unchanged, Fetched::NotModified);
    assert!(matches!(changed, Fetched::Record(r) if r.str_field("Name") == Some("Acme")));
}

#[tokio::test]
async fn upsert_by_external_id_creates_then_updates_and_says_which() {
    let h = harness().await;

    let first = h
        .client
        .upsert(
            "Account",
            "Sfsync_Id__c",
            "co-1",
            &record(json!({"Name": "Acme"})),
        )
        .await
        .expect("upsert insert");
    let second = h
        .client
        .upsert(
            "Account",
            "Sfsync_Id__c",
            "co-1",
            &record(json!({"Name": "Acme 2"})),
        )
        .await
        .expect("upsert update");

    assert!(first.created);
    assert!(!second.created);
    let id = first.id.expect("id on insert");
    assert_eq!(second.id.as_ref(), Some(&id));
    let by_ext = h
        .client
        .get_by_external_id("Account", "Sfsync_Id__c", "co-1", &["Name"])
        .await
        .expect("read by external id");
    assert_eq!(by_ext.str_field("Name"), Some("Acme 2"));
    assert_eq!(h.sim.list("Account").len(), 1);
}

#[tokio::test]
async fn an_external_id_matching_two_records_is_a_permanent_multiple_matches_error() {
    let h = harness().await;
    // An External ID that is not Unique can match several records.
    h.sim
        .add_field("Account", &FieldSpec::text("Legacy_Id__c").external_id())
        .expect("field");
    let a = h
        .sim
        .create("Account", json!({"Name": "A", "Legacy_Id__c": "dup"}))
        .expect("a");
    let b = h
        .sim
        .create("Account", json!({"Name": "B", "Legacy_Id__c": "dup"}))
        .expect("b");

    let upsert = h
        .client
        .upsert(
            "Account",
            "Legacy_Id__c",
            "dup",
            &record(json!({"Name": "C"})),
        )
        .await
        .expect_err("two matches");
    let read = h
        .client
        .get_by_external_id("Account", "Legacy_Id__c", "dup", &[])
        .await
        .expect_err("two matches");

    for err in [upsert, read] {
        assert_eq!(err.class(), ErrorClass::Permanent);
        let SalesforceError::MultipleMatches { candidates } = err else {
            panic!("expected multiple matches, got {err:?}");
        };
        let mut got: Vec<String> = candidates;
        got.sort();
        let mut want = vec![a.to_string(), b.to_string()];
        want.sort();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn a_record_deleted_twice_is_gone_the_second_time_and_on_read() {
    let h = harness().await;
    let id = h
        .client
        .create("Contact", &record(json!({"LastName": "Black"})))
        .await
        .expect("create");

    h.client.delete("Contact", &id).await.expect("first delete");
    let again = h
        .client
        .delete("Contact", &id)
        .await
        .expect_err("second delete");
    let read = h
        .client
        .get_record("Contact", &id, &["LastName"])
        .await
        .expect_err("read deleted");

    assert_eq!(again.code(), Some("ENTITY_IS_DELETED"));
    assert_eq!(again.class(), ErrorClass::Gone);
    assert_eq!(read.class(), ErrorClass::Gone);
}

#[tokio::test]
async fn a_missing_required_field_is_permanent_and_names_the_field() {
    let h = harness().await;

    let err = h
        .client
        .create("Lead", &record(json!({"LastName": "Black"})))
        .await
        .expect_err("company is required");

    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(err.code(), Some("REQUIRED_FIELD_MISSING"));
    let SalesforceError::Api { status, errors } = &err else {
        panic!("expected an api error, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert!(errors[0].fields.iter().any(|f| f == "Company"));
}

#[tokio::test]
async fn an_unknown_field_and_a_bad_id_are_permanent_and_an_unknown_record_is_gone() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");
    let missing = SalesforceId::mint("001", "5g", 999_999);

    let unknown_field = h
        .client
        .get_record("Account", &id, &["NoSuchField"])
        .await
        .expect_err("unknown field");
    let unknown_record = h
        .client
        .get_record("Account", &missing, &["Name"])
        .await
        .expect_err("unknown record");

    assert_eq!(unknown_field.code(), Some("INVALID_FIELD"));
    assert_eq!(unknown_field.class(), ErrorClass::Permanent);
    assert_eq!(unknown_record.class(), ErrorClass::Gone);
}

#[tokio::test]
async fn a_merged_loser_reads_as_gone_and_query_all_names_its_master() {
    let h = harness().await;
    let master = h
        .sim
        .create("Contact", json!({"LastName": "Keep"}))
        .expect("master");
    let loser = h
        .sim
        .create("Contact", json!({"LastName": "Lose"}))
        .expect("loser");
    h.sim
        .merge(&master, std::slice::from_ref(&loser))
        .expect("merge");

    let read = h
        .client
        .get_record("Contact", &loser, &["LastName"])
        .await
        .expect_err("loser is deleted");
    let tombstones: Vec<Record> = h
        .client
        .query_all(
            "SELECT Id, MasterRecordId FROM Contact WHERE IsDeleted = true AND MasterRecordId != null",
        )
        .try_collect()
        .await
        .expect("query all");
    let live: Vec<Record> = h
        .client
        .query("SELECT Id FROM Contact")
        .try_collect()
        .await
        .expect("query");

    assert_eq!(read.code(), Some("ENTITY_IS_DELETED"));
    assert_eq!(read.class(), ErrorClass::Gone);
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0].sf_id(), Some(loser));
    assert_eq!(
        tombstones[0].str_field("MasterRecordId"),
        Some(master.as_str())
    );
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].sf_id(), Some(master));
}

#[tokio::test]
async fn a_converted_lead_names_its_contact_and_account_and_refuses_updates() {
    let h = harness().await;
    let lead = h
        .sim
        .create("Lead", json!({"LastName": "Black", "Company": "Black Ltd"}))
        .expect("lead");
    let converted = h
        .sim
        .convert_lead(&lead, ConvertOptions::default())
        .expect("convert");

    let read = h
        .client
        .get_record(
            "Lead",
            &lead,
            &[
                "IsConverted",
                "ConvertedContactId",
                "ConvertedAccountId",
                "ConvertedOpportunityId",
            ],
        )
        .await
        .expect("read lead");
    let update = h
        .client
        .update("Lead", &lead, &record(json!({"Title": "CEO"})))
        .await
        .expect_err("converted leads are read-only");
    let contact = h
        .client
        .get_record("Contact", &converted.contact_id, &["LastName", "AccountId"])
        .await
        .expect("contact");

    assert_eq!(read.bool_field("IsConverted"), Some(true));
    assert_eq!(
        read.str_field("ConvertedContactId"),
        Some(converted.contact_id.as_str())
    );
    assert_eq!(
        read.str_field("ConvertedAccountId"),
        Some(converted.account_id.as_str())
    );
    assert_eq!(
        read.str_field("ConvertedOpportunityId"),
        converted.opportunity_id.as_ref().map(SalesforceId::as_str)
    );
    assert_eq!(update.class(), ErrorClass::Permanent);
    assert_eq!(
        contact.str_field("AccountId"),
        Some(converted.account_id.as_str())
    );
}

// ------------------------------------------------------------------ query

#[tokio::test]
async fn a_2001_record_query_streams_over_two_pages() {
    let h = harness().await;
    h.sim
        .seed_org(&SeedSpec {
            accounts: 2001,
            ..SeedSpec::default()
        })
        .expect("seed");

    let pages: Vec<_> = h
        .client
        .query_pages("SELECT Id, Name FROM Account", false)
        .try_collect()
        .await
        .expect("pages");
    let records: Vec<Record> = h
        .client
        .query("SELECT Id, Name FROM Account")
        .try_collect()
        .await
        .expect("records");

    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].total_size, 2001);
    assert_eq!(pages[0].records.len() + pages[1].records.len(), 2001);
    assert!(!pages[0].done && pages[1].done);
    assert_eq!(records.len(), 2001);
    let distinct: std::collections::HashSet<_> = records.iter().filter_map(|r| r.sf_id()).collect();
    assert_eq!(distinct.len(), 2001);
    assert_eq!(calls(&h.sim, "GET /query"), 2);
    assert_eq!(calls(&h.sim, "GET /query/{locator}"), 2);
}

#[tokio::test]
async fn a_consumer_that_stops_after_the_first_page_spends_no_second_call() {
    let h = harness().await;
    h.sim
        .seed_org(&SeedSpec {
            accounts: 2001,
            ..SeedSpec::default()
        })
        .expect("seed");

    let first: Vec<Record> = h
        .client
        .query("SELECT Id FROM Account")
        .take(10)
        .try_collect()
        .await
        .expect("first records");

    assert_eq!(first.len(), 10);
    assert_eq!(calls(&h.sim, "GET /query"), 1);
    assert_eq!(calls(&h.sim, "GET /query/{locator}"), 0);
}

#[tokio::test]
async fn a_malformed_query_is_a_permanent_error_in_the_stream() {
    let h = harness().await;

    let result: Result<Vec<Record>, _> = h.client.query("SELECT FROM WHERE").try_collect().await;

    assert_eq!(
        result.expect_err("malformed").class(),
        ErrorClass::Permanent
    );
}

// ------------------------------------------------------------------ collections

#[tokio::test]
async fn collections_create_reports_each_record_and_all_or_none_rolls_back() {
    let h = harness().await;
    let batch = vec![
        record(json!({"Name": "One"})),
        record(json!({"Website": "https://no-name.example"})),
        record(json!({"Name": "Three"})),
    ];

    let partial = h
        .client
        .create_collection("Account", &batch, false)
        .await
        .expect("partial");
    let all_or_none = h
        .client
        .create_collection("Account", &batch, true)
        .await
        .expect("all or none");

    assert!(partial[0].success && partial[2].success);
    assert!(!partial[1].success);
    assert_eq!(partial[1].errors[0].error_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(partial[1].class(), Some(ErrorClass::Permanent));
    assert!(partial[0].sf_id().is_some());
    assert!(all_or_none.iter().all(|r| !r.success));
    assert_eq!(
        all_or_none[0].errors[0].error_code,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(all_or_none[0].class(), Some(ErrorClass::Retryable));
    assert_eq!(all_or_none[1].class(), Some(ErrorClass::Permanent));
    assert_eq!(h.sim.list("Account").len(), 2);
}

#[tokio::test]
async fn collections_update_upsert_retrieve_and_delete_round_trip() {
    let h = harness().await;
    let a = h.sim.create("Account", json!({"Name": "A"})).expect("a");
    let b = h.sim.create("Account", json!({"Name": "B"})).expect("b");
    let gone = h
        .sim
        .create("Account", json!({"Name": "Gone"}))
        .expect("gone");
    h.sim.delete(&gone).expect("delete");

    let updated = h
        .client
        .update_collection(
            "Account",
            &[
                record(json!({"Id": a.as_str(), "Name": "A2"})),
                record(json!({"Id": b.as_str(), "Name": "B2"})),
            ],
            false,
        )
        .await
        .expect("update");
    let upserted = h
        .client
        .upsert_collection(
            "Account",
            "Sfsync_Id__c",
            &[
                record(json!({"Sfsync_Id__c": "x-1", "Name": "X"})),
                record(json!({"Sfsync_Id__c": "x-1", "Name": "X again"})),
            ],
            false,
        )
        .await
        .expect("upsert");
    let retrieved = h
        .client
        .retrieve_collection("Account", &[b.clone(), gone.clone(), a.clone()], &["Name"])
        .await
        .expect("retrieve");
    let deleted = h
        .client
        .delete_collection(&[a.clone(), gone.clone()], false)
        .await
        .expect("delete");

    assert!(updated.iter().all(|r| r.success));
    assert_eq!(upserted[0].created, Some(true));
    assert!(upserted.iter().all(|r| r.success));
    assert_eq!(retrieved.len(), 3);
    assert_eq!(
        retrieved[0].as_ref().and_then(|r| r.str_field("Name")),
        Some("B2")
    );
    assert!(retrieved[1].is_none());
    assert_eq!(
        retrieved[2].as_ref().and_then(|r| r.str_field("Name")),
        Some("A2")
    );
    assert!(deleted[0].success);
    assert!(!deleted[1].success);
    assert_eq!(deleted[1].class(), Some(ErrorClass::Gone));
}

#[tokio::test]
async fn more_than_200_records_are_refused_before_any_call() {
    let h = harness().await;
    let batch: Vec<Record> = (0..201)
        .map(|i| record(json!({"Name": format!("A{i}")})))
        .collect();
    let before = h.sim.api_calls().total;

    let err = h
        .client
        .create_collection("Account", &batch, false)
        .await
        .expect_err("too many");

    assert!(matches!(
        err,
        SalesforceError::TooManyRecords {
            count: 201,
            max: 200
        }
    ));
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(h.sim.api_calls().total, before);
}

// ------------------------------------------------------------------ sessions and OAuth

#[tokio::test]
async fn a_session_expiring_mid_run_costs_one_refresh_and_every_call_succeeds() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");
    h.sim.set_faults(Faults {
        session_expiry_after_calls: Some(3),
        ..Faults::default()
    });

    for _ in 0..5 {
        h.client
            .get_record("Account", &id, &["Name"])
            .await
            .expect("every call succeeds");
    }

    assert_eq!(h.client.token_requests(), 1);
    assert_eq!(
        h.sim.api_calls().token_requests,
        1,
        "the org saw one token request"
    );
    assert_eq!(h.client.state(), ConnectionState::Connected);
    assert_eq!(calls(&h.sim, "GET /sobjects/{object}/{id}"), 5);
}

#[tokio::test]
async fn fifty_concurrent_calls_on_an_expired_session_make_one_token_request() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");
    h.sim.set_faults(Faults {
        latency_ms: 20,
        ..Faults::default()
    });
    h.sim.expire_sessions();

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = h.client.clone();
            let id = id.clone();
            tokio::spawn(async move { client.get_record("Account", &id, &["Name"]).await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("join")
            .expect("call succeeds after refresh");
    }

    assert_eq!(h.client.token_requests(), 1);
    assert_eq!(
        h.sim.api_calls().token_requests,
        1,
        "the org saw one token request"
    );
}

#[tokio::test]
async fn a_client_without_an_access_token_refreshes_before_its_first_call() {
    let h = harness().await;
    let client = Client::new(
        h.settings.clone(),
        h.sim.org_id(),
        h.sim.instance_url(),
        h.vault.clone(),
        h.store.clone(),
    )
    .expect("client");

    let usage = client.fetch_limits().await.expect("limits");

    assert_eq!(client.token_requests(), 1);
    assert!(usage.limit > 0);
}

#[tokio::test]
async fn a_revoked_refresh_token_means_needs_reauth_and_no_retry() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");
    revoke(&h.sim, &h.sim.credentials().refresh_token).await;
    h.sim.expire_sessions();

    let first = h
        .client
        .get_record("Account", &id, &["Name"])
        .await
        .expect_err("refresh refused");
    let data_calls = h.sim.api_calls().total;
    let second = h
        .client
        .get_record("Account", &id, &["Name"])
        .await
        .expect_err("still refused");

    assert_eq!(first.code(), Some("invalid_grant"));
    assert_eq!(first.class(), ErrorClass::Auth { needs_reauth: true });
    assert!(matches!(second, SalesforceError::NeedsReauth));
    assert_eq!(second.class(), ErrorClass::Auth { needs_reauth: true });
    assert_eq!(h.client.state(), ConnectionState::NeedsReauth);
    assert_eq!(h.client.token_requests(), 1);
    assert_eq!(h.sim.api_calls().total, data_calls);
}

#[tokio::test]
async fn concurrent_callers_on_a_revoked_grant_cost_one_token_request() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");
    revoke(&h.sim, &h.sim.credentials().refresh_token).await;
    h.sim.expire_sessions();

    let results =
        futures::future::join_all((0..20).map(|_| h.client.get_record("Account", &id, &["Name"])))
            .await;

    assert!(results.iter().all(|r| matches!(
        r.as_ref().map_err(SalesforceError::class),
        Err(ErrorClass::Auth { needs_reauth: true })
    )));
    assert_eq!(h.client.token_requests(), 1);
}

#[tokio::test]
async fn the_pkce_code_flow_against_the_simulator_yields_a_working_connection() {
    let sim = start_sim().await;
    let settings = settings_for(&sim);
    let oauth = OAuthClient::new(settings.clone()).expect("oauth client");
    let creds = sim.credentials();
    let authorize = oauth.authorize().expect("authorize url");
    let response = sign_in(&authorize.url, &creds.username, &creds.password).await;
    assert_eq!(response.status(), 302);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("location");
    let location = url::Url::parse(location).expect("redirect url");
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert!(location.as_str().starts_with(&settings.redirect_uri));
    assert_eq!(params.get("state"), Some(&authorize.state));
    let code = params.get("code").expect("code");

    let wrong_verifier = oauth
        .exchange_code(
            code,
            &SecretString::from("not-the-verifier-not-the-verifier-0123456"),
        )
        .await
        .expect_err("verifier mismatch");
    let again = oauth.authorize().expect("authorize url");
    let response = sign_in(&again.url, &creds.username, &creds.password).await;
    let location = url::Url::parse(
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("location"),
    )
    .expect("redirect url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let token = oauth
        .exchange_code(&code, &again.code_verifier)
        .await
        .expect("exchange");

    assert!(
        matches!(&wrong_verifier, SalesforceError::OAuth { error, .. } if error == "invalid_request")
    );
    assert_eq!(token.org_id(), Some(sim.org_id()));
    assert!(token.signature.is_some());
    let store = Arc::new(MemoryStore::default());
    let vault = vault();
    let client = Client::from_token_response(settings, token.clone(), vault.clone(), store.clone())
        .expect("connection");
    let sealed = store
        .load_sealed(&sim.org_id())
        .expect("load")
        .expect("refresh token saved");
    let opened = vault.open(&sim.org_id(), &sealed).expect("open");
    assert_eq!(
        Some(opened.expose_secret()),
        token.refresh_token.as_ref().map(|t| t.expose_secret())
    );
    let id = client
        .create("Account", &record(json!({"Name": "Via PKCE"})))
        .await
        .expect("create with the new session");
    assert_eq!(id.key_prefix(), "001");
    assert_eq!(client.token_requests(), 0);
}

#[tokio::test]
async fn a_reauthorized_connection_leaves_needs_reauth() {
    let h = harness().await;
    revoke(&h.sim, &h.sim.credentials().refresh_token).await;
    h.sim.expire_sessions();
    let _ = h.client.fetch_limits().await.expect_err("refused");
    assert_eq!(h.client.state(), ConnectionState::NeedsReauth);
    let oauth = OAuthClient::new(h.settings.clone()).expect("oauth");
    let auth = oauth.authorize().expect("authorize");
    let creds = h.sim.credentials();
    let location = sign_in(&auth.url, &creds.username, &creds.password)
        .await
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("location");
    let code = url::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let token = oauth
        .exchange_code(&code, &auth.code_verifier)
        .await
        .expect("exchange");

    h.client.reauthorized(token).expect("reauthorized");
    h.sim.expire_sessions();
    let usage = h.client.fetch_limits().await;

    assert_eq!(h.client.state(), ConnectionState::Connected);
    assert!(usage.is_ok(), "{usage:?}");
}

// ------------------------------------------------------------------ faults and limits

#[tokio::test]
async fn the_daily_limit_is_a_limit_error_and_the_usage_is_readable() {
    let h = harness().await;
    h.client.fetch_limits().await.expect("first call");
    let usage = h.client.api_usage().expect("usage from the header");
    assert_eq!(usage.used, h.sim.api_usage());
    h.sim.set_faults(Faults {
        daily_api_limit: Some(usage.used),
        ..Faults::default()
    });

    let err = h.client.fetch_limits().await.expect_err("over the limit");

    assert_eq!(err.code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(err.class(), ErrorClass::Limit);
    let latest = h.client.api_usage().expect("usage");
    assert_eq!(latest.limit, usage.used);
}

#[tokio::test]
async fn server_errors_and_lock_row_are_retryable() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");

    h.sim.set_faults(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    });
    let unavailable = h
        .client
        .get_record("Account", &id, &["Name"])
        .await
        .expect_err("503");
    h.sim.set_faults(Faults {
        lock_row_rate: 1.0,
        ..Faults::default()
    });
    let locked = h
        .client
        .update("Account", &id, &record(json!({"Name": "Acme 2"})))
        .await
        .expect_err("lock");

    assert_eq!(unavailable.class(), ErrorClass::Retryable);
    assert_eq!(locked.code(), Some("UNABLE_TO_LOCK_ROW"));
    assert_eq!(locked.class(), ErrorClass::Retryable);
    assert_eq!(h.sim.get(&id).expect("stored")["Name"], "Acme");
}

#[tokio::test]
async fn a_dropped_connection_and_a_timeout_are_retryable_transport_errors() {
    let h = harness().await;
    let id = h
        .sim
        .create("Account", json!({"Name": "Acme"}))
        .expect("create");

    h.sim.set_faults(Faults {
        drop_connection_rate: 1.0,
        ..Faults::default()
    });
    let dropped = h
        .client
        .get_record("Account", &id, &["Name"])
        .await
        .expect_err("dropped");
    h.sim.set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });
    let slow = h.client.clone().with_timeout(Duration::from_millis(200));
    let timed_out = slow
        .get_record("Account", &id, &["Name"])
        .await
        .expect_err("timeout");

    assert_eq!(dropped.class(), ErrorClass::Retryable);
    assert!(matches!(
        timed_out,
        SalesforceError::Transport {
            kind: TransportKind::Timeout,
            ..
        }
    ));
    assert_eq!(timed_out.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn no_error_message_or_debug_output_holds_a_token() {
    let h = harness().await;
    let creds = h.sim.credentials();
    revoke(&h.sim, &creds.refresh_token).await;
    h.sim.expire_sessions();

    let err = h.client.fetch_limits().await.expect_err("refused");
    let shown = format!("{err} {err:?} {:?}", h.client);

    for secret in [
        &creds.refresh_token,
        &creds.access_token,
        &creds.client_secret,
    ] {
        assert!(
            !shown.contains(secret.as_str()),
            "leaked a secret in {shown}"
        );
    }
}

#[tokio::test]
async fn a_refresh_token_sealed_under_another_key_needs_reauth_without_a_token_call() {
    let h = harness().await;
    let other_key = Arc::new(TokenVault::new(TokenKey::new(
        1,
        SecretBox::new(Box::new([9u8; 32])),
    )));
    let client = Client::new(
        h.settings.clone(),
        h.sim.org_id(),
        h.sim.instance_url(),
        other_key,
        h.store.clone(),
    )
    .expect("client");

    let err = client.fetch_limits().await.expect_err("cannot open");

    assert_eq!(err.class(), ErrorClass::Auth { needs_reauth: true });
    assert_eq!(client.state(), ConnectionState::NeedsReauth);
    assert_eq!(client.token_requests(), 0);
    assert_eq!(h.sim.api_calls().total, 0);
}

#[tokio::test]
async fn an_org_without_a_stored_refresh_token_needs_reauth() {
    let h = harness().await;
    let client = Client::new(
        h.settings.clone(),
        h.sim.org_id(),
        h.sim.instance_url(),
        h.vault.clone(),
        Arc::new(MemoryStore::default()),
    )
    .expect("client");

    let err = client
        .fetch_limits()
        .await
        .expect_err("nothing to refresh with");

    assert!(matches!(err, SalesforceError::NeedsReauth));
    assert_eq!(client.state(), ConnectionState::NeedsReauth);
    assert_eq!(client.token_requests(), 0);
}

#[tokio::test]
async fn tokens_of_another_org_are_not_installed() {
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let other = Simulator::start(
        listener,
        SimulatorConfig {
            seed: 99,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("second simulator");
    assert_ne!(other.org_id(), h.sim.org_id());
    let token = OAuthClient::new(settings_for(&other))
        .expect("oauth")
        .refresh(&SecretString::from(other.credentials().refresh_token))
        .await
        .expect("refresh on the other org");

    let err = h.client.reauthorized(token).expect_err("wrong org");

    assert_eq!(err.class(), ErrorClass::Permanent);
    let sealed = h
        .store
        .load_sealed(&h.sim.org_id())
        .expect("load")
        .expect("still stored");
    let opened = h.vault.open(&h.sim.org_id(), &sealed).expect("open");
    assert_eq!(opened.expose_secret(), h.sim.credentials().refresh_token);
}
