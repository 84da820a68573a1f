//! List views: each object's standard views ("All Accounts", "My Accounts", "New This Week", …)
//! and any an admin adds, with the SOQL each runs and the JSON of the List Views, List View
//! Describe and List View Results resources.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{FieldType, ObjectDef};
use super::soql::{Cond, Lit, Op};
use super::value::Record;
use crate::domain::SalesforceId;

/// A list view to add to an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListViewSpec {
    /// The label.
    pub label: String,
    /// The API name (the label without spaces when absent).
    #[serde(default)]
    pub developer_name: Option<String>,
    /// A SOQL `WHERE` condition the records must satisfy.
    #[serde(default)]
    pub filter: Option<String>,
    /// `mine` (the viewer's own records) or `everything` (the default).
    #[serde(default)]
    pub scope: Option<String>,
    /// The columns (the object's usual ones when empty).
    #[serde(default)]
    pub columns: Vec<String>,
}

/// A list view of the org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListView {
    pub(crate) id: SalesforceId,
    pub(crate) object: String,
    pub(crate) label: String,
    pub(crate) developer_name: String,
    pub(crate) filter: Option<String>,
    pub(crate) mine: bool,
    pub(crate) columns: Vec<String>,
}

/// Columns every view selects without showing them.
const HIDDEN: &[&str] = &["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"];

/// The standard views of an object.
pub(crate) fn standard_views(object: &ObjectDef) -> Vec<ListViewSpec> {
    let view = |label: &str, dev: &str, filter: Option<&str>, mine: bool| ListViewSpec {
        label: label.to_string(),
        developer_name: Some(dev.to_string()),
        filter: filter.map(String::from),
        scope: mine.then(|| "mine".to_string()),
        columns: Vec::new(),
    };
    let new_this_week = Some("CreatedDate = THIS_WEEK");
    match object.name.as_str() {
        "Account" => vec![
            view("All Accounts", "AllAccounts", None, false),
            view("My Accounts", "MyAccounts", None, true),
            view("New This Week", "NewThisWeek", new_this_week, false),
        ],
        "Contact" => vec![
            view("All Contacts", "AllContacts", None, false),
            view("My Contacts", "MyContacts", None, true),
            view("New This Week", "NewThisWeek", new_this_week, false),
        ],
        "Lead" => vec![
            view(
                "All Open Leads",
                "AllOpenLeads",
                Some("IsConverted = false"),
                false,
            ),
            view(
                "Today's Leads",
                "TodaysLeads",
                Some("CreatedDate = TODAY"),
                false,
            ),
        ],
        "Opportunity" => vec![
            view("All Opportunities", "AllOpportunities", None, false),
            view("My Opportunities", "MyOpportunities", None, true),
            view(
                "Closing This Month",
                "ClosingThisMonth",
                Some("CloseDate = THIS_MONTH"),
                false,
            ),
            view("Won", "Won", Some("IsWon = true"), false),
        ],
        _ if object.custom => vec![view("All", "All", None, false)],
        _ => Vec::new(),
    }
}

/// The columns a view of `object` shows when none are chosen.
pub(crate) fn default_columns(object: &ObjectDef) -> Vec<String> {
    let wanted: &[&str] = match object.name.as_str() {
        "Account" => &["Name", "Site", "BillingState", "Phone", "Type", "OwnerId"],
        "Contact" => &["Name", "AccountId", "Title", "Phone", "Email", "OwnerId"],
        "Lead" => &["Name", "Company", "State", "Email", "Status", "OwnerId"],
        "Opportunity" => &[
            "Name",
            "AccountId",
            "Amount",
            "CloseDate",
            "StageName",
            "OwnerId",
        ],
        _ => &["Name", "OwnerId"],
    };
    wanted
        .iter()
        .filter(|c| object.has(c))
        .map(|c| (*c).to_string())
        .collect()
}

impl ListView {
    fn sort_field(obj: &ObjectDef) -> &str {
        obj.fields
            .iter()
            .find(|f| f.name_field)
            .map_or("Id", |f| f.name.as_str())
    }

    /// The columns shown, then the hidden ones.
    fn select_list(&self) -> Vec<(&str, bool)> {
        let mut all: Vec<(&str, bool)> = self.columns.iter().map(|c| (c.as_str(), false)).collect();
        for h in HIDDEN {
            if !self.columns.iter().any(|c| c == h) {
                all.push((h, true));
            }
        }
        all
    }

    /// The SOQL the view runs.
    pub(crate) fn query(&self, obj: &ObjectDef) -> String {
        let fields: Vec<&str> = self.select_list().into_iter().map(|(f, _)| f).collect();
        let mut q = format!("SELECT {} FROM {}", fields.join(", "), obj.name);
        if self.mine {
            q.push_str(" USING SCOPE mine");
        }
        if let Some(filter) = &self.filter {
            q.push_str(&format!(" WHERE {filter}"));
        }
        let sort = Self::sort_field(obj);
        q.push_str(&format!(" ORDER BY {sort} ASC NULLS FIRST"));
        if sort != "Id" {
            q.push_str(", Id ASC NULLS FIRST");
        }
        q
    }

