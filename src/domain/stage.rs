//! The stage table: an Opportunity's `StageName` to the local pipeline status and internal funnel
//! stage, and back for pushes. Defaults cover Salesforce's standard picklist (Closed Won is
//! CUSTOMER, Closed Lost is LOST, open stages OPPORTUNITY); orgs with their own stages add or
//! override rows in `[sync] stages`.
//!
//! A push sends the org's own `StageName` back unchanged while the product's internal stage and
//! status are still the ones that name mapped to ([`SyncedStage`]), so a custom or renamed stage
//! is never replaced by a guess.
//!
//! The pipeline status a stage maps to ([`OwnershipStatus`]) is defined here, beside the table.

use serde::{Deserialize, Serialize};

/// How far a company is with a product (the app's `ProductOwnershipStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OwnershipStatus {
    /// Not yet in a deal.
    Prospect,
    /// An open deal.
    Opportunity,
    /// Won.
    Customer,
    /// Lost.
    Lost,
}

/// One row of the stage table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    /// The Opportunity `StageName` (compared case-insensitively).
    pub stage_name: String,
    /// The status a CompanyProduct in this stage has.
    pub status: OwnershipStatus,
    /// The internal funnel stage stored on the CompanyProduct.
    pub stage: String,
}

/// An Opportunity's `StageName` as last pulled, and the status and internal stage it mapped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedStage {
    /// The `StageName` the org holds.
    pub stage_name: String,
    /// The status it mapped to.
    pub status: OwnershipStatus,
    /// The internal stage it mapped to.
    pub stage: String,
}

/// `StageName` → (status, internal stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTable {
    rules: Vec<StageRule>,
}

const STANDARD: [(&str, OwnershipStatus, &str); 10] = [
    ("Prospecting", OwnershipStatus::Opportunity, "prospecting"),
    (
        "Qualification",
        OwnershipStatus::Opportunity,
        "qualification",
    ),
    (
        "Needs Analysis",
        OwnershipStatus::Opportunity,
        "needs_analysis",
    ),
    (
        "Value Proposition",
        OwnershipStatus::Opportunity,
        "value_proposition",
    ),
    (
        "Id. Decision Makers",
        OwnershipStatus::Opportunity,
        "decision_makers",
    ),
    (
        "Perception Analysis",
        OwnershipStatus::Opportunity,
        "perception_analysis",
    ),
    (
        "Proposal/Price Quote",
        OwnershipStatus::Opportunity,
        "proposal",
    ),
    (
        "Negotiation/Review",
        OwnershipStatus::Opportunity,
        "negotiation",
    ),
    ("Closed Won", OwnershipStatus::Customer, "closed_won"),
    ("Closed Lost", OwnershipStatus::Lost, "closed_lost"),
];

/// The standard `StageName` spelled like `name` (case and surrounding space ignored).
pub fn standard_stage_name(name: &str) -> Option<&'static str> {
    STANDARD
        .iter()
        .map(|(n, _, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name.trim()))
}

impl Default for StageTable {
    fn default() -> Self {
        Self::standard()
    }
}

impl StageTable {
    /// The standard picklist: every open stage is OPPORTUNITY, Closed Won is CUSTOMER, Closed
    /// Lost is LOST.
    pub fn standard() -> Self {
        Self {
            rules: STANDARD
                .iter()
                .map(|(name, status, stage)| StageRule {
                    stage_name: (*name).to_string(),
                    status: *status,
                    stage: (*stage).to_string(),
                })
                .collect(),
        }
    }

    /// The standard table with `overrides` replacing rows of the same stage name and adding the
    /// rest.
    pub fn with_overrides(overrides: &[StageRule]) -> Self {
        let mut table = Self::standard();
        for rule in overrides {
            match table
                .rules
                .iter_mut()
                .find(|r| r.stage_name.eq_ignore_ascii_case(&rule.stage_name))
            {
                Some(existing) => *existing = rule.clone(),
                None => table.rules.push(rule.clone()),
            }
        }
        table
    }

