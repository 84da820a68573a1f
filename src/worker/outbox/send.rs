//! Send: what the org already holds of a step's creates (`lookup`), and what became of each
//! record of a collections write ([`Verdict`](super::verdict::Verdict)). Creates first look for
//! the record in the org: one an unanswered attempt made (by its marker), a person both sides
//! already have (by email), the Account a company already is (by domain and name). Updates
//! aimed at records that merged or converted are re-pointed at the survivor.

use std::collections::HashMap;

use futures::TryStreamExt as _;

use super::lookup::LookupError;
use super::prepare::Item;
use super::verdict::{Verdict, call_failure};
use super::{OutboxError, OutboxWorker};
use crate::domain::SalesforceId;
use crate::salesforce::{
    ApiErrorItem, ErrorClass, Record, RecordExt as _, RecordResult, SalesforceError, Soql,
};
use crate::sync::pull::stamp_ms;

/// Objects whose changes come back as notifications (their stamps are recorded).
pub(super) const PULLED: &[&str] = &["Account", "Contact", "Lead", "Opportunity"];

fn first_message(errors: &[ApiErrorItem]) -> String {
    errors.first().map_or_else(
        || "salesforce refused the record without a message".to_string(),
        |e| format!("{}: {}", e.error_code, e.message),
    )
}

impl OutboxWorker {
    /// Looks up what the org already holds of a group of creates of one object: the verdicts
    /// of the records found (or of all, when the look-up failed) and the items still to send.
    pub(super) async fn look_first(
        &self,
        items: Vec<Item>,
    ) -> Result<(Vec<(Item, Verdict)>, Vec<Item>), OutboxError> {
        let Some(first) = items.first() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let sobject = first.payload.sobject.to_string();
        let found = match self.look_before_create(&sobject, &items).await {
            Ok(found) => found,
            Err(LookupError::Salesforce(e)) => {
                let v = call_failure(&e);
                return Ok((
                    items.into_iter().map(|i| (i, v.clone())).collect(),
                    Vec::new(),
                ));
            }
            Err(LookupError::Store(e)) => return Err(e.into()),
        };
        let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
        for (i, verdict) in found {
            verdicts[i] = Some(verdict);
        }
        let mut settled = Vec::new();
        let mut send = Vec::new();
        for (item, v) in items.into_iter().zip(verdicts) {
            match v {
                Some(v) => settled.push((item, v)),
                None => send.push(item),
            }
        }
        Ok((settled, send))
    }

    /// What the org already holds of creates: Accounts by marker, domain and name; people by
    /// marker and email; anything else by marker when a create may have gone out.
    async fn look_before_create(
        &self,
        sobject: &str,
        items: &[Item],
    ) -> Result<Vec<(usize, Verdict)>, LookupError> {
        if sobject == "Account" {
            return self.find_accounts(items).await;
        }
        let people = matches!(sobject, "Contact" | "Lead");
        let check: Vec<usize> = (0..items.len())
            .filter(|&i| people || (items[i].maybe_sent && !self.config.upsert_on_marker))
            .collect();
        if check.is_empty() {
            return Ok(Vec::new());
        }
        self.find_existing(sobject, items, &check).await
    }

    /// The verdicts of a collections create's results, one per item.
    pub(super) fn create_outcome(
        items: &[Item],
        results: &[RecordResult],
        stamps: &HashMap<SalesforceId, i64>,
    ) -> Vec<(Item, Verdict)> {
        items
            .iter()
            .zip(results)
            .map(|(item, r)| (item.clone(), record_outcome(r, "push:create", stamps, true)))
            .collect()
    }

    /// The `SystemModstamp` of written records of a pulled object, by id (one retrieve call),
    /// for writes whose read-back did not go out with them. A failed read only costs the echo's
    /// pull later, so it is logged, not raised.
    pub(super) async fn stamps(
        &self,
        sobject: &str,
        results: &[RecordResult],
    ) -> HashMap<SalesforceId, i64> {
        if !PULLED.contains(&sobject) {
            return HashMap::new();
        }
        let ids: Vec<SalesforceId> = results
            .iter()
            .filter(|r| r.success)
            .filter_map(RecordResult::sf_id)
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match self
            .client
            .retrieve_collection(sobject, &ids, &["Id", "SystemModstamp"])
            .await
        {
            Ok(records) => ids
                .into_iter()
                .zip(records)
                .filter_map(|(id, r)| Some((id, stamp_ms(r.as_ref()?)?)))
                .collect(),
            Err(e) => {
                tracing::warn!(org = %self.org, sobject, error = %e, "reading written stamps failed");
                HashMap::new()
            }
        }
    }

