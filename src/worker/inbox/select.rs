//! Selecting an org's due work: the pending records not backing off, held back while a batch
//! may still gather, then sorted into pulls, deletes and entries that need no call (already
//! applied, or sfsync's own write), which are cleared together in one transaction.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{Due, InboxWorker, StepReport, key};
use crate::domain::{ChangeType, SalesforceId};
use crate::salesforce::{Client, MAX_RETRIEVE};
use crate::store::{PendingRecord, Seen, StoreError};
use crate::sync::pull;

impl InboxWorker {
    /// The org's pending records that are due, without those already applied or only reporting
    /// sfsync's own write (cleared here, without a call). `None` when nothing is due, or when
    /// what is due may still wait for company: no batch is full, nothing is gone and nobody has
    /// waited [`super::InboxSettings::gather`]. The wait is decided from memory alone, before
    /// any store read.
    pub(super) fn select(
        &mut self,
        client: &Client,
        report: &mut StepReport,
    ) -> Result<Option<Due>, StoreError> {
        let org = client.org_id();
        let now = Instant::now();
        let candidates =
            self.store
                .pending_records_where(org, self.settings.max_per_step, |r| {
                    let k = key(r);
                    !self.waiting.holds(&k, now) && !self.taken.contains(&k)
                })?;
        if candidates.is_empty() || self.gathering(&candidates) {
            return Ok(None);
        }
        let own_user = client.user_id();
        let mut due = Due::default();
        let mut covered: Vec<(&PendingRecord, Option<Seen>)> = Vec::new();
        for rec in &candidates {
            if rec.entry.change == ChangeType::Delete {
                due.gone.entry(rec.object).or_default().push(rec.clone());
            } else if let Some(seen) = self.applied_by(rec)? {
                covered.push((rec, Some(seen)));
            } else if self.own_write(rec, own_user.as_ref())? {
                covered.push((rec, None));
            } else {
                due.pull.entry(rec.object).or_default().push(rec.clone());
            }
        }
        self.clear_covered(org, &covered, report)?;
        let taken = due.pull.values().chain(due.gone.values()).flatten();
        self.taken.extend(taken.map(key));
        Ok((!due.gone.is_empty() || !due.pull.is_empty()).then_some(due))
    }

    /// Whether the candidates may wait for more to share their calls: none is a delete, fewer
    /// than a full batch, and the oldest has waited less than `gather`.
    fn gathering(&self, candidates: &[PendingRecord]) -> bool {
        if candidates.len() >= MAX_RETRIEVE
            || candidates
                .iter()
                .any(|r| r.entry.change == ChangeType::Delete)
        {
            return false;
        }
        let gather_ms = i64::try_from(self.settings.gather.as_millis()).unwrap_or(i64::MAX);
        let now_ms = chrono::Utc::now().timestamp_millis();
        candidates
            .iter()
            .map(|r| r.entry.first_seen_ms)
            .min()
            .is_some_and(|oldest| now_ms - oldest < gather_ms)
    }

    /// The stored [`Seen`] of a pending record when it covers the notified change (its stamp is
    /// already applied locally).
    fn applied_by(&self, rec: &PendingRecord) -> Result<Option<Seen>, StoreError> {
        let Some(stamp) = rec.entry.system_modstamp_ms else {
            return Ok(None);
        };
        Ok(self
            .store
            .seen(&rec.org, &rec.id)?
            .filter(|seen| seen.covers(stamp)))
    }

    /// Whether a pending record only reports sfsync's own last write (see
    /// [`pull::is_own_write`]).
    fn own_write(
        &self,
        rec: &PendingRecord,
        own_user: Option<&SalesforceId>,
    ) -> Result<bool, StoreError> {
        let written = self.store.written_stamp(&rec.org, &rec.id)?;
        Ok(pull::is_own_write(&rec.entry, written, own_user))
    }

    /// Clears, in one transaction, the entries that need no call: already applied (with the
    /// [`Seen`] that covers them) or sfsync's own write (`None`); each only if nothing newer
    /// arrived meanwhile.
    fn clear_covered(
        &self,
        org: &crate::domain::OrgId,
        covered: &[(&PendingRecord, Option<Seen>)],
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        if covered.is_empty() {
            return Ok(());
        }
        let entries: Vec<pull::Covered<'_>> = covered
            .iter()
            .map(|(r, seen)| (r.object, &r.id, &r.entry, *seen))
            .collect();
        let cleared = pull::clear_covered(&self.store, org, &entries)?;
        for ((rec, seen), cleared) in covered.iter().zip(cleared) {
            match seen {
                Some(_) => report.skipped += u64::from(cleared),
                None if cleared => {
                    report.echoes += 1;
                    self.ctx.echoes.fetch_add(1, Ordering::Relaxed);
                    self.ctx.orgs.telemetry().metrics.inbox_echoes(1);
                    tracing::debug!(org = %rec.org, record = %rec.id, "notification reports sfsync's own write; nothing to pull");
                }
                None => {}
            }
        }
        Ok(())
    }
}
