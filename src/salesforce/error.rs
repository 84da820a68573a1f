//! The one error type of the Salesforce boundary, the parsers for every error body Salesforce
//! sends, and the one classification every caller uses to decide what to do next.
//!
//! Body shapes:
//! - REST and query: `[{"message","errorCode","fields"}]`;
//! - sObject Collections per-record errors: `{"statusCode","message","fields"}`;
//! - OAuth: `{"error","error_description"}`;
//! - duplicate-rule errors carry `duplicateResut` (sic) or `duplicateResult`.

use serde::Deserialize;
use serde_json::Value;

use super::Record;

/// What a caller should do about a failed call. Produced by [`SalesforceError::class`] and
/// [`ApiErrorItem::class`]; retry schedules belong to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: 5xx, 429, timeouts, dropped connections, `UNABLE_TO_LOCK_ROW`,
    /// `SERVER_UNAVAILABLE`. Retry with back-off.
    Retryable,
    /// The request itself is wrong (validation, missing or unknown field, bad id, duplicates,
    /// several external-id matches). Retrying the same request cannot succeed.
    Permanent,
    /// The credentials were refused. With `needs_reauth` (`invalid_grant`, or no stored refresh
    /// token) the connection is in [`ConnectionState::NeedsReauth`](super::ConnectionState) and
    /// nothing succeeds until a person authorizes again; without it (`INVALID_SESSION_ID` after the
    /// one refresh) a later attempt may succeed.
    Auth {
        /// Whether a person has to authorize the connection again.
        needs_reauth: bool,
    },
    /// The org's API allowance is spent (`REQUEST_LIMIT_EXCEEDED`): wait for the rolling window.
    Limit,
    /// The record is gone: `ENTITY_IS_DELETED` (a tombstone, maybe a merge loser) or `NOT_FOUND`.
    Gone,
}

impl ErrorClass {
    /// Classifies an error code (`errorCode`, `statusCode` or OAuth `error`) together with the
    /// HTTP status it came with. Codes win over statuses: `UNABLE_TO_LOCK_ROW` is retryable
    /// even as a 400. `status` is 0 for per-record collection errors, which come in a 200.
    pub fn of(status: u16, code: &str) -> Self {
        match code {
            "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "ALL_OR_NONE_OPERATION_ROLLED_BACK" => {
                Self::Retryable
            }
            "INVALID_SESSION_ID" => Self::Auth {
                needs_reauth: false,
            },
            "invalid_grant" => Self::Auth { needs_reauth: true },
            "REQUEST_LIMIT_EXCEEDED" => Self::Limit,
            "ENTITY_IS_DELETED" | "NOT_FOUND" => Self::Gone,
            _ => Self::of_status(status),
        }
    }

    /// Classifies a bare HTTP status, for bodies that name no code.
    pub fn of_status(status: u16) -> Self {
        match status {
            429 | 500..=599 => Self::Retryable,
            401 => Self::Auth {
                needs_reauth: false,
            },
            404 | 410 => Self::Gone,
            _ => Self::Permanent,
        }
    }
}

