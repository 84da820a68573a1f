//! Import ("Import from Salesforce"): Accounts by a SOQL filter; the Contacts and Leads of an
//! Account; the Opportunities of an Account; the records of a list view (its describe's query,
//! selecting the pulled fields instead of the view's columns). Pages are followed with `nextRecordsUrl` (2,000
//! rows a page) and every row goes through the same apply rules as a pulled notification, so an
//! import matches, links, quarantines and keeps provenance exactly like the inbox does.
//!
//! [`Imports`] holds the progress of imports started through the API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use crate::domain::{ObjectType, OrgId, SalesforceId};
use crate::salesforce::{Client, Condition, SalesforceError, Soql, reselect};
use crate::store::{Store, StoreError};

use super::pull::{self, Applied, Origin, PulledRecord, Rules, Target};

/// What to import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImportKind {
    /// Accounts matching a SOQL `WHERE` clause (empty: every Account).
    Accounts {
        /// The condition, e.g. `Industry = 'Energy'`.
        #[serde(default)]
        filter: String,
    },
    /// The Account itself, its Contacts, and the open Leads whose `Company` is its name.
    Contacts {
        /// The Account id.
        account: SalesforceId,
    },
    /// The Account itself and its Opportunities.
    Opportunities {
        /// The Account id.
        account: SalesforceId,
    },
    /// The records of one list view of an object.
    ListView {
        /// `Account`, `Contact`, `Lead` or `Opportunity`.
        object: ObjectType,
        /// The list view's id (`00B…`).
        list_view: SalesforceId,
    },
}

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// Reading and applying.
    Running,
    /// Every row applied.
    Done,
    /// Stopped by an error; the rows applied so far stay applied.
    Failed,
}

