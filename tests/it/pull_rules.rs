//! The apply rules of product.md 2 through the running service: every rung of the match
//! ladder, both conflict policies, quarantine on ambiguity, merges, deletes and lead conversion.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sfsync::domain::{
    ChangeType, Company, Contact, Notification, ObjectType, OrgId, SalesforceId, SalesforceKind,
};
use sfsync::simulator::{ConvertOptions, SimulatorConfig};
use sfsync::store::{DedupeSource, Delivery, LocalRef, RecordKind, Store, TxAbort};
use sfsync::sync::pull::Conflict;
use sfsync::sync::sweep::sweep_org;

use crate::support::env::{SyncEnv as PullEnv, start, start_with};
use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn local_company(store: &Store, org: &OrgId, name: &str, website: Option<&str>) -> u64 {
    store
        .transact(|tx| {
            let c = Company {
                id: tx.next_id()?,
                org_id: org.clone(),
                name: name.into(),
                domain: website.and_then(sfsync::domain::normalize::domain),
                website: website.map(str::to_string),
                industry: Some("Software".into()),
                annual_revenue: None,
                employees: None,
                salesforce_id: None,
                updated_at: Utc::now(),
            };
            tx.put_company(&c)?;
            Ok::<_, TxAbort<()>>(c.id)
        })
        .expect("local company")
}

fn local_contact(store: &Store, org: &OrgId, email: &str, company: Option<u64>) -> u64 {
    store
        .transact(|tx| {
            let c = Contact {
                id: tx.next_id()?,
                org_id: org.clone(),
                company_id: company,
                first_name: Some("Local".into()),
                last_name: "Person".into(),
                email: Some(email.into()),
                title: Some("Our Title".into()),
                phone: None,
                salesforce_id: None,
                salesforce_kind: None,
                updated_at: Utc::now(),
            };
            tx.put_contact(&c)?;
            Ok::<_, TxAbort<()>>(c.id)
        })
        .expect("local contact")
}

fn company(env: &PullEnv, id: u64) -> Company {
    env.store()
        .companies(&env.org)
        .expect("companies")
        .into_iter()
        .find(|c| c.id == id)
        .expect("company exists")
}

fn contact(env: &PullEnv, id: u64) -> Option<Contact> {
    env.store()
        .contacts(&env.org)
        .expect("contacts")
        .into_iter()
        .find(|c| c.id == id)
}

fn rules_of(env: &PullEnv, target: LocalRef) -> Vec<String> {
    env.store()
        .provenance(&env.org, target)
        .expect("provenance")
        .into_iter()
        .map(|p| p.rule)
        .collect()
}

fn conflicts(env: &PullEnv) -> Vec<(u64, Conflict)> {
    env.store().conflicts(&env.org).expect("conflicts")
}

#[tokio::test]
async fn a_contact_without_an_account_joins_the_one_company_of_its_email_domain() {
    let env = start().await;
    let ours = local_company(
        env.store(),
        &env.org,
        "Globex",
        Some("https://globex.example"),
    );
    local_company(
        env.store(),
        &env.org,
        "Initech",
        Some("https://initech.example"),
    );
    let id = env
        .sim
        .create(
            "Contact",
            json!({"FirstName": "Hank", "LastName": "Scorpio", "Email": "hank@globex.example"}),
        )
        .expect("create");

    let pulled = eventually("the contact", WAIT, || async { env.contact_of(&id) }).await;

    assert_eq!(
        pulled.company_id,
        Some(ours),
        "placed by its email's domain"
    );
    assert_eq!(pulled.salesforce_kind, Some(SalesforceKind::Contact));
}