/// Everything that can go wrong talking to Salesforce. Messages never hold a token, a secret or
/// a response body.
#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    /// Salesforce answered with an error status and an error body (either shape).
    #[error("salesforce answered {status}: {}", summary(.errors))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The parsed errors; empty when the body held none.
        errors: Vec<ApiErrorItem>,
    },
    /// An external id matched several records (HTTP 300); the candidates are listed.
    #[error("the external id matches {} records", .candidates.len())]
    MultipleMatches {
        /// Ids (or record URLs when no id could be read) of the matching records.
        candidates: Vec<String>,
    },
    /// The token endpoint refused a grant (`{"error","error_description"}`).
    #[error("oauth token request failed with {status}: {error}")]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code (`invalid_grant`, `invalid_client`, …).
        error: String,
        /// Salesforce's description, which never holds the token.
        description: Option<String>,
    },
    /// The connection is waiting for a person to authorize it again; no call was made.
    #[error("the salesforce connection needs re-authorization")]
    NeedsReauth,
    /// The token response carried a `signature` that does not verify against the client secret.
    #[error("the token response signature does not verify")]
    BadSignature,
    /// The request never got a complete answer.
    #[error("transport error ({kind:?}): {message}")]
    Transport {
        /// What kind of failure.
        kind: TransportKind,
        /// The failure, without the URL.
        message: String,
    },
    /// A success status with a body that does not have the documented shape.
    #[error("unexpected response to {what} (status {status})")]
    Unexpected {
        /// What was being read.
        what: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// A collection call was given more records than Salesforce accepts in one call.
    #[error("{count} records exceed the limit of {max} per call")]
    TooManyRecords {
        /// Records given.
        count: usize,
        /// The most one call accepts.
        max: usize,
    },
    /// The sealed refresh token could not be sealed or opened.
    #[error(transparent)]
    Vault(#[from] super::vault::VaultError),
    /// The token store failed to load or save.
    #[error("token store: {0}")]
    Store(#[source] super::vault::TokenStoreError),
    /// A caller-supplied value cannot be used (an invalid header value, a bad URL).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

/// The kinds of transport failure, all retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The request or connection timed out.
    Timeout,
    /// The connection could not be established.
    Connect,
    /// The connection broke mid-request or mid-body.
    Other,
}

fn summary(errors: &[ApiErrorItem]) -> String {
    if errors.is_empty() {
        return "no error body".to_string();
    }
    errors
        .iter()
        .map(|e| e.error_code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl SalesforceError {
    /// The one classification of this error; see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { status, errors } => match errors.first() {
                Some(first) => ErrorClass::of(*status, &first.error_code),
                None => ErrorClass::of_status(*status),
            },
            Self::MultipleMatches { .. } => ErrorClass::Permanent,
            Self::OAuth { status, error, .. } => match error.as_str() {
                "invalid_grant" => ErrorClass::Auth { needs_reauth: true },
                _ if *status == 429 || *status >= 500 => ErrorClass::Retryable,
                _ => ErrorClass::Auth {
                    needs_reauth: false,
                },
            },
            Self::NeedsReauth => ErrorClass::Auth { needs_reauth: true },
            Self::BadSignature => ErrorClass::Auth {
                needs_reauth: false,
            },
            Self::Transport { .. } => ErrorClass::Retryable,
            Self::Unexpected { status, .. } => ErrorClass::of_status(*status),
            Self::TooManyRecords { .. } | Self::InvalidRequest(_) => ErrorClass::Permanent,
            Self::Vault(_) => ErrorClass::Auth { needs_reauth: true },
            Self::Store(_) => ErrorClass::Retryable,
        }
    }

    /// The first error code Salesforce named, if any (`errorCode`, `statusCode` or OAuth `error`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { errors, .. } => errors.first().map(|e| e.error_code.as_str()),
            Self::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Builds the error for a non-success response from its status and raw body.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        if status == 300 {
            return Self::MultipleMatches {
                candidates: parse_multiple_matches(body),
            };
        }
        if let Some((error, description)) = parse_oauth_error(body) {
            return Self::OAuth {
                status,
                error,
                description,
            };
        }
        Self::Api {
            status,
            errors: parse_error_body(body),
        }
    }

    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            TransportKind::Timeout
        } else if err.is_connect() {
            TransportKind::Connect
        } else {
            TransportKind::Other
        };
        Self::Transport {
            kind,
            message: err.without_url().to_string(),
        }
    }
}

/// One error as Salesforce reports it, from either body shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiErrorItem {
    /// `errorCode` (REST) or `statusCode` (collections), e.g. `REQUIRED_FIELD_MISSING`.
    #[serde(rename = "errorCode", alias = "statusCode", default)]
    pub error_code: String,
    /// The human-readable message.
    #[serde(default)]
    pub message: String,
    /// The fields involved; absent in some bodies.
    #[serde(default)]
    pub fields: Vec<String>,
    /// The duplicate-rule verdict of `DUPLICATES_DETECTED`, under either spelling.
    #[serde(rename = "duplicateResult", alias = "duplicateResut", default)]
    pub duplicate_result: Option<DuplicateResult>,
}

impl ApiErrorItem {
    /// Classifies this error alone, as a per-record collection error (no HTTP status of its own).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of(0, &self.error_code)
    }
}

/// The `duplicateResut`/`duplicateResult` object of a `DUPLICATES_DETECTED` error.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DuplicateResult {
    /// Whether the rule allows saving anyway (`Sforce-Duplicate-Rule-Header: allowSave=true`).
    pub allow_save: bool,
    /// The duplicate rule's API name.
    pub duplicate_rule: Option<String>,
    /// The matching rules and what each matched.
    pub match_results: Vec<MatchResult>,
}

