//! The change log as the app reads it: the entries after a sequence number, waiting up to a
//! given time for one to land when there is none yet (a long poll, and the server-sent events
//! stream, which is a long poll that never ends).
//!
//! Only durable entries are read (see `store::feed`), so an entry a reader saw survives a crash
//! under the same number, and a reader that moves its cursor to `next` never skips one.

use std::time::Duration;

use tokio::time::Instant;

use super::{LocalError, LocalResult};
use crate::domain::TypeFilter;
use crate::store::{ChangesPage, ChangesRead, Store};

/// What a reader asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRequest {
    /// The last sequence number the reader has; `None`: from the oldest entry kept.
    pub after: Option<u64>,
    /// Entries at most.
    pub limit: usize,
    /// How long to wait for an entry when there is none yet (zero: answer at once).
    pub wait: Duration,
    /// The types wanted.
    pub filter: TypeFilter,
}

/// The entries after `req.after`; with a wait, returns as soon as one lands, or empty when the
/// wait is over. `next` is where the reader goes on (past entries the filter skipped too).
/// [`LocalError::Gone`] when the entries right after `after` were compacted away.
pub async fn read(store: &Store, req: &FeedRequest) -> LocalResult<ChangesPage> {
    let deadline = Instant::now() + req.wait;
    let mut committed = store.watch_changes();
    let mut after = match req.after {
        Some(after) => after,
        None => store.compacted_through()?,
    };
    loop {
        committed.borrow_and_update();
        let upto = store.durable_changes().await?;
        let page = match store.read_changes(after, upto, req.limit, &req.filter)? {
            ChangesRead::Gone { earliest } => return Err(LocalError::Gone { earliest }),
            ChangesRead::Page(page) => page,
        };
        if !page.entries.is_empty() || Instant::now() >= deadline {
            return Ok(page);
        }
        if page.next > after {
            // Skipped entries of unwanted types: read on from there.
            after = page.next;
            continue;
        }
        tokio::select! {
            _ = committed.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
