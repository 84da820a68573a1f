//! A storm: thousands of notifications over a few hundred records, delivered twice and out of
//! order, with 5xx answers, dropped connections and expiring sessions switched on. When the
//! dust settles the local state equals the simulated org's, field for field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sfsync::domain::{OwnershipStatus, SalesforceId, SalesforceKind, StageTable};
use sfsync::simulator::{DeliveryMode, Faults, SeedSpec, SeedSummary, SimulatorConfig};

use crate::support::env::{SyncEnv as PullEnv, start_with};

/// A small deterministic generator (no dependency on the seed of `rand`).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &'a [SalesforceId]) -> &'a SalesforceId {
        &items[(self.next() as usize) % items.len()]
    }
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn id(v: &Value, field: &str) -> Option<SalesforceId> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| SalesforceId::parse(s).ok())
}

fn live(env: &PullEnv, object: &str) -> Vec<Value> {
    env.sim
        .list(object)
        .into_iter()
        .filter(|r| r.get("IsDeleted") != Some(&json!(true)))
        .collect()
}

/// Every difference between the simulated org and the local store, as readable lines.
fn differences(env: &PullEnv) -> Vec<String> {
    let mut diffs = Vec::new();
    let companies: BTreeMap<SalesforceId, _> = env
        .store()
        .companies(&env.org)
        .expect("companies")
        .into_iter()
        .filter_map(|c| Some((c.salesforce_id.clone()?, c)))
        .collect();
    let contacts: BTreeMap<SalesforceId, _> = env
        .store()
        .contacts(&env.org)
        .expect("contacts")
        .into_iter()
        .filter_map(|c| Some((c.salesforce_id.clone()?, c)))
        .collect();
    let products: BTreeMap<SalesforceId, _> = env
        .store()
        .company_products(&env.org)
        .expect("products")
        .into_iter()
        .filter_map(|p| Some((p.salesforce_opportunity_id.clone()?, p)))
        .collect();
    let company_id =
        |account: Option<SalesforceId>| account.and_then(|a| companies.get(&a).map(|c| c.id));

    let accounts = live(env, "Account");
    if accounts.len() != companies.len() {
        diffs.push(format!(
            "{} accounts, {} linked companies",
            accounts.len(),
            companies.len()
        ));
    }
    for a in &accounts {
        let sf = id(a, "Id").expect("id");
        let Some(c) = companies.get(&sf) else {
            diffs.push(format!("account {sf} missing"));
            continue;
        };
        let want = (
            text(a, "Name").unwrap_or_default(),
            text(a, "Website"),
            text(a, "Industry"),
            a.get("NumberOfEmployees").and_then(Value::as_i64),
        );
        let have = (
            c.name.clone(),
            c.website.clone(),
            c.industry.clone(),
            c.employees,
        );
        if want != have {
            diffs.push(format!("account {sf}: want {want:?}, have {have:?}"));
        }
    }
    let people: Vec<(Value, SalesforceKind)> = live(env, "Contact")
        .into_iter()
        .map(|c| (c, SalesforceKind::Contact))
        .chain(
            live(env, "Lead")
                .into_iter()
                .map(|l| (l, SalesforceKind::Lead)),
        )
        .collect();
    if people.len() != contacts.len() {
        diffs.push(format!(
            "{} contacts and leads, {} linked contacts",
            people.len(),
            contacts.len()
        ));
    }
    for (p, kind) in &people {
        let sf = id(p, "Id").expect("id");
        let Some(c) = contacts.get(&sf) else {
            diffs.push(format!("{kind:?} {sf} missing"));
            continue;
        };
        let want = (
            text(p, "FirstName"),
            text(p, "LastName").unwrap_or_default(),
            text(p, "Email"),
            text(p, "Title"),
            text(p, "Phone"),
            Some(*kind),
        );
        let have = (
            c.first_name.clone(),
            c.last_name.clone(),
            c.email.clone(),
            c.title.clone(),
            c.phone.clone(),
            c.salesforce_kind,
        );
        if want != have {
            diffs.push(format!("{kind:?} {sf}: want {want:?}, have {have:?}"));
        }
        if *kind == SalesforceKind::Contact && c.company_id != company_id(id(p, "AccountId")) {
            diffs.push(format!("contact {sf}: company {:?}", c.company_id));
        }
    }
    let opps = live(env, "Opportunity");
    if opps.len() != products.len() {
        diffs.push(format!(
            "{} opportunities, {} linked products",
            opps.len(),
            products.len()
        ));
    }
    let stages = StageTable::standard();
    for o in &opps {
        let sf = id(o, "Id").expect("id");
        let Some(p) = products.get(&sf) else {
            diffs.push(format!("opportunity {sf} missing"));
            continue;
        };
        let (status, stage) = stages.map(
            &text(o, "StageName").unwrap_or_default(),
            o.get("IsClosed").and_then(Value::as_bool),
            o.get("IsWon").and_then(Value::as_bool),
        );
        let want = (
            text(o, "Name").unwrap_or_default(),
            status,
            Some(stage),
            o.get("Amount").and_then(Value::as_f64),
            company_id(id(o, "AccountId")),
        );
        let have = (
            p.product.clone(),
            p.status,
            p.stage.clone(),
            p.opportunity_size,
            Some(p.company_id),
        );
        if want != have {
            diffs.push(format!("opportunity {sf}: want {want:?}, have {have:?}"));
        }
    }
    diffs
}

