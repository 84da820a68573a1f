//! "Import from Salesforce" on request: registers the import and runs it in the background; its
//! progress is read from [`Imports`](crate::sync::import::Imports) by id. The list views an
//! import can name are read from the org.

use crate::domain::{ObjectType, OrgId};
use crate::salesforce::ListView;
use crate::store::Store;
use crate::sync::import::{self, ImportKind, ImportStatus};
use crate::sync::orgs::PullContext;

use super::{LocalError, LocalResult};

/// Starts an import for a connected org and returns its first status (state `running`).
pub fn start(
    store: &Store,
    ctx: &PullContext,
    org: OrgId,
    what: ImportKind,
) -> LocalResult<ImportStatus> {
    let client = ctx
        .orgs
        .get(&org)
        .ok_or_else(|| LocalError::NotConnected(org.clone()))?;
    let status = ctx.imports.begin(org, what);
    let (store, ctx, first) = (store.clone(), ctx.clone(), status.clone());
    tokio::spawn(async move {
        let imports = ctx.imports.clone();
        let progress = move |s: &ImportStatus| imports.update(s);
        // The outcome is in the status (state `failed` with the error); nothing else to do.
        let _ = import::run(&store, &client, &ctx.rules, first, &progress).await;
    });
    Ok(status)
}

/// The list views of `object` in a connected org (one call, or more for an org with many).
pub async fn list_views(
    ctx: &PullContext,
    org: OrgId,
    object: ObjectType,
) -> LocalResult<Vec<ListView>> {
    let client = ctx
        .orgs
        .get(&org)
        .ok_or_else(|| LocalError::NotConnected(org.clone()))?;
    Ok(client.list_views(object).await?)
}

/// An import's latest status.
pub fn status(ctx: &PullContext, id: u64) -> LocalResult<ImportStatus> {
    ctx.imports.get(id).ok_or(LocalError::NotFound("import"))
}
