//! `sfsync outbox list|retry|discard`: the outbox and its dead letters on a running service,
//! through its local API (`/api/v1/outbox`, every page of it).

use anyhow::Context;
use serde_json::Value;

use crate::cli::{OutboxAction, OutboxArgs};

/// Sends one request to the outbox API and returns its JSON answer, or the error it gave.
async fn call(request: reqwest::RequestBuilder, base: &str) -> anyhow::Result<Value> {
    let resp = request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let code = resp.status();
    let body: Value = resp.json().await.context("reading the answer")?;
    anyhow::ensure!(code.is_success(), "{base} answered {code}: {body}");
    Ok(body)
}

/// Every entry, page after page (following `next` until it is null).
async fn list_all(
    client: &reqwest::Client,
    args: &OutboxArgs,
    base: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Vec<Value>> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.to_vec();
        q.extend(cursor.take().map(|c| ("cursor", c)));
        let page = call(
            client
                .get(base)
                .query(&q)
                .bearer_auth(&args.target.service.token),
            base,
        )
        .await?;
        entries.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(entries),
        }
    }
}

/// Lists, retries or discards outbox entries on a running service.
pub async fn outbox(args: &OutboxArgs) -> anyhow::Result<()> {
    let base = args.target.service.api("/outbox");
    let client = reqwest::Client::new();
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(org) = &args.target.org {
        query.push(("org_id", org.clone()));
    }
    let (url, done) = match &args.action {
        OutboxAction::List { state } => {
            query.extend(state.clone().map(|s| ("state", s)));
            let entries = list_all(&client, args, &base, &query).await?;
            print!("{}", table(&entries));
            return Ok(());
        }
        OutboxAction::Retry { id } => (
            format!("{base}/{id}/retry"),
            format!("entry {id} is pending again"),
        ),
        OutboxAction::Discard { id } => (
            format!("{base}/{id}/discard"),
            format!("entry {id} discarded"),
        ),
    };
    call(
        client
            .post(url)
            .query(&query)
            .bearer_auth(&args.target.service.token),
        &base,
    )
    .await?;
    println!("{done}");
    Ok(())
}

/// The entries as an aligned table, one line each, with Salesforce's message for dead letters.
fn table(entries: &[Value]) -> String {
    let mut out = format!(
        "{:>8}  {:<8}  {:<16}  {:>10}  {:>8}  {}\n",
        "id", "state", "kind", "record", "attempts", "last error"
    );
    for e in entries {
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
        let entries = [serde_json::json!(
            {"id": 7, "state": "dead", "kind": "contact", "record_id": 12, "attempts": 0,
             "last_error": "REQUIRED_FIELD_MISSING: Required fields are missing: [Company]"}
        )];
        let t = table(&entries);
        assert_eq!(t.lines().count(), 2);
        assert!(t.lines().nth(1).is_some_and(|l| l.contains("dead")
            && l.contains("contact")
            && l.contains("[Company]")));
    }
}
