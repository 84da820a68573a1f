//! The local records as the local API shows them (`GET /api/v1/{kind}/{id}`) and as the change
//! feed carries them in each entry's `data`: one view per entity, written once, so the two can
//! never disagree.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Activity, Company, CompanyProduct, Contact};

/// The text of a unit enum variant as it serializes (`email_sent`, `OPPORTUNITY`).
pub fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A company.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// Name.
    name: String,
    /// Bare domain.
    domain: Option<String>,
    /// Website.
    website: Option<String>,
    /// Industry.
    industry: Option<String>,
    /// Annual revenue.
    annual_revenue: Option<f64>,
    /// Employees.
    employees: Option<i64>,
    /// The Account id, once pushed or linked.
    salesforce_id: Option<String>,
    /// Last local change.
    updated_at: DateTime<Utc>,
}

impl From<Company> for CompanyView {
    fn from(c: Company) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id.to_string(),
            name: c.name,
            domain: c.domain,
            website: c.website,
            industry: c.industry,
            annual_revenue: c.annual_revenue,
            employees: c.employees,
            salesforce_id: c.salesforce_id.map(|s| s.to_string()),
            updated_at: c.updated_at,
        }
    }
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// Local company id.
    company_id: Option<u64>,
    /// Given name.
    first_name: Option<String>,
    /// Family name.
    last_name: String,
    /// Email.
    email: Option<String>,
    /// Title.
    title: Option<String>,
    /// Phone.
    phone: Option<String>,
    /// The Contact or Lead id, once pushed or linked.
    salesforce_id: Option<String>,
    /// `contact` or `lead`.
    salesforce_kind: Option<String>,
    /// Last local change.
    updated_at: DateTime<Utc>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id.to_string(),
            company_id: c.company_id,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            title: c.title,
            phone: c.phone,
            salesforce_id: c.salesforce_id.map(|s| s.to_string()),
            salesforce_kind: c.salesforce_kind.as_ref().map(enum_text),
            updated_at: c.updated_at,
        }
    }
}

/// A company product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// Local company id.
    company_id: u64,
    /// Product name.
    product: String,
    /// PROSPECT, OPPORTUNITY, CUSTOMER or LOST.
    status: String,
    /// Deal size.
    opportunity_size: Option<f64>,
    /// Internal funnel stage.
    stage: Option<String>,
    /// Expected close date.
    close_date: Option<NaiveDate>,
    /// The Opportunity id, once pushed.
    salesforce_opportunity_id: Option<String>,
    /// Last local change.
    updated_at: DateTime<Utc>,
}

impl From<CompanyProduct> for ProductView {
    fn from(p: CompanyProduct) -> Self {
        Self {
            id: p.id,
            org_id: p.org_id.to_string(),
            company_id: p.company_id,
            product: p.product,
            status: enum_text(&p.status),
            opportunity_size: p.opportunity_size,
            stage: p.stage,
            close_date: p.close_date,
            salesforce_opportunity_id: p.salesforce_opportunity_id.map(|s| s.to_string()),
            updated_at: p.updated_at,
        }
    }
}

/// An activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityView {
    /// Local id.
    id: u64,
    /// The org.
    org_id: String,
    /// `email_sent` or `meeting_booked`.
    kind: String,
    /// Local contact id.
    contact_id: Option<u64>,
    /// Local company id.
    company_id: Option<u64>,
    /// Subject.
    subject: String,
    /// Body or description.
    description: Option<String>,
    /// When it happened.
    occurred_at: DateTime<Utc>,
    /// Meeting start.
    starts_at: Option<DateTime<Utc>>,
    /// Meeting end.
    ends_at: Option<DateTime<Utc>>,
    /// The Task or Event id, once pushed.
    salesforce_id: Option<String>,
}

impl From<Activity> for ActivityView {
    fn from(a: Activity) -> Self {
        Self {
            id: a.id,
            org_id: a.org_id.to_string(),
            kind: enum_text(&a.kind),
            contact_id: a.contact_id,
            company_id: a.company_id,
            subject: a.subject,
            description: a.description,
            occurred_at: a.occurred_at,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            salesforce_id: a.salesforce_id.map(|s| s.to_string()),
        }
    }
}
