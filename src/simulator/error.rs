//! The errors the simulated org answers with, in the two body shapes Salesforce uses:
//! `[{"message","errorCode","fields"}]` for single records and queries, and
//! `{"statusCode","message","fields"}` inside sObject Collections results
//! (salesforce-protocol.md 2.4, 2.5).

use axum::http::StatusCode;
use serde_json::{Value, json};

/// One Salesforce API error: the HTTP status it travels with, its `errorCode`, its message and,
/// when Salesforce names them, the fields involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SimError {
    /// The HTTP status of a single-record answer.
    pub status: u16,
    /// Salesforce's `errorCode` (`statusCode` in collections).
    pub code: String,
    /// Salesforce's message text.
    pub message: String,
    /// The fields named by the error; `None` when Salesforce leaves the key out.
    pub fields: Option<Vec<String>>,
}

impl SimError {
    fn new(
        status: u16,
        code: &str,
        message: impl Into<String>,
        fields: Option<Vec<String>>,
    ) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            fields,
        }
    }

    /// 400 `REQUIRED_FIELD_MISSING` naming every missing field.
    pub fn required_missing(missing: Vec<String>) -> Self {
        let message = format!("Required fields are missing: [{}]", missing.join(", "));
        Self::new(400, "REQUIRED_FIELD_MISSING", message, Some(missing))
    }

    /// 404 `NOT_FOUND`: bad id, unknown type or unknown external id field.
    pub fn not_found() -> Self {
        Self::new(
            404,
            "NOT_FOUND",
            "The requested resource does not exist",
            None,
        )
    }

    /// 404 `ENTITY_IS_DELETED`.
    pub fn entity_is_deleted() -> Self {
        Self::new(
            404,
            "ENTITY_IS_DELETED",
            "entity is deleted",
            Some(Vec::new()),
        )
    }

    /// 400 `MALFORMED_ID`.
    pub fn malformed_id(id: &str) -> Self {
        Self::new(
            400,
            "MALFORMED_ID",
            format!("malformed id {id}"),
            Some(Vec::new()),
        )
    }

    /// 400 `INVALID_FIELD` for a column the object does not have.
    pub fn invalid_field(object: &str, field: &str) -> Self {
        let message = format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a custom \
             field, be sure to append the '__c' after the custom field name. Please reference your \
             WSDL or the describe call for the appropriate names."
        );
        Self::new(400, "INVALID_FIELD", message, None)
    }

    /// 400 `INVALID_FIELD_FOR_INSERT_UPDATE` for a read-only field in a write.
    pub fn read_only_field(field: &str) -> Self {
        let message = format!(
            "Unable to create/update fields: {field}. Please check the security settings of this \
             field and verify that it is read/write for your profile or permission set."
        );
        Self::new(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            message,
            Some(vec![field.to_string()]),
        )
    }

    /// 400 `JSON_PARSER_ERROR` for a value of the wrong type.
    pub fn bad_value(field: &str, value: &Value) -> Self {
        let message = format!("Cannot deserialize instance of {field} from value {value}");
        Self::new(400, "JSON_PARSER_ERROR", message, None)
    }

    /// 400 `CANNOT_UPDATE_CONVERTED_LEAD`: a converted lead is read-only.
    pub fn converted_lead() -> Self {
        Self::new(
            400,
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead",
            Some(Vec::new()),
        )
    }

    /// 400 `MALFORMED_QUERY`.
    pub fn malformed_query(detail: impl Into<String>) -> Self {
        Self::new(400, "MALFORMED_QUERY", detail, None)
    }

    /// 400 `INVALID_TYPE` for a SOQL `FROM` the org does not know.
    pub fn invalid_type(object: &str) -> Self {
        Self::new(
            400,
            "INVALID_TYPE",
            format!("sObject type '{object}' is not supported."),
            None,
        )
    }

    /// 400 `INVALID_QUERY_LOCATOR`.
    pub fn invalid_locator() -> Self {
        Self::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator", None)
    }

    /// 401 `INVALID_SESSION_ID`.
    pub fn invalid_session() -> Self {
        Self::new(
            401,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
            None,
        )
    }

    /// 403 `REQUEST_LIMIT_EXCEEDED`.
    pub fn request_limit_exceeded() -> Self {
        Self::new(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            None,
        )
    }

    /// 400 `UNABLE_TO_LOCK_ROW`.
    pub fn unable_to_lock_row() -> Self {
        let message = "unable to obtain exclusive access to this record or 1 records";
        Self::new(400, "UNABLE_TO_LOCK_ROW", message, Some(Vec::new()))
    }

    /// 503 `SERVER_UNAVAILABLE`.
    pub fn server_unavailable() -> Self {
        let message = "Server is unavailable because of maintenance or overload.";
        Self::new(503, "SERVER_UNAVAILABLE", message, None)
    }

    /// 400 `MISSING_ARGUMENT` (an update without an id in a collection).
    pub fn missing_id() -> Self {
        Self::new(
            400,
            "MISSING_ARGUMENT",
            "Id not specified in an update call",
            Some(Vec::new()),
        )
    }

    /// 400 `INVALID_FIELD` for a merge or conversion the org refuses.
    pub fn invalid_operation(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_OPERATION", message, Some(Vec::new()))
    }

    /// 400 `EXCEEDED_ID_LIMIT`: more than 200 records in one collection call.
    pub fn too_many_records() -> Self {
        let message = "record limit reached. cannot submit more than 200 records into this call";
        Self::new(400, "EXCEEDED_ID_LIMIT", message, None)
    }

    /// 400 `JSON_PARSER_ERROR` for a body that is not what the endpoint takes.
    pub fn bad_body(detail: impl Into<String>) -> Self {
        Self::new(400, "JSON_PARSER_ERROR", detail, None)
    }

    /// 400 `ALL_OR_NONE_OPERATION_ROLLED_BACK` for the valid records of a failed allOrNone call.
    pub fn rolled_back() -> Self {
        let message = "Record rolled back because not all records were valid and the request was using AllOrNone header";
        Self::new(
            400,
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            message,
            Some(Vec::new()),
        )
    }

    /// The HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The single-record body: `[{"message","errorCode","fields"?}]`.
    pub fn rest_body(&self) -> Value {
        let mut e = json!({"message": self.message, "errorCode": self.code});
        if let Some(fields) = &self.fields {
            e["fields"] = json!(fields);
        }
        json!([e])
    }

    /// One entry of a collection result's `errors`: `{"statusCode","message","fields"}`.
    pub fn collection_entry(&self) -> Value {
        json!({
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields.clone().unwrap_or_default(),
        })
    }
}
