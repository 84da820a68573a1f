//! Activities recorded by the application (an email sent, a meeting booked), each with the
//! outbox entry that pushes it as a Task or an Event.
//!
//! The contact and company named must exist; the company defaults to the contact's; a meeting
//! ends after it starts.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{LocalResult, Saved, TxStep, enqueue, invalid, local_ref, non_empty, refuse, write};
use crate::domain::{Activity, ActivityKind, AppUser, ChangeWhat, OrgId};
use crate::store::{RecordKind, Store, Subject, Tx};

/// A new activity: an email sent or a meeting booked.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    /// `email_sent` or `meeting_booked` (required).
    #[schema(value_type = String, example = "email_sent")]
    pub kind: ActivityKind,
    /// Local contact id.
    pub contact_id: Option<u64>,
    /// Local company id (default: the contact's).
    pub company_id: Option<u64>,
    /// Subject (required, not empty).
    pub subject: String,
    /// Body or description.
    pub description: Option<String>,
    /// When it happened (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
    /// Meeting start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Meeting end (after the start).
    pub ends_at: Option<DateTime<Utc>>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the activity's owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

fn check(cmd: &NewActivity) -> LocalResult<()> {
    non_empty("subject", &cmd.subject)?;
    if let (Some(s), Some(e)) = (cmd.starts_at, cmd.ends_at) {
        if e <= s {
            return Err(invalid("ends_at", "must be after starts_at"));
        }
    }
    Ok(())
}

fn insert(
    tx: &Tx<'_>,
    org: &OrgId,
    cmd: &NewActivity,
    now: DateTime<Utc>,
) -> TxStep<Saved<Activity>> {
    let contact = match cmd.contact_id {
        Some(id) => match tx.contact(org, id)? {
            Some(c) => Some(c),
            None => return refuse(invalid("contact_id", "no such contact")),
        },
        None => None,
    };
    if let Some(id) = cmd.company_id {
        if tx.company(org, id)?.is_none() {
            return refuse(invalid("company_id", "no such company"));
        }
    }
    let a = Activity {
        id: tx.next_id()?,
        org_id: org.clone(),
        kind: cmd.kind,
        contact_id: cmd.contact_id,
        company_id: cmd.company_id.or(contact.and_then(|c| c.company_id)),
        subject: cmd.subject.trim().to_string(),
        description: cmd.description.clone(),
        occurred_at: cmd.occurred_at.unwrap_or(now),
        starts_at: cmd.starts_at,
        ends_at: cmd.ends_at,
        salesforce_id: None,
    };
    tx.put_activity(&a)?;
    let target = local_ref(RecordKind::Activity, a.id);
    tx.record_change(org, ChangeWhat::Created, Subject::Record(target))?;
    let outbox_id = enqueue(tx, org, target, None, cmd.user.as_ref(), "api:create", now)?;
    Ok(Saved {
        record: a,
        outbox_id,
    })
}

/// Stores a new activity and the entry that will push it.
pub async fn create(store: &Store, org: &OrgId, cmd: NewActivity) -> LocalResult<Saved<Activity>> {
    check(&cmd)?;
    let now = Utc::now();
    write(store, |tx| insert(tx, org, &cmd, now)).await
}
