//! Crash safety: the real binary under concurrent load is killed with SIGKILL; after a restart on
//! the same store, every notification that was acknowledged is there.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfsync::domain::{ObjectType, SalesforceId};
use sfsync::store::{DedupeSource, Store};

use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn start(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sfsync"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sfsync")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("sfsync did not become healthy");
}

fn message(first: u64, count: u64) -> String {
    let notes: Vec<_> = (first..first + count)
        .map(|n| {
            (
                SalesforceId::mint("04l", "K", n),
                SalesforceId::mint("003", "K", n),
            )
        })
        .collect();
    sfsync::tools::bench::outbound_message_xml(&org(), &notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_notification_survives_a_sigkill_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let port = free_port();
    let config_path = dir.path().join("sfsync.toml");
    let text = two_org_config_file(&store_dir, &[SECRET], "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&config_path, text).expect("write config");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut child = start(&config_path);
    wait_healthy(&client, &base).await;

    // 16 senders, each posting 5-notification messages with unique ids until the server dies.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..16u64 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for m in 0..10_000u64 {
                let first = (s * 10_000 + m) * 5;
                let resp = client
                    .post(format!("{base}/webhooks/salesforce/outbound/{KEY}"))
                    .header("content-type", "text/xml; charset=utf-8")
                    .body(message(first, 5))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(t) if t.contains("<Ack>true</Ack>") => {
                            acked.lock().expect("lock").push(first)
                        }
                        _ => break,
                    },
                    _ => break,
                }
            }
        }));
    }
    // Kill mid-load, once a good number of acks are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    for s in senders {
        s.await.expect("sender");
    }
    let acked: BTreeSet<u64> = acked.lock().expect("lock").iter().copied().collect();
    assert!(
        acked.len() >= 300,
        "only {} acks before the kill",
        acked.len()
    );

    // Restart on the same store: the service comes back and answers.
    let mut child = start(&config_path);
    wait_healthy(&client, &base).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let store = Store::open(&store_dir).expect("reopen after kill");
    let mut missing = Vec::new();
    for first in &acked {
        for n in *first..first + 5 {
            let nid = SalesforceId::mint("04l", "K", n);
            let rid = SalesforceId::mint("003", "K", n);
            let seen = store
                .has_seen(&org(), DedupeSource::OutboundNotification, nid.as_str())
                .expect("read");
            let pending = store
                .pending_record(&org(), ObjectType::Contact, &rid)
                .expect("read")
                .is_some();
            if !(seen && pending) {
                missing.push(n);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged notifications lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
