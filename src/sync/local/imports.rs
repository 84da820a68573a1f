//! "Import from Salesforce" on request: registers the import and runs it in the background; its
//! progress is read from [`Imports`](crate::sync::import::Imports) by id.

use crate::domain::OrgId;
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

/// An import's latest status.
pub fn status(ctx: &PullContext, id: u64) -> LocalResult<ImportStatus> {
    ctx.imports.get(id).ok_or(LocalError::NotFound("import"))
}
