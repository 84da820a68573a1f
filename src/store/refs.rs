//! The names of local records: their kind ([`RecordKind`]), a reference to one ([`LocalRef`])
//! and where a record's values came from ([`Provenance`]). Plain values, below the transaction
//! and the trees that store them.

use super::keys::{self, OrgKey};

/// Which kind of local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A Company.
    Company,
    /// A Contact (linked to a Salesforce Contact or Lead).
    Contact,
    /// A CompanyProduct (linked to an Opportunity).
    CompanyProduct,
    /// An Activity (linked to a Task or Event).
    Activity,
}

impl RecordKind {
    /// One byte used in store keys.
    pub(super) fn code(self) -> u8 {
        match self {
            Self::Company => b'c',
            Self::Contact => b'p',
            Self::CompanyProduct => b'o',
            Self::Activity => b'a',
        }
    }

    /// The kind whose [`code`](Self::code) this is.
    pub(super) fn from_code(code: u8) -> Option<Self> {
        [
            Self::Company,
            Self::Contact,
            Self::CompanyProduct,
            Self::Activity,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A reference to a local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LocalRef {
    /// Its kind.
    pub kind: RecordKind,
    /// Its local id.
    pub id: u64,
}

impl LocalRef {
    /// The local record `id` of `kind`.
    pub fn new(kind: RecordKind, id: u64) -> Self {
        Self { kind, id }
    }

    /// Its key in the records tree.
    pub(super) fn key(self, org: OrgKey) -> Vec<u8> {
        keys::record(org, self.kind.code(), self.id)
    }
}

/// One applied change's origin: which side, which event, which rule, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// `salesforce` or `local`.
    pub side: String,
    /// The event that caused it (a notification id, an import id, an API request).
    pub event: String,
    /// The rule applied (`match:salesforce_id`, `policy:salesforce_wins`, `create`, …).
    pub rule: String,
    /// When, in RFC 3339.
    pub at: String,
}
