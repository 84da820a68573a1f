//! The records store: indexes follow every write inside one transaction, and an aborted
//! transaction leaves nothing behind.

use chrono::Utc;
use sfsync::domain::{Company, Contact, SalesforceId, SalesforceKind};
use sfsync::store::{LocalRef, Provenance, RecordKind, Store, TxAbort, TxError};

use crate::support::*;

fn company(id: u64, name: &str, website: Option<&str>, sf: Option<&str>) -> Company {
    Company {
        id,
        org_id: org(),
        name: name.into(),
        domain: None,
        website: website.map(Into::into),
        industry: None,
        annual_revenue: None,
        employees: None,
        salesforce_id: sf.map(|s| SalesforceId::parse(s).expect("id")),
        updated_at: Utc::now(),
    }
}

#[test]
fn indexes_follow_a_company_through_its_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let acct = "0017F000007ydJmQAI";
    store
        .transact::<_, ()>(|tx| {
            tx.put_company(&company(
                1,
                "Acme, Inc.",
                Some("https://www.acme.example/x"),
                Some(acct),
            ))?;
            Ok(())
        })
        .expect("write");
    let (by_domain, by_name, by_sf) = store
        .transact::<_, ()>(|tx| {
            Ok((
                tx.companies_by_domain(&org(), "acme.example")?,
                tx.companies_by_name(&org(), "ACME")?,
                tx.by_salesforce_id(&org(), &SalesforceId::parse("0017F000007ydJm").expect("id"))?,
            ))
        })
        .expect("read");
    assert_eq!(by_domain, vec![1]);
    assert_eq!(by_name, vec![1]);
    assert_eq!(
        by_sf,
        Some(LocalRef {
            kind: RecordKind::Company,
            id: 1
        })
    );

    // A new website, a new name and no Account link: the old index entries go.
    store
        .transact::<_, ()>(|tx| {
            tx.put_company(&company(1, "Globex", Some("globex.example"), None))?;
            Ok(())
        })
        .expect("write");
    let after = store
        .transact::<_, ()>(|tx| {
            Ok((
                tx.companies_by_domain(&org(), "acme.example")?,
                tx.companies_by_name(&org(), "acme")?,
                tx.by_salesforce_id(&org(), &SalesforceId::parse(acct).expect("id"))?,
                tx.companies_by_domain(&org(), "globex.example")?,
            ))
        })
        .expect("read");
    assert_eq!(after, (vec![], vec![], None, vec![1]));
}

#[test]
fn two_contacts_with_one_email_are_both_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    for id in [7, 8] {
        store
            .transact::<_, ()>(|tx| {
                tx.put_contact(&Contact {
                    id,
                    org_id: org(),
                    company_id: Some(1),
                    first_name: None,
                    last_name: format!("Person {id}"),
                    email: Some(" Same@Example.com".into()),
                    title: None,
                    phone: None,
                    salesforce_id: None,
                    salesforce_kind: Some(SalesforceKind::Contact),
                    updated_at: Utc::now(),
                })?;
                Ok(())
            })
            .expect("write");
    }
    let found = store
        .transact::<_, ()>(|tx| Ok(tx.contacts_by_email(&org(), "same@example.COM")?))
        .expect("read");
    assert_eq!(found, vec![7, 8]);
    assert_eq!(store.contacts(&org()).expect("list").len(), 2);
    let other = sfsync::domain::OrgId::parse(OTHER_ORG).expect("org");
    assert!(store.contacts(&other).expect("list").is_empty());
}

#[test]
fn an_aborted_transaction_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let result = store.transact(|tx| {
        tx.put_company(&company(3, "Initech", Some("initech.example"), None))?;
        tx.add_provenance(
            &org(),
            LocalRef {
                kind: RecordKind::Company,
                id: 3,
            },
            &Provenance {
                side: "local".into(),
                event: "test".into(),
                rule: "create".into(),
                at: Utc::now().to_rfc3339(),
            },
        )?;
        Err::<(), _>(TxAbort::User("changed my mind"))
    });
    assert!(matches!(result, Err(TxError::Abort("changed my mind"))));
    assert!(store.companies(&org()).expect("list").is_empty());
    let found = store
        .transact::<_, ()>(|tx| Ok(tx.companies_by_domain(&org(), "initech.example")?))
        .expect("read");
    assert!(found.is_empty());
    assert!(
        store
            .provenance(
                &org(),
                LocalRef {
                    kind: RecordKind::Company,
                    id: 3
                }
            )
            .expect("prov")
            .is_empty()
    );
}
