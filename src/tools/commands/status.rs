//! `sfsync status`: prints a running service's `/api/v1/status`.

use anyhow::Context;

/// Fetches and prints the status document.
pub async fn status(args: &crate::cli::ServiceArgs) -> anyhow::Result<()> {
    let url = args.api("/status");
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.token)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let code = resp.status();
    let body: serde_json::Value = resp.json().await.context("reading the status document")?;
    anyhow::ensure!(code.is_success(), "{url} answered {code}: {body}");
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
