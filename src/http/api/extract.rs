//! Reading a request of the local API: the JSON body, the query string and the path id, each
//! failing as an [`ApiError`] that names the field or parameter at fault; and the org a request
//! means.
//!
//! Field names come from the deserializer's path (`serde_path_to_error`), never from the text of
//! its message. A required field that is absent has no path of its own, so the body is first
//! checked against the `required` list of the type's OpenAPI schema: the document and the check
//! cannot disagree.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::domain::OrgId;
use crate::http::state::{AppState, Connections};

/// A JSON body of type `T`; a failure is 422 naming the field (`body` when it is not a JSON
/// object).
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

/// A write's body: the command's fields, and `org_id`, the org the write is for (optional when
/// one org is configured; see [`org`]). A failure is 422 naming the field.
#[derive(Debug, ToSchema)]
pub(crate) struct InOrg<T> {
    /// The org (optional when one org is configured).
    #[serde(rename = "org_id")]
    #[schema(value_type = Option<String>)]
    pub(crate) org: OrgId,
    /// The command's fields.
    #[serde(flatten)]
    pub(crate) body: T,
}

/// Documents each write body (`InOrg_…`) as one object: the command's fields plus `org_id`.
/// The derived schema is an `allOf` whose first part forbids other properties, which a strict
/// validator would read as forbidding `org_id` too.
pub(crate) fn merge_in_org_schemas(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::AllOf(all)) = schema else {
            continue;
        };
        if !name.starts_with("InOrg_") {
            continue;
        }
        let mut parts = all.items.iter().filter_map(|p| match p {
            RefOr::T(Schema::Object(o)) => Some(o.clone()),
            _ => None,
        });
        let Some(mut merged) = parts.next() else {
            continue;
        };
        for part in parts {
            merged.properties.extend(part.properties);
            merged.required.extend(part.required);
        }
        *schema = RefOr::T(Schema::Object(merged));
    }
}

/// The fields `T`'s schema marks required.
fn required_fields<T: ToSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(o)) => o.required,
        _ => Vec::new(),
    }
}

/// The deserializer's path to an error, or `whole` when the error is about the whole value.
fn path_or(path: &serde_path_to_error::Path, whole: &str) -> String {
    let path = path.to_string();
    if path == "." || path == "?" {
        whole.to_string()
    } else {
        path
    }
}

/// Parses a body that must be a JSON object.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("body", "must be a JSON object")),
        Err(e) => Err(ApiError::invalid("body", format!("not valid JSON: {e}"))),
    }
}

/// Deserializes `T` from a JSON object; a failure names the field at fault.
fn from_object<T: DeserializeOwned + ToSchema>(map: Map<String, Value>) -> Result<T, ApiError> {
    if let Some(absent) = required_fields::<T>()
        .into_iter()
        .find(|f| !map.contains_key(f))
    {
        return Err(ApiError::invalid(absent, "is required"));
    }
    serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| ApiError::invalid(path_or(e.path(), "body"), e.inner().to_string()))
}

/// Parses a JSON body into `T`; a failure names the field at fault.
pub(crate) fn parse_body<T: DeserializeOwned + ToSchema>(body: &[u8]) -> Result<T, ApiError> {
    from_object(json_object(body)?)
}

/// Parses a write's body: `org_id` (a string or null) and the command's fields.
pub(crate) fn parse_in_org<T: DeserializeOwned + ToSchema>(
    body: &[u8],
) -> Result<(Option<String>, T), ApiError> {
    let mut map = json_object(body)?;
    let org_id = match map.remove("org_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::invalid("org_id", "must be a string")),
    };
    Ok((org_id, from_object(map)?))
}

/// The request's body, whole; over the limit is 413.
async fn bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::bad_request("body", e.body_text())
        }
    })
}

impl<T: DeserializeOwned + ToSchema> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        parse_body(&bytes(req, state).await?).map(Body)
    }
}

impl<T: DeserializeOwned + ToSchema> FromRequest<AppState> for InOrg<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (org_id, body) = parse_in_org(&bytes(req, state).await?)?;
        let org = org(&state.connections, org_id.as_deref(), "org_id")?;
        Ok(Self { org, body })
    }
}

