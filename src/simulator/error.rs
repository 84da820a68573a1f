//! The errors the simulated org answers with, in the two body shapes Salesforce uses:
//! `[{"message","errorCode","fields"}]` for single records and queries, and
//! `{"statusCode","message","fields"}` inside sObject Collections results. A [`SimError`] is an
//! axum response by itself.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The longest request URI Salesforce accepts, in bytes (URI and headers together, 16,384);
/// a longer one is answered 414. A collections retrieve by `GET` fits about 800 ids.
pub(crate) const MAX_URI_BYTES: usize = 16_384;

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
    /// The duplicate rule's finding of a `DUPLICATES_DETECTED` error.
    pub duplicate_result: Option<Box<Value>>,
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
            duplicate_result: None,
        }
    }

    /// 400 `REQUIRED_FIELD_MISSING` naming every missing field.
    pub fn required_missing(missing: Vec<String>) -> Self {
        let message = format!("Required fields are missing: [{}]", missing.join(", "));
        Self::new(400, "REQUIRED_FIELD_MISSING", message, Some(missing))
    }

    /// 404 `NOT_FOUND`: bad id, unknown type or unknown external id field.
    pub fn not_found() -> Self {
        let message = "The requested resource does not exist";
        Self::new(404, "NOT_FOUND", message, None)
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
        let message = format!("malformed id {id}");
        Self::new(400, "MALFORMED_ID", message, Some(Vec::new()))
    }

    /// 400 `INVALID_FIELD` for a field a write body names that the object lacks (or that the
    /// caller may not see).
    pub fn invalid_field(object: &str, field: &str) -> Self {
        let message = format!("No such column '{field}' on sobject of type {object}");
        Self::new(400, "INVALID_FIELD", message, Some(Vec::new()))
    }

    /// 400 `INVALID_FIELD` for a SOQL column the object lacks; `at` is the query text with the
    /// row and column of the offending name, as Salesforce echoes it.
    pub fn invalid_column(object: &str, field: &str, at: &str) -> Self {
        let message = format!(
            "{at}No such column '{field}' on entity '{object}'. If you are attempting to use a \
             custom field, be sure to append the '__c' after the custom field name. Please \
             reference your WSDL or the describe call for the appropriate names."
        );
        Self::new(400, "INVALID_FIELD", message, None)
    }

    /// 400 `INVALID_FIELD_FOR_INSERT_UPDATE` for a field the caller may not write.
    pub fn read_only_field(field: &str) -> Self {
        let message = format!(
            "Unable to create/update fields: {field}. Please check the security settings of this \
             field and verify that it is read/write for your profile or permission set."
        );
        let fields = Some(vec![field.to_string()]);
        Self::new(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, fields)
    }

    /// 400 `JSON_PARSER_ERROR` for a value of the wrong type.
    pub fn bad_value(field: &str, value: &Value) -> Self {
        let message = format!("Cannot deserialize instance of {field} from value {value}");
        Self::new(400, "JSON_PARSER_ERROR", message, None)
    }

    /// 400 `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    pub fn restricted_picklist(field: &str, value: &str) -> Self {
        let message = format!("{field}: bad value for restricted picklist field: {value}");
        let fields = Some(vec![field.to_string()]);
        Self::new(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            message,
            fields,
        )
    }

    /// 400 `DUPLICATE_VALUE`: a unique field already holds this value on another record.
    pub fn duplicate_value(field: &str, other: &str) -> Self {
        let message =
            format!("duplicate value found: {field} duplicates value on record with id: {other}");
        Self::new(400, "DUPLICATE_VALUE", message, Some(Vec::new()))
    }

    /// 400 `DUPLICATES_DETECTED`: a duplicate rule blocked the save; `result` is the rule's
    /// finding (`duplicateResut` in single-record answers, `duplicateResult` in collections).
    pub fn duplicates_detected(message: &str, result: Value) -> Self {
        let mut e = Self::new(400, "DUPLICATES_DETECTED", message, None);
        e.duplicate_result = Some(Box::new(result));
        e
    }

    /// 400 `FIELD_CUSTOM_VALIDATION_EXCEPTION` with the admin's message.
    pub fn validation(message: &str, fields: Vec<String>) -> Self {
        Self::new(
            400,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            message,
            Some(fields),
        )
    }

    /// 400 `CANNOT_UPDATE_CONVERTED_LEAD`: a converted lead is read-only.
    pub fn converted_lead() -> Self {
        let message = "cannot reference converted lead";
        Self::new(
            400,
            "CANNOT_UPDATE_CONVERTED_LEAD",
            message,
            Some(Vec::new()),
        )
    }

    /// 400 `MALFORMED_QUERY`.
    pub fn malformed_query(detail: impl Into<String>) -> Self {
        Self::new(400, "MALFORMED_QUERY", detail, None)
    }

    /// 400 `INVALID_TYPE` for a SOQL `FROM` the org does not know.
    pub fn invalid_type(object: &str) -> Self {
        let message = format!("sObject type '{object}' is not supported.");
        Self::new(400, "INVALID_TYPE", message, None)
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
        let message = "TotalRequests Limit exceeded.";
        Self::new(403, "REQUEST_LIMIT_EXCEEDED", message, None)
    }

    /// 400 `CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`: the object (by its label) does not allow this
    /// operation through the API; `done` is `inserted`, `updated` or `deleted`.
    pub fn entity_refused(done: &str, label: &str) -> Self {
        let message = format!("entity type cannot be {done}: {label}");
        Self::new(
            400,
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
            message,
            Some(Vec::new()),
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
        let message = "Id not specified in an update call";
        Self::new(400, "MISSING_ARGUMENT", message, Some(Vec::new()))
    }

    /// 400 `INVALID_OPERATION` for a merge or conversion the org refuses.
    pub fn invalid_operation(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_OPERATION", message, Some(Vec::new()))
    }

    /// 300 `DUPLICATE_EXTERNAL_ID`: several records hold the external id of an upsert.
    pub fn multiple_external_ids(field: &str, value: &str) -> Self {
        let message = format!("{field}: more than one record found for external id field: {value}");
        Self::new(
            300,
            "DUPLICATE_EXTERNAL_ID",
            message,
            Some(vec![field.to_string()]),
        )
    }

    /// 400 `EXCEEDED_ID_LIMIT`: more than 200 records in one collection call.
    pub fn too_many_records() -> Self {
        Self::too_many_ids(200)
    }

    /// 400 `EXCEEDED_ID_LIMIT`: more than `max` records in one collection call (200 for writes,
    /// 2,000 for a retrieve).
    pub fn too_many_ids(max: usize) -> Self {
        let message =
            format!("record limit reached. cannot submit more than {max} records into this call");
        Self::new(400, "EXCEEDED_ID_LIMIT", message, None)
    }

    /// 414 `URI_TOO_LONG`: a request whose URI is longer than [`MAX_URI_BYTES`].
    pub fn uri_too_long(len: usize) -> Self {
        let message =
            format!("the request URI is {len} bytes; at most {MAX_URI_BYTES} are accepted");
        Self::new(414, "URI_TOO_LONG", message, None)
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

    /// 400 `PROCESSING_HALTED`: a composite subrequest whose reference `expr` names no value of
    /// the earlier subrequest `reference` (missing, or that subrequest failed) is not run.
    pub fn processing_halted(expr: &str, reference: &str) -> Self {
        let message = format!(
            "Invalid reference specified. No value for {expr} found in {reference}. Provided referenceId ('{reference}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_')."
        );
        Self::new(400, "PROCESSING_HALTED", message, None)
    }

    /// The HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The single-record body: `[{"duplicateResut"?,"message","errorCode","fields"?}]`.
    pub fn rest_body(&self) -> Value {
        let mut e = json!({"message": self.message, "errorCode": self.code});
        if let Some(fields) = &self.fields {
            e["fields"] = json!(fields);
        }
        if let Some(dup) = &self.duplicate_result {
            // Salesforce spells the key this way in single-record answers.
            e["duplicateResut"] = (**dup).clone();
        }
        json!([e])
    }

    /// One entry of a collection result's `errors`: `{"statusCode","message","fields"}`, plus
    /// `duplicateResult` when a duplicate rule fired.
    pub fn collection_entry(&self) -> Value {
        let mut e = json!({
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields.clone().unwrap_or_default(),
        });
        if let Some(dup) = &self.duplicate_result {
            e["duplicateResult"] = (**dup).clone();
        }
        e
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (self.status_code(), Json(self.rest_body())).into_response()
    }
}
