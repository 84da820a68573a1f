//! Contacts written by the application: create and update, each with its outbox entry.
//!
//! A contact is pushed as a Contact or a Lead (the command's choice, else the configured
//! default). A Contact needs its company as an Account: an unlinked company that is not yet
//! waiting in the outbox is enqueued first, in the same transaction.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    LocalError, LocalResult, Saved, TxStep, check_email, enqueue, enqueue_account, invalid,
    local_ref, non_empty, refuse, write,
};
use crate::domain::{AppUser, ChangeWhat, Contact, OrgId, PushAs};
use crate::store::{RecordKind, Store, Subject, Tx};

/// A new contact.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// The local company the person works at (its Account, once pushed).
    pub company_id: Option<u64>,
    /// The Contact's or Lead's `FirstName`.
    #[schema(example = "Ada")]
    pub first_name: Option<String>,
    /// The `LastName` (required, not empty).
    #[schema(example = "Lovelace")]
    pub last_name: String,
    /// An email address; with the company, how an existing Contact is found.
    #[schema(example = "ada@acme.example")]
    pub email: Option<String>,
    /// The `Title`.
    pub title: Option<String>,
    /// The `Phone`.
    pub phone: Option<String>,
    /// `contact` or `lead` (default from `[sync] push_as`).
    #[schema(value_type = Option<String>, example = "lead")]
    pub push_as: Option<PushAs>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

/// The fields of a contact to change; an absent field keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChanges {
    /// Local company id.
    pub company_id: Option<u64>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// `contact` or `lead`, for a contact not yet in Salesforce.
    #[schema(value_type = Option<String>, example = "contact")]
    pub push_as: Option<PushAs>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

fn check(c: &Contact) -> LocalResult<()> {
    non_empty("last_name", &c.last_name)?;
    check_email(c.email.as_deref())
}

/// Checks the contact's company exists and, for a contact pushed as a Contact, that an unlinked
/// company will be pushed as its Account first (written for the same `user`).
fn company_first(
    tx: &Tx<'_>,
    org: &OrgId,
    c: &Contact,
    push_as: PushAs,
    user: Option<&AppUser>,
) -> TxStep<()> {
    let Some(company_id) = c.company_id else {
        return Ok(());
    };
    let Some(company) = tx.company(org, company_id)? else {
        return refuse(invalid("company_id", "no such company"));
    };
    if push_as == PushAs::Contact && c.salesforce_id.is_none() {
        enqueue_account(tx, &company, user, "api:account-for-contact", c.updated_at)?;
    }
    Ok(())
}

fn build(org: &OrgId, cmd: &NewContact, now: DateTime<Utc>) -> LocalResult<Contact> {
    let c = Contact {
        id: 0,
        org_id: org.clone(),
        company_id: cmd.company_id,
        first_name: cmd.first_name.clone(),
        last_name: cmd.last_name.trim().to_string(),
        email: cmd.email.as_deref().map(|e| e.trim().to_string()),
        title: cmd.title.clone(),
        phone: cmd.phone.clone(),
        salesforce_id: None,
        salesforce_kind: None,
        updated_at: now,
    };
    check(&c)?;
    Ok(c)
}

fn insert(
    tx: &Tx<'_>,
    contact: &Contact,
    push_as: PushAs,
    user: Option<&AppUser>,
) -> TxStep<Saved<Contact>> {
    let c = Contact {
        id: tx.next_id()?,
        ..contact.clone()
    };
    company_first(tx, &c.org_id, &c, push_as, user)?;
    tx.put_contact(&c)?;
    let target = local_ref(RecordKind::Contact, c.id);
    tx.record_change(&c.org_id, ChangeWhat::Created, Subject::Record(target))?;
    let outbox_id = enqueue(
        tx,
        &c.org_id,
        target,
        Some(push_as),
        user,
        "api:create",
        c.updated_at,
    )?;
    Ok(Saved {
        record: c,
        outbox_id,
    })
}

/// Stores a new contact and the entry that will push it; `default_as` applies when the command
/// does not say Contact or Lead.
pub async fn create(
    store: &Store,
    org: &OrgId,
    cmd: NewContact,
    default_as: PushAs,
) -> LocalResult<Saved<Contact>> {
    let push_as = cmd.push_as.unwrap_or(default_as);
    let contact = build(org, &cmd, Utc::now())?;
    write(store, |tx| insert(tx, &contact, push_as, cmd.user.as_ref())).await
}

fn apply(c: &mut Contact, cmd: &ContactChanges, now: DateTime<Utc>) {
    let set = |dst: &mut Option<String>, v: &Option<String>| {
        if let Some(v) = v {
            *dst = Some(v.trim().to_string());
        }
    };
    if cmd.company_id.is_some() {
        c.company_id = cmd.company_id;
    }
    set(&mut c.first_name, &cmd.first_name);
    if let Some(v) = &cmd.last_name {
        c.last_name = v.trim().to_string();
    }
    set(&mut c.email, &cmd.email);
    set(&mut c.title, &cmd.title);
    set(&mut c.phone, &cmd.phone);
    c.updated_at = now;
}

/// Changes a contact and enqueues its push (sharing a waiting entry); `default_as` decides
/// whether its company is needed as an Account when the command does not say.
pub async fn update(
    store: &Store,
    org: &OrgId,
    id: u64,
    cmd: ContactChanges,
    default_as: PushAs,
) -> LocalResult<Saved<Contact>> {
    let now = Utc::now();
    write(store, |tx| {
        let Some(mut c) = tx.contact(org, id)? else {
            return refuse(LocalError::NotFound("contact"));
        };
        apply(&mut c, &cmd, now);
        check(&c).or_else(refuse)?;
        let user = cmd.user.as_ref();
        company_first(tx, org, &c, cmd.push_as.unwrap_or(default_as), user)?;
        tx.put_contact(&c)?;
        let target = local_ref(RecordKind::Contact, c.id);
        tx.record_change(org, ChangeWhat::Updated, Subject::Record(target))?;
        let outbox_id = enqueue(tx, org, target, cmd.push_as, user, "api:update", now)?;
        Ok(Saved {
            record: c,
            outbox_id,
        })
    })
    .await
}
