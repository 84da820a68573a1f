//! No echo storms: the Outbound Messages Salesforce sends back for sfsync's own writes cost no
//! pull, recognised from the fields an admin actually selects (`Id`, `SystemModstamp`,
//! `LastModifiedById`), while a person's change is pulled, even one made in the same second.
//! And no lost write when a pull races sfsync's own push: a record read before sfsync wrote it
//! is not applied over the values sfsync wrote, and is read again.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sfsync::domain::{
    Activity, ActivityKind, Company, Contact, ObjectType, PushAs, SalesforceId, SalesforceKind,
};
use sfsync::salesforce::Record;
use sfsync::store::{LocalRef, PendingEntry, RecordKind, TxAbort};
use sfsync::sync::orgs::PullContext;
use sfsync::sync::pull::{self, Applied, Origin, Rules, Target};
use sfsync::worker::inbox::{InboxSettings, InboxWorker, Outcome, StepReport};
use sfsync::worker::outbox::OutboxWorker;

use crate::support::push::{PushEnv, connecting_client, drain, outbox_config, push_env};

/// The fields the admin's Outbound Message action for Contacts sends.
const MINIMUM: [&str; 3] = ["Id", "SystemModstamp", "LastModifiedById"];

/// Someone in the org other than the integration user.
/// A rep of the org: anyone but the integration user sfsync connects as.
fn person(env: &PushEnv) -> SalesforceId {
    env.sim
        .users()
        .into_iter()
        .find(|u| !u.integration)
        .expect("a rep")
        .id
}

struct Echoes {
    env: PushEnv,
    outbox: OutboxWorker,
    inbox: InboxWorker,
}

