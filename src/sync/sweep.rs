//! The catch-up sweep: per org and object, a `(SystemModstamp, Id)` cursor over `queryAll`
//! finds every record changed or deleted since the last sweep and feeds it to the same pending
//! queue the webhooks feed. It closes the gaps Outbound Messages leave: they are dropped after
//! 24 h of failed delivery, and deletes and merge losers send none at all.
//!
//! One `queryAll` per object covers both changes and deletes (`IsDeleted` tells them apart).
//! Rows are stored as pending entries through [`Store::ingest`] with a dedupe id of
//! `sweep:{object}:{id}:{stamp}`, made durable, and only then is the cursor moved, so a crash
//! repeats a page rather than losing one. The worker skips what it already applied.
//!
//! An object with a full re-read request (a Change Data Capture wildcard or overflow event, see
//! [`Store::resync_requests`]) is swept from the beginning once, then the request is cleared.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::TryStreamExt as _;

use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};
use crate::salesforce::{Client, Condition, Record, RecordExt as _, SalesforceError, Soql};
use crate::store::{DedupeSource, Delivery, Store, StoreError};

use super::pull::{SAME_SECOND_MARGIN_MS, parse_datetime};

/// How far back the first sweep of an org looks (Outbound Messages retry for 24 h).
pub const FIRST_LOOKBACK_HOURS: i64 = 24;

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A Salesforce call failed; the cursor stays where it was.
    #[error("sweep: {0}")]
    Salesforce(#[from] SalesforceError),
    /// The store failed.
    #[error("sweep: {0}")]
    Store(#[from] StoreError),
}

/// Where an object's sweep resumes: the last `(SystemModstamp, Id)` it stored.
pub use crate::store::SweepCursor as Cursor;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Changed records queued.
    pub changed: u64,
    /// Deleted records queued.
    pub deleted: u64,
    /// Rows already queued by an earlier sweep.
    pub duplicates: u64,
    /// API calls made.
    pub api_calls: u64,
    /// Objects re-read from the beginning because a change event asked for it.
    pub full_rereads: u64,
}

/// Sweeps one org: every pulled object in turn.
pub async fn sweep_org(store: &Store, client: &Client) -> Result<SweepReport, SweepError> {
    sweep_org_at(store, client, Utc::now()).await
}

