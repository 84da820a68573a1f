//! What an operator does from the console, each a form post checked against the session's CSRF
//! token and each calling the use case the local API calls: retry or discard a dead letter,
//! resolve a conflict, check the setup again, connect the org. Each answers with a redirect
//! back to the org's page, where a note says what happened.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::Checked;
use super::pages;
use super::session::Signed;
use super::view;
use crate::config::Connection;
use crate::domain::SalesforceId;
use crate::http::oauth::{self, Starter};
use crate::http::state::AppState;
use crate::sync::local::LocalError;
use crate::sync::local::conflicts::{self, Resolution};
use crate::sync::local::outbox::{self, DeadLetterAction};

/// A form with no field of its own (only its CSRF token).
#[derive(Deserialize)]
pub(super) struct NoFields {}

/// The conflict form: a local candidate's id (a pull conflict), a Salesforce record's id (a
/// push conflict), or `create`.
#[derive(Deserialize)]
pub(super) struct ResolveForm {
    candidate: Option<u64>,
    salesforce_id: Option<String>,
    create: Option<String>,
}

/// The configured org a console path names (`{org}`), and the id after it when there is one;
/// an org that is not configured here is answered 404.
pub(super) struct InOrg {
    conn: Connection,
    id: u64,
}

/// The path's parameters.
#[derive(Deserialize)]
struct OrgParams {
    org: String,
    #[serde(default)]
    id: u64,
}

impl FromRequestParts<AppState> for InOrg {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(p) = Path::<OrgParams>::from_request_parts(parts, state)
            .await
            .map_err(|_| pages::unknown_org())?;
        let conn = view::configured_org(state, &p.org).ok_or_else(pages::unknown_org)?;
        Ok(Self { conn, id: p.id })
    }
}

/// Leaves a note and goes back to the org's page.
fn back(
    state: &AppState,
    signed: &Signed,
    conn: &Connection,
    note: Result<String, String>,
) -> Response {
    let (error, text) = match note {
        Ok(text) => (false, text),
        Err(text) => (true, text),
    };
    state.console.sessions.flash(signed, error, text);
    Redirect::to(&format!("/orgs/{}", conn.org_id)).into_response()
}

/// A use case's refusal as the operator reads it; a store failure is logged and named only.
fn refusal(e: LocalError) -> String {
    match e {
        LocalError::Store(e) => {
            tracing::error!(error = %e, "console action failed in the store");
            "The store failed; the logs say why. Nothing was changed.".to_string()
        }
        other => format!("Refused: {other}."),
    }
}

/// `POST /orgs/{org}/dead-letters/{id}/retry`.
pub(super) async fn retry(
    State(state): State<AppState>,
    at: InOrg,
    checked: Checked<NoFields>,
) -> Response {
    dead_letter(&state, &checked.signed, at, DeadLetterAction::Retry).await
}

/// `POST /orgs/{org}/dead-letters/{id}/discard`.
pub(super) async fn discard(
    State(state): State<AppState>,
    at: InOrg,
    checked: Checked<NoFields>,
) -> Response {
    dead_letter(&state, &checked.signed, at, DeadLetterAction::Discard).await
}

async fn dead_letter(
    state: &AppState,
    signed: &Signed,
    InOrg { conn, id }: InOrg,
    action: DeadLetterAction,
) -> Response {
    let done = outbox::resolve_dead_letter(&state.store, &conn.org_id, id, action).await;
    let note = match (done, action) {
        (Ok(_), DeadLetterAction::Retry) => Ok(format!("Dead letter {id} goes out again now.")),
        (Ok(_), DeadLetterAction::Discard) => Ok(format!("Dead letter {id} was discarded.")),
        (Err(e), _) => Err(refusal(e)),
    };
    back(state, signed, &conn, note)
}

/// `POST /orgs/{org}/conflicts/{id}/resolve`: links the pulled record to the candidate picked,
/// or creates a new local record.
pub(super) async fn resolve(
    State(state): State<AppState>,
    InOrg { conn, id }: InOrg,
    checked: Checked<ResolveForm>,
) -> Response {
    let form = &checked.form;
    let picked = form.salesforce_id.as_deref().map(SalesforceId::parse);
    let choice = match (form.candidate, picked, form.create.is_some()) {
        (Some(c), None, false) => Resolution::Candidate(c),
        (None, Some(Ok(sf)), false) => Resolution::Record(sf),
        (None, Some(Err(_)), false) => {
            let note = Err(format!("Conflict {id}: that is not a Salesforce id."));
            return back(&state, &checked.signed, &conn, note);
        }
        _ => Resolution::Create,
    };
    let rules = &state.pull.rules;
    let done = conflicts::resolve(&state.store, rules, &conn.org_id, id, choice.clone()).await;
    let note = match (done, choice) {
        (Ok(_), Resolution::Candidate(c)) => Ok(format!("Conflict {id} resolved: linked to #{c}.")),
        (Ok(_), Resolution::Record(sf)) => Ok(format!("Conflict {id} resolved: linked to {sf}.")),
        (Ok(_), Resolution::Create) => Ok(format!("Conflict {id} resolved: a new record.")),
        (Err(LocalError::NotFound(_)), _) => Err(format!(
            "Conflict {id} is no longer open: it was resolved, or listed again after a newer pull (below)."
        )),
        (Err(e), _) => Err(refusal(e)),
    };
    back(&state, &checked.signed, &conn, note)
}

/// `POST /orgs/{org}/setup`: checks the org's setup now.
pub(super) async fn check_setup(
    State(state): State<AppState>,
    InOrg { conn, .. }: InOrg,
    checked: Checked<NoFields>,
) -> Response {
    let org = conn.org_id.clone();
    let done = crate::sync::local::setup::check(&state.pull, &state.setup, org).await;
    let note = match done {
        Ok(r) if r.ok => Ok("Setup checked: nothing is missing.".to_string()),
        Ok(_) => Err("Setup checked: something is missing; see the setup check below.".to_string()),
        Err(e) => Err(refusal(e)),
    };
    back(&state, &checked.signed, &conn, note)
}

/// `POST /orgs/{org}/connect`: sends the browser to Salesforce's login to (re)connect the org.
pub(super) async fn connect(
    State(state): State<AppState>,
    InOrg { conn, .. }: InOrg,
    checked: Checked<NoFields>,
) -> Response {
    match oauth::begin(&state, conn.org_id.as_str(), None, Starter::Console) {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => back(
            &state,
            &checked.signed,
            &conn,
            Err(format!("Cannot connect: {e}.")),
        ),
    }
}
