//! Prepare: each due entry's record read in one transaction and turned into the write it
//! needs ([`crate::sync::push`]), or a reason to skip it or to wait for a record it links to.

use chrono::NaiveDate;

use crate::config::ActivityTarget;
use crate::domain::{AppUser, Company, OrgId, PushAs, StageTable};
use crate::store::{
    LocalRef, OutboxEntry, OutboxState, RecordKind, Store, StoreError, Tx, TxResult,
};
use crate::sync::push::{self, Links, Payload, Plan};

/// One entry ready to go out.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) entry_id: u64,
    pub(super) version: u64,
    /// Failed attempts so far.
    pub(super) attempts: u32,
    pub(super) maybe_sent: bool,
    /// A person chose a new record over the candidates its look-up found.
    pub(super) create_new: bool,
    /// The application user the write is made for (written with their connection when they
    /// have one).
    pub(super) owner: Option<AppUser>,
    pub(super) target: LocalRef,
    pub(super) payload: Payload,
}

/// The read of an entry: what to do with it.
#[derive(Debug)]
pub(super) enum Prep {
    /// Send this.
    Send(Box<Item>),
    /// Nothing to send (entry id, version, record).
    Skip(u64, u64, LocalRef),
    /// A record it links to is about to be created: next step.
    Wait,
}

/// The rules that shape a write: what a new contact becomes, the stage table, where activities
/// go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape<'a> {
    pub(super) push_as: PushAs,
    pub(super) stages: &'a StageTable,
    pub(super) activities: &'a ActivityTarget,
    pub(super) today: NaiveDate,
}

/// Reads each due entry's record and its links, in one read transaction.
pub(super) fn prepare(
    store: &Store,
    org: &OrgId,
    due: &[OutboxEntry],
    shape: Shape<'_>,
) -> Result<Vec<Prep>, StoreError> {
    store.atomically(|tx| due.iter().map(|e| prepare_one(tx, org, e, shape)).collect())
}

/// The `sfsync:{kind}:{id}` marker's kind of a local record.
pub(super) fn marker_kind(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Company => "company",
        RecordKind::Contact => "contact",
        RecordKind::CompanyProduct => "product",
        RecordKind::Activity => "activity",
    }
}

/// What reading an entry's record found.
enum Read {
    /// The record is gone: nothing to send.
    Gone,
    /// A record it links to is about to be created.
    Wait,
    /// What the record needs.
    Plan(Plan),
}

/// Whether a record this one links to is about to be created (its create must go first).
fn creating(tx: &Tx<'_>, org: &OrgId, target: LocalRef, linked: bool) -> TxResult<bool> {
    if linked {
        return Ok(false);
    }
    Ok(tx
        .outbox_entry_for(org, target)?
        .is_some_and(|e| e.state == OutboxState::Pending))
}

/// A linked company, unless it is about to be created (then the caller waits).
fn company_link(
    tx: &Tx<'_>,
    org: &OrgId,
    id: Option<u64>,
) -> TxResult<Result<Option<Company>, ()>> {
    let Some(co) = id.map(|id| tx.company(org, id)).transpose()?.flatten() else {
        return Ok(Ok(None));
    };
    let me = LocalRef {
        kind: RecordKind::Company,
        id: co.id,
    };
    Ok(if creating(tx, org, me, co.salesforce_id.is_some())? {
        Err(())
    } else {
        Ok(Some(co))
    })
}

fn read_contact(tx: &Tx<'_>, org: &OrgId, e: &OutboxEntry, push_as: PushAs) -> TxResult<Read> {
    let Some(c) = tx.contact(org, e.target.id)? else {
        return Ok(Read::Gone);
    };
    let Ok(company) = company_link(tx, org, c.company_id)? else {
        return Ok(Read::Wait);
    };
    let links = Links {
        company: company.as_ref(),
        contact: None,
    };
    Ok(Read::Plan(push::contact(
        &c,
        links,
        e.push_as.unwrap_or(push_as),
    )))
}

fn read_product(tx: &Tx<'_>, org: &OrgId, id: u64, shape: Shape<'_>) -> TxResult<Read> {
    let Some(p) = tx.company_product(org, id)? else {
        return Ok(Read::Gone);
    };
    let Ok(company) = company_link(tx, org, Some(p.company_id))? else {
        return Ok(Read::Wait);
    };
    let links = Links {
        company: company.as_ref(),
        contact: None,
    };
    Ok(Read::Plan(push::company_product(
        &p,
        links,
        shape.stages,
        shape.today,
    )))
}

fn read_activity(tx: &Tx<'_>, org: &OrgId, id: u64, shape: Shape<'_>) -> TxResult<Read> {
    let Some(a) = tx.activity(org, id)? else {
        return Ok(Read::Gone);
    };
    let Ok(company) = company_link(tx, org, a.company_id)? else {
        return Ok(Read::Wait);
    };
    let contact = a
        .contact_id
        .map(|id| tx.contact(org, id))
        .transpose()?
        .flatten();
    if let Some(c) = &contact {
        let me = LocalRef {
            kind: RecordKind::Contact,
            id: c.id,
        };
        if creating(tx, org, me, c.salesforce_id.is_some())? {
            return Ok(Read::Wait);
        }
    }
    let links = Links {
        company: company.as_ref(),
        contact: contact.as_ref(),
    };
    Ok(Read::Plan(push::activity(&a, links, shape.activities)))
}

fn prepare_one(tx: &Tx<'_>, org: &OrgId, e: &OutboxEntry, shape: Shape<'_>) -> TxResult<Prep> {
    let read = match e.target.kind {
        RecordKind::Company => match tx.company(org, e.target.id)? {
            Some(c) => Read::Plan(push::company(&c)),
            None => Read::Gone,
        },
        RecordKind::Contact => read_contact(tx, org, e, shape.push_as)?,
        RecordKind::CompanyProduct => read_product(tx, org, e.target.id, shape)?,
        RecordKind::Activity => read_activity(tx, org, e.target.id, shape)?,
    };
    Ok(match read {
        Read::Wait => Prep::Wait,
        Read::Plan(Plan::Send(payload)) => Prep::Send(Box::new(Item {
            entry_id: e.id,
            version: e.version,
            attempts: e.attempts,
            maybe_sent: e.maybe_sent,
            create_new: e.create_new,
            owner: e.user.clone(),
            target: e.target,
            payload,
        })),
        Read::Gone | Read::Plan(Plan::Nothing(_)) => Prep::Skip(e.id, e.version, e.target),
    })
}
