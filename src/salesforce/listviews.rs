//! List views: an object's list views (the List Views resource, `GET
//! /sobjects/{Type}/listviews`, followed through `nextRecordsUrl`) and the SOQL query one runs
//! (the List View Describe resource's `query`), so "Import from Salesforce" can bring in the
//! records of a view a person already keeps in the org.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Client;
use super::error::SalesforceError;
use crate::domain::{ObjectType, SalesforceId};

/// One list view of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    /// Its id (`00B…`).
    pub id: String,
    /// Its label, as people see it.
    pub label: String,
    /// Its API name.
    pub developer_name: String,
    /// Whether its records can be read by a SOQL query.
    #[serde(default)]
    pub soql_compatible: bool,
}

/// A page of the List Views resource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListViewsPage {
    #[serde(default)]
    listviews: Vec<ListView>,
    #[serde(default)]
    next_records_url: Option<String>,
}

/// What the List View Describe resource says of a view: the query that selects its records.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListViewDescribe {
    /// The SOQL query the view runs (its columns, scope, filter and order).
    pub query: String,
    /// The object it lists.
    pub sobject_type: String,
}

/// The most pages of list views read (200 views a page is far beyond what an org keeps).
const MAX_PAGES: usize = 50;

impl Client {
    /// The list views of `object` the connection's user can see.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), object = object.api_name()))]
    pub async fn list_views(&self, object: ObjectType) -> Result<Vec<ListView>, SalesforceError> {
        let mut path = self.data_path(&format!("/sobjects/{}/listviews", object.api_name()));
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: ListViewsPage = self
                .send(Method::GET, &path, false, |r| r)
                .await?
                .success()?
                .json("list views")?;
            out.extend(page.listviews);
            match page.next_records_url {
                Some(next) if !next.is_empty() => path = next,
                _ => break,
            }
        }
        Ok(out)
    }

    /// The describe of one list view of `object`: the query that selects its records.
    #[tracing::instrument(skip_all, fields(org = %self.org_id(), object = object.api_name()))]
    pub async fn list_view_describe(
        &self,
        object: ObjectType,
        view: &SalesforceId,
    ) -> Result<ListViewDescribe, SalesforceError> {
        let path = self.data_path(&format!(
            "/sobjects/{}/listviews/{view}/describe",
            object.api_name()
        ));
        self.send(Method::GET, &path, false, |r| r)
            .await?
            .success()?
            .json("list view describe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shapes_are_read() {
        let page: ListViewsPage = serde_json::from_str(
            r#"{"done":true,"listviews":[{"describeUrl":"/services/data/v62.0/sobjects/Account/listviews/00BD0000005WcBeMAK/describe","developerName":"MyAccounts","id":"00BD0000005WcBeMAK","label":"My Accounts","resultsUrl":"/services/data/v62.0/sobjects/Account/listviews/00BD0000005WcBeMAK/results","soqlCompatible":true,"url":"/services/data/v62.0/sobjects/Account/listviews/00BD0000005WcBeMAK"}],"nextRecordsUrl":null,"size":1,"sobjectType":"Account"}"#,
        )
        .expect("list views");
        assert_eq!(page.listviews[0].developer_name, "MyAccounts");
        assert!(page.listviews[0].soql_compatible);
        assert_eq!(page.next_records_url, None);
        let d: ListViewDescribe = serde_json::from_str(
            r#"{"columns":[],"id":"00BD0000005WcBe","orderBy":[],"query":"SELECT Name, Id FROM Account USING SCOPE mine ORDER BY Name ASC NULLS FIRST, Id ASC NULLS FIRST","scope":"mine","sobjectType":"Account","whereCondition":{"conditions":[],"conjunction":"and"}}"#,
        )
        .expect("describe");
        assert!(d.query.contains("USING SCOPE mine"));
        assert_eq!(d.sobject_type, "Account");
    }
}
