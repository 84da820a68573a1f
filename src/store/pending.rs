//! The pending queue's entries and the inbox's working memory: many notifications for one
//! record collapse into one [`PendingEntry`] that keeps the newest `SystemModstamp` seen.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ChangeType, Notification, ObjectType, OrgId, SalesforceId};

/// A pending record's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The latest change type seen.
    pub change: ChangeType,
    /// The newest `SystemModstamp` seen, in milliseconds since the epoch.
    pub system_modstamp_ms: Option<i64>,
    /// How many notifications collapsed into this entry.
    pub notifications: u32,
    /// When the first of them arrived, in milliseconds since the epoch.
    pub first_seen_ms: i64,
}

impl PendingEntry {
    /// The newest `SystemModstamp` seen.
    pub fn system_modstamp(&self) -> Option<DateTime<Utc>> {
        self.system_modstamp_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    }
}

/// A pending record with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The org.
    pub org: OrgId,
    /// The object type.
    pub object: ObjectType,
    /// The record id.
    pub id: SalesforceId,
    /// What is known about it.
    pub entry: PendingEntry,
}

/// Folds one notification into the record's entry (`old`), or starts one.
pub(super) fn merge(old: Option<PendingEntry>, n: &Notification, now_ms: i64) -> PendingEntry {
    let stamp = n.system_modstamp.map(|t| t.timestamp_millis());
    match old {
        None => PendingEntry {
            change: n.change,
            system_modstamp_ms: stamp,
            notifications: 1,
            first_seen_ms: now_ms,
        },
        Some(mut e) => {
            e.notifications = e.notifications.saturating_add(1);
            // The newest stamp wins; a notification without a stamp keeps the known one.
            if stamp > e.system_modstamp_ms {
                e.system_modstamp_ms = stamp;
                e.change = n.change;
            } else if (stamp.is_none() || stamp == e.system_modstamp_ms)
                && (n.change == ChangeType::Delete || e.change != ChangeType::Delete)
            {
                e.change = n.change;
            }
            e
        }
    }
}

/// A pending record in memory, with the newest journal record that names it.
#[derive(Debug, Clone)]
pub(super) struct PendingSlot {
    pub(super) entry: PendingEntry,
    pub(super) last_seq: u64,
}

/// The inbox's working state, rebuilt from the journal when the store opens.
#[derive(Debug, Default)]
pub(super) struct InboxMemory {
    /// Dedupe key → when it arrived (ms).
    pub(super) dedupe: HashMap<Vec<u8>, i64, foldhash::fast::RandomState>,
    /// Pending key (`keys::pending`) → entry; ordered, so one org's entries are a range.
    pub(super) pending: BTreeMap<Vec<u8>, PendingSlot>,
}

impl InboxMemory {
    /// Drops the pending entries a committed record transaction cleared, unless a newer journal
    /// record named their record meanwhile.
    pub(super) fn forget_cleared(&mut self, cleared: Vec<(Vec<u8>, u64)>) {
        for (key, seq) in cleared {
            if self
                .pending
                .get(&key)
                .is_some_and(|slot| slot.last_seq == seq)
            {
                self.pending.remove(&key);
            }
        }
    }
}