/// The query string as `T`; a failure is 400 naming the parameter.
#[derive(Debug)]
pub(crate) struct Params<T>(pub(crate) T);

/// Parses a query string into `T`; a failure names the parameter at fault.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de)
        .map_err(|e| ApiError::bad_request(path_or(e.path(), "query"), e.inner().to_string()))
}

impl<T: DeserializeOwned> FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// The `{id}` of a path; a failure is 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id(pub(crate) u64);

impl FromRequestParts<AppState> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(id) = Path::<u64>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("id", e.body_text()))?;
        Ok(Self(id))
    }
}

/// `?org_id=`: the org a read or an action is for.
#[derive(Debug, serde::Deserialize, IntoParams)]
pub(crate) struct OrgQuery {
    /// The org (optional when one org is configured).
    pub(crate) org_id: Option<String>,
}

/// The org `?org_id=` names, or the only configured one (see [`org`]).
#[derive(Debug, Clone)]
pub(crate) struct QueryOrg(pub(crate) OrgId);

impl FromRequestParts<AppState> for QueryOrg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Params(q) = Params::<OrgQuery>::from_request_parts(parts, state).await?;
        Ok(Self(org(
            &state.connections,
            q.org_id.as_deref(),
            "org_id",
        )?))
    }
}

/// The org a request means: the one it names (`field` holds it), or the only configured one.
/// A malformed, unconfigured or missing org is refused naming `field`.
pub(crate) fn org(
    connections: &Connections,
    given: Option<&str>,
    field: &'static str,
) -> Result<OrgId, ApiError> {
    let all = connections.all();
    match given {
        Some(raw) => {
            let org = OrgId::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))?;
            all.iter()
                .find(|c| c.org_id == org)
                .map(|c| c.org_id.clone())
                .ok_or_else(|| ApiError::invalid(field, "no connection is configured for this org"))
        }
        None => match all {
            [one] => Ok(one.org_id.clone()),
            [] => Err(ApiError::invalid(field, "no connection is configured")),
            _ => Err(ApiError::invalid(
                field,
                "required when several orgs are configured",
            )),
        },
    }
}

/// The orgs a request means: the one it names, or every configured org.
pub(crate) fn orgs(
    connections: &Connections,
    given: Option<&str>,
    field: &'static str,
) -> Result<Vec<OrgId>, ApiError> {
    match given {
        Some(_) => Ok(vec![org(connections, given, field)?]),
        None => Ok(connections.all().iter().map(|c| c.org_id.clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
        #[serde(default)]
        size: Option<u32>,
    }

    fn field_of(body: &str) -> String {
        match parse_body::<Thing>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_body_error_names_the_field_from_the_path_or_the_schema() {
        assert_eq!(field_of(r#"{"size": 1}"#), "name");
        assert_eq!(field_of(r#"{"name": "x", "size": "big"}"#), "size");
        assert_eq!(field_of(r#"{"name": "x", "colour": 1}"#), "colour");
        assert_eq!(field_of(r#"{"name": null}"#), "name");
        assert_eq!(field_of(r#"[1, 2]"#), "body");
        assert_eq!(field_of(r#"{"name": "#), "body");
    }

    #[test]
    fn a_write_body_gives_its_org_apart_and_denies_other_unknown_fields() {
        let parsed = parse_in_org::<Thing>(br#"{"org_id": "00D7F00000107Xs", "name": "x"}"#);
        assert!(parsed.is_ok_and(|(org, _)| org.as_deref() == Some("00D7F00000107Xs")));
        match parse_in_org::<Thing>(br#"{"org_id": 5, "name": "x"}"#) {
            Err(ApiError::Invalid { field, .. }) => assert_eq!(field, "org_id"),
            other => panic!("expected a field error, got {other:?}"),
        }
        match parse_in_org::<Thing>(br#"{"name": "x", "org": "y"}"#) {
            Err(ApiError::Invalid { field, .. }) => assert_eq!(field, "org"),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    #[test]
    fn a_query_error_is_a_bad_request_naming_the_parameter() {
        match parse_query::<Page>("limit=ten") {
            Err(ApiError::BadRequest { field, .. }) => assert_eq!(field, "limit"),
            other => panic!("expected a bad request, got {other:?}"),
        }
        assert!(parse_query::<Page>("limit=10").is_ok());
    }
}
