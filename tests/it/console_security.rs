//! The console's security rules, over plain HTTP against the real service: no page (and nothing
//! about an org) without a session, the session cookie's flags, CSRF on every form, sign-out
//! ends the session, and a wrong token shows the form again.

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;
use sfsync::store::{OutboxState, TxAbort};

use crate::support::{ORG, OTHER_ORG, TOKEN, TestApp, form_inputs, spawn_app, spawn_app_from};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` of a `Set-Cookie` named `name`, and the whole header.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_string(),
                v.to_string(),
            )
        })
}

pub(crate) fn csrf_of(html: &str) -> String {
    form_inputs(html)
        .into_iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, v)| v)
        .expect("a csrf field")
}

/// The login form's cookie (`name=value`) and CSRF token.
async fn login_form(app: &TestApp) -> (String, String) {
    let form = http()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .expect("form");
    let (login_cookie, _) = set_cookie(&form, "sfsync_login").expect("login cookie");
    (login_cookie, csrf_of(&form.text().await.expect("html")))
}

/// Signs in as a browser does: the form, then the token with the form's CSRF token and cookie.
/// Returns the session cookie (`name=value`) and the whole `Set-Cookie` header.
pub(crate) async fn sign_in(app: &TestApp) -> (String, String) {
    let (login_cookie, csrf) = login_form(app).await;
    let resp = http()
        .post(format!("{}/login", app.base))
        .header("cookie", login_cookie)
        .form(&[("token", TOKEN), ("csrf", &csrf)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/");
    set_cookie(&resp, "sfsync_console").expect("session cookie")
}

pub(crate) async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = http().get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("get")
}

pub(crate) async fn post(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
}

/// A contact whose outbox entry is a dead letter; returns the entry id.
async fn dead_letter(app: &TestApp) -> u64 {
    let created: serde_json::Value = app
        .client
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"org_id": ORG, "last_name": "Dead"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["outbox_id"].as_u64().expect("outbox id");
    let org = crate::support::org();
    app.store()
        .transact(|tx| {
            if let Some(mut e) = tx.outbox_entry(&org, id)? {
                e.state = OutboxState::Dead;
                e.last_error = Some("FIELD_CUSTOM_VALIDATION_EXCEPTION: no".into());
                tx.put_outbox_entry(&e)?;
            }
            Ok::<_, TxAbort<()>>(())
        })
        .expect("dead");
    id
}

fn is_dead(app: &TestApp, id: u64) -> bool {
    let entry = app.store().outbox_entry(&crate::support::org(), id);
    entry
        .expect("read")
        .is_some_and(|e| e.state == OutboxState::Dead)
}

#[tokio::test]
async fn without_a_session_every_console_page_sends_to_login_and_shows_no_org() {
    let app = spawn_app().await;
    let id = dead_letter(&app).await;

    for path in ["/", &format!("/orgs/{ORG}"), &format!("/orgs/{OTHER_ORG}")] {
        let resp = get(&app, path, None).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()[LOCATION], "/login", "{path}");
        let body = resp.text().await.expect("body");
        assert!(
            !body.contains(&ORG[..15]) && !body.contains(&OTHER_ORG[..15]),
            "{path}: {body}"
        );
    }
    let forged = get(&app, "/", Some("sfsync_console=made-up")).await;
    assert_eq!(forged.headers()[LOCATION], "/login");
    let retry = format!("/orgs/{ORG}/dead-letters/{id}/retry");
    let resp = post(&app, &retry, "sfsync_console=made-up", &[("csrf", "x")]).await;
    assert_eq!(resp.headers()[LOCATION], "/login");
    assert!(is_dead(&app, id), "nothing changed without a session");
    let login = get(&app, "/login", None).await.text().await.expect("html");
    assert!(!login.contains(&ORG[..15]) && !login.contains(&OTHER_ORG[..15]));
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_expiring_and_secure_behind_a_tls_proxy() {
    let app = spawn_app().await;
    let (_, header) = sign_in(&app).await;
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(header.contains("Path=/;"), "{header}");
    assert!(header.contains("Max-Age=28800"), "{header}");
    assert!(
        !header.contains("Secure"),
        "plain HTTP: no Secure flag: {header}"
    );

    let proxied = spawn_app_from(&[crate::support::SECRET], |c| {
        c.console.behind_tls_proxy = true;
        c.console.session_ttl_s = 600;
    })
    .await;
    let (_, header) = sign_in(&proxied).await;
    assert!(header.contains("; Secure"), "{header}");
    assert!(header.contains("Max-Age=600"), "{header}");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_with_a_wrong_one_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let id = dead_letter(&app).await;
    let (cookie, _) = sign_in(&app).await;
    let page = get(&app, &format!("/orgs/{ORG}"), Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{html}");
    let csrf = csrf_of(&html);
    let retry = format!("/orgs/{ORG}/dead-letters/{id}/retry");

    let missing = post(&app, &retry, &cookie, &[]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = post(&app, &retry, &cookie, &[("csrf", "not-the-token")]).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let (other_cookie, _) = sign_in(&app).await;
    let other = post(&app, &retry, &other_cookie, &[("csrf", &csrf)]).await;
    assert_eq!(
        other.status(),
        StatusCode::FORBIDDEN,
        "a token is its session's only"
    );
    assert!(is_dead(&app, id));

    let right = post(&app, &retry, &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert!(!is_dead(&app, id), "the same use case as the API ran");
    let after = get(&app, &format!("/orgs/{ORG}"), Some(&cookie)).await;
    let after = after.text().await.expect("html");
    assert!(
        after.contains(&format!("Dead letter {id} goes out again now")),
        "{after}"
    );

    let login = post(&app, "/login", "", &[("token", TOKEN), ("csrf", "x")]).await;
    assert_eq!(
        login.status(),
        StatusCode::FORBIDDEN,
        "the login form is checked too"
    );
    assert!(set_cookie(&login, "sfsync_console").is_none());
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app).await;
    let page = get(&app, "/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.expect("html"));

    let out = post(&app, "/logout", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[LOCATION], "/login");
    let (cleared, header) = set_cookie(&out, "sfsync_console").expect("cookie removed");
    assert_eq!(cleared, "sfsync_console=");
    assert!(header.contains("Max-Age=0"), "{header}");

    let again = get(&app, "/", Some(&cookie)).await;
    assert_eq!(
        again.status(),
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );
    assert_eq!(again.headers()[LOCATION], "/login");
}

#[tokio::test]
async fn a_wrong_token_shows_the_form_again_with_an_error_and_no_session() {
    let app = spawn_app().await;
    let (login_cookie, csrf) = login_form(&app).await;
    let started = std::time::Instant::now();

    let resp = post(
        &app,
        "/login",
        &login_cookie,
        &[("token", "wrong-token-0123456"), ("csrf", &csrf)],
    )
    .await;

    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "a wrong token waits"
    );
    assert!(set_cookie(&resp, "sfsync_console").is_none());
    let html = resp.text().await.expect("html");
    assert!(html.contains("That is not the API token"), "{html}");
    assert!(html.contains("name=\"token\""), "{html}");
}

#[tokio::test]
async fn console_pages_forbid_framing_and_scripts_and_are_not_cached() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app).await;
    let page = get(&app, "/", Some(&cookie)).await;
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    let html = page.text().await.expect("html");
    assert!(
        html.contains(&ORG[..15]) && !html.contains("<script"),
        "{html}"
    );
}

#[tokio::test]
async fn a_console_turned_off_answers_not_found() {
    let app = spawn_app_from(&[crate::support::SECRET], |c| c.console.enabled = false).await;
    assert_eq!(get(&app, "/", None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/login", None).await.status(),
        StatusCode::NOT_FOUND
    );
}
