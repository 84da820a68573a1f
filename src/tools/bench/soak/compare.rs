//! The soak's verdict: the local store and the org, compared record by record against what the
//! service acknowledged.
//!
//! Rules:
//! - `duplicates_in_org`: records in the org that carry the same sfsync marker as another one,
//!   beyond the first (a create that landed twice).
//! - `acked_lost`: an acknowledged local write that is not in the store (the record is gone, or
//!   a field holds neither the last acknowledged value nor a value of a later unanswered write),
//!   or whose record never reached the org; and a record of the org (whose every change was
//!   notified and acknowledged) that is not local at all.
//! - `diverged`: a local record whose compared fields differ from its org record's, or that is
//!   not in the org though nothing acknowledged it; a marked org record no local record links.
//!
//! A record counts at most once, in the first rule that catches it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

/// Field values by Salesforce field name.
pub type Fields = BTreeMap<String, Value>;

/// What one record's acknowledged local writes let it hold: per field, the last acknowledged
/// value and the values of writes sent after it that were never answered (they may or may not
/// have been committed).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    fields: BTreeMap<String, (Value, Vec<Value>)>,
}

impl Expect {
    /// A write the service acknowledged (HTTP 2xx): its values are now the ones to find.
    pub fn acked(&mut self, write: &Fields) {
        for (k, v) in write {
            self.fields.insert(k.clone(), (v.clone(), Vec::new()));
        }
    }

    /// A write sent after the acknowledged ones that got no answer.
    pub fn unanswered(&mut self, write: &Fields) {
        for (k, v) in write {
            if let Some((_, maybe)) = self.fields.get_mut(k) {
                maybe.push(v.clone());
            }
        }
    }

    /// Whether `local` holds, in every field written, a value the writes allow.
    pub fn admits(&self, local: &Fields) -> bool {
        self.fields.iter().all(|(k, (acked, maybe))| {
            let have = local.get(k).unwrap_or(&Value::Null);
            have == acked || maybe.contains(have)
        })
    }
}

/// One kind of record (companies/Accounts or contacts/Contacts) on both sides.
#[derive(Debug, Default)]
pub struct Kind {
    /// The marker kind (`company`, `contact`): sfsync writes `sfsync:{kind}:{local id}`.
    pub marker_kind: &'static str,
    /// Acknowledged local writes, by local id.
    pub expected: BTreeMap<u64, Expect>,
    /// The store's records.
    pub local: Vec<LocalRow>,
    /// The org's records.
    pub org: Vec<OrgRow>,
}

/// A local record: its id, the Salesforce id it is linked to, its compared fields.
#[derive(Debug, Clone)]
pub struct LocalRow {
    /// Local id.
    pub id: u64,
    /// The linked Salesforce record.
    pub salesforce_id: Option<String>,
    /// Compared fields, by Salesforce field name.
    pub fields: Fields,
}

/// An org record: its id, its sfsync marker if sfsync created it, its fields.
#[derive(Debug, Clone)]
pub struct OrgRow {
    /// Salesforce id.
    pub id: String,
    /// The marker field's value.
    pub marker: Option<String>,
    /// Every field the org has.
    pub fields: Fields,
}

/// The three counts the soak reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Acknowledged writes missing somewhere.
    pub acked_lost: u64,
    /// Extra org records with an already-seen marker.
    pub duplicates_in_org: u64,
    /// Records whose fields differ between the store and the org.
    pub diverged: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.acked_lost += o.acked_lost;
        self.duplicates_in_org += o.duplicates_in_org;
        self.diverged += o.diverged;
    }
}

