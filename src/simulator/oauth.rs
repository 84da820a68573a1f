//! OAuth as the org's login server answers it: the authorize endpoint with its login page (a
//! browser session skips it), the token endpoint (authorization code with PKCE, refresh token),
//! revoke, and UserInfo. Every token belongs to the user who signed in.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use quick_xml::escape::escape;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::CodeGrant;
use super::guard::bearer;
use super::state::Shared;
use super::users::SimUser;
use crate::domain::SalesforceId;

type Shr = State<Arc<Shared>>;
type Params = HashMap<String, String>;

/// The token response `signature`: base64(HMAC-SHA256(client_secret, id + issued_at))
///.
pub fn token_signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes keys of any length"));
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An OAuth error answer: 400 `{"error","error_description"}`.
#[derive(Debug, Clone, Copy)]
struct OAuthError(&'static str, &'static str);

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.0, "error_description": self.1});
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn redirect(target: &url::Url) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// An authorize request the org refuses: a bad `redirect_uri` on the page, anything else sent
/// back to the client.
enum Refused {
    BadRedirect,
    Back(Box<url::Url>),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::BadRedirect => {
                let text =
                    "error=redirect_uri_mismatch&error_description=redirect_uri must be absolute";
                (StatusCode::BAD_REQUEST, text).into_response()
            }
            Refused::Back(target) => redirect(&target),
        }
    }
}

/// The redirect target of an authorize request, or why it is refused.
fn authorize_target(shared: &Shared, params: &Params) -> Result<url::Url, Refused> {
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return Err(Refused::BadRedirect);
    };
    let refusal = if params.get("client_id") != Some(&shared.credentials.client_id) {
        Some(("invalid_client_id", "client identifier invalid"))
    } else if params.get("response_type").map(String::as_str) != Some("code") {
        Some(("unsupported_response_type", "response type not supported"))
    } else {
        None
    };
    if let Some((error, description)) = refusal {
        target
            .query_pairs_mut()
            .append_pair("error", error)
            .append_pair("error_description", description);
        if let Some(state) = params.get("state") {
            target.query_pairs_mut().append_pair("state", state);
        }
        return Err(Refused::Back(Box::new(target)));
    }
    Ok(target)
}

/// Issues a code for `user` and sends the browser back to the client.
fn approve(
    shared: &Shared,
    params: &Params,
    mut target: url::Url,
    user: &SalesforceId,
) -> Response {
    let code = {
        let mut st = shared.lock();
        let code = format!("aPrx{}==", st.token(60));
        let grant = CodeGrant {
            redirect_uri: params.get("redirect_uri").cloned().unwrap_or_default(),
            code_challenge: params.get("code_challenge").cloned(),
            user: user.clone(),
        };
        st.auth.add_code(code.clone(), grant);
        code
    };
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = params.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    redirect(&target)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The login page: username and password, the authorize parameters carried along.
fn login_page(params: &Params, error: Option<&str>) -> Response {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "username" | "pw" | "password" | "Login"))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k.as_str()),
                escape(v.as_str())
            )
        })
        .collect();
    let hint = params
        .get("login_hint")
        .or_else(|| params.get("username"))
        .map_or(String::new(), |h| escape(h.as_str()).into_owned());
    let error = error.map_or(String::new(), |e| {
        format!(
            "<div id=\"error\" class=\"loginError\" role=\"alert\">{}</div>\n",
            escape(e)
        )
    });
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Login | Salesforce</title></head>\n\
         <body>\n<form id=\"login_form\" name=\"login\" method=\"post\" action=\"/services/oauth2/authorize\">\n\
         {error}<label for=\"username\">Username</label>\n\
         <input type=\"email\" id=\"username\" name=\"username\" value=\"{hint}\">\n\
         <label for=\"password\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"pw\">\n\
         {hidden}<input type=\"submit\" id=\"Login\" name=\"Login\" value=\"Log In\">\n\
         </form>\n</body></html>\n"
    ))
    .into_response()
}

