//! A person's hand on the changes an app webhook never took: retry one (the worker sends it
//! again at its next step, once) or discard it.

use super::outbox::DeadLetterAction;
use super::{LocalError, LocalResult};
use crate::store::{AppDeadLetter, Store};

/// Asks for a dead letter of `webhook` to be sent again, or drops it; returns it as it now
/// stands (as it stood, when discarded), once that is durable.
pub async fn resolve_dead_letter(
    store: &Store,
    webhook: &str,
    seq: u64,
    action: DeadLetterAction,
) -> LocalResult<AppDeadLetter> {
    let found = match action {
        DeadLetterAction::Retry => store.app_dead_letter(webhook, seq)?.map(|mut d| {
            d.retry_requested = true;
            d
        }),
        DeadLetterAction::Discard => store.remove_app_dead_letter(webhook, seq)?,
    };
    let dead = found.ok_or(LocalError::NotFound("dead letter"))?;
    if action == DeadLetterAction::Retry {
        store.put_app_dead_letter(&dead)?;
    }
    store.make_durable().await?;
    Ok(dead)
}