    /// The view in the List Views resource.
    pub(crate) fn summary(&self, data_path: &str) -> Value {
        let url = format!("{data_path}/sobjects/{}/listviews/{}", self.object, self.id);
        json!({
            "describeUrl": format!("{url}/describe"),
            "developerName": self.developer_name,
            "id": self.id.as_str(),
            "label": self.label,
            "resultsUrl": format!("{url}/results"),
            "soqlCompatible": true,
            "url": url,
        })
    }

    /// The columns as the describe and results resources show them.
    fn columns_json(&self, obj: &ObjectDef) -> Vec<Value> {
        let sort = Self::sort_field(obj);
        self.select_list()
            .into_iter()
            .map(|(name, hidden)| {
                let def = obj.field(name);
                let ftype = def.map_or(FieldType::String, |d| d.ftype);
                let (asc, desc) = match ftype {
                    FieldType::Int
                    | FieldType::Double
                    | FieldType::Currency
                    | FieldType::Percent => ("9-0", "0-9"),
                    FieldType::Date | FieldType::Datetime => ("New to Old", "Old to New"),
                    _ => ("Z-A", "A-Z"),
                };
                let sorted = name == sort;
                json!({
                    "ascendingLabel": asc,
                    "descendingLabel": desc,
                    "fieldNameOrPath": name,
                    "hidden": hidden,
                    "label": def.map_or(name, |d| d.label.as_str()),
                    "selectListItem": name,
                    "sortDirection": if sorted { json!("ascending") } else { Value::Null },
                    "sortIndex": if sorted { json!(0) } else { Value::Null },
                    "sortable": !hidden,
                    "type": ftype.describe_name(),
                })
            })
            .collect()
    }

    /// The List View Describe resource.
    pub(crate) fn describe(&self, obj: &ObjectDef, filter: Option<&Cond>) -> Value {
        let sort = Self::sort_field(obj);
        let mut order = vec![
            json!({"fieldNameOrPath": sort, "nullsPosition": "first", "sortDirection": "ascending"}),
        ];
        if sort != "Id" {
            order.push(json!({"fieldNameOrPath": "Id", "nullsPosition": "first", "sortDirection": "ascending"}));
        }
        json!({
            "columns": self.columns_json(obj),
            "id": self.id.as_str(),
            "orderBy": order,
            "query": self.query(obj),
            "relatedEntityId": null,
            "scope": if self.mine { json!("mine") } else { json!("everything") },
            "scopeEntityId": null,
            "sobjectType": obj.name,
            "whereCondition": filter.map_or_else(
                || json!({"conditions": [], "conjunction": "and"}),
                where_condition,
            ),
        })
    }

    /// The List View Results resource: one page of `rows` out of `total`.
    pub(crate) fn results(
        &self,
        obj: &ObjectDef,
        rows: &[&Record],
        total: usize,
        end: usize,
    ) -> Value {
        let columns = self.select_list();
        let records: Vec<Value> = rows
            .iter()
            .map(|r| {
                let cells: Vec<Value> = columns
                    .iter()
                    .map(|(name, _)| json!({"fieldNameOrPath": name, "value": cell(r.get(*name))}))
                    .collect();
                json!({"columns": cells})
            })
            .collect();
        json!({
            "columns": self.columns_json(obj),
            "developerName": self.developer_name,
            "done": end >= total,
            "id": self.id.as_str(),
            "label": self.label,
            "records": records,
            "size": total,
        })
    }
}

/// A value as list view results show it: text, or null.
fn cell(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => json!(s),
        Some(other) => json!(other.to_string()),
    }
}

fn literal_text(lit: &Lit) -> String {
    match lit {
        Lit::Null => "null".into(),
        Lit::Bool(b) => b.to_string(),
        Lit::Num(n) => n.to_string(),
        Lit::Str(s) => format!("'{}'", s.replace('\'', "\\'")),
        Lit::Date(d) => d.to_string(),
        Lit::DateTime(d) => d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Lit::Range(_, _, word) => word.clone(),
    }
}

/// A `WHERE` condition as the describe's `whereCondition` shows it.
fn where_condition(cond: &Cond) -> Value {
    let op_name = |op: Op| match op {
        Op::Eq => "equals",
        Op::Ne => "notEquals",
        Op::Lt => "lessThan",
        Op::Gt => "greaterThan",
        Op::Le => "lessThanOrEqualTo",
        Op::Ge => "greaterThanOrEqualTo",
    };
    match cond {
        Cond::And(a, b) => {
            json!({"conditions": [where_condition(a), where_condition(b)], "conjunction": "and"})
        }
        Cond::Or(a, b) => {
            json!({"conditions": [where_condition(a), where_condition(b)], "conjunction": "or"})
        }
        Cond::Not(a) => json!({"condition": where_condition(a)}),
        Cond::Cmp(f, op, lit) => {
            json!({"field": f, "operator": op_name(*op), "values": [literal_text(lit)]})
        }
        Cond::In(f, lits, negated) => json!({
            "field": f,
            "operator": if *negated { "notIn" } else { "in" },
            "values": lits.iter().map(literal_text).collect::<Vec<_>>(),
        }),
        Cond::Like(f, pattern) => {
            json!({"field": f, "operator": "like", "values": [format!("'{pattern}'")]})
        }
    }
}
