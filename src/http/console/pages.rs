//! The console's pages: each a template (`templates/console/`) filled from [`view`], and the
//! stylesheet.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::guard::FormRefused;
use super::session::{Flash, Signed};
use super::view::{self, ChangeRow, ConflictView, DeadLetter, ErrorRow, OrgCard};
use crate::domain::OrgId;
use crate::http::state::AppState;

/// The stylesheet, served by the binary.
const STYLESHEET: &str = include_str!("../../../templates/console/console.css");

/// `GET /login`.
#[derive(Template)]
#[template(path = "console/login.html")]
pub(super) struct LoginPage {
    /// The form's CSRF token.
    pub(super) csrf: String,
    /// Why the last attempt failed.
    pub(super) error: Option<String>,
}

/// `GET /`.
#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    csrf: String,
    /// Cards link to their org's page.
    detail: bool,
    flash: Option<Flash>,
    orgs: Vec<OrgCard>,
    errors: Vec<ErrorRow>,
}

/// `GET /orgs/{org}`.
#[derive(Template)]
#[template(path = "console/org.html")]
struct OrgPage {
    csrf: String,
    /// This is the org's page: its card links nowhere.
    detail: bool,
    flash: Option<Flash>,
    card: OrgCard,
    dead: Vec<DeadLetter>,
    conflicts: Vec<ConflictView>,
    changes: Vec<ChangeRow>,
    errors: Vec<ErrorRow>,
}

/// A page that only says something, with a way on.
#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    title: String,
    message: String,
    link: String,
    link_text: String,
}

/// Renders `page` with `status`; a template that fails to render is a 500 whose cause is
/// logged.
pub(super) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, message: &str, link: &str, text: &str) -> Response {
    let page = MessagePage {
        title: title.into(),
        message: message.into(),
        link: link.into(),
        link_text: text.into(),
    };
    html(status, &page)
}

impl IntoResponse for FormRefused {
    fn into_response(self) -> Response {
        match self {
            FormRefused::NoSession => Redirect::to("/login").into_response(),
            FormRefused::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response()
            }
            FormRefused::BadToken => forbidden(),
            FormRefused::Malformed => {
                (StatusCode::UNPROCESSABLE_ENTITY, "malformed form").into_response()
            }
        }
    }
}

/// 403 for a form without its session's CSRF token.
fn forbidden() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form did not carry its security token (or it expired with its session). Nothing was changed.",
        "/",
        "Back to the console",
    )
}

/// 404 for an org that is not configured here.
pub(super) fn unknown_org() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "No such org",
        "This sfsync has no connection configured for that org.",
        "/",
        "Back to the console",
    )
}

/// The OAuth callback's answer to a flow the console started.
pub(super) fn connected(org: &OrgId) -> Response {
    message(
        StatusCode::OK,
        "Connected",
        &format!("sfsync is connected to org {org}. Its setup is being checked."),
        &format!("/orgs/{org}"),
        "Back to the org",
    )
}

/// `GET /console.css`.
pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// `GET /`: every org at a glance and the recent errors.
pub(super) async fn overview(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
) -> Response {
    let page = OverviewPage {
        flash: state.console.sessions.take_flash(&signed),
        csrf: signed.csrf,
        detail: false,
        orgs: view::cards(&state),
        errors: view::errors(&state, None),
    };
    html(StatusCode::OK, &page)
}

/// `GET /orgs/{org}`: one org and what waits for a person.
pub(super) async fn org(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Path(org): Path<String>,
) -> Response {
    let Some(conn) = view::configured_org(&state, &org) else {
        return unknown_org();
    };
    let org = &conn.org_id;
    let page = OrgPage {
        flash: state.console.sessions.take_flash(&signed),
        csrf: signed.csrf,
        detail: true,
        card: view::card(&state, &conn),
        dead: view::dead_letters(&state, org),
        conflicts: view::conflicts(&state, org),
        changes: view::changes(&state, org),
        errors: view::errors(&state, Some(org)),
    };
    html(StatusCode::OK, &page)
}
