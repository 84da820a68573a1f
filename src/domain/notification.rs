//! What a change notification says once it has been verified and parsed: an org, an object type,
//! a record id, a change type and, when the sender gave them, the record's `SystemModstamp` and
//! the user who last modified it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IdError, SalesforceId};

/// A Salesforce organization id, normalized to 18 characters.
///
/// Orgs are compared on their 15-character form, as Salesforce tells listeners to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(SalesforceId);

impl OrgId {
    /// Parses a 15- or 18-character org id (key prefix `00D`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let id = SalesforceId::parse(s)?;
        if id.key_prefix() != "00D" {
            return Err(IdError::Prefix("00D"));
        }
        Ok(Self(id))
    }

    /// The 18-character form.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The 15-character form, the one compared.
    pub fn as_15(&self) -> &str {
        self.0.as_15()
    }
}

impl TryFrom<String> for OrgId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OrgId> for String {
    fn from(o: OrgId) -> Self {
        o.as_str().to_string()
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.as_str())
    }
}

/// The Salesforce objects sfsync pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectType {
    /// `Account` → Company.
    Account,
    /// `Contact` → Contact.
    Contact,
    /// `Lead` → Contact.
    Lead,
    /// `Opportunity` → CompanyProduct.
    Opportunity,
}

impl ObjectType {
    /// All pulled types, in a stable order.
    pub const ALL: [ObjectType; 4] = [Self::Account, Self::Contact, Self::Lead, Self::Opportunity];

    /// The API name (`Account`, …).
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Account => "Account",
            Self::Contact => "Contact",
            Self::Lead => "Lead",
            Self::Opportunity => "Opportunity",
        }
    }

    /// Parses an API name exactly as Salesforce spells it; `None` for objects sfsync ignores.
    pub fn from_api_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.api_name() == s)
    }

    /// One byte used in store keys.
    pub fn code(self) -> u8 {
        match self {
            Self::Account => b'A',
            Self::Contact => b'C',
            Self::Lead => b'L',
            Self::Opportunity => b'O',
        }
    }

    /// The inverse of [`ObjectType::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == c)
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

/// What happened to the record, as far as the sender said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// Created.
    Create,
    /// Updated (Outbound Messages always say this: they do not tell create from update).
    Update,
    /// Deleted.
    Delete,
    /// Restored from the recycle bin.
    Undelete,
    /// A Change Data Capture gap event: the record must be re-read.
    Gap,
}

/// One verified notification about one record: a hint to pull it, never data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The record's object type.
    pub object: ObjectType,
    /// The record id.
    pub record_id: SalesforceId,
    /// What happened.
    pub change: ChangeType,
    /// The record's `SystemModstamp` when the sender included it.
    pub system_modstamp: Option<DateTime<Utc>>,
    /// The user who last modified the record (`LastModifiedById`) when the sender included it:
    /// with the stamp, it tells sfsync's own writes from anyone else's.
    pub modified_by: Option<SalesforceId>,
}