/// An import's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStatus {
    /// The import id.
    pub id: u64,
    /// The org.
    pub org: OrgId,
    /// What is imported.
    pub what: ImportKind,
    /// Where it is.
    pub state: ImportState,
    /// Rows to apply, once the first page of each query told.
    pub total: u64,
    /// Rows applied so far.
    pub processed: u64,
    /// Local records created.
    pub created: u64,
    /// Local records matched and updated or linked.
    pub updated: u64,
    /// Rows whose local copy already held these values, or newer ones: those of sfsync's own
    /// write to the org after the row was read.
    pub unchanged: u64,
    /// Rows quarantined as conflicts.
    pub quarantined: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl ImportStatus {
    /// A fresh status for an import about to start.
    pub fn new(id: u64, org: OrgId, what: ImportKind) -> Self {
        Self {
            id,
            org,
            what,
            state: ImportState::Running,
            total: 0,
            processed: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            quarantined: 0,
            error: None,
        }
    }

    fn count(&mut self, applied: &Applied) {
        self.processed += 1;
        match applied {
            Applied::Created { .. } => self.created += 1,
            Applied::Updated { .. } | Applied::Relinked { .. } | Applied::Unlinked { .. } => {
                self.updated += 1;
            }
            Applied::Unchanged { .. } | Applied::Ignored { .. } | Applied::Stale => {
                self.unchanged += 1;
            }
            Applied::Quarantined { .. } => self.quarantined += 1,
        }
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A Salesforce call failed.
    #[error("import: {0}")]
    Salesforce(#[from] SalesforceError),
    /// The store failed.
    #[error("import: {0}")]
    Store(#[from] StoreError),
    /// The list view cannot be read by a query.
    #[error("import: list view {0} cannot be read by a query (it is not SOQL-compatible)")]
    NotQueryable(SalesforceId),
}

/// Imports started through the API, by id.
#[derive(Debug, Default)]
pub struct Imports {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, ImportStatus>>,
}

impl Imports {
    /// Registers a new import and returns its status (state `running`).
    pub fn begin(&self, org: OrgId, what: ImportKind) -> ImportStatus {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let status = ImportStatus::new(id, org, what);
        self.lock().insert(id, status.clone());
        status
    }

    /// Records an import's progress.
    pub fn update(&self, status: &ImportStatus) {
        self.lock().insert(status.id, status.clone());
    }

    /// An import's latest status.
    pub fn get(&self, id: u64) -> Option<ImportStatus> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ImportStatus>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The import query of an object: every pulled field, in `Id` order.
fn select(object: ObjectType) -> Soql {
    Soql::select(pull::fields_for(object), object.api_name()).order_by(&["Id"])
}

/// Runs an import to the end, calling `progress` after every page. Returns the final status
/// (state `done`); on error the status so far is reported through `progress` with state
/// `failed` before the error is returned.
pub async fn run(
    store: &Store,
    client: &Client,
    rules: &Rules,
    mut status: ImportStatus,
    progress: &(dyn Fn(&ImportStatus) + Send + Sync),
) -> Result<ImportStatus, ImportError> {
    let result = run_inner(store, client, rules, &mut status, progress).await;
    match result {
        Ok(()) => {
            status.state = ImportState::Done;
            progress(&status);
            tracing::info!(org = %status.org, import = status.id, processed = status.processed, created = status.created, "import done");
            Ok(status)
        }
        Err(e) => {
            status.state = ImportState::Failed;
            status.error = Some(e.to_string());
            progress(&status);
            tracing::warn!(org = %status.org, import = status.id, error = %e, "import failed");
            Err(e)
        }
    }
}

async fn run_inner(
    store: &Store,
    client: &Client,
    rules: &Rules,
    status: &mut ImportStatus,
    progress: &(dyn Fn(&ImportStatus) + Send + Sync),
) -> Result<(), ImportError> {
    let mut queries: Vec<(ObjectType, Soql)> = Vec::new();
    match status.what.clone() {
        ImportKind::Accounts { filter } => queries.push((
            ObjectType::Account,
            select(ObjectType::Account).raw_where(&filter),
        )),
        ImportKind::Contacts { account } => {
            let name = apply_account(store, client, rules, status, &account).await?;
            progress(status);
            queries.push((
                ObjectType::Contact,
                select(ObjectType::Contact).where_eq("AccountId", account.as_str()),
            ));
            if let Some(name) = name {
                queries.push((
                    ObjectType::Lead,
                    select(ObjectType::Lead)
                        .where_eq("Company", &name)
                        .filter(Condition::is("IsConverted", false)),
                ));
            }
        }
        ImportKind::Opportunities { account } => {
            apply_account(store, client, rules, status, &account).await?;
            progress(status);
            queries.push((
                ObjectType::Opportunity,
                select(ObjectType::Opportunity).where_eq("AccountId", account.as_str()),
            ));
        }
        ImportKind::ListView { object, list_view } => {
            let text = list_view_query(client, object, &list_view).await?;
            return apply_pages(store, client, rules, status, progress, vec![(object, text)]).await;
        }
    }
    let queries = queries
        .into_iter()
        .map(|(object, soql)| (object, soql.to_string()))
        .collect();
    apply_pages(store, client, rules, status, progress, queries).await
}

/// The query of a list view, selecting the pulled fields of its object.
async fn list_view_query(
    client: &Client,
    object: ObjectType,
    view: &SalesforceId,
) -> Result<String, ImportError> {
    let describe = client.list_view_describe(object, view).await?;
    if describe.sobject_type != object.api_name() {
        return Err(ImportError::NotQueryable(view.clone()));
    }
    reselect(&describe.query, pull::fields_for(object))
        .ok_or_else(|| ImportError::NotQueryable(view.clone()))
}

/// Runs each query page by page and applies every row as a pulled record, [`pull::APPLY_CHUNK`]
/// rows to a store transaction.
async fn apply_pages(
    store: &Store,
    client: &Client,
    rules: &Rules,
    status: &mut ImportStatus,
    progress: &(dyn Fn(&ImportStatus) + Send + Sync),
    queries: Vec<(ObjectType, String)>,
) -> Result<(), ImportError> {
    let origin = Origin::new(format!("import:{}", status.id));
    for (object, soql) in queries {
        let mut pages = std::pin::pin!(client.query_pages(&soql, false));
        let mut first = true;
        while let Some(page) = pages.try_next().await? {
            if first {
                status.total += page.total_size;
                first = false;
            }
            for chunk in page.records.chunks(pull::APPLY_CHUNK) {
                let records: Vec<PulledRecord<'_>> = chunk.iter().map(|r| (r, None)).collect();
                let applied = pull::commit_records(
                    store,
                    &status.org,
                    rules,
                    object,
                    &records,
                    &origin,
                    Target::Ladder,
                )?;
                for a in &applied {
                    status.count(a);
                }
            }
            progress(status);
        }
    }
    Ok(())
}

/// Applies the Account an import hangs off and returns its name.
async fn apply_account(
    store: &Store,
    client: &Client,
    rules: &Rules,
    status: &mut ImportStatus,
    account: &SalesforceId,
) -> Result<Option<String>, ImportError> {
    let record = client
        .get_record("Account", account, pull::fields_for(ObjectType::Account))
        .await?;
    status.total += 1;
    let origin = Origin::new(format!("import:{}", status.id));
    let applied = pull::commit_record(
        store,
        &status.org,
        rules,
        ObjectType::Account,
        &record,
        &origin,
        Target::Ladder,
        None,
    )?;
    status.count(&applied);
    Ok(record
        .get("Name")
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_filter_selects_everything_in_id_order() {
        let q = select(ObjectType::Account).raw_where(" ").to_string();
        assert!(q.starts_with("SELECT Id, Name"));
        assert!(q.ends_with("FROM Account ORDER BY Id"));
        let q = select(ObjectType::Account)
            .raw_where("Industry = 'Energy'")
            .to_string();
        assert!(q.ends_with("FROM Account WHERE Industry = 'Energy' ORDER BY Id"));
    }

    #[test]
    fn import_kinds_read_from_the_api_shape() {
        let k: ImportKind =
            serde_json::from_str(r#"{"kind":"opportunities","account":"001000000000001"}"#)
                .expect("kind");
        assert!(matches!(k, ImportKind::Opportunities { .. }));
        let k: ImportKind = serde_json::from_str(
            r#"{"kind":"list_view","object":"Lead","list_view":"00BD0000005WcBe"}"#,
        )
        .expect("kind");
        assert!(matches!(
            k,
            ImportKind::ListView {
                object: ObjectType::Lead,
                ..
            }
        ));
        let k: ImportKind = serde_json::from_str(r#"{"kind":"accounts"}"#).expect("kind");
        assert_eq!(
            k,
            ImportKind::Accounts {
                filter: String::new()
            }
        );
    }
}
