//! What stands between a request and a console page: a live session (else to `/login`), and
//! for a form, its session's CSRF token before anything else of it is read.

use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::session::{COOKIE, Signed, cookie, same_secret};
use crate::http::state::AppState;

/// The largest console form accepted.
const MAX_FORM: usize = 16 * 1024;

/// Lets a request through only with a live session, which it hands on; any other goes to
/// `/login`.
pub(super) async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let found = cookie(req.headers(), COOKIE).and_then(|id| state.console.sessions.find(&id));
    let Some(signed) = found else {
        return Redirect::to("/login").into_response();
    };
    req.extensions_mut().insert(signed);
    next.run(req).await
}

/// A console form whose CSRF token (field `csrf`) matched its session's; the rest of its fields
/// as `T`. A missing or wrong token is refused with 403 before anything else is read.
pub(super) struct Checked<T> {
    /// The session.
    pub(super) signed: Signed,
    /// The form's fields.
    pub(super) form: T,
}

/// Why a console form was refused before its handler ran (the console's pages answer it).
#[derive(Debug)]
pub(super) enum FormRefused {
    /// No live session: to `/login`.
    NoSession,
    /// Larger than a form may be (413).
    TooLarge,
    /// Its CSRF token is missing or not its session's (403).
    BadToken,
    /// Its fields do not decode (422).
    Malformed,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Checked<T> {
    type Rejection = FormRefused;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, Self::Rejection> {
        let Some(signed) = req.extensions().get::<Signed>().cloned() else {
            return Err(FormRefused::NoSession);
        };
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
            .await
            .map_err(|_| FormRefused::TooLarge)?;
        let given = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !same_secret(&given, &signed.csrf) {
            tracing::warn!("console form refused: missing or wrong csrf token");
            return Err(FormRefused::BadToken);
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|_| FormRefused::Malformed)?;
        Ok(Self { signed, form })
    }
}
