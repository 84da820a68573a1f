//! Conflicts: a quarantined record and the local candidates a person picks from ([`Conflict`]),
//! the conflict as `GET /api/v1/conflicts/{id}` shows it ([`ConflictView`]), and the change-log
//! entries of conflicts opened and closed, which carry that same view.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{ChangeKind, ChangeWhat, ObjectType, OrgId, SalesforceId};
use crate::salesforce::Record;
use crate::store::{Subject, Tx, TxResult};

/// A quarantined record: the Salesforce record and the local candidates a person picks from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The object type.
    pub object: ObjectType,
    /// The Salesforce record id.
    pub salesforce_id: SalesforceId,
    /// The rung that found several candidates (`domain`, `name`, `email`), or `no_company`.
    pub rung: String,
    /// Local ids of the candidates (Companies for Accounts, Contacts for Contacts and Leads).
    pub candidates: Vec<u64>,
    /// The record as pulled.
    pub record: Record,
    /// When it was quarantined (RFC 3339).
    pub at: String,
}

/// A quarantined record and the local records it could be.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    /// The conflict id.
    id: u64,
    /// The org.
    org: String,
    /// `Account`, `Contact`, `Lead` or `Opportunity`.
    #[schema(value_type = String)]
    object: ObjectType,
    /// The Salesforce record id.
    #[schema(value_type = String)]
    salesforce_id: SalesforceId,
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
}

impl ConflictView {
    /// The view of conflict `id` of `org`, with its candidates' local records.
    pub fn new(id: u64, org: &OrgId, c: Conflict, candidate_records: Vec<Value>) -> Self {
        Self {
            id,
            org: org.to_string(),
            object: c.object,
            salesforce_id: c.salesforce_id,
            rung: c.rung,
            candidates: c.candidates,
            record: c.record,
            at: c.at,
            candidate_records,
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
pub(super) fn close_conflict(tx: &Tx<'_>, org: &OrgId, id: u64) -> TxResult<()> {
    if let Some(c) = tx.conflict::<Conflict>(org, id)? {
        log_conflict(tx, org, id, &c, ChangeWhat::Resolved)?;
    }
    tx.remove_conflict(org, id)
}
