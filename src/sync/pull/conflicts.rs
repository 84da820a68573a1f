//! Conflicts: a quarantined record and the local candidates a person picks from ([`Conflict`]),
//! the conflict as `GET /api/v1/conflicts/{id}` shows it ([`ConflictView`]), and the change-log
//! entries of conflicts opened and closed, which carry that same view.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{ChangeKind, ChangeWhat, ObjectType, OrgId, SalesforceId};
use crate::salesforce::Record;
use crate::store::{LocalRef, Subject, Tx, TxResult};

/// A quarantined record and the candidates a person picks from. A pull conflict is a Salesforce
/// record that matched several local records; a push conflict is a local record whose create
/// found several records in the org (`local` and `matches` set, no `salesforce_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The object type.
    pub object: ObjectType,
    /// Pull: the Salesforce record id.
    #[serde(default)]
    pub salesforce_id: Option<SalesforceId>,
    /// The rung that found several candidates (`domain`, `name`, `email`), or `no_company`.
    pub rung: String,
    /// Pull: local ids of the candidates (Companies for Accounts, Contacts for Contacts and
    /// Leads).
    #[serde(default)]
    pub candidates: Vec<u64>,
    /// Pull: the record as pulled.
    #[serde(default)]
    pub record: Record,
    /// When it was quarantined (RFC 3339).
    pub at: String,
    /// Push: the local record whose create found several records in the org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalRef>,
    /// Push: the records it found, as read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Record>,
}

/// A quarantined record and the records it could be.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    /// The conflict id.
    id: u64,
    /// The org.
    org: String,
    /// `pull` (a Salesforce record matched several local records) or `push` (a local record's
    /// create found several records in the org).
    side: &'static str,
    /// `Account`, `Contact`, `Lead` or `Opportunity`.
    #[schema(value_type = String)]
    object: ObjectType,
    /// Pull: the Salesforce record id.
    #[schema(value_type = Option<String>)]
    salesforce_id: Option<SalesforceId>,
    /// The rung that found several candidates (`domain`, `name`, `email`), or `no_company`.
    rung: String,
    /// Local ids of the candidates.
    candidates: Vec<u64>,
    /// The record as pulled.
    #[schema(value_type = Object)]
    record: Record,
    /// When it was quarantined (RFC 3339).
    at: String,
    /// The candidates' current local records.
    #[schema(value_type = Vec<Object>)]
    candidate_records: Vec<Value>,
    /// Push: the local record held (`{"kind", "id"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    local: Option<LocalRef>,
    /// Push: the org's records it matched, as read; resolve with one's `Id` as
    /// `salesforce_id`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    matches: Vec<Record>,
}

impl ConflictView {
    /// The view of conflict `id` of `org`, with its candidates' local records.
    pub fn new(id: u64, org: &OrgId, c: Conflict, candidate_records: Vec<Value>) -> Self {
        Self {
            id,
            org: org.to_string(),
            side: if c.local.is_some() { "push" } else { "pull" },
            object: c.object,
            salesforce_id: c.salesforce_id,
            rung: c.rung,
            candidates: c.candidates,
            record: c.record,
            at: c.at,
            candidate_records,
            local: c.local,
            matches: c.matches,
        }
    }
}

/// The candidates' local records as they stand in the transaction.
fn candidate_records(tx: &Tx<'_>, org: &OrgId, c: &Conflict) -> TxResult<Vec<Value>> {
    let mut out = Vec::with_capacity(c.candidates.len());
    for &id in &c.candidates {
        let found = match c.object {
            ObjectType::Account => tx.company(org, id)?.map(|x| serde_json::json!(x)),
            ObjectType::Contact | ObjectType::Lead => {
                tx.contact(org, id)?.map(|x| serde_json::json!(x))
            }
            ObjectType::Opportunity => None,
        };
        out.extend(found);
    }
    Ok(out)
}

/// Logs that conflict `id` was opened or closed (`what`), with its view.
pub(super) fn log_conflict(
    tx: &Tx<'_>,
    org: &OrgId,
    id: u64,
    conflict: &Conflict,
    what: ChangeWhat,
) -> TxResult<()> {
    let records = candidate_records(tx, org, conflict)?;
    let view = ConflictView::new(id, org, conflict.clone(), records);
    let data = serde_json::to_value(view).unwrap_or(Value::Null);
    let kind = ChangeKind::Conflict;
    tx.record_change(org, what, Subject::Shown { kind, id, data })
}

/// Closes conflict `id`: removed, and logged as resolved with the view it had.
pub fn close_conflict(tx: &Tx<'_>, org: &OrgId, id: u64) -> TxResult<()> {
    if let Some(c) = tx.conflict::<Conflict>(org, id)? {
        log_conflict(tx, org, id, &c, ChangeWhat::Resolved)?;
    }
    tx.remove_conflict(org, id)
}
