//! The control surface's Setup: users and their tokens, custom objects and fields, field-level
//! security, opportunity stages, duplicate and validation rules, list views.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::control::parse;
use super::custom::{CustomObjectSpec, FieldSpec};
use super::error::SimError;
use super::listviews::ListViewSpec;
use super::rules::{DuplicateRuleSpec, ValidationRuleSpec};
use super::schema::FieldAccess;
use super::stages::{StageSpec, stages};
use super::state::Shared;
use super::users::UserSpec;

type Shr = State<Arc<Shared>>;

/// The Setup routes under `/__sim`.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/users", get(users).post(add_user))
        .route("/users/{user}/revoke", post(revoke_user))
        .route("/objects", post(add_object))
        .route("/fields/{object}", post(add_field))
        .route("/fields/{object}/{field}", delete(remove_field))
        .route("/field-security", put(set_field_security))
        .route("/opportunity-stages", get(list_stages).post(add_stage))
        .route(
            "/duplicate-rules/{object}",
            put(set_duplicate_rule).delete(clear_duplicate_rule),
        )
        .route(
            "/validation-rules/{object}",
            put(set_validation_rule).delete(clear_validation_rule),
        )
        .route("/listviews/{object}", post(add_list_view))
}

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn users(State(shared): Shr) -> Response {
    Json(json!(shared.users())).into_response()
}

async fn add_user(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    let user = shared.add_user(&parse::<UserSpec>(&body)?)?;
    Ok((StatusCode::CREATED, Json(json!(user))).into_response())
}

async fn revoke_user(State(shared): Shr, Path(user): Path<String>) -> Result<Response, SimError> {
    shared.revoke_user(&user)?;
    Ok(done())
}

async fn add_object(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    shared.add_custom_object(&parse::<CustomObjectSpec>(&body)?)?;
    Ok(StatusCode::CREATED.into_response())
}

async fn add_field(
    State(shared): Shr,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    shared.add_field(&object, &parse::<FieldSpec>(&body)?)?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_field(
    State(shared): Shr,
    Path((object, field)): Path<(String, String)>,
) -> Result<Response, SimError> {
    shared.remove_field(&object, &field)?;
    Ok(done())
}

/// `PUT /__sim/field-security`: what a user (the integration user by default) may do with a
/// field.
#[derive(Deserialize)]
struct FieldSecurityRequest {
    #[serde(default)]
    user: Option<String>,
    object: String,
    field: String,
    #[serde(flatten)]
    access: FieldAccess,
}

async fn set_field_security(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    let req: FieldSecurityRequest = parse(&body)?;
    shared.set_field_access(req.user.as_deref(), &req.object, &req.field, req.access)?;
    Ok(done())
}

async fn list_stages(State(shared): Shr) -> Response {
    let st = shared.lock();
    Json(json!(stages(&st.org))).into_response()
}

async fn add_stage(State(shared): Shr, body: Bytes) -> Result<Response, SimError> {
    let id = shared.add_stage(&parse::<StageSpec>(&body)?)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn set_duplicate_rule(
    State(shared): Shr,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let spec: DuplicateRuleSpec = parse(&body)?;
    shared.set_duplicate_rule(&object, Some(spec))?;
    Ok(done())
}

async fn clear_duplicate_rule(
    State(shared): Shr,
    Path(object): Path<String>,
) -> Result<Response, SimError> {
    shared.set_duplicate_rule(&object, None)?;
    Ok(done())
}

async fn set_validation_rule(
    State(shared): Shr,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let spec: ValidationRuleSpec = parse(&body)?;
    shared.set_validation_rule(&object, Some(spec))?;
    Ok(done())
}

async fn clear_validation_rule(
    State(shared): Shr,
    Path(object): Path<String>,
) -> Result<Response, SimError> {
    shared.set_validation_rule(&object, None)?;
    Ok(done())
}

async fn add_list_view(
    State(shared): Shr,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let id = shared.add_list_view(&object, &parse::<ListViewSpec>(&body)?)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}
