//! Merges and lead conversion as Salesforce performs them: merged losers become deleted with
//! `MasterRecordId`, references to them move to the master; a converted lead yields an account,
//! a contact and (unless suppressed) an opportunity and becomes read-only.

use serde_json::{Map, Value, json};

use super::error::SimError;
use super::org::{Changed, Org, Save};
use super::value::{Record, is_deleted, rest_datetime};
use crate::domain::SalesforceId;

/// What a lead conversion should do; the defaults create an account, a contact and an opportunity.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ConvertOptions {
    /// Attach the contact (and opportunity) to this existing account instead of creating one.
    pub account_id: Option<String>,
    /// Do not create an opportunity.
    pub do_not_create_opportunity: bool,
}

/// The records a lead conversion produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConvertResult {
    /// The lead.
    pub lead_id: SalesforceId,
    /// The account the lead became (or was attached to).
    pub account_id: SalesforceId,
    /// The contact the lead became.
    pub contact_id: SalesforceId,
    /// The opportunity created, unless suppressed.
    pub opportunity_id: Option<SalesforceId>,
}

impl Org {
    /// Merges `losers` into `master` as `user`: losers become deleted with `MasterRecordId`,
    /// records that pointed at a loser point at the master. Returns the master (the one changed
    /// record that fires workflow).
    pub(crate) fn merge(
        &mut self,
        master: &str,
        losers: &[String],
        user: &SalesforceId,
    ) -> Result<Vec<Changed>, SimError> {
        let (obj, master_id, _) = self.live(None, master)?;
        if !obj.mergeable {
            let message = format!("cannot merge {} records", obj.name);
            return Err(SimError::invalid_operation(message));
        }
        if losers.is_empty() || losers.len() > 2 {
            return Err(SimError::invalid_operation(
                "a merge takes one or two records to merge into the master",
            ));
        }
        let mut loser_ids = Vec::new();
        for loser in losers {
            let (_, lid, _) = self.live(Some(&obj), loser)?;
            if lid == master_id {
                let message = "cannot merge a record with itself";
                return Err(SimError::invalid_operation(message));
            }
            loser_ids.push(lid);
        }
        let now = json!(rest_datetime(self.now()));
        for lid in &loser_ids {
            let loser = self
                .records
                .get(&obj.name)
                .and_then(|m| m.get(lid))
                .cloned();
            if let Some(loser) = loser {
                self.unindex(&obj.name, lid, &loser);
            }
            if let Some(r) = self.records.get_mut(&obj.name).and_then(|m| m.get_mut(lid)) {
                r.insert("IsDeleted".into(), json!(true));
                r.insert("MasterRecordId".into(), json!(master_id.as_str()));
                r.insert("SystemModstamp".into(), now.clone());
            }
        }
        let losers: Vec<&str> = loser_ids.iter().map(SalesforceId::as_str).collect();
        for record in self.records.values_mut().flat_map(|t| t.values_mut()) {
            repoint(record, &losers, master_id.as_str(), &now);
        }
        if let Some(r) = self
            .records
            .get_mut(&obj.name)
            .and_then(|m| m.get_mut(&master_id))
        {
            r.insert("LastModifiedDate".into(), now.clone());
            r.insert("LastModifiedById".into(), json!(user.as_str()));
            r.insert("SystemModstamp".into(), now);
        }
        Ok(vec![(obj.name.clone(), master_id)])
    }

    /// Creates a record as part of a conversion (no validation or duplicate rules).
    fn convert_create(
        &mut self,
        object: &str,
        body: Map<String, Value>,
        user: &SalesforceId,
        changed: &mut Vec<Changed>,
    ) -> Result<SalesforceId, SimError> {
        let obj = self.object(object)?;
        let save = Save {
            rules: false,
            ..Save::by(user)
        };
        let record = self.prepare_create(&obj, &body, save)?;
        let id = self.commit_create(&obj, record, user);
        changed.push((obj.name.clone(), id.clone()));
        Ok(id)
    }

    /// Converts a lead as `user`: creates (or reuses) an account, creates a contact and, unless
    /// suppressed, an opportunity, then marks the lead converted. Returns the result and the
    /// changed records.
    pub(crate) fn convert(
        &mut self,
        lead: &str,
        options: &ConvertOptions,
        user: &SalesforceId,
    ) -> Result<(ConvertResult, Vec<Changed>), SimError> {
        let lead_obj = self.object("Lead")?;
        let (_, lead_id, lead_rec) = self.live(Some(&lead_obj), lead)?;
        if lead_rec.get("IsConverted") == Some(&Value::Bool(true)) {
            return Err(SimError::converted_lead());
        }
        let lead_rec = lead_rec.clone();
        let text = |f: &str| lead_rec.get(f).cloned().unwrap_or(Value::Null);
        let company = text("Company").as_str().unwrap_or("Company").to_string();
        let mut changed = Vec::new();
        let account_id = match &options.account_id {
            Some(existing) => {
                let account = self.object("Account")?;
                self.live(Some(&account), existing)?.1
            }
            None => {
                let body = Map::from_iter([
                    ("Name".to_string(), json!(company)),
                    ("Phone".to_string(), text("Phone")),
                    ("Website".to_string(), text("Website")),
                    ("Industry".to_string(), text("Industry")),
                ]);
                self.convert_create("Account", body, user, &mut changed)?
            }
        };
        let mut body = Map::new();
        for f in [
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Phone",
            "LeadSource",
        ] {
            body.insert(f.to_string(), text(f));
        }
        body.insert("AccountId".into(), json!(account_id.as_str()));
        let contact_id = self.convert_create("Contact", body, user, &mut changed)?;
        let opportunity_id = if options.do_not_create_opportunity {
            None
        } else {
            let close = (self.now() + chrono::Duration::days(30)).date_naive();
            let body = Map::from_iter([
                ("Name".to_string(), json!(format!("{company}-"))),
                ("StageName".to_string(), json!("Prospecting")),
                ("CloseDate".to_string(), json!(close.to_string())),
                ("AccountId".to_string(), json!(account_id.as_str())),
                ("LeadSource".to_string(), text("LeadSource")),
            ]);
            Some(self.convert_create("Opportunity", body, user, &mut changed)?)
        };
        let mut record = lead_rec;
        let today = self.now().date_naive().to_string();
        record.insert("IsConverted".into(), json!(true));
        record.insert("ConvertedDate".into(), json!(today));
        record.insert("Status".into(), json!("Closed - Converted"));
        record.insert("ConvertedAccountId".into(), json!(account_id.as_str()));
        record.insert("ConvertedContactId".into(), json!(contact_id.as_str()));
        if let Some(opp) = &opportunity_id {
            record.insert("ConvertedOpportunityId".into(), json!(opp.as_str()));
        }
        self.commit_update(&lead_obj, &lead_id, record, user);
        changed.push((lead_obj.name.clone(), lead_id.clone()));
        let result = ConvertResult {
            lead_id,
            account_id,
            contact_id,
            opportunity_id,
        };
        Ok((result, changed))
    }
}

/// Points a live record's references to any of `losers` at `master`.
fn repoint(record: &mut Record, losers: &[&str], master: &str, now: &Value) {
    if is_deleted(record) {
        return;
    }
    let mut touched = false;
    for value in record.values_mut() {
        if value.as_str().is_some_and(|s| losers.contains(&s)) {
            *value = json!(master);
            touched = true;
        }
    }
    if touched {
        record.insert("SystemModstamp".into(), now.clone());
    }
}
