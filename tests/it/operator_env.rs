//! The built binary started as an operator starts it: a config file and the README's
//! environment, nothing injected.

use std::time::Duration;

use crate::processes::{Process, port_in, sfsync};
use crate::support::*;

const TOKEN_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("sfsync.toml");
    std::fs::write(
        &path,
        two_org_config_file(&dir.join("store"), &[SECRET], ""),
    )
    .expect("write config");
    path
}

#[tokio::test]
async fn serve_starts_with_the_readmes_environment_and_names_the_missing_connected_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    // The config comes from SFSYNC_CONFIG; the token key, API token and JSON logs from their
    // own variables; the connected app is left out.
    let mut service = Process::start(
        &["serve"],
        &[
            ("SFSYNC_CONFIG", config.display().to_string()),
            ("SFSYNC_TOKEN_KEY", TOKEN_KEY.into()),
            ("SFSYNC_API_TOKEN", TOKEN.into()),
            ("SFSYNC_LOG_JSON", "1".into()),
        ],
    );
    let port = port_in(&service.wait_for("listening"));
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    service.signal("-TERM");
    let (exit, _) = service.wait_exit(Duration::from_secs(10));
    let log = service.log.clone();
    assert!(exit.success(), "exit {exit:?}\n{}", log.join("\n"));

    for conn in status["connections"].as_array().expect("connections") {
        assert_eq!(conn["state"], "not_configured", "{status}");
        let reason = conn["reason"].as_str().expect("reason");
        assert!(reason.contains("SALESFORCE_CLIENT_ID"), "{reason}");
        assert!(!reason.contains("SFSYNC_TOKEN_KEY"), "{reason}");
    }
    // Logs are JSON lines, with one warning that names what is missing.
    for line in &log {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    let warnings: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("\"WARN\"") && l.contains("SALESFORCE_CLIENT_ID"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", log.join("\n"));
    assert!(
        !log.iter()
            .any(|l| l.contains(TOKEN_KEY) || l.contains(TOKEN)),
        "a secret reached the log"
    );
}

#[test]
fn an_unknown_key_variable_stops_serve_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let out = sfsync()
        .args(["serve", "--config"])
        .arg(&config)
        .env("SFSYNC_SERVER__LISTN", "127.0.0.1:0")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("SFSYNC_SERVER__LISTN"), "{stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("Caused by"),
        "{stderr}"
    );
}

#[test]
fn a_bad_boolean_for_log_json_is_refused_and_yes_is_accepted() {
    // A missing config file is the next thing serve reports once the variable is accepted.
    let stderr_with = |value: &str| {
        let out = sfsync()
            .args(["serve", "--config", "/nonexistent/sfsync.toml"])
            .env("SFSYNC_LOG_JSON", value)
            .output()
            .expect("run");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    for ok in ["1", "0", "yes", "no", "true", "false"] {
        let stderr = stderr_with(ok);
        assert!(
            stderr.contains("does not exist"),
            "SFSYNC_LOG_JSON={ok}: {stderr}"
        );
    }
    let stderr = stderr_with("perhaps");
    assert!(
        stderr.contains("perhaps") && !stderr.contains("does not exist"),
        "{stderr}"
    );
}
