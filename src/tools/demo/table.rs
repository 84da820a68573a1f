//! Printing: the result tables and what the demo cost.

use std::time::Duration;

use reqwest::Method;

use super::Service;
use super::org::Org;
use crate::simulator::Simulator;

/// One row of a result table: the change, the record it concerned (by name), what now holds.
pub(crate) struct Row {
    change: String,
    record: String,
    result: String,
}

impl Row {
    pub(crate) fn new(change: &str, record: &str, result: String) -> Self {
        Self {
            change: change.into(),
            record: record.into(),
            result,
        }
    }
}

/// Prints `rows` under `title`, columns sized to their contents.
pub(crate) fn print_rows(title: &str, rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.change.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let w1 = rows
        .iter()
        .map(|r| r.record.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    println!("{title}:");
    println!("   {:<w0$} | {:<w1$} | result", "change", "record");
    println!(
        "   {}-+-{}-+-{}",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(40)
    );
    for r in rows {
        println!("   {:<w0$} | {:<w1$} | {}", r.change, r.record, r.result);
    }
}

/// The org's API call count after each phase.
#[derive(Default)]
pub(crate) struct Costs {
    phases: Vec<(String, u64)>,
}

impl Costs {
    /// Records the org's count of API calls at the end of `phase`.
    pub(crate) fn mark(&mut self, phase: &str, sim: &Simulator) {
        self.phases.push((phase.to_string(), sim.api_calls().total));
    }
}

/// Section 6: what each phase cost, and what the org and the service counted.
pub(crate) async fn print_summary(
    svc: &Service,
    org: &Org,
    costs: &Costs,
    took: Duration,
) -> anyhow::Result<()> {
    println!("\n6. What it cost (API calls, as the org counted them)");
    let mut before = 0;
    for (phase, total) in &costs.phases {
        println!("   {phase:<58} {:>4}", total - before);
        before = *total;
    }
    println!("   {:<58} {:>4}", "in all", before);
    // The Outbound Messages about the pushes arrive after the outbox drained: wait for them.
    let status = super::until("the org's last messages", || async {
        let status = svc.api(Method::GET, "/status", None).await?;
        let settled = org.sim.outbound_stats().pending == 0 && status["inbox"]["pending"] == 0;
        Ok(settled.then_some(status))
    })
    .await?;
    let inbox = &status["inbox"];
    let stats = org.sim.outbound_stats();
    println!(
        "   Outbound Messages the org sent: {} ({} notifications); sfsync stored {} and recognised {} duplicates and {} of its own writes",
        stats.messages_sent,
        stats.notifications_queued,
        inbox["received_total"],
        inbox["duplicates_total"],
        inbox["echoes_total"],
    );
    let count = |kind: &'static str| async move {
        let page = svc
            .api(Method::GET, &format!("/{kind}?limit=1000"), None)
            .await?;
        anyhow::Ok(page["items"].as_array().map_or(0, Vec::len))
    };
    println!(
        "   local now: {} companies, {} contacts, {} company products, {} activities; {:.1} s",
        count("companies").await?,
        count("contacts").await?,
        count("company-products").await?,
        count("activities").await?,
        took.as_secs_f64()
    );
    Ok(())
}