#[tokio::test]
async fn a_contact_without_an_account_whose_domain_two_companies_share_joins_neither() {
    let env = start().await;
    local_company(
        env.store(),
        &env.org,
        "Globex East",
        Some("https://globex.example"),
    );
    local_company(
        env.store(),
        &env.org,
        "Globex West",
        Some("https://globex.example/west"),
    );
    let id = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Mindy", "Email": "mindy@globex.example"}),
        )
        .expect("create");

    let pulled = eventually("the contact", WAIT, || async { env.contact_of(&id) }).await;

    assert_eq!(pulled.company_id, None, "no guess between two companies");
}

#[tokio::test]
async fn an_account_matches_an_unlinked_company_by_the_domain_of_its_website() {
    let env = start().await;
    let ours = local_company(env.store(), &env.org, "ACME (old name)", Some("acme.com"));
    let id = env
        .sim
        .create(
            "Account",
            json!({"Name": "Acme Corporation", "Website": "https://www.acme.com/", "Industry": "Energy"}),
        )
        .expect("create");
    let linked = eventually("the link", WAIT, || async { env.company_of(&id) }).await;
    assert_eq!(linked.id, ours, "matched, not created");
    assert_eq!(
        linked.name, "Acme Corporation",
        "salesforce_wins overwrites"
    );
    assert_eq!(linked.industry.as_deref(), Some("Energy"));
    assert_eq!(env.store().companies(&env.org).expect("list").len(), 1);
    let rules = rules_of(
        &env,
        LocalRef {
            kind: RecordKind::Company,
            id: ours,
        },
    );
    assert_eq!(rules, vec!["match:domain;policy:salesforce_wins"]);
}

#[tokio::test]
async fn an_account_without_a_matching_domain_matches_by_normalized_name() {
    let env = start().await;
    let ours = local_company(env.store(), &env.org, "Globex, Inc.", None);
    let id = env
        .sim
        .create("Account", json!({"Name": "GLOBEX"}))
        .expect("create");
    let linked = eventually("the link", WAIT, || async { env.company_of(&id) }).await;
    assert_eq!(linked.id, ours);
    assert_eq!(
        rules_of(
            &env,
            LocalRef {
                kind: RecordKind::Company,
                id: ours
            }
        ),
        vec!["match:name;policy:salesforce_wins"]
    );
}

#[tokio::test]
async fn a_company_already_linked_elsewhere_is_no_candidate_and_a_new_one_is_created() {
    let env = start().await;
    let first = env
        .sim
        .create("Account", json!({"Name": "Twin", "Website": "twin.io"}))
        .expect("first");
    let a = eventually("the first", WAIT, || async { env.company_of(&first) }).await;
    let second = env
        .sim
        .create("Account", json!({"Name": "Twin", "Website": "twin.io"}))
        .expect("second");
    let b = eventually("the second", WAIT, || async { env.company_of(&second) }).await;
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn a_contact_matches_by_normalized_email_within_its_company() {
    let env = start().await;
    let account = env
        .sim
        .create("Account", json!({"Name": "Vandelay"}))
        .expect("account");
    let company = eventually("the company", WAIT, || async { env.company_of(&account) }).await;
    let ours = local_contact(env.store(), &env.org, "Art@Vandelay.com", Some(company.id));
    let id = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Vandelay", "FirstName": "Art", "Email": " art@vandelay.COM",
                   "Title": "Importer", "AccountId": account.as_str()}),
        )
        .expect("contact");
    let linked = eventually("the link", WAIT, || async { env.contact_of(&id) }).await;
    assert_eq!(linked.id, ours);
    assert_eq!(linked.title.as_deref(), Some("Importer"));
    assert_eq!(linked.last_name, "Vandelay");
    assert_eq!(linked.salesforce_kind, Some(SalesforceKind::Contact));
    assert_eq!(env.store().contacts(&env.org).expect("list").len(), 1);
}