    /// The verdicts of a collections update's results, one per item; records that merged or
    /// converted are re-pointed at their survivor.
    pub(super) async fn update_outcome(
        &self,
        items: &[Item],
        results: &[RecordResult],
        stamps: &HashMap<SalesforceId, i64>,
    ) -> Vec<(Item, Verdict)> {
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let sobject = &*first.payload.sobject;
        let mut out: Vec<(Item, Verdict)> = Vec::with_capacity(items.len());
        let mut gone = Vec::new();
        for (n, (item, r)) in items.iter().zip(results).enumerate() {
            let moved = !r.success
                && (r.class() == Some(ErrorClass::Gone)
                    || r.errors
                        .first()
                        .is_some_and(|e| e.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"));
            if moved {
                gone.push(n);
            }
            let outcome = match &item.payload.existing {
                Some(id) if r.success => Verdict::Linked {
                    id: id.clone(),
                    rule: "push:update",
                    stamp_ms: stamps.get(id).copied(),
                },
                _ => record_outcome(r, "push:update", stamps, false),
            };
            out.push((item.clone(), outcome));
        }
        if !gone.is_empty() {
            self.repoint(sobject, items, &gone, &mut out).await;
        }
        out
    }

    /// The verdicts of updates aimed at records that merged or converted (`gone`, indexes in
    /// `items`): re-point at the survivor, or a dead letter when there is none.
    async fn repoint(
        &self,
        sobject: &str,
        items: &[Item],
        gone: &[usize],
        out: &mut [(Item, Verdict)],
    ) {
        let ids: Vec<SalesforceId> = gone
            .iter()
            .filter_map(|&n| items[n].payload.existing.clone())
            .collect();
        let survivors = match self.survivors(sobject, &ids).await {
            Ok(s) => s,
            Err(e) => {
                let v = call_failure(&e);
                for &n in gone {
                    out[n].1 = v.clone();
                }
                return;
            }
        };
        for &n in gone {
            let Some(old) = &items[n].payload.existing else {
                continue;
            };
            out[n].1 = match survivors.get(old) {
                Some(id) => Verdict::Repoint { id: id.clone() },
                None => Verdict::Dead {
                    message: format!(
                        "the {sobject} {old} was deleted in Salesforce and merged into no other record"
                    ),
                },
            };
        }
    }

    /// Where merged records (`MasterRecordId`) and converted Leads (`ConvertedContactId`) went.
    async fn survivors(
        &self,
        sobject: &str,
        ids: &[SalesforceId],
    ) -> Result<HashMap<SalesforceId, SalesforceId>, SalesforceError> {
        let fields: &[&str] = match sobject {
            "Account" | "Contact" => &["Id", "MasterRecordId"],
            "Lead" => &["Id", "MasterRecordId", "IsConverted", "ConvertedContactId"],
            _ => return Ok(HashMap::new()),
        };
        let soql = Soql::select(fields, sobject)
            .where_in("Id", ids.iter().map(SalesforceId::as_str))
            .to_string();
        let rows: Vec<Record> = self.client.query_all(&soql).try_collect().await?;
        let mut out = HashMap::new();
        for r in rows {
            let Some(id) = r.sf_id() else { continue };
            let parse = |f: &str| r.str_field(f).and_then(|s| SalesforceId::parse(s).ok());
            if let Some(contact) =
                parse("ConvertedContactId").filter(|_| r.bool_field("IsConverted") == Some(true))
            {
                out.insert(id, contact);
            } else if let Some(master) = parse("MasterRecordId") {
                out.insert(id, master);
            }
        }
        Ok(out)
    }
}

/// The outcome of one record of a collections write.
fn record_outcome(
    r: &RecordResult,
    rule: &'static str,
    stamps: &HashMap<SalesforceId, i64>,
    creating: bool,
) -> Verdict {
    if r.success {
        return match r.sf_id() {
            Some(id) => Verdict::Linked {
                stamp_ms: stamps.get(&id).copied(),
                id,
                rule,
            },
            None => Verdict::Retry {
                message: "salesforce answered success without an id".into(),
                count: true,
            },
        };
    }
    // A create refused by a duplicate rule that names the record both sides have: link to it.
    if let Some(id) = r
        .errors
        .iter()
        .filter(|e| e.error_code == "DUPLICATES_DETECTED")
        .filter_map(|e| e.duplicate_result.as_ref())
        .flat_map(|d| d.matched_ids())
        .find_map(|s| SalesforceId::parse(&s).ok())
        .filter(|_| creating)
    {
        return Verdict::Linked {
            id,
            rule: "push:link-duplicate-rule",
            stamp_ms: None,
        };
    }
    let message = first_message(&r.errors);
    match r.class() {
        Some(ErrorClass::Retryable | ErrorClass::Auth { .. }) | None => Verdict::Retry {
            message,
            count: true,
        },
        Some(ErrorClass::Limit) => Verdict::Retry {
            message,
            count: false,
        },
        Some(ErrorClass::Permanent | ErrorClass::Gone) => Verdict::Dead { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_refused_by_a_duplicate_rule_links_to_the_match_and_an_update_does_not() {
        let body = r#"{"success":false,"errors":[{"statusCode":"DUPLICATES_DETECTED","message":"Use one of these records?","duplicateResut":{"allowSave":false,"duplicateRule":"Contact_Rule","matchResults":[{"matchRecords":[{"record":{"Id":"0031I0000081tbPQAQ"}}]}]}}]}"#;
        let r: RecordResult = serde_json::from_str(body).expect("result");
        let stamps = HashMap::new();
        match record_outcome(&r, "push:create", &stamps, true) {
            Verdict::Linked { id, .. } => assert_eq!(id.as_str(), "0031I0000081tbPQAQ"),
            other => panic!("not linked: {other:?}"),
        }
        match record_outcome(&r, "push:update", &stamps, false) {
            Verdict::Dead { message } => assert!(message.starts_with("DUPLICATES_DETECTED")),
            other => panic!("not dead: {other:?}"),
        }
    }
}
