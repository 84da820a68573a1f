//! Local API routes of the pull side: imports with progress, and the conflict queue.
//!
//! - `POST /api/v1/imports` `{"org"?, "kind": "accounts", "filter"?}` |
//!   `{"kind": "contacts" | "opportunities", "account": "001…"}` → 202 with the import's status;
//!   the import runs in the background.
//! - `GET /api/v1/imports/{id}` → its progress (`total`, `processed`, `state`, …).
//! - `GET /api/v1/conflicts?org=` → quarantined records with their candidates.
//! - `POST /api/v1/conflicts/{id}/resolve` `{"org"?, "candidate": 12}` or `{"create": true}` →
//!   applies the record to the picked local record (or a new one) and closes the conflict.
//!
//! `org` may be left out while exactly one org is configured.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{ObjectType, OrgId};
use crate::http::AppState;
use crate::store::StoreError;
use crate::sync::import::{self, ImportKind, ImportStatus};
use crate::sync::pull::{self, Applied, Conflict, Origin, Target};

/// The pull side's routes, nested under `/api/v1` behind the bearer token.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/imports", post(start_import))
        .route("/imports/{id}", get(import_status))
        .route("/conflicts", get(list_conflicts))
        .route("/conflicts/{id}/resolve", post(resolve_conflict))
}

/// What a pull-side request can fail with.
#[derive(Debug, thiserror::Error)]
enum PullApiError {
    /// The request is wrong: 422 naming the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The org has no Salesforce connection yet: 409.
    #[error("org {0} is not connected to salesforce")]
    NotConnected(OrgId),
    /// The store failed: 503, cause logged.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for PullApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, self.to_string()),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string()),
            Self::NotConnected(_) => (StatusCode::CONFLICT, self.to_string()),
            Self::Store(e) => {
                tracing::error!(error = %e, "pull api: store failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service unavailable".to_string(),
                )
            }
        };
        let body = json!({"error": {"status": status.as_u16(), "message": message}});
        (status, Json(body)).into_response()
    }
}

/// The org a request names, or the only configured one.
fn org_of(state: &AppState, org: Option<&str>) -> Result<OrgId, PullApiError> {
    let configured = state.connections.all();
    let org = match org {
        Some(o) => OrgId::parse(o).map_err(|e| PullApiError::Invalid {
            field: "org",
            message: e.to_string(),
        })?,
        None => match configured {
            [only] => only.org_id.clone(),
            _ => {
                return Err(PullApiError::Invalid {
                    field: "org",
                    message: "required when several orgs are configured".into(),
                });
            }
        },
    };
    if configured.iter().any(|c| c.org_id == org) {
        Ok(org)
    } else {
        Err(PullApiError::NotFound("org"))
    }
}

/// `POST /api/v1/imports` body.
#[derive(Debug, Deserialize)]
struct ImportRequest {
    #[serde(default)]
    org: Option<String>,
    #[serde(flatten)]
    what: ImportKind,
}

/// `POST /api/v1/imports`.
#[utoipa::path(post, path = "/api/v1/imports",
    request_body(content = serde_json::Value, description = r#"{"org"?, "kind": "accounts", "filter"?} or {"org"?, "kind": "contacts" | "opportunities", "account": "001…"}"#),
    responses((status = 202, description = "the import's status; it runs in the background", body = serde_json::Value),
        (status = 409, description = "the org is not connected"), (status = 422, description = "a field is wrong")))]
async fn start_import(
    State(state): State<AppState>,
    body: Result<Json<ImportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ImportStatus>), PullApiError> {
    let Json(req) = body.map_err(|e| PullApiError::Invalid {
        field: "body",
        message: e.body_text(),
    })?;
    let org = org_of(&state, req.org.as_deref())?;
    let client = state
        .pull
        .orgs
        .get(&org)
        .ok_or_else(|| PullApiError::NotConnected(org.clone()))?;
    let status = state.pull.imports.begin(org, req.what);
    let (store, ctx, first) = (state.store.clone(), state.pull.clone(), status.clone());
    tokio::spawn(async move {
        let imports = ctx.imports.clone();
        let progress = move |s: &ImportStatus| imports.update(s);
        // The outcome is in the status (state `failed` with the error); nothing else to do.
        let _ = import::run(&store, &client, &ctx.rules, first, &progress).await;
    });
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// `GET /api/v1/imports/{id}`.
#[utoipa::path(get, path = "/api/v1/imports/{id}", params(("id" = u64, Path, description = "Import id")),
    responses((status = 200, description = "progress: state, total, processed, created, updated, unchanged, quarantined, error", body = serde_json::Value),
        (status = 404, description = "no such import")))]