/// An org that retries its Outbound Messages quickly, so a storm settles in seconds.
pub(crate) fn storm_org(seed: u64) -> SimulatorConfig {
    SimulatorConfig {
        seed,
        outbound_retry_base: Duration::from_millis(100),
        outbound_retry_max: Duration::from_millis(800),
        ..SimulatorConfig::default()
    }
}

/// Seeds the org with `accounts`, their people and opportunities, and `leads`, every
/// notification sent twice and out of order.
pub(crate) fn seed_stormy(
    env: &PullEnv,
    accounts: usize,
    people: usize,
    leads: usize,
) -> SeedSummary {
    env.sim.set_delivery_mode(DeliveryMode {
        duplicate: true,
        out_of_order: true,
    });
    env.sim
        .seed_org(&SeedSpec {
            accounts,
            contacts_per_account: people,
            opportunities_per_account: 1,
            leads,
            tasks_per_contact: 0,
            fire_outbound: true,
        })
        .expect("seed")
}

/// The org's faults in a storm: 5xx, dropped connections, sessions that expire.
pub(crate) fn stormy_faults() -> Faults {
    Faults {
        latency_ms: 2,
        error_5xx_rate: 0.1,
        drop_connection_rate: 0.05,
        session_expiry_after_calls: Some(25),
        ..Faults::default()
    }
}

#[tokio::test]
async fn after_a_storm_of_duplicated_out_of_order_notifications_with_faults_local_equals_salesforce()
 {
    let env = start_with(storm_org(11), |_| {}).await;
    let seeded = seed_stormy(&env, 50, 3, 50);
    env.sim.set_faults(stormy_faults());

    let mut rng = Lcg(42);
    const STAGES: [&str; 5] = [
        "Prospecting",
        "Qualification",
        "Closed Won",
        "Closed Lost",
        "Pilot",
    ];
    for round in 0..1_500u64 {
        let result = match rng.next() % 4 {
            0 => env.sim.update(
                rng.pick(&seeded.accounts),
                json!({"Industry": format!("Industry {}", round % 7), "NumberOfEmployees": round,
                       "Name": format!("Account r{round}")}),
            ),
            1 => env.sim.update(
                rng.pick(&seeded.contacts),
                json!({"Title": format!("Title {round}"), "Phone": format!("555-{round:04}")}),
            ),
            2 => env.sim.update(
                rng.pick(&seeded.leads),
                json!({"Title": format!("Lead title {round}"), "LastName": format!("Lead{round}")}),
            ),
            _ => env.sim.update(
                rng.pick(&seeded.opportunities),
                json!({"StageName": STAGES[(round % 5) as usize], "Amount": round as f64 * 10.0}),
            ),
        };
        result.expect("update");
        if round % 10 == 0 {
            // Pacing, not synchronization: spread the storm over a few seconds so pulls
            // interleave with changes, many within one SystemModstamp second.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Contacts change accounts too: links must follow.
    for (i, c) in seeded.contacts.iter().enumerate().take(30) {
        let account = &seeded.accounts[(i * 7) % seeded.accounts.len()];
        env.sim
            .update(c, json!({"AccountId": account.as_str()}))
            .expect("move contact");
    }

    // A cap for a hang, not a speed target: with the whole suite sharing two cores the storm has
    // taken from 5 s alone to over 45 s.
    env.settle(Duration::from_secs(150)).await;
    let stats = env.sim.outbound_stats();
    assert!(
        stats.notifications_queued >= 1_800,
        "a storm: {} notifications",
        stats.notifications_queued
    );
    let diffs = differences(&env);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    let products = env.store().company_products(&env.org).expect("products");
    assert!(
        products
            .iter()
            .any(|p| p.status == OwnershipStatus::Customer)
    );
    assert!(products.iter().any(|p| p.stage.as_deref() == Some("pilot")));
}
