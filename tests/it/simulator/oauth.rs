//! OAuth: the token response and its signature, refresh, PKCE, sessions and the daily limit.

use super::*;

#[tokio::test]
async fn the_token_response_has_the_documented_fields_and_a_verifiable_signature() {
    let org = Org::start().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", org.creds.refresh_token.as_str()),
        ("client_id", org.creds.client_id.as_str()),
        ("client_secret", org.creds.client_secret.as_str()),
    ];

    let (status, v) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    for key in [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(v[key].is_string(), "{key} in {v}");
    }
    assert!(
        v.get("refresh_token").is_none(),
        "a refresh does not rotate the refresh token"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], org.sim.instance_url());
    let expected = token_signature(
        &org.creds.client_secret,
        v["id"].as_str().unwrap(),
        v["issued_at"].as_str().unwrap(),
    );
    assert_eq!(v["signature"], expected);
    let resp = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(v["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn the_signature_function_reproduces_the_documented_vector() {
    let id = "https://login.salesforce.com/id/00Dxx0000001gPFEAY/005xx000001SwiUAAS";
    assert_eq!(
        token_signature("TESTSECRET123", id, "1278448832702"),
        "RFh95UvNhLc8buqYMXbtJsXjNgCdTT1giduU1Ytzzcw="
    );
}

#[tokio::test]
async fn an_unknown_refresh_token_answers_invalid_grant() {
    let org = Org::start().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "5AepNOPE"),
        ("client_id", org.creds.client_id.as_str()),
    ];

    let (status, v) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
}

#[tokio::test]
async fn the_web_server_flow_checks_the_pkce_verifier() {
    use base64::Engine;
    use sha2::Digest;
    let org = Org::start().await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghijk";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let authorize = |challenge: String| {
        let url = url::Url::parse_with_params(
            &format!("{}/services/oauth2/authorize", org.sim.instance_url()),
            &[
                ("response_type", "code"),
                ("client_id", org.creds.client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("state", "s-1"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let (username, password) = (org.creds.username.clone(), org.creds.password.clone());
        async move { sign_in(url.as_str(), &username, &password).await }
    };
    let exchange = |code: String, verifier: &'static str| {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("client_id", org.creds.client_id.clone()),
            ("client_secret", org.creds.client_secret.clone()),
            ("redirect_uri", "http://127.0.0.1:9/cb".to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form)
            .send()
    };
    let code_of = |resp: &reqwest::Response| -> (String, String) {
        let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<String, String> =
            location.query_pairs().into_owned().collect();
        (q["code"].clone(), q["state"].clone())
    };

    let resp = authorize(challenge.clone()).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (code, state) = code_of(&resp);
    assert_eq!(state, "s-1");
    let (status, v) = body(exchange(code, verifier).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["refresh_token"].is_string());

    let (code, _) = code_of(&authorize(challenge).await);
    let (status, v) = body(
        exchange(code, "the-wrong-verifier-0123456789-abcdefghijklmnopq")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");
}

#[tokio::test]
async fn a_bad_token_answers_invalid_session_id() {
    let org = Org::start().await;

    let resp = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth("00Dnope!ARnope")
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, v) = body(resp).await;
    assert_eq!(
        v,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}

#[tokio::test]
async fn the_session_expires_after_n_calls_and_a_refresh_brings_a_working_token() {
    let org = Org::start().await;
    org.sim.set_faults(Faults {
        session_expiry_after_calls: Some(2),
        ..Faults::default()
    });

    let statuses = [
        org.get("/limits").send().await.unwrap().status(),
        org.get("/limits").send().await.unwrap().status(),
        org.get("/limits").send().await.unwrap().status(),
    ];
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", org.creds.refresh_token.as_str()),
        ("client_id", org.creds.client_id.as_str()),
    ];
    let (_, token) = sent(
        org.http
            .post(format!("{}/services/oauth2/token", org.sim.instance_url()))
            .form(&form),
    )
    .await;
    let after = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::UNAUTHORIZED]
    );
    assert_eq!(after.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_daily_limit_answers_request_limit_exceeded_and_limits_reports_it() {
    let org = Org::start_with(SimulatorConfig {
        daily_api_limit: 3,
        ..SimulatorConfig::default()
    })
    .await;

    let (_, limits) = sent(org.get("/limits")).await;
    org.get("/limits").send().await.unwrap();
    let last_ok = org.get("/limits").send().await.unwrap();
    let refused = org.get("/limits").send().await.unwrap();

    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 3, "Remaining": 2})
    );
    assert_eq!(last_ok.headers()["Sforce-Limit-Info"], "api-usage=3/3");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (_, v) = body(refused).await;
    assert_eq!(
        v,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
}
