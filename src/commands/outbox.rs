//! `sfsync outbox list|retry|discard`: the outbox and its dead letters on a running service,
//! through its local API (`/api/v1/outbox`).

use anyhow::Context;
use serde_json::Value;

use crate::cli::{OutboxAction, OutboxArgs};

/// Lists, retries or discards outbox entries on a running service.
pub async fn outbox(args: &OutboxArgs) -> anyhow::Result<()> {
    let base = format!("{}/api/v1/outbox", args.url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(org) = &args.org {
        query.push(("org_id", org.clone()));
    }
    let request = match &args.action {
        OutboxAction::List { state } => {
            if let Some(s) = state {
                query.push(("state", s.clone()));
            }
            client.get(&base)
        }
        OutboxAction::Retry { id } => client.post(format!("{base}/{id}/retry")),
        OutboxAction::Discard { id } => client.post(format!("{base}/{id}/discard")),
    };
    let resp = request
        .query(&query)
        .bearer_auth(&args.token)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let code = resp.status();
    let body: Value = resp.json().await.context("reading the answer")?;
    anyhow::ensure!(code.is_success(), "{base} answered {code}: {body}");
    match &args.action {
        OutboxAction::List { .. } => print!("{}", table(&body)),
        OutboxAction::Retry { id } => println!("entry {id} is pending again"),
        OutboxAction::Discard { id } => println!("entry {id} discarded"),
    }
    Ok(())
}

/// The entries as an aligned table, one line each, with Salesforce's message for dead letters.
fn table(entries: &Value) -> String {
    let mut out = format!(
        "{:>8}  {:<8}  {:<16}  {:>10}  {:>8}  {}\n",
        "id", "state", "kind", "record", "attempts", "last error"
    );
    for e in entries.as_array().map(Vec::as_slice).unwrap_or_default() {
        let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "{:>8}  {:<8}  {:<16}  {:>10}  {:>8}  {}\n",
            e["id"],
            text("state"),
            text("kind"),
            e["record_id"],
            e["attempts"],
            text("last_error"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_entry_and_its_error() {
        let entries = serde_json::json!([
            {"id": 7, "state": "dead", "kind": "contact", "record_id": 12, "attempts": 0,
             "last_error": "REQUIRED_FIELD_MISSING: Required fields are missing: [Company]"}
        ]);
        let t = table(&entries);
        assert_eq!(t.lines().count(), 2);
        assert!(t.lines().nth(1).is_some_and(|l| l.contains("dead")
            && l.contains("contact")
            && l.contains("[Company]")));
    }
}