    /// Maps a `StageName`. A stage missing from the table falls back on the record's derived
    /// `IsClosed`/`IsWon` flags (closed and won: CUSTOMER, closed: LOST, else OPPORTUNITY) and
    /// keeps the stage name, lower-cased, as the internal stage.
    pub fn map(
        &self,
        stage_name: &str,
        is_closed: Option<bool>,
        is_won: Option<bool>,
    ) -> (OwnershipStatus, String) {
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.stage_name.eq_ignore_ascii_case(stage_name.trim()))
        {
            return (rule.status, rule.stage.clone());
        }
        let status = match (is_closed, is_won) {
            (Some(true), Some(true)) => OwnershipStatus::Customer,
            (Some(true), _) => OwnershipStatus::Lost,
            _ => OwnershipStatus::Opportunity,
        };
        let stage = stage_name
            .trim()
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        (status, stage)
    }

    /// The `StageName` for an internal stage (the push side's direction), first match.
    pub fn stage_name_for(&self, stage: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.stage.eq_ignore_ascii_case(stage))
            .map(|r| r.stage_name.as_str())
    }

    /// The `StageName` a push sends for a product in `status` at internal `stage`: the org's own
    /// name (`synced`) while the product still has the status and stage it mapped to; else the
    /// first row with this stage and status; else, for a won or lost product, the first row of
    /// that status. `None`: the table has no row for it.
    pub fn push_stage_name(
        &self,
        status: OwnershipStatus,
        stage: Option<&str>,
        synced: Option<&SyncedStage>,
    ) -> Option<String> {
        let same_stage = |a: &str| stage.is_some_and(|s| s.trim().eq_ignore_ascii_case(a));
        if let Some(s) = synced.filter(|s| s.status == status && same_stage(&s.stage)) {
            return Some(s.stage_name.clone());
        }
        let by_stage = self
            .rules
            .iter()
            .find(|r| r.status == status && same_stage(&r.stage));
        let by_status = || {
            self.rules
                .iter()
                .find(|r| r.status == status && status != OwnershipStatus::Opportunity)
        };
        by_stage.or_else(by_status).map(|r| r.stage_name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_picklist_maps_closed_won_lost_and_open_stages() {
        let t = StageTable::standard();
        assert_eq!(t.map("Closed Won", None, None).0, OwnershipStatus::Customer);
        assert_eq!(t.map("Closed Lost", None, None).0, OwnershipStatus::Lost);
        assert_eq!(
            t.map("Negotiation/Review", None, None),
            (OwnershipStatus::Opportunity, "negotiation".to_string())
        );
        assert_eq!(t.map("prospecting", None, None).1, "prospecting");
    }

    #[test]
    fn an_unknown_stage_follows_the_derived_flags() {
        let t = StageTable::standard();
        assert_eq!(
            t.map("Signed Contract", Some(true), Some(true)),
            (OwnershipStatus::Customer, "signed_contract".to_string())
        );
        assert_eq!(
            t.map("Dead", Some(true), Some(false)).0,
            OwnershipStatus::Lost
        );
        assert_eq!(t.map("Demo", None, None).0, OwnershipStatus::Opportunity);
    }

    #[test]
    fn overrides_replace_and_extend_the_standard_rows() {
        let t = StageTable::with_overrides(&[
            StageRule {
                stage_name: "closed won".into(),
                status: OwnershipStatus::Customer,
                stage: "won".into(),
            },
            StageRule {
                stage_name: "Pilot".into(),
                status: OwnershipStatus::Opportunity,
                stage: "pilot".into(),
            },
        ]);
        assert_eq!(t.map("Closed Won", None, None).1, "won");
        assert_eq!(t.map("Pilot", Some(false), None).1, "pilot");
        assert_eq!(t.stage_name_for("pilot"), Some("Pilot"));
    }

    #[test]
    fn a_push_keeps_the_orgs_stage_name_while_stage_and_status_are_unchanged() {
        let t = StageTable::with_overrides(&[StageRule {
            stage_name: "Pilot".into(),
            status: OwnershipStatus::Opportunity,
            stage: "pilot".into(),
        }]);
        let open = OwnershipStatus::Opportunity;
        assert_eq!(
            t.push_stage_name(open, Some("pilot"), None).as_deref(),
            Some("Pilot")
        );
        let signed = SyncedStage {
            stage_name: "Signed Contract".into(),
            status: OwnershipStatus::Customer,
            stage: "signed_contract".into(),
        };
        let won = OwnershipStatus::Customer;
        assert_eq!(
            t.push_stage_name(won, Some("signed_contract"), Some(&signed))
                .as_deref(),
            Some("Signed Contract")
        );
        assert_eq!(
            t.push_stage_name(
                OwnershipStatus::Lost,
                Some("signed_contract"),
                Some(&signed)
            )
            .as_deref(),
            Some("Closed Lost"),
            "a changed status is the table's"
        );
        assert_eq!(t.push_stage_name(open, Some("demo"), Some(&signed)), None);
    }
}