impl DuplicateResult {
    /// Ids of every record the rule matched.
    pub fn matched_ids(&self) -> Vec<String> {
        self.match_results
            .iter()
            .flat_map(|m| &m.match_records)
            .filter_map(|r| r.record.get("Id").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }
}

/// One matching rule's result inside a [`DuplicateResult`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MatchResult {
    /// The records this rule matched.
    pub match_records: Vec<MatchRecord>,
}

/// One matched record inside a [`MatchResult`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MatchRecord {
    /// The matched record (at least `Id`).
    pub record: Record,
}

/// Parses an error body of either REST shape: an array of errors, or one error object.
/// Unparseable bodies yield no items (the status still classifies the failure).
pub fn parse_error_body(body: &[u8]) -> Vec<ApiErrorItem> {
    if let Ok(items) = serde_json::from_slice::<Vec<ApiErrorItem>>(body) {
        return items;
    }
    match serde_json::from_slice::<ApiErrorItem>(body) {
        Ok(item) if !item.error_code.is_empty() => vec![item],
        _ => Vec::new(),
    }
}

/// Parses an OAuth error body `{"error","error_description"}`; `None` for other shapes.
pub fn parse_oauth_error(body: &[u8]) -> Option<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct OAuthErrorBody {
        error: String,
        error_description: Option<String>,
    }
    serde_json::from_slice::<OAuthErrorBody>(body)
        .ok()
        .map(|b| (b.error, b.error_description))
}

/// Reads the candidates of a 300 Multiple Choices answer: a JSON array of record URLs
/// (`/services/data/vNN.0/sobjects/Type/Id`) or of objects holding an `Id`/`id`/`url`.
fn parse_multiple_matches(body: &[u8]) -> Vec<String> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(url) => Some(last_segment(url)),
            Value::Object(map) => map
                .get("Id")
                .or_else(|| map.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    map.get("attributes")
                        .and_then(|a| a.get("url"))
                        .or_else(|| map.get("url"))
                        .and_then(Value::as_str)
                        .map(last_segment)
                }),
            _ => None,
        })
        .collect()
}

fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_array_shape_is_parsed() {
        let body = br#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#;
        let items = parse_error_body(body);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].error_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(items[0].fields, vec!["LastName".to_string()]);
        assert_eq!(items[0].class(), ErrorClass::Permanent);
    }

    #[test]
    fn an_error_without_fields_is_parsed() {
        let body =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        let err = SalesforceError::from_response(401, body);
        assert_eq!(err.code(), Some("INVALID_SESSION_ID"));
        assert_eq!(
            err.class(),
            ErrorClass::Auth {
                needs_reauth: false
            }
        );
    }

    #[test]
    fn the_collections_status_code_shape_is_parsed() {
        let body =
            br#"{"statusCode":"DUPLICATE_VALUE","message":"duplicate value found","fields":[]}"#;
        let items = parse_error_body(body);
        assert_eq!(items[0].error_code, "DUPLICATE_VALUE");
        let arr = br#"[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]"#;
        assert_eq!(parse_error_body(arr)[0].class(), ErrorClass::Retryable);
    }

    #[test]
    fn the_oauth_shape_is_parsed_and_invalid_grant_needs_reauth() {
        let body =
            br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#;
        let err = SalesforceError::from_response(400, body);
        assert!(matches!(&err, SalesforceError::OAuth { error, .. } if error == "invalid_grant"));
        assert_eq!(err.class(), ErrorClass::Auth { needs_reauth: true });
        let other = SalesforceError::from_response(400, br#"{"error":"invalid_client"}"#);
        assert_eq!(
            other.class(),
            ErrorClass::Auth {
                needs_reauth: false
            }
        );
    }

    fn duplicate_body(key: &str) -> Vec<u8> {
        format!(
            r#"[{{"message":"Use one of these records?","errorCode":"DUPLICATES_DETECTED","fields":[],
            "{key}":{{"allowSave":true,"duplicateRule":"Standard_Contact_Duplicate_Rule",
            "duplicateRuleEntityType":"Contact","errorMessage":"Use one of these records?",
            "matchResults":[{{"entityType":"Contact","errors":[],"matchEngine":"FuzzyMatchEngine",
            "matchRecords":[{{"additionalInformation":[],"fieldDiffs":[],"matchConfidence":100.0,
            "record":{{"attributes":{{"type":"Contact","url":"/services/data/v62.0/sobjects/Contact/0031I0000081tbPQAQ"}},
            "Id":"0031I0000081tbPQAQ"}}}}],"rule":"Standard_Match_Rule_v1_1","size":1,"success":true}}]}}}}]"#
        )
        .into_bytes()
    }

    #[test]
    fn both_spellings_of_the_duplicate_result_are_read() {
        for key in ["duplicateResut", "duplicateResult"] {
            let items = parse_error_body(&duplicate_body(key));
            let dup = items[0]
                .duplicate_result
                .as_ref()
                .expect("duplicate result");
            assert!(dup.allow_save, "{key}");
            assert_eq!(
                dup.duplicate_rule.as_deref(),
                Some("Standard_Contact_Duplicate_Rule")
            );
            assert_eq!(dup.matched_ids(), vec!["0031I0000081tbPQAQ".to_string()]);
            assert_eq!(items[0].class(), ErrorClass::Permanent);
        }
    }

    #[test]
    fn a_300_lists_the_candidate_ids() {
        let body = br#"["/services/data/v62.0/sobjects/Account/001000000000001AAA","/services/data/v62.0/sobjects/Account/001000000000002AAA"]"#;
        let err = SalesforceError::from_response(300, body);
        let SalesforceError::MultipleMatches { candidates } = &err else {
            panic!("expected multiple matches, got {err:?}");
        };
        assert_eq!(candidates, &["001000000000001AAA", "001000000000002AAA"]);
        assert_eq!(err.class(), ErrorClass::Permanent);
    }

    #[test]
    fn an_unparseable_body_classifies_by_status() {
        assert_eq!(
            SalesforceError::from_response(502, b"<html>bad gateway</html>").class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            SalesforceError::from_response(404, b"").class(),
            ErrorClass::Gone
        );
        assert_eq!(
            SalesforceError::from_response(400, b"{}").class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn the_classification_table_holds() {
        let table: &[(u16, &str, ErrorClass)] = &[
            (500, "", ErrorClass::Retryable),
            (502, "", ErrorClass::Retryable),
            (503, "SERVER_UNAVAILABLE", ErrorClass::Retryable),
            (429, "", ErrorClass::Retryable),
            (400, "UNABLE_TO_LOCK_ROW", ErrorClass::Retryable),
            (500, "UNABLE_TO_LOCK_ROW", ErrorClass::Retryable),
            (
                400,
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                ErrorClass::Permanent,
            ),
            (400, "REQUIRED_FIELD_MISSING", ErrorClass::Permanent),
            (400, "INVALID_FIELD", ErrorClass::Permanent),
            (400, "MALFORMED_ID", ErrorClass::Permanent),
            (400, "DUPLICATE_VALUE", ErrorClass::Permanent),
            (400, "DUPLICATES_DETECTED", ErrorClass::Permanent),
            (400, "INVALID_CROSS_REFERENCE_KEY", ErrorClass::Permanent),
            (
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                ErrorClass::Permanent,
            ),
            (403, "INSUFFICIENT_ACCESS", ErrorClass::Permanent),
            (
                401,
                "INVALID_SESSION_ID",
                ErrorClass::Auth {
                    needs_reauth: false,
                },
            ),
            (
                400,
                "invalid_grant",
                ErrorClass::Auth { needs_reauth: true },
            ),
            (403, "REQUEST_LIMIT_EXCEEDED", ErrorClass::Limit),
            (404, "ENTITY_IS_DELETED", ErrorClass::Gone),
            (400, "ENTITY_IS_DELETED", ErrorClass::Gone),
            (404, "NOT_FOUND", ErrorClass::Gone),
            (
                0,
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                ErrorClass::Retryable,
            ),
        ];
        for (status, code, class) in table {
            assert_eq!(ErrorClass::of(*status, code), *class, "{status} {code}");
        }
    }

    #[test]
    fn non_api_errors_classify_too() {
        let transport = SalesforceError::Transport {
            kind: TransportKind::Connect,
            message: "refused".into(),
        };
        assert_eq!(transport.class(), ErrorClass::Retryable);
        assert_eq!(
            SalesforceError::NeedsReauth.class(),
            ErrorClass::Auth { needs_reauth: true }
        );
        assert_eq!(
            SalesforceError::TooManyRecords {
                count: 201,
                max: 200
            }
            .class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn messages_are_lowercase_and_name_codes_only() {
        let err = SalesforceError::from_response(
            400,
            br#"[{"message":"secret stuff","errorCode":"INVALID_FIELD"}]"#,
        );
        let text = err.to_string();
        assert_eq!(text, "salesforce answered 400: INVALID_FIELD");
    }
}
