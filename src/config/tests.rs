//! The configuration's unit tests: the file, the environment overrides, the connected app.

use super::env::CONNECTED_APP_VARS;
use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
api_token = "0123456789abcdef0123"
[store]
path = "./data"
[[connections]]
org_id = "00D7F00000107Xs"
webhook_key = "a-long-random-key-1234"
webhook_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

#[test]
fn a_good_file_loads_and_normalizes_the_org_id() {
    let c = Config::from_toml(GOOD).expect("valid config");
    assert_eq!(c.connections[0].org_id.as_str(), "00D7F00000107XsUAI");
    assert_eq!(c.intake.max_body_bytes, 1024 * 1024);
}

fn error_of(text: &str) -> String {
    Config::from_toml(text)
        .map(|_| ())
        .expect_err("must fail")
        .to_string()
}

#[test]
fn a_bad_org_id_is_named_by_its_key() {
    let e = error_of(&GOOD.replace("00D7F00000107Xs", "001xx"));
    assert!(e.contains("connections[0].org_id"), "{e}");
}

#[test]
fn a_bad_secret_is_named_by_its_key_without_its_value() {
    let e = error_of(&GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!"));
    assert!(e.contains("connections[0].webhook_secrets[0]"), "{e}");
    assert!(!e.contains("!!"), "{e}");
}

#[test]
fn an_unknown_key_is_refused() {
    let e = error_of(&GOOD.replace("[store]", "[store]\nsize = 3"));
    assert!(e.contains("size"), "{e}");
}

#[test]
fn a_short_dedupe_window_is_refused() {
    let e = error_of(&GOOD.replace("[store]", "[store]\ndedupe_ttl_hours = 24"));
    assert!(e.contains("store.dedupe_ttl_hours"), "{e}");
}

#[test]
fn each_sides_share_of_the_api_budget_is_above_zero_and_at_most_one() {
    let with = |section: &str, share: &str| {
        GOOD.replace(
            "[store]",
            &format!("[{section}]\nlimit_share = {share}\n[store]"),
        )
    };
    for bad in ["0", "1.5", "-0.2"] {
        assert!(
            error_of(&with("sync", bad)).contains("sync.limit_share"),
            "{bad}"
        );
        assert!(
            error_of(&with("outbox", bad)).contains("outbox.limit_share"),
            "{bad}"
        );
    }
    let c = Config::from_toml(&with("sync", "0.5")).expect("a half share");
    assert_eq!(c.sync.limit_share, 0.5);
    assert_eq!(
        Config::from_toml(GOOD).expect("default").sync.limit_share,
        0.9
    );
}

#[test]
fn a_wrongly_typed_value_names_its_key() {
    let e = error_of(&GOOD.replace("\"127.0.0.1:8080\"", "8080"));
    assert!(e.contains("server.listen") || e.contains("listen"), "{e}");
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sfsync.toml");
    std::fs::write(&path, GOOD).expect("write");
    Config::load_with_env(
        &path,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

const TOKEN_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn variables_that_are_not_section_keys_leave_the_config_alone() {
    let c = load_env(&[
        ("SFSYNC_TOKEN_KEY", TOKEN_KEY),
        ("SFSYNC_API_TOKEN", "0123456789abcdef0123"),
        ("SFSYNC_CONFIG", "/etc/sfsync/sfsync.toml"),
        ("SFSYNC_LOG_JSON", "1"),
    ])
    .expect("the documented variables must not break loading");
    assert_eq!(c.server.listen.port(), 8080);
}

#[test]
fn a_section_key_variable_overrides_the_file() {
    let c = load_env(&[
        ("SFSYNC_SERVER__LISTEN", "0.0.0.0:9999"),
        ("SFSYNC_SERVER__REQUEST_TIMEOUT_S", "12"),
        ("SFSYNC_OUTBOX__MARKER_FIELD", "Other__c"),
    ])
    .expect("load");
    assert_eq!(c.server.listen.port(), 9999);
    assert_eq!(c.server.request_timeout_s, 12);
    assert_eq!(c.outbox.marker_field, "Other__c");
}

#[test]
fn booleans_from_the_environment_take_one_zero_yes_no_true_false() {
    for (raw, want) in [
        ("1", true),
        ("0", false),
        ("yes", true),
        ("no", false),
        ("true", true),
        ("FALSE", false),
    ] {
        let c = load_env(&[("SFSYNC_OUTBOX__UPSERT_ON_MARKER", raw)]).expect(raw);
        assert_eq!(c.outbox.upsert_on_marker, want, "{raw}");
    }
    let e = load_env(&[("SFSYNC_OUTBOX__UPSERT_ON_MARKER", "maybe")])
        .expect_err("not a boolean")
        .to_string();
    assert!(e.contains("SFSYNC_OUTBOX__UPSERT_ON_MARKER"), "{e}");
}

#[test]
fn an_unknown_key_variable_is_an_error_naming_the_variable() {
    for var in [
        "SFSYNC_SERVER__NO_SUCH_KEY",
        "SFSYNC_NOSECTION__LISTEN",
        "SFSYNC_SERVER__",
    ] {
        let e = load_env(&[(var, "x")]).expect_err(var).to_string();
        assert!(e.contains(var), "{var}: {e}");
    }
}

#[test]
fn a_badly_typed_variable_is_named() {
    let e = load_env(&[("SFSYNC_SERVER__REQUEST_TIMEOUT_S", "soon")])
        .expect_err("not a number")
        .to_string();
    assert!(e.contains("SFSYNC_SERVER__REQUEST_TIMEOUT_S"), "{e}");
}

#[test]
fn the_connected_app_is_read_from_its_four_variables() {
    let c = load_env(&[
        ("SALESFORCE_CLIENT_ID", "3MVG9-client"),
        ("SALESFORCE_CLIENT_SECRET", "s3cr3t-value"),
        (
            "SALESFORCE_REDIRECT_URI",
            "https://sync.example.com/oauth/salesforce/callback",
        ),
        ("SFSYNC_TOKEN_KEY", TOKEN_KEY),
    ])
    .expect("load");
    let (settings, _) = c.oauth().expect("configured");
    assert_eq!(settings.client_id, "3MVG9-client");
    assert_eq!(settings.login_url, "https://login.salesforce.com");
    assert!(!format!("{:?}", c.connected_app).contains("s3cr3t-value"));
}

#[test]
fn a_missing_or_malformed_connected_app_is_reported_by_variable_name() {
    let c = load_env(&[]).expect("the service starts without a connected app");
    let reason = c.oauth().expect_err("not configured").0;
    for var in CONNECTED_APP_VARS {
        assert!(reason.contains(var), "{reason}");
    }
    let c = load_env(&[
        ("SALESFORCE_CLIENT_ID", "id"),
        ("SALESFORCE_CLIENT_SECRET", "secret-value"),
        ("SALESFORCE_REDIRECT_URI", "not a url"),
        ("SFSYNC_TOKEN_KEY", "c2hvcnQ="),
    ])
    .expect("load");
    let reason = c.oauth().expect_err("malformed").0;
    assert!(
        reason.contains("SFSYNC_TOKEN_KEY is not base64 of 32 bytes"),
        "{reason}"
    );
    assert!(reason.contains("SALESFORCE_REDIRECT_URI"), "{reason}");
    assert!(
        !reason.contains("secret-value") && !reason.contains("c2hvcnQ="),
        "{reason}"
    );
}
