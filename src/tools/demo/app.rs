//! Section 7: the app's side. A tiny app listens on loopback (one route that verifies each POST
//! with the Standard Webhooks verifier and records it), configured as the service's
//! `[[app_webhooks]]` entry from the start; at the end the demo prints what it heard: the
//! changes by type, that every signature verified, and the last few.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;

use super::{Service, until};
use crate::config::AppWebhook;
use crate::domain::WebhookSecret;
use crate::tools::app_receiver::AppReceiver;
use crate::tools::commands::changes::line;

/// How many of the last changes are printed.
const LAST: usize = 6;

/// Starts the app with a fresh secret, and the `[[app_webhooks]]` entry that points at it.
pub(crate) async fn start() -> anyhow::Result<(AppReceiver, AppWebhook)> {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key);
    let secret = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode(key)))?;
    let app = AppReceiver::start(secret.clone()).await?;
    let hook = AppWebhook {
        url: app.url.clone(),
        secret,
        types: Vec::new(),
    };
    Ok((app, hook))
}

/// Waits until the app has heard every change, then prints what it heard.
pub(crate) async fn report(svc: &Service) -> anyhow::Result<()> {
    let store = svc.state.store.clone();
    until("the app to hear every change", || async {
        let status = svc.api(reqwest::Method::GET, "/status", None).await?;
        let caught_up = status["app_webhooks"][0]["lag_entries"] == 0;
        Ok(caught_up.then_some(()))
    })
    .await?;
    let heard = svc.app.received();
    let (posts, rejected) = svc.app.posts_and_rejected();
    println!(
        "\n7. What the app received: each local change POSTed to {}, signed",
        svc.app.url
    );
    println!(
        "   {} changes in {posts} POSTs (log: {} entries); {} signatures verified (Standard \
         Webhooks, HMAC-SHA256), {rejected} refused",
        heard.len(),
        store.committed_changes(),
        posts - rejected,
    );
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for r in &heard {
        *by_type.entry(r.entry.kind.to_string()).or_default() += 1;
    }
    let counts: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
    for chunk in counts.chunks(4) {
        println!("   {}", chunk.join(", "));
    }
    println!("   the last {LAST}:");
    for r in heard.iter().rev().take(LAST).rev() {
        println!("     {}", line(&serde_json::to_value(&r.entry)?));
    }
    Ok(())
}
