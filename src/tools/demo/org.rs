//! Section 1: the simulated org, seeded and set up as the setup guide asks, described as an
//! admin would check it in Setup.

use std::time::Duration;

use crate::cli::DemoArgs;
use crate::domain::SalesforceId;
use crate::simulator::{SeedSpec, SeedSummary, Simulator, SimulatorConfig};

/// The fields each Outbound Message carries: the guide's minimum. sfsync pulls the rest.
pub(crate) const MESSAGE_FIELDS: [&str; 3] = ["Id", "SystemModstamp", "LastModifiedById"];

/// The objects whose changes send an Outbound Message.
pub(crate) const MESSAGED: [&str; 4] = ["Account", "Contact", "Lead", "Opportunity"];

/// The org and what was seeded in it.
pub(crate) struct Org {
    pub(crate) sim: Simulator,
    pub(crate) seeded: SeedSummary,
}

impl Org {
    /// A seeded record's name as the org holds it now (`Name`, or first and last name).
    pub(crate) fn name_of(&self, id: &SalesforceId) -> String {
        let record = self.sim.get(id).unwrap_or_default();
        let text = |f: &str| record[f].as_str().unwrap_or_default().to_string();
        match text("Name") {
            n if !n.is_empty() => n,
            _ => format!("{} {}", text("FirstName"), text("LastName"))
                .trim()
                .to_string(),
        }
    }
}

/// Starts and seeds the org, sets its Outbound Messages, and prints what an admin would see.
pub(crate) async fn start(args: &DemoArgs) -> anyhow::Result<Org> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(
        listener,
        SimulatorConfig {
            seed: args.seed,
            outbound_retry_base: Duration::from_millis(200),
            ..SimulatorConfig::default()
        },
    )
    .await?;
    let seeded = sim.seed_org(&SeedSpec {
        accounts: args.accounts.max(4),
        contacts_per_account: 2,
        opportunities_per_account: 1,
        leads: 3,
        ..SeedSpec::default()
    })?;
    for object in MESSAGED {
        sim.set_outbound_rule(object, &MESSAGE_FIELDS)?;
    }
    let user = sim
        .integration_user()
        .map_or_else(|| "(none)".to_string(), |u| u.username);
    println!(
        "1. The org (a simulated Salesforce org on {})",
        sim.instance_url()
    );
    println!(
        "   org {}: {} Accounts, {} Contacts, {} Opportunities, {} Leads",
        sim.org_id(),
        seeded.accounts.len(),
        seeded.contacts.len(),
        seeded.opportunities.len(),
        seeded.leads.len()
    );
    println!("   set up as the guide asks:");
    println!("   - a connected app (External Client App) with PKCE and sfsync's callback URL");
    println!("   - an integration user, {user}, who signs in once to connect the org");
    println!(
        "   - the marker field {} (External ID, Unique) on every object sfsync writes",
        crate::simulator::DEFAULT_MARKER_FIELD
    );
    println!(
        "   - an Outbound Message on {} with the fields {}",
        MESSAGED.join(", "),
        MESSAGE_FIELDS.join(", ")
    );
    Ok(Org { sim, seeded })
}