#[tokio::test]
async fn the_same_email_at_another_company_is_not_a_match() {
    let env = start().await;
    let other = local_company(env.store(), &env.org, "Elsewhere", Some("elsewhere.com"));
    let ours = local_contact(env.store(), &env.org, "sam@shared.com", Some(other));
    let account = env
        .sim
        .create("Account", json!({"Name": "Here"}))
        .expect("account");
    let id = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Sam", "Email": "sam@shared.com", "AccountId": account.as_str()}),
        )
        .expect("contact");
    let created = eventually("the contact", WAIT, || async { env.contact_of(&id) }).await;
    assert_ne!(created.id, ours);
    assert!(contact(&env, ours).expect("ours").salesforce_id.is_none());
}

#[tokio::test]
async fn ours_wins_links_the_salesforce_id_and_keeps_our_fields() {
    let env = start_with(SimulatorConfig::default(), |c| {
        c.sync.conflict_company = sfsync::domain::ConflictPolicy::OursWins;
        c.sync.conflict_contact = sfsync::domain::ConflictPolicy::OursWins;
    })
    .await;
    let ours = local_company(env.store(), &env.org, "Initech", Some("initech.com"));
    let person = local_contact(env.store(), &env.org, "peter@initech.com", Some(ours));
    let account = env
        .sim
        .create(
            "Account",
            json!({"Name": "Initech LLC", "Website": "initech.com", "Industry": "Banking",
                   "NumberOfEmployees": 300}),
        )
        .expect("account");
    let linked = eventually("the company link", WAIT, || async {
        env.company_of(&account)
    })
    .await;
    assert_eq!(linked.id, ours);
    assert_eq!(linked.name, "Initech", "our name stays");
    assert_eq!(
        linked.industry.as_deref(),
        Some("Software"),
        "our industry stays"
    );
    assert_eq!(linked.employees, Some(300), "an empty field is filled");
    let id = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Gibbons", "FirstName": "Peter", "Email": "peter@initech.com",
                   "Title": "Engineer", "Phone": "555-0101", "AccountId": account.as_str()}),
        )
        .expect("contact");
    let c = eventually("the contact link", WAIT, || async { env.contact_of(&id) }).await;
    assert_eq!(c.id, person);
    assert_eq!(c.last_name, "Person");
    assert_eq!(c.title.as_deref(), Some("Our Title"));
    assert_eq!(c.phone.as_deref(), Some("555-0101"));
    assert_eq!(
        rules_of(
            &env,
            LocalRef {
                kind: RecordKind::Contact,
                id: person
            }
        ),
        vec!["match:email_company;policy:ours_wins"]
    );
}

