//! The Composite resource: several REST requests in one call (`POST /composite`), which counts
//! as one call against the org's daily limit. A call holds at most 25 subrequests, at most 5 of
//! them sObject Collections or query operations; every subrequest built here is one of those.
//!
//! Subrequests run in the order sent (`collateSubrequests: false`) and each on its own
//! (`allOrNone: false`): one failing stops none of the others. Each answer is read as the same
//! request sent alone would be: a collections write's per-record results, a query's first page,
//! or the error its status and body stand for. One subrequest alone is sent as a plain request:
//! the same one call, without the envelope.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::composite::{MAX_COLLECTION, RecordResult, typed};
use super::error::SalesforceError;
use super::query::QueryPage;
use super::rest::seg;
use super::{Client, Record};

/// The most subrequests one composite call holds.
pub const MAX_SUBREQUESTS: usize = 25;

/// The most sObject Collections or query subrequests one composite call holds.
pub const MAX_COLLECTIONS_OR_QUERIES: usize = 5;

/// One request of a composite call: a collections write or a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Subrequest {
    method: Method,
    /// The path under the data path (`/composite/sobjects`, `/query?q=…`).
    resource: String,
    body: Option<Value>,
}

fn records_body(sobject: &str, records: &[Record]) -> Result<Value, SalesforceError> {
    if records.len() > MAX_COLLECTION {
        return Err(SalesforceError::TooManyRecords {
            count: records.len(),
            max: MAX_COLLECTION,
        });
    }
    if records.is_empty() {
        return Err(SalesforceError::InvalidRequest(
            "a collections write needs at least one record",
        ));
    }
    Ok(json!({ "allOrNone": false, "records": typed(sobject, records) }))
}

impl Subrequest {
    /// Creates up to 200 `sobject` records (`POST /composite/sobjects`).
    pub fn create_collection(sobject: &str, records: &[Record]) -> Result<Self, SalesforceError> {
        Ok(Self {
            method: Method::POST,
            resource: "/composite/sobjects".into(),
            body: Some(records_body(sobject, records)?),
        })
    }

    /// Updates up to 200 `sobject` records, each carrying its `Id` (`PATCH /composite/sobjects`).
    pub fn update_collection(sobject: &str, records: &[Record]) -> Result<Self, SalesforceError> {
        if records
            .iter()
            .any(|r| !r.contains_key("Id") && !r.contains_key("id"))
        {
            return Err(SalesforceError::InvalidRequest(
                "every record of a collections update needs an id",
            ));
        }
        Ok(Self {
            method: Method::PATCH,
            resource: "/composite/sobjects".into(),
            body: Some(records_body(sobject, records)?),
        })
    }

    /// Upserts up to 200 `sobject` records by the external id field `field`
    /// (`PATCH /composite/sobjects/{Type}/{Field}`).
    pub fn upsert_collection(
        sobject: &str,
        field: &str,
        records: &[Record],
    ) -> Result<Self, SalesforceError> {
        Ok(Self {
            method: Method::PATCH,
            resource: format!("/composite/sobjects/{}/{}", seg(sobject), seg(field)),
            body: Some(records_body(sobject, records)?),
        })
    }

    /// Runs a SOQL query (`GET /query?q=…`); its answer is the first page.
    pub fn query(soql: &str) -> Self {
        let q: String = form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        Self {
            method: Method::GET,
            resource: format!("/query?q={q}"),
            body: None,
        }
    }

    fn writes(&self) -> bool {
        self.method != Method::GET
    }
}

/// One subrequest's answer: its HTTP status and body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SubResult {
    /// The status the subrequest was answered with.
    #[serde(rename = "httpStatusCode")]
    pub status: u16,
    /// The body it was answered with (`null` when it had none).
    #[serde(default)]
    pub body: Value,
}

impl SubResult {
    /// The body of a success, or the error the answer stands for.
    pub fn into_body(self) -> Result<Value, SalesforceError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            let raw = serde_json::to_vec(&self.body).unwrap_or_default();
            Err(SalesforceError::from_response(self.status, &raw))
        }
    }

    /// A collections write's per-record results, one per record sent (`expected`).
    pub fn record_results(self, expected: usize) -> Result<Vec<RecordResult>, SalesforceError> {
        let status = self.status;
        let results: Vec<RecordResult> =
            serde_json::from_value(self.into_body()?).map_err(|_| SalesforceError::Unexpected {
                what: "collections results",
                status,
            })?;
        if results.len() != expected {
            return Err(SalesforceError::Unexpected {
                what: "collections result count",
                status,
            });
        }
        Ok(results)
    }

    /// A query's first page.
    pub fn query_page(self) -> Result<QueryPage, SalesforceError> {
        let status = self.status;
        serde_json::from_value(self.into_body()?).map_err(|_| SalesforceError::Unexpected {
            what: "query page",
            status,
        })
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "compositeResponse")]
    results: Vec<SubResult>,
}

/// Refuses a call over the limits before it goes out.
fn check_limits(subrequests: &[Subrequest]) -> Result<(), SalesforceError> {
    if subrequests.len() > MAX_SUBREQUESTS {
        return Err(SalesforceError::TooManyRecords {
            count: subrequests.len(),
            max: MAX_SUBREQUESTS,
        });
    }
    // Every subrequest built here is a collections or query operation.
    if subrequests.len() > MAX_COLLECTIONS_OR_QUERIES {
        return Err(SalesforceError::TooManyRecords {
            count: subrequests.len(),
            max: MAX_COLLECTIONS_OR_QUERIES,
        });
    }
    Ok(())
}

