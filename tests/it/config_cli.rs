//! The binary's command line: config errors name the key, env overrides apply, replay works.

use std::process::Command;

use crate::helpers::*;

fn sfsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfsync"))
}

#[test]
fn serve_with_a_bad_config_exits_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = config_toml(&dir.path().join("store"), &[SECRET]).replace(ORG, "00D7F0000010");
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
    std::fs::write(&path, config_toml(&dir.path().join("store"), &[SECRET])).expect("write");
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