#[tokio::test]
async fn two_candidates_at_one_rung_quarantine_the_record_without_a_guess() {
    let env = start().await;
    let a = local_company(env.store(), &env.org, "Dup One", Some("dup.com"));
    let b = local_company(env.store(), &env.org, "Dup Two", Some("https://dup.com"));
    let id = env
        .sim
        .create("Account", json!({"Name": "Dup", "Website": "www.dup.com"}))
        .expect("create");
    let listed = eventually("the conflict", WAIT, || async {
        conflicts(&env).into_iter().next()
    })
    .await;
    assert_eq!(listed.1.salesforce_id, Some(id.clone()));
    assert_eq!(listed.1.rung, "domain");
    assert_eq!(listed.1.candidates, vec![a, b]);
    env.settle(WAIT).await;
    assert!(env.company_of(&id).is_none(), "nothing was linked");
    assert_eq!(env.store().companies(&env.org).expect("list").len(), 2);

    // A second notification for the same record updates the one conflict, not a second one.
    env.sim
        .update(&id, json!({"Industry": "Retail"}))
        .expect("update");
    eventually("the refreshed conflict", WAIT, || async {
        let all = conflicts(&env);
        (all.len() == 1 && all[0].1.record.get("Industry") == Some(&json!("Retail"))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_contacts_with_one_email_quarantine_the_salesforce_contact() {
    let env = start().await;
    let a = local_contact(env.store(), &env.org, "same@x.org", None);
    let b = local_contact(env.store(), &env.org, "same@x.org", None);
    let id = env
        .sim
        .create(
            "Lead",
            json!({"LastName": "Same", "Company": "X", "Email": "same@x.org"}),
        )
        .expect("lead");
    let (_, conflict) = eventually("the conflict", WAIT, || async {
        conflicts(&env).into_iter().next()
    })
    .await;
    assert_eq!(conflict.object, ObjectType::Lead);
    assert_eq!(conflict.salesforce_id, Some(id.clone()));
    assert_eq!(conflict.rung, "email");
    assert_eq!(conflict.candidates, vec![a, b]);
}

#[tokio::test]
async fn a_deleted_account_is_unlinked_and_the_reason_kept() {
    let env = start().await;
    let id = env
        .sim
        .create("Account", json!({"Name": "Short Lived"}))
        .expect("create");
    let local = eventually("the company", WAIT, || async { env.company_of(&id) }).await;
    env.settle(WAIT).await;
    env.sim.delete(&id).expect("delete");
    // Deletes send no Outbound Message: the sweep finds them.
    sweep_org(env.store(), &env.client()).await.expect("sweep");
    eventually("the unlink", WAIT, || async {
        (company(&env, local.id).salesforce_id.is_none()).then_some(())
    })
    .await;
    let kept = company(&env, local.id);
    assert_eq!(kept.name, "Short Lived", "the local record stays");
    let rules = rules_of(
        &env,
        LocalRef {
            kind: RecordKind::Company,
            id: local.id,
        },
    );
    assert_eq!(
        rules.last().map(String::as_str),
        Some(format!("unlink:deleted_in_salesforce:{id}").as_str())
    );
}

/// An Account named "Loser" with a Contact on it, both pulled: what a merge moves.
pub(crate) async fn loser_with_a_contact(env: &PullEnv) -> (SalesforceId, Company, Contact) {
    let loser = env
        .sim
        .create("Account", json!({"Name": "Loser"}))
        .expect("loser");
    let person = env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Moved", "AccountId": loser.as_str()}),
        )
        .expect("contact");
    let local_loser = eventually("the loser", WAIT, || async { env.company_of(&loser) }).await;
    let local_person = eventually("the contact", WAIT, || async { env.contact_of(&person) }).await;
    env.settle(WAIT).await;
    (loser, local_loser, local_person)
}

#[tokio::test]
async fn a_merge_repoints_local_links_to_the_survivor() {
    let env = start().await;
    let master = env
        .sim
        .create("Account", json!({"Name": "Survivor"}))
        .expect("master");
    let local_master = eventually("the master", WAIT, || async { env.company_of(&master) }).await;
    let (loser, local_loser, local_person) = loser_with_a_contact(&env).await;
    assert_eq!(local_person.company_id, Some(local_loser.id));

    env.sim
        .merge(&master, std::slice::from_ref(&loser))
        .expect("merge");
    sweep_org(env.store(), &env.client()).await.expect("sweep");
    eventually("the re-point", WAIT, || async {
        let c = contact(&env, local_person.id)?;
        (c.company_id == Some(local_master.id)
            && company(&env, local_loser.id).salesforce_id.is_none())
        .then_some(())
    })
    .await;
    let rules = rules_of(
        &env,
        LocalRef {
            kind: RecordKind::Company,
            id: local_loser.id,
        },
    );
    assert!(
        rules.contains(&format!("unlink:merged_into:{master}")),
        "{rules:?}"
    );
    assert_eq!(env.company_of(&master).map(|c| c.id), Some(local_master.id));
}

#[tokio::test]
async fn a_converted_lead_relinks_its_local_contact_to_the_new_contact_and_account() {
    let env = start().await;
    let lead = env
        .sim
        .create(
            "Lead",
            json!({"FirstName": "Leslie", "LastName": "Knope", "Company": "Pawnee Parks",
                   "Email": "leslie@pawnee.gov"}),
        )
        .expect("lead");
    let local = eventually("the lead", WAIT, || async { env.contact_of(&lead) }).await;
    let result = env
        .sim
        .convert_lead(&lead, ConvertOptions::default())
        .expect("convert");
    let relinked = eventually("the re-link", WAIT, || async {
        env.contact_of(&result.contact_id)
            .filter(|c| c.company_id.is_some())
    })
    .await;
    assert_eq!(relinked.id, local.id, "the same local contact");
    assert_eq!(relinked.salesforce_kind, Some(SalesforceKind::Contact));
    let company = env.company_of(&result.account_id).expect("the new account");
    assert_eq!(relinked.company_id, Some(company.id));
    env.settle(WAIT).await;
    let with_email = env
        .store()
        .contacts(&env.org)
        .expect("contacts")
        .into_iter()
        .filter(|c| c.email.as_deref() == Some("leslie@pawnee.gov"))
        .count();
    assert_eq!(with_email, 1, "no duplicate");
    assert!(env.contact_of(&lead).is_none());
    let opp = result.opportunity_id.expect("an opportunity");
    let product = env.product_of(&opp).expect("the opportunity's product");
    assert_eq!(product.company_id, company.id);
}

fn notify(store: &Store, org: &OrgId, object: ObjectType, id: &SalesforceId, tag: &str) {
    store
        .ingest(
            org,
            &[Delivery {
                dedupe_id: format!("test-{tag}"),
                source: DedupeSource::WebhookId,
                notifications: vec![Notification {
                    object,
                    record_id: id.clone(),
                    change: ChangeType::Update,
                    system_modstamp: None,
                    modified_by: None,
                }],
                resync: vec![],
                digest: None,
            }],
            Utc::now(),
        )
        .expect("ingest");
}

/// A Lead pulled, converted, and the Contact it became pulled before the Lead's own
/// notification: its pull makes a second local contact, which the Lead's then folds away.
pub(crate) struct Folded {
    pub(crate) local: Contact,
    pub(crate) duplicate: Contact,
    pub(crate) contact: SalesforceId,
}

pub(crate) async fn convert_after_its_contact(env: &PullEnv) -> Folded {
    let lead = env
        .sim
        .create(
            "Lead",
            json!({"LastName": "Swanson", "Company": "Very Good Building", "Email": "ron@vgb.com"}),
        )
        .expect("lead");
    let local = eventually("the lead", WAIT, || async { env.contact_of(&lead) }).await;
    env.settle(WAIT).await;
    // Hold Outbound Messages and deliver the Contact's notification before the Lead's.
    env.sim.set_outbound_url(None);
    let result = env
        .sim
        .convert_lead(&lead, ConvertOptions::default())
        .expect("convert");
    let contact = result.contact_id;
    notify(env.store(), &env.org, ObjectType::Contact, &contact, "c");
    let duplicate = eventually("the contact's own copy", WAIT, || async {
        env.contact_of(&contact)
    })
    .await;
    notify(env.store(), &env.org, ObjectType::Lead, &lead, "l");
    eventually("the fold", WAIT, || async {
        env.contact_of(&contact).filter(|c| c.id == local.id)
    })
    .await;
    Folded {
        local,
        duplicate,
        contact,
    }
}

#[tokio::test]
async fn a_conversion_seen_after_its_contact_folds_the_duplicate_into_the_leads_contact() {
    let env = start().await;
    let Folded {
        local,
        duplicate,
        contact: converted,
    } = convert_after_its_contact(&env).await;
    assert_ne!(duplicate.id, local.id);
    let folded = env.contact_of(&converted).expect("the contact");
    assert_eq!(folded.id, local.id);
    assert_eq!(folded.email.as_deref(), Some("ron@vgb.com"));
    assert!(
        contact(&env, duplicate.id).is_none(),
        "the duplicate is gone"
    );
}
