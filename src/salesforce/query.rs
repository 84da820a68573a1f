//! SOQL `query` and `queryAll` as streams of records, following `nextRecordsUrl` page by page
//! until `done` (a page holds up to 2,000 records, and may hold fewer).
//!
//! A page is fetched only when the stream is polled past the previous one, so a consumer that
//! stops early spends no further API calls. The stream ends after the first error.

use futures::stream::{self, Stream, TryStreamExt as _};
use reqwest::Method;
use serde::Deserialize;
use tracing::Instrument as _;

use super::error::SalesforceError;
use super::{Client, Record};

/// One page of query results.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Rows matching the query in total (all pages).
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// Where the next page is, when `done` is false.
    #[serde(default)]
    pub next_records_url: Option<String>,
    /// This page's records.
    #[serde(default)]
    pub records: Vec<Record>,
}

enum Cursor {
    First { soql: String, all: bool },
    Next(String),
}

impl Client {
    /// Runs a SOQL query (`GET /query?q=…`) and yields every record across all pages.
    pub fn query(
        &self,
        soql: &str,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + Send + 'static {
        records(self.query_pages(soql, false))
    }

    /// Like [`Client::query`] but through `queryAll`: deleted and merged rows still in the recycle
    /// bin, and archived activities, are included.
    pub fn query_all(
        &self,
        soql: &str,
    ) -> impl Stream<Item = Result<Record, SalesforceError>> + Send + 'static {
        records(self.query_pages(soql, true))
    }

    /// The pages of a query (`all` selects `queryAll`), fetched one at a time as the stream is
    /// polled.
    pub fn query_pages(
        &self,
        soql: &str,
        all: bool,
    ) -> impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static {
        let client = self.clone();
        let start = Cursor::First {
            soql: soql.to_string(),
            all,
        };
        stream::try_unfold(Some(start), move |cursor| {
            let client = client.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let span = tracing::debug_span!("sf.query", org = %client.org_id());
                let page = client.fetch_page(cursor).instrument(span).await?;
                let next = match (&page.done, &page.next_records_url) {
                    (false, Some(url)) => Some(Cursor::Next(url.clone())),
                    _ => None,
                };
                Ok(Some((page, next)))
            }
        })
    }

    /// Every record of a query from its first `page` on, fetching the further pages (one call
    /// each) its `nextRecordsUrl` leads to.
    pub async fn rest_of(&self, page: QueryPage) -> Result<Vec<Record>, SalesforceError> {
        let mut records = page.records;
        let mut next = page.next_records_url.filter(|_| !page.done);
        while let Some(url) = next {
            let page = self.fetch_page(Cursor::Next(url)).await?;
            records.extend(page.records);
            next = page.next_records_url.filter(|_| !page.done);
        }
        Ok(records)
    }

    async fn fetch_page(&self, cursor: Cursor) -> Result<QueryPage, SalesforceError> {
        let reply = match cursor {
            Cursor::First { soql, all } => {
                let path = self.data_path(if all { "/queryAll" } else { "/query" });
                self.send(Method::GET, &path, false, |r| {
                    r.query(&[("q", soql.as_str())])
                })
                .await?
            }
            Cursor::Next(url) => self.send(Method::GET, &url, false, |r| r).await?,
        };
        let page: QueryPage = reply.success()?.json("query page")?;
        tracing::debug!(
            org = %self.org_id(),
            records = page.records.len(),
            done = page.done,
            "query page"
        );
        Ok(page)
    }
}

fn records(
    pages: impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static,
) -> impl Stream<Item = Result<Record, SalesforceError>> + Send + 'static {
    pages
        .map_ok(|page| stream::iter(page.records.into_iter().map(Ok)))
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_page_is_read_from_the_documented_shape() {
        let body = r#"{"totalSize":2001,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gD0000002HU6KIAW-2000","records":[{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001D000000IRFmaIAH"},"Id":"001D000000IRFmaIAH","Name":"Acme"}]}"#;
        let page: QueryPage = serde_json::from_str(body).expect("page");
        assert_eq!(page.total_size, 2001);
        assert!(!page.done);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v62.0/query/01gD0000002HU6KIAW-2000")
        );
        assert_eq!(page.records.len(), 1);
    }
}
