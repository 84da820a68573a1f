//! sObject Collections: create, update, upsert and delete up to 200 records per call with
//! per-record results, and retrieve up to 2,000 records of one type by id (by `POST`, the ids in
//! the body: a `GET` names them in the URI, which holds about 800).
//!
//! A well-formed request answers 200 with one result per record, in request order; per-record
//! errors carry `statusCode` and classify with [`RecordResult::class`].

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiErrorItem, ErrorClass, SalesforceError};
use super::rest::seg;
use super::{Client, Record};
use crate::domain::SalesforceId;

/// The most records one collections write accepts.
pub const MAX_COLLECTION: usize = 200;

/// The most records one collections retrieve returns.
pub const MAX_RETRIEVE: usize = 2_000;

/// One record's outcome in a collections write.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordResult {
    /// The record's id (absent on a failed create).
    #[serde(default)]
    pub id: Option<String>,
    /// Whether this record was saved.
    pub success: bool,
    /// Why not, when `success` is false.
    #[serde(default)]
    pub errors: Vec<ApiErrorItem>,
    /// On upsert: whether the record was inserted.
    #[serde(default)]
    pub created: Option<bool>,
}

impl RecordResult {
    /// The id as a [`SalesforceId`].
    pub fn sf_id(&self) -> Option<SalesforceId> {
        self.id.as_deref().and_then(|s| SalesforceId::parse(s).ok())
    }

    /// How to treat this record's failure (from its first error); `None` when it succeeded.
    /// A record rolled back only because another failed under `allOrNone` is retryable.
    pub fn class(&self) -> Option<ErrorClass> {
        if self.success {
            return None;
        }
        Some(
            self.errors
                .first()
                .map_or(ErrorClass::Permanent, ApiErrorItem::class),
        )
    }
}

fn check_len(count: usize) -> Result<(), SalesforceError> {
    check_at_most(count, MAX_COLLECTION)
}

fn check_at_most(count: usize, max: usize) -> Result<(), SalesforceError> {
    if count > max {
        return Err(SalesforceError::TooManyRecords { count, max });
    }
    Ok(())
}

/// Records with `attributes.type` set, as collections require.
pub(super) fn typed(sobject: &str, records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.get("attributes").is_none_or(|a| a.get("type").is_none()) {
                r.insert("attributes".into(), json!({ "type": sobject }));
            }
            r
        })
        .collect()
}

impl Client {
    /// Creates up to 200 `sobject` records (`POST /composite/sobjects`).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, count = records.len()))]
    pub async fn create_collection(
        &self,
        sobject: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        check_len(records.len())?;
        let path = self.data_path("/composite/sobjects");
        self.write_collection(Method::POST, &path, sobject, records, all_or_none)
            .await
    }

    /// Updates up to 200 `sobject` records, each carrying its `Id` (`PATCH /composite/sobjects`).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, count = records.len()))]
    pub async fn update_collection(
        &self,
        sobject: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        check_len(records.len())?;
        if records
            .iter()
            .any(|r| !r.contains_key("Id") && !r.contains_key("id"))
        {
            return Err(SalesforceError::InvalidRequest(
                "every record of a collections update needs an id",
            ));
        }
        let path = self.data_path("/composite/sobjects");
        self.write_collection(Method::PATCH, &path, sobject, records, all_or_none)
            .await
    }

    /// Upserts up to 200 `sobject` records by the external id field `field`, which each record
    /// carries (`PATCH /composite/sobjects/{Type}/{Field}`); `created` tells inserts apart.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, ext_field = %field, count = records.len()))]
    pub async fn upsert_collection(
        &self,
        sobject: &str,
        field: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        check_len(records.len())?;
        let path = self.data_path(&format!(
            "/composite/sobjects/{}/{}",
            seg(sobject),
            seg(field)
        ));
        self.write_collection(Method::PATCH, &path, sobject, records, all_or_none)
            .await
    }

    /// Deletes up to 200 records by id (`DELETE /composite/sobjects?ids=…&allOrNone=…`).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), count = ids.len()))]
    pub async fn delete_collection(
        &self,
        ids: &[SalesforceId],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        check_len(ids.len())?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.data_path("/composite/sobjects");
        let all = all_or_none.to_string();
        let results: Vec<RecordResult> = self
            .by_ids(
                Method::DELETE,
                &path,
                ids,
                ("allOrNone", &all),
                "collections results",
            )
            .await?;
        expect_len(results, ids.len())
    }

