//! `sfsync changes`: a running service's change feed, one line per change. Without `--follow`
//! it prints every change after `--after` and exits; with it, it long-polls
//! `GET /api/v1/changes` and prints each change as it lands, until interrupted, riding out the
//! service's restarts. A position past the retention stops it with the earliest kept.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::ChangesArgs;

/// Entries per request.
const LIMIT: usize = 500;
/// The longest wait asked of the service; halved while the service refuses it (its request
/// timeout is shorter).
const WAIT_S: u64 = 25;

/// One page of the feed, or why there is none.
enum Fetched {
    Page(Vec<Value>, u64),
    /// The service refused the wait: it must be shorter.
    WaitTooLong,
}

async fn fetch(
    http: &reqwest::Client,
    args: &ChangesArgs,
    after: Option<u64>,
    wait: u64,
) -> anyhow::Result<Fetched> {
    let base = args.service.url.trim_end_matches('/');
    let mut url = args
        .service
        .api(&format!("/changes?limit={LIMIT}&wait={wait}"));
    if let Some(after) = after {
        url.push_str(&format!("&after={after}"));
    }
    if let Some(types) = &args.types {
        url.push_str(&format!("&types={}", urlencoding::encode(types)));
    }
    let resp = http
        .get(&url)
        .bearer_auth(&args.service.token)
        .timeout(Duration::from_secs(wait + 30))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let code = resp.status();
    let body: Value = resp.json().await.context("reading the feed")?;
    if code == reqwest::StatusCode::BAD_REQUEST && body["error"]["field"] == "wait" && wait > 1 {
        return Ok(Fetched::WaitTooLong);
    }
    if code == reqwest::StatusCode::GONE {
        let earliest = body["error"]["earliest"].as_u64().unwrap_or(0);
        anyhow::bail!(
            "the changes after {} are past the retention; the earliest kept is {earliest} \
             (start again with --after {})",
            after.unwrap_or(0),
            earliest.saturating_sub(1)
        );
    }
    anyhow::ensure!(code.is_success(), "{base} answered {code}: {body}");
    let changes = body["changes"].as_array().cloned().unwrap_or_default();
    let next = body["next"].as_u64().or(after).unwrap_or(0);
    Ok(Fetched::Page(changes, next))
}

/// What a change is about, in a few words: a name, a subject, a product or a state.
fn label(data: &Value) -> String {
    let text = |k: &str| data[k].as_str().filter(|s| !s.is_empty());
    let person = [text("first_name"), text("last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let said = text("name")
        .map(str::to_string)
        .or_else(|| (!person.is_empty()).then_some(person))
        .or_else(|| text("subject").or(text("product")).map(str::to_string));
    let mut out = said.map(|s| format!(" {s:?}")).unwrap_or_default();
    for key in ["salesforce_id", "salesforce_opportunity_id"] {
        if let Some(id) = text(key) {
            out.push_str(&format!(" sf={id}"));
        }
    }
    if let Some(e) = text("last_error") {
        out.push_str(&format!(" error={e:?}"));
    }
    out
}

/// One change as one line: `#seq timestamp type org id=… "label" sf=…`.
pub(crate) fn line(entry: &Value) -> String {
    let data = &entry["data"];
    format!(
        "#{} {} {} {} id={}{}",
        entry["seq"],
        entry["timestamp"].as_str().unwrap_or_default(),
        entry["type"].as_str().unwrap_or_default(),
        entry["org_id"].as_str().unwrap_or_default(),
        data["id"],
        label(data)
    )
}

/// Prints the feed: what is there, or (`--follow`) everything as it lands.
pub async fn changes(args: &ChangesArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut after = args.after;
    let mut wait = if args.follow { WAIT_S } else { 0 };
    loop {
        let fetched = match fetch(&http, args, after, wait).await {
            Ok(f) => f,
            Err(e) if args.follow && e.downcast_ref::<reqwest::Error>().is_some() => {
                eprintln!("sfsync changes: {e:#}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (entries, next) = match fetched {
            Fetched::Page(entries, next) => (entries, next),
            Fetched::WaitTooLong => {
                wait /= 2;
                continue;
            }
        };
        for e in &entries {
            match args.json {
                true => println!("{e}"),
                false => println!("{}", line(e)),
            }
        }
        // Without --follow, the end is a read that goes no further.
        if !args.follow && Some(next) == after {
            return Ok(());
        }
        after = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_prints_as_one_line_naming_its_record() {
        let entry = serde_json::json!({"seq": 7, "org_id": "00D7F00000107XsUAI",
            "type": "contact.pushed", "timestamp": "2026-05-01T10:00:00Z",
            "data": {"id": 3, "first_name": "Ada", "last_name": "Lovelace",
                     "salesforce_id": "0031I0000081tbPQAQ"}});
        assert_eq!(
            line(&entry),
            "#7 2026-05-01T10:00:00Z contact.pushed 00D7F00000107XsUAI id=3 \"Ada Lovelace\" \
             sf=0031I0000081tbPQAQ"
        );
    }
}