/// [`sweep_org`] as if the clock read `now`: rows stamped in the seconds just before `now` are
/// not yet settled (tests pass a later `now` to settle them without waiting).
pub async fn sweep_org_at(
    store: &Store,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<SweepReport, SweepError> {
    let org = client.org_id().clone();
    let calls_before = client.api_calls();
    let mut report = SweepReport::default();
    let resync = store.resync_tokens(&org)?;
    for object in ObjectType::ALL {
        let request = resync.iter().find(|(o, _)| *o == object).map(|(_, t)| t);
        sweep_object(
            store,
            client,
            &org,
            object,
            request.is_some(),
            now,
            &mut report,
        )
        .await?;
        if let Some(token) = request {
            store.clear_resync(&org, object, token)?;
            report.full_rereads += 1;
        }
    }
    report.api_calls = client.api_calls().saturating_sub(calls_before);
    store.set_last_sweep(&org, Utc::now())?;
    tracing::info!(org = %org, changed = report.changed, deleted = report.deleted, calls = report.api_calls, "sweep done");
    Ok(report)
}

#[tracing::instrument(skip_all, fields(org = %org, object = %object))]
async fn sweep_object(
    store: &Store,
    client: &Client,
    org: &OrgId,
    object: ObjectType,
    full: bool,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let cursor: Cursor = match store.sweep_cursor(org, object)? {
        Some(c) => c,
        None => Cursor {
            stamp_ms: (now - ChronoDuration::hours(FIRST_LOOKBACK_HOURS)).timestamp_millis(),
            id: String::new(),
        },
    };
    let mut pass = Pass::new(object, cursor, full, now);
    let from = DateTime::<Utc>::from_timestamp_millis(pass.start.stamp_ms).unwrap_or_default();
    // Whole-second literal, `>=`: rows at or before the cursor are dropped below, so a stamp
    // with milliseconds is never skipped.
    let soql = Soql::select(&["Id", "SystemModstamp", "IsDeleted"], object.api_name())
        .filter(Condition::since("SystemModstamp", from))
        .order_by(&["SystemModstamp", "Id"])
        .to_string();
    let mut pages = std::pin::pin!(client.query_pages(&soql, true));
    while let Some(page) = pages.try_next().await? {
        let deliveries = pass.rows(&page.records, report);
        if deliveries.is_empty() {
            continue;
        }
        let out = store.ingest_durably(org, deliveries, Utc::now()).await?;
        report.duplicates += out.duplicates;
        store.set_sweep_cursor(org, object, &pass.last)?;
    }
    if store.sweep_cursor(org, object)?.is_none() {
        // An empty first sweep still fixes its starting point.
        store.set_sweep_cursor(org, object, &pass.last)?;
    }
    Ok(())
}

/// One object's pass over its rows since the cursor.
struct Pass {
    object: ObjectType,
    /// Rows at or before this are already queued.
    start: Cursor,
    /// Where the next sweep resumes.
    last: Cursor,
    full: bool,
    /// Rows stamped after this (ms) are in a second that may still gain changes.
    settled_ms: i64,
    /// This run, named in the dedupe ids of rows that will be read again.
    run: i64,
    unsettled: bool,
}

impl Pass {
    fn new(object: ObjectType, cursor: Cursor, full: bool, now: DateTime<Utc>) -> Self {
        // A full re-read (a change event said records were missed) starts at the beginning;
        // the stored cursor never moves back.
        let start = if full {
            Cursor {
                stamp_ms: 0,
                id: String::new(),
            }
        } else {
            cursor.clone()
        };
        Self {
            object,
            start,
            last: cursor,
            full,
            settled_ms: now.timestamp_millis() - 1_000 - SAME_SECOND_MARGIN_MS,
            run: Utc::now().timestamp_millis(),
            unsettled: false,
        }
    }

    /// The deliveries of one page's rows past the start. Rows of a second that was not over
    /// when the query ran may still gain changes with the same stamp (or lower ids): they are
    /// queued, but the cursor stays before them so the next sweep reads them again, and their
    /// dedupe id names this run so that re-read is queued too.
    fn rows(&mut self, rows: &[Record], report: &mut SweepReport) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        for row in rows {
            let (Some(id), Some(stamp)) = (
                row.sf_id(),
                row.str_field("SystemModstamp").and_then(parse_datetime),
            ) else {
                continue;
            };
            let stamp_ms = stamp.timestamp_millis();
            if (stamp_ms, id.as_str()) <= (self.start.stamp_ms, self.start.id.as_str()) {
                continue;
            }
            let deleted = row.bool_field("IsDeleted") == Some(true);
            if deleted {
                report.deleted += 1;
            } else {
                report.changed += 1;
            }
            let settled = stamp_ms <= self.settled_ms;
            self.unsettled |= !settled;
            let run = (!settled || self.full).then_some(self.run);
            deliveries.push(delivery(self.object, &id, stamp, deleted, run));
            let past = (stamp_ms, id.as_str()) > (self.last.stamp_ms, self.last.id.as_str());
            if settled && !self.unsettled && past {
                self.last = Cursor {
                    stamp_ms,
                    id: id.to_string(),
                };
            }
        }
        deliveries
    }
}

fn delivery(
    object: ObjectType,
    id: &SalesforceId,
    stamp: DateTime<Utc>,
    deleted: bool,
    run: Option<i64>,
) -> Delivery {
    let mut dedupe_id = format!(
        "sweep:{}:{}:{}",
        object.api_name(),
        id,
        stamp.timestamp_millis()
    );
    if let Some(run) = run {
        dedupe_id.push_str(&format!(":{run}"));
    }
    Delivery {
        dedupe_id,
        source: DedupeSource::WebhookId,
        notifications: vec![Notification {
            object,
            record_id: id.clone(),
            change: if deleted {
                ChangeType::Delete
            } else {
                ChangeType::Update
            },
            system_modstamp: Some(stamp),
            modified_by: None,
        }],
        resync: Vec::new(),
        digest: None,
    }
}

/// The sweep's cursor for an object of an org, if it has run.
pub fn cursor(
    store: &Store,
    org: &OrgId,
    object: ObjectType,
) -> Result<Option<Cursor>, StoreError> {
    store.sweep_cursor(org, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_row_becomes_a_stamped_notification_with_a_stable_dedupe_id() {
        let id = SalesforceId::parse("0031I0000081tbP").expect("id");
        let at = parse_datetime("2024-05-01T10:00:00.000Z").expect("datetime");
        let d = delivery(ObjectType::Contact, &id, at, true, None);
        assert_eq!(d.dedupe_id, format!("sweep:Contact:{id}:1714557600000"));
        assert_eq!(d.notifications[0].change, ChangeType::Delete);
        assert_eq!(d.notifications[0].system_modstamp, Some(at));
    }
}
