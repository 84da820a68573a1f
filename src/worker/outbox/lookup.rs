//! Look before create: the records the creates of one object may find already in the org, one
//! query for all of a step's creates of that object (split only when the query would outgrow a
//! request, and then up to five queries in one composite call): the record an unanswered earlier attempt
//! made (by its marker), a person both sides have (by email, and for Contacts the Account), and
//! for a company the Account it already is (by domain, then normalized name).

use std::collections::{HashMap, HashSet};

use super::OutboxWorker;
use super::prepare::{Item, marker_kind};
use super::verdict::Verdict;
use crate::domain::{SalesforceId, normalize};
use crate::salesforce::{Condition, Record, RecordExt as _, SalesforceError, Soql};
use crate::store::{LocalRef, RecordKind, StoreError};
use crate::sync::pull::stamp_ms;
use crate::sync::push::{self, matching};

/// Why a look-up failed: a Salesforce call (the entries wait as the call's error says) or the
/// store (the step fails).
#[derive(Debug, thiserror::Error)]
pub(super) enum LookupError {
    /// The query failed.
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    /// Reading local links failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Values one `IN` list of a look-up holds, so that the alternatives of a large batch can be
/// spread over several queries that each fit a request.
const IN_PIECE: usize = 100;

/// `field IN (…)` over `values`, as alternatives of at most [`IN_PIECE`] values each.
fn in_pieces(field: &str, values: &[String]) -> Vec<Condition> {
    values
        .chunks(IN_PIECE)
        .map(|piece| Condition::is_in(field, piece))
        .collect()
}

impl OutboxWorker {
    /// Runs `query` once per group of `alternatives` that fits a request (several queries go
    /// out together in one composite call) and returns every row once.
    async fn rows(
        &self,
        query: Soql,
        alternatives: Vec<Condition>,
    ) -> Result<Vec<Record>, SalesforceError> {
        let queries: Vec<String> = query
            .any_of(alternatives)
            .iter()
            .map(Soql::to_string)
            .collect();
        let mut seen: HashSet<SalesforceId> = HashSet::new();
        Ok(self
            .client
            .query_each(&queries)
            .await?
            .into_iter()
            .flatten()
            .filter(|r| r.sf_id().is_none_or(|id| seen.insert(id)))
            .collect())
    }

    /// The marker of an item's record, when its create may have gone out before.
    fn retried_marker(item: &Item) -> Option<String> {
        item.maybe_sent
            .then(|| push::marker(marker_kind(item.target.kind), item.target.id))
    }