/// The push bench with the minimal Outbound Message action on Contacts delivering to the
/// service, and both workers on one connection that has not called Salesforce yet.
async fn echoes() -> Echoes {
    let env = push_env().await;
    env.sim
        .set_outbound_rule("Contact", &MINIMUM)
        .expect("outbound rule");
    env.sim.set_outbound_url(Some(format!(
        "{}/webhooks/salesforce/outbound/{}",
        env.app.base,
        crate::support::env::ENV_KEY
    )));
    let store = env.app.store().clone();
    let client = connecting_client(&env.sim, &store);
    let outbox = OutboxWorker::new(
        store.clone(),
        client.clone(),
        outbox_config(),
        PushAs::Contact,
    );
    // The service's counters, so the status API reports what this worker recognises.
    let ctx = PullContext {
        echoes: env.app.state.pull.echoes.clone(),
        ..PullContext::new(Rules::default())
    };
    ctx.orgs.insert(client);
    let settings = InboxSettings {
        gather: Duration::ZERO,
        ..InboxSettings::default()
    };
    let inbox = InboxWorker::new(store, ctx, settings);
    Echoes { env, outbox, inbox }
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Echoes {
    async fn contact(&self, n: u32) -> u64 {
        self.env
            .create(
                "/contacts",
                json!({"first_name": "Echo", "last_name": format!("Person {n}"),
                       "email": format!("echo{n}@echo.example")}),
            )
            .await
    }

    /// Waits until the org has delivered `n` notifications in all and holds none back.
    async fn delivered(&self, n: u64) {
        until("the org's messages to be acknowledged", || {
            let s = self.env.sim.outbound_stats();
            s.pending == 0 && s.notifications_acked >= n
        })
        .await;
    }

    /// Waits until every notification the org queued is acknowledged.
    async fn all_delivered(&self) {
        until("every message to be acknowledged", || {
            let s = self.env.sim.outbound_stats();
            s.pending == 0 && s.notifications_acked == s.notifications_queued
        })
        .await;
    }

    /// Steps the inbox worker until it is idle; the sum of its reports.
    async fn settle_inbox(&mut self) -> StepReport {
        let mut total = StepReport::default();
        for _ in 0..50 {
            match self.inbox.step().await.expect("step") {
                Outcome::Worked(r) => {
                    total.pulled += r.pulled;
                    total.stale += r.stale;
                    total.echoes += r.echoes;
                    total.api_calls += r.api_calls;
                }
                Outcome::Idle => return total,
                Outcome::Paused => panic!("the org paused"),
            }
        }
        panic!("the inbox did not settle: {total:?}");
    }
}

#[tokio::test]
async fn five_contacts_pushed_cost_two_calls_and_their_outbound_messages_no_pull() {
    let mut e = echoes().await;
    for n in 0..5 {
        e.contact(n).await;
    }
    let calls = e.env.sim.api_calls().total;

    let reports = drain(&mut e.outbox).await;
    e.delivered(5).await;
    let inbox = e.settle_inbox().await;

    assert_eq!(reports.iter().map(|r| r.delivered).sum::<usize>(), 5);
    assert_eq!(e.env.app.store().pending_count(), 0);
    assert_eq!((inbox.echoes, inbox.pulled, inbox.api_calls), (5, 0, 0));
    assert_eq!(
        e.env.sim.api_calls().total - calls,
        2,
        "the look-up, then the create with its stamp read-back in one composite call; no pull"
    );
    let status = e.env.app.status().await;
    assert_eq!(status["inbox"]["echoes_total"], 5, "{status}");
}

/// Writes, as the local API would (each record with its outbox entry), `people` new contacts
/// with their emails and `emails` emails sent to a contact the org already has.
fn bulk_changes(e: &Echoes, people: usize, emails: usize) {
    let org = e.env.org.clone();
    let account = e
        .env
        .sim
        .create("Account", json!({"Name": "Bulk"}))
        .expect("account");
    let known = e
        .env
        .sim
        .create(
            "Contact",
            json!({"LastName": "Known", "AccountId": account}),
        )
        .expect("contact");
    let now = Utc::now();
    e.env
        .app
        .store()
        .transact(|tx| -> Result<(), TxAbort<Infallible>> {
            let company = tx.next_id()?;
            tx.put_company(&Company {
                salesforce_id: Some(account.clone()),
                ..Company::named(company, org.clone(), "Bulk".into(), now)
            })?;
            let person = |id, n: usize, sf: Option<SalesforceId>| Contact {
                id,
                org_id: org.clone(),
                company_id: Some(company),
                first_name: None,
                last_name: format!("Bulk {n}"),
                email: sf.is_none().then(|| format!("bulk{n}@bulk.example")),
                title: None,
                phone: None,
                salesforce_kind: sf.as_ref().map(|_| SalesforceKind::Contact),
                salesforce_id: sf,
                updated_at: now,
            };
            let known_id = tx.next_id()?;
            tx.put_contact(&person(known_id, 0, Some(known.clone())))?;
            for n in 1..=people {
                let id = tx.next_id()?;
                tx.put_contact(&person(id, n, None))?;
                let target = LocalRef {
                    kind: RecordKind::Contact,
                    id,
                };
                tx.enqueue_push(&org, target, None, None, now)?;
            }
            for n in 0..emails {
                let id = tx.next_id()?;
                tx.put_activity(&Activity {
                    id,
                    org_id: org.clone(),
                    kind: ActivityKind::EmailSent,
                    contact_id: Some(known_id),
                    company_id: Some(company),
                    subject: format!("Email {n}"),
                    description: None,
                    occurred_at: now,
                    starts_at: None,
                    ends_at: None,
                    salesforce_id: None,
                })?;
                let target = LocalRef {
                    kind: RecordKind::Activity,
                    id,
                };
                tx.enqueue_push(&org, target, None, None, now)?;
            }
            Ok(())
        })
        .expect("local changes");
}

#[tokio::test]
async fn four_hundred_fifty_contacts_and_three_hundred_emails_are_pushed_in_three_calls() {
    let mut e = echoes().await;
    bulk_changes(&e, 450, 300);
    // The org's message about the contact it already had is pulled before the count starts.
    e.all_delivered().await;
    e.settle_inbox().await;
    let calls = e.env.sim.api_calls().total;

    let reports = drain(&mut e.outbox).await;
    e.all_delivered().await;
    let inbox = e.settle_inbox().await;

    assert_eq!(reports.iter().map(|r| r.delivered).sum::<usize>(), 750);
    assert_eq!(
        e.env.sim.api_calls().total - calls,
        3,
        "the look-up (two queries in one composite call), then five collections writes of \
         up to 200 records and the stamp queries of the three Contact writes in two composite \
         calls: {:?}",
        e.env.sim.api_calls()
    );
    assert_eq!((inbox.echoes, inbox.pulled), (450, 0));
    assert_eq!(e.env.live("Contact").len(), 451);
    assert_eq!(e.env.live("Task").len(), 300);
}

#[tokio::test]
async fn a_persons_edit_in_the_same_second_as_sfsyncs_write_is_pulled() {
    let mut e = echoes().await;
    let store = e.env.app.store().clone();
    let org = e.env.org.clone();
    // The person must edit within the second of sfsync's write; a run that crosses a second
    // boundary proves nothing, so it tries again with a new contact.
    let mut same_second = None;
    for n in 0..5 {
        let contact = e.contact(n).await;
        drain(&mut e.outbox).await;
        let sf = e.env.sf_id("/contacts", contact, "salesforce_id").await;
        e.env
            .sim
            .update_as(&person(&e.env), &sf, json!({"Title": "Chief of Staff"}))
            .expect("the person's edit");
        let stamp = e.env.record(&sf)["SystemModstamp"]
            .as_str()
            .and_then(sfsync::sync::pull::parse_datetime)
            .map(|t| t.timestamp_millis());
        if stamp.is_some() && stamp == store.written_stamp(&org, &sf).expect("stamp") {
            same_second = Some((contact, sf));
            break;
        }
        e.all_delivered().await;
        e.settle_inbox().await;
    }
    let (contact, sf) = same_second.expect("an edit in the same second as sfsync's write");

    e.all_delivered().await;
    let inbox = e.settle_inbox().await;

    assert!(inbox.pulled >= 1, "{inbox:?}");
    let local = e.env.listed("/contacts", contact).await;
    assert_eq!(local["title"], "Chief of Staff");
    assert_eq!(
        store
            .pending_record(&org, ObjectType::Contact, &sf)
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn the_connections_user_is_kept_across_a_restart() {
    let e = echoes().await;
    let store = e.env.app.store().clone();
    let first = connecting_client(&e.env.sim, &store);
    assert_eq!(first.user_id(), None, "no token yet");
    first.fetch_limits().await.expect("a call");
    let user = first.user_id().expect("the token names the user");
    assert_eq!(user.key_prefix(), "005");

    // A new connection on the same store, before any call, as after a restart.
    let again = connecting_client(&e.env.sim, &store);
    assert_eq!(again.user_id(), Some(user));
}

/// A pull that read a record and is about to apply it: the record as read, when the read began,
/// and the record's pending entry as the pull took it.
struct Read {
    contact: u64,
    sf: SalesforceId,
    record: Record,
    started: DateTime<Utc>,
    snapshot: PendingEntry,
}

impl Echoes {
    /// A contact pushed and its echo skipped; then a person's edit in the org, pending, and a
    /// pull's read of the record. Outbound Messages are held from the read on, so none reaches
    /// the service until [`Echoes::release_messages`].
    async fn read_after_a_persons_edit(&mut self) -> Read {
        let contact = self.contact(0).await;
        drain(&mut self.outbox).await;
        let sf = self.env.sf_id("/contacts", contact, "salesforce_id").await;
        self.all_delivered().await;
        self.settle_inbox().await;
        let person = person(&self.env);
        self.env
            .sim
            .update_as(&person, &sf, json!({"Title": "Chief of Staff"}))
            .expect("the person's edit");
        self.all_delivered().await;
        let store = self.env.app.store();
        let snapshot = store
            .pending_record(&self.env.org, ObjectType::Contact, &sf)
            .expect("read")
            .expect("the person's edit is pending");
        self.env.sim.set_outbound_url(None);
        let started = Utc::now();
        let client = connecting_client(&self.env.sim, store);
        let record = client
            .retrieve_collection(
                "Contact",
                std::slice::from_ref(&sf),
                pull::fields_for(ObjectType::Contact),
            )
            .await
            .expect("retrieve")
            .remove(0)
            .expect("the record");
        Read {
            contact,
            sf,
            record,
            started,
            snapshot,
        }
    }

    /// A local change to the contact, pushed: the org takes it and sfsync keeps the stamp it
    /// read back.
    async fn push_change(&mut self, contact: u64, change: Value) {
        let (status, body) = self
            .env
            .patch(&format!("/contacts/{contact}"), change)
            .await;
        assert_eq!(status, 200, "{body}");
        let reports = drain(&mut self.outbox).await;
        assert_eq!(reports.iter().map(|r| r.delivered).sum::<usize>(), 1);
    }

    /// Applies what the pull read, as the inbox worker does.
    fn commit(&self, read: &Read) -> Vec<Applied> {
        let origin = Origin {
            event: "notification".into(),
            now: read.started,
        };
        pull::commit_records(
            self.env.app.store(),
            &self.env.org,
            &Rules::default(),
            ObjectType::Contact,
            &[(&read.record, Some(&read.snapshot))],
            &origin,
            Target::Ladder,
        )
        .expect("commit")
    }

    /// Lets the held Outbound Messages go to the service.
    fn release_messages(&self) {
        self.env.sim.set_outbound_url(Some(format!(
            "{}/webhooks/salesforce/outbound/{}",
            self.env.app.base,
            crate::support::env::ENV_KEY
        )));
    }

    fn is_pending(&self, sf: &SalesforceId) -> bool {
        self.env
            .app
            .store()
            .pending_record(&self.env.org, ObjectType::Contact, sf)
            .expect("read")
            .is_some()
    }
}

#[tokio::test]
async fn a_record_read_before_sfsyncs_own_write_does_not_put_the_older_values_back() {
    let mut e = echoes().await;
    let read = e.read_after_a_persons_edit().await;
    e.push_change(read.contact, json!({"last_name": "Pushed"}))
        .await;
    let store = e.env.app.store().clone();
    let written = store.written_stamp(&e.env.org, &read.sf).expect("stamp");
    assert!(written.is_some(), "the push kept the stamp it read back");

    let applied = e.commit(&read);

    assert_eq!(applied, vec![Applied::Stale]);
    let local = e.env.listed("/contacts", read.contact).await;
    assert_eq!(local["last_name"], "Pushed", "{local}");
    assert!(e.is_pending(&read.sf), "the record waits to be read again");
    assert_eq!(
        store.written_stamp(&e.env.org, &read.sf).expect("stamp"),
        None
    );

    // The echo of the push arrives, and the inbox settles.
    e.release_messages();
    e.all_delivered().await;
    e.settle_inbox().await;

    let local = e.env.listed("/contacts", read.contact).await;
    assert_eq!(local["last_name"], "Pushed", "{local}");
    assert_eq!(local["title"], "Chief of Staff", "{local}");
    assert!(!e.is_pending(&read.sf));
    assert_eq!(e.env.record(&read.sf)["LastName"], "Pushed");
}

#[tokio::test]
async fn an_org_change_between_the_read_and_sfsyncs_own_write_is_read_again_without_a_message() {
    let mut e = echoes().await;
    let read = e.read_after_a_persons_edit().await;
    let person = person(&e.env);
    e.env
        .sim
        .update_as(&person, &read.sf, json!({"Phone": "+1 555 0100"}))
        .expect("the person's second edit");
    e.push_change(read.contact, json!({"last_name": "Pushed"}))
        .await;

    assert_eq!(e.commit(&read), vec![Applied::Stale]);
    // No message has reached the service since the read: the record is read again because it
    // stayed pending.
    let again = e.settle_inbox().await;

    assert_eq!(
        (again.pulled, again.stale),
        (1, 0),
        "one more read, applied: {again:?}"
    );
    let local = e.env.listed("/contacts", read.contact).await;
    assert_eq!(local["phone"], "+1 555 0100", "{local}");
    assert_eq!(local["last_name"], "Pushed", "{local}");
    assert_eq!(local["title"], "Chief of Staff", "{local}");
    assert!(!e.is_pending(&read.sf));

    // The held messages now name the record at the stamp of sfsync's write, as sfsync's own.
    e.release_messages();
    e.all_delivered().await;
    e.settle_inbox().await;

    let local = e.env.listed("/contacts", read.contact).await;
    assert_eq!(local["phone"], "+1 555 0100", "{local}");
    assert_eq!(local["last_name"], "Pushed", "{local}");
}
