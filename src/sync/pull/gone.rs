//! Records gone from Salesforce: deleted (the local record is unlinked) or merged (local links
//! move to the survivor's copy).

use crate::domain::{ChangeWhat, OrgId, SalesforceId};
use crate::store::{LocalRef, RecordKind, Store, StoreError, Subject, Tx, TxResult};

use super::outcome::{Applied, Origin};

/// Local records that point at a local record: what a merge re-points to the survivor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children {
    /// Contacts whose `company_id` is the record.
    pub contacts: Vec<u64>,
    /// CompanyProducts whose `company_id` is the record.
    pub products: Vec<u64>,
    /// Activities whose `company_id` or `contact_id` is the record.
    pub activities: Vec<u64>,
}

/// Scans the store for the records pointing at `target` (outside a transaction: candidates are
/// re-checked inside it).
pub fn children_of(store: &Store, org: &OrgId, target: LocalRef) -> Result<Children, StoreError> {
    let mut out = Children::default();
    match target.kind {
        RecordKind::Company => {
            out.contacts = store
                .contacts(org)?
                .into_iter()
                .filter(|c| c.company_id == Some(target.id))
                .map(|c| c.id)
                .collect();
            out.products = store
                .company_products(org)?
                .into_iter()
                .filter(|p| p.company_id == target.id)
                .map(|p| p.id)
                .collect();
            out.activities = store
                .activities(org)?
                .into_iter()
                .filter(|a| a.company_id == Some(target.id))
                .map(|a| a.id)
                .collect();
        }
        RecordKind::Contact => {
            out.activities = store
                .activities(org)?
                .into_iter()
                .filter(|a| a.contact_id == Some(target.id))
                .map(|a| a.id)
                .collect();
        }
        RecordKind::CompanyProduct | RecordKind::Activity => {}
    }
    Ok(out)
}

fn repoint(
    tx: &Tx<'_>,
    org: &OrgId,
    from: LocalRef,
    to: u64,
    children: &Children,
    origin: &Origin,
) -> TxResult<()> {
    let rule = format!("merge:repointed_from_{}", from.id);
    if from.kind == RecordKind::Company {
        for &id in &children.contacts {
            if let Some(mut c) = tx.contact(org, id)? {
                if c.company_id == Some(from.id) {
                    c.company_id = Some(to);
                    c.updated_at = origin.now;
                    tx.put_contact(&c)?;
                    let me = LocalRef {
                        kind: RecordKind::Contact,
                        id,
                    };
                    tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
                    tx.record_change(org, ChangeWhat::Updated, Subject::Record(me))?;
                }
            }
        }
        for &id in &children.products {
            if let Some(mut p) = tx.company_product(org, id)? {
                if p.company_id == from.id {
                    p.company_id = to;
                    p.updated_at = origin.now;
                    tx.put_company_product(&p)?;
                    let me = LocalRef {
                        kind: RecordKind::CompanyProduct,
                        id,
                    };
                    tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
                    tx.record_change(org, ChangeWhat::Updated, Subject::Record(me))?;
                }
            }
        }
    }
    for &id in &children.activities {
        if let Some(mut a) = tx.activity(org, id)? {
            let mut touched = false;
            if from.kind == RecordKind::Company && a.company_id == Some(from.id) {
                a.company_id = Some(to);
                touched = true;
            }
            if from.kind == RecordKind::Contact && a.contact_id == Some(from.id) {
                a.contact_id = Some(to);
                touched = true;
            }
            if touched {
                tx.put_activity(&a)?;
                let me = LocalRef {
                    kind: RecordKind::Activity,
                    id,
                };
                tx.add_provenance(org, me, &origin.provenance(rule.clone()))?;
                tx.record_change(org, ChangeWhat::Updated, Subject::Record(me))?;
            }
        }
    }
    Ok(())
}

/// Applies a record that is gone from Salesforce (deleted, or merged away when `master` is
/// set). Merged: records pointing at the loser's local copy are re-pointed to the survivor's
/// copy and the loser's copy is unlinked; when the survivor has no local copy yet, the loser's
/// copy is re-linked to it. Deleted: the local record stays, its link is cleared, and the
/// provenance says why.
pub fn apply_gone(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    master: Option<&SalesforceId>,
    children: &Children,
    origin: &Origin,
) -> TxResult<Applied> {
    let Some(local) = tx.by_salesforce_id(org, id)? else {
        return Ok(Applied::Ignored {
            reason: "gone from salesforce and never synced".into(),
        });
    };
    let Some(master) = master.filter(|m| *m != id) else {
        tx.set_salesforce_link(org, local, None, Some(origin.now))?;
        tx.add_provenance(
            org,
            local,
            &origin.provenance(format!("unlink:deleted_in_salesforce:{id}")),
        )?;
        tx.record_change(org, ChangeWhat::Deleted, Subject::Record(local))?;
        return Ok(Applied::Unlinked { target: local });
    };
    match tx
        .by_salesforce_id(org, master)?
        .filter(|s| s.kind == local.kind)
    {
        Some(survivor) if survivor.id != local.id => {
            repoint(tx, org, local, survivor.id, children, origin)?;
            tx.set_salesforce_link(org, local, None, Some(origin.now))?;
            tx.add_provenance(
                org,
                local,
                &origin.provenance(format!("unlink:merged_into:{master}")),
            )?;
            tx.record_change(org, ChangeWhat::Merged, Subject::Record(local))?;
            Ok(Applied::Relinked {
                target: survivor,
                survivor: master.clone(),
            })
        }
        Some(survivor) => Ok(Applied::Unchanged { target: survivor }),
        None => {
            tx.set_salesforce_link(org, local, Some(master), Some(origin.now))?;
            tx.add_provenance(
                org,
                local,
                &origin.provenance(format!("merge:relinked_to_survivor:{master}")),
            )?;
            tx.record_change(org, ChangeWhat::Merged, Subject::Record(local))?;
            Ok(Applied::Relinked {
                target: local,
                survivor: master.clone(),
            })
        }
    }
}
