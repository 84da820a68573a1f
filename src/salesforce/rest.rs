//! Single-record REST operations: read (optionally conditional), read by external id, create,
//! update, upsert by external id (201 created, 200 or 204 updated, 300 several matches), delete.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiErrorItem, SalesforceError};
use super::{Client, Record};
use crate::domain::SalesforceId;

/// The answer to a conditional read.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The record changed after the given time (or no time was given).
    Record(Record),
    /// 304: the record has not changed since the given time.
    NotModified,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// The record's id; absent when Salesforce answered 204 (older API versions, on update).
    pub id: Option<SalesforceId>,
    /// Whether a record was inserted (`true`) or an existing one updated.
    pub created: bool,
}

/// Typed reads of the fields every record carries.
pub trait RecordExt {
    /// The `Id` field as a [`SalesforceId`].
    fn sf_id(&self) -> Option<SalesforceId>;
    /// `attributes.type`, the object's API name.
    fn sobject_type(&self) -> Option<&str>;
    /// A field as a string, `None` when absent, null or not a string.
    fn str_field(&self, name: &str) -> Option<&str>;
    /// A field as a boolean, `None` when absent, null or not a boolean.
    fn bool_field(&self, name: &str) -> Option<bool>;
}

impl RecordExt for Record {
    fn sf_id(&self) -> Option<SalesforceId> {
        self.str_field("Id")
            .and_then(|s| SalesforceId::parse(s).ok())
    }

    fn sobject_type(&self) -> Option<&str> {
        self.get("attributes")?.get("type")?.as_str()
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    fn bool_field(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }
}

/// The body of a create or upsert answer: `{"id","success","errors","created"}`.
#[derive(Debug, Deserialize)]
struct SaveResponse {
    id: String,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiErrorItem>,
    #[serde(default)]
    created: Option<bool>,
}

impl SaveResponse {
    fn id(&self, status: StatusCode) -> Result<SalesforceId, SalesforceError> {
        if !self.success && !self.errors.is_empty() {
            return Err(SalesforceError::Api {
                status: status.as_u16(),
                errors: self.errors.clone(),
            });
        }
        SalesforceId::parse(&self.id).map_err(|_| SalesforceError::Unexpected {
            what: "id of a save response",
            status: status.as_u16(),
        })
    }
}

/// The `If-Modified-Since` value: an HTTP date in GMT.
pub(crate) fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> std::borrow::Cow<'_, str> {
    urlencoding::encode(s)
}

/// A body without the read-only `attributes` block.
fn body_of(record: &Record) -> Record {
    let mut body = record.clone();
    body.remove("attributes");
    body
}

impl Client {
    /// Reads `fields` of one record (`GET /sobjects/{Type}/{Id}?fields=…`); all fields when
    /// `fields` is empty. A deleted or merged-away record is [`ErrorClass::Gone`](super::ErrorClass).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, id = %id))]
    pub async fn get_record(
        &self,
        sobject: &str,
        id: &SalesforceId,
        fields: &[&str],
    ) -> Result<Record, SalesforceError> {
        match self.fetch(sobject, id, fields, None).await? {
            Fetched::Record(record) => Ok(record),
            Fetched::NotModified => Err(SalesforceError::Unexpected {
                what: "unconditional read",
                status: 304,
            }),
        }
    }