async fn import_status(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<ImportStatus>, PullApiError> {
    state
        .pull
        .imports
        .get(id)
        .map(Json)
        .ok_or(PullApiError::NotFound("import"))
}

/// `?org=`.
#[derive(Debug, Deserialize)]
struct OrgQuery {
    org: Option<String>,
}

/// A conflict as the API lists it.
#[derive(Debug, Serialize)]
struct ConflictView {
    id: u64,
    org: OrgId,
    #[serde(flatten)]
    conflict: Conflict,
    /// The candidates' current local values.
    candidate_records: Vec<serde_json::Value>,
}

fn candidate_values(
    state: &AppState,
    org: &OrgId,
    c: &Conflict,
) -> Result<Vec<serde_json::Value>, StoreError> {
    Ok(match c.object {
        ObjectType::Account => state
            .store
            .companies(org)?
            .into_iter()
            .filter(|x| c.candidates.contains(&x.id))
            .map(|x| json!(x))
            .collect(),
        ObjectType::Contact | ObjectType::Lead => state
            .store
            .contacts(org)?
            .into_iter()
            .filter(|x| c.candidates.contains(&x.id))
            .map(|x| json!(x))
            .collect(),
        ObjectType::Opportunity => Vec::new(),
    })
}

/// `GET /api/v1/conflicts`.
#[utoipa::path(get, path = "/api/v1/conflicts", params(("org" = Option<String>, Query, description = "Only this org")),
    responses((status = 200, description = "quarantined records with their candidates and the candidates' local values", body = [serde_json::Value])))]
async fn list_conflicts(
    State(state): State<AppState>,
    Query(q): Query<OrgQuery>,
) -> Result<Json<Vec<ConflictView>>, PullApiError> {
    let orgs: Vec<OrgId> = match q.org.as_deref() {
        Some(o) => vec![org_of(&state, Some(o))?],
        None => state
            .connections
            .all()
            .iter()
            .map(|c| c.org_id.clone())
            .collect(),
    };
    let mut out = Vec::new();
    for org in orgs {
        for (id, conflict) in state.store.conflicts::<Conflict>(&org)? {
            let candidate_records = candidate_values(&state, &org, &conflict)?;
            out.push(ConflictView {
                id,
                org: org.clone(),
                conflict,
                candidate_records,
            });
        }
    }
    Ok(Json(out))
}

/// `POST /api/v1/conflicts/{id}/resolve` body.
#[derive(Debug, Deserialize)]
struct ResolveRequest {
    #[serde(default)]
    org: Option<String>,
    /// The local record to link.
    #[serde(default)]
    candidate: Option<u64>,
    /// Create a new local record instead.
    #[serde(default)]
    create: bool,
}

/// `POST /api/v1/conflicts/{id}/resolve`.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", params(("id" = u64, Path, description = "Conflict id")),
    request_body(content = serde_json::Value, description = r#"{"org"?, "candidate": 12} or {"org"?, "create": true}"#),
    responses((status = 200, description = "what was applied", body = serde_json::Value),
        (status = 404, description = "no such conflict or candidate"), (status = 422, description = "a field is wrong")))]
async fn resolve_conflict(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Result<Json<ResolveRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Applied>, PullApiError> {
    let Json(req) = body.map_err(|e| PullApiError::Invalid {
        field: "body",
        message: e.body_text(),
    })?;
    let org = org_of(&state, req.org.as_deref())?;
    let conflict: Conflict = state
        .store
        .conflict(&org, id)?
        .ok_or(PullApiError::NotFound("conflict"))?;
    let target = match (req.candidate, req.create) {
        (Some(c), false) if conflict.candidates.contains(&c) => Target::Local(c),
        (Some(_), false) => {
            return Err(PullApiError::Invalid {
                field: "candidate",
                message: "not one of the conflict's candidates".into(),
            });
        }
        (None, true) => Target::New,
        _ => {
            return Err(PullApiError::Invalid {
                field: "candidate",
                message: "give either a candidate or \"create\": true".into(),
            });
        }
    };
    let origin = Origin::new(format!("conflict:{id}"));
    let applied = pull::commit_record(
        &state.store,
        &org,
        &state.pull.rules,
        conflict.object,
        &conflict.record,
        &origin,
        target,
        None,
    )?;
    state.store.make_durable().await?;
    Ok(Json(applied))
}

/// The pull side's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(start_import, import_status, list_conflicts, resolve_conflict))]
pub(super) struct PullApiDoc;