impl Client {
    /// Sends `subrequests` in one call and returns one answer per subrequest, in order. An
    /// error is the whole call's (nothing, or not all, may have run; a write may have): transport,
    /// session, limit, or a refusal of the call as a whole.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), subrequests = subrequests.len()))]
    pub async fn composite(
        &self,
        subrequests: &[Subrequest],
    ) -> Result<Vec<SubResult>, SalesforceError> {
        check_limits(subrequests)?;
        let write = subrequests.iter().any(Subrequest::writes);
        if let [one] = subrequests {
            let path = self.data_path(&one.resource);
            let reply = self
                .send(one.method.clone(), &path, write, |r| match &one.body {
                    Some(b) => r.json(b),
                    None => r,
                })
                .await?;
            if matches!(reply.status.as_u16(), 401 | 403 | 429) || reply.status.is_server_error() {
                return Err(SalesforceError::from_response(
                    reply.status.as_u16(),
                    &reply.body,
                ));
            }
            let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            return Ok(vec![SubResult {
                status: reply.status.as_u16(),
                body,
            }]);
        }
        if subrequests.is_empty() {
            return Ok(Vec::new());
        }
        let version_path = self.data_path("");
        let list: Vec<Value> = subrequests
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let mut v = json!({
                    "method": s.method.as_str(),
                    "url": format!("{version_path}{}", s.resource),
                    "referenceId": format!("s{n}"),
                });
                if let Some(b) = &s.body {
                    v["body"] = b.clone();
                }
                v
            })
            .collect();
        let body = json!({
            "allOrNone": false,
            "collateSubrequests": false,
            "compositeRequest": list,
        });
        let path = self.data_path("/composite");
        let reply = self
            .send(Method::POST, &path, write, |r| r.json(&body))
            .await?
            .success()?;
        let envelope: Envelope = reply.json("composite response")?;
        match <[SubResult; 1]>::try_from(envelope.results) {
            // A call refused whole (a limit) answers with one result that names no subrequest.
            Ok([one]) if subrequests.len() > 1 => {
                Err(one
                    .into_body()
                    .err()
                    .unwrap_or(SalesforceError::Unexpected {
                        what: "composite result count",
                        status: 200,
                    }))
            }
            Ok([one]) => Ok(vec![one]),
            Err(results) if results.len() == subrequests.len() => Ok(results),
            Err(_) => Err(SalesforceError::Unexpected {
                what: "composite result count",
                status: 200,
            }),
        }
    }

    /// Runs `queries` (each one's text within the length a request allows) with as few calls
    /// as the composite limits allow, and returns every row of each, in order; further pages
    /// are fetched one call each.
    pub async fn query_each(
        &self,
        queries: &[String],
    ) -> Result<Vec<Vec<Record>>, SalesforceError> {
        let mut out = Vec::with_capacity(queries.len());
        for group in queries.chunks(MAX_COLLECTIONS_OR_QUERIES) {
            let subs: Vec<Subrequest> = group.iter().map(|q| Subrequest::query(q)).collect();
            for result in self.composite(&subs).await? {
                let page = result.query_page()?;
                out.push(self.rest_of(page).await?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_subrequest_carries_its_text_url_encoded() {
        let sub = Subrequest::query("SELECT Id FROM Contact WHERE Email = 'a+b@x.example'");
        assert_eq!(
            sub.resource,
            "/query?q=SELECT+Id+FROM+Contact+WHERE+Email+%3D+%27a%2Bb%40x.example%27"
        );
        assert!(!sub.writes());
    }

    #[test]
    fn calls_over_the_limits_are_refused_before_they_go_out() {
        let q = Subrequest::query("SELECT Id FROM Account");
        assert!(check_limits(&vec![q.clone(); MAX_COLLECTIONS_OR_QUERIES]).is_ok());
        assert!(matches!(
            check_limits(&vec![q; MAX_COLLECTIONS_OR_QUERIES + 1]),
            Err(SalesforceError::TooManyRecords { count: 6, max: 5 })
        ));
    }

    #[test]
    fn a_failed_subrequest_reads_as_the_error_its_status_and_body_stand_for() {
        let failed: SubResult = serde_json::from_value(json!({
            "body": [{"errorCode": "INVALID_FIELD", "message": "No such column 'X'"}],
            "httpHeaders": {},
            "httpStatusCode": 400,
            "referenceId": "s0",
        }))
        .expect("result");
        let e = failed.record_results(1).expect_err("an error");
        assert_eq!(e.code(), Some("INVALID_FIELD"));
    }

    #[test]
    fn collections_writes_hold_one_to_200_records() {
        let r: Record = serde_json::from_str(r#"{"Name":"Acme"}"#).expect("record");
        assert!(Subrequest::create_collection("Account", &[]).is_err());
        assert!(Subrequest::create_collection("Account", &vec![r.clone(); 200]).is_ok());
        assert!(Subrequest::create_collection("Account", &vec![r.clone(); 201]).is_err());
        assert!(
            Subrequest::update_collection("Account", &[r]).is_err(),
            "no id"
        );
    }
}
