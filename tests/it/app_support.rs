//! The app side's test bench: a simulated org, the real service with one `[[app_webhooks]]`
//! entry pointing at an app on loopback that verifies and records each POST, and the app's own
//! copy of the records, built from nothing but the changes it was told about.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sfsync::config::{AppWebhook, Config};
use sfsync::domain::WebhookSecret;
use sfsync::simulator::SimulatorConfig;
use sfsync::tools::app_receiver::AppReceiver;

use crate::support::env::{SyncEnv, serve, start_with};
use crate::support::eventually;

/// The app's signing secret (the Standard Webhooks reference secret).
pub const APP_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// An org, the service, and the app it tells about each change.
pub struct AppEnv {
    pub env: SyncEnv,
    pub app: AppReceiver,
}

/// Lists the app at `url` as the one `[[app_webhooks]]` entry, with retries in milliseconds.
pub fn tell(c: &mut Config, url: &str) {
    c.changes.retry_base_ms = 5;
    c.changes.retry_cap_ms = 50;
    c.app_webhooks = vec![AppWebhook {
        url: url.to_string(),
        secret: WebhookSecret::parse(APP_SECRET).expect("secret"),
        types: Vec::new(),
    }];
}

/// The app on loopback, and an org and the service that tells it, `adjust`ed.
pub async fn start_app_env(sim: SimulatorConfig, adjust: impl FnOnce(&mut Config)) -> AppEnv {
    let app = AppReceiver::start(WebhookSecret::parse(APP_SECRET).expect("secret"))
        .await
        .expect("app");
    let env = start_with(sim, |c| {
        tell(c, &app.url);
        adjust(c);
    })
    .await;
    AppEnv { env, app }
}

impl AppEnv {
    /// The service stopped and started again on the same store, telling the same app.
    pub async fn restarted(self) -> Self {
        let AppEnv {
            env: SyncEnv { sim, org, app },
            app: receiver,
        } = self;
        let dir = app.stop().await;
        let app = serve(&sim, dir, |c| tell(c, &receiver.url), true, true).await;
        AppEnv {
            env: SyncEnv { sim, org, app },
            app: receiver,
        }
    }
}

/// The app's copy: per `(kind, id)`, the newest `data` it was told (by sequence number), minus
/// records it was told were removed and conflicts it was told were resolved.
#[derive(Debug, Default)]
pub struct AppCopy {
    newest: BTreeMap<(String, u64), (u64, String, Value)>,
}

impl AppCopy {
    pub fn apply(&mut self, entry: &Value) {
        let seq = entry["seq"].as_u64().expect("seq");
        let kind_what = entry["type"].as_str().expect("type");
        let (kind, what) = kind_what.split_once('.').expect("kind.what");
        let id = entry["data"]["id"].as_u64().expect("data.id");
        let slot =
            self.newest
                .entry((kind.to_string(), id))
                .or_insert((0, String::new(), Value::Null));
        if seq > slot.0 {
            *slot = (seq, what.to_string(), entry["data"].clone());
        }
    }

    /// The records of `kind` the app holds, by id.
    pub fn records(&self, kind: &str) -> BTreeMap<u64, Value> {
        self.newest
            .iter()
            .filter(|((k, _), (_, what, _))| k == kind && what != "removed" && what != "resolved")
            .map(|((_, id), (_, _, data))| (*id, data.clone()))
            .collect()
    }
}

/// Every item of a paged list of the local API, following `next`.
pub async fn listing(env: &SyncEnv, path: &str) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
            None => format!("{path}{sep}limit=1000"),
        };
        let (status, page) = env.api(reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200, "{url}: {page}");
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            out.insert(item["id"].as_u64().expect("id"), item);
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
}

/// What the app holds against what the service lists, kind by kind, as readable lines.
pub async fn differences(env: &SyncEnv, copy: &AppCopy) -> Vec<String> {
    let mut diffs = Vec::new();
    for (kind, path) in [
        ("company", "/companies"),
        ("contact", "/contacts"),
        ("company_product", "/company-products"),
        ("activity", "/activities"),
    ] {
        let listed = listing(env, path).await;
        let held = copy.records(kind);
        for (id, item) in &listed {
            match held.get(id) {
                None => diffs.push(format!("{kind} {id}: the app never heard of it")),
                Some(data) if data != item => diffs.push(format!(
                    "{kind} {id}: the app has {data}, the service {item}"
                )),
                Some(_) => {}
            }
        }
        for id in held.keys().filter(|id| !listed.contains_key(id)) {
            diffs.push(format!(
                "{kind} {id}: the app holds a record the service does not"
            ));
        }
    }
    let open: Vec<u64> = listing(env, "/conflicts").await.into_keys().collect();
    let held: Vec<u64> = copy.records("conflict").into_keys().collect();
    if open != held {
        diffs.push(format!(
            "conflicts: the app holds {held:?}, the service lists {open:?}"
        ));
    }
    diffs
}

/// The app webhook's line of `GET /api/v1/status`.
pub async fn hook_status(env: &SyncEnv) -> Value {
    let (_, status) = env.api(reqwest::Method::GET, "/status", None).await;
    status["app_webhooks"][0].clone()
}

/// Waits until the webhook has settled every committed change.
pub async fn caught_up(env: &SyncEnv, timeout: Duration) -> Value {
    eventually("the webhook to catch up", timeout, || async {
        let hook = hook_status(env).await;
        (hook["lag_entries"] == 0).then_some(hook)
    })
    .await
}
