//! `sfsync import`: starts an import on a running service through its API
//! (`POST /api/v1/imports`) and follows its progress (`GET /api/v1/imports/{id}`) with a
//! progress bar until it is done; `sfsync import list-views` prints an object's list views
//! (`GET /api/v1/imports/list-views`).

use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{ImportArgs, ImportWhat};

/// How often progress is polled.
const POLL: Duration = Duration::from_millis(200);

/// The request body for what to import (`None`: nothing is imported).
fn body(args: &ImportArgs) -> Option<Value> {
    Some(match &args.what {
        ImportWhat::Accounts { filter } => {
            json!({"org": args.org, "kind": "accounts", "filter": filter})
        }
        ImportWhat::Contacts { account } => {
            json!({"org": args.org, "kind": "contacts", "account": account})
        }
        ImportWhat::Opportunities { account } => {
            json!({"org": args.org, "kind": "opportunities", "account": account})
        }
        ImportWhat::ListView { object, id } => {
            json!({"org": args.org, "kind": "list_view", "object": object, "list_view": id})
        }
        ImportWhat::ListViews { .. } => return None,
    })
}

/// Prints the list views of an object, one line each: id, importable or not, label.
async fn print_list_views(
    http: &reqwest::Client,
    base: &str,
    args: &ImportArgs,
    object: &str,
) -> anyhow::Result<()> {
    let views = answer(
        http.get(format!("{base}/api/v1/imports/list-views"))
            .query(&[("object", object), ("org_id", args.org.as_str())])
            .bearer_auth(&args.token)
            .send()
            .await
            .with_context(|| format!("reaching {base}"))?,
        "listing the list views",
    )
    .await?;
    for v in views["items"].as_array().into_iter().flatten() {
        let importable = if v["importable"] == true {
            ""
        } else {
            " (not importable)"
        };
        println!(
            "{}  {}{importable}",
            v["id"].as_str().unwrap_or_default(),
            v["label"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

async fn answer(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{what}: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        );
    }
    Ok(body)
}

/// Starts an import on a running service and shows its progress.
pub async fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("http client")?;
    let base = args.url.trim_end_matches('/');
    let Some(body) = body(args) else {
        let ImportWhat::ListViews { object } = &args.what else {
            return Ok(());
        };
        return print_list_views(&http, base, args, object).await;
    };
    let started = answer(
        http.post(format!("{base}/api/v1/imports"))
            .bearer_auth(&args.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("reaching {base}"))?,
        "starting the import",
    )
    .await?;
    let id = started["id"]
        .as_u64()
        .context("the answer has no import id")?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} import {msg} [{bar:40}] {pos}/{len} ({elapsed})")
            .context("progress template")?
            .progress_chars("=> "),
    );
    bar.set_message(id.to_string());
    let status = loop {
        let status = answer(
            http.get(format!("{base}/api/v1/imports/{id}"))
                .bearer_auth(&args.token)
                .send()
                .await
                .with_context(|| format!("reaching {base}"))?,
            "reading the import's progress",
        )
        .await?;
        bar.set_length(status["total"].as_u64().unwrap_or(0));
        bar.set_position(status["processed"].as_u64().unwrap_or(0));
        if status["state"] != "running" {
            break status;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish();
    if status["state"] != "done" {
        anyhow::bail!(
            "import {id} failed: {}",
            status["error"].as_str().unwrap_or("no details")
        );
    }
    println!(
        "import {id} done: {} rows, {} created, {} matched, {} unchanged, {} quarantined",
        status["processed"],
        status["created"],
        status["updated"],
        status["unchanged"],
        status["quarantined"]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_kind_and_its_argument() {
        let args = ImportArgs {
            url: "http://127.0.0.1:1".into(),
            token: "t".into(),
            org: "00D7F00000107Xs".into(),
            what: ImportWhat::Contacts {
                account: "001000000000001".into(),
            },
        };
        assert_eq!(
            body(&args),
            Some(
                json!({"org": "00D7F00000107Xs", "kind": "contacts", "account": "001000000000001"})
            )
        );
        let view = ImportArgs {
            what: ImportWhat::ListView {
                object: "Account".into(),
                id: "00B000000000001".into(),
            },
            ..args
        };
        assert_eq!(
            body(&view),
            Some(
                json!({"org": "00D7F00000107Xs", "kind": "list_view", "object": "Account",
                        "list_view": "00B000000000001"})
            )
        );
    }
}
