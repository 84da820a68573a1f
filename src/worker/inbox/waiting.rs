//! The inbox worker's back-off: records whose pull failed wait on the retry schedule before they
//! are due again.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{Key, key};
use crate::store::PendingRecord;
use crate::worker::Backoff;

/// Records whose pull failed, each waiting out its back-off before it is due again.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    records: HashMap<Key, (u32, Instant)>,
}

impl Waiting {
    /// Whether a record is still waiting at `now`.
    pub(super) fn holds(&self, key: &Key, now: Instant) -> bool {
        self.records.get(key).is_some_and(|(_, until)| *until > now)
    }

    /// Another failed attempt for each record: each waits on the schedule.
    pub(super) fn failed(&mut self, schedule: &Backoff, entries: &[PendingRecord]) {
        let now = Instant::now();
        let mut rng = rand::rng();
        for e in entries {
            let slot = self.records.entry(key(e)).or_insert((0, now));
            slot.0 += 1;
            slot.1 = now + schedule.delay(slot.0, &mut rng);
        }
    }

    /// A record went through: its back-off is over.
    pub(super) fn done(&mut self, key: &Key) {
        self.records.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use std::time::Duration;

    use super::*;
    use crate::domain::{ChangeType, ObjectType, OrgId, SalesforceId};
    use crate::store::PendingEntry;

    fn pending(id: u64) -> PendingRecord {
        PendingRecord {
            org: OrgId::parse("00D7F00000107Xs").expect("org"),
            object: ObjectType::Account,
            id: SalesforceId::mint("001", "5g", id),
            entry: PendingEntry {
                change: ChangeType::Update,
                system_modstamp_ms: None,
                notifications: 1,
                first_seen_ms: Utc::now().timestamp_millis(),
                modified_by: None,
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_record_waits_out_its_back_off_and_longer_after_each_failure() {
        let schedule = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(25),
        };
        let mut waiting = Waiting::default();
        let rec = pending(1);
        waiting.failed(&schedule, std::slice::from_ref(&rec));
        assert!(
            !waiting.holds(&key(&pending(2)), Instant::now()),
            "others are due"
        );
        tokio::time::advance(Duration::from_secs(10) + Duration::from_millis(1)).await;
        assert!(
            !waiting.holds(&key(&rec), Instant::now()),
            "due after the first ceiling"
        );
        for _ in 0..5 {
            waiting.failed(&schedule, std::slice::from_ref(&rec));
        }
        let (attempts, until) = waiting.records[&key(&rec)];
        assert_eq!(attempts, 6);
        assert!(until <= Instant::now() + Duration::from_secs(25), "capped");
        tokio::time::advance(Duration::from_secs(25) + Duration::from_millis(1)).await;
        assert!(!waiting.holds(&key(&rec), Instant::now()));
        waiting.done(&key(&rec));
        assert!(waiting.records.is_empty());
    }
}
