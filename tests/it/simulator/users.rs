//! Users, their tokens and the login page.

use super::*;

/// The authorize URL of the web server flow (no PKCE) with this state.
fn authorize_url(org: &Org, state: &str) -> String {
    url::Url::parse_with_params(
        &format!("{}/services/oauth2/authorize", org.sim.instance_url()),
        &[
            ("response_type", "code"),
            ("client_id", org.creds.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("state", state),
        ],
    )
    .unwrap()
    .to_string()
}

/// The code of a redirect back to the client.
fn code_in(resp: &reqwest::Response) -> String {
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

impl Org {
    /// Posts a form to the token endpoint with the connected app's credentials.
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        form.push(("client_id", &self.creds.client_id));
        form.push(("client_secret", &self.creds.client_secret));
        let url = format!("{}/services/oauth2/token", self.sim.instance_url());
        sent(self.http.post(url).form(&form)).await
    }

    /// Refreshes with `token`.
    async fn refresh(&self, token: &str) -> (StatusCode, Value) {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .await
    }

    /// Signs `user` in through the login page and exchanges the code: the token response.
    async fn sign_in_as(&self, username: &str, password: &str) -> Value {
        let back = sign_in(&authorize_url(self, "s"), username, password).await;
        assert_eq!(back.status(), StatusCode::FOUND);
        let code = code_in(&back);
        let (status, token) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{token}");
        token
    }
}

#[tokio::test]
async fn each_user_signs_in_writes_as_themselves_and_loses_only_their_own_tokens() {
    let org = Org::start().await;
    let (_, creds) = sent(org.http.get(org.ctl("/credentials"))).await;
    let users = creds["users"].as_array().unwrap().clone();
    let integration = users.iter().find(|u| u["integration"] == true).unwrap();
    let rep = users.iter().find(|u| u["integration"] == false).unwrap();
    let rep_id = rep["id"].as_str().unwrap();

    let rep_token = org
        .sign_in_as(
            rep["username"].as_str().unwrap(),
            rep["password"].as_str().unwrap(),
        )
        .await;
    let rep_access = rep_token["access_token"].as_str().unwrap();
    let (_, created) = sent(
        org.http
            .post(format!("{}/sobjects/Account", org.base))
            .bearer_auth(rep_access)
            .json(&json!({"Name": "Rep's"})),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    org.patch(&format!("/sobjects/Account/{id}"), json!({"Phone": "1"}))
        .send()
        .await
        .unwrap();
    let (_, read) = sent(org.get(&format!(
        "/sobjects/Account/{id}?fields=OwnerId,CreatedById,LastModifiedById"
    )))
    .await;
    let revoked = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.sim.instance_url()))
        .form(&[("token", org.creds.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    let rep_refresh = rep_token["refresh_token"].as_str().unwrap();
    let (integration_after, error) = org.refresh(&org.creds.refresh_token).await;
    let (rep_after, _) = org.refresh(rep_refresh).await;
    let rep_still = org
        .http
        .get(format!("{}/limits", org.base))
        .bearer_auth(rep_access)
        .send()
        .await
        .unwrap();
    org.http
        .post(org.ctl(&format!("/users/{rep_id}/revoke")))
        .send()
        .await
        .unwrap();
    let (rep_revoked, _) = org.refresh(rep_refresh).await;

    assert_eq!(read["OwnerId"], rep_id);
    assert_eq!(read["CreatedById"], rep_id);
    assert_eq!(read["LastModifiedById"], integration["id"]);
    assert!(
        rep_token["id"].as_str().unwrap().ends_with(rep_id),
        "the identity URL names the user"
    );
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(integration_after, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
    assert_eq!(rep_after, StatusCode::OK);
    assert_eq!(rep_still.status(), StatusCode::OK);
    assert_eq!(rep_revoked, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_surface_writes_act_as_the_user_they_name() {
    let org = Org::start().await;
    let users = org.sim.users();
    let grace = users
        .iter()
        .find(|u| u.username.starts_with("grace"))
        .unwrap();
    let ada = users
        .iter()
        .find(|u| u.username.starts_with("ada"))
        .unwrap();

    let (_, created) = sent(
        org.http
            .post(org.ctl(&format!("/records/Lead?as={}", grace.username)))
            .json(&json!({"LastName": "L", "Company": "C"})),
    )
    .await;
    let id = sfsync::domain::SalesforceId::parse(created["id"].as_str().unwrap()).unwrap();
    org.sim.update(&id, json!({"Title": "CEO"})).unwrap();
    let unknown = org
        .http
        .post(org.ctl("/records/Lead?as=nobody@example.com"))
        .json(&json!({"LastName": "L", "Company": "C"}))
        .send()
        .await
        .unwrap();
    let added = org
        .sim
        .add_user(&UserSpec {
            username: "linus@sim.example.com".into(),
            first_name: Some("Linus".into()),
            last_name: "Torvalds".into(),
            email: None,
            password: Some("kernel-1991".into()),
        })
        .unwrap();
    let linus = org.sign_in_as("linus@sim.example.com", "kernel-1991").await;
    let (_, users_q) = org
        .query("SELECT Id, Username, Name FROM User ORDER BY Username")
        .await;

    let lead = org.sim.get(&id).unwrap();
    assert_eq!(lead["OwnerId"], grace.id.as_str());
    assert_eq!(lead["CreatedById"], grace.id.as_str());
    assert_eq!(
        lead["LastModifiedById"],
        ada.id.as_str(),
        "the first rep by default"
    );
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(linus["access_token"].is_string());
    assert_eq!(added.name, "Linus Torvalds");
    assert_eq!(users_q["totalSize"], 4);
    assert!(
        users_q["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["Username"] == "linus@sim.example.com" && u["Id"] == added.id.as_str())
    );
}

#[tokio::test]
async fn the_login_page_is_a_form_that_refuses_a_wrong_password_and_remembers_the_session() {
    let org = Org::start().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!(
        "{}&login_hint={}",
        authorize_url(&org, "st-9"),
        org.creds.username
    );

    let page = no_redirect.get(&url).send().await.unwrap();
    let content_type = page.headers()["content-type"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    let inputs = support::form_inputs(&html);
    let wrong = sign_in(&url, &org.creds.username, "not-the-password").await;
    let wrong_status = wrong.status();
    let wrong_html = wrong.text().await.unwrap();
    let right = sign_in(&url, &org.creds.username, &org.creds.password).await;
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    let sid = cookie.split(';').next().unwrap().to_string();
    let again = no_redirect
        .get(authorize_url(&org, "st-10"))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();
    let forced = no_redirect
        .get(format!("{}&prompt=login", authorize_url(&org, "st-11")))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();

    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains("method=\"post\""), "{html}");
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "username",
        "pw",
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(
        inputs.contains(&("username".into(), org.creds.username.clone())),
        "login_hint fills the username"
    );
    assert_eq!(wrong_status, StatusCode::OK);
    assert!(wrong_html.contains("Please check your username and password"));
    assert_eq!(right.status(), StatusCode::FOUND);
    let location = right.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=st-9"), "{location}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert_eq!(
        again.status(),
        StatusCode::FOUND,
        "a session skips the form"
    );
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .contains("state=st-10")
    );
    assert_eq!(
        forced.status(),
        StatusCode::OK,
        "prompt=login shows the form"
    );
}