/// Compares one kind of record; see the module's rules. Each record counted is described in
/// `findings`.
pub fn compare(kind: &Kind, findings: &mut Vec<String>) -> Tally {
    let mut tally = Tally::default();
    let org_by_id: HashMap<&str, &OrgRow> = kind.org.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut markers: HashMap<&str, u64> = HashMap::new();
    for o in &kind.org {
        if let Some(m) = &o.marker {
            *markers.entry(m.as_str()).or_default() += 1;
        }
    }
    tally.duplicates_in_org = markers.values().map(|n| n.saturating_sub(1)).sum();
    for (m, n) in markers.iter().filter(|(_, n)| **n > 1) {
        findings.push(format!("duplicates_in_org: {n} records carry {m}"));
    }
    let local_by_id: HashMap<u64, &LocalRow> = kind.local.iter().map(|l| (l.id, l)).collect();
    let mut counted: HashSet<u64> = HashSet::new();
    for (id, expect) in &kind.expected {
        let in_org = |l: &LocalRow| {
            l.salesforce_id
                .as_deref()
                .is_some_and(|s| org_by_id.contains_key(s))
        };
        let lost = match local_by_id.get(id) {
            None => true,
            Some(l) => !expect.admits(&l.fields) || !in_org(l),
        };
        if lost {
            tally.acked_lost += 1;
            counted.insert(*id);
            let local = local_by_id.get(id);
            let org = local
                .and_then(|l| l.salesforce_id.as_deref())
                .and_then(|s| org_by_id.get(s));
            findings.push(format!(
                "acked_lost {} {id}: acknowledged {expect:?}; store {local:?}; org {org:?}",
                kind.marker_kind
            ));
        }
    }
    for l in kind.local.iter().filter(|l| !counted.contains(&l.id)) {
        let org = l.salesforce_id.as_deref().and_then(|s| org_by_id.get(s));
        let same = org.is_some_and(|o| {
            let mine = format!("sfsync:{}:{}", kind.marker_kind, l.id);
            o.marker.as_ref().is_none_or(|m| *m == mine)
                && l.fields
                    .iter()
                    .all(|(k, v)| o.fields.get(k).unwrap_or(&Value::Null) == v)
        });
        if !same {
            tally.diverged += 1;
            findings.push(format!(
                "diverged {} {}: store {l:?}; org {org:?}",
                kind.marker_kind, l.id
            ));
        }
    }
    let linked: HashSet<&str> = kind
        .local
        .iter()
        .filter_map(|l| l.salesforce_id.as_deref())
        .collect();
    for o in kind.org.iter().filter(|o| !linked.contains(o.id.as_str())) {
        match &o.marker {
            // An extra copy is already counted as a duplicate.
            Some(m) if markers.get(m.as_str()).is_some_and(|n| *n > 1) => {}
            Some(_) => {
                tally.diverged += 1;
                findings.push(format!("diverged: org record unlinked {o:?}"));
            }
            None => {
                tally.acked_lost += 1;
                findings.push(format!("acked_lost: org record not local {o:?}"));
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(kind: &Kind) -> Tally {
        let mut findings = Vec::new();
        let tally = compare(kind, &mut findings);
        let counted = tally.acked_lost + tally.duplicates_in_org + tally.diverged;
        assert!(findings.len() as u64 == counted, "{findings:?}");
        tally
    }

    fn fields(pairs: &[(&str, Value)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    }

    fn local(id: u64, sf: &str, name: &str) -> LocalRow {
        LocalRow {
            id,
            salesforce_id: Some(sf.into()),
            fields: fields(&[("Name", json!(name))]),
        }
    }

    fn org(id: &str, marker: Option<u64>, name: &str) -> OrgRow {
        OrgRow {
            id: id.into(),
            marker: marker.map(|m| format!("sfsync:company:{m}")),
            fields: fields(&[("Name", json!(name)), ("Industry", json!("Energy"))]),
        }
    }

    fn acked(name: &str) -> Expect {
        let mut e = Expect::default();
        e.acked(&fields(&[("Name", json!(name))]));
        e
    }

    /// Two pushed companies (one with an acknowledged write) and one pulled Account, in step.
    fn in_step() -> Kind {
        Kind {
            marker_kind: "company",
            expected: BTreeMap::from([(1, acked("A2"))]),
            local: vec![
                local(1, "001A", "A2"),
                local(2, "001B", "B"),
                local(3, "001C", "C"),
            ],
            org: vec![
                org("001A", Some(1), "A2"),
                org("001B", Some(2), "B"),
                org("001C", None, "C"),
            ],
        }
    }

    #[test]
    fn stores_in_step_with_the_org_count_nothing() {
        assert_eq!(check(&in_step()), Tally::default());
    }

    #[test]
    fn a_field_that_differs_from_the_org_is_a_divergence() {
        let mut kind = in_step();
        kind.org[2].fields.insert("Name".into(), json!("C changed"));
        let t = check(&kind);
        assert_eq!((t.diverged, t.acked_lost, t.duplicates_in_org), (1, 0, 0));
    }

    #[test]
    fn a_second_record_with_the_same_marker_is_a_duplicate() {
        let mut kind = in_step();
        kind.org.push(org("001D", Some(1), "A2"));
        assert_eq!(
            check(&kind),
            Tally {
                duplicates_in_org: 1,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn an_acknowledged_write_missing_anywhere_is_lost() {
        // The store went back to an older value.
        let mut kind = in_step();
        kind.local[0].fields.insert("Name".into(), json!("A1"));
        kind.org[0].fields.insert("Name".into(), json!("A1"));
        assert_eq!(check(&kind).acked_lost, 1);
        // The record never reached the org.
        let mut kind = in_step();
        kind.org.remove(0);
        assert_eq!(check(&kind).acked_lost, 1);
        // The record is gone from the store.
        let mut kind = in_step();
        kind.local.remove(0);
        let t = check(&kind);
        assert_eq!(
            (t.acked_lost, t.diverged),
            (1, 1),
            "its org copy is unlinked too"
        );
        // An org record (its change notified and acknowledged) that never became local.
        let mut kind = in_step();
        kind.local.remove(2);
        assert_eq!(check(&kind).acked_lost, 1);
    }

    #[test]
    fn a_value_of_a_later_unanswered_write_is_allowed_and_nothing_else() {
        let mut kind = in_step();
        if let Some(e) = kind.expected.get_mut(&1) {
            e.unanswered(&fields(&[("Name", json!("A3"))]));
        }
        kind.local[0].fields.insert("Name".into(), json!("A3"));
        kind.org[0].fields.insert("Name".into(), json!("A3"));
        assert_eq!(check(&kind), Tally::default());
        kind.local[0].fields.insert("Name".into(), json!("A4"));
        kind.org[0].fields.insert("Name".into(), json!("A4"));
        assert_eq!(check(&kind).acked_lost, 1);
    }

    #[test]
    fn a_local_record_linked_to_another_records_marker_diverges() {
        let mut kind = in_step();
        kind.local[1].salesforce_id = Some("001A".into());
        kind.local[1].fields.insert("Name".into(), json!("A2"));
        let t = check(&kind);
        assert_eq!(
            t.diverged, 2,
            "linked to 1's record, and 2's record unlinked"
        );
    }
}
