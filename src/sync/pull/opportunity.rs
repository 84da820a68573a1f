//! Opportunity → CompanyProduct.

use chrono::NaiveDate;

use crate::domain::{ChangeWhat, CompanyProduct, ObjectType, OrgId, SalesforceId, SyncedStage};
use crate::salesforce::{Record, RecordExt as _};
use crate::store::{LocalRef, RecordKind, Subject, Tx, TxResult};

use super::fields::{f64_of, id_of, str_of};
use super::outcome::{Applied, Apply, Origin, quarantine, record_applied};
use super::policy::{Rules, local_change_pending};

/// Applies an Opportunity to the product linked to it, or a new one on its Account's company;
/// quarantined when it has neither.
pub(super) fn apply_opportunity(
    a: Apply<'_, '_>,
    id: &SalesforceId,
    record: &Record,
) -> TxResult<Applied> {
    let (tx, org, rules, origin) = (a.tx, a.org, a.rules, a.origin);
    let company = match id_of(record, "AccountId") {
        Some(account) => tx
            .by_salesforce_id(org, &account)?
            .filter(|l| l.kind == RecordKind::Company)
            .map(|l| l.id),
        None => None,
    };
    let Some((mut product, created)) = product_for(tx, org, id, company, origin)? else {
        let object = ObjectType::Opportunity;
        return quarantine(a, object, id, "no_company", Vec::new(), record);
    };
    let before = product.clone();
    let target = LocalRef {
        kind: RecordKind::CompanyProduct,
        id: product.id,
    };
    if !created && local_change_pending(tx, org, RecordKind::CompanyProduct, product.id)? {
        // The local change goes out first; only the link is kept in step.
        product.salesforce_opportunity_id = Some(id.clone());
        if product == before {
            return Ok(Applied::Unchanged { target });
        }
        tx.put_company_product(&product)?;
        let rule = "match:salesforce_id;policy:local_change_pending";
        tx.add_provenance(org, target, &origin.provenance(rule))?;
        tx.record_change(org, ChangeWhat::Updated, Subject::Record(target))?;
        return Ok(Applied::Updated {
            target,
            rule: rule.into(),
        });
    }
    take_opportunity(&mut product, record, rules);
    if let Some(c) = company {
        product.company_id = c;
    }
    product.salesforce_opportunity_id = Some(id.clone());
    if !created && product == before {
        return Ok(Applied::Unchanged { target });
    }
    product.updated_at = origin.now;
    tx.put_company_product(&product)?;
    let rule = "match:salesforce_id".to_string();
    record_applied(a, target, created, rule)
}

/// The product linked to the Opportunity, or a new one on the Company of its Account (`true`:
/// created); `None` when it has neither.
fn product_for(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &SalesforceId,
    company: Option<u64>,
    origin: &Origin,
) -> TxResult<Option<(CompanyProduct, bool)>> {
    let existing = match tx.by_salesforce_id(org, id)? {
        Some(l) if l.kind == RecordKind::CompanyProduct => tx.company_product(org, l.id)?,
        _ => None,
    };
    Ok(match (existing, company) {
        (Some(p), _) => Some((p, false)),
        (None, Some(company_id)) => Some((
            CompanyProduct {
                id: tx.next_id()?,
                org_id: org.clone(),
                company_id,
                product: String::new(),
                status: crate::domain::OwnershipStatus::Opportunity,
                opportunity_size: None,
                stage: None,
                close_date: None,
                salesforce_opportunity_id: None,
                synced_stage: None,
                updated_at: origin.now,
            },
            true,
        )),
        (None, None) => None,
    })
}

/// The Opportunity's fields: stage and status through the stage table (the `StageName` kept with
/// what it mapped to, so a push can send it back unchanged), amount, close date. The name is
/// taken only by a product that has none: a product's name is the application's, and the
/// Opportunity's is set once when sfsync creates it.
fn take_opportunity(product: &mut CompanyProduct, record: &Record, rules: &Rules) {
    let stage_name = record.str_field("StageName").unwrap_or_default();
    let (status, stage) = rules.stages.map(
        stage_name,
        record.bool_field("IsClosed"),
        record.bool_field("IsWon"),
    );
    product.synced_stage = Some(SyncedStage {
        stage_name: stage_name.trim().to_string(),
        status,
        stage: stage.clone(),
    });
    product.status = status;
    product.stage = Some(stage);
    if product.product.trim().is_empty() {
        product.product = str_of(record, "Name").unwrap_or_default();
    }
    product.opportunity_size = f64_of(record, "Amount");
    product.close_date = record
        .str_field("CloseDate")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
}
