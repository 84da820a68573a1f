//! Company products (the pipeline) written by the application: create and update, each with its
//! outbox entry.
//!
//! A product belongs to an existing company; an unlinked company that is not yet waiting in the
//! outbox is enqueued first, in the same transaction, so the Opportunity has an Account.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    LocalError, LocalResult, Saved, TxStep, enqueue, enqueue_account, invalid, local_ref,
    non_empty, non_negative, refuse, write,
};
use crate::domain::{AppUser, ChangeWhat, CompanyProduct, OrgId, OwnershipStatus};
use crate::store::{RecordKind, Store, Subject, Tx};

/// A new company product.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewProduct)]
pub struct NewCompanyProduct {
    /// Local company id (required, an existing company).
    pub company_id: u64,
    /// Product name (required, not empty).
    pub product: String,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST (required).
    #[schema(value_type = String, example = "OPPORTUNITY")]
    pub status: OwnershipStatus,
    /// Deal size (at least 0).
    pub opportunity_size: Option<f64>,
    /// Internal funnel stage.
    pub stage: Option<String>,
    /// Expected close date (`YYYY-MM-DD`).
    pub close_date: Option<NaiveDate>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

/// The fields of a company product to change; an absent field keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProductChanges)]
pub struct CompanyProductChanges {
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    #[schema(value_type = Option<String>, example = "CUSTOMER")]
    pub status: Option<OwnershipStatus>,
    /// Deal size.
    pub opportunity_size: Option<f64>,
    /// Internal funnel stage.
    pub stage: Option<String>,
    /// Expected close date.
    pub close_date: Option<NaiveDate>,
    /// The application user this is written for: with their own Salesforce connection (so
    /// the org shows them as the owner) when they have one that works, else with the org's.
    #[schema(value_type = Option<String>, example = "u42")]
    pub user: Option<AppUser>,
}

fn check(p: &CompanyProduct) -> LocalResult<()> {
    non_empty("product", &p.product)?;
    non_negative("opportunity_size", p.opportunity_size)
}

fn build(org: &OrgId, cmd: NewCompanyProduct, now: DateTime<Utc>) -> LocalResult<CompanyProduct> {
    let p = CompanyProduct {
        id: 0,
        org_id: org.clone(),
        company_id: cmd.company_id,
        product: cmd.product.trim().to_string(),
        status: cmd.status,
        opportunity_size: cmd.opportunity_size,
        stage: cmd.stage,
        close_date: cmd.close_date,
        salesforce_opportunity_id: None,
        synced_stage: None,
        updated_at: now,
    };
    check(&p)?;
    Ok(p)
}

fn insert(
    tx: &Tx<'_>,
    product: &CompanyProduct,
    user: Option<&AppUser>,
) -> TxStep<Saved<CompanyProduct>> {
    let org = &product.org_id;
    let Some(company) = tx.company(org, product.company_id)? else {
        return refuse(invalid("company_id", "no such company"));
    };
    let p = CompanyProduct {
        id: tx.next_id()?,
        ..product.clone()
    };
    tx.put_company_product(&p)?;
    let rule = "api:account-for-opportunity";
    enqueue_account(tx, &company, user, rule, p.updated_at)?;
    let target = local_ref(RecordKind::CompanyProduct, p.id);
    tx.record_change(org, ChangeWhat::Created, Subject::Record(target))?;
    let outbox_id = enqueue(tx, org, target, None, user, "api:create", p.updated_at)?;
    Ok(Saved {
        record: p,
        outbox_id,
    })
}

/// Stores a new company product and the entry that will push it as an Opportunity.
pub async fn create(
    store: &Store,
    org: &OrgId,
    cmd: NewCompanyProduct,
) -> LocalResult<Saved<CompanyProduct>> {
    let user = cmd.user.clone();
    let product = build(org, cmd, Utc::now())?;
    write(store, |tx| insert(tx, &product, user.as_ref())).await
}

fn apply(p: &mut CompanyProduct, cmd: &CompanyProductChanges, now: DateTime<Utc>) {
    if let Some(s) = cmd.status {
        p.status = s;
    }
    if cmd.opportunity_size.is_some() {
        p.opportunity_size = cmd.opportunity_size;
    }
    if cmd.stage.is_some() {
        p.stage = cmd.stage.clone();
    }
    if cmd.close_date.is_some() {
        p.close_date = cmd.close_date;
    }
    p.updated_at = now;
}

/// Changes a company product and enqueues its push (sharing a waiting entry).
pub async fn update(
    store: &Store,
    org: &OrgId,
    id: u64,
    cmd: CompanyProductChanges,
) -> LocalResult<Saved<CompanyProduct>> {
    let now = Utc::now();
    write(store, |tx| {
        let Some(mut p) = tx.company_product(org, id)? else {
            return refuse(LocalError::NotFound("company product"));
        };
        apply(&mut p, &cmd, now);
        check(&p).or_else(refuse)?;
        tx.put_company_product(&p)?;
        let target = local_ref(RecordKind::CompanyProduct, p.id);
        tx.record_change(org, ChangeWhat::Updated, Subject::Record(target))?;
        let outbox_id = enqueue(tx, org, target, None, cmd.user.as_ref(), "api:update", now)?;
        Ok(Saved {
            record: p,
            outbox_id,
        })
    })
    .await
}
