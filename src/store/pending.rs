//! The pending queue's entries and the inbox's working memory: many notifications for one
//! record collapse into one [`PendingEntry`] that keeps the newest `SystemModstamp` seen.

use std::collections::BTreeMap;

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
    /// The user every one of them named as the record's last modifier (`LastModifiedById`);
    /// `None` once any named nobody or someone else.
    pub modified_by: Option<SalesforceId>,
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
            modified_by: n.modified_by.clone(),
        },
        Some(mut e) => {
            e.notifications = e.notifications.saturating_add(1);
            if e.modified_by != n.modified_by {
                e.modified_by = None;
            }
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

/// The inbox's pending queue, rebuilt from the journal when the store opens.
#[derive(Debug, Default)]
pub(super) struct InboxMemory {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn note(stamp_s: i64, by: Option<&str>) -> Notification {
        Notification {
            object: ObjectType::Contact,
            record_id: SalesforceId::parse("0031I0000081tbP").expect("id"),
            change: ChangeType::Update,
            system_modstamp: Utc.timestamp_opt(stamp_s, 0).single(),
            modified_by: by.map(|u| SalesforceId::parse(u).expect("user")),
        }
    }

    const SFSYNC: &str = "0055g0000000001AAA";
    const PERSON: &str = "0055g0000000002AAA";

    #[test]
    fn an_entry_names_a_modifier_only_while_every_notification_names_the_same_one() {
        let ours = merge(None, &note(10, Some(SFSYNC)), 0);
        let again = merge(Some(ours.clone()), &note(11, Some(SFSYNC)), 0);
        assert_eq!(again.modified_by, ours.modified_by);
        assert_eq!(again.system_modstamp_ms, Some(11_000));
        let same_second = merge(Some(ours.clone()), &note(10, Some(PERSON)), 0);
        assert_eq!(
            same_second.modified_by, None,
            "someone else in the same second"
        );
        let unsaid = merge(Some(ours.clone()), &note(9, None), 0);
        assert_eq!(unsaid.modified_by, None, "a notification that names nobody");
        let back = merge(Some(same_second), &note(12, Some(SFSYNC)), 0);
        assert_eq!(back.modified_by, None, "once mixed, always mixed");
    }
}
