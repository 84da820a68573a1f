//! The four local entities (Company, Contact, CompanyProduct, Activity), each owned by one
//! Salesforce org.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{OrgId, OwnershipStatus, SalesforceId, SyncedStage};

/// A company (a Salesforce Account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// Local id.
    pub id: u64,
    /// The org that owns this record.
    pub org_id: OrgId,
    /// Company name.
    pub name: String,
    /// Bare domain, from the website (`example.com`).
    pub domain: Option<String>,
    /// Website as entered.
    pub website: Option<String>,
    /// Industry picklist value.
    pub industry: Option<String>,
    /// Annual revenue.
    pub annual_revenue: Option<f64>,
    /// Number of employees.
    pub employees: Option<i64>,
    /// The linked Account id.
    pub salesforce_id: Option<SalesforceId>,
    /// Last local change.
    pub updated_at: DateTime<Utc>,
}

impl Company {
    /// A company known only by its name: no other field set, not linked to an Account.
    pub fn named(id: u64, org_id: OrgId, name: String, updated_at: DateTime<Utc>) -> Self {
        Self {
            id,
            org_id,
            name,
            domain: None,
            website: None,
            industry: None,
            annual_revenue: None,
            employees: None,
            salesforce_id: None,
            updated_at,
        }
    }
}

/// Which Salesforce object a local contact is linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceKind {
    /// A Contact record.
    Contact,
    /// A Lead record.
    Lead,
}

/// A person at a company (a Salesforce Contact or Lead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Local id.
    pub id: u64,
    /// The org that owns this record.
    pub org_id: OrgId,
    /// Local company id.
    pub company_id: Option<u64>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: String,
    /// Email address.
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The linked Contact or Lead id.
    pub salesforce_id: Option<SalesforceId>,
    /// Whether `salesforce_id` names a Contact or a Lead.
    pub salesforce_kind: Option<SalesforceKind>,
    /// Last local change.
    pub updated_at: DateTime<Utc>,
}

/// A company's relation to one product: the pipeline entry behind a Salesforce Opportunity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanyProduct {
    /// Local id.
    pub id: u64,
    /// The org that owns this record.
    pub org_id: OrgId,
    /// Local company id.
    pub company_id: u64,
    /// Product name.
    pub product: String,
    /// Ownership status.
    pub status: OwnershipStatus,
    /// Deal size (Opportunity `Amount`).
    pub opportunity_size: Option<f64>,
    /// Internal funnel stage (mapped to and from `StageName`).
    pub stage: Option<String>,
    /// Expected close date.
    pub close_date: Option<NaiveDate>,
    /// The linked Opportunity id.
    pub salesforce_opportunity_id: Option<SalesforceId>,
    /// The Opportunity's `StageName` as last pulled and what it mapped to: pushes keep it while
    /// `status` and `stage` are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_stage: Option<SyncedStage>,
    /// Last local change.
    pub updated_at: DateTime<Utc>,
}

/// What an activity records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// An email was sent: a completed Task with subtype Email.
    EmailSent,
    /// A meeting was booked: an Event.
    MeetingBooked,
}

/// An email sent or a meeting booked (a Salesforce Task or Event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Local id.
    pub id: u64,
    /// The org that owns this record.
    pub org_id: OrgId,
    /// What happened.
    pub kind: ActivityKind,
    /// Local contact id.
    pub contact_id: Option<u64>,
    /// Local company id.
    pub company_id: Option<u64>,
    /// Subject line.
    pub subject: String,
    /// Body or description.
    pub description: Option<String>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Meeting start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Meeting end.
    pub ends_at: Option<DateTime<Utc>>,
    /// The linked Task or Event id.
    pub salesforce_id: Option<SalesforceId>,
}