    /// Looks for records an earlier attempt created (by marker) and, for people, records both
    /// sides already have (same email, and for Contacts the same Account).
    pub(super) async fn find_existing(
        &self,
        sobject: &str,
        items: &[Item],
        check: &[usize],
    ) -> Result<Vec<(usize, Verdict)>, LookupError> {
        let marker_field = self.marker_field(sobject);
        let markers: Vec<String> = check
            .iter()
            .filter_map(|&i| Self::retried_marker(&items[i]))
            .collect();
        let emails: Vec<String> = check
            .iter()
            .filter_map(|&i| items[i].payload.match_email.clone())
            .collect();
        let mut alternatives = in_pieces(marker_field, &markers);
        alternatives.extend(in_pieces("Email", &emails));
        let mut fields = vec!["Id", "SystemModstamp", marker_field];
        match sobject {
            "Contact" => fields.extend(["Email", "AccountId"]),
            "Lead" => fields.push("Email"),
            _ => {}
        }
        let mut query = Soql::select(&fields, sobject).order_by(&["Id"]);
        if sobject == "Lead" {
            query = query.filter(Condition::is("IsConverted", false));
        }
        let rows = self.rows(query, alternatives).await?;
        let mut by_marker: HashMap<&str, &Record> = HashMap::new();
        let mut by_email: HashMap<String, Vec<&Record>> = HashMap::new();
        for r in &rows {
            if let Some(m) = r.str_field(marker_field) {
                by_marker.entry(m).or_insert(r);
            }
            if let Some(e) = r.str_field("Email").and_then(normalize::email) {
                by_email.entry(e).or_default().push(r);
            }
        }
        let mut out = Vec::new();
        for &i in check {
            let item = &items[i];
            if let Some(earlier) = Self::retried_marker(item)
                .and_then(|m| by_marker.get(m.as_str()).copied())
                .and_then(found_earlier)
            {
                out.push((i, earlier));
                continue;
            }
            let same_person = |r: &&Record| {
                sobject == "Lead"
                    || r.str_field("AccountId")
                        .and_then(|a| SalesforceId::parse(a).ok())
                        == item.payload.match_account
            };
            let hit = item
                .payload
                .match_email
                .as_ref()
                .and_then(|email| by_email.get(email))
                .and_then(|found| found.iter().copied().find(same_person));
            // A record found by email carries someone else's change, which the inbox must still
            // pull: no written stamp, so its echo is not skipped as sfsync's own.
            if let Some(id) = hit.and_then(|r| r.sf_id()) {
                let rule = "push:link-existing";
                out.push((
                    i,
                    Verdict::Linked {
                        id,
                        rule,
                        stamp_ms: None,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Looks for the Accounts a batch of new companies may already be: an earlier attempt's (by
    /// marker), else one with the company's domain, else one with its normalized name. An
    /// Account linked to another local record, carrying another record's marker, or matched by
    /// an earlier company of the batch is not a candidate. Several candidates on a rung hold the
    /// company for a person ([`Verdict::Ambiguous`]).
    pub(super) async fn find_accounts(
        &self,
        items: &[Item],
    ) -> Result<Vec<(usize, Verdict)>, LookupError> {
        let marker_field = self.marker_field("Account");
        let markers: Vec<String> = items.iter().filter_map(Self::retried_marker).collect();
        let keys: Vec<&matching::CompanyKeys> = items
            .iter()
            .filter(|i| !i.create_new)
            .filter_map(|i| i.payload.match_company.as_ref())
            .collect();
        let mut alternatives = in_pieces(marker_field, &markers);
        alternatives.extend(matching::account_lookup(&keys));
        let mut fields: Vec<&str> = matching::account_fields().to_vec();
        fields.push(marker_field);
        let query = Soql::select(&fields, "Account").order_by(&["Id"]);
        let rows = self.rows(query, alternatives).await?;
        let linked = self.linked_elsewhere(&rows)?;
        let mut claimed: HashSet<SalesforceId> = HashSet::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mine = push::marker(marker_kind(item.target.kind), item.target.id);
            if let Some(r) = rows
                .iter()
                .find(|r| r.str_field(marker_field) == Some(&mine))
            {
                if let Some(earlier) = found_earlier(r) {
                    claimed.extend(r.sf_id());
                    out.push((i, earlier));
                    continue;
                }
            }
            let Some(keys) = item
                .payload
                .match_company
                .as_ref()
                .filter(|_| !item.create_new)
            else {
                continue;
            };
            let free = |r: &Record| {
                let other_marker = r.str_field(marker_field).is_some_and(|m| !m.is_empty());
                let id = r.sf_id();
                let taken = id.as_ref().is_some_and(|id| {
                    claimed.contains(id) || linked.get(id).is_some_and(|l| *l != item.target)
                });
                !other_marker && !taken && id.is_some()
            };
            match matching::match_account(keys, &rows, free) {
                matching::AccountMatch::One(record, rule) => {
                    claimed.extend(record.sf_id());
                    out.push((i, Verdict::Adopt { record, rule }));
                }
                matching::AccountMatch::Several(rung, matches) => {
                    out.push((i, Verdict::Ambiguous { rung, matches }));
                }
                matching::AccountMatch::None => {}
            }
        }
        Ok(out)
    }

    /// The local records the rows are linked to, by Salesforce id.
    fn linked_elsewhere(
        &self,
        rows: &[Record],
    ) -> Result<HashMap<SalesforceId, LocalRef>, StoreError> {
        let mut out = HashMap::new();
        for id in rows.iter().filter_map(|r| r.sf_id()) {
            let local = self.store.local_by_salesforce_id(&self.org, &id)?;
            if let Some(l) = local.filter(|l| l.kind == RecordKind::Company) {
                out.insert(id, l);
            }
        }
        Ok(out)
    }
}

/// The verdict on a record an earlier attempt of this entry created (found by its marker): that
/// attempt wrote it, so its `SystemModstamp` is sfsync's own write.
fn found_earlier(r: &Record) -> Option<Verdict> {
    Some(Verdict::FoundEarlier {
        id: r.sf_id()?,
        stamp_ms: stamp_ms(r),
    })
}
