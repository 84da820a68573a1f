//! What a change-log entry says happened: a type `<kind>.<what>` (`contact.updated`,
//! `conflict.opened`, `outbox.dead_letter`), and filters over types (`contact.*`) as an app's
//! webhook or a feed reader asks for them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a change concerns: one of the four local records, a conflict, or an outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// A Company.
    Company,
    /// A Contact.
    Contact,
    /// A CompanyProduct.
    CompanyProduct,
    /// An Activity.
    Activity,
    /// A quarantined record waiting for a person.
    Conflict,
    /// A push that Salesforce refused for good.
    Outbox,
}

/// What happened to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeWhat {
    /// A new local record (from a pull, an import or the app).
    Created,
    /// A local record changed (from a pull, the app, or a merge that moved its links).
    Updated,
    /// Deleted in Salesforce: the local record stays, unlinked.
    Deleted,
    /// Merged in Salesforce: the local record is unlinked or linked to the survivor.
    Merged,
    /// A Lead converted in Salesforce: the local contact now links to the Contact.
    Converted,
    /// The local record no longer exists (a duplicate folded into another at a conversion).
    Removed,
    /// Pushed to Salesforce: the record carries the id Salesforce gave it.
    Pushed,
    /// A conflict was opened.
    Opened,
    /// A conflict was closed (resolved by a person, by a later pull, or replaced), or a dead
    /// letter was retried or discarded by a person.
    Resolved,
    /// An outbox entry became a dead letter.
    DeadLetter,
}

const KINDS: [(ChangeKind, &str); 6] = [
    (ChangeKind::Company, "company"),
    (ChangeKind::Contact, "contact"),
    (ChangeKind::CompanyProduct, "company_product"),
    (ChangeKind::Activity, "activity"),
    (ChangeKind::Conflict, "conflict"),
    (ChangeKind::Outbox, "outbox"),
];

const WHATS: [(ChangeWhat, &str); 10] = [
    (ChangeWhat::Created, "created"),
    (ChangeWhat::Updated, "updated"),
    (ChangeWhat::Deleted, "deleted"),
    (ChangeWhat::Merged, "merged"),
    (ChangeWhat::Converted, "converted"),
    (ChangeWhat::Removed, "removed"),
    (ChangeWhat::Pushed, "pushed"),
    (ChangeWhat::Opened, "opened"),
    (ChangeWhat::Resolved, "resolved"),
    (ChangeWhat::DeadLetter, "dead_letter"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], v: T) -> &'static str {
    table
        .iter()
        .find(|(x, _)| *x == v)
        .map_or("", |(_, name)| name)
}

fn parse_in<T: Copy>(table: &[(T, &'static str)], s: &str) -> Option<T> {
    table.iter().find(|(_, name)| *name == s).map(|(x, _)| *x)
}

impl ChangeKind {
    /// Its name in a change type (`company_product`).
    pub fn as_str(self) -> &'static str {
        name_of(&KINDS, self)
    }
}

impl ChangeWhat {
    /// Its name in a change type (`dead_letter`).
    pub fn as_str(self) -> &'static str {
        name_of(&WHATS, self)
    }
}

/// A change's type, written `<kind>.<what>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryType {
    /// What it concerns.
    pub kind: ChangeKind,
    /// What happened.
    pub what: ChangeWhat,
}

impl EntryType {
    /// `kind.what`.
    pub fn new(kind: ChangeKind, what: ChangeWhat) -> Self {
        Self { kind, what }
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.what.as_str())
    }
}

/// Why a text is not a change-log type or a type filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a change-log type (kind.what or kind.*; kinds: company, contact, company_product, activity, conflict, outbox)"
)]
pub struct EntryTypeError(pub String);

impl FromStr for EntryType {
    type Err = EntryTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EntryTypeError(s.to_string());
        let (kind, what) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            kind: parse_in(&KINDS, kind).ok_or_else(bad)?,
            what: parse_in(&WHATS, what).ok_or_else(bad)?,
        })
    }
}

impl Serialize for EntryType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntryType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which change types someone wants: each pattern is `kind.what` or `kind.*`; no pattern at
/// all means every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter(Vec<(ChangeKind, Option<ChangeWhat>)>);

impl TypeFilter {
    /// Every type.
    pub fn all() -> Self {
        Self::default()
    }

    /// The filter of these patterns.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, EntryTypeError> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.as_ref().trim();
            match p.strip_suffix(".*") {
                Some(kind) => {
                    let kind = parse_in(&KINDS, kind).ok_or(EntryTypeError(p.to_string()))?;
                    out.push((kind, None));
                }
                None => {
                    let t: EntryType = p.parse()?;
                    out.push((t.kind, Some(t.what)));
                }
            }
        }
        Ok(Self(out))
    }

    /// Whether a change of type `t` is wanted.
    pub fn wants(&self, t: EntryType) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|(kind, what)| *kind == t.kind && what.is_none_or(|w| w == t.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_type_reads_and_writes_as_kind_dot_what() {
        let t: EntryType = "company_product.dead_letter".parse().expect("type");
        assert_eq!(
            t,
            EntryType::new(ChangeKind::CompanyProduct, ChangeWhat::DeadLetter)
        );
        assert_eq!(t.to_string(), "company_product.dead_letter");
        for (kind, _) in KINDS {
            for (what, _) in WHATS {
                let t = EntryType::new(kind, what);
                assert_eq!(t.to_string().parse::<EntryType>(), Ok(t));
            }
        }
        for bad in [
            "contact",
            "contact.",
            ".updated",
            "person.updated",
            "contact.*",
        ] {
            assert!(bad.parse::<EntryType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_filter_takes_exact_types_and_whole_kinds_and_empty_takes_all() {
        let f = TypeFilter::parse(&["contact.*", "company.pushed"]).expect("filter");
        let t = |s: &str| s.parse::<EntryType>().expect("type");
        assert!(f.wants(t("contact.updated")));
        assert!(f.wants(t("contact.converted")));
        assert!(f.wants(t("company.pushed")));
        assert!(!f.wants(t("company.updated")));
        assert!(!f.wants(t("outbox.dead_letter")));
        assert!(TypeFilter::all().wants(t("outbox.dead_letter")));
        assert!(TypeFilter::parse(&["contacts.*"]).is_err());
        assert!(TypeFilter::parse(&["contact.changed"]).is_err());
    }
}
