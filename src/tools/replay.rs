//! `sfsync replay`: posts fixture files to a running service as Salesforce would. `.xml` files go
//! to the Outbound Message endpoint; `.json` files are signed (Standard Webhooks) and go to the
//! events endpoint. The `webhook-id` is derived from the file's content, so replaying a file twice
//! is a sender retry and is deduplicated.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::cli::ReplayArgs;
use crate::http::webhook::signature;

/// The `webhook-id` used for a body: `msg_` and 24 hex digits of its SHA-256.
pub fn webhook_id_for(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// Builds the request for one file.
fn request(
    client: &reqwest::Client,
    args: &ReplayArgs,
    path: &Path,
    body: Vec<u8>,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let base = args.url.trim_end_matches('/');
    match path.extension().and_then(|e| e.to_str()) {
        Some("xml") => Ok(client
            .post(format!("{base}/webhooks/salesforce/outbound/{}", args.key))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(body)),
        Some("json") => {
            let secret = args
                .secret
                .as_deref()
                .context("--secret is needed to sign .json files")?;
            let key = crate::domain::WebhookSecret::parse(secret).context("--secret")?;
            let id = webhook_id_for(&body);
            let ts = chrono::Utc::now().timestamp();
            let sig = signature::sign(key.key(), &id, ts, &body);
            Ok(client
                .post(format!("{base}/webhooks/salesforce/events/{}", args.key))
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body))
        }
        _ => anyhow::bail!(
            "{}: only .xml and .json files can be replayed",
            path.display()
        ),
    }
}

/// Posts every file in order, prints `<file> <status> <accepted|rejected> <detail>` for each,
/// and returns how many were not accepted.
pub async fn run(args: &ReplayArgs) -> anyhow::Result<usize> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the http client")?;
    let mut failed = 0;
    for path in &args.files {
        let line = match replay_one(&client, args, path).await {
            Ok((status, detail)) if status.is_success() => {
                format!("{} {} accepted {detail}", path.display(), status.as_u16())
            }
            Ok((status, detail)) => {
                failed += 1;
                format!("{} {} rejected {detail}", path.display(), status.as_u16())
            }
            Err(e) => {
                failed += 1;
                format!("{} error {e:#}", path.display())
            }
        };
        println!("{line}");
    }
    Ok(failed)
}

async fn replay_one(
    client: &reqwest::Client,
    args: &ReplayArgs,
    path: &Path,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let resp = request(client, args, path, body)?
        .send()
        .await
        .context("sending")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, summarize(&text)))
}

/// One short line from a response body: the Ack, the fault string or the JSON.
fn summarize(body: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].to_string())
    };
    if let Some(ack) = between("<Ack>", "</Ack>") {
        return format!("ack={ack}");
    }
    if let Some(fault) = between("<faultstring>", "</faultstring>") {
        return format!("fault=\"{fault}\"");
    }
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}
