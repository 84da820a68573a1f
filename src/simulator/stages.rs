//! Opportunity stages: the org's `OpportunityStage` records (the default picklist and any stage an
//! admin adds), from which an opportunity takes its probability, closed and won flags and forecast
//! category.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::SimError;
use super::org::Org;
use super::standard::{DEFAULT_STAGES, forecast_name, is_forecast_category};
use super::value::Record;
use crate::domain::SalesforceId;

/// A stage to add to the org's stage picklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    /// The label (`MasterLabel`).
    pub label: String,
    /// The API name (the label when absent).
    #[serde(default)]
    pub api_name: Option<String>,
    /// The default probability, in percent.
    pub probability: f64,
    /// A closed stage.
    #[serde(default)]
    pub closed: bool,
    /// A won stage (closed too).
    #[serde(default)]
    pub won: bool,
    /// `Omitted`, `Pipeline`, `BestCase`, `Commit` or `Closed` (from the flags when absent).
    #[serde(default)]
    pub forecast_category: Option<String>,
    /// Offered for new values.
    #[serde(default = "yes")]
    pub active: bool,
    /// Its place in the picklist (after the last when absent).
    #[serde(default)]
    pub sort_order: Option<u32>,
}

fn yes() -> bool {
    true
}

impl StageSpec {
    /// An open, active stage of this probability.
    pub fn open(label: &str, probability: f64) -> Self {
        Self {
            label: label.to_string(),
            api_name: None,
            probability,
            closed: false,
            won: false,
            forecast_category: None,
            active: true,
            sort_order: None,
        }
    }
}

/// The stage records, in sort order.
pub(crate) fn stages(org: &Org) -> Vec<Record> {
    let Some(obj) = org.schema.object("OpportunityStage") else {
        return Vec::new();
    };
    let mut all: Vec<Record> = org.all(&obj).cloned().collect();
    all.sort_by_key(|r| r.get("SortOrder").and_then(Value::as_i64).unwrap_or(0));
    all
}

/// Adds a stage as `user`.
pub(crate) fn add_stage(
    org: &mut Org,
    spec: &StageSpec,
    user: &SalesforceId,
) -> Result<SalesforceId, SimError> {
    let api_name = spec.api_name.clone().unwrap_or_else(|| spec.label.clone());
    let existing = stages(org);
    let taken = existing.iter().any(|r| {
        ["ApiName", "MasterLabel"].iter().any(|f| {
            r.get(*f)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(&api_name) || v == spec.label)
        })
    });
    if taken || spec.label.trim().is_empty() {
        let message = format!("a stage named {} exists or the label is empty", spec.label);
        return Err(SimError::invalid_operation(message));
    }
    if spec.won && !spec.closed {
        return Err(SimError::invalid_operation("a won stage is closed"));
    }
    let category = spec.forecast_category.clone().unwrap_or_else(|| {
        match (spec.closed, spec.won) {
            (true, true) => "Closed",
            (true, false) => "Omitted",
            _ => "Pipeline",
        }
        .to_string()
    });
    if !is_forecast_category(&category) {
        let message = format!("{category} is not a forecast category");
        return Err(SimError::invalid_operation(message));
    }
    let last = existing
        .iter()
        .filter_map(|r| r.get("SortOrder").and_then(Value::as_u64))
        .max()
        .unwrap_or(0);
    let record = json!({
        "MasterLabel": spec.label, "ApiName": api_name, "IsActive": spec.active,
        "IsClosed": spec.closed, "IsWon": spec.won, "DefaultProbability": spec.probability,
        "ForecastCategory": category, "ForecastCategoryName": forecast_name(&category),
        "SortOrder": spec.sort_order.map_or(last + 1, u64::from),
    });
    let obj = org.object("OpportunityStage")?;
    let record = record.as_object().cloned().unwrap_or_default();
    Ok(org.insert_system(&obj, record, user))
}

/// Adds the default stages as `user`.
pub(crate) fn add_default_stages(org: &mut Org, user: &SalesforceId) -> Result<(), SimError> {
    for (i, s) in DEFAULT_STAGES.iter().enumerate() {
        let spec = StageSpec {
            label: s.label.to_string(),
            api_name: None,
            probability: s.probability,
            closed: s.closed,
            won: s.won,
            forecast_category: Some(s.forecast.to_string()),
            active: true,
            sort_order: Some(i as u32 + 1),
        };
        add_stage(org, &spec, user)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::org::tests::{create, org, user};

    #[test]
    fn an_opportunity_takes_its_probability_from_the_stage() {
        let mut o = org();
        add_default_stages(&mut o, &user()).unwrap();
        let id = create(
            &mut o,
            "Opportunity",
            json!({"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2024-05-01"}),
        )
        .unwrap();
        let (_, r) = o.find(&id).unwrap();
        assert_eq!(r["Probability"], json!(100.0));
        assert_eq!(r["IsWon"], json!(true));
        assert_eq!(r["ForecastCategoryName"], json!("Closed"));
    }

    #[test]
    fn a_custom_stage_decides_its_opportunities() {
        let mut o = org();
        add_default_stages(&mut o, &user()).unwrap();
        let mut spec = StageSpec::open("Verbal Yes", 95.0);
        spec.forecast_category = Some("BestCase".into());
        add_stage(&mut o, &spec, &user()).unwrap();
        assert!(
            add_stage(&mut o, &spec, &user()).is_err(),
            "names are unique"
        );
        let id = create(
            &mut o,
            "Opportunity",
            json!({"Name": "Deal", "StageName": "Verbal Yes", "CloseDate": "2024-05-01"}),
        )
        .unwrap();
        let (_, r) = o.find(&id).unwrap();
        assert_eq!(r["Probability"], json!(95.0));
        assert_eq!(r["ForecastCategoryName"], json!("Best Case"));
        assert_eq!(stages(&o).last().unwrap()["SortOrder"], json!(11));
    }
}
