//! Bulk-creating an org with deterministic, seeded values, as its sales reps would have made
//! it: accounts with contacts, tasks and opportunities, and leads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::SimError;
use super::state::{Shared, Writer};
use crate::domain::SalesforceId;

/// How many records [`seed`] creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedSpec {
    /// Accounts.
    pub accounts: usize,
    /// Contacts per account.
    pub contacts_per_account: usize,
    /// Opportunities per account.
    pub opportunities_per_account: usize,
    /// Leads.
    pub leads: usize,
    /// Tasks per contact.
    pub tasks_per_contact: usize,
    /// Queue Outbound Messages for the created records.
    pub fire_outbound: bool,
}

/// The ids [`seed`] created, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSummary {
    /// Account ids.
    pub accounts: Vec<SalesforceId>,
    /// Contact ids.
    pub contacts: Vec<SalesforceId>,
    /// Opportunity ids.
    pub opportunities: Vec<SalesforceId>,
    /// Lead ids.
    pub leads: Vec<SalesforceId>,
    /// Task ids.
    pub tasks: Vec<SalesforceId>,
}

const INDUSTRIES: &[&str] = &["Technology", "Banking", "Retail", "Energy", "Healthcare"];
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Negotiation/Review",
    "Closed Won",
];
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Creates the seeded records as the first sales rep.
struct Seeder<'a> {
    shared: &'a Shared,
    who: Writer,
    fire: bool,
}

impl Seeder<'_> {
    fn pick(&self, list: &[&'static str]) -> &'static str {
        let n = self.shared.lock().next_u64() as usize;
        list[n % list.len()]
    }

    fn create(&self, object: &str, fields: Value) -> Result<SalesforceId, SimError> {
        self.shared
            .create(object, &obj(fields), &self.who, self.fire)
    }

    fn account(&self, a: usize, spec: &SeedSpec, out: &mut SeedSummary) -> Result<(), SimError> {
        let account = self.create(
            "Account",
            json!({"Name": format!("Seed Account {a}"), "Industry": self.pick(INDUSTRIES),
                "Website": format!("https://account{a}.example.com"), "NumberOfEmployees": 10 + a}),
        )?;
        for c in 0..spec.contacts_per_account {
            let (first, last) = (self.pick(FIRST), self.pick(LAST));
            let email = format!(
                "{}.{}.{a}.{c}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            let contact = self.create(
                "Contact",
                json!({"FirstName": first, "LastName": last, "AccountId": account.as_str(), "Email": email}),
            )?;
            for t in 0..spec.tasks_per_contact {
                let task = self.create(
                    "Task",
                    json!({"Subject": format!("Call {t}"), "WhoId": contact.as_str(), "ActivityDate": "2024-06-01"}),
                )?;
                out.tasks.push(task);
            }
            out.contacts.push(contact);
        }
        for o in 0..spec.opportunities_per_account {
            let opp = self.create(
                "Opportunity",
                json!({"Name": format!("Seed Deal {a}-{o}"), "StageName": self.pick(STAGES),
                    "CloseDate": "2024-12-31", "Amount": 1000.0 * (1 + o) as f64, "AccountId": account.as_str()}),
            )?;
            out.opportunities.push(opp);
        }
        out.accounts.push(account);
        Ok(())
    }
}

/// Bulk-creates an org (see [`SeedSpec`]).
pub(crate) fn seed(shared: &Shared, spec: &SeedSpec) -> Result<SeedSummary, SimError> {
    let seeder = Seeder {
        shared,
        who: Writer::user(shared.actor(None)?),
        fire: spec.fire_outbound,
    };
    let mut out = SeedSummary::default();
    for a in 0..spec.accounts {
        seeder.account(a, spec, &mut out)?;
    }
    for l in 0..spec.leads {
        let lead = seeder.create(
            "Lead",
            json!({"FirstName": seeder.pick(FIRST), "LastName": seeder.pick(LAST),
                "Company": format!("Seed Lead Co {l}"), "Email": format!("lead{l}@example.com")}),
        )?;
        out.leads.push(lead);
    }
    Ok(out)
}