/// `GET /services/oauth2/authorize`: the login page, or straight back to the client with a code
/// when the browser already has a session (unless `prompt=login`).
pub(crate) async fn authorize(
    State(shared): Shr,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let target = match authorize_target(&shared, &params) {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    let forced = params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|x| x == "login"));
    let signed_in = cookie(&headers, "sid").and_then(|sid| shared.lock().auth.session_user(&sid));
    match signed_in {
        Some(user) if !forced => approve(&shared, &params, target, &user),
        _ => login_page(&params, None),
    }
}

/// `POST /services/oauth2/authorize`: the login form. Right credentials start a browser session
/// and send the browser back to the client with a code; wrong ones show the page again.
pub(crate) async fn sign_in(State(shared): Shr, Form(params): Form<Params>) -> Response {
    let target = match authorize_target(&shared, &params) {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    let username = params.get("username").map_or("", String::as_str);
    let password = params
        .get("pw")
        .or_else(|| params.get("password"))
        .map_or("", String::as_str);
    let user = shared
        .lock()
        .users
        .check(username, password)
        .map(|u| u.id.clone());
    let Some(user) = user else {
        let message = "Please check your username and password. If you still can't log in, \
                       contact your Salesforce administrator.";
        return login_page(&params, Some(message));
    };
    let sid = {
        let mut st = shared.lock();
        let sid = format!("{}!{}", shared.org_id.as_15(), st.token(40));
        st.auth.add_session(sid.clone(), user.clone());
        sid
    };
    let mut response = approve(&shared, &params, target, &user);
    let cookie = format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The PKCE check of a code exchange.
fn check_verifier(grant: &CodeGrant, verifier: Option<&str>) -> Result<(), OAuthError> {
    let Some(challenge) = &grant.code_challenge else {
        return Ok(());
    };
    let Some(verifier) = verifier else {
        return Err(OAuthError("invalid_grant", "invalid code verifier"));
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed == *challenge {
        Ok(())
    } else {
        Err(OAuthError("invalid_request", "invalid code verifier"))
    }
}

/// The user and new refresh token (when one is issued) of a token request, or its refusal.
fn grant(shared: &Shared, form: &Params) -> Result<(SalesforceId, String), OAuthError> {
    let get = |k: &str| form.get(k).map(String::as_str);
    let mut st = shared.lock();
    match get("grant_type") {
        Some("authorization_code") => {
            let Some(grant) = get("code").and_then(|c| st.auth.take_code(c)) else {
                return Err(OAuthError("invalid_grant", "invalid authorization code"));
            };
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                let description = "redirect_uri must match configuration";
                return Err(OAuthError("redirect_uri_mismatch", description));
            }
            check_verifier(&grant, get("code_verifier"))?;
            let refresh = st.new_refresh_token(&grant.user);
            Ok((grant.user, refresh))
        }
        Some("refresh_token") => {
            let refresh = get("refresh_token").unwrap_or_default();
            match st.auth.refresh_user(refresh) {
                Some(user) => Ok((user, refresh.to_string())),
                None => Err(OAuthError("invalid_grant", "expired access/refresh token")),
            }
        }
        _ => Err(OAuthError(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    }
}

/// `POST /services/oauth2/token`.
pub(crate) async fn token(State(shared): Shr, Form(form): Form<Params>) -> Response {
    shared.lock().calls.token_requests += 1;
    let creds = &shared.credentials;
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("client_id") != Some(creds.client_id.as_str()) {
        return OAuthError("invalid_client_id", "client identifier invalid").into_response();
    }
    if get("client_secret").is_some_and(|s| s != creds.client_secret) {
        return OAuthError("invalid_client", "invalid client credentials").into_response();
    }
    let (user, refresh) = match grant(&shared, &form) {
        Ok(g) => g,
        Err(refused) => return refused.into_response(),
    };
    let access = shared
        .lock()
        .new_access_token(&shared.org_id, &user, Some(refresh.clone()));
    let id = format!(
        "{}/id/{}/{}",
        shared.instance_url,
        shared.org_id.as_str(),
        user
    );
    let issued_at = Utc::now().timestamp_millis().to_string();
    let mut body = json!({
        "access_token": access,
        "signature": token_signature(&creds.client_secret, &id, &issued_at),
        "scope": "refresh_token api full",
        "instance_url": shared.instance_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if get("grant_type") == Some("authorization_code") {
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

fn revoke_token(shared: &Shared, token: Option<&String>) -> Response {
    let Some(token) = token else {
        return OAuthError("unsupported_token_type", "missing token").into_response();
    };
    if shared.lock().auth.revoke(token) {
        StatusCode::OK.into_response()
    } else {
        OAuthError("invalid_token", "invalid token").into_response()
    }
}

/// `POST /services/oauth2/revoke` (`token=` in the form).
pub(crate) async fn revoke(State(shared): Shr, Form(form): Form<Params>) -> Response {
    revoke_token(&shared, form.get("token"))
}

/// `GET /services/oauth2/revoke?token=…`.
pub(crate) async fn revoke_get(State(shared): Shr, Query(params): Query<Params>) -> Response {
    revoke_token(&shared, params.get("token"))
}

fn userinfo_body(shared: &Shared, user: &SimUser, updated_at: String) -> Value {
    let base = &shared.instance_url;
    let org = shared.org_id.as_str();
    let (given, family) = user
        .name
        .split_once(' ')
        .unwrap_or(("", user.name.as_str()));
    json!({
        "sub": format!("{base}/id/{org}/{}", user.id),
        "user_id": user.id.as_str(),
        "organization_id": org,
        "preferred_username": user.username,
        "nickname": user.username.split('@').next().unwrap_or_default(),
        "name": user.name,
        "email": user.email,
        "email_verified": true,
        "given_name": given,
        "family_name": family,
        "zoneinfo": "GMT",
        "photos": {
            "picture": format!("{base}/profilephoto/005/F"),
            "thumbnail": format!("{base}/profilephoto/005/T"),
        },
        "profile": format!("{base}/{}", user.id),
        "picture": format!("{base}/profilephoto/005/F"),
        "address": {},
        "is_salesforce_integration_user": false,
        "urls": {
            "enterprise": format!("{base}/services/Soap/c/{{version}}/{org}"),
            "metadata": format!("{base}/services/Soap/m/{{version}}/{org}"),
            "partner": format!("{base}/services/Soap/u/{{version}}/{org}"),
            "rest": format!("{base}/services/data/v{{version}}/"),
            "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
            "search": format!("{base}/services/data/v{{version}}/search/"),
            "query": format!("{base}/services/data/v{{version}}/query/"),
            "recent": format!("{base}/services/data/v{{version}}/recent/"),
            "tooling_soap": format!("{base}/services/Soap/T/{{version}}/{org}"),
            "tooling_rest": format!("{base}/services/data/v{{version}}/tooling/"),
            "profile": format!("{base}/{}", user.id),
            "feeds": format!("{base}/services/data/v{{version}}/chatter/feeds"),
            "groups": format!("{base}/services/data/v{{version}}/chatter/groups"),
            "users": format!("{base}/services/data/v{{version}}/chatter/users"),
            "feed_items": format!("{base}/services/data/v{{version}}/chatter/feed-items"),
            "feed_elements": format!("{base}/services/data/v{{version}}/chatter/feed-elements"),
            "custom_domain": base,
        },
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": updated_at,
        "is_app_installed": true,
    })
}

/// `GET /services/oauth2/userinfo` (bearer token): the token's user. A missing or dead token is
/// refused with 403 `Missing_OAuth_Token` / `Bad_OAuth_Token`.
pub(crate) async fn userinfo(State(shared): Shr, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return (StatusCode::FORBIDDEN, "Missing_OAuth_Token").into_response();
    };
    let found = {
        let mut st = shared.lock();
        let user = st.auth.access(&token).map(|g| g.user.clone());
        user.and_then(|id| {
            let updated = st
                .org
                .find(&id)
                .and_then(|(_, r)| r.get("LastModifiedDate")?.as_str().map(String::from));
            Some((st.users.by_id(&id)?.clone(), updated))
        })
    };
    let Some((user, updated)) = found else {
        return (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    };
    let updated_at = updated
        .as_deref()
        .and_then(super::value::parse_datetime)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Json(userinfo_body(&shared, &user, updated_at)).into_response()
}
