//! The binary's command line: config errors name the key, env overrides apply, replay works.

use std::process::Command;

use crate::support::*;

fn sfsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfsync"))
}

#[test]
fn serve_with_a_bad_config_exits_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text =
        two_org_config_file(&dir.path().join("store"), &[SECRET], "").replace(ORG, "00D7F0000010");
    std::fs::write(&path, text).expect("write");
    let out = sfsync()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connections[0].org_id"), "{stderr}");
}

#[test]
fn an_environment_override_is_validated_like_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        two_org_config_file(&dir.path().join("store"), &[SECRET], ""),
    )
    .expect("write");
    let out = sfsync()
        .args(["serve", "--config"])
        .arg(&path)
        .env("SFSYNC_STORE__DEDUPE_TTL_HOURS", "1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.dedupe_ttl_hours"), "{stderr}");
}

#[test]
fn the_example_config_in_deploy_is_valid() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sfsync.example.toml"),
    )
    .expect("example config");
    sfsync::config::Config::from_toml(&text).expect("deploy/sfsync.example.toml must load");
}

#[tokio::test]
async fn replay_posts_every_fixture_and_prints_one_line_each() {
    let app = spawn_app().await;
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["outbound", "events"] {
        let mut entries: Vec<_> = std::fs::read_dir(fixture_path(dir))
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        files.extend(entries);
    }
    let base = app.base.clone();
    let args = files.clone();
    let out = tokio::task::spawn_blocking(move || {
        sfsync()
            .args(["replay", "--url", &base, "--key", KEY, "--secret", SECRET])
            .args(&args)
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "{stdout}");
    assert!(
        lines.iter().all(|l| l.contains(" 200 accepted")),
        "{stdout}"
    );
    assert!(lines.iter().any(|l| l.contains("ack=true")), "{stdout}");
    assert!(app.store().pending_count() >= 7);
}

#[tokio::test]
async fn replay_reports_a_rejected_file_and_fails() {
    let app = spawn_app().await;
    let base = app.base.clone();
    let file = fixture_path("outbound/account.xml");
    let out = tokio::task::spawn_blocking(move || {
        sfsync()
            .args(["replay", "--url", &base, "--key", "wrong-key-000000000"])
            .arg(&file)
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" 401 rejected fault=\"unknown webhook key\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_simulator_command_prints_credentials_that_work() {
    use std::io::BufRead;
    let mut child = sfsync()
        .args(["simulator", "--listen", "127.0.0.1:0", "--seed", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read");
        line
    })
    .await
    .expect("join");
    let creds: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    for field in [
        "instance_url",
        "client_id",
        "client_secret",
        "refresh_token",
        "access_token",
    ] {
        assert!(
            creds[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {line}"
        );
    }
    let instance = creds["instance_url"].as_str().unwrap_or_default();
    assert!(
        instance.starts_with("http://127.0.0.1:") && !instance.ends_with(":0"),
        "{instance}"
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{instance}/services/data/v62.0/limits"))
        .bearer_auth(creds["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .expect("limits");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("sforce-limit-info"));
    let refreshed = client
        .post(format!("{instance}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                creds["refresh_token"].as_str().unwrap_or_default(),
            ),
            ("client_id", creds["client_id"].as_str().unwrap_or_default()),
            (
                "client_secret",
                creds["client_secret"].as_str().unwrap_or_default(),
            ),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(refreshed.status(), 200);
    child.kill().expect("kill");
    child.wait().expect("reap");
}

#[tokio::test]
async fn refresh_tokens_are_kept_sealed_in_the_store_and_survive_a_restart() {
    use secrecy::{ExposeSecret, SecretString};
    use sfsync::salesforce::{TokenKey, TokenStore, TokenVault};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TokenKey::from_base64(
        1,
        &SecretString::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
    )
    .expect("key");
    let vault = TokenVault::new(key);
    let token = SecretString::from("5Aep861TSESvWeug_refresh_token_value".to_string());
    {
        let store = sfsync::store::Store::open(dir.path()).expect("open");
        let tokens = sfsync::app::StoreTokens(store);
        let sealed = vault.seal(&org(), &token).expect("seal");
        tokens.save_sealed(&org(), &sealed).expect("save");
    }
    // Nothing in the store's files holds the token in the clear.
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            let needle = token.expose_secret().as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the token",
                path.display()
            );
        }
    }
    let store = sfsync::store::Store::open(dir.path()).expect("reopen");
    let tokens = sfsync::app::StoreTokens(store);
    let sealed = tokens.load_sealed(&org()).expect("load").expect("present");
    let opened = vault.open(&org(), &sealed).expect("open");
    assert_eq!(opened.expose_secret(), token.expose_secret());
    let other = sfsync::domain::OrgId::parse(OTHER_ORG).expect("org");
    assert!(vault.open(&other, &sealed).is_err());
    assert!(tokens.load_sealed(&other).expect("load").is_none());
}

#[tokio::test]
async fn the_status_command_prints_the_running_services_status() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_outbound(KEY, fixture("outbound/account.xml"))
            .await
            .status(),
        200
    );
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        sfsync()
            .args(["status", "--url", &base, "--token", TOKEN])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["inbox"]["received_total"], 1);
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        sfsync()
            .args(["status", "--url", &base, "--token", "wrong-token-000000000"])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test]
async fn the_demo_runs_end_to_end_and_reports_both_directions() {
    let out = tokio::task::spawn_blocking(|| {
        sfsync()
            .args(["demo"])
            .env_remove("RUST_LOG")
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each section under its own header, in order.
    let mut at = 0;
    for header in [
        "1. The org",
        "2. Connecting the org",
        "3. Import from Salesforce",
        "4. Changes in Salesforce",
        "what the local API now shows:",
        "5. Changes in the app",
        "what the org now holds:",
        "6. What it cost",
        "7. What the app received",
    ] {
        let found = stdout[at..]
            .find(header)
            .unwrap_or_else(|| panic!("{header:?} missing or out of order:\n{stdout}"));
        at += found + header.len();
    }
    // The org was connected through its login page, and its setup checked.
    assert!(stdout.contains("signed in as integration@"), "{stdout}");
    assert!(stdout.contains("nothing missing"), "{stdout}");
    // Every row was read back: the pulled ones from the local API, the pushed ones from the org.
    for expected in [
        "| company \"Acme Renewables\", industry Energy",
        "title VP Sales, phone +1 415 555 0100",
        ": CUSTOMER, stage closed_won, size 48000",
        "| contact Grace Hopper at company",
        "(lead)",
        "now the contact 003",
        "unlinked; its people now at",
        "kept, unlinked from Salesforce",
        "| Contact Mara Quinn, mara.quinn@acme-renewables.example, at Account",
        "Task \"Intro: Acme Renewables x sfsync\", Email / Completed, on Mara Quinn",
        "Event \"Discovery call\" with Mara Quinn",
        "Opportunity \"",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(
        !stdout.contains("(no such record)") && !stdout.contains("(empty)"),
        "{stdout}"
    );
    // The app heard every change, each signature verified, none refused.
    assert!(stdout.contains(", 0 refused"), "{stdout}");
    for heard in ["company.created ", "contact.converted ", "activity.pushed "] {
        assert!(stdout.contains(heard), "{heard:?} not in:\n{stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("in all ")),
        "{stdout}"
    );
    // The demo's logs stay off stdout, and quiet by default.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(" INFO "),
        "info logs by default"
    );
}