    /// Reads `fields` of up to 2,000 `sobject` records by id
    /// (`POST /composite/sobjects/{Type}` with `{"ids", "fields"}`: a read, whatever its method).
    /// The answer follows the order of `ids`; a record that is missing or deleted comes back as
    /// `None`.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, count = ids.len()))]
    pub async fn retrieve_collection(
        &self,
        sobject: &str,
        ids: &[SalesforceId],
        fields: &[&str],
    ) -> Result<Vec<Option<Record>>, SalesforceError> {
        check_at_most(ids.len(), MAX_RETRIEVE)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.data_path(&format!("/composite/sobjects/{}", seg(sobject)));
        let fields: &[&str] = if fields.is_empty() { &["Id"] } else { fields };
        let body = json!({
            "ids": ids.iter().map(SalesforceId::as_str).collect::<Vec<_>>(),
            "fields": fields,
        });
        let entries: Vec<Value> = self
            .send(Method::POST, &path, false, |r| r.json(&body))
            .await?
            .success()?
            .json("collections retrieve")?;
        let records = entries
            .into_iter()
            .map(|v| match v {
                Value::Object(record) => Some(record),
                _ => None,
            })
            .collect();
        expect_len(records, ids.len())
    }

    /// One collections call naming its records in the query string (`ids=…`, and `param`), its
    /// JSON answer decoded as `what`. Anything but a read carries the loop-prevention tag.
    async fn by_ids<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        ids: &[SalesforceId],
        param: (&str, &str),
        what: &'static str,
    ) -> Result<T, SalesforceError> {
        let write = method != Method::GET;
        let id_list = join_ids(ids);
        let reply = self
            .send(method, path, write, |r| {
                r.query(&[("ids", id_list.as_str()), param])
            })
            .await?
            .success()?;
        reply.json(what)
    }

    async fn write_collection(
        &self,
        method: Method,
        path: &str,
        sobject: &str,
        records: &[Record],
        all_or_none: bool,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "allOrNone": all_or_none, "records": typed(sobject, records) });
        let reply = self
            .send(method, path, true, |r| r.json(&body))
            .await?
            .success()?;
        let results: Vec<RecordResult> = reply.json("collections results")?;
        let failed = results.iter().filter(|r| !r.success).count();
        tracing::debug!(failed, "collections write");
        expect_len(results, records.len())
    }
}

fn join_ids(ids: &[SalesforceId]) -> String {
    ids.iter()
        .map(SalesforceId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn expect_len<T>(items: Vec<T>, expected: usize) -> Result<Vec<T>, SalesforceError> {
    if items.len() == expected {
        Ok(items)
    } else {
        Err(SalesforceError::Unexpected {
            what: "collections result count",
            status: 200,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_record_results_parse_the_status_code_shape() {
        let body = r#"[{"id":"001000000000001AAA","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]","fields":["Name"]}]}]"#;
        let results: Vec<RecordResult> = serde_json::from_str(body).expect("results");
        assert_eq!(results[0].class(), None);
        assert_eq!(results[1].class(), Some(ErrorClass::Permanent));
        assert_eq!(results[1].errors[0].fields, vec!["Name".to_string()]);
    }

    #[test]
    fn records_gain_their_type_attribute_unless_they_have_one() {
        let plain: Record = serde_json::from_str(r#"{"Name":"Acme"}"#).expect("record");
        let typed_already: Record =
            serde_json::from_str(r#"{"attributes":{"type":"Contact"},"LastName":"X"}"#)
                .expect("record");
        let out = typed("Account", &[plain, typed_already]);
        assert_eq!(out[0]["attributes"]["type"], "Account");
        assert_eq!(out[1]["attributes"]["type"], "Contact");
    }

    #[test]
    fn more_than_200_records_are_refused_before_any_call() {
        assert!(check_len(200).is_ok());
        assert!(check_at_most(MAX_RETRIEVE, MAX_RETRIEVE).is_ok());
        assert!(check_at_most(MAX_RETRIEVE + 1, MAX_RETRIEVE).is_err());
        assert!(matches!(
            check_len(201),
            Err(SalesforceError::TooManyRecords {
                count: 201,
                max: 200
            })
        ));
    }
}