    /// Reads a record only if it changed after `since` (`If-Modified-Since`); 304 comes back as
    /// [`Fetched::NotModified`].
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, id = %id))]
    pub async fn get_record_if_modified_since(
        &self,
        sobject: &str,
        id: &SalesforceId,
        fields: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Fetched, SalesforceError> {
        self.fetch(sobject, id, fields, Some(since)).await
    }

    async fn fetch(
        &self,
        sobject: &str,
        id: &SalesforceId,
        fields: &[&str],
        since: Option<DateTime<Utc>>,
    ) -> Result<Fetched, SalesforceError> {
        let path = self.data_path(&format!("/sobjects/{}/{}", seg(sobject), id));
        let field_list = fields.join(",");
        let reply = self
            .send(Method::GET, &path, false, |mut r| {
                if !field_list.is_empty() {
                    r = r.query(&[("fields", field_list.as_str())]);
                }
                if let Some(since) = since {
                    r = r.header(reqwest::header::IF_MODIFIED_SINCE, http_date(since));
                }
                r
            })
            .await?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let reply = reply.success()?;
        Ok(Fetched::Record(reply.json("record")?))
    }

    /// Reads a record by an external id field (`GET /sobjects/{Type}/{Field}/{value}`). Several
    /// matches → [`SalesforceError::MultipleMatches`].
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, ext_field = %field))]
    pub async fn get_by_external_id(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
        fields: &[&str],
    ) -> Result<Record, SalesforceError> {
        let path = self.data_path(&format!(
            "/sobjects/{}/{}/{}",
            seg(sobject),
            seg(field),
            seg(value)
        ));
        let field_list = fields.join(",");
        let reply = self
            .send(Method::GET, &path, false, |r| {
                if field_list.is_empty() {
                    r
                } else {
                    r.query(&[("fields", field_list.as_str())])
                }
            })
            .await?;
        // A 300 (several matches) becomes `MultipleMatches` here too.
        reply.success()?.json("record")
    }

    /// Creates a record (`POST /sobjects/{Type}`, 201) and returns its id. Not idempotent:
    /// prefer [`Client::upsert`] for anything that may be retried.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject))]
    pub async fn create(
        &self,
        sobject: &str,
        record: &Record,
    ) -> Result<SalesforceId, SalesforceError> {
        let path = self.data_path(&format!("/sobjects/{}", seg(sobject)));
        let body = body_of(record);
        let reply = self
            .send(Method::POST, &path, true, |r| r.json(&body))
            .await?
            .success()?;
        let saved: SaveResponse = reply.json("create response")?;
        let id = saved.id(reply.status)?;
        tracing::debug!(id = %id, "created");
        Ok(id)
    }

    /// Updates fields of a record (`PATCH /sobjects/{Type}/{Id}`, 204). Send `null` to clear a
    /// field.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, id = %id))]
    pub async fn update(
        &self,
        sobject: &str,
        id: &SalesforceId,
        record: &Record,
    ) -> Result<(), SalesforceError> {
        let path = self.data_path(&format!("/sobjects/{}/{}", seg(sobject), id));
        let mut body = body_of(record);
        body.remove("Id");
        self.send(Method::PATCH, &path, true, |r| r.json(&body))
            .await?
            .success()?;
        Ok(())
    }

    /// Upserts by external id (`PATCH /sobjects/{Type}/{Field}/{value}`): 201 created, 200 or
    /// 204 updated, 300 several matches ([`SalesforceError::MultipleMatches`]).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, ext_field = %field))]
    pub async fn upsert(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
        record: &Record,
    ) -> Result<UpsertOutcome, SalesforceError> {
        let path = self.data_path(&format!(
            "/sobjects/{}/{}/{}",
            seg(sobject),
            seg(field),
            seg(value)
        ));
        let body = body_of(record);
        let reply = self
            .send(Method::PATCH, &path, true, |r| r.json(&body))
            .await?;
        match reply.status {
            StatusCode::MULTIPLE_CHOICES => Err(SalesforceError::from_response(300, &reply.body)),
            StatusCode::NO_CONTENT => Ok(UpsertOutcome {
                id: None,
                created: false,
            }),
            status if status.is_success() => {
                let saved: SaveResponse = reply.json("upsert response")?;
                Ok(UpsertOutcome {
                    id: Some(saved.id(status)?),
                    created: saved.created.unwrap_or(status == StatusCode::CREATED),
                })
            }
            status => Err(SalesforceError::from_response(status.as_u16(), &reply.body)),
        }
    }

    /// Deletes a record (`DELETE /sobjects/{Type}/{Id}`, 204). A second delete is
    /// `ENTITY_IS_DELETED` ([`ErrorClass::Gone`](super::ErrorClass)).
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), sobject = %sobject, id = %id))]
    pub async fn delete(&self, sobject: &str, id: &SalesforceId) -> Result<(), SalesforceError> {
        let path = self.data_path(&format!("/sobjects/{}/{}", seg(sobject), id));
        self.send(Method::DELETE, &path, true, |r| r)
            .await?
            .success()?;
        Ok(())
    }

    /// Reads the org's daily API allowance from `GET /limits` (`DailyApiRequests`).
    #[tracing::instrument(skip_all, fields(org = %self.org_id()))]
    pub async fn fetch_limits(&self) -> Result<super::ApiUsage, SalesforceError> {
        #[derive(Deserialize)]
        struct Daily {
            #[serde(rename = "Max")]
            max: u64,
            #[serde(rename = "Remaining")]
            remaining: u64,
        }
        #[derive(Deserialize)]
        struct Limits {
            #[serde(rename = "DailyApiRequests")]
            daily: Daily,
        }
        let path = self.data_path("/limits");
        let limits: Limits = self
            .send(Method::GET, &path, false, |r| r)
            .await?
            .success()?
            .json("limits")?;
        Ok(super::ApiUsage {
            used: limits.daily.max.saturating_sub(limits.daily.remaining),
            limit: limits.daily.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn if_modified_since_is_an_http_date_in_gmt() {
        let at = Utc
            .with_ymd_and_hms(2020, 11, 30, 15, 34, 54)
            .single()
            .expect("date");
        assert_eq!(http_date(at), "Mon, 30 Nov 2020 15:34:54 GMT");
    }

    #[test]
    fn record_helpers_read_typed_fields() {
        let record: Record = serde_json::from_str(
            r#"{"attributes":{"type":"Contact","url":"/x"},"Id":"0031I0000081tbPQAQ","IsDeleted":false,"Email":null}"#,
        )
        .expect("record");
        assert_eq!(record.sobject_type(), Some("Contact"));
        assert_eq!(
            record.sf_id().map(|i| i.to_string()).as_deref(),
            Some("0031I0000081tbPQAQ")
        );
        assert_eq!(record.bool_field("IsDeleted"), Some(false));
        assert_eq!(record.str_field("Email"), None);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
